//! The expected bytes here are worked out by hand from the kernel's
//! struct layout (ip_vs_sync.c), not produced by the encoder.
use super::*;

fn v4(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn entry(flags: u32) -> Entry<'static> {
    Entry {
        proto: 6,
        flags,
        state: 1,
        caddr: v4("203.0.113.2"),
        cport: 40000,
        vaddr: v4("198.18.0.100"),
        vport: 80,
        daddr: v4("198.19.0.11"),
        dport: 8080,
        fwmark: 0,
        timeout: 900,
        local: None,
        seq_adj: None,
        kernel_seq: false,
        pe_data: None,
        pe_name: None,
    }
}

/// A NAT conn, ESTABLISHED, 900 s: header, then one 36-byte entry.
const NAT_MSG: [u8; 44] = [
    // header: reserved 0, syncid 7, size 44, nr_conns 1, version 1, spare 0
    0x00, 0x07, 0x00, 0x2c, 0x01, 0x01, 0x00, 0x00,
    // type 0 (IPv4), protocol 6, version 0 | size 36
    0x00, 0x06, 0x00, 0x24, // flags: MASQ (0)
    0x00, 0x00, 0x00, 0x00, // state 1, cport 40000 (0x9c40)
    0x00, 0x01, 0x9c, 0x40, // vport 80, dport 8080 (0x1f90)
    0x00, 0x50, 0x1f, 0x90, // fwmark 0
    0x00, 0x00, 0x00, 0x00, // timeout 900 (0x384)
    0x00, 0x00, 0x03, 0x84, // caddr, vaddr, daddr
    203, 0, 113, 2, 198, 18, 0, 100, 198, 19, 0, 11,
];

#[test]
fn a_nat_conn_is_encoded_as_the_kernels_layout() {
    let mut b = MsgBuilder::new(7, 1472);
    assert!(b.is_empty());
    assert!(b.push(&entry(flags::MASQ)));
    assert_eq!(b.bytes(), &NAT_MSG[..]);
}

#[test]
fn a_fullnat_conn_carries_its_local_address_in_an_option_a_kernel_skips() {
    let mut e = entry(flags::FULLNAT | flags::INACTIVE);
    e.local = Some((v4("198.19.0.200"), 5001));
    let mut b = MsgBuilder::new(0, 1472);
    assert!(b.push(&e));
    let m = b.bytes();
    // size 8 + 36 + 2 + 6 = 52
    assert_eq!(&m[..8], &[0, 0, 0, 52, 1, 1, 0, 0]);
    // entry size 44; flags FULLNAT 5 | INACTIVE 0x100
    assert_eq!(&m[8..16], &[0, 6, 0, 44, 0, 0, 0x01, 0x05]);
    // option type 0x50 (IPVS_OPT_F_PARAM 0x40 | 0x10), length 6, address, port 5001
    assert_eq!(&m[44..], &[0x50, 6, 198, 19, 0, 200, 0x13, 0x89]);
    assert_ne!(OPT_RVS_LOCAL & OPT_F_PARAM, 0);
    let got: Vec<_> = Message::parse(m).unwrap().entries().collect();
    assert_eq!(got.len(), 1);
    let d = got[0].unwrap().unwrap();
    assert_eq!(d.local, Some((v4("198.19.0.200"), 5001)));
    assert_eq!(d.flags, flags::FULLNAT | flags::INACTIVE | flags::SYNC);
}

#[test]
fn a_sequence_adjustment_round_trips() {
    let mut e = entry(flags::MASQ);
    let adj = SeqAdj {
        ins_at: 0x1000_0001,
        ins_len: 107,
        ins_proto: ProxyProtocol::V2,
        s_delta: 0xdead_beef,
        ts_delta: 5,
        win_shift: -2,
    };
    e.seq_adj = Some(adj);
    let mut b = MsgBuilder::new(0, 1472);
    assert!(b.push(&e));
    let m = b.bytes();
    assert_eq!(m.len(), 8 + 36 + 20);
    assert_eq!(
        &m[44..],
        &[0x51, 18, 0x10, 0, 0, 1, 0, 0, 0, 107, 2, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 5, 0xfe]
    );
    let d = Message::parse(m).unwrap().entries().next().unwrap();
    assert_eq!(d.unwrap().unwrap().seq_adj, Some(adj));
}

