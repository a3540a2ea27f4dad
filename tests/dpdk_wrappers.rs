//! src/dpdk under a real EAL (no hugepages): mbufs behind the Packet seam,
//! rings between lcores, and launching work on a worker lcore. One EAL per
//! process, so this file holds one test.
use rvs::dpdk::{lcore, Burst, Eal, Mbuf, Mempool, Ring};
use rvs::packet::Packet;

#[test]
fn mbufs_rings_and_lcores_work_under_real_eal() {
    let args: Vec<String> = [
        "--no-huge",
        "--no-shconf",
        "--no-pci",
        "--no-telemetry",
        "-m",
        "128",
        "--lcores=0@0,1@0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let _eal = Eal::init("rvs-test", &args).expect("EAL");
    assert!(
        Eal::init("rvs-test", &args).is_err(),
        "a second init is refused, not a crash"
    );
    let pool = Mempool::new_pktmbuf("t_pool", 1023, 0, 2176, 0).expect("pool");
    assert_eq!(pool.in_use(), 0);

    // The Packet seam over an mbuf: bounds are DPDK's, failures leave it unchanged.
    let mut m = Mbuf::alloc(&pool).expect("mbuf");
    assert_eq!(pool.in_use(), 1);
    assert!(m.is_empty());
    let headroom = m.headroom();
    assert!(headroom >= 64, "RTE_PKTMBUF_HEADROOM");
    assert!(m.append(60));
    m.data_mut().copy_from_slice(&[7u8; 60]);
    assert!(m.prepend(14));
    assert_eq!((m.len(), m.pkt_len()), (74, 74));
    assert_eq!(m.headroom(), headroom - 14);
    m.data_mut()[..14].fill(1);
    assert!(!m.prepend(headroom));
    assert_eq!(
        (m.len(), m.pkt_len()),
        (74, 74),
        "a refused prepend changes nothing"
    );
    assert!(m.adj(14));
    assert_eq!(m.data(), &[7u8; 60][..]);
    assert!(!m.adj(61));
    assert!(m.trim(10));
    assert_eq!(m.len(), 50);
    assert_eq!(m.pkt_len(), 50, "the packet's length follows the segment's");
    assert!(!m.trim(51));
    assert_eq!(
        (m.len(), m.pkt_len()),
        (50, 50),
        "a refused trim changes nothing"
    );
    assert!(!m.append(m.tailroom() + 1));
    assert!(m.is_contiguous());
    m.set_rx_port(3);
    assert_eq!(m.rx_port(), 3);
    // The device's word on the IPv4 header checksum, in the mbuf's flags:
    // none from a fresh mbuf (no device checked it).
    assert_eq!(m.rx_ipv4_checksum(), None);
    for found in [Some(true), Some(false), None] {
        m.set_rx_ipv4_checksum(found);
        assert_eq!(m.rx_ipv4_checksum(), found);
    }
    drop(m);
    assert_eq!(pool.in_use(), 0, "dropping an Mbuf frees it");

    // A ring hands mbufs to another lcore, which sees their contents.
    let ring = std::sync::Arc::new(Ring::new("t_ring", 64, true, true).expect("ring"));
    let mut burst = Burst::default();
    for i in 0..40u8 {
        let mut m = Mbuf::alloc(&pool).expect("mbuf");
        assert!(m.append(1));
        m.data_mut()[0] = i;
        burst.push(m).map_err(|_| "burst full").unwrap();
    }
    assert_eq!(ring.enqueue(&mut burst), 40);
    assert!(burst.is_empty());
    assert_eq!(ring.count(), 40);
    let r = ring.clone();
    lcore::launch(1, move || {
        let mut b = Burst::default();
        let n = r.dequeue(&mut b, 64);
        let in_order = b.drain().enumerate().all(|(i, m)| m.data() == [i as u8]);
        if in_order {
            n as i32
        } else {
            -1
        }
    })
    .expect("launch on lcore 1");
    assert_eq!(
        lcore::wait(1),
        40,
        "the worker lcore got all 40 packets in order"
    );
    assert_eq!(ring.count(), 0);
    assert_eq!(pool.in_use(), 0);

    // A full ring keeps what it cannot take in the burst.
    let small = Ring::new("t_small", 4, true, true).expect("ring");
    for _ in 0..5 {
        burst
            .push(Mbuf::alloc(&pool).expect("mbuf"))
            .map_err(|_| "full")
            .unwrap();
    }
    assert_eq!(small.enqueue(&mut burst), 3, "a ring of 4 holds 3");
    assert_eq!(burst.len(), 2);
    drop(burst);
    drop(small);
    assert_eq!(pool.in_use(), 0, "bursts and rings free what they hold");
    assert!(
        lcore::launch(99, || 0).is_err(),
        "no such lcore: an error, not a crash"
    );
}
