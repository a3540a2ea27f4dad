//! The SIP persistence engine (`--pe sip`, the kernel's ip_vs_pe_sip): a
//! persistent UDP service keys its templates by the Call-ID of the SIP
//! message that opens a conn as well as by the client's network, so every
//! message of one call that opens a conn meets the same real server.
//!
//! The Call-ID is found the way the kernel finds it (nf_conntrack_sip's
//! header search, then ip_vs_pe_sip's checks), so a message the kernel
//! would drop for want of a Call-ID is dropped here too:
//! - a header line starts after CR, LF or CR LF and not with a space or tab
//!   (those continue the previous line);
//! - its name is `Call-ID` (any case; a longer name that starts with it
//!   also matches), or the compact `i` followed by a byte that is not a
//!   letter; then optional blanks, which may fold onto a continuation line,
//!   a colon, and blanks again; a name without its colon ends the search;
//! - the value is a word, optionally `@` and a second word (RFC 3261's
//!   `word ["@" word]`); an empty value is passed over and the search goes
//!   on further into the message;
//! - the value must be at most 255 bytes ([`PE_DATA_MAX`]) and be followed
//!   by CR or LF.
//!
//! Letters are the kernel's: ASCII and Latin-1's (192..=255 but 215, 247).

/// IP_VS_PEDATA_MAXLEN: a longer Call-ID is refused.
pub const PE_DATA_MAX: usize = 255;

/// The engine's name, as ipvsadm shows it.
pub const NAME: &str = "sip";

const FULL: &[u8] = b"call-id";
const COMPACT: u8 = b'i';

fn is_alpha(c: u8) -> bool {
    c.is_ascii_alphabetic() || (c >= 192 && c != 215 && c != 247)
}

fn is_alnum(c: u8) -> bool {
    is_alpha(c) || c.is_ascii_digit()
}

/// RFC 3261's `word` characters as nf_conntrack_sip accepts them.
fn is_word(c: u8) -> bool {
    is_alnum(c)
        || matches!(
            c,
            b'!' | b'"'
                | b'%'
                | b'('..=b'+'
                | b':'
                | b'<'
                | b'>'
                | b'?'
                | b'['..=b']'
                | b'_'
                | b'`'
                | b'{'
                | b'}'
                | b'~'
                | b'-'..=b'/'
                | b'\''
        )
}

fn word_len(d: &[u8], at: usize) -> usize {
    d.get(at..)
        .map_or(0, |s| s.iter().take_while(|&&c| is_word(c)).count())
}

fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// Past blanks, and past a line break that continues on a line starting
/// with a blank. None when a line break does not continue (or the data
/// ends inside one); `d.len()` when the data ends in blanks.
fn skip_whitespace(d: &[u8], mut i: usize) -> Option<usize> {
    while i < d.len() {
        match d[i] {
            b' ' | b'\t' => i += 1,
            b'\r' | b'\n' => return follow_continuation(d, i),
            _ => return Some(i),
        }
    }
    Some(i)
}

fn follow_continuation(d: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    if i >= d.len() {
        return None;
    }
    if d[i - 1] == b'\r' && d[i] == b'\n' {
        i += 1;
        if i >= d.len() {
            return None;
        }
    }
    if !is_blank(d[i]) {
        return None;
    }
    while i < d.len() && is_blank(d[i]) {
        i += 1;
    }
    Some(i)
}

/// The Call-ID value's length at `at`: `word`, or `word@word`.
fn callid_len(d: &[u8], at: usize) -> usize {
    let len = word_len(d, at);
    let after = at + len;
    if len == 0 || after >= d.len() || d[after] != b'@' {
        return len;
    }
    let domain = word_len(d, after + 1);
    if domain == 0 {
        0
    } else {
        len + 1 + domain
    }
}

enum Header {
    /// The value at (offset, len).
    Found(usize, usize),
    /// The header is there but its value is empty; the offset of where the
    /// value would be.
    Empty(usize),
    NotFound,
}

