//! The connection sync daemon's model, as Linux IPVS has it
//! (net/netfilter/ipvs/ip_vs_sync.c): the master and backup daemons'
//! settings with the kernel's defaults, when a conn is sent
//! (`trigger`), and the version 1 message format (`wire`). No DPDK here;
//! src/dataplane/sync.rs moves the messages.
use std::net::{IpAddr, Ipv4Addr};

pub mod trigger;
pub mod wire;

/// 224.0.0.81, IP_VS_SYNC_GROUP.
pub const DEFAULT_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
/// IP_VS_SYNC_PORT.
pub const DEFAULT_PORT: u16 = 8848;
pub const DEFAULT_TTL: u8 = 1;
/// IP_VS_SYNC_FLUSH_TIME: a part-filled message waits at most 2 s.
pub const FLUSH_MS: u64 = 2_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Master,
    Backup,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Backup => "backup",
        }
    }
}

/// One running daemon's settings after the kernel's defaults
/// (start_sync_thread): what `-L --daemon` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    pub role: Role,
    /// The rvs port (its `name` in rvsd.toml) the messages use.
    pub ifname: String,
    pub syncid: u8,
    pub maxlen: u16,
    pub group: IpAddr,
    pub port: u16,
    pub ttl: u8,
}

/// The IP and UDP headers' length under a message (hlen in
/// start_sync_thread).
pub fn headers_len(group: IpAddr) -> u16 {
    if group.is_ipv6() {
        40 + 8
    } else {
        20 + 8
    }
}

impl SyncConfig {
    /// The kernel's defaults for what the command left out: group
    /// 224.0.0.81, port 8848, TTL 1, and a maximum message length of the
    /// MTU less the headers, where the MTU is 1500 for a master and the
    /// port's clamped to 1500..=65535 for a backup; a given length is
    /// clamped to 1..=65535-hlen (1024.. for a backup).
    #[allow(clippy::too_many_arguments)]
    pub fn with_defaults(
        role: Role,
        ifname: &str,
        syncid: u8,
        maxlen: Option<u16>,
        group: Option<IpAddr>,
        port: Option<u16>,
        ttl: Option<u8>,
        port_mtu: u16,
    ) -> SyncConfig {
        let group = group.unwrap_or(IpAddr::V4(DEFAULT_GROUP));
        let hlen = headers_len(group);
        let (mtu, min) = match role {
            Role::Backup => (port_mtu.max(1500), 1024),
            Role::Master => (1500, 1),
        };
        let maxlen = match maxlen.filter(|&m| m != 0) {
            Some(m) => m.clamp(min, 65535 - hlen),
            None => mtu - hlen,
        };
        SyncConfig {
            role,
            ifname: ifname.to_string(),
            syncid,
            maxlen,
            group,
            port: port.filter(|&p| p != 0).unwrap_or(DEFAULT_PORT),
            ttl: ttl.filter(|&t| t != 0).unwrap_or(DEFAULT_TTL),
        }
    }
}

/// The daemons running now, as the control thread publishes them to the
/// workers (master and backup may run at once, as in the kernel).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncDaemons {
    pub master: Option<SyncConfig>,
    pub backup: Option<SyncConfig>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_kernels() {
        let m = SyncConfig::with_defaults(Role::Master, "eth0", 0, None, None, None, None, 9000);
        // A master's MTU is 1500 whatever the port's: 1500 - 28.
        assert_eq!(m.maxlen, 1472);
        assert_eq!(m.group, "224.0.0.81".parse::<IpAddr>().unwrap());
        assert_eq!((m.port, m.ttl), (8848, 1));
        let b = SyncConfig::with_defaults(Role::Backup, "eth0", 0, None, None, None, None, 9000);
        assert_eq!(b.maxlen, 9000 - 28);
        let b = SyncConfig::with_defaults(Role::Backup, "eth0", 0, None, None, None, None, 1400);
        assert_eq!(b.maxlen, 1472, "a backup's MTU is at least 1500");
        let b = SyncConfig::with_defaults(Role::Backup, "e", 0, Some(100), None, None, None, 1500);
        assert_eq!(b.maxlen, 1024, "a backup takes no less than 1024");
        let m =
            SyncConfig::with_defaults(Role::Master, "e", 0, Some(65535), None, None, None, 1500);
        assert_eq!(m.maxlen, 65535 - 28);
        let g6: IpAddr = "ff02::81".parse().unwrap();
        let m = SyncConfig::with_defaults(Role::Master, "e", 0, None, Some(g6), None, None, 1500);
        assert_eq!(m.maxlen, 1500 - 48);
    }
}
