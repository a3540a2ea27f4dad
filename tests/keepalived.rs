//! rvsd with a keepalived.conf end to end: applied at start after the
//! rules file, re-read on SIGHUP with only the difference applied, a
//! broken edit leaving everything as it was, and a bad file at start
//! stopping rvsd with its file:line.
mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{wait_until, Daemon, TempDir};

const RVSADM: &str = env!("CARGO_BIN_EXE_rvsadm");

fn rvsadm(socket: &Path, args: &[&str]) -> String {
    let o = Command::new(RVSADM)
        .args(args)
        .env("RVS_SOCKET", socket)
        .output()
        .expect("run rvsadm");
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn empty_pcap(dir: &TempDir) -> String {
    let p = dir.path("empty.pcap");
    let mut hdr = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    hdr.extend_from_slice(&[0; 8]);
    hdr.extend_from_slice(&65535u32.to_le_bytes());
    hdr.extend_from_slice(&1u32.to_le_bytes());
    std::fs::write(&p, hdr).unwrap();
    p.display().to_string()
}

fn rvsd_toml(dir: &TempDir, extra: &str) -> std::path::PathBuf {
    let config = dir.path("rvsd.toml");
    std::fs::write(
        &config,
        format!(
            "[eal]\nargs = [\"--no-huge\", \"--no-shconf\", \"--no-telemetry\", \"-m\", \"128\", \"--lcores=0@0,1@0\", \"--file-prefix=rvs-ka-{pid}\"]\n\
             [dataplane]\nworkers = [1]\n[[port]]\nname = \"p\"\ndevargs = \"net_pcap0,rx_pcap={pcap},tx_pcap={out}\"\n\
             addresses = [\"198.18.0.1/24\"]\n[metrics]\nlisten = \"off\"\n[ctl]\nsocket = \"{sock}\"\nrules = \"{rules}\"\n{extra}",
            pid = std::process::id(),
            pcap = empty_pcap(dir),
            out = dir.path("out.pcap").display(),
            sock = dir.path("rvsd.sock").display(),
            rules = dir.path("rules").display(),
        ),
    )
    .unwrap();
    config
}

const BEFORE: &str = "! operator's file\n\
vrrp_instance VI_1 {\n\
    state MASTER\n\
    interface eth0\n\
}\n\
virtual_server 198.18.0.100 80 {\n\
    protocol TCP\n\
    lb_algo rr\n\
    lb_kind NAT\n\
    real_server 198.19.0.11 80 {\n\
        weight 2\n\
    }\n\
}\n";

#[test]
fn keepalived_conf_at_start_and_on_sighup() {
    let dir = TempDir::new("keepalived");
    let ka = dir.path("keepalived.conf");
    std::fs::write(&ka, BEFORE).unwrap();
    // The rules hold the same service (no conflict) and one of their own.
    std::fs::write(
        dir.path("rules"),
        "-A -t 198.18.0.100:80 -s rr\n-a -t 198.18.0.100:80 -r 198.19.0.11:80 -m -w 2\n-A -u 198.18.0.53:53 -s wlc\n",
    )
    .unwrap();
    let config = rvsd_toml(
        &dir,
        &format!("[keepalived]\nconfig = \"{}\"\n", ka.display()),
    );
    let mut d = Daemon::start(&dir, &[], &config);
    let sock = dir.path("rvsd.sock");
    assert!(
        wait_until(Duration::from_secs(20), || d.has_exited() || sock.exists()) && !d.has_exited(),
        "rvsd did not start:\n{}",
        d.log()
    );
    assert_eq!(
        rvsadm(&sock, &["-S", "-n"]),
        "-A -t 198.18.0.100:80 -s rr\n\
         -a -t 198.18.0.100:80 -r 198.19.0.11:80 -m -w 2\n\
         -A -u 198.18.0.53:53 -s wlc\n"
    );
    assert!(
        d.log()
            .contains("keepalived.conf:2: vrrp_instance: skipped"),
        "{}",
        d.log()
    );

    std::fs::write(
        &ka,
        BEFORE.replace("weight 2", "weight 5")
            + "virtual_server 198.18.0.101 443 {\n    protocol TCP\n    lb_kind DR\n    real_server 198.19.0.12 443 {\n        TCP_CHECK {\n            connect_timeout 2\n        }\n    }\n}\n",
    )
    .unwrap();
    let pid = d.pid().unwrap().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let want = "-A -t 198.18.0.100:80 -s rr\n\
                -a -t 198.18.0.100:80 -r 198.19.0.11:80 -m -w 5\n\
                -A -t 198.18.0.101:443 -s wlc\n\
                -a -t 198.18.0.101:443 -r 198.19.0.12:443 -g -w 1\n\
                -A -u 198.18.0.53:53 -s wlc\n\
                --check-set -t 198.18.0.101:443 checktype=connect checkinterval=60 checktimeout=2 rise=1 fall=2 quiescent=no retryinterval=1 firstcheck=decides\n";
    assert!(
        wait_until(Duration::from_secs(10), || rvsadm(&sock, &["-S", "-n"])
            == want),
        "after SIGHUP:\n{}\nlog:\n{}",
        rvsadm(&sock, &["-S", "-n"]),
        d.log()
    );
    // The reload's log line follows the change it reports.
    let line = format!(
        "reload {}: 1 service added, 1 real server changed (1 reload(s), 0 failed)",
        ka.display()
    );
    assert!(
        wait_until(Duration::from_secs(5), || d.log().contains(&line)),
        "{}",
        d.log()
    );

    // A broken edit: logged with its line, nothing changes.
    std::fs::write(&ka, BEFORE.replace("lb_kind NAT", "lb_kind NOPE")).unwrap();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    assert!(
        wait_until(Duration::from_secs(10), || d
            .log()
            .contains("reload failed")),
        "{}",
        d.log()
    );
    assert!(
        d.log().contains("keepalived.conf:9: lb_kind: \"NOPE\""),
        "{}",
        d.log()
    );
    assert_eq!(rvsadm(&sock, &["-S", "-n"]), want);
    let done = d.stop();
    assert!(done.status.success(), "{}", done.stderr);
}

#[test]
fn a_bad_keepalived_file_stops_rvsd_with_its_line() {
    let dir = TempDir::new("keepalived-bad");
    let ka = dir.path("keepalived.conf");
    std::fs::write(
        &ka,
        "virtual_server 198.18.0.100 80 {\n    protocol TCP\n    lb_algo nope\n}\n",
    )
    .unwrap();
    std::fs::write(dir.path("rules"), "").unwrap();
    let config = rvsd_toml(&dir, "");
    // The command line's --keepalived (no [keepalived] in the file).
    let line = common::start_error(&[
        Path::new("--config"),
        Path::new(&config),
        Path::new("--keepalived"),
        &ka,
    ]);
    assert!(
        line.contains(&format!(
            "keepalived: {}:3: lb_algo: \"nope\"",
            ka.display()
        )),
        "{line}"
    );
}

/// rvsd with `config`, up once its management socket is there.
fn start(dir: &TempDir, config: &Path) -> Daemon {
    let sock = dir.path("rvsd.sock");
    // A socket left by the previous run is no sign of this one.
    let _ = std::fs::remove_file(&sock);
    let mut d = Daemon::start(dir, &[], config);
    assert!(
        wait_until(Duration::from_secs(20), || d.has_exited() || sock.exists()) && !d.has_exited(),
        "rvsd did not start:\n{}",
        d.log()
    );
    d
}

#[test]
fn persisted_rules_leave_keepalived_services_to_keepalived_conf() {
    let dir = TempDir::new("keepalived-persist");
    let ka = dir.path("keepalived.conf");
    std::fs::write(&ka, BEFORE).unwrap();
    let config = rvsd_toml(
        &dir,
        &format!(
            "persist = true\n[keepalived]\nconfig = \"{}\"\n",
            ka.display()
        ),
    );
    let sock = dir.path("rvsd.sock");
    let rules = dir.path("rules");

    // First start (no saved rules yet): the file's service, and one the
    // operator adds by hand, which only the saved rules keep.
    let d = start(&dir, &config);
    rvsadm(&sock, &["-A", "-u", "198.18.0.53:53", "-s", "wlc"]);
    assert!(rvsadm(&sock, &["-S", "-n"]).contains("-A -t 198.18.0.100:80 -s rr\n"));
    assert_eq!(
        std::fs::read_to_string(&rules).unwrap(),
        "-A -u 198.18.0.53:53 -s wlc\n"
    );
    assert!(d.stop().status.success());

    // While rvsd is down the operator replaces the virtual server.
    std::fs::write(&ka, BEFORE.replace("198.18.0.100 80", "198.18.0.101 80")).unwrap();
    let d = start(&dir, &config);
    assert_eq!(
        rvsadm(&sock, &["-S", "-n"]),
        "-A -t 198.18.0.101:80 -s rr\n\
         -a -t 198.18.0.101:80 -r 198.19.0.11:80 -m -w 2\n\
         -A -u 198.18.0.53:53 -s wlc\n"
    );
    assert!(d.stop().status.success());
}
