//! ipvsadm 1.31's output, byte for byte: `-L` in all its views, `-S`,
//! `-c`, `--timeout` and `--daemon`.
//!
//! Scripts parse these listings, so every width, trailing space and
//! truncation is ipvsadm.c's (`list_all`, `list_service`, `print_title`,
//! `print_service_entry`, `print_largenum`, `print_conn`, `list_conn`,
//! `list_timeout`, `list_daemon`) and the sort order is libipvs's
//! (`ipvs_cmp_services`, `ipvs_cmp_dests` under glibc's merge-sort
//! `qsort`). ../shared/ipvs-reference.md §2 summarises them.
//!
//! Names: without `-n`, addresses and ports are looked up through a
//! [`Names`] (the engine passes the host's, [`super::names::System`]),
//! and the `addr:port` text is cut to the 59 bytes of ipvsadm's
//! `addrport_to_anyname` buffer.
//!
//! DPVS's additions follow DPVS's tools/ipvsadm: FULLNAT dests are
//! `FullNat` in the Forward column and `-b` in `-S`; its service words
//! ` synproxy` and ` pp<version>` follow ` ops`.
use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::grammar::{
    DaemonConfig, ListOptions, ListView, ProxyProtocol, ServiceExtras, SyncState, Tunnel,
    TunnelCsum,
};
use super::names::Names;
use crate::ipvs::{Dest, FwdMethod, Netmask, Protocol, SchedFlags, Service, ServiceKey};

/// IP_VS_VERSION_CODE 0x010201, as NVERSION prints it.
const IPVS_VERSION: &str = "1.2.1";
const AF_INET: i32 = 2;
const AF_INET6: i32 = 10;
/// What libipvs hands back as a fwmark service's protocol: 0 (ipvsadm's
/// `-f` stores TCP, but the kernel's netlink reply leaves the field out),
/// so fwmark services sort alike and their real servers' ports print as
/// numbers even without `-n` (port_to_anyname names none for protocol 0).
const FWMARK_PROTOCOL: u8 = 0;
/// `svc_name[33] = '\0'` and `dname[28] = '\0'` for non-IPv6 names.
const SVC_NAME_MAX: usize = 33;
/// addrport_to_anyname's `snprintf(buf, 60, ...)`.
const ADDRPORT_MAX: usize = 59;
const DEST_NAME_MAX: usize = 28;

/// A listing ipvsadm refuses, with its stderr line and exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatError {
    /// `-L -t VIP:port` of a service that does not exist: libipvs's
    /// ipvs_strerror text for ESRCH from ipvs_get_service; list_service
    /// then exits 1.
    NoSuchService,
}

impl FormatError {
    pub fn exit_code(self) -> i32 {
        match self {
            FormatError::NoSuchService => 1,
        }
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::NoSuchService => f.write_str("No such service"),
        }
    }
}

impl std::error::Error for FormatError {}

/// What a listing shows that [`Service`] and [`Dest`] do not carry: the
/// encapsulation of `-i` dests and DPVS's service extras, which the
/// management plane keeps beside the table.
pub trait Annotations {
    /// The tunnel of a dest that forwards by [`FwdMethod::Tunnel`]: by
    /// default the one the dest carries. None prints as ipip, the kernel's
    /// default tun_type 0.
    fn tunnel(&self, _service: &ServiceKey, dest: &Dest) -> Option<Tunnel> {
        Some(dest.tunnel())
    }

    fn extras(&self, _service: &ServiceKey) -> ServiceExtras {
        ServiceExtras::default()
    }
}

/// The dests' own tunnels and no extras.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAnnotations;

impl Annotations for NoAnnotations {}

/// One row of `-c`, as the workers read it off their tables.
pub use crate::ipvs::ConnRow;

/// `write!` into a String cannot fail.
macro_rules! out {
    ($s:expr, $($arg:tt)*) => {{
        let _ = write!($s, $($arg)*);
    }};
}

