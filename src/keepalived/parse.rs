//! From keepalived's statement tree to the LVS model: every keyword of
//! `virtual_server`, `virtual_server_group`, `real_server`, `sorry_server`
//! and the checkers is read here or refused with its file:line. Blocks
//! outside the LVS part (vrrp_instance, global_defs, ...) are skipped with
//! one warning each.
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::lexer::{Error, Loc, Node};
use super::model::*;

/// A group may stand for at most this many services: a typo such as
/// 10.0.0.0/8 must not make 16 million of them.
const MAX_GROUP_SERVICES: usize = 4096;

type R<T> = Result<T, Error>;

/// The schedulers rvs has, which are keepalived's.
const SCHEDULERS: &[&str] = &crate::ipvs::sched::NAMES;

/// The LVS part, and a warning for each thing skipped.
#[derive(Debug, Default)]
pub struct Parsed {
    pub servers: Vec<VirtualServer>,
    pub warnings: Vec<String>,
}

fn err<T>(n: &Node, msg: impl Into<String>) -> R<T> {
    Err(Error::at(
        &n.loc,
        format!("{}: {}", n.keyword(), msg.into()),
    ))
}

fn one(n: &Node) -> R<&str> {
    match n.args() {
        [a] => Ok(a),
        [] => err(n, "needs a value"),
        _ => err(n, "takes one value"),
    }
}

fn no_block(n: &Node) -> R<()> {
    if n.block.is_some() {
        return err(n, "takes no block");
    }
    Ok(())
}

fn block(n: &Node) -> R<&[Node]> {
    match &n.block {
        Some(b) => Ok(b),
        None => err(n, "needs a { } block"),
    }
}

fn int<T: TryFrom<u64>>(n: &Node, min: u64, max: u64) -> R<T> {
    let v = one(n)?;
    match v.parse::<u64>() {
        Ok(x) if (min..=max).contains(&x) => T::try_from(x).or_else(|_| err(n, "out of range")),
        _ => err(n, format!("{v:?}: want a whole number from {min} to {max}")),
    }
}

/// keepalived's <TIMER>: seconds, fractions allowed.
fn timer(n: &Node) -> R<f64> {
    let v = one(n)?;
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() && (0.0..=86_400.0).contains(&x) => Ok(x),
        _ => err(
            n,
            format!("{v:?}: want seconds from 0 to 86400, such as 5 or 2.5"),
        ),
    }
}

/// A flag keyword alone means on; keepalived also takes a <BOOL> after it.
fn flag(n: &Node) -> R<bool> {
    no_block(n)?;
    match n.args() {
        [] => Ok(true),
        [v] => match v.as_str() {
            "on" | "true" | "yes" => Ok(true),
            "off" | "false" | "no" => Ok(false),
            _ => err(n, format!("{v:?}: want on, off, true, false, yes or no")),
        },
        _ => err(n, "takes at most one value"),
    }
}

fn addr(n: &Node, s: &str) -> R<IpAddr> {
    s.parse()
        .or_else(|_| err(n, format!("{s:?} is not an IPv4 or IPv6 address")))
}

fn port(n: &Node, s: &str) -> R<u16> {
    s.parse()
        .or_else(|_| err(n, format!("{s:?} is not a port (0-65535)")))
}

