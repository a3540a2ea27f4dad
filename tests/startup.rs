//! What an operator sees when rvsd cannot start: one clear line naming the
//! problem and a non-zero exit, never a panic or a DPDK backtrace.
mod common;

use std::process::Command;

use common::{TempDir, RVSD};

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(RVSD).args(args).output().expect("run rvsd");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn config(dir: &TempDir, body: &str) -> String {
    let p = dir.path("rvsd.toml");
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

const EAL: &str =
    "[eal]\nargs = [\"--no-huge\", \"--no-shconf\", \"-m\", \"128\", \"--lcores=0@0,1@0\"]\n";

#[test]
fn version_names_the_dpdk_it_was_built_against() {
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, 0);
    let dpdk = Command::new("pkg-config")
        .args(["--modversion", "libdpdk"])
        .output()
        .expect("pkg-config");
    let dpdk = String::from_utf8_lossy(&dpdk.stdout).trim().to_owned();
    assert!(
        out.starts_with(&format!("rvsd {} (git ", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
    assert!(
        out.contains(&format!("DPDK {dpdk}")),
        "{out} lacks DPDK {dpdk}"
    );
}

#[test]
fn check_config_names_every_bad_key() {
    let dir = TempDir::new("check");
    let bad = config(
        &dir,
        "[dataplane]\nworkers = [0]\nburst = 9999\n[[port]]\nname = \"a\"\ndevargs = \"net_null0\"\naddresses = [\"198.18.0.1/33\"]\n",
    );
    let (code, _, err) = run(&["--check-config", &bad]);
    assert_eq!(code, 1, "{err}");
    for key in [
        "dataplane.workers",
        "dataplane.burst",
        "port[0].addresses[0]",
    ] {
        assert!(
            err.lines().any(|l| l.contains(&format!(": {key}: "))),
            "no error for {key}:\n{err}"
        );
    }
    let unknown = config(
        &dir,
        "[dataplane]\nworkers = [1]\n[[port]]\nname = \"a\"\ndevarg = \"net_null0\"\n",
    );
    let (code, _, err) = run(&["--check-config", &unknown]);
    assert_eq!(code, 1);
    assert!(err.contains("port[0].devarg"), "{err}");

    let good = config(
        &dir,
        "[dataplane]\nworkers = [1]\n[[port]]\nname = \"a\"\ndevargs = \"net_null0\"\n",
    );
    let (code, out, err) = run(&["--check-config", &good]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("configuration OK"), "{out}");
}

#[test]
fn a_missing_device_gives_one_clear_line() {
    let dir = TempDir::new("nodev");
    let c = config(&dir, &format!("{EAL}[dataplane]\nworkers = [1]\n[[port]]\nname = \"wan\"\ndevargs = \"net_nosuchdriver0\"\n"));
    let line = common::start_error(&["--config", &c]);
    assert!(
        line.contains("port[0] (wan): cannot attach device \"net_nosuchdriver0\""),
        "{line}"
    );

    let c = config(
        &dir,
        &format!("{EAL}[dataplane]\nworkers = [1]\n[[port]]\nname = \"wan\"\ndevargs = \"net_af_packet0,iface=rvs-no-such-if\"\n"),
    );
    let line = common::start_error(&["--config", &c]);
    assert!(
        line.contains("cannot attach device \"net_af_packet0,iface=rvs-no-such-if\""),
        "{line}"
    );
}

#[test]
fn a_bad_lcore_list_gives_one_clear_line() {
    let dir = TempDir::new("lcore");
    // Worker lcore 5 is not among the lcores EAL was given.
    let c = config(
        &dir,
        &format!(
            "{EAL}[dataplane]\nworkers = [5]\n[[port]]\nname = \"n\"\ndevargs = \"net_null0\"\n"
        ),
    );
    let line = common::start_error(&["--config", &c]);
    assert!(
        line.contains("dataplane.workers: lcore 5 is not enabled in EAL"),
        "{line}"
    );

    // An lcore beyond what this machine and DPDK allow, chosen by rvsd itself.
    let c = config(
        &dir,
        "[eal]\nargs = [\"--no-huge\", \"--no-shconf\"]\n[dataplane]\nworkers = [1000]\n[[port]]\nname = \"n\"\ndevargs = \"net_null0\"\n",
    );
    let line = common::start_error(&["--config", &c]);
    assert!(
        line.contains("lcore 1000 is beyond what this DPDK supports"),
        "{line}"
    );
}

#[test]
fn no_hugepages_gives_one_clear_line() {
    // Without --no-huge EAL needs a hugetlbfs mount; --huge-dir points it at
    // an empty plain directory, so it finds none whether or not the machine
    // has hugepages reserved (scripts/setup.sh reserves some for capture).
    // Not --in-memory: that mode takes hugepages through memfd, no mount.
    let dir = TempDir::new("huge");
    let empty = dir.path("hugetlbfs");
    std::fs::create_dir_all(&empty).unwrap();
    let c = config(
        &dir,
        &format!(
            "[eal]\nargs = [\"--file-prefix=rvst-nohuge-{}\", \"--huge-dir={}\", \"--lcores=0@0,1@0\"]\n[dataplane]\nworkers = [1]\n[[port]]\nname = \"n\"\ndevargs = \"net_null0\"\n[ctl]\nsocket = \"{}\"\n[metrics]\nlisten = \"off\"\n",
            std::process::id(),
            empty.display(),
            dir.path("s.sock").display()
        ),
    );
    let line = common::start_error(&["--config", &c]);
    assert!(line.contains("Cannot get hugepage information"), "{line}");
}

#[test]
fn a_check_for_a_service_the_rules_do_not_make_gives_one_clear_line() {
    let dir = TempDir::new("nocheck");
    let rules = dir.path("rules");
    std::fs::write(&rules, "-A -t 198.18.0.100:80 -s rr\n").unwrap();
    let c = config(
        &dir,
        &format!(
            "{EAL}[dataplane]\nworkers = [1]\n[[port]]\nname = \"n\"\ndevargs = \"net_null0\"\naddresses = [\"198.18.0.1/24\"]\n\
             [ctl]\nsocket = \"{}\"\nrules = \"{}\"\n[metrics]\nlisten = \"off\"\n\
             [[health.check]]\nvirtual = \"-t 198.18.0.101:80\"\nchecktype = \"connect\"\n",
            dir.path("rvsd.sock").display(),
            rules.display()
        ),
    );
    let line = common::start_error(&["--config", &c]);
    assert!(
        line.contains("health.check[0] (-t 198.18.0.101:80): Service not defined"),
        "{line}"
    );
}

#[test]
fn a_worker_that_panics_is_logged_with_its_backtrace_and_ends_rvsd_non_zero() {
    // Debug builds (the tests') have a fault hook: worker 1 of two panics
    // half a second in, after rvsd is up.
    let dir = TempDir::new("panic");
    let socket = dir.path("rvsd.sock");
    let c = config(
        &dir,
        &format!(
            "[eal]\nargs = [\"--no-huge\", \"--no-shconf\", \"-m\", \"128\", \"--lcores=0@0,1@0,2@0\"]\n\
             [dataplane]\nworkers = [1, 2]\n[[port]]\nname = \"n\"\ndevargs = \"net_null0\"\naddresses = [\"198.18.0.1/24\"]\n\
             [ctl]\nsocket = \"{}\"\n[metrics]\nlisten = \"off\"\n",
            socket.display()
        ),
    );
    let stderr = dir.path("stderr");
    let mut child = Command::new(RVSD)
        .args(["--config", &c])
        .env("RVS_FAULT_PANIC_WORKER", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let mut status = None;
    let ended = common::wait_until(std::time::Duration::from_secs(30), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    if !ended {
        let _ = child.kill();
    }
    let log = std::fs::read_to_string(&stderr).unwrap();
    assert!(ended, "rvsd went on with a dead worker:\n{log}");
    assert_eq!(status.unwrap().code(), Some(1), "{log}");
    assert!(
        log.contains("2 worker(s) running"),
        "it was up before the panic:\n{log}"
    );
    assert!(
        log.contains("worker 1 panics on purpose"),
        "the panic's message:\n{log}"
    );
    assert!(
        log.contains("rvs::dataplane::lcore::run"),
        "the backtrace names the worker loop:\n{log}"
    );
    assert!(log.contains("1 worker(s) panicked"), "{log}");
}
