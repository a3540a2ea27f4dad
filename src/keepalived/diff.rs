//! What to change so the service table holds what the keepalived file
//! says: both sides are read as `rvsadm -S -n` prints them (the wanted
//! side from a scratch engine that ran the file's lines), so "the same"
//! means the same to rvs, and a service that did not change gets no
//! command at all.
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use crate::ctl::{parse_as, parse_restore_line_as, Command};
use crate::health::check::split_words;

/// One service as -S lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Block {
    pub add: String,
    pub dests: BTreeMap<(IpAddr, u16), String>,
    pub check: Option<String>,
    pub sorry: Option<String>,
}

/// A service by its ipvsadm words (`-t 10.0.0.1:80`): one spelling each.
pub type Svc = String;

/// -S output by service. Lines of other kinds (marks, --toa) are not ours.
pub fn blocks(save: &str) -> BTreeMap<Svc, Block> {
    let mut out: BTreeMap<Svc, Block> = BTreeMap::new();
    for line in save.lines() {
        match line_key(line) {
            Some((key, Kind::Add)) => out.entry(key).or_default().add = line.to_string(),
            Some((key, Kind::Dest(a, p))) => {
                out.entry(key)
                    .or_default()
                    .dests
                    .insert((a, p), line.to_string());
            }
            Some((key, Kind::Check)) => out.entry(key).or_default().check = Some(line.to_string()),
            Some((key, Kind::Sorry)) => out.entry(key).or_default().sorry = Some(line.to_string()),
            None => {}
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Add,
    Dest(IpAddr, u16),
    Check,
    Sorry,
}

/// The table's services as -S lists them, with the thresholds -S leaves
/// out (as ipvsadm's does) added to their -a lines, so a change of
/// `uthreshold`/`lthreshold` is seen and applied too.
pub fn table_blocks(engine: &mut crate::ctl::engine::Engine) -> BTreeMap<Svc, Block> {
    let save = engine
        .execute("rvsadm", &["-S".into(), "-n".into()], None)
        .stdout;
    let mut out = blocks(&save);
    for svc in engine.table().services() {
        let Some(b) = out.get_mut(&svc.key().words()) else {
            continue;
        };
        for d in svc.configured_dests() {
            let (u, l) = (d.u_threshold(), d.l_threshold());
            if (u, l) == (0, 0) {
                continue;
            }
            if let Some(line) = b.dests.get_mut(&(d.addr(), d.port())) {
                line.push_str(&format!(" -x {u} -y {l}"));
            }
        }
    }
    out
}

/// Which service (and real server) a line is about.
pub fn line_key(line: &str) -> Option<(Svc, Kind)> {
    let t = line.trim_start();
    for (prefix, kind) in [("--check-set", Kind::Check), ("--sorry-set", Kind::Sorry)] {
        if let Some(rest) = t.strip_prefix(prefix) {
            let words = split_words(rest).ok()?;
            let svc: Vec<String> = words
                .into_iter()
                .take_while(|w| !w.contains('=') && w != "-r")
                .collect();
            let mut del = vec!["-D".to_string()];
            del.extend(svc);
            return match parse_as("rvsadm", &del) {
                Ok(Command::DeleteService(k)) => Some((k.words(), kind)),
                _ => None,
            };
        }
    }
    match parse_restore_line_as("rvsadm", line)?.ok()? {
        Command::AddService(cfg, _) => Some((cfg.key.words(), Kind::Add)),
        Command::AddDest(key, d, _) => Some((key.words(), Kind::Dest(d.addr, d.port))),
        _ => None,
    }
}

/// What a diff does, for the log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub services_added: usize,
    pub services_removed: usize,
    pub services_changed: usize,
    pub reals_added: usize,
    pub reals_removed: usize,
    pub reals_changed: usize,
    pub checks_changed: usize,
    pub sorry_changed: usize,
}

impl Counts {
    pub fn is_empty(&self) -> bool {
        *self == Counts::default()
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return f.write_str("no change");
        }
        let parts = [
            (self.services_added, "service", "added"),
            (self.services_removed, "service", "removed"),
            (self.services_changed, "service", "changed"),
            (self.reals_added, "real server", "added"),
            (self.reals_removed, "real server", "removed"),
            (self.reals_changed, "real server", "changed"),
            (self.checks_changed, "check", "changed"),
            (self.sorry_changed, "sorry server", "changed"),
        ];
        let words: Vec<String> = parts
            .iter()
            .filter(|(n, ..)| *n > 0)
            .map(|(n, what, how)| format!("{n} {what}{} {how}", if *n == 1 { "" } else { "s" }))
            .collect();
        f.write_str(&words.join(", "))
    }
}