/// NAT, DR, TUN [type ipip|gue port N|gre [nocsum|csum|remcsum]], and the
/// DPVS fork's FNAT (FULLNAT).
fn method(n: &Node) -> R<Method> {
    no_block(n)?;
    let args = n.args();
    let Some(kind) = args.first() else {
        return err(n, "needs NAT, DR, TUN or FNAT");
    };
    let switch = match kind.to_ascii_uppercase().as_str() {
        "NAT" => "-m",
        "DR" => "-g",
        "TUN" => "-i",
        "FNAT" | "FULLNAT" => "--fullnat",
        _ => return err(n, format!("{kind:?}: want NAT, DR, TUN or FNAT")),
    };
    let mut extra = Vec::new();
    let mut rest = &args[1..];
    if switch == "-i" && !rest.is_empty() {
        if rest[0] != "type" || rest.len() < 2 {
            return err(
                n,
                "after TUN: type ipip|gue port N|gre [nocsum|csum|remcsum]",
            );
        }
        extra.extend(["--tun-type".to_string(), rest[1].clone()]);
        rest = &rest[2..];
        if rest.first().map(String::as_str) == Some("port") {
            let Some(p) = rest.get(1) else {
                return err(n, "port needs a number");
            };
            extra.extend(["--tun-port".to_string(), port(n, p)?.to_string()]);
            rest = &rest[2..];
        }
        if let Some(c) = rest.first() {
            match c.as_str() {
                "nocsum" | "csum" | "remcsum" => extra.push(format!("--tun-{c}")),
                _ => return err(n, format!("{c:?}: want nocsum, csum or remcsum")),
            }
            rest = &rest[1..];
        }
    }
    if !rest.is_empty() {
        return err(n, format!("unexpected {:?}", rest.join(" ")));
    }
    Ok(Method { switch, extra })
}

/// Settings every level (virtual server, real server, checker) may hold.
/// Some(result) when `n` is one of them.
fn timing(n: &Node, t: &mut Timing) -> Option<R<()>> {
    let r = match n.keyword() {
        "delay_loop" => timer(n).map(|v| t.delay_loop = Some(v)),
        "connect_timeout" => timer(n).map(|v| t.connect_timeout = Some(v)),
        "retry" | "nb_get_retry" | "nb_sock_retry" => int(n, 0, 1000).map(|v| t.retry = Some(v)),
        "delay_before_retry" => timer(n).map(|v| t.delay_before_retry = Some(v)),
        "alpha" => flag(n).map(|v| t.alpha = Some(v)),
        _ => return None,
    };
    Some(r)
}

/// Keywords that change only notifications rvs does not send (mail, SNMP)
/// or only spread checks over time: one warning each, no effect.
fn notice_only(n: &Node, warnings: &mut Vec<String>) -> bool {
    let why = match n.keyword() {
        "smtp_alert" => "rvs sends no mail",
        "snmp_name" => "rvs has no SNMP agent",
        "log_all_failures" => "rvs logs every transition, not every failure",
        "warmup" => "rvs starts each check at once instead of after a random delay",
        _ => return false,
    };
    warnings.push(format!("{}: {}: skipped ({why})", n.loc, n.keyword()));
    true
}

/// What every level takes alike: its timing, the notice-only words (a
/// warning), the refused ones (an error). Ok(true) when `n` was one.
fn shared_keyword(n: &Node, t: &mut Timing, warnings: &mut Vec<String>) -> R<bool> {
    if let Some(r) = timing(n, t) {
        no_block(n)?;
        r?;
        return Ok(true);
    }
    if notice_only(n, warnings) {
        return Ok(true);
    }
    match refused(n) {
        Some(why) => err(n, why),
        None => Ok(false),
    }
}

/// Things of the LVS part rvs cannot do: refused by name.
fn refused(n: &Node) -> Option<&'static str> {
    Some(match n.keyword() {
        "notify_up" | "notify_down" | "quorum_up" | "quorum_down" => {
            "rvs runs no notify scripts; watch rvs_dest_up and rvs_service_sorry_in_use in /metrics instead"
        }
        "ha_suspend" => "rvs has no VRRP, so nothing to suspend checks on",
        "sorry_server_inhibit" => "rvs's sorry server leaves the list when a real server comes back",
        "BFD_CHECK" | "FILE_CHECK" => {
            "rvs has no such checker; a MISC_CHECK with a script can do it"
        }
        "connect_ip" | "bindto" | "bind_port" | "bind_if" | "fwmark" | "host" => {
            "rvs's checks leave from [health] sources and go to the real server's address"
        }
        "misc_dynamic" => "rvs does not set weights from a script's exit status",
        "user" => "rvs runs MISC_CHECK scripts as rvsd's own user",
        "regex" | "regex_no_match" | "regex_options" | "regex_stack" | "regex_min_offset"
        | "regex_max_offset" => "rvs matches bodies by digest only",
        "enable_sni" | "sni_name" | "tls_compliant" => {
            "rvs's SSL_GET sends the virtualhost as SNI when it is a name"
        }
        _ => return None,
    })
}

