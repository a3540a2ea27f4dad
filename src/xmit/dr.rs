//! Direct routing (`-g`): the frame goes to the real server's MAC with the
//! IP packet untouched but for the TTL / hop limit, which the kernel lowers
//! on this path too (decrement_ttl in __ip_vs_get_out_rt). The real server
//! holds the VIP on a non-ARPing interface and answers the client directly.

use std::net::IpAddr;

use super::{dec_ttl, parse_ip, trim_padding, ttl_expires, XmitError};
use crate::counters::DropReason;
use crate::ipvs::ConnRef;
use crate::packet::Packet;

/// Client → real server: TTL/hop limit minus one; returns the real
/// server's address for the caller to resolve its MAC. Any protocol goes
/// (the kernel's DR transmitter is protocol-blind; ICMP errors about a DR
/// conn take this path too). `mtu` is the egress MTU ([`super::mtu`]).
pub fn to_real<P: Packet>(pkt: &mut P, conn: &ConnRef<'_>, mtu: u16) -> Result<IpAddr, XmitError> {
    let rs = conn.daddr();
    let ip = parse_ip(pkt.data())?;
    if ip.v6 != rs.is_ipv6() {
        return Err(XmitError::Drop(DropReason::Unsupported));
    }
    if ttl_expires(pkt.data(), &ip) {
        return Err(XmitError::TtlExceeded);
    }
    super::mtu::fit(pkt.data(), &ip, mtu, 0)?;
    trim_padding(pkt, &ip);
    dec_ttl(pkt.data_mut(), &ip);
    Ok(rs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::FwdMethod;
    use crate::xmit::testkit::*;

    #[test]
    fn only_ttl_changes_v4_v6() {
        for a in [v4(), v6()] {
            for (proto, l4) in [
                (6, tcp(a.client.1, a.vip.1, "S", &syn_opts())),
                (6, tcp(a.client.1, a.vip.1, "PA", &[])),
                (6, tcp(a.client.1, a.vip.1, "FA", &[])),
                (6, tcp(a.client.1, a.vip.1, "R", &[])),
                (17, L4::Udp(a.client.1, a.vip.1)),
            ] {
                // ipvsadm gives a DR dest the service's port.
                let c = conn(
                    FwdMethod::DirectRoute,
                    proto,
                    a.client,
                    a.vip,
                    (a.rs.0, a.vip.1),
                    None,
                );
                let inp = frame(a.client.0, a.vip.0, 64, &l4, b"data");
                let (r, out) = run(&inp, |p| to_real(p, &c, 1500));
                assert_eq!(r, Ok(a.rs.0));
                let mut want = view(&inp);
                want.set_ttl(63);
                assert_eq!(view(&out), want);
                assert_checksums(&out, false);
                // Only the TTL byte and the IPv4 header checksum differ.
                let diff: Vec<usize> = (0..inp.len()).filter(|&i| inp[i] != out[i]).collect();
                if a.client.0.is_ipv4() {
                    assert!(
                        diff.iter().all(|&i| i == 22 || i == 24 || i == 25),
                        "{diff:?}"
                    );
                } else {
                    assert_eq!(diff, vec![21]);
                }
            }
        }
    }

    #[test]
    fn ttl_one_and_padding() {
        let a = v4();
        let c = conn(FwdMethod::DirectRoute, 17, a.client, a.vip, a.rs, None);
        let inp = frame(a.client.0, a.vip.0, 1, &L4::Udp(1, 2), b"");
        let (r, out) = run(&inp, |p| to_real(p, &c, 1500));
        assert_eq!(r, Err(XmitError::TtlExceeded));
        assert_eq!(out, inp);
        let mut inp = frame(a.client.0, a.vip.0, 5, &L4::Udp(1, 2), b"");
        inp.resize(60, 0);
        let (r, out) = run(&inp, |p| to_real(p, &c, 1500));
        assert!(r.is_ok());
        assert_eq!(out.len(), 42);
        assert_checksums(&out, false);
        // An RS of the other family.
        let c = conn(FwdMethod::DirectRoute, 17, a.client, a.vip, v6().rs, None);
        let (r, _) = run(&inp, |p| to_real(p, &c, 1500));
        assert_eq!(r, Err(XmitError::Drop(DropReason::Unsupported)));
    }
}
