//! From the keepalived model to rvs: each virtual server becomes one rvs
//! service per address it stands for (a group's every address and
//! fwmark), as ipvsadm-save lines (-A, -a) and rvs's health lines
//! (--check-set, --sorry-set), each line knowing the keepalived line it
//! comes from. keepalived's defaults are spelled out here.
use std::collections::HashMap;
use std::net::IpAddr;

use super::lexer::{Error, Loc};
use super::model::*;

/// keepalived's defaults (check_data.c, check_api.c, the man page).
const DELAY_LOOP: f64 = 60.0;
const CONNECT_TIMEOUT: f64 = 5.0;
const RETRY: u32 = 1;
const MISC_RETRY: u32 = 0;
const DNS_RETRY: u32 = 3;
const DELAY_BEFORE_RETRY: f64 = 1.0;
const HTTP_DELAY_BEFORE_RETRY: f64 = 3.0;
const SCHED: &str = "wlc";
const PERSISTENCE: u32 = 360;

/// One line for rvs's engine and the keepalived line it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub loc: Loc,
    pub text: String,
}

/// One rvs service as the keepalived file wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    pub loc: Loc,
    /// `-t ADDR:PORT`, `-u ...`, `--sctp-service ...` or `-f MARK [-6]`.
    pub words: String,
    /// -A, then -a per real server, then --check-set and --sorry-set.
    pub lines: Vec<Line>,
}

fn secs(s: f64) -> String {
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s}")
    }
}

fn sockaddr(a: IpAddr, port: u16) -> String {
    match a {
        IpAddr::V4(v) => format!("{v}:{port}"),
        IpAddr::V6(v) => format!("[{v}]:{port}"),
    }
}

/// A shell word, as rvs's -R reads it back.
fn q(w: &str) -> String {
    crate::health::check::quote(w)
}

/// Services one file may make in all: what keepalived configurations
/// hold (hundreds), with room; trying them on a scratch table at every
/// reload stays well under a second.
const MAX_SERVICES: usize = 4096;

/// Every rvs service of the file, in file order, with warnings for
/// keepalived's own corrections (no protocol, port 0, ...).
pub fn services(
    servers: &[VirtualServer],
    warnings: &mut Vec<String>,
) -> Result<Vec<ServiceSpec>, Error> {
    let mut out: Vec<ServiceSpec> = Vec::new();
    let mut seen: HashMap<String, Loc> = HashMap::new();
    for vs in servers {
        for vip in &vs.vips {
            if out.len() == MAX_SERVICES {
                return Err(Error::at(
                    &vs.loc,
                    format!("more than {MAX_SERVICES} services in all"),
                ));
            }
            let spec = service(vs, *vip, warnings)?;
            if let Some(prev) = seen.insert(spec.words.clone(), spec.loc.clone()) {
                return Err(Error::at(
                    &vs.loc,
                    format!("{} is defined already at {prev}", spec.words),
                ));
            }
            out.push(spec);
        }
    }
    Ok(out)
}

