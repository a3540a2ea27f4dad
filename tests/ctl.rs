//! The management socket end to end: rvsd runs, `ipvsadm` is a symlink to
//! rvsadm, and an operator's session (shared/operator-scenarios.md) gives the
//! listings ipvsadm 1.31 would print. Expected lines are written from
//! ipvsadm's printf formats, never from rvsadm's output.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{wait_until, Daemon, TempDir};

const RVSADM: &str = env!("CARGO_BIN_EXE_rvsadm");

struct Admin {
    bin: PathBuf,
    socket: PathBuf,
}

impl Admin {
    fn run(&self, line: &str) -> Output {
        self.run_input(line, None)
    }

    fn run_input(&self, line: &str, input: Option<&str>) -> Output {
        let mut c = Command::new(&self.bin);
        c.args(line.split_whitespace())
            .env("RVS_SOCKET", &self.socket);
        c.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().expect("run ipvsadm");
        if let Some(text) = input {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// Runs a command that must succeed silently.
    fn ok(&self, line: &str) {
        let o = self.run(line);
        assert!(
            o.status.success(),
            "ipvsadm {line}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    fn stdout(&self, line: &str) -> String {
        let o = self.run(line);
        assert!(
            o.status.success(),
            "ipvsadm {line}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }
}

/// "%s %s" of "%-4s %s" service name and scheduler (ipvsadm's default view).
fn svc(proto: &str, addr: &str, rest: &str) -> String {
    format!("{proto:<4} {addr} {rest}\n")
}

/// "  -> %-28s %-7s %-6d %-10u %-10u\n"
fn dest(addr: &str, fwd: &str, weight: i32) -> String {
    format!("  -> {addr:<28} {fwd:<7} {weight:<6} {:<10} {:<10}\n", 0, 0)
}

const TITLE: &str = "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n";

fn start(dir: &TempDir, rules: Option<&str>) -> (Daemon, Admin) {
    let rules_line = match rules {
        Some(text) => {
            let p = dir.path("rules");
            std::fs::write(&p, text).unwrap();
            format!("rules = \"{}\"\n", p.display())
        }
        None => String::new(),
    };
    start_with(dir, &rules_line)
}

/// rvsd with `ctl_lines` in its `[ctl]` table.
fn start_with(dir: &TempDir, ctl_lines: &str) -> (Daemon, Admin) {
    let empty = dir.path("empty.pcap");
    let out = dir.path("out.pcap");
    // A pcap global header with no packets: the port receives nothing.
    let mut hdr = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    hdr.extend_from_slice(&[0; 8]);
    hdr.extend_from_slice(&65535u32.to_le_bytes());
    hdr.extend_from_slice(&1u32.to_le_bytes());
    std::fs::write(&empty, hdr).unwrap();
    let socket = dir.path("ctl/rvsd.sock");
    // A socket left by a killed rvsd is no sign of a new one.
    let _ = std::fs::remove_file(&socket);
    let config = dir.path("rvsd.toml");
    std::fs::write(
        &config,
        format!(
            "[eal]\nargs = [\"--no-huge\", \"--no-shconf\", \"--no-telemetry\", \"-m\", \"128\", \"--lcores=0@0,1@0\"]\n\
             [dataplane]\nworkers = [1]\n[[port]]\nname = \"p\"\ndevargs = \"net_pcap0,rx_pcap={},tx_pcap={}\"\n\
             addresses = [\"198.18.0.1/24\"]\n[metrics]\nlisten = \"off\"\n[ctl]\nsocket = \"{}\"\n{ctl_lines}",
            empty.display(),
            out.display(),
            socket.display()
        ),
    )
    .unwrap();
    let mut d = Daemon::start(dir, &[], &config);
    let up = wait_until(Duration::from_secs(20), || {
        d.has_exited() || socket.exists()
    });
    assert!(
        up && !d.has_exited(),
        "no management socket; log:\n{}",
        d.log()
    );
    // ipvsadm is rvsadm under another name.
    let link = dir.path("ipvsadm");
    if !link.exists() {
        std::os::unix::fs::symlink(RVSADM, &link).unwrap();
    }
    (d, Admin { bin: link, socket })
}

#[test]
fn an_operators_session_through_the_ipvsadm_symlink() {
    let dir = TempDir::new("ctl");
    let (rvsd, adm) = start(&dir, None);
    let mode = std::fs::metadata(&adm.socket)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777);
    assert_eq!(mode.ok(), Some(0o600), "socket mode");

    // Scenario 1, NAT with rr and port mapping; scenario 2, DR with wrr;
    // scenario 5/6, FWM 10 with -p 3600; PCC on port 0 with a /24.
    for l in [
        "-A -t 172.20.2.43:80 -s rr",
        "-a -t 172.20.2.43:80 -r 192.168.10.201 -m",
        "-a -t 172.20.2.43:80 -r 192.168.10.202 -m",
        "-A -t 192.168.1.222:80",
        "-a -t 192.168.1.222:80 -r 192.168.1.224:8080 -m -w 1",
        "-a -t 192.168.1.222:80 -r 192.168.1.223 -m",
        "-e -t 192.168.1.222:80 -r 192.168.1.223 -m -w 3",
        "-A -t 10.0.0.5:80 -s wrr",
        "-a -t 10.0.0.5:80 -r 10.1.0.1 -g -w 1",
        "-a -t 10.0.0.5:80 -r 10.1.0.2:8080 -g -w 2",
        "-A -f 10 -s rr -p 3600",
        "-a -f 10 -r 192.168.39.17 -g",
        "-A -t 10.0.0.9:0 -s rr -p -M 255.255.255.0",
        "-a -t 10.0.0.9:0 -r 10.2.0.1 -g",
    ] {
        adm.ok(l);
    }
    // libipvs sorts by `(int)(ntohl(a) - ntohl(b))`, which wraps: 172.20/16
    // and 192.168/16 differ from 10/8 by more than 2^31, so they sort first.
    let want = format!(
        "IP Virtual Server version 1.2.1 (size=4096)\n{TITLE}{}{}{}{}{}{}{}{}{}{}{}{}{}",
        svc("TCP", "172.20.2.43:80", "rr"),
        dest("192.168.10.201:80", "Masq", 1),
        dest("192.168.10.202:80", "Masq", 1),
        svc("TCP", "192.168.1.222:80", "wlc"),
        dest("192.168.1.223:80", "Masq", 3),
        dest("192.168.1.224:8080", "Masq", 1),
        svc("TCP", "10.0.0.5:80", "wrr"),
        dest("10.1.0.1:80", "Route", 1),
        dest("10.1.0.2:80", "Route", 2),
        svc("TCP", "10.0.0.9:0", "rr persistent 360 mask 255.255.255.0"),
        dest("10.2.0.1:0", "Route", 1),
        "FWM  10 rr persistent 3600\n",
        dest("192.168.39.17:0", "Route", 1),
    );
    assert_eq!(adm.stdout("-Ln"), want);
    // Operators grep listings for a server.
    assert!(adm
        .stdout("-L -n")
        .lines()
        .any(|l| l.contains("192.168.1.224:8080")));

    // -E changes the scheduler (and, as in ipvsadm, drops what it omits).
    adm.ok("-E -t 172.20.2.43:80 -s wlc");
    let one = adm.stdout("-Ln -t 172.20.2.43:80");
    assert_eq!(
        one,
        format!(
            "{TITLE}{}{}{}",
            svc("TCP", "172.20.2.43:80", "wlc"),
            dest("192.168.10.201:80", "Masq", 1),
            dest("192.168.10.202:80", "Masq", 1)
        )
    );
    assert_eq!(
        adm.stdout("-Ln --timeout"),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
    adm.ok("--set 900 120 60");
    assert_eq!(
        adm.stdout("-Ln --timeout"),
        "Timeout (tcp tcpfin udp): 900 120 60\n"
    );
    // A HZ=250 kernel takes ipvsadm's whole range, 31 days.
    adm.ok("--set 2678400 0 0");
    assert_eq!(
        adm.stdout("-Ln --timeout"),
        "Timeout (tcp tcpfin udp): 2678400 120 60\n"
    );
    adm.ok("--set 900 0 0");
    adm.ok("-Z");
    assert_eq!(adm.stdout("-Lnc"), "IPVS connection entries\npro expire state       source             virtual            destination\n");

    // Save, clear, restore: the same rules come back.
    let saved = adm.stdout("-S -n");
    assert!(
        saved.contains("-A -t 10.0.0.9:0 -s rr -p 360 -M 255.255.255.0\n"),
        "{saved}"
    );
    assert!(
        saved.contains("-a -t 192.168.1.222:80 -r 192.168.1.224:8080 -m -w 1\n"),
        "{saved}"
    );
    adm.ok("-C");
    assert_eq!(
        adm.stdout("-Ln"),
        format!("IP Virtual Server version 1.2.1 (size=4096)\n{TITLE}")
    );
    let r = adm.run_input("-R", Some(&saved));
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(adm.stdout("-S -n"), saved);

    // Errors and exit codes as ipvsadm's.
    let o = adm.run("-a -t 10.9.9.9:80 -r 10.1.1.1");
    assert_eq!(
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned()
        ),
        (Some(255), "Service not defined\n".to_string())
    );
    let o = adm.run("-n -L");
    assert_eq!(o.status.code(), Some(255));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n"
    );
    let o = adm.run("-A -t 10.0.0.1:0");
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "Zero port specified for non-persistent service\n"
    );

    // A garbage frame gets an error reply and rvsd keeps serving.
    {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&adm.socket).unwrap();
        s.write_all(&[0, 0, 0, 3, b'{', b'x', b'}']).unwrap();
        let mut reply = Vec::new();
        let _ = s.read_to_end(&mut reply);
        assert!(String::from_utf8_lossy(&reply).contains("bad request"));
    }
    assert!(adm.stdout("-Ln").contains("10.0.0.5:80"));

    let done = rvsd.stop();
    assert!(done.status.success(), "{}", done.stderr);
    assert!(!adm.socket.exists(), "the socket file is removed at stop");
    let o = adm.run("-Ln");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        err.lines().count(),
        1,
        "one line when rvsd is not running: {err}"
    );
    assert!(err.contains("is rvsd running?"), "{err}");
}