/// The LVS part of the whole file tree.
pub fn parse(nodes: &[Node]) -> R<Parsed> {
    let mut out = Parsed::default();
    let mut groups: HashMap<&str, (Loc, Vec<Vip>)> = HashMap::new();
    for n in nodes {
        if n.keyword() == "virtual_server_group" {
            let name = one(n)?;
            let vips = group(n)?;
            if groups.insert(name, (n.loc.clone(), vips)).is_some() {
                return err(
                    n,
                    format!("{name}: a group of that name is defined already"),
                );
            }
        }
    }
    for n in nodes {
        match n.keyword() {
            "virtual_server_group" => {}
            "virtual_server" => {
                let vips = match n.args() {
                    [g, name] if g == "group" => match groups.get(name.as_str()) {
                        Some((_, v)) => v.clone(),
                        None => return err(n, format!("group {name:?} is not defined")),
                    },
                    [f, mark] if f == "fwmark" => {
                        let m = mark.parse::<u32>().ok().filter(|&m| m != 0).map_or_else(
                            || err(n, format!("{mark:?}: want a mark from 1 to 4294967295")),
                            Ok,
                        )?;
                        vec![Vip::Fwmark {
                            mark: m,
                            ipv6: None,
                        }]
                    }
                    [a] => vec![Vip::Addr(addr(n, a)?, 0)],
                    [a, p] => vec![Vip::Addr(addr(n, a)?, port(n, p)?)],
                    _ => return err(n, "want ADDRESS [PORT], fwmark N or group NAME"),
                };
                let vs = virtual_server(n, vips, &mut out.warnings)?;
                out.servers.push(vs);
            }
            other if other.starts_with('$') || other.starts_with('@') || other.starts_with('~') => {
                return err(
                    n,
                    "rvs does not expand keepalived's parameters ($NAME), conditions (@) or sequences (~SEQ); write the values out",
                );
            }
            other => {
                // Not the LVS part: VRRP, global settings, BFD, ... rvs
                // reads no more of it than this one line.
                out.warnings.push(format!(
                    "{}: {other}: skipped (rvs reads only virtual_server and virtual_server_group)",
                    n.loc
                ));
            }
        }
    }
    Ok(out)
}

fn group(n: &Node) -> R<Vec<Vip>> {
    let mut vips = Vec::new();
    for e in block(n)? {
        no_block(e)?;
        let w = &e.words;
        if w[0] == "fwmark" {
            let (mark, fam) = match &w[1..] {
                [m] => (m, None),
                [m, f] => (m, Some(f.as_str())),
                _ => return err(e, "want fwmark N [inet|inet6]"),
            };
            let mark = mark.parse::<u32>().ok().filter(|&m| m != 0).map_or_else(
                || err(e, format!("{mark:?}: want a mark from 1 to 4294967295")),
                Ok,
            )?;
            let ipv6 = match fam {
                None => None,
                Some("inet") => Some(false),
                Some("inet6") => Some(true),
                Some(f) => return err(e, format!("{f:?}: want inet or inet6")),
            };
            vips.push(Vip::Fwmark { mark, ipv6 });
            continue;
        }
        let (range, p) = match &w[..] {
            [r] => (r, 0),
            [r, p] => (r, port(e, p)?),
            _ => return Err(Error::at(&e.loc, "want ADDRESS[-RANGE] [PORT] or fwmark N")),
        };
        for a in address_range(e, range)? {
            vips.push(Vip::Addr(a, p));
            if vips.len() > MAX_GROUP_SERVICES {
                return Err(Error::at(
                    &e.loc,
                    format!("the group stands for more than {MAX_GROUP_SERVICES} addresses"),
                ));
            }
        }
    }
    Ok(vips)
}

