//! EAL's arguments as rvsd completes them (lcores, the PCI allow list),
//! the packet pool's buffer size, and the capture server.
use super::*;

/// Whether the operator already chose the lcores in `eal.args`.
fn has_lcore_args(args: &[String]) -> bool {
    args.iter().any(|a| {
        a == "-l"
            || a == "-c"
            || a.starts_with("--lcores")
            || (a.starts_with("-l") && a.len() > 2)
            || (a.starts_with("-c") && a.len() > 2)
    })
}

/// Whether devargs name a PCI device ("0000:01:00.0" or "01:00.0").
pub(super) fn is_pci(devargs: &str) -> bool {
    let name = crate::dpdk::ethdev::devargs_name(devargs);
    let parts: Vec<&str> = name.split([':', '.']).collect();
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    match parts.as_slice() {
        [d, b, s, f] => hex(d, 4) && hex(b, 2) && hex(s, 2) && hex(f, 1),
        [b, s, f] => hex(b, 2) && hex(s, 2) && hex(f, 1),
        _ => false,
    }
}

/// The EAL argument list: the configured one plus the lcores rvsd needs
/// when the operator did not give them, and a PCI allow list of exactly the
/// configured PCI ports (none: --no-pci), so EAL never takes over a NIC that
/// rvsd was not asked to drive.
pub fn eal_args(cfg: &Config) -> Vec<String> {
    let mut args = cfg.eal.args.clone();
    let chooses_pci = args.iter().any(|a| {
        ["-a", "-b", "--allow", "--block", "--no-pci"]
            .iter()
            .any(|o| {
                a == o
                    || a.starts_with(&format!("{o}="))
                    || (o.len() == 2 && a.starts_with(o) && a.len() > 2)
            })
    });
    if !chooses_pci {
        let pci: Vec<&str> = cfg
            .ports
            .iter()
            .map(|p| p.devargs.as_str())
            .filter(|d| is_pci(d))
            .collect();
        if pci.is_empty() {
            args.push("--no-pci".into());
        }
        for d in pci {
            args.push("-a".into());
            args.push(d.to_owned());
        }
    }
    if !has_lcore_args(&args) {
        let mut lcores = vec![cfg.dataplane.main_lcore];
        lcores.extend(cfg.dataplane.workers.iter().copied());
        let list: Vec<String> = lcores.iter().map(u32::to_string).collect();
        args.push("-l".into());
        args.push(list.join(","));
        if !args.iter().any(|a| a.starts_with("--main-lcore")) {
            args.push(format!("--main-lcore={}", cfg.dataplane.main_lcore));
        }
    }
    args
}

/// An mbuf's data room: DPDK's default (2048 bytes after the headroom)
/// or the largest frame of the largest port MTU (with a VLAN tag's room),
/// so that every frame a port takes in fits one mbuf: rvs refuses chained
/// ones, and fragments it makes come from the same pool.
pub(super) fn mbuf_data_room(cfg: &Config) -> u16 {
    let mtu = cfg.ports.iter().filter_map(|p| p.mtu).max().unwrap_or(1500);
    let frame = u32::from(mtu) + 14 + 4;
    let room = dpdk_sys::RTE_MBUF_DEFAULT_DATAROOM.max(frame.next_multiple_of(64));
    (dpdk_sys::RTE_PKTMBUF_HEADROOM + room).min(u32::from(u16::MAX)) as u16
}

/// Starts the server for dpdk-dumpcap when secondary processes can attach.
/// Telemetry needs nothing here: EAL serves it unless --no-telemetry. A server
/// that fails to start costs capture only, so rvsd keeps forwarding.
pub(super) fn capture_server(args: &[String]) -> Option<dpdk::Pdump> {
    let private = args
        .iter()
        .any(|a| a == "--no-shconf" || a == "--in-memory");
    if private {
        log::info!(
            "packet capture (dpdk-dumpcap) and dpdk-telemetry.py need a shared-config EAL: run with a --file-prefix and hugepages, without --no-shconf or --in-memory"
        );
        return None;
    }
    match dpdk::pdump_init() {
        Ok(p) => {
            log::info!("packet capture server up for dpdk-dumpcap");
            Some(p)
        }
        Err(e) => {
            log::warn!("dpdk-dumpcap cannot capture: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str, devargs: &str) -> Config {
        Config::from_toml_str(&format!(
            "[eal]\nargs = [{extra}]\n[dataplane]\nworkers = [1, 2]\n[[port]]\nname = \"p\"\ndevargs = \"{devargs}\"\n"
        ))
        .unwrap()
    }

    #[test]
    fn eal_args_add_lcores_and_keep_unasked_pci_devices_out() {
        let a = eal_args(&cfg("\"--no-huge\"", "net_null0"));
        assert_eq!(
            a,
            ["--no-huge", "--no-pci", "-l", "0,1,2", "--main-lcore=0"]
        );
        let a = eal_args(&cfg("", "0000:01:00.0,rxq_pkt_split=1"));
        assert_eq!(
            a,
            [
                "-a",
                "0000:01:00.0,rxq_pkt_split=1",
                "-l",
                "0,1,2",
                "--main-lcore=0"
            ]
        );
        let a = eal_args(&cfg(
            "\"--lcores=0@0,(1,2)@1\", \"-a\", \"0000:02:00.0\"",
            "0000:01:00.0",
        ));
        assert_eq!(
            a,
            ["--lcores=0@0,(1,2)@1", "-a", "0000:02:00.0"],
            "the operator's choices stand"
        );
    }

    #[test]
    fn pci_addresses_are_told_from_vdevs() {
        assert!(is_pci("0000:3b:00.1"));
        assert!(is_pci("3b:00.1,foo=bar"));
        assert!(!is_pci("net_af_packet0,iface=eth0"));
        assert!(!is_pci("0000:3b:00"));
    }
}
