//! HTTP and HTTPS probes against servers on loopback, started per test.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, OnceLock};
use std::thread;

use rustls::crypto::ring;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::super::test_util::*;
use super::super::{CheckKind, Verdict};
use super::*;

enum Reply {
    Bytes(&'static [u8]),
    /// Accept and never say a word (nor a TLS handshake).
    Silent,
}

struct Seen {
    request: String,
    sni: Option<String>,
}

struct Server {
    addr: SocketAddr,
    seen: Receiver<Seen>,
    /// The silent server holds its connection until this is dropped.
    _hold: Sender<()>,
}

fn serve(bind: &str, tls: bool, reply: Reply) -> Server {
    let listener = TcpListener::bind(bind).unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen_tx, seen) = channel();
    let (hold, hold_rx) = channel::<()>();
    let config = tls.then(server_config);
    thread::spawn(move || {
        let Ok((tcp, _)) = listener.accept() else {
            return;
        };
        let bytes = match reply {
            Reply::Silent => {
                let _ = hold_rx.recv();
                return;
            }
            Reply::Bytes(b) => b,
        };
        match config {
            None => {
                let mut s = tcp;
                let request = talk(&mut s, bytes);
                let _ = seen_tx.send(Seen { request, sni: None });
            }
            Some(cfg) => {
                let conn = ServerConnection::new(cfg).unwrap();
                let mut s = StreamOwned::new(conn, tcp);
                let request = talk(&mut s, bytes);
                let sni = s.conn.server_name().map(str::to_string);
                s.conn.send_close_notify();
                let _ = s.flush();
                let _ = seen_tx.send(Seen { request, sni });
            }
        }
    });
    Server {
        addr,
        seen,
        _hold: hold,
    }
}

/// Reads the request head, answers `reply`, and returns the request.
fn talk<S: Read + Write>(s: &mut S, reply: &[u8]) -> String {
    let mut req = Vec::new();
    let mut chunk = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => req.extend_from_slice(&chunk[..n]),
        }
    }
    let _ = s.write_all(reply);
    let _ = s.flush();
    String::from_utf8_lossy(&req).into_owned()
}

/// A self-signed certificate made by the openssl CLI at test time, so no
/// key material lives in the repository.
fn server_config() -> Arc<ServerConfig> {
    static CONFIG: OnceLock<Arc<ServerConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("rvs-probe-tls-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let p = |name: &str| -> PathBuf { dir.join(name) };
            openssl(
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-subj",
                    "/CN=rvs-test",
                    "-days",
                    "2",
                    "-outform",
                    "DER",
                ],
                &[("-keyout", p("key.pem")), ("-out", p("cert.der"))],
            );
            openssl(
                &["pkcs8", "-topk8", "-nocrypt", "-outform", "DER"],
                &[("-in", p("key.pem")), ("-out", p("key.der"))],
            );
            let cert = CertificateDer::from(std::fs::read(p("cert.der")).unwrap());
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                std::fs::read(p("key.der")).unwrap(),
            ));
            let _ = std::fs::remove_dir_all(&dir);
            let cfg = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert], key)
                .unwrap();
            Arc::new(cfg)
        })
        .clone()
}