/// `A`, `A-N` (the last byte of IPv4 or last group of IPv6 runs to N),
/// `A-B` (two whole addresses) and `A/LEN`, as keepalived's
/// virtual_server_group reads them: both ends included.
fn address_range(n: &Node, s: &str) -> R<Vec<IpAddr>> {
    let bad = || {
        Error::at(
            &n.loc,
            format!("{s:?}: want an address, ADDR-LAST, ADDR-ADDR or ADDR/LEN"),
        )
    };
    let (first, last) = if let Some((a, len)) = s.split_once('/') {
        let a: IpAddr = a.parse().map_err(|_| bad())?;
        let len: u32 = len.parse().map_err(|_| bad())?;
        match a {
            IpAddr::V4(v) if len <= 32 => {
                let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
                let lo = u32::from(v) & mask;
                (u128::from(lo), u128::from(lo | !mask))
            }
            IpAddr::V6(v) if len <= 128 => {
                let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
                let lo = u128::from(v) & mask;
                (lo, lo | !mask)
            }
            _ => return Err(bad()),
        }
    } else if let Some((a, b)) = s.split_once('-') {
        let a: IpAddr = a.parse().map_err(|_| bad())?;
        match (a, b.parse::<IpAddr>()) {
            (IpAddr::V4(x), Ok(IpAddr::V4(y))) => {
                (u128::from(u32::from(x)), u128::from(u32::from(y)))
            }
            (IpAddr::V6(x), Ok(IpAddr::V6(y))) => (u128::from(x), u128::from(y)),
            (IpAddr::V4(x), Err(_)) => {
                let end: u8 = b.parse().map_err(|_| bad())?;
                let lo = u32::from(x);
                (u128::from(lo), u128::from((lo & !0xff) | u32::from(end)))
            }
            (IpAddr::V6(x), Err(_)) => {
                let end = u16::from_str_radix(b, 16).map_err(|_| bad())?;
                let lo = u128::from(x);
                (lo, (lo & !0xffff) | u128::from(end))
            }
            _ => return Err(bad()),
        }
    } else {
        let a: IpAddr = s.parse().map_err(|_| bad())?;
        return Ok(vec![a]);
    };
    if last < first {
        return Err(Error::at(
            &n.loc,
            format!("{s:?}: the range ends before it starts"),
        ));
    }
    if last - first >= MAX_GROUP_SERVICES as u128 {
        return Err(Error::at(
            &n.loc,
            format!("{s:?} stands for more than {MAX_GROUP_SERVICES} addresses"),
        ));
    }
    let v4 = s
        .split(['-', '/'])
        .next()
        .is_some_and(|a| a.parse::<Ipv4Addr>().is_ok());
    Ok((first..=last)
        .map(|x| {
            if v4 {
                IpAddr::V4(Ipv4Addr::from(x as u32))
            } else {
                IpAddr::V6(Ipv6Addr::from(x))
            }
        })
        .collect())
}

