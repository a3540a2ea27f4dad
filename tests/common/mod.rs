//! Helpers shared by the integration tests: rvsd as a child process, temp
//! dirs, bounded polling, checksums computed independently of rvs.
#![allow(dead_code)]

pub mod lab;
pub mod netns;
pub mod nginx;
pub mod pair;
pub mod requests;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const RVSD: &str = env!("CARGO_BIN_EXE_rvsd");

/// A directory removed when the test ends, however it ends.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "rvs-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Polls `f` every 50 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running rvsd whose output goes to files; killed if the test panics.
pub struct Daemon {
    child: Option<Child>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Daemon {
    /// Starts `prefix... rvsd --config config` (prefix: e.g. `ip netns exec NS`).
    pub fn start(dir: &TempDir, prefix: &[&str], config: &Path) -> Daemon {
        // Every rvsd of a test gets its own management socket, so tests run
        // side by side without fighting over the default path.
        let text = fs::read_to_string(config).expect("read config");
        if !text.contains("[ctl]") {
            let sock = dir.path("rvsd.sock");
            fs::write(
                config,
                format!("{text}\n[ctl]\nsocket = \"{}\"\n", sock.display()),
            )
            .expect("write config");
        }
        let stdout = dir.path("rvsd.stdout");
        let stderr = dir.path("rvsd.stderr");
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(RVSD);
                c
            }
            None => Command::new(RVSD),
        };
        let child = cmd
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).expect("stdout file"))
            .stderr(fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn rvsd");
        Daemon {
            child: Some(child),
            stdout,
            stderr,
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The process id, to signal it (SIGHUP).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(Some(_))))
    }

    /// SIGKILL: no clean shutdown, as in a crash or an OOM kill.
    pub fn kill(mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("SIGKILL rvsd");
            c.wait().expect("wait rvsd");
        }
    }

    /// SIGTERM, then waits (bounded) for the clean shutdown.
    pub fn stop(mut self) -> Finished {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let done = wait_until(Duration::from_secs(20), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if !done {
            let _ = child.kill();
        }
        let status = child.wait().expect("wait rvsd");
        assert!(done, "rvsd did not stop within 20 s of SIGTERM");
        Finished {
            status,
            stdout: fs::read_to_string(&self.stdout).unwrap_or_default(),
            stderr: fs::read_to_string(&self.stderr).unwrap_or_default(),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The value of `name N` in rvsd's shutdown summary line for worker 0,
/// e.g. counter(out, "echo replies").
pub fn counter(summary: &str, name: &str) -> Option<u64> {
    let line = summary.lines().find(|l| l.starts_with("worker 0 "))?;
    let at = line.find(&format!("{name} "))? + name.len() + 1;
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The count of one drop reason (`bad_header=2`) in the summary.
pub fn drops(summary: &str, reason: &str) -> u64 {
    summary
        .lines()
        .filter(|l| l.starts_with("worker "))
        .filter_map(|l| {
            let at = l.find(&format!("{reason}="))? + reason.len() + 1;
            l[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// RFC 1071 sum, written here so tests never trust rvs's own checksum code.
pub fn ones_sum(chunks: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for c in chunks {
        let mut i = 0;
        while i + 1 < c.len() {
            sum += u32::from(u16::from_be_bytes([c[i], c[i + 1]]));
            i += 2;
        }
        if i < c.len() {
            sum += u32::from(c[i]) << 8;
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Runs a command, panicking with its output when it fails.
/// A file's SHA-256, by sha256sum (not by anything of rvs).
pub fn sha256(path: &Path) -> String {
    sh(&["sha256sum", path.to_str().unwrap()])
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run command");
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two namespaces joined by a veth pair: a client (198.18.0.2/24,
/// fd00:18::2/64 on `rvstc0`) and a gateway whose `rvstg0` carries no kernel
/// address, for rvsd to own through af_packet. Removed on drop, also when the
/// test fails.
pub struct Topology {
    pub client: String,
    pub gw: String,
}

impl Topology {
    /// `tag` makes the namespace names unique to the test run.
    pub fn new(tag: &str) -> Topology {
        let t = Topology {
            client: format!("{tag}c"),
            gw: format!("{tag}g"),
        };
        t.remove();
        sh(&["ip", "netns", "add", &t.client]);
        sh(&["ip", "netns", "add", &t.gw]);
        sh(&[
            "ip", "link", "add", "rvstc0", "netns", &t.client, "type", "veth", "peer", "name",
            "rvstg0", "netns", &t.gw,
        ]);
        let c = |args: &[&str]| {
            let mut v = vec!["ip", "netns", "exec", &t.client];
            v.extend_from_slice(args);
            sh(&v);
        };
        c(&["ip", "link", "set", "lo", "up"]);
        c(&["ip", "addr", "add", "198.18.0.2/24", "dev", "rvstc0"]);
        c(&[
            "ip",
            "-6",
            "addr",
            "add",
            "fd00:18::2/64",
            "dev",
            "rvstc0",
            "nodad",
        ]);
        c(&["ip", "link", "set", "rvstc0", "up"]);
        let g = |args: &[&str]| {
            let mut v = vec!["ip", "netns", "exec", &t.gw];
            v.extend_from_slice(args);
            sh(&v);
        };
        // The gateway's kernel keeps quiet on the port: rvsd owns it.
        g(&["sysctl", "-q", "-w", "net.ipv6.conf.rvstg0.disable_ipv6=1"]);
        g(&["ip", "link", "set", "rvstg0", "up"]);
        t
    }

    pub fn in_client(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.client])
            .args(args)
            .output()
            .expect("run in client namespace")
    }

    fn remove(&self) {
        for ns in [&self.client, &self.gw] {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Runs rvsd with `args`, which must fail to start: exit status 1, no panic,
/// exactly one `rvsd: error:` line, which is returned.
pub fn start_error<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let out = Command::new(RVSD).args(args).output().expect("run rvsd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("rvsd: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line expected:\n{stderr}");
    errors[0].to_owned()
}