/// The words after the command: `-A -t X -s rr` → `-t X -s rr`.
fn tail(line: &str) -> &str {
    line.trim_start()
        .split_once(' ')
        .map_or("", |(_, rest)| rest)
}

/// The commands that turn `have` into `want` for the services in `want`
/// and those in `drop` (ours before, gone from the file now). Each
/// command comes with the service (and real server) it is about.
pub fn commands(
    want: &BTreeMap<Svc, Block>,
    have: &BTreeMap<Svc, Block>,
    drop: &HashSet<Svc>,
) -> (Vec<(Svc, Kind, String)>, Counts) {
    let mut cmds = Vec::new();
    let mut n = Counts::default();
    let mut gone: Vec<&Svc> = drop.iter().collect();
    gone.sort();
    for key in gone {
        if !want.contains_key(key) && have.contains_key(key) {
            cmds.push((key.clone(), Kind::Add, format!("-D {key}")));
            n.services_removed += 1;
        }
    }
    for (key, w) in want {
        let svc = key;
        let Some(h) = have.get(key) else {
            cmds.push((key.clone(), Kind::Add, w.add.clone()));
            n.services_added += 1;
            for (&(a, p), line) in &w.dests {
                cmds.push((key.clone(), Kind::Dest(a, p), line.clone()));
            }
            if let Some(c) = &w.check {
                cmds.push((key.clone(), Kind::Check, c.clone()));
            }
            if let Some(s) = &w.sorry {
                cmds.push((key.clone(), Kind::Sorry, s.clone()));
            }
            continue;
        };
        if w.add != h.add {
            cmds.push((key.clone(), Kind::Add, format!("-E {}", tail(&w.add))));
            n.services_changed += 1;
        }
        for (&(a, p), line) in &h.dests {
            if !w.dests.contains_key(&(a, p)) {
                let real = match a {
                    IpAddr::V6(v) => format!("[{v}]:{p}"),
                    v => format!("{v}:{p}"),
                };
                let _ = line;
                cmds.push((key.clone(), Kind::Dest(a, p), format!("-d {svc} -r {real}")));
                n.reals_removed += 1;
            }
        }
        for (&(a, p), line) in &w.dests {
            match h.dests.get(&(a, p)) {
                None => {
                    cmds.push((key.clone(), Kind::Dest(a, p), line.clone()));
                    n.reals_added += 1;
                }
                Some(old) if old != line => {
                    cmds.push((key.clone(), Kind::Dest(a, p), format!("-e {}", tail(line))));
                    n.reals_changed += 1;
                }
                Some(_) => {}
            }
        }
        match (&w.check, &h.check) {
            (Some(c), old) if old.as_ref() != Some(c) => {
                cmds.push((key.clone(), Kind::Check, c.clone()));
                n.checks_changed += 1;
            }
            (None, Some(_)) => {
                cmds.push((key.clone(), Kind::Check, format!("--check-del {svc}")));
                n.checks_changed += 1;
            }
            _ => {}
        }
        match (&w.sorry, &h.sorry) {
            (Some(s), old) if old.as_ref() != Some(s) => {
                cmds.push((key.clone(), Kind::Sorry, s.clone()));
                n.sorry_changed += 1;
            }
            (None, Some(_)) => {
                cmds.push((key.clone(), Kind::Sorry, format!("--sorry-del {svc}")));
                n.sorry_changed += 1;
            }
            _ => {}
        }
    }
    (cmds, n)
}
