//! Ethernet ports: attach from devargs (PCI or any vdev), configure queues,
//! RSS and checksum offloads, start, stop, read statistics.
use std::ffi::{CStr, CString};

use super::capture::capture;
use super::mbuf::Burst;
use super::{DpdkError, Mempool};
use crate::rss::{HashTypes, Spread};

/// How to set a port up. Queue counts come from the number of workers.
#[derive(Debug, Clone)]
pub struct PortSetup<'a> {
    pub devargs: &'a str,
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_descriptors: u16,
    pub tx_descriptors: u16,
    pub promiscuous: bool,
    pub mtu: Option<u16>,
    /// Replaces the device's MAC address.
    pub mac: Option<[u8; 6]>,
}

/// Which checksums the port computes on transmit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxChecksumCaps {
    pub ipv4: bool,
    pub tcp: bool,
    pub udp: bool,
}

pub struct Port {
    id: u16,
    name: String,
    driver: String,
    mac: [u8; 6],
    rx_queues: u16,
    tx_queues: u16,
    tx_checksum: TxChecksumCaps,
    /// The device checks received IPv4 header checksums and says so in
    /// each mbuf (`Packet::rx_ipv4_checksum`).
    rx_ipv4_checksum: bool,
    rss: bool,
    spread: Option<Spread>,
    hash_key_size: u8,
    reta_size: u16,
    started: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkState {
    pub up: bool,
    pub speed_mbps: u32,
}

fn check(ret: i32, what: impl FnOnce() -> String) -> Result<(), DpdkError> {
    if ret < 0 {
        Err(DpdkError::new(what(), ret))
    } else {
        Ok(())
    }
}

/// The ethdev name a devargs string creates: the text before the first comma
/// ("net_af_packet0,iface=x" -> "net_af_packet0"; a PCI address as given).
pub fn devargs_name(devargs: &str) -> &str {
    devargs.split(',').next().unwrap_or(devargs).trim()
}

fn port_by_name(name: &str) -> Option<u16> {
    let c = CString::new(name).ok()?;
    let mut id = 0u16;
    // SAFETY: c is a valid C string; id is a valid out pointer.
    let ret = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
    (ret == 0).then_some(id)
}

/// Finds the port for `devargs`, attaching the device when EAL has not
/// probed it already (PCI devices usually are, vdevs usually are not).
fn attach(devargs: &str) -> Result<u16, DpdkError> {
    let name = devargs_name(devargs);
    if let Some(id) = port_by_name(name) {
        return Ok(id);
    }
    let c = CString::new(devargs)
        .map_err(|_| DpdkError::new(format!("devargs {devargs:?} contain a NUL"), libc::EINVAL))?;
    // SAFETY: c is a valid C string for the call; DPDK copies what it keeps.
    let (ret, out) = capture(|| unsafe { dpdk_sys::rte_dev_probe(c.as_ptr()) });
    if ret < 0 {
        return Err(
            DpdkError::new(format!("cannot attach device {devargs:?}"), ret)
                .with_detail(out.reason()),
        );
    }
    port_by_name(name).ok_or_else(|| {
        DpdkError::new(
            format!("device {name:?} attached but is not an ethernet port"),
            libc::ENODEV,
        )
    })
}

impl Port {
    /// Attaches and configures the port; it is not started yet.
    pub fn open(setup: &PortSetup<'_>, pool: &Mempool) -> Result<Port, DpdkError> {
        let id = attach(setup.devargs)?;
        let name = devargs_name(setup.devargs).to_owned();
        let ctx = |what: &str| format!("port {name:?}: {what}");

        let mut info = dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: id names an attached port; info is a valid out struct.
        check(
            unsafe { dpdk_sys::rte_eth_dev_info_get(id, &mut info) },
            || ctx("cannot read device info"),
        )?;
        let driver = if info.driver_name.is_null() {
            String::from("?")
        } else {
            // SAFETY: driver_name points to the driver's static NUL-terminated name.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        if setup.rx_queues == 0 || setup.rx_queues > info.max_rx_queues {
            return Err(DpdkError::new(
                ctx(&format!(
                    "{} rx queues asked, the {driver} driver offers at most {}",
                    setup.rx_queues, info.max_rx_queues
                )),
                libc::EINVAL,
            ));
        }
        if setup.tx_queues == 0 || setup.tx_queues > info.max_tx_queues {
            return Err(DpdkError::new(
                ctx(&format!(
                    "{} tx queues asked (one per worker), the {driver} driver offers at most {}",
                    setup.tx_queues, info.max_tx_queues
                )),
                libc::EINVAL,
            ));
        }

        let mut conf = dpdk_sys::rte_eth_conf::default();
        let rss_hf =
            (dpdk_sys::RVS_ETH_RSS_IP | dpdk_sys::RVS_ETH_RSS_TCP | dpdk_sys::RVS_ETH_RSS_UDP)
                & info.flow_type_rss_offloads;
        let rss = setup.rx_queues > 1 && rss_hf != 0;
        // Outlives the configure call, which copies it.
        let mut key = crate::rss::SYMMETRIC_KEY;
        if rss {
            conf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            // The symmetric key where the device takes one of its size;
            // else the driver's own, read back after start either way.
            if usize::from(info.hash_key_size) == key.len() {
                conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
                conf.rx_adv_conf.rss_conf.rss_key_len = key.len() as u8;
            }
        }
        if let Some(mtu) = setup.mtu {
            conf.rxmode.mtu = u32::from(mtu);
        }
        let capa = info.tx_offload_capa;
        let tx_checksum = TxChecksumCaps {
            ipv4: capa & dpdk_sys::RVS_ETH_TX_OFFLOAD_IPV4_CKSUM != 0,
            tcp: capa & dpdk_sys::RVS_ETH_TX_OFFLOAD_TCP_CKSUM != 0,
            udp: capa & dpdk_sys::RVS_ETH_TX_OFFLOAD_UDP_CKSUM != 0,
        };
        conf.txmode.offloads = capa
            & (dpdk_sys::RVS_ETH_TX_OFFLOAD_IPV4_CKSUM
                | dpdk_sys::RVS_ETH_TX_OFFLOAD_TCP_CKSUM
                | dpdk_sys::RVS_ETH_TX_OFFLOAD_UDP_CKSUM);
        // A device that checks the IPv4 header checksum on receive spares
        // the first parse its sum (a device without says nothing: the
        // flags stay unknown and rvs sums as before).
        let rx_ipv4_checksum = info.rx_offload_capa & dpdk_sys::RVS_ETH_RX_OFFLOAD_IPV4_CKSUM != 0;
        if rx_ipv4_checksum {
            conf.rxmode.offloads |= dpdk_sys::RVS_ETH_RX_OFFLOAD_IPV4_CKSUM;
        }

        // SAFETY: conf is a fully initialised rte_eth_conf; id is attached.
        check(
            unsafe { dpdk_sys::rte_eth_dev_configure(id, setup.rx_queues, setup.tx_queues, &conf) },
            || ctx("cannot configure"),
        )?;
        let (mut nb_rx, mut nb_tx) = (setup.rx_descriptors, setup.tx_descriptors);
        // SAFETY: valid out pointers to two u16.
        check(
            unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut nb_rx, &mut nb_tx) },
            || ctx("cannot fit descriptor counts"),
        )?;
        // SAFETY: id is a configured port.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(id) };
        let socket = if socket < 0 { 0 } else { socket as u32 };
        for q in 0..setup.rx_queues {
            // SAFETY: a NULL rxconf means the driver's defaults; pool outlives the port.
            check(
                unsafe {
                    dpdk_sys::rte_eth_rx_queue_setup(
                        id,
                        q,
                        nb_rx,
                        socket,
                        std::ptr::null(),
                        pool.as_ptr(),
                    )
                },
                || ctx(&format!("cannot set up rx queue {q}")),
            )?;
        }
        let mut txconf = info.default_txconf;
        txconf.offloads = conf.txmode.offloads;
        for q in 0..setup.tx_queues {
            // SAFETY: txconf is the driver's default with offloads the port offers.
            check(
                unsafe { dpdk_sys::rte_eth_tx_queue_setup(id, q, nb_tx, socket, &txconf) },
                || ctx(&format!("cannot set up tx queue {q}")),
            )?;
        }
        let mut mac = dpdk_sys::rte_ether_addr::default();
        // SAFETY: valid out pointer.
        check(
            unsafe { dpdk_sys::rte_eth_macaddr_get(id, &mut mac) },
            || ctx("cannot read MAC address"),
        )?;
        let mut mac = mac.addr_bytes;
        let mut promiscuous = setup.promiscuous;
        if let Some(m) = setup.mac {
            let mut addr = dpdk_sys::rte_ether_addr { addr_bytes: m };
            // SAFETY: addr is a valid rte_ether_addr for the call.
            let ret = unsafe { dpdk_sys::rte_eth_dev_default_mac_addr_set(id, &mut addr) };
            if ret == -libc::ENOTSUP {
                // Devices such as net_pcap keep a fixed MAC. rvs filters by
                // MAC in software, so it can own the configured one as long
                // as the device passes every frame up.
                log::warn!(
                    "port {name:?}: the {driver} device cannot change its MAC; rvs answers for {} in software, in promiscuous mode",
                    crate::wire::MacAddr(m)
                );
                promiscuous = true;
            } else {
                check(ret, || ctx("cannot set the configured MAC address"))?;
            }
            mac = m;
        }
        if promiscuous {
            // SAFETY: id is a configured port. Some vdevs cannot (e.g. net_ring);
            // rvs filters by MAC in software, so that is not fatal.
            unsafe {
                dpdk_sys::rte_eth_promiscuous_enable(id);
            }
        }
        // SAFETY: id is a configured port; failure leaves multicast filtered,
        // which rvs also tolerates (solicited-node groups then need promisc).
        unsafe {
            dpdk_sys::rte_eth_allmulticast_enable(id);
        }
        Ok(Port {
            id,
            name,
            driver,
            mac,
            rx_queues: setup.rx_queues,
            tx_queues: setup.tx_queues,
            tx_checksum,
            rx_ipv4_checksum,
            rss,
            spread: None,
            hash_key_size: info.hash_key_size,
            reta_size: info.reta_size,
            started: false,
        })
    }

    /// The device's RSS as it hashes now (key, hashed types, redirection
    /// table), read back from the driver; None where it does not spread
    /// or will not say how.
    fn read_spread(&self) -> Result<Option<Spread>, String> {
        if !self.rss {
            return Ok(None);
        }
        let mut key = vec![0u8; usize::from(self.hash_key_size.max(40))];
        let mut conf = dpdk_sys::rte_eth_rss_conf {
            rss_key: key.as_mut_ptr(),
            rss_key_len: key.len() as u8,
            ..Default::default()
        };
        // SAFETY: rss_key points at rss_key_len writable bytes.
        let ret = unsafe { dpdk_sys::rte_eth_dev_rss_hash_conf_get(self.id, &mut conf) };
        if ret != 0 {
            return Err(format!(
                "cannot read the RSS key ({})",
                super::strerror(-ret)
            ));
        }
        key.truncate(usize::from(conf.rss_key_len).max(40).min(key.len()));
        let group = dpdk_sys::RTE_ETH_RETA_GROUP_SIZE as usize;
        let size = usize::from(self.reta_size);
        if size == 0 {
            return Err("the device reports no redirection table".into());
        }
        let mut groups = vec![
            dpdk_sys::rte_eth_rss_reta_entry64 {
                mask: u64::MAX,
                reta: [0; 64],
            };
            size.div_ceil(group)
        ];
        // SAFETY: groups holds reta_size entries in 64-entry groups.
        let ret = unsafe {
            dpdk_sys::rte_eth_dev_rss_reta_query(self.id, groups.as_mut_ptr(), self.reta_size)
        };
        if ret != 0 {
            return Err(format!(
                "cannot read the redirection table ({})",
                super::strerror(-ret)
            ));
        }
        let reta: Vec<u16> = (0..size)
            .map(|i| groups[i / group].reta[i % group])
            .collect();
        let hf = conf.rss_hf;
        let has = |bits: u64| hf & bits != 0;
        let types = HashTypes {
            ipv4: has(dpdk_sys::RVS_ETH_RSS_IPV4),
            ipv4_tcp: has(dpdk_sys::RVS_ETH_RSS_IPV4_TCP),
            ipv4_udp: has(dpdk_sys::RVS_ETH_RSS_IPV4_UDP),
            ipv6: has(dpdk_sys::RVS_ETH_RSS_IPV6),
            ipv6_tcp: has(dpdk_sys::RVS_ETH_RSS_IPV6_TCP),
            ipv6_udp: has(dpdk_sys::RVS_ETH_RSS_IPV6_UDP),
        };
        Spread::new(&key, types, reta)
            .map(Some)
            .map_err(|e| e.to_string())
    }

    /// How the device spreads packets over the rx queues (`read_spread`),
    /// as read when the port started.
    pub fn spread(&self) -> Option<&Spread> {
        self.spread.as_ref()
    }

    pub fn start(&mut self) -> Result<(), DpdkError> {
        // SAFETY: the port is configured with all its queues set up.
        check(unsafe { dpdk_sys::rte_eth_dev_start(self.id) }, || {
            format!("port {:?}: cannot start", self.name)
        })?;
        self.started = true;
        self.spread = match self.read_spread() {
            Ok(s) => s,
            Err(e) => {
                log::warn!(
                    "port {:?}: RSS is on but {e}: flows that land on another worker's queue take the redirect ring",
                    self.name
                );
                None
            }
        };
        Ok(())
    }

    /// Stops the port; rx/tx queues must no longer be polled.
    pub fn stop(&mut self) {
        if self.started {
            // SAFETY: the port was started and no worker polls it any more.
            unsafe {
                dpdk_sys::rte_eth_dev_stop(self.id);
            }
            self.started = false;
        }
    }

    pub fn id(&self) -> u16 {
        self.id
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn driver(&self) -> &str {
        &self.driver
    }
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }
    pub fn rx_queues(&self) -> u16 {
        self.rx_queues
    }
    pub fn tx_queues(&self) -> u16 {
        self.tx_queues
    }
    pub fn tx_checksum(&self) -> TxChecksumCaps {
        self.tx_checksum
    }
    pub fn rx_ipv4_checksum(&self) -> bool {
        self.rx_ipv4_checksum
    }
    pub fn rss(&self) -> bool {
        self.rss
    }

    pub fn stats(&self) -> PortStats {
        stats(self.id)
    }

    pub fn link(&self) -> LinkState {
        link(self.id)
    }

    /// The PMD's extended statistics, by name.
    pub fn xstats(&self) -> Vec<(String, u64)> {
        xstats(self.id)
    }

    /// A handle to poll rx queue `queue`; one lcore polls one queue.
    pub fn rx_queue(&self, queue: u16) -> Option<RxQueue> {
        (queue < self.rx_queues).then_some(RxQueue {
            port: self.id,
            queue,
        })
    }

    /// A handle to send on tx queue `queue`; one lcore sends on one queue.
    pub fn tx_queue(&self, queue: u16) -> Option<TxQueue> {
        (queue < self.tx_queues).then_some(TxQueue {
            port: self.id,
            queue,
        })
    }
}

