//! A service's check, in ldirectord's words: `checktype`, `service`,
//! `request`, `receive`, `virtualhost`, `checkport`, `checkinterval`,
//! `checktimeout`, `failurecount`, `quiescent`, `checkcommand`, plus rvs's
//! `rise`, `fall` and `status`. The same `key=value` words come from
//! `rvsadm --check-set` and from rvsd's config, and -S writes them back.
//! keepalived's checker semantics add `retryinterval` (delay_before_retry),
//! `firstcheck=decides` (before its first check one result decides),
//! `initial=down` (alpha), `digest` (HTTP_GET's MD5) and status ranges.
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use super::probe::{dns_type_code, dns_type_name, CheckKind, Codes, Url};

/// ldirectord's checkinterval default.
const INTERVAL: Duration = Duration::from_secs(5);
const TIMEOUT: Duration = Duration::from_secs(3);
/// "up→down confirm 3 times, down→up once".
const FALL: u32 = 3;
const RISE: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckConfig {
    pub kind: CheckKind,
    /// ldirectord's checkport: where to check instead of the real port.
    pub port: Option<u16>,
    /// `checkport.REAL:PORT=N`: one real server's own check port (keepalived's
    /// connect_port per real server), before `port`.
    pub real_ports: Vec<(SocketAddr, u16)>,
    pub interval: Duration,
    pub timeout: Duration,
    /// Passed checks in a row that bring a down server back.
    pub rise: u32,
    /// Failed checks in a row that take an up server down.
    pub fall: u32,
    /// Down means weight 0 (yes) or out of the list (no).
    pub quiescent: bool,
    /// After a failed check of a server still up, the next check comes
    /// this soon instead of after `interval` (keepalived's
    /// delay_before_retry). None: `interval`.
    pub retry_interval: Option<Duration>,
    /// A server's first check decides its state by itself, whatever
    /// rise and fall say (keepalived: "one failure is enough initially").
    pub first_decides: bool,
    /// A server starts down until a check passes (keepalived's alpha).
    pub start_down: bool,
    /// keepalived's quorum and hysteresis: the sorry server takes over when
    /// the weight of the real servers up falls below quorum - hysteresis
    /// (or to 0), and leaves when it reaches quorum + hysteresis; while it
    /// serves, the real servers still up are out of the list too. None:
    /// the sorry server serves while no real server is up.
    pub quorum: Option<(u32, u32)>,
}

/// What a check of a service of this protocol does when nothing says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
    /// SCTP and firewall-mark services: a TCP connect unless told.
    Other,
}

/// Each probe runs on a thread of its own: a floor under the interval
/// bounds how many a real server can cost per second.
const MIN_INTERVAL: f64 = 0.1;
const MIN_TIMEOUT: f64 = 0.01;

fn seconds(key: &str, v: &str, min: f64) -> Result<Duration, String> {
    let s: f64 = v
        .parse()
        .map_err(|_| format!("{key}={v}: want seconds, such as 5 or 0.5"))?;
    if !(min..=86_400.0).contains(&s) {
        return Err(format!("{key}={v}: want {min} to 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(s))
}

fn count(key: &str, v: &str) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err(format!("{key}={v}: want a count from 1 to 1000")),
    }
}

fn yes_no(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "yes" | "on" | "true" => Ok(true),
        "no" | "off" | "false" => Ok(false),
        _ => Err(format!("{key}={v}: want yes or no")),
    }
}

