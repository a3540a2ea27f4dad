//! The encapsulation of a `-i` dest: `--tun-type ipip|gue|gre` with
//! `--tun-port` and the checksum flags, as the kernel keeps them in
//! `ip_vs_dest` (tun_type, tun_port, tun_flags, kernel 5.2+).

/// The checksum option of a GUE or GRE tunnel (IP_VS_TUNNEL_ENCAP_FLAG_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TunnelCsum {
    /// `--tun-nocsum`, also the default.
    #[default]
    NoCsum,
    /// `--tun-csum`.
    Csum,
    /// `--tun-remcsum` (GUE only).
    RemCsum,
}

/// The encapsulation of a `-i` dest (`--tun-type`, default ipip).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tunnel {
    #[default]
    Ipip,
    Gue {
        port: u16,
        csum: TunnelCsum,
    },
    Gre {
        csum: TunnelCsum,
    },
}

impl Tunnel {
    /// One word, so that every worker reads a dest's tunnel whole while
    /// `-e` changes it: type (the kernel's IP_VS_CONN_F_TUNNEL_TYPE_*) in
    /// bits 0-7, checksum flag (IP_VS_TUNNEL_ENCAP_FLAG_*) in 8-15, port in
    /// 16-31.
    pub(crate) fn encode(self) -> u32 {
        let flag = |c: TunnelCsum| match c {
            TunnelCsum::NoCsum => 0u32,
            TunnelCsum::Csum => 1,
            TunnelCsum::RemCsum => 2,
        };
        match self {
            Tunnel::Ipip => 0,
            Tunnel::Gue { port, csum } => 1 | flag(csum) << 8 | u32::from(port) << 16,
            Tunnel::Gre { csum } => 2 | flag(csum) << 8,
        }
    }

    pub(crate) fn decode(w: u32) -> Tunnel {
        let csum = match (w >> 8) & 0xff {
            1 => TunnelCsum::Csum,
            2 => TunnelCsum::RemCsum,
            _ => TunnelCsum::NoCsum,
        };
        match w & 0xff {
            1 => Tunnel::Gue {
                port: (w >> 16) as u16,
                csum,
            },
            2 => Tunnel::Gre { csum },
            _ => Tunnel::Ipip,
        }
    }
}

impl Tunnel {
    /// What a `--sorry-set` line adds for it (ipvsadm's options; nothing
    /// for ipip, the default).
    pub fn save_options(self) -> String {
        let flag = |c: TunnelCsum| match c {
            TunnelCsum::NoCsum => "--tun-nocsum",
            TunnelCsum::Csum => "--tun-csum",
            TunnelCsum::RemCsum => "--tun-remcsum",
        };
        match self {
            Tunnel::Ipip => String::new(),
            Tunnel::Gue { port, csum } => {
                format!(" --tun-type gue --tun-port {port} {}", flag(csum))
            }
            Tunnel::Gre { csum } => format!(" --tun-type gre {}", flag(csum)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_round_trips() {
        for t in [
            Tunnel::Ipip,
            Tunnel::Gue {
                port: 1,
                csum: TunnelCsum::NoCsum,
            },
            Tunnel::Gue {
                port: 65535,
                csum: TunnelCsum::RemCsum,
            },
            Tunnel::Gue {
                port: 6080,
                csum: TunnelCsum::Csum,
            },
            Tunnel::Gre {
                csum: TunnelCsum::NoCsum,
            },
            Tunnel::Gre {
                csum: TunnelCsum::Csum,
            },
        ] {
            assert_eq!(Tunnel::decode(t.encode()), t);
        }
        assert_eq!(Tunnel::default().encode(), 0);
    }
}
