//! keepalived.conf's LVS part, read natively: `rvsd --keepalived FILE` or
//! `[keepalived] config`. The file's virtual servers become rvs services,
//! real servers and checks (`map`), applied as a diff against the service
//! table (`diff`) through the engine's all-or-nothing restore, at start and
//! again on every SIGHUP.
//!
//! - `lexer`: words, blocks, comments, quotes, `include` (with `glob`)
//! - `parse`: the LVS keywords into `model`, or an error naming file:line
//! - `map`: the model into rvs's command lines with keepalived's defaults
//! - `diff`: what to run so the table holds what the file says
pub mod diff;
mod glob;
pub mod lexer;
pub mod map;
pub mod model;
pub mod parse;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

pub use diff::Counts;
use diff::{Block, Kind, Svc};
pub use lexer::{Error, Loc};
use map::ServiceSpec;

use crate::ctl::engine::Engine;
use crate::ipvs::proto::Timeouts;
use crate::ipvs::ServiceSet;

/// A keepalived file tree read and mapped.
#[derive(Debug)]
pub struct Loaded {
    pub services: Vec<ServiceSpec>,
    pub warnings: Vec<String>,
    pub files: Vec<PathBuf>,
}

/// Reads `path` and its includes; nothing is applied.
pub fn load(path: &Path) -> Result<Loaded, Error> {
    let mut files = Vec::new();
    let mut warnings = Vec::new();
    let nodes = lexer::read(path, &mut files, &mut warnings)?;
    let parsed = parse::parse(&nodes)?;
    warnings.extend(parsed.warnings);
    let services = map::services(&parsed.servers, &mut warnings)?;
    // A group's services share their virtual server's warnings: say each once.
    let mut seen = HashSet::new();
    warnings.retain(|w| seen.insert(w.clone()));
    Ok(Loaded {
        services,
        warnings,
        files,
    })
}

fn scratch_engine() -> Engine {
    Engine::new(
        1,
        Arc::new(ArcSwap::from_pointee(ServiceSet::default())),
        Arc::new(ArcSwap::from_pointee(Timeouts::default())),
    )
}

/// The first line of an engine's complaint: the cause, without restore's
/// own "-R line N" trailer, which names our script and not the file.
fn cause(stderr: &str) -> String {
    stderr.lines().next().unwrap_or("failed").trim().to_string()
}

/// What the file wants, as -S would list it: the lines run on a scratch
/// engine (so any line rvs refuses fails here, named by its keepalived
/// line), and where each service, real server, check and sorry server
/// was written.
#[allow(clippy::type_complexity)]
pub fn wanted(
    services: &[ServiceSpec],
) -> Result<(BTreeMap<Svc, Block>, HashMap<(Svc, Kind), Loc>), Error> {
    let lines: Vec<&map::Line> = services.iter().flat_map(|s| &s.lines).collect();
    let script: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    let mut e = scratch_engine();
    let (r, at) = e.restore_at("rvsd", &script.join("\n"));
    if r.code != 0 {
        let line = at.and_then(|n| lines.get(n.wrapping_sub(1)));
        return Err(Error {
            loc: line.map(|l| l.loc.clone()),
            message: match line {
                Some(l) => format!("{} (as rvs: {})", cause(&r.stderr), l.text),
                None => cause(&r.stderr),
            },
        });
    }
    let mut locs = HashMap::new();
    for l in &lines {
        if let Some(k) = diff::line_key(&l.text) {
            locs.insert(k, l.loc.clone());
        }
    }
    Ok((diff::table_blocks(&mut e), locs))
}

/// Reads the file and tries its lines on an empty table (`rvsd
/// --check-config`): the number of services it makes and the warnings,
/// or the first error.
pub fn check(path: &Path) -> Result<(usize, Vec<String>), Error> {
    let loaded = load(path)?;
    let (want, _) = wanted(&loaded.services)?;
    Ok((want.len(), loaded.warnings))
}

/// What a file wants, read and checked, not yet applied.
#[derive(Debug)]
pub struct Plan {
    want: BTreeMap<Svc, Block>,
    locs: HashMap<(Svc, Kind), Loc>,
}