fn service(vs: &VirtualServer, vip: Vip, warnings: &mut Vec<String>) -> Result<ServiceSpec, Error> {
    let mut persistence = vs.persistence;
    let (words, vport, proto) = match vip {
        Vip::Addr(a, port) => {
            if vs.ip_family_v6.is_some_and(|v6| v6 != a.is_ipv6()) {
                return Err(Error::at(
                    &vs.loc,
                    format!(
                        "ip_family says {} but the address {a} is not",
                        if a.is_ipv6() { "inet" } else { "inet6" }
                    ),
                ));
            }
            let proto = vs.protocol.unwrap_or_else(|| {
                // keepalived's own choice when none is given (check_data.c).
                warnings.push(format!(
                    "{}: virtual_server has no protocol; UDP, as keepalived defaults",
                    vs.loc
                ));
                Proto::Udp
            });
            // keepalived makes the whole virtual server persistent when any
            // of its (group's) addresses has port 0.
            let any_zero = vs.vips.iter().any(|v| matches!(v, Vip::Addr(_, 0)));
            if any_zero && persistence.is_none() {
                warnings.push(format!(
                    "{}: port 0 is only valid for a persistent service: persistence_timeout {PERSISTENCE}, as keepalived sets",
                    vs.loc
                ));
                persistence = Some(PERSISTENCE);
            }
            let switch = match proto {
                Proto::Tcp => "-t",
                Proto::Udp => "-u",
                Proto::Sctp => "--sctp-service",
            };
            (format!("{switch} {}", sockaddr(a, port)), port, Some(proto))
        }
        Vip::Fwmark { mark, ipv6 } => {
            if vs.protocol.is_some() {
                warnings.push(format!(
                    "{}: protocol is ignored for a fwmark service, as keepalived ignores it",
                    vs.loc
                ));
            }
            let v6 = ipv6.or(vs.ip_family_v6).unwrap_or_else(|| {
                !vs.reals.is_empty() && vs.reals.iter().all(|r| r.addr.is_ipv6())
            });
            (format!("-f {mark}{}", if v6 { " -6" } else { "" }), 0, None)
        }
    };
    let mut add = format!("-A {words} -s {}", vs.sched.as_deref().unwrap_or(SCHED));
    if !vs.sched_flags.is_empty() {
        add.push_str(&format!(" -b {}", vs.sched_flags.join(",")));
    }
    if vs.ops {
        if proto.is_some_and(|p| p != Proto::Udp) {
            // keepalived's own correction (check_data.c).
            warnings.push(format!(
                "{}: ops (one-packet scheduling) needs UDP: left off, as keepalived does",
                vs.loc
            ));
        } else {
            add.push_str(" -o");
        }
    }
    if let Some(p) = persistence {
        add.push_str(&format!(" -p {p}"));
    }
    if let Some(m) = &vs.granularity {
        add.push_str(&format!(" -M {}", q(m)));
    }
    if let Some(pe) = &vs.pe {
        add.push_str(&format!(" --pe {}", q(pe)));
    }
    let mut lines = vec![Line {
        loc: vs.loc.clone(),
        text: add,
    }];
    let default_method = vs.method.clone().unwrap_or(Method {
        switch: "-m",
        extra: Vec::new(),
    });
    if vs.method.is_none() && (vs.reals.iter().any(|r| r.method.is_none()) || vs.sorry.is_some()) {
        warnings.push(format!(
            "{}: virtual_server has no lvs_method; NAT, as keepalived defaults",
            vs.loc
        ));
    }
    let mut check: Option<(Loc, String)> = None;
    // Each real server's connect_port: rvs keeps them per real server.
    let mut ports: Vec<(String, Option<u16>)> = Vec::new();
    let mut unchecked: Option<&Loc> = None;
    let mut seen: Vec<(IpAddr, u16, &Loc)> = Vec::new();
    for rs in &vs.reals {
        let rport = match vip {
            Vip::Addr(..) => rs.port.unwrap_or(vport),
            Vip::Fwmark { .. } => rs.port.unwrap_or(0),
        };
        if let Some((.., l)) = seen.iter().find(|(a, p, _)| *a == rs.addr && *p == rport) {
            return Err(Error::at(
                &rs.loc,
                format!(
                    "real_server {} is given already at {l}",
                    sockaddr(rs.addr, rport)
                ),
            ));
        }
        seen.push((rs.addr, rport, &rs.loc));
        let m = rs.method.as_ref().unwrap_or(&default_method);
        let mut a = format!(
            "-a {words} -r {} {} -w {}",
            sockaddr(rs.addr, rport),
            m.switch,
            rs.weight.unwrap_or(1)
        );
        for e in &m.extra {
            a.push(' ');
            a.push_str(e);
        }
        if let Some(x) = rs.uthreshold {
            a.push_str(&format!(" -x {x}"));
        }
        if let Some(y) = rs.lthreshold {
            a.push_str(&format!(" -y {y}"));
        }
        lines.push(Line {
            loc: rs.loc.clone(),
            text: a,
        });
        let words_here = match rs.checkers.as_slice() {
            [] => None,
            [c] => {
                ports.push((sockaddr(rs.addr, rport), c.connect_port));
                Some((c.loc.clone(), check_words(vs, rs, c, proto)?))
            }
            [_, c, ..] => {
                return Err(Error::at(
                    &c.loc,
                    "rvs runs one checker per real server; keep one of them",
                ))
            }
        };
        match (&check, words_here) {
            (None, None) => {
                unchecked.get_or_insert(&rs.loc);
            }
            (None, Some((l, w))) => {
                if let Some(u) = unchecked {
                    return Err(Error::at(
                        &l,
                        format!("rvs checks every real server of a service the same way: this one has a checker, the real_server at {u} has none"),
                    ));
                }
                check = Some((l, w));
            }
            (Some((first, _)), None) => {
                return Err(Error::at(
                    &rs.loc,
                    format!("rvs checks every real server of a service the same way: this one has no checker, the one at {first} has"),
                ))
            }
            (Some((first, w0)), Some((l, w))) => {
                if *w0 != w {
                    return Err(Error::at(
                        &l,
                        format!("rvs checks every real server of a service the same way: this checker differs from the one at {first} ({w} against {w0})"),
                    ));
                }
            }
        }
    }
    if vs.sorry.is_none() {
        // keepalived's only other use of them is its notify scripts.
        for (l, _) in vs.quorum.iter().chain(&vs.hysteresis) {
            warnings.push(format!(
                "{l}: quorum and hysteresis do nothing without a sorry_server (keepalived's other use is notify scripts, which rvs does not run)"
            ));
        }
    }
    let mut quorum = vs.quorum.as_ref().map_or(1, |(_, q)| *q);
    let mut hysteresis = vs.hysteresis.as_ref().map_or(0, |(_, h)| *h);
    // keepalived's corrections (check_data.c): a quorum no weight sum can
    // reach comes down to the sum, and a hysteresis as large as the quorum
    // to one below it; else the sorry server could never leave.
    let weights: i64 = vs.reals.iter().map(|r| r.weight.unwrap_or(1)).sum();
    if let Some((l, _)) = &vs.quorum {
        if i64::from(quorum) > weights {
            let fixed = u32::try_from(weights.max(1)).unwrap_or(u32::MAX);
            warnings.push(format!(
                "{l}: quorum {quorum} is more than the real servers' weights add up to: {fixed}, as keepalived lowers it"
            ));
            quorum = fixed;
        }
    }
    if let Some((l, _)) = &vs.hysteresis {
        if hysteresis >= quorum {
            warnings.push(format!(
                "{l}: hysteresis {hysteresis} is not below the quorum {quorum}: {}, as keepalived lowers it",
                quorum - 1
            ));
            hysteresis = quorum - 1;
        }
    }
    // Quorum decides only when the sorry server is used (keepalived's
    // notify scripts, its other use, are refused). Written even at its
    // defaults: keepalived weighs the live servers, so a live server of
    // weight 0 (drained) does not keep the sorry server out, as rvs's own
    // rule without a quorum ("no server up") would.
    let explicit = vs.quorum.is_some() || vs.hysteresis.is_some();
    let quorum_words = (vs.sorry.is_some() && (check.is_some() || explicit))
        .then(|| format!(" quorum={quorum} hysteresis={hysteresis}"));
    match (check, &quorum_words) {
        (Some((loc, w)), quorum_text) => {
            let same = ports.windows(2).all(|p| p[0].1 == p[1].1);
            let port_words: String = match ports.first() {
                Some((_, Some(p))) if same => format!(" checkport={p}"),
                _ if same => String::new(),
                _ => ports
                    .iter()
                    .filter_map(|(real, p)| {
                        p.map(|p| format!(" {}", q(&format!("checkport.{real}={p}"))))
                    })
                    .collect(),
            };
            lines.push(Line {
                loc,
                text: format!(
                    "--check-set {words} {w}{port_words}{}",
                    quorum_text.as_deref().unwrap_or("")
                ),
            })
        }
        (None, Some(_)) => {
            let loc = vs
                .quorum
                .as_ref()
                .or(vs.hysteresis.as_ref())
                .map_or(&vs.loc, |(l, _)| l);
            return Err(Error::at(
                loc,
                "quorum and hysteresis need checkers on the real servers: rvs weighs the servers its checks call alive",
            ));
        }
        (None, None) => {}
    }
    if let Some(s) = &vs.sorry {
        let m = vs.sorry_method.as_ref().unwrap_or(&default_method);
        // keepalived (check_data.c) keeps a NAT sorry server's own port,
        // which NAT can map to; any other method cannot change the port, so
        // it gets the virtual server's (none for a fwmark service).
        let port = match (vip, m.switch == "-m") {
            (Vip::Fwmark { .. }, true) => s.port.unwrap_or(0),
            (Vip::Fwmark { .. }, false) => 0,
            (Vip::Addr(..), true) => s.port.unwrap_or(vport),
            (Vip::Addr(..), false) => {
                if s.port.is_some_and(|p| p != vport) {
                    warnings.push(format!(
                        "{}: sorry_server port differs from the virtual server's: {vport}, as keepalived resets it for a sorry server that is not NAT",
                        s.loc
                    ));
                }
                vport
            }
        };
        let mut t = format!(
            "--sorry-set {words} -r {} {} -w 1",
            sockaddr(s.addr, port),
            m.switch
        );
        for e in &m.extra {
            t.push(' ');
            t.push_str(e);
        }
        lines.push(Line {
            loc: s.loc.clone(),
            text: t,
        });
    }
    if vs.reals.is_empty() && vs.sorry.is_none() {
        warnings.push(format!("{}: virtual_server has no real_server", vs.loc));
    }
    Ok(ServiceSpec {
        loc: vs.loc.clone(),
        words,
        lines,
    })
}

