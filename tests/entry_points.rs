//! rvsadm installed as ipvsadm, ipvsadm-save and ipvsadm-restore (the
//! Debian package's alternatives) behaves as those programs do, against a
//! running rvsd.
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{wait_until, Daemon, TempDir};

const RVSADM: &str = env!("CARGO_BIN_EXE_rvsadm");

/// Runs rvsadm under the name `name` (a symlink, as update-alternatives
/// makes), with `input` on stdin.
fn run(dir: &TempDir, socket: &Path, name: &str, args: &[&str], input: &str) -> Output {
    let link: PathBuf = dir.path(name);
    if !link.exists() {
        std::os::unix::fs::symlink(RVSADM, &link).unwrap();
    }
    let mut child = Command::new(&link)
        .args(args)
        .env("RVS_SOCKET", socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run rvsadm");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn ipvsadm_save_and_restore_are_the_scripts_of_ipvsadm() {
    let dir = TempDir::new("entry");
    let socket = dir.path("rvsd.sock");
    let config = dir.path("rvsd.toml");
    std::fs::write(
        &config,
        format!(
            "[eal]\nargs = [\"--no-huge\", \"--no-shconf\", \"--no-telemetry\", \"-m\", \"128\", \"--lcores=0@0,1@0\"]\n\
             [dataplane]\nworkers = [1]\n[[port]]\nname = \"n\"\ndevargs = \"net_null0\"\naddresses = [\"198.18.0.1/24\"]\n\
             [metrics]\nlisten = \"off\"\n[ctl]\nsocket = \"{}\"\n",
            socket.display()
        ),
    )
    .unwrap();
    let mut d = Daemon::start(&dir, &[], &config);
    let up = wait_until(Duration::from_secs(20), || {
        d.has_exited() || socket.exists()
    });
    assert!(up && !d.has_exited(), "no management socket:\n{}", d.log());

    // What was there before is cleared (ipvsadm-restore runs -C first);
    // comment lines are dropped before -R sees them.
    let o = run(&dir, &socket, "ipvsadm", &["-A", "-u", "10.9.9.9:53"], "");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let rules =
        "# saved by hand\n-A -t 10.0.0.1:80 -s wlc\n-a -t 10.0.0.1:80 -r 10.1.1.1:80 -m -w 2\n\n";
    let o = run(&dir, &socket, "ipvsadm-restore", &["ignored"], rules);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "");

    let saved = "-A -t 10.0.0.1:80 -s wlc\n-a -t 10.0.0.1:80 -r 10.1.1.1:80 -m -w 2\n";
    let o = run(&dir, &socket, "ipvsadm-save", &["-n"], "");
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), saved);
    let plain = run(&dir, &socket, "ipvsadm", &["-S", "-n"], "");
    assert_eq!(text(&plain.stdout), saved);
    // Without -n, as `ipvsadm -S`.
    let o = run(&dir, &socket, "ipvsadm-save", &[], "");
    let plain = run(&dir, &socket, "ipvsadm", &["-S"], "");
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), text(&plain.stdout));

    // Any other option: the script's help, status 1, nothing on stdout.
    let o = run(&dir, &socket, "ipvsadm-save", &["-x"], "");
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(text(&o.stdout), "");
    assert_eq!(
        text(&o.stderr),
        "ipvsadm-save: Script to save the IPVS table to stdout.\n   With the -n option, prints out the table in numeric format.\n"
    );

    // A failing -R: its status and message; the -C before it stands.
    let o = run(
        &dir,
        &socket,
        "ipvsadm-restore",
        &[],
        "-a -t 10.0.0.2:80 -r 10.1.1.1:80\n",
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o.stderr).contains("line 1"), "{}", text(&o.stderr));
    let o = run(&dir, &socket, "ipvsadm-save", &["-n"], "");
    assert_eq!(text(&o.stdout), "");

    let finished = d.stop();
    assert!(finished.status.success(), "{}", finished.stderr);
}