/// `%-Ns`: C pads to N bytes, which differs from `{:<N}` (characters)
/// only for non-ASCII text such as a PE's data.
fn left(s: &mut String, text: &str, width: usize) {
    s.push_str(text);
    s.extend(std::iter::repeat_n(' ', width.saturating_sub(text.len())));
}

/// A C string cut at byte `max`, kept on a character boundary.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// glibc's inet_ntop for IPv6, which differs from Rust's Display in
/// writing IPv4-compatible addresses (`::a.b.c.d`) in dotted form.
fn ntop6(a: Ipv6Addr) -> String {
    let w = a.segments();
    let (mut best, mut best_len) = (None, 0);
    let mut i = 0;
    while i < 8 {
        if w[i] == 0 {
            let start = i;
            while i < 8 && w[i] == 0 {
                i += 1;
            }
            if i - start > best_len {
                best = Some(start);
                best_len = i - start;
            }
        } else {
            i += 1;
        }
    }
    if best_len < 2 {
        best = None;
    }
    let mut s = String::new();
    for (i, word) in w.iter().enumerate() {
        if let Some(b) = best {
            if (b..b + best_len).contains(&i) {
                if i == b {
                    s.push(':');
                }
                continue;
            }
        }
        if i != 0 {
            s.push(':');
        }
        if i == 6 && best == Some(0) && (best_len == 6 || (best_len == 5 && w[5] == 0xffff)) {
            let o = a.octets();
            out!(s, "{}", Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            break;
        }
        out!(s, "{word:x}");
    }
    if best.is_some_and(|b| b + best_len == 8) {
        s.push(':');
    }
    s
}

fn ntop(a: IpAddr) -> String {
    match a {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => ntop6(v6),
    }
}

/// addrport_to_anyname: `a.b.c.d:port` or `[v6]:port`, named by `names`
/// unless numeric, in ipvsadm's 60-byte buffer. Protocol 0 (a fwmark
/// service's, or a template's "IP") names no port.
fn addrport(addr: IpAddr, port: u16, proto: u8, names: Option<&dyn Names>) -> String {
    let (host, port) = match names {
        None => (ntop(addr), port.to_string()),
        Some(n) => (
            n.host_name(addr).unwrap_or_else(|| ntop(addr)),
            Protocol::from_number(proto)
                .and_then(|p| n.port_name(port, p))
                .unwrap_or_else(|| port.to_string()),
        ),
    };
    let text = match addr {
        IpAddr::V4(_) => format!("{host}:{port}"),
        IpAddr::V6(_) => format!("[{host}]:{port}"),
    };
    cut(text, ADDRPORT_MAX)
}

/// print_largenum: at most 9 columns, with K/M/G/T past 10^8, or the
/// whole number with `--exact`.
fn largenum(s: &mut String, i: u64, exact: bool) {
    if exact {
        let len = i.to_string().len();
        let width = if len <= 8 { 9 } else { len + 1 };
        out!(s, "{i:>width$}");
    } else if i < 100_000_000 {
        out!(s, "{i:>9}");
    } else if i < 1_000_000_000 {
        out!(s, "{:>8}K", i / 1_000);
    } else if i < 100_000_000_000 {
        out!(s, "{:>8}M", i / 1_000_000);
    } else if i < 100_000_000_000_000 {
        out!(s, "{:>8}G", i / 1_000_000_000);
    } else {
        out!(s, "{:>8}T", i / 1_000_000_000_000);
    }
}

/// What a service is, in the terms libipvs sorts and ipvsadm prints by.
struct SvcFacts {
    fwmark: u32,
    af: i32,
    proto: u8,
    addr: IpAddr,
    port: u16,
}

impl SvcFacts {
    fn of(key: &ServiceKey) -> SvcFacts {
        match *key {
            ServiceKey::Addr { proto, addr, port } => SvcFacts {
                fwmark: 0,
                af: if addr.is_ipv6() { AF_INET6 } else { AF_INET },
                proto: proto.number(),
                addr,
                port,
            },
            ServiceKey::Fwmark { mark, ipv6 } => SvcFacts {
                fwmark: mark,
                af: if ipv6 { AF_INET6 } else { AF_INET },
                proto: FWMARK_PROTOCOL,
                addr: if ipv6 {
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                } else {
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                },
                port: 0,
            },
        }
    }
}

/// An address as union nf_inet_addr's four host-order words: IPv4 in the
/// first, the rest zero.
fn words(a: IpAddr) -> [u32; 4] {
    match a {
        IpAddr::V4(v4) => [u32::from(v4), 0, 0, 0],
        IpAddr::V6(v6) => {
            let o = v6.octets();
            let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            [w(0), w(4), w(8), w(12)]
        }
    }
}

/// The C `int r = a - b` of two unsigned ints: wraps once they are 2^31
/// or more apart, so 10.0.0.1 sorts after 200.0.0.1.
fn int_sub(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// libipvs compares addresses by the first operand's family only; an
/// IPv4 address meets an IPv6 one word by word.
fn cmp_addr(ipv6: bool, a: IpAddr, b: IpAddr) -> i32 {
    let (wa, wb) = (words(a), words(b));
    if ipv6 {
        wa.iter()
            .zip(wb.iter())
            .map(|(x, y)| int_sub(*x, *y))
            .find(|r| *r != 0)
            .unwrap_or(0)
    } else {
        int_sub(wa[0], wb[0])
    }
}

/// ipvs_cmp_services.
fn cmp_services(a: &Service, b: &Service) -> i32 {
    let (a, b) = (SvcFacts::of(&a.key()), SvcFacts::of(&b.key()));
    let r = int_sub(a.fwmark, b.fwmark);
    if r != 0 {
        return r;
    }
    let r = a.af - b.af;
    if r != 0 {
        return r;
    }
    let r = i32::from(a.proto) - i32::from(b.proto);
    if r != 0 {
        return r;
    }
    let r = cmp_addr(a.af == AF_INET6, a.addr, b.addr);
    if r != 0 {
        return r;
    }
    i32::from(a.port) - i32::from(b.port)
}

/// ipvs_cmp_dests.
fn cmp_dests(a: &Dest, b: &Dest) -> i32 {
    let r = cmp_addr(a.addr().is_ipv6(), a.addr(), b.addr());
    if r != 0 {
        return r;
    }
    i32::from(a.port()) - i32::from(b.port())
}

/// glibc's qsort (msort_with_tmp): top-down merge sort, the first half
/// the smaller, the left element taken on `cmp <= 0`. The comparators
/// above are not transitive across the wrap, so only this exact algorithm
/// gives ipvsadm's order for such tables.
fn glibc_qsort<T: Clone>(v: &mut [T], cmp: &dyn Fn(&T, &T) -> i32) {
    let n = v.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    glibc_qsort(&mut v[..n1], cmp);
    glibc_qsort(&mut v[n1..], cmp);
    let mut merged = Vec::with_capacity(n);
    let (mut i, mut j) = (0, n1);
    while i < n1 && j < n {
        if cmp(&v[i], &v[j]) <= 0 {
            merged.push(v[i].clone());
            i += 1;
        } else {
            merged.push(v[j].clone());
            j += 1;
        }
    }
    merged.extend_from_slice(&v[i..n1]);
    merged.extend_from_slice(&v[j..]);
    v.clone_from_slice(&merged);
}

fn sched_flags(scheduler: &str, flags: SchedFlags) -> String {
    let names: [&str; 3] = match scheduler {
        "sh" => ["sh-fallback", "sh-port", ""],
        "mh" => ["mh-fallback", "mh-port", ""],
        _ => ["flag-1", "flag-2", "flag-3"],
    };
    let bits = [SchedFlags::SCHED1, SchedFlags::SCHED2, SchedFlags::SCHED3];
    names
        .iter()
        .zip(bits)
        .filter(|(name, bit)| !name.is_empty() && flags.0 & bit != 0)
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(",")
}

/// The mask text ipvsadm prints after `mask`/`-M`, if it prints one. It
/// reads the service's raw netmask by the service's family; a mask of the
/// other family (which the grammar never makes) reads as it would on
/// x86-64.
fn netmask_text(af: i32, mask: Netmask) -> Option<String> {
    let raw = match mask {
        // The kernel's __be32, as libipvs's native int holds it.
        Netmask::V4(m) => u32::from_le_bytes(m.to_be_bytes()),
        Netmask::V6(len) => u32::from(len),
    };
    if af == AF_INET6 {
        (raw != 128).then(|| (raw as i32).to_string())
    } else {
        (raw != u32::MAX).then(|| Ipv4Addr::from(raw.to_le_bytes()).to_string())
    }
}

fn proxy_protocol_name(p: ProxyProtocol) -> &'static str {
    match p {
        ProxyProtocol::Disable => "disable",
        ProxyProtocol::V1 => "v1",
        ProxyProtocol::V2 => "v2",
        ProxyProtocol::V1Insecure => "v1-insecure",
        ProxyProtocol::V2Insecure => "v2-insecure",
    }
}

const TUN_FLAGS_SHORT: [&str; 3] = ["-c", "+c", "r+c"];
const TUN_FLAGS_OPTS: [&str; 3] = ["--tun-nocsum", "--tun-csum", "--tun-remcsum"];

fn csum_index(c: TunnelCsum) -> usize {
    match c {
        TunnelCsum::NoCsum => 0,
        TunnelCsum::Csum => 1,
        TunnelCsum::RemCsum => 2,
    }
}

/// fwd_tun_info: the TunnelInfo column, None for other methods.
fn tun_info(fwd: FwdMethod, tunnel: Option<Tunnel>) -> Option<String> {
    if fwd != FwdMethod::Tunnel {
        return None;
    }
    Some(match tunnel.unwrap_or(Tunnel::Ipip) {
        Tunnel::Ipip => "ipip".to_string(),
        Tunnel::Gue { port, csum } => format!("gue:{port}:{}", TUN_FLAGS_SHORT[csum_index(csum)]),
        Tunnel::Gre { csum } => format!("gre:{}", TUN_FLAGS_SHORT[csum_index(csum)]),
    })
}

/// What print_service_entry prints, and how.
#[derive(Clone, Copy)]
struct Format<'a> {
    /// None: `-n`.
    names: Option<&'a dyn Names>,
    rule: bool,
    view: ListView,
    exact: bool,
    nosort: bool,
}