#[test]
fn an_ipv6_entry_is_72_bytes_and_messages_stop_at_maxlen() {
    let mut e = entry(flags::DROUTE);
    e.caddr = "2001:db8::2".parse().unwrap();
    e.vaddr = "2001:db8::100".parse().unwrap();
    e.daddr = "2001:db8::11".parse().unwrap();
    let mut b = MsgBuilder::new(0, 8 + 72 * 3);
    for _ in 0..3 {
        assert!(b.push(&e));
    }
    assert!(!b.push(&e), "a fourth does not fit in 8 + 3 * 72");
    let m = b.bytes();
    assert_eq!(m.len(), 8 + 72 * 3);
    assert_eq!(&m[8..12], &[1, 6, 0, 72]);
    assert_eq!(&m[32..48], &e.caddr_octets());
    b.reset(3);
    assert!(b.is_empty());
    assert_eq!(b.bytes(), &[0, 3, 0, 8, 0, 1, 0, 0]);
}

impl Entry<'_> {
    fn caddr_octets(&self) -> [u8; 16] {
        match self.caddr {
            IpAddr::V6(a) => a.octets(),
            IpAddr::V4(_) => [0; 16],
        }
    }
}

/// A message as a kernel master writes it: a template (persistent
/// service, timeout 360 s), a conn with the kernel's SEQ_DATA and an
/// unknown optional option, a conn with an unknown mandatory option, and
/// a last plain UDP conn. Entries whose size is not a multiple of 4 are
/// padded.
fn kernel_message() -> Vec<u8> {
    let mut m = vec![0, 9, 0, 0, 4, 1, 0, 0];
    let fixed =
        |m: &mut Vec<u8>, proto: u8, size: u16, flags: u32, state: u16, ports: [u16; 3], t: u32| {
            m.extend_from_slice(&[0, proto]);
            m.extend_from_slice(&size.to_be_bytes());
            m.extend_from_slice(&flags.to_be_bytes());
            m.extend_from_slice(&state.to_be_bytes());
            for p in ports {
                m.extend_from_slice(&p.to_be_bytes());
            }
            m.extend_from_slice(&0u32.to_be_bytes());
            m.extend_from_slice(&t.to_be_bytes());
            m.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 100, 10, 1, 0, 5]);
        };
    // 1: template, TCP, caddr 10.0.0.1 port 0, flags TEMPLATE|DROUTE|HASHED
    fixed(&mut m, 6, 36, 0x1000 | 3 | 0x40, 1, [0, 80, 80], 360);
    // 2: conn with SEQ_DATA (24 bytes) and an optional unknown option
    //    (type 0x40|9, 3 bytes): 36 + 26 + 5 = 67, padded to 68.
    fixed(&mut m, 6, 67, 0x0600, 1, [1234, 80, 80], 900);
    m.extend_from_slice(&[1, 24]);
    m.extend_from_slice(&[0xaa; 24]);
    m.extend_from_slice(&[0x49, 3, 1, 2, 3]);
    m.push(0);
    // 3: conn with a mandatory unknown option (type 9, 4 bytes): dropped.
    fixed(&mut m, 6, 42, 0, 1, [1235, 80, 80], 900);
    m.extend_from_slice(&[9, 4, 0, 0, 0, 0]);
    m.extend_from_slice(&[0, 0]);
    // 4: UDP conn, flags INACTIVE.
    fixed(&mut m, 17, 36, 0x100, 0, [53, 53, 53], 300);
    let len = m.len() as u16;
    m[2..4].copy_from_slice(&len.to_be_bytes());
    m
}