/// nf_conntrack_sip's header search for Call-ID from `from`.
fn find_header(d: &[u8], from: usize) -> Header {
    let limit = d.len();
    let mut i = from;
    while i < limit {
        // A line begins after CR, LF or CR LF.
        if d[i] != b'\r' && d[i] != b'\n' {
            i += 1;
            continue;
        }
        i += 1;
        if i >= limit {
            break;
        }
        if d[i - 1] == b'\r' && d[i] == b'\n' {
            i += 1;
            if i >= limit {
                break;
            }
        }
        if is_blank(d[i]) {
            continue;
        }
        if limit - i >= FULL.len() && d[i..i + FULL.len()].eq_ignore_ascii_case(FULL) {
            i += FULL.len();
        } else if limit - i > 1 && d[i].eq_ignore_ascii_case(&COMPACT) && !is_alpha(d[i + 1]) {
            i += 1;
        } else {
            continue;
        }
        let Some(c) = skip_whitespace(d, i) else {
            break;
        };
        if c >= limit || d[c] != b':' || c + 1 >= limit {
            break;
        }
        let Some(v) = skip_whitespace(d, c + 1) else {
            break;
        };
        let len = callid_len(d, v);
        return if len == 0 {
            Header::Empty(v)
        } else {
            Header::Found(v, len)
        };
    }
    Header::NotFound
}