/// print_title.
fn title(s: &mut String, view: ListView) {
    let head = "Prot LocalAddress:Port";
    let dest = "  -> RemoteAddress:Port";
    match view {
        ListView::Stats | ListView::Rate => {
            let cols = if view == ListView::Stats {
                ["Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"]
            } else {
                ["CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"]
            };
            left(s, head, 33);
            for c in cols {
                out!(s, " {c:>8}");
            }
            out!(s, "\n{dest}\n");
        }
        ListView::Thresholds => {
            left(s, head, 33);
            for c in ["Uthreshold", "Lthreshold", "ActiveConn", "InActConn"] {
                s.push(' ');
                left(s, c, 10);
            }
            out!(s, "\n{dest}\n");
        }
        ListView::PersistentConn => {
            left(s, head, 33);
            for (c, w) in [
                ("Weight", 9),
                ("PersistConn", 11),
                ("ActiveConn", 10),
                ("InActConn", 10),
            ] {
                s.push(' ');
                left(s, c, w);
            }
            out!(s, "\n{dest}\n");
        }
        ListView::TunInfo => s.push_str(
            "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n",
        ),
        ListView::Default => s.push_str(
            "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        ),
    }
}

/// The service's name as the listing (`TCP  a:p`, `FWM  n`) or `-S`
/// (`-t a:p`, `-f n`) writes it.
fn service_name(key: &ServiceKey, f: Format<'_>) -> String {
    let facts = SvcFacts::of(key);
    match *key {
        ServiceKey::Fwmark { mark, ipv6 } => match (f.rule, ipv6) {
            (true, false) => format!("-f {mark}"),
            (true, true) => format!("-f {mark} -6"),
            (false, false) => format!("FWM  {mark}"),
            (false, true) => format!("FWM  {mark} IPv6"),
        },
        ServiceKey::Addr { proto, addr, port } => {
            let vname = addrport(addr, port, facts.proto, f.names);
            if f.rule {
                let opt = match proto {
                    Protocol::Tcp => "-t",
                    Protocol::Udp => "-u",
                    Protocol::Sctp => "--sctp-service",
                };
                format!("{opt} {vname}")
            } else {
                let mut name = String::new();
                left(&mut name, proto.name(), 4);
                out!(name, " {vname}");
                if addr.is_ipv6() {
                    name
                } else {
                    cut(name, SVC_NAME_MAX)
                }
            }
        }
    }
}

/// print_service_entry: the service line and its dests.
fn service_entry(s: &mut String, svc: &Service, f: Format<'_>, notes: &dyn Annotations) {
    let key = svc.key();
    let cfg = &svc.config;
    let facts = SvcFacts::of(&key);
    let name = service_name(&key, f);
    let flags = sched_flags(&cfg.scheduler, cfg.sched_flags);
    let extras = ServiceExtras {
        proxy_protocol: cfg.proxy_protocol,
        synproxy: svc.synproxy() || notes.extras(&key).synproxy,
    };
    if f.rule {
        out!(s, "-A {name} -s {}", cfg.scheduler);
        if let Some(timeout) = cfg.persistent {
            out!(s, " -p {timeout}");
            if let Some(mask) = netmask_text(facts.af, cfg.netmask) {
                out!(s, " -M {mask}");
            }
        }
        if let Some(pe) = cfg.pe.as_deref().filter(|pe| !pe.is_empty()) {
            out!(s, " --pe {pe}");
        }
        if cfg.one_packet {
            s.push_str(" -o");
        }
        if cfg.sched_flags.0 & SchedFlags::ALL != 0 {
            out!(s, " -b {flags}");
        }
        // DPVS's save drops these; rvs writes them in its grammar so that
        // a restore keeps them.
        if extras.synproxy {
            s.push_str(" -j enable");
        }
        if extras.proxy_protocol != ProxyProtocol::Disable {
            out!(
                s,
                " --proxy-protocol {}",
                proxy_protocol_name(extras.proxy_protocol)
            );
        }
    } else if matches!(f.view, ListView::Stats | ListView::Rate) {
        left(s, &name, 33);
        let v = if f.view == ListView::Stats {
            let st = svc.stats.snapshot();
            [st.conns, st.inpkts, st.outpkts, st.inbytes, st.outbytes]
        } else {
            let r = svc.stats.rates();
            [r.cps, r.inpps, r.outpps, r.inbps, r.outbps]
        };
        for x in v {
            largenum(s, x, f.exact);
        }
    } else {
        out!(s, "{name} {}", cfg.scheduler);
        if !flags.is_empty() {
            out!(s, " ({flags})");
        } else if cfg.sched_flags.0 & SchedFlags::ALL != 0 {
            // ipvsadm prints the parentheses whenever a bit is set, even
            // when the scheduler gives that bit no name (sh's flag-3).
            s.push_str(" ()");
        }
        if let Some(timeout) = cfg.persistent {
            out!(s, " persistent {timeout}");
            if let Some(mask) = netmask_text(facts.af, cfg.netmask) {
                out!(s, " mask {mask}");
            }
            if let Some(pe) = cfg.pe.as_deref().filter(|pe| !pe.is_empty()) {
                out!(s, " pe {pe}");
            }
        }
        if cfg.one_packet {
            s.push_str(" ops");
        }
        if extras.synproxy {
            s.push_str(" synproxy");
        }
        if extras.proxy_protocol != ProxyProtocol::Disable {
            out!(s, " pp{}", proxy_protocol_name(extras.proxy_protocol));
        }
    }
    s.push('\n');

    // -S saves what the operator configured: real servers a health check
    // took out included, the sorry server not (its own line restores it).
    let mut dests: Vec<&Arc<Dest>> = if f.rule {
        svc.configured_dests().collect()
    } else {
        svc.dests().iter().collect()
    };
    if !f.nosort {
        glibc_qsort(&mut dests, &|a: &&Arc<Dest>, b: &&Arc<Dest>| {
            cmp_dests(a, b)
        });
    }
    for d in dests {
        dest_entry(s, &key, &name, facts.proto, d, f, notes);
    }
}

fn dest_entry(
    s: &mut String,
    key: &ServiceKey,
    svc_name: &str,
    proto: u8,
    d: &Dest,
    f: Format<'_>,
    notes: &dyn Annotations,
) {
    let dname = addrport(d.addr(), d.port(), proto, f.names);
    let fwd = d.fwd();
    if f.rule {
        out!(
            s,
            "-a {svc_name} -r {dname} {} -w {}",
            fwd.switch(),
            d.admin_weight()
        );
        if fwd == FwdMethod::Tunnel {
            match notes.tunnel(key, d).unwrap_or(Tunnel::Ipip) {
                Tunnel::Ipip => s.push_str(" --tun-type ipip"),
                Tunnel::Gue { port, csum } => out!(
                    s,
                    " --tun-type gue --tun-port {port} {}",
                    TUN_FLAGS_OPTS[csum_index(csum)]
                ),
                Tunnel::Gre { csum } => {
                    out!(s, " --tun-type gre {}", TUN_FLAGS_OPTS[csum_index(csum)])
                }
            }
        }
        s.push('\n');
        return;
    }
    let dname = if d.addr().is_ipv6() {
        dname
    } else {
        cut(dname, DEST_NAME_MAX)
    };
    s.push_str("  -> ");
    left(s, &dname, 28);
    match f.view {
        ListView::Stats => {
            let st = d.stats.snapshot();
            for x in [st.conns, st.inpkts, st.outpkts, st.inbytes, st.outbytes] {
                largenum(s, x, f.exact);
            }
        }
        ListView::Rate => {
            // The packet and connection rates of a dest skip
            // print_largenum; only its byte rates go through it.
            let r = d.stats.rates();
            out!(s, " {:>8} {:>8} {:>8}", r.cps, r.inpps, r.outpps);
            largenum(s, r.inbps, f.exact);
            largenum(s, r.outbps, f.exact);
        }
        ListView::Thresholds => out!(
            s,
            " {:<10} {:<10} {:<10} {:<10}",
            d.u_threshold(),
            d.l_threshold(),
            d.activeconns(),
            d.inactconns()
        ),
        ListView::PersistentConn => out!(
            s,
            " {:<9} {:<11} {:<10} {:<10}",
            d.weight(),
            d.persistconns(),
            d.activeconns(),
            d.inactconns()
        ),
        ListView::TunInfo => {
            s.push(' ');
            left(s, fwd.name(), 7);
            s.push(' ');
            let info = tun_info(fwd, notes.tunnel(key, d));
            left(s, info.as_deref().unwrap_or("n/a"), 13);
            out!(
                s,
                " {:<6} {:<10} {:<10}",
                d.weight(),
                d.activeconns(),
                d.inactconns()
            );
        }
        ListView::Default => {
            s.push(' ');
            left(s, fwd.name(), 7);
            out!(
                s,
                " {:<6} {:<10} {:<10}",
                d.weight(),
                d.activeconns(),
                d.inactconns()
            );
        }
    }
    s.push('\n');
}

/// Services in libipvs's order, or as given (the table's order, which
/// stands for the kernel's) with `--nosort`.
fn sorted(services: &[Arc<Service>], nosort: bool) -> Vec<&Arc<Service>> {
    let mut v: Vec<&Arc<Service>> = services.iter().collect();
    if !nosort {
        glibc_qsort(&mut v, &|a: &&Arc<Service>, b: &&Arc<Service>| {
            cmp_services(a, b)
        });
    }
    v
}

/// `-L` (or a bare `ipvsadm`) over the service table: list_all, or
/// list_service for `-L -t|-u|-f ...`. `-c`, `--timeout` and `--daemon`
/// are [`conns`], [`timeouts`] and [`daemons`]; the caller picks one in
/// ipvsadm's order (connections, service, timeout, daemon, all) and
/// ignores those flags here. `table_size` is the connection table's
/// bucket count, the header's `size=`.
pub fn list(
    services: &[Arc<Service>],
    opts: &ListOptions,
    table_size: u32,
    names: &dyn Names,
) -> Result<String, FormatError> {
    list_with(services, opts, table_size, &NoAnnotations, names)
}

/// [`list`], with the tunnels and extras the table keeps elsewhere.
pub fn list_with(
    services: &[Arc<Service>],
    opts: &ListOptions,
    table_size: u32,
    notes: &dyn Annotations,
    names: &dyn Names,
) -> Result<String, FormatError> {
    let f = Format {
        names: (!opts.numeric).then_some(names),
        rule: false,
        view: opts.view,
        exact: opts.exact,
        nosort: opts.nosort,
    };
    let mut s = String::new();
    match opts.service {
        Some(key) => {
            let svc = services
                .iter()
                .find(|svc| svc.key() == key)
                .ok_or(FormatError::NoSuchService)?;
            title(&mut s, f.view);
            service_entry(&mut s, svc, f, notes);
        }
        None => {
            out!(
                s,
                "IP Virtual Server version {IPVS_VERSION} (size={table_size})\n"
            );
            title(&mut s, f.view);
            for svc in sorted(services, opts.nosort) {
                service_entry(&mut s, svc, f, notes);
            }
        }
    }
    Ok(s)
}

/// `-S [-n]`: the table as `-A`/`-a` lines `-R` reads back, in the
/// listing's order, without thresholds (ipvsadm does not save them).
pub fn save(services: &[Arc<Service>], numeric: bool, names: &dyn Names) -> String {
    save_with(services, numeric, &NoAnnotations, names)
}

/// [`save`], with the tunnels and extras the table keeps elsewhere.
pub fn save_with(
    services: &[Arc<Service>],
    numeric: bool,
    notes: &dyn Annotations,
    names: &dyn Names,
) -> String {
    let f = Format {
        names: (!numeric).then_some(names),
        rule: true,
        view: ListView::Default,
        exact: false,
        nosort: false,
    };
    let mut s = String::new();
    for svc in sorted(services, false) {
        service_entry(&mut s, svc, f, notes);
    }
    s
}

/// `--timeout`.
pub fn timeouts(tcp: u32, tcpfin: u32, udp: u32) -> String {
    format!("Timeout (tcp tcpfin udp): {tcp} {tcpfin} {udp}\n")
}

/// `--daemon`: one line per running sync daemon, master first; nothing
/// when none runs (rvs has none yet).
pub fn daemons(daemons: &[DaemonConfig]) -> String {
    let mut s = String::new();
    for state in [SyncState::Master, SyncState::Backup] {
        for d in daemons.iter().filter(|d| d.state == state) {
            let kind = match state {
                SyncState::Master => "master",
                SyncState::Backup => "backup",
            };
            out!(
                s,
                "{kind} sync daemon (mcast={}, syncid={}",
                d.mcast_interface,
                d.syncid
            );
            if let Some(maxlen) = d.sync_maxlen.filter(|m| *m != 0) {
                out!(s, ", maxlen={maxlen}");
            }
            if let Some(group) = d.mcast_group {
                out!(s, ", group={}", ntop(group));
            }
            if let Some(port) = d.mcast_port.filter(|p| *p != 0) {
                out!(s, ", port={port}");
            }
            if let Some(ttl) = d.mcast_ttl.filter(|t| *t != 0) {
                out!(s, ", ttl={ttl}");
            }
            s.push_str(")\n");
        }
    }
    s
}

/// The protocol number print_conn gives getservbyport.
fn conn_proto(name: &str) -> u8 {
    match name {
        "TCP" => 6,
        "UDP" => 17,
        "SCTP" => 132,
        _ => 0,
    }
}

/// The first word of a text, as ipvsadm's sscanf `%s` reads it back from
/// /proc/net/ip_vs_conn.
fn first_word(text: &str) -> &str {
    text.split_ascii_whitespace().next().unwrap_or("")
}

/// `-c` (list_conn): the header and one line per connection, expiry as
/// mm:ss. With `--persistent-conn`, rows with PE data add its name and
/// data. FULLNAT rows add their local address between the virtual and the
/// destination column as DPVS's `-lnc` places it (`%-18s`); DPVS's other
/// differences (its lcore prefix, lower-case protocol, seconds expiry and
/// missing header) are not taken, so the other rows and the header stay
/// ipvsadm's.
pub fn conns(rows: &[ConnRow], opts: &ListOptions, names: &dyn Names) -> String {
    let mut s = conns_title(opts);
    s.push_str(&conn_lines(rows, opts, names));
    s
}

/// The title lines of [`conns`].
pub fn conns_title(opts: &ListOptions) -> String {
    let persistent = opts.view == ListView::PersistentConn;
    let mut s = String::from("IPVS connection entries\n");
    s.push_str("pro expire ");
    left(&mut s, "state", 11);
    s.push(' ');
    left(&mut s, "source", 18);
    s.push(' ');
    left(&mut s, "virtual", 18);
    s.push(' ');
    if persistent {
        left(&mut s, "destination", 18);
        s.push(' ');
        left(&mut s, "pe name", 16);
        s.push_str(" pe_data\n");
    } else {
        s.push_str("destination\n");
    }
    s
}

/// The rows of [`conns`], for a listing sent a chunk at a time.
pub fn conn_lines(rows: &[ConnRow], opts: &ListOptions, names: &dyn Names) -> String {
    let persistent = opts.view == ListView::PersistentConn;
    let names = (!opts.numeric).then_some(names);
    let mut s = String::new();
    for row in rows {
        conn_row(&mut s, row, names, persistent);
    }
    s
}

fn conn_row(s: &mut String, row: &ConnRow, names: Option<&dyn Names>, persistent: bool) {
    let proto = conn_proto(row.proto);
    let cname = addrport(row.caddr, row.cport, proto, names);
    let vname = addrport(row.vaddr, row.vport, proto, names);
    let dname = addrport(row.daddr, row.dport, proto, names);
    let expire = format!("{:02}:{:02}", row.expires_secs / 60, row.expires_secs % 60);
    left(s, row.proto, 3);
    s.push(' ');
    left(s, &expire, 6);
    s.push(' ');
    left(s, row.state, 11);
    s.push(' ');
    left(s, &cname, 18);
    s.push(' ');
    left(s, &vname, 18);
    s.push(' ');
    if let Some((laddr, lport)) = row.laddr {
        left(s, &addrport(laddr, lport, proto, names), 18);
        s.push(' ');
    }
    let pe = row
        .pe
        .as_ref()
        .map(|(name, data)| (first_word(name), first_word(data)))
        .filter(|(name, data)| !name.is_empty() && !data.is_empty());
    match pe {
        Some((name, data)) if persistent => {
            left(s, &dname, 16);
            s.push(' ');
            left(s, name, 18);
            out!(s, " {data}\n");
        }
        _ => out!(s, "{dname}\n"),
    }
}

#[cfg(test)]
mod tests;