#[test]
fn a_kernel_message_is_read_entry_by_entry() {
    let m = kernel_message();
    let msg = Message::parse(&m).unwrap();
    assert_eq!((msg.syncid(), msg.nr_conns()), (9, 4));
    let got: Vec<_> = msg.entries().collect();
    assert_eq!(got.len(), 4);
    let t = got[0].unwrap().unwrap();
    assert!(t.is_template());
    // HASHED is not a backup's to take; SYNC is added.
    assert_eq!(t.flags, flags::TEMPLATE | flags::DROUTE | flags::SYNC);
    assert_eq!((t.cport, t.vport, t.timeout), (0, 80, 360));
    assert_eq!(t.caddr, v4("10.0.0.1"));
    assert_eq!(t.daddr, v4("10.1.0.5"));
    let c = got[1].unwrap().unwrap();
    assert!(c.kernel_seq, "SEQ_DATA read");
    assert_eq!((c.cport, c.timeout), (1234, 900));
    assert_eq!(got[2], Ok(Err(EntrySkip::MandatoryOption(9))));
    let u = got[3].unwrap().unwrap();
    assert_eq!((u.proto, u.cport, u.state, u.timeout), (17, 53, 0, 300));
    assert_eq!(u.flags, flags::INACTIVE | flags::SYNC);
}

#[test]
fn broken_messages_are_refused_as_the_kernel_refuses_them() {
    let m = kernel_message();
    // The size field must be the datagram's length.
    assert_eq!(
        Message::parse(&m[..m.len() - 1]).unwrap_err(),
        MsgError::BadSize
    );
    assert_eq!(Message::parse(&[0, 0, 0]).unwrap_err(), MsgError::BadSize);
    // Version 0 (reserved byte = nr_conns).
    let mut v0 = m.clone();
    v0[0] = 4;
    assert_eq!(Message::parse(&v0).unwrap_err(), MsgError::NotVersion1);
    // An entry whose size runs past the message ends it.
    let mut long = m.clone();
    long[8 + 3] = 200;
    let got: Vec<_> = Message::parse(&long).unwrap().entries().collect();
    assert_eq!(got, vec![Err(MsgError::BadEntry)]);
    // So does an entry too short for its fixed part, down to size 0 (a
    // fuzzer's find: size 0 once read the type of an empty entry).
    for size in [0u8, 4, 35] {
        let mut short = m.clone();
        short[8 + 3] = size;
        let got: Vec<_> = Message::parse(&short).unwrap().entries().collect();
        assert_eq!(got, vec![Err(MsgError::BadEntry)], "size {size}");
    }
    // An option of length 0 ends it too, after the entries before it.
    let mut zero = m.clone();
    zero[8 + 36 + 36 + 1] = 0;
    let got: Vec<_> = Message::parse(&zero).unwrap().entries().collect();
    assert_eq!(got.len(), 2);
    assert!(got[0].is_ok());
    assert_eq!(got[1], Err(MsgError::BadEntry));
    // A state past TCP's last is skipped; the rest is read.
    let mut state = m.clone();
    state[8 + 36 + 9] = 11;
    let got: Vec<_> = Message::parse(&state).unwrap().entries().collect();
    assert_eq!(got[1], Ok(Err(EntrySkip::State(11))));
    assert!(got[3].unwrap().is_ok());
    // An unknown type byte ends it.
    let mut ty = m.clone();
    ty[8] = 2;
    let got: Vec<_> = Message::parse(&ty).unwrap().entries().collect();
    assert_eq!(got, vec![Err(MsgError::BadEntry)]);
    // nr_conns past what is there.
    let mut more = m;
    more[4] = 5;
    let got: Vec<_> = Message::parse(&more).unwrap().entries().collect();
    assert_eq!(got.last(), Some(&Err(MsgError::BadEntry)));
}
