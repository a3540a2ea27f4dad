//! service=smtp: the greeting must be 220, `HELO name` must get 250, and
//! QUIT must get an answer, as keepalived's SMTP_CHECK asks.

use std::io::{Read, Write};
use std::net::TcpStream;

use super::net::{arm, connect_tcp, Deadline};
use super::{Probe, Verdict};

/// A reply line past this is not SMTP.
const MAX_LINE: usize = 4096;

pub(super) fn check(probe: &Probe, deadline: &Deadline, helo: &str) -> Verdict {
    match exchange(probe, deadline, helo) {
        Ok(()) => Verdict::Up,
        Err(why) => Verdict::Down(why),
    }
}

fn exchange(probe: &Probe, deadline: &Deadline, helo: &str) -> Result<(), String> {
    let mut s = connect_tcp(probe.target, probe.source, deadline)?;
    let mut buf = Vec::new();
    expect(&mut s, deadline, &mut buf, 220, "greeting")?;
    send(&mut s, deadline, &format!("HELO {helo}\r\n"))?;
    expect(&mut s, deadline, &mut buf, 250, "HELO")?;
    send(&mut s, deadline, "QUIT\r\n")?;
    reply(&mut s, deadline, &mut buf, "QUIT").map(|_| ())
}

fn send(s: &mut TcpStream, deadline: &Deadline, line: &str) -> Result<(), String> {
    arm(s, deadline)
        .and_then(|()| s.write_all(line.as_bytes()))
        .map_err(|e| deadline.reason("smtp: send", &e))
}

fn expect(
    s: &mut TcpStream,
    deadline: &Deadline,
    buf: &mut Vec<u8>,
    want: u16,
    what: &str,
) -> Result<(), String> {
    match reply(s, deadline, buf, what)? {
        code if code == want => Ok(()),
        code => Err(format!("smtp: {what}: {code}, expected {want}")),
    }
}

/// The code of the next reply: its last line (`250 ok` after `250-...`).
fn reply(
    s: &mut TcpStream,
    deadline: &Deadline,
    buf: &mut Vec<u8>,
    what: &str,
) -> Result<u16, String> {
    loop {
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end();
            let code = text.get(..3).and_then(|c| c.parse::<u16>().ok());
            match (code, text.as_bytes().get(3)) {
                (Some(_), Some(b'-')) => continue,
                (Some(c), None | Some(b' ')) => return Ok(c),
                _ => {
                    return Err(format!(
                        "smtp: {what}: not an SMTP reply: {:?}",
                        text.chars().take(40).collect::<String>()
                    ))
                }
            }
        }
        if buf.len() > MAX_LINE {
            return Err(format!("smtp: {what}: reply line too long"));
        }
        let mut chunk = [0u8; 1024];
        arm(s, deadline).map_err(|e| deadline.reason("smtp: read", &e))?;
        match s.read(&mut chunk) {
            Ok(0) => return Err(format!("smtp: {what}: connection closed")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(deadline.reason("smtp: read", &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::{CheckKind, Verdict};
    use std::io::{BufRead, BufReader, Write};
    use std::net::{SocketAddr, TcpListener};
    use std::sync::mpsc::{channel, Receiver};
    use std::thread;

    /// A scripted SMTP server: the greeting, then one answer per command.
    fn server(
        greeting: &'static str,
        helo_reply: &'static str,
    ) -> (SocketAddr, Receiver<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let (tx, rx) = channel();
        thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut seen = Vec::new();
            s.write_all(greeting.as_bytes()).unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            for answer in [helo_reply, "221 bye\r\n"] {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                seen.push(line.trim_end().to_string());
                let _ = s.write_all(answer.as_bytes());
            }
            let _ = tx.send(seen);
        });
        (addr, rx)
    }

    fn smtp() -> CheckKind {
        CheckKind::Smtp {
            helo: "smtpchecker.keepalived.org".into(),
        }
    }

    #[test]
    fn up_after_greeting_helo_and_quit() {
        let (addr, seen) = server("220-mx.example.com ESMTP\r\n220 ready\r\n", "250 hello\r\n");
        assert_eq!(run_bounded(&probe(smtp(), addr)), Verdict::Up);
        assert_eq!(
            seen.recv().unwrap(),
            ["HELO smtpchecker.keepalived.org", "QUIT"]
        );
    }

    #[test]
    fn down_on_a_refusing_greeting_or_helo() {
        let (addr, _) = server("554 go away\r\n", "250 hello\r\n");
        assert_eq!(
            down_reason(run_bounded(&probe(smtp(), addr))),
            "smtp: greeting: 554, expected 220"
        );
        let (addr, _) = server("220 ready\r\n", "501 bad\r\n");
        assert_eq!(
            down_reason(run_bounded(&probe(smtp(), addr))),
            "smtp: HELO: 501, expected 250"
        );
        let (addr, _) = server("HTTP/1.0 200 OK\r\n", "");
        assert!(down_reason(run_bounded(&probe(smtp(), addr)))
            .starts_with("smtp: greeting: not an SMTP reply"));
    }
}