/// The Call-ID of the SIP message `payload` (a UDP datagram's data), or
/// None when the kernel would find none: the packet is then dropped.
pub fn call_id(payload: &[u8]) -> Option<&[u8]> {
    let mut from = 0;
    let (off, len) = loop {
        match find_header(payload, from) {
            Header::Found(off, len) => break (off, len),
            Header::NotFound => return None,
            // ip_vs_pe_sip adds the value's offset from the start of the
            // data to where it searched from, which skips further than the
            // value itself once that was not the start: done the same, so
            // that the same messages find a Call-ID here as there.
            Header::Empty(off) => from += off,
        }
    };
    if len > PE_DATA_MAX {
        return None;
    }
    match payload.get(off + len) {
        Some(b'\r' | b'\n') => Some(&payload[off..off + len]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(msg: &str) -> Option<&str> {
        call_id(msg.as_bytes()).map(|b| std::str::from_utf8(b).unwrap())
    }

    /// RFC 3261 section 24.2, message F1 (Alice's INVITE to Bob).
    const F1: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\n\
        Max-Forwards: 70\r\n\
        From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
        To: Bob <sip:bob@biloxi.example.com>\r\n\
        Call-ID: 3848276298220188511@atlanta.example.com\r\n\
        CSeq: 1 INVITE\r\n\
        Contact: <sip:alice@client.atlanta.example.com;transport=udp>\r\n\
        Content-Type: application/sdp\r\n\
        Content-Length: 0\r\n\
        \r\n";

    #[test]
    fn rfc3261_invite() {
        assert_eq!(id(F1), Some("3848276298220188511@atlanta.example.com"));
    }

    #[test]
    fn compact_form_and_case() {
        // RFC 3261 section 7.3.3's compact example and section 20.8's forms.
        let m = "BYE sip:bob@biloxi.com SIP/2.0\r\nv: SIP/2.0/UDP pc33.atlanta.com\r\n\
                 i:f81d4fae-7dec-11d0-a765-00a0c91e6bf6@192.0.2.4\r\nl: 0\r\n\r\n";
        assert_eq!(
            id(m),
            Some("f81d4fae-7dec-11d0-a765-00a0c91e6bf6@192.0.2.4")
        );
        let m = "OPTIONS sip:x SIP/2.0\r\nCALL-id  \t: a84b4c76e66710@pc33.atlanta.com\r\n\r\n";
        assert_eq!(id(m), Some("a84b4c76e66710@pc33.atlanta.com"));
        let m = "ACK sip:x SIP/2.0\nI : abc\n\n";
        assert_eq!(id(m), Some("abc"), "LF alone ends lines (RFC 2543)");
        let m = "ACK sip:x SIP/2.0\rcall-id:abc\r";
        assert_eq!(id(m), Some("abc"), "CR alone too");
    }

    #[test]
    fn other_headers_are_not_the_call_id() {
        // In-Reply-To starts with an i followed by a letter.
        let m = "INVITE sip:x SIP/2.0\r\nIn-Reply-To: 70710@saturn.bell-tel.com\r\n\
                 Call-ID: real@host\r\n\r\n";
        assert_eq!(id(m), Some("real@host"));
        // Call-Info is not Call-ID.
        let m = "INVITE sip:x SIP/2.0\r\nCall-Info: <http://wwww.example.com/alice/photo.jpg>\r\n\
                 i: x1\r\n\r\n";
        assert_eq!(id(m), Some("x1"));
        // The request line is never a header, nor is a continuation line.
        assert_eq!(id("Call-ID: a\r\n\r\n"), None);
        assert_eq!(
            id("INVITE x SIP/2.0\r\nSubject: hi\r\n Call-ID: a\r\n\r\n"),
            None
        );
        // No Call-ID at all.
        assert_eq!(id("INVITE x SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n"), None);
        assert_eq!(id(""), None);
    }

    #[test]
    fn folded_whitespace() {
        let m = "INVITE x SIP/2.0\r\nCall-ID\r\n :\r\n\t folded@host\r\n\r\n";
        assert_eq!(id(m), Some("folded@host"));
        // A line break that does not continue ends the search.
        assert_eq!(id("INVITE x SIP/2.0\r\nCall-ID\r\n: a\r\n\r\n"), None);
    }

    #[test]
    fn a_name_without_its_colon_ends_the_search() {
        let m = "INVITE x SIP/2.0\r\nCall-IDx: a\r\nCall-ID: b\r\n\r\n";
        assert_eq!(id(m), None);
        let m = "INVITE x SIP/2.0\r\ni-x: a\r\nCall-ID: b\r\n\r\n";
        assert_eq!(id(m), None);
    }

    #[test]
    fn the_value_must_end_its_line() {
        assert_eq!(id("INVITE x SIP/2.0\r\nCall-ID: abc def\r\n\r\n"), None);
        assert_eq!(id("INVITE x SIP/2.0\r\nCall-ID: abc"), None, "no line end");
        assert_eq!(id("INVITE x SIP/2.0\r\nCall-ID: abc@\r\n\r\n"), None);
        assert_eq!(id("INVITE x SIP/2.0\r\nCall-ID: abc;x\r\n\r\n"), None);
        // Every word character RFC 3261 allows.
        let w = "a-.!%*_+`'~()<>:\\\"/[]?{}@Z9";
        let m = format!("INVITE x SIP/2.0\r\nCall-ID: {w}\r\n\r\n");
        assert_eq!(id(&m), Some(w));
    }

    #[test]
    fn an_empty_value_is_passed_over() {
        let m = "INVITE x SIP/2.0\r\nCall-ID: ;\r\nCall-ID: second\r\n\r\n";
        assert_eq!(id(m), Some("second"));
        // A value left empty by its line's end is a line break that does
        // not continue: the search ends there.
        let m = "INVITE x SIP/2.0\r\nCall-ID: \r\nCall-ID: second\r\n\r\n";
        assert_eq!(id(m), None);
    }

    #[test]
    fn length_limit() {
        let ok = "a".repeat(PE_DATA_MAX);
        let m = format!("INVITE x SIP/2.0\r\nCall-ID: {ok}\r\n\r\n");
        assert_eq!(id(&m), Some(ok.as_str()));
        let m = format!("INVITE x SIP/2.0\r\nCall-ID: {ok}b\r\n\r\n");
        assert_eq!(id(&m), None);
    }

    #[test]
    fn latin1_letters_are_letters() {
        let mut m = b"INVITE x SIP/2.0\r\ni\xe9: a\r\ni: b\r\n\r\n".to_vec();
        assert_eq!(
            call_id(&m),
            Some(&b"b"[..]),
            "i then a letter is not compact"
        );
        m = b"INVITE x SIP/2.0\r\ni\xd7: a\r\n\r\n".to_vec();
        assert_eq!(
            call_id(&m),
            None,
            "x (215) is not a letter: a name without colon"
        );
        m = b"INVITE x SIP/2.0\r\nCall-ID: \xc0\xff@h\r\n\r\n".to_vec();
        assert_eq!(call_id(&m), Some(&b"\xc0\xff@h"[..]));
    }
}
