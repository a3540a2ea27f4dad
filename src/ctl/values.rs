//! The C library conversions ipvsadm's grammar is made of (strtol, atoi,
//! inet_aton, inet_pton, getservbyname), with glibc's edge cases, so a
//! value ipvsadm accepts is accepted here and one it rejects is rejected.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::ipvs::Protocol;

/// C's isspace in the "C" locale.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// A whole-string `strtol(s, &end, 10)` that ipvsadm accepts: leading
/// white space and a sign allowed, at least one digit, nothing after the
/// digits, no ERANGE.
pub(crate) fn strtol_whole(s: &str) -> Option<i64> {
    let t = s.trim_start_matches(is_c_space);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, t.get(1..)?),
        Some(b'+') => (false, t.get(1..)?),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: i64 = 0;
    for b in digits.bytes() {
        v = v.checked_mul(10)?.checked_sub(i64::from(b - b'0'))?;
    }
    // Accumulated negated, so that LONG_MIN itself fits, as in strtol.
    if neg {
        Some(v)
    } else {
        v.checked_neg()
    }
}

/// ipvsadm's `string_to_number`: a whole decimal number in min..=max.
pub(crate) fn string_to_number(s: &str, min: i64, max: i64) -> Option<i64> {
    strtol_whole(s).filter(|n| (min..=max).contains(n))
}

/// glibc's `atoi`: `(int) strtol(s, NULL, 10)`, so it stops at the first
/// non-digit, saturates at the range of long and then keeps the low 32
/// bits.
pub(crate) fn atoi(s: &str) -> i32 {
    let t = s.trim_start_matches(is_c_space);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, t.get(1..).unwrap_or("")),
        Some(b'+') => (false, t.get(1..).unwrap_or("")),
        _ => (false, t),
    };
    let mut v: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        let d = i64::from(b - b'0');
        v = match v.checked_mul(10).and_then(|x| x.checked_sub(d)) {
            Some(x) => x,
            None => {
                return if neg {
                    i64::MIN as i32
                } else {
                    i64::MAX as i32
                }
            }
        };
    }
    let v = if neg {
        v
    } else {
        v.checked_neg().unwrap_or(i64::MAX)
    };
    v as i32
}

/// `strtoul(s, &end, 0)` over a string that starts with a digit: the value
/// (None past u32::MAX, which inet_aton rejects anyway) and the bytes used.
fn strtoul_base0(s: &str) -> (Option<u64>, usize) {
    let b = s.as_bytes();
    let (radix, start) = match b {
        [b'0', b'x' | b'X', d, ..] if d.is_ascii_hexdigit() => (16, 2),
        [b'0', ..] => (8, 0),
        _ => (10, 0),
    };
    let len = b
        .iter()
        .skip(start)
        .take_while(|c| char::from(**c).is_digit(radix))
        .count();
    let digits = s.get(start..start + len).unwrap_or("");
    let value = u64::from_str_radix(digits, radix)
        .ok()
        .filter(|v| *v <= u64::from(u32::MAX));
    (value, start + len)
}

/// glibc's `inet_aton`: one to four parts, each decimal, octal (leading 0)
/// or hex (0x), the last part filling the remaining bytes, so `10.1` is
/// 10.0.0.1 and `24` is 0.0.0.24. Anything after a white-space character
/// is ignored.
pub(crate) fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let mut parts: Vec<u64> = Vec::with_capacity(4);
    let mut rest = s;
    let last = loop {
        if !rest.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        let (value, used) = strtoul_base0(rest);
        let value = value?;
        rest = rest.get(used..)?;
        match rest.strip_prefix('.') {
            Some(after) => {
                if parts.len() > 2 || value > 0xff {
                    return None;
                }
                parts.push(value);
                rest = after;
            }
            None => break value,
        }
    };
    if rest.chars().next().is_some_and(|c| !is_c_space(c)) {
        return None;
    }
    let limit = match parts.len() {
        0 => 0xffff_ffff,
        1 => 0xff_ffff,
        2 => 0xffff,
        _ => 0xff,
    };
    if last > limit {
        return None;
    }
    let high = parts
        .iter()
        .enumerate()
        .fold(0u64, |acc, (i, p)| acc | (p << (24 - 8 * i)));
    u32::try_from(high | last).ok().map(Ipv4Addr::from)
}

/// `inet_pton(AF_INET6, ...)`. Rust's grammar for IPv6 text is RFC 4291's,
/// as glibc's is.
pub(crate) fn inet_pton6(s: &str) -> Option<Ipv6Addr> {
    s.parse().ok()
}

/// `inet_pton(AF_INET, ...)`: a strict dotted quad without leading zeros.
pub(crate) fn inet_pton4(s: &str) -> Option<Ipv4Addr> {
    s.parse().ok()
}

/// ipvsadm's `service_to_port`: the name looked up in /etc/services for
/// the service's protocol (none yet when `-r` comes before `-t`, so no
/// name resolves).
pub(crate) fn service_to_port(name: &str, proto: Option<Protocol>) -> Option<u16> {
    super::names::service_port(name, proto?)
}

/// What ipvsadm's `parse_service` makes of `host[:port]` or `[v6]:port`:
/// the address and, if one was written, the port. A host part
/// that is not an address is a host name, resolved as ipvsadm's
/// host_to_addr does (gethostbyname: IPv4 only, the first address).
pub(crate) fn parse_service(buf: &str, proto: Option<Protocol>) -> Option<(IpAddr, Option<u16>)> {
    // str_is_digit: all digits, the empty string included, is no address.
    if buf.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (mut host, mut port) = (buf, None);
    if let Some(inner) = buf.strip_prefix('[') {
        let (h, after) = inner.split_once(']')?;
        host = h;
        port = Some(after.strip_prefix(':')?);
    }
    let addr = match inet_pton6(host) {
        Some(v6) => IpAddr::V6(v6),
        None => {
            // Re-split on the last colon, which drops a port written after
            // a bracketed IPv4 address: "[10.0.0.1]:80" has no port.
            port = None;
            if let Some((h, p)) = host.rsplit_once(':') {
                host = h;
                port = Some(p);
            }
            IpAddr::V4(inet_aton(host).or_else(|| super::names::host_addr(host))?)
        }
    };
    let port = match port {
        None => None,
        Some(p) => Some(match string_to_number(p, 0, 65535) {
            Some(n) => u16::try_from(n).ok()?,
            None => service_to_port(p, proto)?,
        }),
    };
    Some((addr, port))
}

/// Cuts a string as a strncpy into a fixed C buffer would, at a character
/// boundary.
pub(crate) fn truncate(s: &str, max_bytes: usize) -> String {
    let mut end = 0;
    for (i, c) in s.char_indices() {
        if i + c.len_utf8() > max_bytes {
            break;
        }
        end = i + c.len_utf8();
    }
    s.get(..end).unwrap_or("").to_string()
}
