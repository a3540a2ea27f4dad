//! A session record as one JSON line, the form log shippers (Vector,
//! Fluent Bit, rsyslog's mmjsonparse) read without a grammar:
//!
//! ```text
//! {"time":"2026-12-04T13:25:35.123Z","event":"start","proto":"tcp","client":"198.51.100.7:40000","vip":"198.18.0.100:80","local":"198.19.0.1:1029","real":"198.19.0.11:80","fwd":"fullnat","state":"SYN_RECV","worker":0}
//! ```
//!
//! Every value is a number, an address or one of rvs's own names, so
//! nothing needs escaping. `local` is null but for FULLNAT.
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Event, Session};
use crate::ipvs::FwdMethod;

/// Appends `s` as a line to `out`; `epoch` is the wall-clock time of the
/// workers' millisecond 0.
pub fn write(out: &mut String, s: &Session, epoch: SystemTime) {
    let at = epoch + Duration::from_millis(s.at);
    out.push_str("{\"time\":\"");
    rfc3339(out, at);
    let _ = write!(
        out,
        "\",\"event\":\"{}\",\"proto\":\"{}\",\"client\":\"{}\",\"vip\":\"{}\",\"local\":",
        match s.event {
            Event::Start => "start",
            Event::End => "end",
        },
        proto_name(s.proto),
        s.client,
        s.vip
    );
    match s.local {
        Some(l) => {
            let _ = write!(out, "\"{l}\"");
        }
        None => out.push_str("null"),
    }
    let _ = writeln!(
        out,
        ",\"real\":\"{}\",\"fwd\":\"{}\",\"state\":\"{}\",\"worker\":{}}}",
        s.real,
        fwd_name(s.fwd),
        s.state,
        s.worker
    );
}

fn proto_name(p: u8) -> &'static str {
    match p {
        6 => "tcp",
        17 => "udp",
        132 => "sctp",
        _ => "other",
    }
}

/// The metrics' spelling of a forwarding method.
fn fwd_name(f: FwdMethod) -> &'static str {
    match f {
        FwdMethod::Masq => "masq",
        FwdMethod::Local => "local",
        FwdMethod::Tunnel => "tunnel",
        FwdMethod::DirectRoute => "route",
        FwdMethod::FullNat => "fullnat",
    }
}

/// `YYYY-MM-DDThh:mm:ss.mmmZ`, UTC.
fn rfc3339(out: &mut String, t: SystemTime) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    );
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's days_from_civil, inverted).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(event: Event, local: Option<&str>, fwd: FwdMethod) -> Session {
        Session {
            event,
            at: 1_500,
            worker: 1,
            proto: 6,
            fwd,
            client: "[2001:db8::7]:40000".parse().unwrap(),
            vip: "198.18.0.100:80".parse().unwrap(),
            local: local.map(|l| l.parse().unwrap()),
            real: "198.19.0.11:8080".parse().unwrap(),
            state: "ESTABLISHED",
        }
    }

    #[test]
    fn a_line_is_json_with_the_wall_clock_time_of_the_event() {
        // 2026-12-04T13:25:34Z is 1796390734 s after 1970 (date -d ... +%s).
        let epoch = UNIX_EPOCH + Duration::from_secs(1_796_390_734);
        let mut out = String::new();
        write(
            &mut out,
            &session(Event::Start, Some("198.19.0.1:1029"), FwdMethod::FullNat),
            epoch,
        );
        assert_eq!(
            out,
            "{\"time\":\"2026-12-04T13:25:35.500Z\",\"event\":\"start\",\"proto\":\"tcp\",\"client\":\"[2001:db8::7]:40000\",\"vip\":\"198.18.0.100:80\",\"local\":\"198.19.0.1:1029\",\"real\":\"198.19.0.11:8080\",\"fwd\":\"fullnat\",\"state\":\"ESTABLISHED\",\"worker\":1}\n"
        );
        let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(v["local"], "198.19.0.1:1029");

        out.clear();
        write(&mut out, &session(Event::End, None, FwdMethod::Masq), epoch);
        let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(v["event"], "end");
        assert_eq!(v["local"], serde_json::Value::Null);
        assert_eq!(v["fwd"], "masq");
    }

    #[test]
    fn dates_across_leap_years_and_centuries() {
        // Day numbers from `date -u -d @$((N*86400)) +%F`.
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(20_791), (2026, 12, 4));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1));
    }
}