fn virtual_server(n: &Node, vips: Vec<Vip>, warnings: &mut Vec<String>) -> R<VirtualServer> {
    let mut vs = VirtualServer {
        loc: n.loc.clone(),
        vips,
        sched: None,
        sched_flags: Vec::new(),
        ops: false,
        method: None,
        persistence: None,
        granularity: None,
        pe: None,
        protocol: None,
        ip_family_v6: None,
        sorry: None,
        sorry_method: None,
        quorum: None,
        hysteresis: None,
        inhibit: None,
        virtualhost: None,
        timing: Timing::default(),
        reals: Vec::new(),
    };
    for k in block(n)? {
        if shared_keyword(k, &mut vs.timing, warnings)? {
            continue;
        }
        const KNOWN: &[&str] = &[
            "lvs_sched",
            "lb_algo",
            "flag-1",
            "flag-2",
            "flag-3",
            "sh-port",
            "sh-fallback",
            "mh-port",
            "mh-fallback",
            "ops",
            "lvs_method",
            "lb_kind",
            "persistence_timeout",
            "persistence_granularity",
            "persistence_engine",
            "protocol",
            "ip_family",
            "sorry_server",
            "sorry_server_lvs_method",
            "quorum",
            "hysteresis",
            "omega",
            "inhibit_on_failure",
            "virtualhost",
            "real_server",
        ];
        if !KNOWN.contains(&k.keyword()) {
            return err(k, "not a virtual_server keyword rvs knows");
        }
        if k.keyword() != "real_server" {
            no_block(k)?;
        }
        match k.keyword() {
            "lvs_sched" | "lb_algo" => {
                let s = one(k)?;
                if !SCHEDULERS.contains(&s) {
                    return err(k, format!("{s:?}: want one of {}", SCHEDULERS.join(", ")));
                }
                vs.sched = Some(s.to_string())
            }
            "flag-1" | "flag-2" | "flag-3" | "sh-port" | "sh-fallback" | "mh-port"
            | "mh-fallback" => {
                if flag(k)? {
                    vs.sched_flags.push(k.keyword().to_string());
                }
            }
            "ops" => vs.ops = flag(k)?,
            "lvs_method" | "lb_kind" => vs.method = Some(method(k)?),
            "persistence_timeout" => {
                vs.persistence = Some(if k.args().is_empty() {
                    360
                } else {
                    int(k, 1, u64::from(u32::MAX))?
                })
            }
            "persistence_granularity" => vs.granularity = Some(one(k)?.to_string()),
            "persistence_engine" => vs.pe = Some(one(k)?.to_string()),
            "protocol" => {
                vs.protocol = Some(match one(k)?.to_ascii_uppercase().as_str() {
                    "TCP" => Proto::Tcp,
                    "UDP" => Proto::Udp,
                    "SCTP" => Proto::Sctp,
                    p => return err(k, format!("{p:?}: want TCP, UDP or SCTP")),
                })
            }
            "ip_family" => {
                vs.ip_family_v6 = Some(match one(k)? {
                    "inet" => false,
                    "inet6" => true,
                    f => return err(k, format!("{f:?}: want inet or inet6")),
                })
            }
            "sorry_server" => {
                let (a, p) = match k.args() {
                    [a] => (addr(k, a)?, None),
                    [a, p] => (addr(k, a)?, Some(port(k, p)?)),
                    _ => return err(k, "want ADDRESS [PORT]"),
                };
                vs.sorry = Some(Sorry {
                    loc: k.loc.clone(),
                    addr: a,
                    port: p,
                });
            }
            "sorry_server_lvs_method" => vs.sorry_method = Some(method(k)?),
            "quorum" => vs.quorum = Some((k.loc.clone(), int(k, 1, u64::from(u32::MAX))?)),
            "hysteresis" => vs.hysteresis = Some((k.loc.clone(), int(k, 0, u64::from(u32::MAX))?)),
            // Omega only decides whether notify scripts run at shutdown;
            // rvs refuses notify scripts, so omega has nothing to change.
            "omega" => {
                flag(k)?;
                warnings.push(format!(
                    "{}: omega: skipped (it only runs notify scripts at shutdown, which rvs does not run)",
                    k.loc
                ));
            }
            "inhibit_on_failure" => vs.inhibit = Some(flag(k)?),
            "virtualhost" => vs.virtualhost = Some(one(k)?.to_string()),
            "real_server" => vs.reals.push(real_server(k, warnings)?),
            other => {
                return err(
                    k,
                    format!("not a virtual_server keyword rvs knows ({other})"),
                )
            }
        }
    }
    Ok(vs)
}