/// A checker in rvs's --check-set words, with keepalived's inheritance
/// (checker, then real server, then virtual server, then the checker
/// type's default) applied.
fn check_words(
    vs: &VirtualServer,
    rs: &RealServer,
    c: &Checker,
    proto: Option<Proto>,
) -> Result<String, Error> {
    let t = c.timing.or(&rs.timing).or(&vs.timing);
    let http = matches!(c.kind, CheckerKind::Http { .. });
    let delay_loop = t.delay_loop.unwrap_or(DELAY_LOOP);
    let retry = t.retry.unwrap_or(match c.kind {
        CheckerKind::Misc { .. } => MISC_RETRY,
        CheckerKind::Dns { .. } => DNS_RETRY,
        _ => RETRY,
    });
    let before_retry = t.delay_before_retry.unwrap_or(match c.kind {
        _ if http => HTTP_DELAY_BEFORE_RETRY,
        // keepalived: DNS_CHECK retries after delay_loop.
        CheckerKind::Dns { .. } => delay_loop,
        _ => DELAY_BEFORE_RETRY,
    });
    let mut timeout = t.connect_timeout.unwrap_or(CONNECT_TIMEOUT);
    let mut w: Vec<String> = Vec::new();
    match &c.kind {
        // rvs's connect check on a UDP service is ldirectord's UDP connect
        // (up unless an ICMP error comes back), not keepalived's TCP
        // connect: refused rather than quietly made weaker.
        CheckerKind::Tcp if proto == Some(Proto::Udp) => {
            return Err(Error::at(
                &c.loc,
                "TCP_CHECK on a UDP virtual server: rvs checks a UDP service over UDP; use UDP_CHECK (with require_reply), DNS_CHECK or MISC_CHECK",
            ));
        }
        CheckerKind::Tcp => w.push("checktype=connect".into()),
        CheckerKind::Ping => w.push("checktype=ping".into()),
        CheckerKind::Smtp { helo } => {
            w.push("checktype=negotiate service=smtp".into());
            w.push(q(&format!("request={helo}")));
        }
        CheckerKind::Dns { name, qtype } => {
            w.push("checktype=negotiate service=dns".into());
            w.push(q(&format!("request={name}")));
            w.push(format!("querytype={qtype}"));
        }
        CheckerKind::Misc { path, timeout: mt } => {
            w.push("checktype=external".into());
            w.push(q(&format!("checkcommand={path}")));
            // keepalived: misc_timeout, else delay_loop.
            timeout = mt.unwrap_or(delay_loop);
        }
        CheckerKind::Udp {
            payload,
            require_reply,
        } => {
            if proto != Some(Proto::Udp) {
                return Err(Error::at(
                    &c.loc,
                    "UDP_CHECK: rvs checks UDP only on a UDP service (protocol UDP)",
                ));
            }
            w.push(
                if *require_reply {
                    "checktype=negotiate service=udp"
                } else {
                    "checktype=connect"
                }
                .into(),
            );
            if !payload.is_empty() {
                let s = String::from_utf8(payload.clone())
                    .ok()
                    .filter(|s| !s.contains('\0'))
                    .ok_or_else(|| {
                        Error::at(&c.loc, "UDP_CHECK: rvs sends a payload of text only")
                    })?;
                w.push(q(&format!("request={s}")));
            }
        }
        CheckerKind::Http {
            tls,
            urls,
            virtualhost,
        } => {
            w.push("checktype=negotiate".into());
            w.push(
                if *tls {
                    "service=https"
                } else {
                    "service=http"
                }
                .into(),
            );
            // Each url's words follow its request=, as --check-set groups them.
            for url in urls {
                w.push(q(&format!("request={}", url.path)));
                let ranges = if url.status.is_empty() {
                    vec![(200, 299)]
                } else {
                    url.status.clone()
                };
                let status: Vec<String> = ranges
                    .iter()
                    .map(|&(l, h)| {
                        if l == h {
                            l.to_string()
                        } else {
                            format!("{l}-{h}")
                        }
                    })
                    .collect();
                w.push(format!("status={}", status.join(",")));
                if let Some(d) = &url.digest {
                    w.push(format!("digest={d}"));
                }
                let host = url
                    .virtualhost
                    .as_ref()
                    .or(virtualhost.as_ref())
                    .or(rs.virtualhost.as_ref())
                    .or(vs.virtualhost.as_ref());
                if let Some(h) = host {
                    w.push(q(&format!("virtualhost={h}")));
                }
            }
        }
    }
    w.push(format!("checkinterval={}", secs(delay_loop)));
    w.push(format!("checktimeout={}", secs(timeout)));
    w.push("rise=1".into());
    w.push(format!("fall={}", retry + 1));
    if retry > 0 && before_retry != delay_loop {
        w.push(format!("retryinterval={}", secs(before_retry)));
    }
    // keepalived: before a server's first check one failure takes it down;
    // with alpha it starts down and one pass brings it up.
    w.push("firstcheck=decides".into());
    if t.alpha.unwrap_or(false) {
        w.push("initial=down".into());
    }
    let inhibit = rs.inhibit.or(vs.inhibit).unwrap_or(false);
    w.push(format!("quiescent={}", if inhibit { "yes" } else { "no" }));
    Ok(w.join(" "))
}
