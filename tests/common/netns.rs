//! Network namespaces for end-to-end tests: a set named PREFIX-ROLE, veth
//! pairs, bridges, and processes started inside them; dropping the set kills
//! everything inside and deletes the namespaces, however the test ends.
use std::cell::RefCell;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// curl in the namespace named `ns` (a full name, for threads that cannot
/// hold the [`Netns`]): silent but for errors, deaf to the machine's proxy
/// settings, and never longer than `max_time` seconds.
pub fn curl_in(ns: &str, max_time: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, "curl", "-sS", "--noproxy", "*"])
        .args(["--max-time", max_time])
        .args(args)
        .stdin(Stdio::null());
    c
}

/// `body`, or why curl failed (its exit status and message), for a
/// test's message to say.
pub fn body_or_why(o: &Output) -> Result<String, String> {
    body(o).ok_or_else(|| format!("curl: {}: {}", o.status, text(&o.stderr).trim()))
}

/// What a successful curl wrote, trimmed (a page's name); None when it failed.
pub fn body(o: &Output) -> Option<String> {
    o.status
        .success()
        .then(|| text(&o.stdout).trim().to_string())
}

/// A set of namespaces named PREFIX-ROLE and the processes started in them;
/// dropping it kills everything inside and deletes the namespaces.
pub struct Netns {
    prefix: String,
    roles: Vec<String>,
    children: RefCell<Vec<Child>>,
}

impl Netns {
    pub fn new(test: &str) -> Netns {
        Netns {
            prefix: format!("rvsf{}-{test}", std::process::id()),
            roles: Vec::new(),
            children: RefCell::new(Vec::new()),
        }
    }

    pub fn name(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    pub fn add(&mut self, role: &str) {
        let ns = self.name(role);
        // A namespace left by a killed run of the same pid goes first.
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        super::sh(&["ip", "netns", "add", &ns]);
        self.roles.push(role.to_string());
        self.ok(role, &["ip", "link", "set", "lo", "up"]);
        // No duplicate address detection delay, link-local included.
        self.ok(
            role,
            &["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"],
        );
        self.ok(role, &["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"]);
    }

    pub fn cmd(&self, role: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name(role)]).args(args);
        c
    }

    pub fn run(&self, role: &str, args: &[&str]) -> Output {
        self.cmd(role, args)
            .stdin(Stdio::null())
            .output()
            .expect("ip netns exec")
    }

    /// A curl from `role` (see [`curl_in`]); its output.
    pub fn curl(&self, role: &str, max_time: &str, args: &[&str]) -> Output {
        curl_in(&self.name(role), max_time, args)
            .output()
            .expect("curl")
    }

    /// One GET of `url` from `role`: the page, trimmed, or None.
    pub fn get(&self, role: &str, max_time: &str, url: &str) -> Option<String> {
        body(&self.curl(role, max_time, &[url]))
    }

    /// One GET of `url` from `role`: the page, trimmed, or why curl failed
    /// (its exit status and message), for an assertion's message to say.
    pub fn fetch(&self, role: &str, max_time: &str, url: &str) -> Result<String, String> {
        body_or_why(&self.curl(role, max_time, &[url]))
    }

    /// Runs a command that must succeed; its stdout.
    pub fn ok(&self, role: &str, args: &[&str]) -> String {
        let out = self.run(role, args);
        assert!(
            out.status.success(),
            "in {role}: {args:?} failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Starts a long-running program whose output goes to `log`.
    pub fn spawn(&self, role: &str, args: &[&str], log: &Path) {
        let f = fs::File::create(log).expect("log file");
        let child = self
            .cmd(role, args)
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .expect("spawn in namespace");
        self.children.borrow_mut().push(child);
    }

    /// A veth pair from `a`'s `a_if` to `b`'s `b_if`, both up, without
    /// checksum or segmentation offloads: af_packet must hand rvsd frames
    /// that carry full checksums and fit the MTU.
    pub fn veth(&self, a: &str, a_if: &str, b: &str, b_if: &str) {
        super::sh(&[
            "ip",
            "-n",
            &self.name(a),
            "link",
            "add",
            a_if,
            "type",
            "veth",
            "peer",
            "name",
            b_if,
            "netns",
            &self.name(b),
        ]);
        for (role, ifc) in [(a, a_if), (b, b_if)] {
            // With offload on, a veth hands af_packet TCP/UDP checksums left
            // for hardware that does not exist: every mode fails then.
            let off = self.run(
                role,
                &[
                    "ethtool", "-K", ifc, "tx", "off", "tso", "off", "gso", "off", "gro", "off",
                ],
            );
            assert!(
                off.status.success(),
                "ethtool -K {ifc} tx off (is ethtool installed? scripts/setup.sh installs it): {}",
                text(&off.stderr)
            );
        }
    }

    pub fn up(&self, role: &str, ifc: &str) {
        self.ok(role, &["ip", "link", "set", ifc, "up"]);
    }

    pub fn addr(&self, role: &str, ifc: &str, cidr: &str) {
        if cidr.contains(':') {
            self.ok(role, &["ip", "addr", "add", cidr, "dev", ifc, "nodad"]);
        } else {
            self.ok(role, &["ip", "addr", "add", cidr, "dev", ifc]);
        }
    }

    /// A bridge in namespace `sw` with no STP delay and no multicast
    /// snooping, so ARP and ND reach every port from the first packet.
    pub fn bridge(&self, sw: &str) {
        self.ok(
            sw,
            &[
                "ip",
                "link",
                "add",
                "br0",
                "type",
                "bridge",
                "stp_state",
                "0",
                "forward_delay",
                "0",
                "mcast_snooping",
                "0",
            ],
        );
        self.up(sw, "br0");
    }

    pub fn bridge_port(&self, sw: &str, ifc: &str) {
        self.ok(sw, &["ip", "link", "set", ifc, "master", "br0"]);
        self.up(sw, ifc);
    }

    /// rvsd's side: up, but the kernel keeps quiet on it (rvsd owns it).
    pub fn rvsd_port(&self, gw: &str, ifc: &str) {
        self.ok(
            gw,
            &[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{ifc}.disable_ipv6=1"),
            ],
        );
        self.up(gw, ifc);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for role in &self.roles {
            let ns = self.name(role);
            if let Ok(out) = Command::new("ip").args(["netns", "pids", &ns]).output() {
                for pid in text(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
        }
        for c in self.children.borrow_mut().iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for role in &self.roles {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.name(role)])
                .output();
        }
    }
}