fn real_server(n: &Node, warnings: &mut Vec<String>) -> R<RealServer> {
    let (a, p) = match n.args() {
        [a] => (addr(n, a)?, None),
        [a, p] => (addr(n, a)?, Some(port(n, p)?)),
        _ => return err(n, "want ADDRESS [PORT]"),
    };
    let mut rs = RealServer {
        loc: n.loc.clone(),
        addr: a,
        port: p,
        weight: None,
        method: None,
        inhibit: None,
        virtualhost: None,
        uthreshold: None,
        lthreshold: None,
        timing: Timing::default(),
        checkers: Vec::new(),
    };
    // A real_server without a block is legal and plain.
    for k in n.block.as_deref().unwrap_or(&[]) {
        if shared_keyword(k, &mut rs.timing, warnings)? {
            continue;
        }
        match k.keyword() {
            "weight" => {
                no_block(k)?;
                rs.weight = Some(int(k, 0, 65535)?)
            }
            "lvs_method" | "lb_kind" => rs.method = Some(method(k)?),
            "inhibit_on_failure" => rs.inhibit = Some(flag(k)?),
            "virtualhost" => {
                no_block(k)?;
                rs.virtualhost = Some(one(k)?.to_string())
            }
            "uthreshold" => {
                no_block(k)?;
                rs.uthreshold = Some(int(k, 0, u64::from(u32::MAX))?)
            }
            "lthreshold" => {
                no_block(k)?;
                rs.lthreshold = Some(int(k, 0, u64::from(u32::MAX))?)
            }
            "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK" | "UDP_CHECK" | "PING_CHECK"
            | "DNS_CHECK" | "SMTP_CHECK" => rs.checkers.push(checker(k, warnings)?),
            other => return err(k, format!("not a real_server keyword rvs knows ({other})")),
        }
    }
    Ok(rs)
}