/// Reads a port's basic counters by id (0s when the port is gone).
pub fn stats(id: u16) -> PortStats {
    let mut s = dpdk_sys::rte_eth_stats::default();
    // SAFETY: valid out pointer; an invalid id only returns an error.
    if unsafe { dpdk_sys::rte_eth_stats_get(id, &mut s) } != 0 {
        return PortStats::default();
    }
    PortStats {
        ipackets: s.ipackets,
        opackets: s.opackets,
        ibytes: s.ibytes,
        obytes: s.obytes,
        imissed: s.imissed,
        ierrors: s.ierrors,
        oerrors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
    }
}

/// Reads a port's link state by id without waiting for the link (down
/// when the port is gone).
pub fn link(id: u16) -> LinkState {
    let (mut speed, mut up) = (0u32, 0i32);
    // SAFETY: valid out pointers; the call does not wait for the link.
    let ret = unsafe { dpdk_sys::rvs_eth_link(id, &mut speed, &mut up) };
    if ret != 0 {
        return LinkState::default();
    }
    LinkState {
        up: up != 0,
        speed_mbps: speed,
    }
}

/// Reads a port's extended statistics by id, as (name, value) pairs in the
/// PMD's order (empty when the port is gone or offers none). It allocates,
/// so it is for control threads, never for a worker.
pub fn xstats(id: u16) -> Vec<(String, u64)> {
    // SAFETY: a NULL array of size 0 only asks how many names there are.
    let n = unsafe { dpdk_sys::rte_eth_xstats_get_names(id, std::ptr::null_mut(), 0) };
    let Ok(n) = usize::try_from(n) else {
        return Vec::new();
    };
    let mut names = vec![dpdk_sys::rte_eth_xstat_name::default(); n];
    // SAFETY: names holds n writable entries and the call writes at most n.
    let got = unsafe { dpdk_sys::rte_eth_xstats_get_names(id, names.as_mut_ptr(), n as u32) };
    // More names than asked for means the set grew in between (a port
    // reconfigured): give up on this read rather than mismatch ids.
    let Some(names) = usize::try_from(got).ok().and_then(|g| names.get(..g)) else {
        return Vec::new();
    };
    let mut values = vec![dpdk_sys::rte_eth_xstat::default(); names.len()];
    // SAFETY: values holds names.len() writable entries and the call writes
    // at most that many.
    let got = unsafe { dpdk_sys::rte_eth_xstats_get(id, values.as_mut_ptr(), values.len() as u32) };
    let Some(values) = usize::try_from(got).ok().and_then(|g| values.get(..g)) else {
        return Vec::new();
    };
    values
        .iter()
        .filter_map(|x| {
            let name = names.get(usize::try_from(x.id).ok()?)?;
            let bytes: Vec<u8> = name
                .name
                .iter()
                .take_while(|&&c| c != 0)
                .map(|&c| c as u8)
                .collect();
            Some((String::from_utf8_lossy(&bytes).into_owned(), x.value))
        })
        .collect()
}