fn openssl(args: &[&str], paths: &[(&str, PathBuf)]) {
    let mut cmd = Command::new("openssl");
    cmd.args(args);
    for (flag, path) in paths {
        cmd.arg(flag).arg(path);
    }
    let out = cmd
        .output()
        .expect("openssl CLI is needed for the HTTPS tests");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

fn http(path: &str, status: Option<u16>, receive: Option<&str>, tls: bool) -> CheckKind {
    CheckKind::Http {
        path: path.into(),
        status: status.map(super::Codes::one),
        receive: receive.map(str::to_string),
        host: None,
        tls,
        digest: None,
        also: Vec::new(),
    }
}

const OK_PAGE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall systems go\n";

#[test]
fn up_on_expected_status_and_body() {
    let s = serve("127.0.0.1:0", false, Reply::Bytes(OK_PAGE));
    let p = probe(http("health", Some(200), Some("systems go"), false), s.addr);
    assert_eq!(run_bounded(&p), Verdict::Up);
    let req = s.seen.recv().unwrap().request;
    assert!(req.starts_with("GET /health HTTP/1.0\r\n"), "{req}");
    assert!(
        req.contains(&format!("\r\nHost: 127.0.0.1:{}\r\n", s.addr.port())),
        "{req}"
    );
    assert!(req.contains("\r\nConnection: close\r\n"), "{req}");
}

#[test]
fn up_on_ipv6_with_bracketed_host() {
    let s = serve("[::1]:0", false, Reply::Bytes(OK_PAGE));
    let p = probe(http("/", None, None, false), s.addr);
    assert_eq!(run_bounded(&p), Verdict::Up);
    let req = s.seen.recv().unwrap().request;
    assert!(
        req.contains(&format!("\r\nHost: [::1]:{}\r\n", s.addr.port())),
        "{req}"
    );
}

#[test]
fn sends_configured_host() {
    let s = serve("127.0.0.1:0", false, Reply::Bytes(OK_PAGE));
    let mut kind = http("/", None, None, false);
    if let CheckKind::Http { host, .. } = &mut kind {
        *host = Some("www.example.com".into());
    }
    assert_eq!(run_bounded(&probe(kind, s.addr)), Verdict::Up);
    assert!(s
        .seen
        .recv()
        .unwrap()
        .request
        .contains("\r\nHost: www.example.com\r\n"));
}

#[test]
fn any_2xx_or_3xx_when_no_status_given() {
    let s = serve(
        "127.0.0.1:0",
        false,
        Reply::Bytes(b"HTTP/1.0 302 Found\r\nLocation: /x\r\n\r\n"),
    );
    assert_eq!(
        run_bounded(&probe(http("/", None, None, false), s.addr)),
        Verdict::Up
    );
    let s = serve(
        "127.0.0.1:0",
        false,
        Reply::Bytes(b"HTTP/1.0 404 Not Found\r\n\r\n"),
    );
    let why = down_reason(run_bounded(&probe(http("/", None, None, false), s.addr)));
    assert_eq!(why, "http: status 404, expected 2xx or 3xx");
}

#[test]
fn down_on_wrong_status() {
    let s = serve(
        "127.0.0.1:0",
        false,
        Reply::Bytes(b"HTTP/1.1 503 Service Unavailable\r\n\r\nall systems go"),
    );
    let why = down_reason(run_bounded(&probe(
        http("/", Some(200), Some("go"), false),
        s.addr,
    )));
    assert_eq!(why, "http: status 503, expected 200");
}

#[test]
fn down_when_body_lacks_receive() {
    let s = serve("127.0.0.1:0", false, Reply::Bytes(OK_PAGE));
    let why = down_reason(run_bounded(&probe(
        http("/", Some(200), Some("maintenance"), false),
        s.addr,
    )));
    assert_eq!(why, "http: body does not contain \"maintenance\"");
}

#[test]
fn receive_is_looked_for_in_the_first_64k_of_body_only() {
    static PAGE: OnceLock<Vec<u8>> = OnceLock::new();
    let page = PAGE.get_or_init(|| {
        let mut p = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
        p.resize(p.len() + MAX_BODY + 1000, b'x');
        p.extend_from_slice(b"needle");
        p
    });
    let s = serve("127.0.0.1:0", false, Reply::Bytes(page));
    let why = down_reason(run_bounded(&probe(
        http("/", None, Some("needle"), false),
        s.addr,
    )));
    assert_eq!(why, "http: body does not contain \"needle\"");
    let s = serve("127.0.0.1:0", false, Reply::Bytes(page));
    let p = probe(http("/", None, Some("xxxxxxxx"), false), s.addr);
    assert_eq!(run_bounded(&p), Verdict::Up);
}

#[test]
fn receive_is_not_matched_in_headers() {
    let s = serve("127.0.0.1:0", false, Reply::Bytes(OK_PAGE));
    let why = down_reason(run_bounded(&probe(
        http("/", None, Some("text/plain"), false),
        s.addr,
    )));
    assert!(why.starts_with("http: body does not contain"), "{why}");
}

#[test]
fn down_when_refused() {
    let why = down_reason(run_bounded(&probe(
        http("/", None, None, false),
        closed_tcp_port(),
    )));
    assert_eq!(why, "connect: connection refused");
}

#[test]
fn down_when_server_never_answers() {
    let s = serve("127.0.0.1:0", false, Reply::Silent);
    let why = down_reason(run_bounded(&probe(http("/", None, None, false), s.addr)));
    assert_eq!(why, "http: read: timeout after 500ms");
}

#[test]
fn down_when_closed_without_status_line() {
    let s = serve("127.0.0.1:0", false, Reply::Bytes(b""));
    let why = down_reason(run_bounded(&probe(http("/", None, None, false), s.addr)));
    assert_eq!(why, "http: connection closed before status line");
}

#[test]
fn down_on_garbage_status_line() {
    let s = serve(
        "127.0.0.1:0",
        false,
        Reply::Bytes(b"SSH-2.0-OpenSSH_9.2\r\n"),
    );
    let why = down_reason(run_bounded(&probe(http("/", None, None, false), s.addr)));
    assert_eq!(why, "http: malformed status line \"SSH-2.0-OpenSSH_9.2\"");
}

#[test]
fn https_up_with_self_signed_cert_and_sni() {
    let s = serve("127.0.0.1:0", true, Reply::Bytes(OK_PAGE));
    let mut kind = http("/health", Some(200), Some("systems go"), true);
    if let CheckKind::Http { host, .. } = &mut kind {
        *host = Some("www.example.com:8443".into());
    }
    assert_eq!(run_bounded(&probe(kind, s.addr)), Verdict::Up);
    let seen = s.seen.recv().unwrap();
    assert_eq!(seen.sni.as_deref(), Some("www.example.com"));
    assert!(seen.request.contains("\r\nHost: www.example.com:8443\r\n"));
}

#[test]
fn https_to_ip_sends_no_sni() {
    let s = serve("[::1]:0", true, Reply::Bytes(OK_PAGE));
    assert_eq!(
        run_bounded(&probe(http("/", None, None, true), s.addr)),
        Verdict::Up
    );
    assert_eq!(s.seen.recv().unwrap().sni, None);
}

#[test]
fn https_down_on_wrong_status() {
    let s = serve(
        "127.0.0.1:0",
        true,
        Reply::Bytes(b"HTTP/1.1 500 Oops\r\n\r\n"),
    );
    let why = down_reason(run_bounded(&probe(
        http("/", Some(200), None, true),
        s.addr,
    )));
    assert_eq!(why, "http: status 500, expected 200");
}

#[test]
fn https_down_when_server_never_handshakes() {
    let s = serve("127.0.0.1:0", true, Reply::Silent);
    let why = down_reason(run_bounded(&probe(http("/", None, None, true), s.addr)));
    assert_eq!(why, "tls handshake: timeout after 500ms");
}

#[test]
fn https_down_when_server_speaks_plain_http() {
    let s = serve(
        "127.0.0.1:0",
        false,
        Reply::Bytes(b"HTTP/1.0 400 Bad Request\r\n\r\n"),
    );
    // The plain server waits for a blank line a ClientHello never has, so
    // this ends in the handshake's timeout, still within the deadline.
    let why = down_reason(run_bounded(&probe(http("/", None, None, true), s.addr)));
    assert!(why.starts_with("tls handshake: "), "{why}");
}

#[test]
fn default_host_omits_the_schemes_port() {
    let v4: SocketAddr = "192.0.2.1:80".parse().unwrap();
    let v6: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
    assert_eq!(default_host(v4, false), "192.0.2.1");
    assert_eq!(default_host(v4, true), "192.0.2.1:80");
    assert_eq!(default_host(v6, true), "[2001:db8::1]");
    assert_eq!(default_host(v6, false), "[2001:db8::1]:443");
}

#[test]
fn status_line_parsing() {
    assert_eq!(
        status_line(b"HTTP/1.1 204 No Content\r\n", false),
        Ok(Some(204))
    );
    assert_eq!(status_line(b"HTTP/1.1 20", false), Ok(None));
    assert_eq!(status_line(b"HTTP/1.0 200", true), Ok(Some(200)));
    assert!(status_line(b"HTTP/1.1 2000 x\r\n", false).is_err());
}

fn with_digest(mut kind: CheckKind, d: &str, codes: &str) -> CheckKind {
    if let CheckKind::Http { digest, status, .. } = &mut kind {
        *digest = Some(d.into());
        *status = super::Codes::parse(codes);
    }
    kind
}

#[test]
fn digest_is_the_md5_of_the_whole_body() {
    // md5("all systems go\n"), from md5sum, not from rvs.
    let want = "fc649f9a2a0fe18b124f37b14dc4a161";
    let s = serve("127.0.0.1:0", false, Reply::Bytes(OK_PAGE));
    let kind = with_digest(http("/", None, None, false), want, "200-299");
    assert_eq!(run_bounded(&probe(kind, s.addr)), Verdict::Up);
    let s = serve("127.0.0.1:0", false, Reply::Bytes(OK_PAGE));
    let kind = with_digest(http("/", None, None, false), &"0".repeat(32), "200-299");
    let why = down_reason(run_bounded(&probe(kind, s.addr)));
    assert_eq!(
        why,
        format!("http: body digest {want}, expected {}", "0".repeat(32))
    );
}

#[test]
fn status_ranges() {
    let s = serve(
        "127.0.0.1:0",
        false,
        Reply::Bytes(b"HTTP/1.0 302 Found\r\n\r\n"),
    );
    let mut kind = http("/", None, None, false);
    if let CheckKind::Http { status, .. } = &mut kind {
        *status = super::Codes::parse("200-299");
    }
    let why = down_reason(run_bounded(&probe(kind, s.addr)));
    assert_eq!(why, "http: status 302, expected 200-299");
}

#[test]
fn every_url_must_pass() {
    // Answers two connections with the same page and reports the requests.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = channel();
    thread::spawn(move || {
        for _ in 0..2 {
            let Ok((mut tcp, _)) = listener.accept() else {
                return;
            };
            let _ = tx.send(talk(&mut tcp, OK_PAGE));
        }
    });
    let mut kind = http("/a", Some(200), None, false);
    if let CheckKind::Http { also, .. } = &mut kind {
        also.push(super::super::Url {
            path: "/b".into(),
            status: super::Codes::parse("201"),
            ..Default::default()
        });
    }
    let why = down_reason(run_bounded(&probe(kind, addr)));
    assert_eq!(why, "/b: http: status 200, expected 201");
    assert!(rx.recv().unwrap().starts_with("GET /a "));
    assert!(rx.recv().unwrap().starts_with("GET /b "));
}