fn checker(n: &Node, warnings: &mut Vec<String>) -> R<Checker> {
    if !n.args().is_empty() {
        return err(n, "takes no value, only a { } block");
    }
    let mut c = Checker {
        loc: n.loc.clone(),
        kind: CheckerKind::Tcp,
        connect_port: None,
        timing: Timing::default(),
    };
    let mut urls: Vec<Url> = Vec::new();
    let mut vhost = None;
    let mut misc_path = None;
    let mut misc_timeout = None;
    let mut payload = Vec::new();
    let mut require_reply = false;
    let mut dns_type = None;
    let mut dns_name = None;
    let mut helo = None;
    let kw = n.keyword();
    for k in n.block.as_deref().unwrap_or(&[]) {
        if shared_keyword(k, &mut c.timing, warnings)? {
            continue;
        }
        const KNOWN: &[&str] = &[
            "connect_port",
            "url",
            "virtualhost",
            "http_protocol",
            "fast_recovery",
            "misc_path",
            "misc_timeout",
            "payload",
            "require_reply",
            "min_reply_length",
            "max_reply_length",
            "type",
            "name",
            "helo_name",
        ];
        if !KNOWN.contains(&k.keyword()) {
            return err(k, format!("not a {kw} keyword rvs knows"));
        }
        if k.keyword() != "url" {
            no_block(k)?;
        }
        let http = matches!(kw, "HTTP_GET" | "SSL_GET");
        match k.keyword() {
            "connect_port" if kw != "MISC_CHECK" && kw != "PING_CHECK" => {
                c.connect_port = Some(int(k, 1, 65535)?)
            }
            "url" if http => urls.push(url_block(k)?),
            "virtualhost" if http => vhost = Some(one(k)?.to_string()),
            "http_protocol" if http => match one(k)? {
                // rvs sends HTTP/1.0 with "Connection: close": 1.0C.
                "1.0" | "1.0C" => {}
                v => return err(k, format!("{v:?}: rvs speaks HTTP/1.0 (1.0 or 1.0C)")),
            },
            // rvs checks every url in each round, with no delay between
            // them: fast_recovery's behaviour, always.
            "fast_recovery" if http => {
                flag(k)?;
            }
            "misc_path" if kw == "MISC_CHECK" => {
                if k.args().is_empty() {
                    return err(k, "needs the script to run");
                }
                misc_path = Some(k.args().join(" "))
            }
            "misc_timeout" if kw == "MISC_CHECK" => {
                misc_timeout = Some(f64::from(int::<u32>(k, 1, 86_400)?))
            }
            "payload" if kw == "UDP_CHECK" => payload = hex(k)?,
            "require_reply" if kw == "UDP_CHECK" => {
                if !k.args().is_empty() {
                    return err(
                        k,
                        "rvs checks that a reply comes, not what it holds; drop the hex string",
                    );
                }
                require_reply = true
            }
            "type" if kw == "DNS_CHECK" => {
                let t = one(k)?;
                if crate::health::probe::dns_type_code(t).is_none() {
                    return err(
                        k,
                        format!("{t:?}: want A, NS, CNAME, SOA, MX, TXT, AAAA, RRSIG or DNSKEY"),
                    );
                }
                dns_type = Some(t.to_ascii_uppercase());
            }
            "name" if kw == "DNS_CHECK" => dns_name = Some(one(k)?.to_string()),
            "helo_name" if kw == "SMTP_CHECK" => helo = Some(one(k)?.to_string()),
            "min_reply_length" | "max_reply_length" if kw == "UDP_CHECK" => {
                return err(k, "rvs checks that a reply comes, not its length")
            }
            other => return err(k, format!("not a {kw} keyword rvs knows ({other})")),
        }
    }
    c.kind = match kw {
        "TCP_CHECK" => CheckerKind::Tcp,
        "PING_CHECK" => CheckerKind::Ping,
        "HTTP_GET" | "SSL_GET" => {
            if urls.is_empty() {
                return Err(Error::at(
                    &n.loc,
                    format!("{kw}: needs a url {{ path ... }} block"),
                ));
            }
            CheckerKind::Http {
                tls: kw == "SSL_GET",
                urls,
                virtualhost: vhost,
            }
        }
        "SMTP_CHECK" => CheckerKind::Smtp {
            // keepalived's SMTP_DEFAULT_HELO.
            helo: helo.unwrap_or_else(|| "smtpchecker.keepalived.org".into()),
        },
        "DNS_CHECK" => CheckerKind::Dns {
            // keepalived's defaults: SOA of the root.
            name: dns_name.unwrap_or_else(|| ".".into()),
            qtype: dns_type.unwrap_or_else(|| "SOA".into()),
        },
        "MISC_CHECK" => CheckerKind::Misc {
            path: misc_path.ok_or_else(|| Error::at(&n.loc, "MISC_CHECK: needs misc_path"))?,
            timeout: misc_timeout,
        },
        _ => CheckerKind::Udp {
            payload,
            require_reply,
        },
    };
    Ok(c)
}