impl Drop for Port {
    fn drop(&mut self) {
        self.stop();
        // SAFETY: the port is stopped; closing releases its queues and, for
        // vdevs, the device itself. No handle polls it any more.
        unsafe {
            dpdk_sys::rte_eth_dev_close(self.id);
        }
    }
}

/// The right to poll one rx queue. Not Clone: one poller per queue.
pub struct RxQueue {
    port: u16,
    queue: u16,
}

impl RxQueue {
    /// Receives up to `max` packets into the burst's free slots.
    #[inline]
    pub fn rx(&mut self, burst: &mut Burst, max: usize) -> usize {
        let spare = burst.spare(max);
        // SAFETY: spare is a writable array of spare.len() mbuf pointers; the
        // PMD writes at most that many and transfers their ownership to us.
        let n = unsafe {
            dpdk_sys::rvs_eth_rx_burst(
                self.port,
                self.queue,
                spare.as_mut_ptr(),
                spare.len() as u16,
            )
        } as usize;
        burst.filled(n);
        n
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn queue(&self) -> u16 {
        self.queue
    }
}

/// The right to transmit on one tx queue. Not Clone: one sender per queue.
pub struct TxQueue {
    port: u16,
    queue: u16,
}

impl TxQueue {
    /// Sends what the burst holds; returns how many went out. What the queue
    /// did not take stays in the burst for the caller to retry or drop.
    #[inline]
    pub fn tx(&mut self, burst: &mut Burst) -> usize {
        let pkts = burst.as_slice_mut();
        if pkts.is_empty() {
            return 0;
        }
        // SAFETY: pkts are owned, valid mbufs; the PMD takes ownership of the
        // first n it returns, which we then forget from the burst.
        let n = unsafe {
            dpdk_sys::rvs_eth_tx_burst(self.port, self.queue, pkts.as_mut_ptr(), pkts.len() as u16)
        } as usize;
        burst.consumed(n);
        n
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn queue(&self) -> u16 {
        self.queue
    }
}