/// The services a keepalived file put in the table, and how to change them
/// when the file changes.
#[derive(Debug)]
pub struct Keepalived {
    path: PathBuf,
    /// Services the file defined when last applied: those it drops later
    /// are deleted, and no others.
    owned: HashSet<Svc>,
    /// Warnings given already: each once, not again on every reload.
    warned: HashSet<String>,
    pub reloads: u64,
    pub failures: u64,
}

impl Keepalived {
    pub fn new(path: &Path) -> Keepalived {
        Keepalived {
            path: path.to_path_buf(),
            owned: HashSet::new(),
            warned: HashSet::new(),
            reloads: 0,
            failures: 0,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file and applies what differs, all or nothing.
    pub fn apply(&mut self, engine: &mut Engine) -> Result<Counts, Error> {
        let plan = self.read()?;
        self.commit(plan, engine)
    }

    /// Reads and checks the file without the engine (whose lock the
    /// control socket and the checks need meanwhile).
    pub fn read(&mut self) -> Result<Plan, Error> {
        let loaded = load(&self.path)?;
        for w in &loaded.warnings {
            if self.warned.insert(w.clone()) {
                log::warn!("keepalived: {w}");
            }
        }
        let (want, locs) = wanted(&loaded.services)?;
        Ok(Plan { want, locs })
    }

    /// Applies what differs between `plan` and the table, all or nothing.
    pub fn commit(&mut self, plan: Plan, engine: &mut Engine) -> Result<Counts, Error> {
        let Plan { want, locs } = plan;
        let have = diff::table_blocks(engine);
        let (cmds, counts) = diff::commands(&want, &have, &self.owned);
        if !cmds.is_empty() {
            let script: Vec<&str> = cmds.iter().map(|(.., l)| l.as_str()).collect();
            let (r, at) = engine.restore_at("rvsd", &script.join("\n"));
            if r.code != 0 {
                let cmd = at.and_then(|n| cmds.get(n.wrapping_sub(1)));
                let loc = cmd.and_then(|(svc, kind, _)| {
                    locs.get(&(svc.clone(), *kind))
                        .or_else(|| locs.get(&(svc.clone(), Kind::Add)))
                        .cloned()
                });
                return Err(Error {
                    loc,
                    message: match cmd {
                        Some((.., l)) => format!("{} (as rvs: {l})", cause(&r.stderr)),
                        None => cause(&r.stderr),
                    },
                });
            }
        }
        self.owned = want.into_keys().collect();
        // This file, not the persisted rules, brings them back at start.
        engine.set_kept_elsewhere(self.owned.clone());
        Ok(counts)
    }

    pub fn services(&self) -> usize {
        self.owned.len()
    }
}

/// rvsd's side: the keepalived file applied at start and on SIGHUP.
pub struct Reloader {
    ka: Keepalived,
    engine: Arc<Mutex<Engine>>,
}

impl Reloader {
    /// Applies the file (rvsd does not start if it fails); the daemon
    /// calls [`Reloader::reload`] on SIGHUP.
    pub fn start(path: &Path, engine: Arc<Mutex<Engine>>) -> Result<Reloader, String> {
        // Relative to where rvsd started, also after a later chdir.
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let mut ka = Keepalived::new(&path);
        {
            let mut e = engine.lock().unwrap_or_else(|p| p.into_inner());
            let counts = ka.apply(&mut e).map_err(|e| e.to_string())?;
            log::info!(
                "keepalived: {}: {} service(s) ({counts})",
                path.display(),
                ka.services()
            );
        }
        Ok(Reloader { ka, engine })
    }

    pub fn reload(&mut self) {
        let result = self.ka.read().and_then(|plan| {
            let mut e = self.engine.lock().unwrap_or_else(|p| p.into_inner());
            self.ka.commit(plan, &mut e)
        });
        match result {
            Ok(c) => {
                self.ka.reloads += 1;
                log::info!(
                    "keepalived: reload {}: {c} ({} reload(s), {} failed)",
                    self.ka.path().display(),
                    self.ka.reloads,
                    self.ka.failures
                );
            }
            Err(err) => {
                self.ka.failures += 1;
                log::error!(
                    "keepalived: reload failed, the running configuration is unchanged: {err} ({} reload(s), {} failed)",
                    self.ka.reloads,
                    self.ka.failures
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