fn url_block(n: &Node) -> R<Url> {
    let mut u = Url {
        loc: n.loc.clone(),
        path: String::new(),
        digest: None,
        status: Vec::new(),
        virtualhost: None,
    };
    let mut path = None;
    for k in block(n)? {
        if let Some(why) = refused(k) {
            return err(k, why);
        }
        no_block(k)?;
        match k.keyword() {
            "path" => path = Some(one(k)?.to_string()),
            "digest" => {
                let d = one(k)?;
                if d.len() != 32 || !d.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return err(
                        k,
                        format!("{d:?}: want an MD5 digest, 32 hex digits (genhash prints it)"),
                    );
                }
                u.digest = Some(d.to_ascii_lowercase());
            }
            "status_code" => {
                if k.args().is_empty() {
                    return err(k, "needs codes, such as 200 or 200-299 301");
                }
                for a in k.args() {
                    let code = |s: &str| s.parse::<u16>().ok().filter(|c| (100..=599).contains(c));
                    let r = match a.split_once('-') {
                        Some((lo, hi)) => code(lo).zip(code(hi)).filter(|(l, h)| l <= h),
                        None => code(a).map(|c| (c, c)),
                    };
                    match r {
                        Some(r) => u.status.push(r),
                        None => {
                            return err(
                                k,
                                format!("{a:?}: want a code from 100 to 599 or a range LOW-HIGH"),
                            )
                        }
                    }
                }
            }
            "virtualhost" => u.virtualhost = Some(one(k)?.to_string()),
            other => return err(k, format!("not a url keyword rvs knows ({other})")),
        }
    }
    u.path = path.ok_or_else(|| Error::at(&n.loc, "url: needs a path"))?;
    Ok(u)
}

/// keepalived's free-form hex: pairs of digits, a lone digit before a
/// space being one byte (`Ab12f 3` is AB 12 0F 03).
fn hex(n: &Node) -> R<Vec<u8>> {
    let mut out = Vec::new();
    for w in n.args() {
        let digits: Vec<u8> = w
            .bytes()
            .map(|b| (b as char).to_digit(16).map(|d| d as u8))
            .collect::<Option<_>>()
            .map_or_else(|| err(n, format!("{w:?}: want hex digits")), Ok)?;
        for pair in digits.chunks(2) {
            out.push(match pair {
                [h, l] => h << 4 | l,
                [l] => *l,
                _ => 0,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::Arc;

    fn node(words: &str) -> Node {
        Node {
            loc: Loc {
                file: Arc::new(PathBuf::from("t.conf")),
                line: 7,
            },
            words: words.split_whitespace().map(String::from).collect(),
            block: None,
        }
    }

    fn range(s: &str) -> Vec<String> {
        address_range(&node("x"), s)
            .unwrap()
            .iter()
            .map(|a| a.to_string())
            .collect()
    }

    #[test]
    fn group_ranges_as_keepalived_reads_them() {
        assert_eq!(
            range("192.168.200.1-3"),
            ["192.168.200.1", "192.168.200.2", "192.168.200.3"]
        );
        assert_eq!(
            range("192.168.200.254-192.168.201.1"),
            [
                "192.168.200.254",
                "192.168.200.255",
                "192.168.201.0",
                "192.168.201.1"
            ]
        );
        assert_eq!(
            range("192.168.202.8/30"),
            [
                "192.168.202.8",
                "192.168.202.9",
                "192.168.202.10",
                "192.168.202.11"
            ]
        );
        assert_eq!(
            range("2001:db8::8-a"),
            ["2001:db8::8", "2001:db8::9", "2001:db8::a"]
        );
        assert_eq!(range("10.0.0.1"), ["10.0.0.1"]);
        for bad in [
            "10.0.0.5-1",
            "10.0.0.1-300",
            "10.0.0.0/33",
            "x-1",
            "10.0.0.1-::1",
        ] {
            let e = address_range(&node("x"), bad).unwrap_err();
            assert!(e.to_string().starts_with("t.conf:7: "), "{bad}: {e}");
        }
    }

    #[test]
    fn keepalived_hex() {
        // The man page's own example.
        let n = node("payload Ab12f 3 456 546443123");
        assert_eq!(
            hex(&n).unwrap(),
            [0xAB, 0x12, 0x0F, 0x03, 0x45, 0x06, 0x54, 0x64, 0x43, 0x12, 0x03]
        );
        assert!(hex(&node("payload 0g")).is_err());
    }
}
