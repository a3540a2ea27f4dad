//! A conn or template as `ipvsadm -c` shows it: the fields the kernel's
//! /proc/net/ip_vs_conn gives ipvsadm, read off a worker's table between
//! bursts and formatted by the management plane.
use std::net::IpAddr;

use super::conn::ConnRef;
use super::proto::{state_name, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};
use super::{pe_sip, FwdMethod, Millis};

/// One row of `-c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnRow {
    /// "TCP", "UDP", "SCTP", or "IP" for a fwmark template.
    pub proto: &'static str,
    pub expires_secs: u32,
    pub state: &'static str,
    pub caddr: IpAddr,
    pub cport: u16,
    /// For a fwmark template, the mark as an IPv4 address (0.0.0.5).
    pub vaddr: IpAddr,
    pub vport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    /// The FULLNAT local address and port the dest sees as the client.
    pub laddr: Option<(IpAddr, u16)>,
    /// The persistence engine's name and data (sip and its Call-ID).
    pub pe: Option<(String, String)>,
}

impl ConnRow {
    /// The row of `c` at `now`; `pe` is the Call-ID of a sip template.
    pub fn of(c: ConnRef<'_>, now: Millis, pe: Option<&[u8]>) -> ConnRow {
        let template = c.is_template();
        let fwmark_tpl = template && c.proto() == 0;
        let fullnat = c.fwd() == FwdMethod::FullNat && !template;
        ConnRow {
            proto: match c.proto() {
                IPPROTO_TCP => "TCP",
                IPPROTO_UDP => "UDP",
                IPPROTO_SCTP => "SCTP",
                _ => "IP",
            },
            expires_secs: (c.expires_in(now) / 1000) as u32,
            state: state_name(c.proto(), c.state(), template),
            caddr: c.caddr(),
            cport: c.cport(),
            vaddr: c.vaddr(),
            vport: if fwmark_tpl { 0 } else { c.vport() },
            daddr: c.daddr(),
            dport: c.dport(),
            laddr: fullnat.then(|| (c.laddr(), c.lport())),
            pe: pe.map(|d| {
                (
                    pe_sip::NAME.to_string(),
                    String::from_utf8_lossy(d).into_owned(),
                )
            }),
        }
    }
}
