//! rvsd under systemd (Type=notify): READY=1 comes only once the
//! management socket answers and the configured rules are in, and
//! STOPPING=1 comes on SIGTERM.
mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{TempDir, RVSD};

const RVSADM: &str = env!("CARGO_BIN_EXE_rvsadm");

/// Datagrams until one holds `want`, at most `timeout`; all of them.
fn recv_until(sock: &UnixDatagram, want: &str, timeout: Duration) -> Vec<String> {
    let end = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = msg.lines().any(|l| l == want);
                got.push(msg);
                if done {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    got
}

#[test]
fn ready_after_the_socket_answers_and_stopping_on_sigterm() {
    let dir = TempDir::new("notify");
    let ctl = dir.path("rvsd.sock");
    let rules = dir.path("rules");
    std::fs::write(&rules, "-A -t 198.18.0.100:80 -s rr\n").unwrap();
    let config = dir.path("rvsd.toml");
    std::fs::write(
        &config,
        format!(
            "[eal]\nargs = [\"--no-huge\", \"--no-shconf\", \"--no-telemetry\", \"-m\", \"128\", \"--lcores=0@0,1@0\", \"--file-prefix=rvst-notify-{}\"]\n\
             [dataplane]\nworkers = [1]\n[[port]]\nname = \"n\"\ndevargs = \"net_null0\"\naddresses = [\"198.18.0.1/24\"]\n\
             [ctl]\nsocket = \"{}\"\nrules = \"{}\"\n[metrics]\nlisten = \"off\"\n",
            std::process::id(),
            ctl.display(),
            rules.display()
        ),
    )
    .unwrap();
    let notify_path = dir.path("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let mut child = Command::new(RVSD)
        .arg("--config")
        .arg(&config)
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path("rvsd.stderr")).unwrap())
        .spawn()
        .expect("spawn rvsd");
    let log = || std::fs::read_to_string(dir.path("rvsd.stderr")).unwrap_or_default();

    let got = recv_until(&notify, "READY=1", Duration::from_secs(30));
    assert!(
        got.iter().any(|m| m.lines().any(|l| l == "READY=1")),
        "no READY=1 within 30 s (got {got:?}); rvsd log:\n{}",
        log()
    );
    // The socket answered before READY=1 was sent, so it answers now,
    // with the configured rules already applied.
    let out = Command::new(RVSADM)
        .args(["--socket", ctl.to_str().unwrap(), "-Ln"])
        .output()
        .expect("run rvsadm");
    assert!(out.status.success(), "{out:?}\n{}", log());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("TCP  198.18.0.100:80 rr"),
        "{out:?}"
    );
    let ready = got.iter().find(|m| m.contains("READY=1")).unwrap();
    assert!(
        ready.contains("STATUS=forwarding: 1 port(s), 1 worker(s)"),
        "{ready:?}"
    );

    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let got = recv_until(&notify, "STOPPING=1", Duration::from_secs(20));
    let status = child.wait().expect("wait rvsd");
    assert!(
        got.iter().any(|m| m.lines().any(|l| l == "STOPPING=1")),
        "no STOPPING=1 after SIGTERM (got {got:?}); rvsd log:\n{}",
        log()
    );
    assert!(status.success(), "{status:?}\n{}", log());
}