impl CheckConfig {
    /// Parses `key=value` words. Unknown keys and values are errors that
    /// name them; nothing is half-applied.
    pub fn parse<'a>(
        words: impl IntoIterator<Item = &'a str>,
        transport: Transport,
    ) -> Result<CheckConfig, String> {
        let mut checktype = None;
        let mut service = None;
        // A second request= starts another url (http only); receive,
        // virtualhost, status and digest belong to the url before them.
        let mut urls = vec![Url::default()];
        let mut requests = 0;
        let mut command = None;
        let mut querytype = None;
        let mut c = CheckConfig {
            kind: CheckKind::Tcp,
            port: None,
            real_ports: Vec::new(),
            interval: INTERVAL,
            timeout: TIMEOUT,
            rise: RISE,
            fall: FALL,
            quiescent: true,
            retry_interval: None,
            first_decides: false,
            start_down: false,
            quorum: None,
        };
        let mut quorum = None;
        let mut hysteresis = None;
        for w in words {
            let (k, v) = w
                .split_once('=')
                .ok_or_else(|| format!("{w}: want key=value"))?;
            match k {
                "checktype" => checktype = Some(v.to_string()),
                "service" => service = Some(v.to_string()),
                "request" => {
                    if requests > 0 {
                        urls.push(Url::default());
                    }
                    requests += 1;
                    if let Some(u) = urls.last_mut() {
                        u.path = v.to_string();
                    }
                }
                "receive" => {
                    if let Some(u) = urls.last_mut() {
                        u.receive = Some(v.to_string());
                    }
                }
                "virtualhost" => {
                    if let Some(u) = urls.last_mut() {
                        u.host = Some(v.to_string());
                    }
                }
                "checkcommand" => command = Some(v.to_string()),
                "status" => {
                    let codes = Codes::parse(v).ok_or_else(|| {
                        format!("status={v}: want HTTP status codes, such as 200 or 200-299,301")
                    })?;
                    if let Some(u) = urls.last_mut() {
                        u.status = Some(codes);
                    }
                }
                "digest" => {
                    if v.len() != 32 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(format!("digest={v}: want an MD5 digest, 32 hex digits"));
                    }
                    if let Some(u) = urls.last_mut() {
                        u.digest = Some(v.to_ascii_lowercase());
                    }
                }
                "quorum" => {
                    quorum = Some(
                        v.parse::<u32>()
                            .ok()
                            .filter(|&q| q >= 1)
                            .ok_or_else(|| format!("quorum={v}: want a weight of 1 or more"))?,
                    )
                }
                "hysteresis" => {
                    hysteresis = Some(
                        v.parse::<u32>()
                            .map_err(|_| format!("hysteresis={v}: want a weight of 0 or more"))?,
                    )
                }
                "querytype" => {
                    querytype = Some(dns_type_code(v).ok_or_else(|| {
                        format!("querytype={v}: want A, NS, CNAME, SOA, MX, TXT, AAAA, RRSIG or DNSKEY")
                    })?)
                }
                "retryinterval" => c.retry_interval = Some(seconds(k, v, MIN_INTERVAL)?),
                "firstcheck" => {
                    c.first_decides = match v {
                        "decides" => true,
                        "counts" => false,
                        _ => return Err(format!("firstcheck={v}: want decides or counts")),
                    }
                }
                "initial" => {
                    c.start_down = match v {
                        "down" => true,
                        "up" => false,
                        _ => return Err(format!("initial={v}: want up or down")),
                    }
                }
                "checkport" => {
                    c.port = Some(
                        v.parse::<u16>()
                            .ok()
                            .filter(|&p| p != 0)
                            .ok_or_else(|| format!("checkport={v}: want a port 1-65535"))?,
                    )
                }
                _ if k.starts_with("checkport.") => {
                    let real = k["checkport.".len()..]
                        .parse::<SocketAddr>()
                        .map_err(|_| format!("{k}: want checkport.ADDR:PORT=N, such as checkport.10.0.0.1:80=8080"))?;
                    let p = v
                        .parse::<u16>()
                        .ok()
                        .filter(|&p| p != 0)
                        .ok_or_else(|| format!("{k}={v}: want a port 1-65535"))?;
                    c.real_ports.retain(|(r, _)| *r != real);
                    c.real_ports.push((real, p));
                    c.real_ports.sort();
                }
                "checkinterval" => c.interval = seconds(k, v, MIN_INTERVAL)?,
                "checktimeout" => c.timeout = seconds(k, v, MIN_TIMEOUT)?,
                "rise" => c.rise = count(k, v)?,
                "fall" | "failurecount" => c.fall = count(k, v)?,
                "quiescent" => c.quiescent = yes_no(k, v)?,
                _ => return Err(format!("{k}: not a check option (checktype, service, request, receive, virtualhost, checkport, checkinterval, checktimeout, rise, fall, failurecount, quiescent, checkcommand, status, digest, retryinterval, firstcheck, initial, quorum, hysteresis, querytype)")),
            }
        }
        let mut first = urls.remove(0);
        let request = (requests > 0).then(|| std::mem::take(&mut first.path));
        let (receive, host, status, mut digest) =
            (first.receive, first.host, first.status, first.digest);
        let mut also = urls;
        let default_type = match transport {
            Transport::Udp => "connect",
            _ if service.is_some() => "negotiate",
            _ => "connect",
        };
        c.kind = match checktype.as_deref().unwrap_or(default_type) {
            "connect" if transport == Transport::Udp => CheckKind::Udp {
                payload: request.unwrap_or_default().into_bytes(),
                expect_reply: false,
            },
            "connect" => CheckKind::Tcp,
            "ping" => CheckKind::Ping,
            "external" => CheckKind::External {
                command: command.ok_or("checktype=external needs checkcommand=")?,
            },
            "negotiate" => match service.as_deref().unwrap_or("http") {
                s @ ("http" | "https") => CheckKind::Http {
                    path: request.unwrap_or_else(|| "/".into()),
                    status,
                    receive,
                    host,
                    tls: s == "https",
                    digest: digest.take(),
                    also: std::mem::take(&mut also),
                },
                "udp" => CheckKind::Udp {
                    payload: request.unwrap_or_default().into_bytes(),
                    expect_reply: true,
                },
                // request= is the HELO name, as for dns it is the name.
                "smtp" => {
                    if receive.is_some() {
                        return Err("service=smtp: rvs checks the reply codes (220, 250), not their text; drop receive=".into());
                    }
                    CheckKind::Smtp {
                        helo: request.unwrap_or_else(|| "smtpchecker.keepalived.org".into()),
                    }
                }
                "dns" => {
                    if receive.is_some() {
                        return Err("service=dns: rvs checks the answer's status, not what it holds; drop receive=".into());
                    }
                    CheckKind::Dns {
                        name: request.unwrap_or_else(|| ".".into()),
                        qtype: querytype.take().unwrap_or(6),
                    }
                }
                other => {
                    return Err(format!(
                        "service={other}: rvs negotiates http, https, udp, dns and smtp; use checktype=external for others"
                    ))
                }
            },
            other => {
                return Err(format!(
                    "checktype={other}: want connect, negotiate, ping or external"
                ))
            }
        };
        if digest.is_some() {
            return Err("digest=: only for an http or https check".into());
        }
        if !also.is_empty() {
            return Err(
                "request= given twice: several urls only for an http or https check".into(),
            );
        }
        if querytype.is_some() {
            return Err("querytype=: only for a service=dns check".into());
        }
        c.quorum = match (quorum, hysteresis) {
            (Some(q), h) => Some((q, h.unwrap_or(0))),
            (None, Some(_)) => return Err("hysteresis= needs quorum=".into()),
            (None, None) => None,
        };
        Ok(c)
    }

    /// Where to check `addr:port`: its own check port, the service's, or
    /// its own port.
    pub fn port_for(&self, addr: std::net::IpAddr, port: u16) -> u16 {
        self.real_ports
            .iter()
            .find(|(r, _)| r.ip() == addr && r.port() == port)
            .map(|&(_, p)| p)
            .or(self.port)
            .unwrap_or(port)
    }

    /// The `key=value` words that parse back to this check, each quoted for
    /// a shell when it needs to be (-S lines).
    pub fn words(&self) -> Vec<String> {
        let mut w: Vec<(&str, String)> = Vec::new();
        match &self.kind {
            CheckKind::Tcp => w.push(("checktype", "connect".into())),
            CheckKind::Ping => w.push(("checktype", "ping".into())),
            CheckKind::Smtp { helo } => {
                w.push(("checktype", "negotiate".into()));
                w.push(("service", "smtp".into()));
                w.push(("request", helo.clone()));
            }
            CheckKind::Dns { name, qtype } => {
                w.push(("checktype", "negotiate".into()));
                w.push(("service", "dns".into()));
                w.push(("request", name.clone()));
                w.push(("querytype", dns_type_name(*qtype).into()));
            }
            CheckKind::External { command } => {
                w.push(("checktype", "external".into()));
                w.push(("checkcommand", command.clone()));
            }
            CheckKind::Udp {
                payload,
                expect_reply,
            } => {
                if *expect_reply {
                    w.push(("checktype", "negotiate".into()));
                    w.push(("service", "udp".into()));
                } else {
                    w.push(("checktype", "connect".into()));
                }
                if !payload.is_empty() {
                    w.push(("request", String::from_utf8_lossy(payload).into_owned()));
                }
            }
            CheckKind::Http {
                path,
                status,
                receive,
                host,
                tls,
                digest,
                also,
            } => {
                w.push(("checktype", "negotiate".into()));
                w.push(("service", if *tls { "https" } else { "http" }.into()));
                w.push(("request", path.clone()));
                if let Some(r) = receive {
                    w.push(("receive", r.clone()));
                }
                if let Some(h) = host {
                    w.push(("virtualhost", h.clone()));
                }
                if let Some(s) = status {
                    w.push(("status", s.to_string()));
                }
                if let Some(d) = digest {
                    w.push(("digest", d.clone()));
                }
                for u in also {
                    w.push(("request", u.path.clone()));
                    if let Some(r) = &u.receive {
                        w.push(("receive", r.clone()));
                    }
                    if let Some(h) = &u.host {
                        w.push(("virtualhost", h.clone()));
                    }
                    if let Some(s) = &u.status {
                        w.push(("status", s.to_string()));
                    }
                    if let Some(d) = &u.digest {
                        w.push(("digest", d.clone()));
                    }
                }
            }
        }
        if let Some(p) = self.port {
            w.push(("checkport", p.to_string()));
        }
        let real_ports: Vec<(String, String)> = self
            .real_ports
            .iter()
            .map(|(r, p)| (format!("checkport.{r}"), p.to_string()))
            .collect();
        for (k, v) in &real_ports {
            w.push((k, v.clone()));
        }
        w.push(("checkinterval", secs(self.interval)));
        w.push(("checktimeout", secs(self.timeout)));
        w.push(("rise", self.rise.to_string()));
        w.push(("fall", self.fall.to_string()));
        w.push((
            "quiescent",
            if self.quiescent { "yes" } else { "no" }.into(),
        ));
        if let Some(r) = self.retry_interval {
            w.push(("retryinterval", secs(r)));
        }
        if self.first_decides {
            w.push(("firstcheck", "decides".into()));
        }
        if self.start_down {
            w.push(("initial", "down".into()));
        }
        if let Some((q, h)) = self.quorum {
            w.push(("quorum", q.to_string()));
            w.push(("hysteresis", h.to_string()));
        }
        w.into_iter()
            .map(|(k, v)| quote(&format!("{k}={v}")))
            .collect()
    }
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s}")
    }
}