#[test]
fn names_without_n_come_from_the_hosts_files_and_resolver_as_ipvsadms() {
    let dir = TempDir::new("names");
    let (_rvsd, adm) = start(&dir, None);
    // Host and port names are taken where ipvsadm takes them...
    adm.ok("-A -t localhost:http -s rr");
    adm.ok("-a -t localhost:http -r localhost:http-alt -m");
    adm.ok("-a -t 127.0.0.1:80 -r 10.0.0.2:80 -m");
    // ...and printed without -n: /etc/hosts names 127.0.0.1, /etc/services
    // names the ports; an address no one names stays a number.
    assert_eq!(
        adm.stdout("-L"),
        format!(
            "IP Virtual Server version 1.2.1 (size=4096)\n{TITLE}{}{}{}",
            svc("TCP", "localhost:http", "rr"),
            dest("10.0.0.2:http", "Masq", 1),
            dest("localhost:http-alt", "Masq", 1)
        )
    );
    assert_eq!(
        adm.stdout("-S"),
        "-A -t localhost:http -s rr\n\
         -a -t localhost:http -r 10.0.0.2:http -m -w 1\n\
         -a -t localhost:http -r localhost:http-alt -m -w 1\n"
    );
    assert_eq!(
        adm.stdout("-S -n"),
        "-A -t 127.0.0.1:80 -s rr\n\
         -a -t 127.0.0.1:80 -r 10.0.0.2:80 -m -w 1\n\
         -a -t 127.0.0.1:80 -r 127.0.0.1:8080 -m -w 1\n"
    );
    // A name nobody knows is ipvsadm's error.
    let o = adm.run("-A -t nosuchhost.invalid:80");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("illegal virtual server address[:port] specified"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn a_rules_file_is_applied_at_start_or_rvsd_does_not_start() {
    let dir = TempDir::new("rules");
    let rules = "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.1.1:80 -m -w 2\n";
    let (rvsd, adm) = start(&dir, Some(rules));
    assert_eq!(adm.stdout("-S -n"), rules);
    drop(rvsd.stop());

    let bad = TempDir::new("badrules");
    let cfg = bad.path("rvsd.toml");
    let rules_path = bad.path("rules");
    std::fs::write(
        &rules_path,
        "-A -t 10.0.0.1:80\n-a -t 10.0.0.2:80 -r 10.1.1.1\n",
    )
    .unwrap();
    std::fs::write(
        &cfg,
        format!(
            "[eal]\nargs = [\"--no-huge\", \"--no-shconf\", \"--no-telemetry\", \"--lcores=0@0,1@0\"]\n[dataplane]\nworkers = [1]\n\
             [[port]]\nname = \"n\"\ndevargs = \"net_null0\"\n[metrics]\nlisten = \"off\"\n[ctl]\nsocket = \"{}\"\nrules = \"{}\"\n",
            bad.path("s.sock").display(),
            rules_path.display()
        ),
    )
    .unwrap();
    let line = common::start_error(&[Path::new("--config"), &cfg]);
    assert!(
        line.contains("ctl.rules")
            && line.contains("Service not defined")
            && line.contains("line 2"),
        "{line}"
    );
}

#[test]
fn a_change_survives_kill_9_and_the_next_start_restores_it() {
    let dir = TempDir::new("persist");
    let state = dir.path("state");
    std::fs::create_dir_all(&state).unwrap();
    let rules = state.join("rules");
    let ctl = format!("rules = \"{}\"\npersist = true\n", rules.display());

    // First start: no file yet, no services.
    let (rvsd, adm) = start_with(&dir, &ctl);
    assert_eq!(
        adm.stdout("-Ln"),
        format!("IP Virtual Server version 1.2.1 (size=4096)\n{TITLE}")
    );
    adm.ok("-A -t 198.18.0.100:80 -s wrr");
    adm.ok("-a -t 198.18.0.100:80 -r 198.19.0.11:80 -m -w 2");
    adm.ok("-a -t 198.18.0.100:80 -r 198.19.0.12:80 -m -w 1");
    adm.ok("-d -t 198.18.0.100:80 -r 198.19.0.12:80");
    adm.ok("--set 900 60 300");
    rvsd.kill();

    let (rvsd, adm) = start_with(&dir, &ctl);
    assert_eq!(
        adm.stdout("-Ln"),
        format!(
            "IP Virtual Server version 1.2.1 (size=4096)\n{TITLE}{}{}",
            svc("TCP", "198.18.0.100:80", "wrr"),
            dest("198.19.0.11:80", "Masq", 2)
        )
    );
    assert_eq!(
        adm.stdout("-Ln --timeout"),
        "Timeout (tcp tcpfin udp): 900 60 300\n"
    );
    // A clean stop leaves the same file, which ipvsadm-restore reads too.
    adm.ok("-e -t 198.18.0.100:80 -r 198.19.0.11:80 -m -w 5");
    let f = rvsd.stop();
    assert!(f.stderr.contains("rules saved to"), "{}", f.stderr);
    assert_eq!(
        std::fs::read_to_string(&rules).unwrap(),
        "-A -t 198.18.0.100:80 -s wrr\n-a -t 198.18.0.100:80 -r 198.19.0.11:80 -m -w 5\n--set 900 60 300\n"
    );
}

#[test]
fn sighup_without_a_keepalived_config_reloads_nothing_and_kills_nothing() {
    let dir = TempDir::new("hup");
    let (mut rvsd, adm) = start(&dir, Some("-A -t 10.0.0.1:80 -s rr\n"));
    let hup = Command::new("kill")
        .args(["-HUP", &rvsd.pid().expect("running").to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let said = wait_until(Duration::from_secs(10), || {
        rvsd.log().contains("SIGHUP: nothing to reload")
    });
    assert!(said && !rvsd.has_exited(), "{}", rvsd.log());
    assert_eq!(adm.stdout("-S -n"), "-A -t 10.0.0.1:80 -s rr\n");
    let f = rvsd.stop();
    assert!(f.status.success(), "{}", f.stderr);
}

/// Reads one reply frame (4-byte big-endian length, JSON) from `s`.
fn reply_of(s: &mut std::os::unix::net::UnixStream) -> std::io::Result<serde_json::Value> {
    use std::io::Read;
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body)?;
    serde_json::from_slice(&body).map_err(std::io::Error::other)
}

#[test]
fn stuck_and_hostile_clients_cannot_keep_ipvsadm_from_an_answer() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::time::Instant;

    let dir = TempDir::new("stuck");
    let (_rvsd, adm) = start(&dir, None);
    adm.ok("-A -t 10.0.0.1:80 -s rr");

    // Garbage is answered as garbage.
    let mut garbage = UnixStream::connect(&adm.socket).unwrap();
    garbage.write_all(&5u32.to_be_bytes()).unwrap();
    garbage.write_all(b"{nope").unwrap();
    garbage
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let r = reply_of(&mut garbage).unwrap();
    assert_eq!(r["code"], 2, "{r}");
    assert!(r["stderr"].as_str().unwrap().contains("bad request"), "{r}");

    // A client that sends half a frame and never the rest...
    let mut half = UnixStream::connect(&adm.socket).unwrap();
    half.write_all(&100u32.to_be_bytes()).unwrap();
    half.write_all(b"{\"version\"").unwrap();
    // ...one that trickles a byte at a time...
    let mut trickle = UnixStream::connect(&adm.socket).unwrap();
    trickle.write_all(&[0]).unwrap();
    // ...and 300 that connect and say nothing, more than rvsd serves at once
    // (256).
    let silent: Vec<UnixStream> = (0..300)
        .map(|_| UnixStream::connect(&adm.socket).unwrap())
        .collect();

    // The old single-threaded server made this wait for every stuck
    // client's 10 s read timeout in turn; the request deadline is 5 s. An
    // answer well inside that is one served beside them.
    let t = Instant::now();
    let listing = adm.stdout("-Ln");
    let took = t.elapsed();
    assert!(listing.contains("TCP  10.0.0.1:80 rr"), "{listing}");
    assert!(took < Duration::from_secs(3), "-Ln took {took:?}");

    // Past the cap the longest-waiting clients lost their places, oldest
    // first: the half frame, the trickle, then the first silent ones; their
    // connections are closed (EOF), the rest still wait. With -Ln, 303
    // clients came to wait at once, so 47 went.
    let mut closed = 0;
    for mut s in silent {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut b = [0u8; 1];
        if matches!(s.read(&mut b), Ok(0)) {
            closed += 1;
        }
    }
    assert_eq!(closed, 303 - 256 - 2, "silent clients evicted");
    for s in [&mut half, &mut trickle] {
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let e = reply_of(s).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
    }

    // With room to spare, a half frame is told why once its deadline
    // (5 s) passes, and nothing else waited for it.
    let mut half = UnixStream::connect(&adm.socket).unwrap();
    half.write_all(&100u32.to_be_bytes()).unwrap();
    half.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let t = Instant::now();
    assert!(adm.stdout("-Ln").contains("TCP  10.0.0.1:80 rr"));
    let r = reply_of(&mut half).unwrap();
    assert!(t.elapsed() >= Duration::from_secs(4), "{:?}", t.elapsed());
    assert_eq!(r["code"], 2, "{r}");
    assert!(
        r["stderr"]
            .as_str()
            .unwrap()
            .contains("did not arrive whole"),
        "{r}"
    );
}