/// A word as a POSIX shell reads it back.
pub fn quote(w: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "=/:._-,+@%".contains(c);
    if !w.is_empty() && w.chars().all(plain) {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

/// Splits a line into words as a POSIX shell would for plain words,
/// single and double quotes and backslashes (for -R lines).
pub fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated ' quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) if "\"\\$`".contains(c) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err("unterminated \" quote".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated \" quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    cur.push(c);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

impl fmt::Display for CheckConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.words().join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str, t: Transport) -> Result<CheckConfig, String> {
        CheckConfig::parse(split_words(s).unwrap().iter().map(String::as_str), t)
    }

    #[test]
    fn the_ldirectord_example_parses_to_an_http_check() {
        let c = parse(
            "checktype=negotiate service=http checkport=80 request=index.html \
             receive='Test Ldirectord' checkinterval=1 checktimeout=3 quiescent=no",
            Transport::Tcp,
        )
        .unwrap();
        assert_eq!(
            c.kind,
            CheckKind::Http {
                path: "index.html".into(),
                status: None,
                receive: Some("Test Ldirectord".into()),
                host: None,
                tls: false,
                digest: None,
                also: Vec::new(),
            }
        );
        assert_eq!(c.port, Some(80));
        assert_eq!(c.interval, Duration::from_secs(1));
        assert_eq!(c.timeout, Duration::from_secs(3));
        assert!(!c.quiescent);
        assert_eq!((c.rise, c.fall), (1, 3), "the issue's defaults");
    }

    #[test]
    fn defaults_follow_the_service_protocol() {
        assert_eq!(parse("", Transport::Tcp).unwrap().kind, CheckKind::Tcp);
        assert_eq!(
            parse("", Transport::Udp).unwrap().kind,
            CheckKind::Udp {
                payload: vec![],
                expect_reply: false
            }
        );
        assert!(parse("", Transport::Tcp).unwrap().quiescent);
        assert_eq!(
            parse("service=https", Transport::Tcp).unwrap().kind,
            CheckKind::Http {
                path: "/".into(),
                status: None,
                receive: None,
                host: None,
                tls: true,
                digest: None,
                also: Vec::new(),
            }
        );
    }

    #[test]
    fn bad_words_are_named() {
        for (s, want) in [
            ("checktype=smtp", "checktype=smtp"),
            ("checktype=negotiate service=ftp", "service=ftp"),
            ("checkinterval=0", "checkinterval=0"),
            ("checkinterval=0.05", "want 0.1 to 86400 seconds"),
            ("checktimeout=0.001", "want 0.01 to 86400 seconds"),
            ("fall=0", "fall=0"),
            ("quiescent=maybe", "quiescent=maybe"),
            ("checkport=70000", "checkport=70000"),
            ("status=42", "status=42"),
            ("status=200-100", "status=200-100"),
            ("digest=abc", "digest=abc"),
            (
                "checktype=connect digest=d41d8cd98f00b204e9800998ecf8427e",
                "only for an http",
            ),
            ("retryinterval=0", "retryinterval=0"),
            ("firstcheck=maybe", "firstcheck=maybe"),
            ("initial=sideways", "initial=sideways"),
            ("quorum=0", "quorum=0"),
            ("checktype=connect request=a request=b", "several urls"),
            ("checkport.10.0.0.1=80", "want checkport.ADDR:PORT=N"),
            ("checkport.10.0.0.1:80=0", "want a port"),
            ("service=dns querytype=PTR", "querytype=PTR"),
            ("checktype=connect querytype=A", "only for a service=dns"),
            ("hysteresis=1", "needs quorum"),
            ("bogus=1", "bogus"),
            ("checktype", "want key=value"),
            ("checktype=external", "checkcommand"),
        ] {
            let e = parse(s, Transport::Tcp).unwrap_err();
            assert!(e.contains(want), "{s}: {e}");
        }
    }

    #[test]
    fn words_parse_back_to_the_same_check() {
        for s in [
            "checktype=negotiate service=https request=/a receive='x y' virtualhost=h status=204 checkport=8443 rise=2 fall=5 checkinterval=0.25",
            "checktype=external checkcommand='/bin/check \"$1\" it'\\''s' quiescent=no",
            "checktype=negotiate service=udp request=ping",
            "checktype=ping checktimeout=0.5",
            "checktype=connect checkport=81 checkport.10.0.0.1:80=8080 'checkport.[2001:db8::1]:80=9090'",
            "checktype=negotiate service=dns request=example.com querytype=AAAA",
            "checktype=negotiate service=smtp request=helo.example.com",
            "checktype=negotiate service=http request=/a status=200 request=/b virtualhost=h status=200-299 digest=d41d8cd98f00b204e9800998ecf8427e",
            "checktype=negotiate service=http request=/h status=200-299,301 digest=d41d8cd98f00b204e9800998ecf8427e retryinterval=3 firstcheck=decides initial=down quorum=3 hysteresis=1",
        ] {
            let c = parse(s, Transport::Tcp).unwrap();
            let again = c.words().join(" ");
            assert_eq!(parse(&again, Transport::Tcp).unwrap(), c, "{again}");
        }
    }

    #[test]
    fn split_words_reads_shell_quoting() {
        assert_eq!(
            split_words(r#"a 'b c' "d \"e\"" f\ g ''"#).unwrap(),
            vec!["a", "b c", "d \"e\"", "f g", ""]
        );
        assert!(split_words("'open").is_err());
    }
}
