//! rvsd's side of the management socket: executes ipvsadm command lines
//! against the service table and answers with what ipvsadm would print.
//!
//! Every change publishes a new `ServiceSet` snapshot for the workers (and
//! the metrics exporter), so workers pick changes up between bursts and a
//! reconfiguration never stops forwarding.
use std::collections::HashSet;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::format;
use super::frame::Reply;
use super::grammar::{parse_as, parse_restore_line_as, Command, ListOptions, ProxyProtocol};
use super::laddr::LaddrView;
use super::names;
use super::persist::RulesFile;
use super::usage::{usage, VERSION_LINE};
use crate::ipvs::proto::Timeouts;

use crate::health::runner::Host;
use crate::health::{self, CheckConfig, Health, Job, Target, Transition, Verdict};
use crate::ipvs::fwmark::MarkRule;
use crate::ipvs::service;
use crate::ipvs::{
    FwdMethod, IpvsError, Protocol, Service, ServiceConfig, ServiceKey, ServiceSet, ServiceTable,
};

/// ipvsadm exits with this when the kernel refused a command (libipvs
/// returns -1 and main returns it).
const KERNEL_ERROR: i32 = 255;

#[path = "engine_sync.rs"]
mod engine_sync;
pub use engine_sync::SyncView;

/// Why a service's `--proxy-protocol` cannot work with the service or one
/// of its real servers; None when it can.
fn proxy_protocol_refusal(
    cfg: &ServiceConfig,
    mut fwds: impl Iterator<Item = FwdMethod>,
) -> Option<String> {
    let why = match cfg.proxy_protocol {
        ProxyProtocol::Disable => return None,
        ProxyProtocol::V1Insecure | ProxyProtocol::V2Insecure => {
            "the insecure variants are not implemented by rvs (it always inserts its own header)"
        }
        _ if !matches!(cfg.key, ServiceKey::Addr { proto: Protocol::Tcp, .. }) => {
            "it needs a TCP service (not UDP, SCTP or a firewall mark)"
        }
        _ if fwds.any(|m| !matches!(m, FwdMethod::FullNat | FwdMethod::Masq)) => {
            "it needs FULLNAT or NAT real servers: the replies must come back through rvs to have their acknowledgements shifted"
        }
        _ => return None,
    };
    Some(format!(
        "--proxy-protocol: {why}; the service was not changed\n"
    ))
}

/// Produces the rows of `-c`, the workers' connection tables, a chunk at a
/// time: each chunk goes to the callback, which says whether to go on (a
/// client that left stops the listing). Err names a worker that did not
/// answer.
pub type ConnSource =
    Arc<dyn Fn(&mut dyn FnMut(Vec<format::ConnRow>) -> bool) -> Result<(), String> + Send + Sync>;

/// A source with no conns (no workers yet, or a dry run).
fn no_conns() -> ConnSource {
    Arc::new(|_: &mut dyn FnMut(Vec<format::ConnRow>) -> bool| Ok(()))
}

pub struct Engine {
    table: ServiceTable,
    timeouts: Timeouts,
    services: Arc<ArcSwap<ServiceSet>>,
    published_timeouts: Arc<ArcSwap<Timeouts>>,
    conns: ConnSource,
    /// rvsd's port names and local-address use, for -P and -G.
    laddr: LaddrView,
    /// The "size=" of the listing header.
    table_size: u32,
    health: Health,
    /// `[ctl] persist`: the file every accepted change is saved to.
    rules_file: Option<RulesFile>,
    /// Services (as `-S` names them) whose rules another file rvsd reads
    /// at start keeps (keepalived.conf): left out of the persisted rules,
    /// so that after a restart that file alone says whether they exist.
    kept_elsewhere: HashSet<String>,
    /// Why the last change could not be saved, for its reply.
    unsaved: Option<String>,
    /// The sync daemons (`--start-daemon`).
    sync: engine_sync::SyncView,
}

/// A failed command: exit status and what goes to stderr.
type Failure = (i32, String);

/// The text libipvs's ipvs_strerror gives for each kernel error, which
/// depends on the operation as well as the errno.
fn kernel_message(cmd: &Command, e: &IpvsError) -> String {
    let dest_op = matches!(
        cmd,
        Command::AddDest(..) | Command::EditDest(..) | Command::DeleteDest(..)
    );
    match e {
        IpvsError::NoService if dest_op => "Service not defined".into(),
        // rvs's own refusals say what is wrong.
        IpvsError::InvalidArgument(m) if m.starts_with("--synproxy") => (*m).into(),
        IpvsError::InvalidArgument(_) => {
            "Invalid operation.  Possibly wrong module version, address not unicast, ...".into()
        }
        IpvsError::OutOfRange(_) => "Numerical result out of range".into(),
        other => other.to_string(),
    }
}

impl Engine {
    pub fn new(
        workers: usize,
        services: Arc<ArcSwap<ServiceSet>>,
        timeouts: Arc<ArcSwap<Timeouts>>,
    ) -> Engine {
        let t = (**timeouts.load()).clone();
        Engine {
            table: ServiceTable::new(workers),
            timeouts: t,
            services,
            published_timeouts: timeouts,
            conns: no_conns(),
            laddr: LaddrView::default(),
            table_size: 4096,
            health: Health::default(),
            rules_file: None,
            unsaved: None,
            kept_elsewhere: HashSet::new(),
            sync: engine_sync::SyncView::default(),
        }
    }

    /// Which services the persisted rules leave to another file from now
    /// on; saved at once.
    pub fn set_kept_elsewhere(&mut self, services: HashSet<String>) {
        if services != self.kept_elsewhere {
            self.kept_elsewhere = services;
            self.save_if_persisting();
        }
    }

    /// From now on every accepted change is saved to `path` (and the table
    /// as it stands is saved at once, so an unwritable path is found now).
    pub fn persist_to(&mut self, path: std::path::PathBuf) -> std::io::Result<()> {
        let mut f = RulesFile::new(path);
        f.save(&self.rules_text())?;
        self.rules_file = Some(f);
        Ok(())
    }

    /// Saves the table to the persisted rules file, if there is one; at
    /// stop, so that a save a full disk refused earlier gets another try.
    pub fn save_rules(&mut self) -> Option<std::io::Result<&std::path::Path>> {
        let text = self.rules_text();
        let f = self.rules_file.as_mut()?;
        Some(f.save(&text).map(|_| f.path()))
    }

    /// What the persisted file holds: `-S -n`, then what ipvsadm-save
    /// leaves to the kernel but a restarted rvsd would lose: `--set`
    /// timeouts other than the defaults.
    fn rules_text(&self) -> String {
        let keep = |k: &ServiceKey| !self.kept_elsewhere.contains(&k.words());
        let mut s = save_text(&self.table, true, &keep);
        s.push_str(&self.health.save_lines_of(keep));
        let t = self.timeouts.as_ipvsadm();
        if t != Timeouts::default().as_ipvsadm() {
            s.push_str(&format!("--set {} {} {}\n", t.0, t.1, t.2));
        }
        s
    }

    /// Where health checks leave from (the exception path's addresses).
    pub fn set_health_sources(&mut self, sources: health::Sources) {
        self.health = Health::new(sources);
    }

    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Where `-c` gets its rows from.
    pub fn set_conn_source(&mut self, conns: ConnSource) {
        self.conns = conns;
    }

    /// When the command line is a connection listing (`-L -c`, any view):
    /// the source and the options, for the caller to stream the listing
    /// without holding the engine, however large the tables are.
    pub fn conn_listing(&self, prog: &str, args: &[String]) -> Option<(ConnSource, ListOptions)> {
        match parse_as(prog, args) {
            Ok(Command::List(opts)) if opts.connections => Some((self.conns.clone(), opts)),
            _ => None,
        }
    }

    /// rvsd's port names and the workers' local-address use.
    pub fn laddr_view(&mut self) -> &mut LaddrView {
        &mut self.laddr
    }

    pub fn table(&self) -> &ServiceTable {
        &self.table
    }

    /// Publishes the table after a change, with sorry servers brought in
    /// line with it first.
    fn publish(&mut self) {
        self.health.reconcile(&mut self.table);
        self.services.store(Arc::new(self.table.snapshot()));
        self.published_timeouts
            .store(Arc::new(self.timeouts.clone()));
        self.save_if_persisting();
    }

    fn save_if_persisting(&mut self) {
        if self.rules_file.is_none() {
            return;
        }
        let text = self.rules_text();
        if let Some(f) = &mut self.rules_file {
            // The change stands (it is live); the reply says it is not
            // saved, and the next change or the stop tries again.
            self.unsaved = f.save(&text).err().map(|e| {
                log::error!(
                    "ctl.persist: cannot save the rules to {}: {e}",
                    f.path().display()
                );
                format!(
                    "rvsd: warning: the change is live but not saved to {}: {e}\n",
                    f.path().display()
                )
            });
        }
    }

    /// One command line, as typed after the program name.
    pub fn execute(&mut self, prog: &str, args: &[String], input: Option<&str>) -> Reply {
        let mut reply = self.execute_unsaved(prog, args, input);
        if let Some(w) = self.unsaved.take() {
            reply.stderr.push_str(&w);
        }
        reply
    }

    fn execute_unsaved(&mut self, prog: &str, args: &[String], input: Option<&str>) -> Reply {
        if let Some(r) = self.mark_command(args) {
            return r;
        }
        let cmd = match parse_as(prog, args) {
            Ok(c) => c,
            Err(e) => return Reply::fail(e.exit_code, format!("{}\n", e.message)),
        };
        if let Some(r) = self.sync_command(&cmd) {
            return r;
        }
        match cmd {
            Command::Restore => return self.restore(prog, input.unwrap_or("")),
            Command::Help => return Reply::ok(usage(prog)),
            _ => {}
        }
        let mut out = String::new();
        let r = Self::apply(
            &mut self.table,
            &mut self.timeouts,
            &cmd,
            &mut out,
            (&self.conns, &self.laddr),
            self.table_size,
        );
        if cmd_changes(&cmd) && r.is_ok() {
            self.publish();
        }
        if matches!(cmd, Command::Save { .. }) && r.is_ok() {
            // After the -A/-a lines: checks and sorry servers name them.
            out.push_str(&self.health.save_lines());
        }
        match r {
            Ok(()) => Reply::ok(out),
            Err((code, msg)) => Reply {
                stdout: out,
                ..Reply::fail(code, msg)
            },
        }
    }

    /// rvs's mark rules, which stand in for iptables' MARK in front of IPVS:
    /// `--mark-add ADDR[/LEN] [tcp|udp|sctp|any] [PORT[:PORT]] MARK`,
    /// `--mark-del` with the same arguments, `--mark-list`. None: not one.
    fn mark_command(&mut self, args: &[String]) -> Option<Reply> {
        let (cmd, rest) = args.split_first()?;
        let words: Vec<&str> = rest.iter().map(String::as_str).collect();
        let changed = match cmd.as_str() {
            "--mark-add" | "--mark-del" => {
                let rule = match MarkRule::parse(&words) {
                    Ok(r) => r,
                    Err(e) => return Some(Reply::fail(2, format!("{cmd}: {e}\n"))),
                };
                let r = if cmd == "--mark-add" {
                    self.table.add_mark(rule)
                } else {
                    self.table.delete_mark(&rule)
                };
                if let Err(IpvsError::InvalidArgument(why)) = r {
                    return Some(Reply::fail(KERNEL_ERROR, format!("{why}\n")));
                }
                true
            }
            "--mark-list" => false,
            "--check-set" | "--check-del" | "--check-list" | "--sorry-set" | "--sorry-del" => {
                return Some(self.health_command(cmd, &words));
            }
            "--toa" => {
                // --toa on|off SERVICE: the service's key parsed by the
                // ipvsadm grammar, as -D would take it.
                let (state, svc) = match words.split_first() {
                    Some((&"on", svc)) => (true, svc),
                    Some((&"off", svc)) => (false, svc),
                    _ => {
                        return Some(Reply::fail(
                            2,
                            "--toa: on or off, then the service (-t|-u|-f)\n".into(),
                        ))
                    }
                };
                let mut del = vec!["-D".to_string()];
                del.extend(svc.iter().map(|w| w.to_string()));
                let key = match parse_as("rvsadm", &del) {
                    Ok(Command::DeleteService(k)) => k,
                    _ => {
                        return Some(Reply::fail(
                            2,
                            "--toa: give the service as -t|-u ADDR:PORT or -f MARK\n".into(),
                        ))
                    }
                };
                if let Err(e) = self.table.set_toa(&key, state) {
                    return Some(Reply::fail(
                        KERNEL_ERROR,
                        format!("{}\n", kernel_message(&Command::DeleteService(key), &e)),
                    ));
                }
                true
            }
            _ => return None,
        };
        if changed {
            self.publish();
            return Some(Reply::ok(String::new()));
        }
        Some(Reply::ok(mark_lines(&self.table)))
    }

    /// rvs's health commands:
    /// `--check-set SERVICE key=value...` (ldirectord's keys),
    /// `--check-del SERVICE`, `--check-list [SERVICE]`,
    /// `--sorry-set SERVICE -r ADDR:PORT [-g|-m|-i|-b] [-w N]`,
    /// `--sorry-del SERVICE`. SERVICE is -t|-u ADDR:PORT or -f MARK [-6].
    fn health_command(&mut self, cmd: &str, words: &[&str]) -> Reply {
        let split = words
            .iter()
            .position(|w| w.contains('=') || *w == "-r")
            .unwrap_or(words.len());
        let (svc, rest) = words.split_at(split);
        if cmd == "--check-list" && svc.is_empty() {
            return Reply::ok(self.health.list(&self.table, None));
        }
        let key = match service_key(svc) {
            Some(k) => k,
            None => {
                return Reply::fail(
                    2,
                    format!("{cmd}: give the service as -t|-u ADDR:PORT or -f MARK\n"),
                )
            }
        };
        if self.table.get(&key).is_none() {
            return Reply::fail(KERNEL_ERROR, "Service not defined\n".into());
        }
        let now = std::time::Instant::now();
        match cmd {
            "--check-list" => return Reply::ok(self.health.list(&self.table, Some(&key))),
            "--check-set" => {
                match CheckConfig::parse(rest.iter().copied(), health::transport(&key)) {
                    Ok(c) => self.health.set_check(&mut self.table, &key, Some(c), now),
                    Err(e) => return Reply::fail(2, format!("{cmd}: {e}\n")),
                }
            }
            "--check-del" => {
                if self.health.check(&key).is_none() {
                    return Reply::fail(KERNEL_ERROR, "No check for that service\n".into());
                }
                self.health.set_check(&mut self.table, &key, None, now)
            }
            "--sorry-set" => {
                let mut add = vec!["-a".to_string()];
                add.extend(svc.iter().chain(rest).map(|w| w.to_string()));
                match parse_as("rvsadm", &add) {
                    Ok(Command::AddDest(_, d, _)) if !crate::ipvs::dest::unicast(d.addr) => {
                        // What the kernel says when it is added as a dest.
                        let e = IpvsError::InvalidArgument("real server address not unicast");
                        return Reply::fail(
                            KERNEL_ERROR,
                            format!("{}\n", kernel_message(&Command::Help, &e)),
                        );
                    }
                    Ok(Command::AddDest(_, d, t)) => self.health.set_sorry_tunnel(
                        &mut self.table,
                        &key,
                        Some((d, t.unwrap_or_default())),
                    ),
                    Ok(_) => return Reply::fail(2, format!("{cmd}: want -r ADDR:PORT\n")),
                    Err(e) => return Reply::fail(e.exit_code, format!("{}\n", e.message)),
                }
            }
            _ => {
                if self.health.sorry(&key).is_none() {
                    return Reply::fail(KERNEL_ERROR, "No sorry server for that service\n".into());
                }
                self.health.set_sorry(&mut self.table, &key, None)
            }
        }
        self.publish();
        Reply::ok(String::new())
    }

    fn log_transitions(&mut self, ts: Vec<Transition>) {
        if ts.is_empty() {
            return;
        }
        for t in &ts {
            let svc = t.target.service.words();
            let real = std::net::SocketAddr::new(t.target.addr, t.target.port);
            let quiescent = self
                .health
                .check(&t.target.service)
                .is_some_and(|c| c.quiescent);
            if t.up {
                log::info!(
                    "health: {svc}: real server {real} is back: up after {} passed check(s); weight {}",
                    t.checks,
                    t.target.dest(&self.table).map_or(0, |d| d.weight())
                );
            } else {
                log::warn!(
                    "health: {svc}: real server {real} is gone: down after {} failed check(s) ({}); {}",
                    t.checks,
                    t.reason,
                    if quiescent { "quiesced (weight 0)" } else { "taken out of the list" }
                );
            }
        }
        self.publish();
    }

    /// `-R`: every line or none. The lines are first applied to a copy that
    /// shares nothing with the live table; only if all succeed are they
    /// applied for real. ipvsadm itself stops at the first failing line with
    /// the earlier ones applied; rvs names that line and applies none.
    pub fn restore(&mut self, prog: &str, input: &str) -> Reply {
        self.restore_at(prog, input).0
    }

    /// [`Engine::restore`], also saying which line (1-based) failed.
    pub fn restore_at(&mut self, prog: &str, input: &str) -> (Reply, Option<usize>) {
        let mut cmds = Vec::new();
        let mut stderr = String::new();
        let mut marks = Vec::new();
        let mut toas = Vec::new();
        for (n, line) in input.lines().enumerate() {
            let t = line.trim_start();
            if [
                "--toa",
                "--check-set",
                "--sorry-set",
                "--check-del",
                "--sorry-del",
            ]
            .iter()
            .any(|c| t.starts_with(c))
            {
                toas.push((n + 1, line));
                continue;
            }
            if line.trim_start().starts_with("--mark-add") {
                let words: Vec<&str> = line.split_whitespace().skip(1).collect();
                match MarkRule::parse(&words) {
                    Ok(r) => marks.push(r),
                    Err(e) => {
                        return (
                            Reply::fail(
                                2,
                                format!(
                            "--mark-add: {e}\n{prog}: -R line {}: {line}: nothing was applied\n",
                            n + 1
                        ),
                            ),
                            Some(n + 1),
                        )
                    }
                }
                continue;
            }
            match parse_restore_line_as(prog, line) {
                None => {}
                Some(Ok(c)) => cmds.push((n + 1, line, c)),
                Some(Err(e)) => {
                    stderr.push_str(&format!(
                        "{}\n{prog}: -R line {}: {line}: nothing was applied\n",
                        e.message,
                        n + 1
                    ));
                    return (Reply::fail(e.exit_code, stderr), Some(n + 1));
                }
            }
        }
        let mut dry = self.table.dry_run_copy();
        for r in &marks {
            if let Err(e) = dry.add_mark(*r) {
                stderr.push_str(&format!(
                    "{e}\n{prog}: -R: --mark-add {r}: nothing was applied\n"
                ));
                return (Reply::fail(KERNEL_ERROR, stderr), None);
            }
        }
        let mut dry_timeouts = self.timeouts.clone();
        let none = no_conns();
        let mut sink = String::new();
        for (n, line, c) in &cmds {
            if let Err((code, msg)) = Self::apply(
                &mut dry,
                &mut dry_timeouts,
                c,
                &mut sink,
                (&none, &self.laddr),
                self.table_size,
            ) {
                stderr.push_str(&format!(
                    "{msg}{prog}: -R line {n}: {line}: nothing was applied\n"
                ));
                return (Reply::fail(code, stderr), Some(*n));
            }
        }
        // --toa lines name services the other lines make: tried on the copy
        // last, applied for real last.
        let mut dry_engine = Engine {
            table: dry,
            timeouts: dry_timeouts,
            services: Arc::new(ArcSwap::from_pointee(ServiceSet::default())),
            published_timeouts: Arc::new(ArcSwap::from_pointee(Timeouts::default())),
            conns: no_conns(),
            laddr: self.laddr.dry_copy(),
            table_size: self.table_size,
            // Checks and sorry servers as they are, so --check-del and
            // --sorry-del are tried against what exists.
            health: self.health.dry_copy(),
            rules_file: None,
            unsaved: None,
            kept_elsewhere: HashSet::new(),
            sync: engine_sync::SyncView::default(),
        };
        for (n, line) in &toas {
            let args = match health::check::split_words(line) {
                Ok(a) => a,
                Err(e) => {
                    stderr.push_str(&format!(
                        "{e}\n{prog}: -R line {n}: {line}: nothing was applied\n"
                    ));
                    return (Reply::fail(2, stderr), Some(*n));
                }
            };
            let r = dry_engine
                .mark_command(&args)
                .unwrap_or_else(|| Reply::fail(2, String::new()));
            if r.code != 0 {
                stderr.push_str(&format!(
                    "{}{prog}: -R line {n}: {line}: nothing was applied\n",
                    r.stderr
                ));
                return (Reply::fail(r.code, stderr), Some(*n));
            }
        }
        let mut out = String::new();
        for r in &marks {
            let _ = self.table.add_mark(*r);
        }
        for (n, line, c) in &cmds {
            if let Err((code, msg)) = Self::apply(
                &mut self.table,
                &mut self.timeouts,
                c,
                &mut out,
                (&self.conns, &self.laddr),
                self.table_size,
            ) {
                // The dry run passed, so only a bug gets here; say where.
                self.publish();
                stderr.push_str(&format!(
                    "{msg}{prog}: -R line {n}: {line}: failed after a successful check\n"
                ));
                return (Reply::fail(code, stderr), Some(*n));
            }
        }
        for (_, line) in &toas {
            let args = health::check::split_words(line).unwrap_or_default();
            let _ = self.mark_command(&args);
        }
        self.publish();
        (
            Reply {
                stderr,
                ..Reply::ok(out)
            },
            None,
        )
    }

    /// Why a command would give a `--proxy-protocol` service something it
    /// cannot carry: the service itself, or a real server (new or already
    /// there) of a forwarding method that cannot.
    fn proxy_protocol_refusal(table: &ServiceTable, cmd: &Command) -> Option<String> {
        match cmd {
            Command::AddService(cfg, _) | Command::EditService(cfg, _) => {
                let dests = table
                    .get(&cfg.key)
                    .into_iter()
                    .flat_map(|s| s.dests().iter().chain(s.parked()).map(|d| d.fwd()));
                proxy_protocol_refusal(cfg, dests)
            }
            Command::AddDest(key, d, _) | Command::EditDest(key, d, _) => {
                let svc = table.get(key)?;
                proxy_protocol_refusal(&svc.config, std::iter::once(d.fwd))
            }
            _ => None,
        }
    }

    fn apply(
        table: &mut ServiceTable,
        timeouts: &mut Timeouts,
        cmd: &Command,
        out: &mut String,
        (conns, laddrs): (&ConnSource, &LaddrView),
        table_size: u32,
    ) -> Result<(), Failure> {
        let kernel = |e: IpvsError| (KERNEL_ERROR, format!("{}\n", kernel_message(cmd, &e)));
        match cmd {
            _ if Self::proxy_protocol_refusal(table, cmd).is_some() => Err((
                2,
                Self::proxy_protocol_refusal(table, cmd).unwrap_or_default(),
            )),
            Command::AddService(cfg, extras) => {
                add_service(table, cfg, extras.synproxy).map_err(kernel)
            }
            Command::EditService(cfg, extras) => {
                edit_service(table, cfg, extras.synproxy).map_err(kernel)
            }
            Command::DeleteService(key) => table.delete_service(key).map_err(kernel),
            Command::Clear => {
                table.clear();
                Ok(())
            }
            Command::AddDest(key, d, t) => table
                .add_dest_tunnel(key, *d, t.unwrap_or_default())
                .map_err(kernel),
            Command::EditDest(key, d, t) => table
                .edit_dest_tunnel(key, *d, t.unwrap_or_default())
                .map_err(kernel),
            Command::DeleteDest(key, addr, port) => {
                table.delete_dest(key, *addr, *port).map_err(kernel)
            }
            Command::Zero(key) => {
                // The kernel zeroes everything for a service with no
                // address, port or mark (`-Z -t 0.0.0.0`), as for a bare -Z.
                let all = matches!(
                    key,
                    Some(ServiceKey::Addr { addr, port: 0, .. }) if addr.is_unspecified()
                ) || matches!(key, Some(ServiceKey::Fwmark { mark: 0, .. }));
                table
                    .zero(if all { None } else { key.as_ref() })
                    .map_err(kernel)
            }
            Command::SetTimeouts { tcp, tcpfin, udp } => {
                timeouts.set(*tcp, *tcpfin, *udp).map_err(kernel)
            }
            Command::Save { numeric } => {
                out.push_str(&save_text(table, *numeric, &|_| true));
                Ok(())
            }
            Command::List(opts) => {
                if opts.connections {
                    out.push_str(&format::conns_title(opts));
                    conns(&mut |rows| {
                        out.push_str(&format::conn_lines(&rows, opts, &names::System));
                        true
                    })
                    .map_err(|e| (1, format!("rvsd: {e}; the listing is incomplete\n")))?;
                } else if opts.timeout {
                    let (tcp, tcpfin, udp) = timeouts.as_ipvsadm();
                    out.push_str(&format::timeouts(tcp, tcpfin, udp));
                } else if opts.daemon {
                    // Answered by sync_command before this.
                } else {
                    let text = format::list(
                        table.snapshot().services(),
                        opts,
                        table_size,
                        &names::System,
                    )
                    .map_err(|e| (1, format!("{e}\n")))?;
                    out.push_str(&text);
                }
                Ok(())
            }
            Command::Help => {
                out.push_str(&usage("ipvsadm"));
                Ok(())
            }
            Command::Version => {
                out.push_str(VERSION_LINE);
                out.push('\n');
                Ok(())
            }
            Command::Restore => Err((2, "-R cannot be nested\n".into())),
            // Outside -R they are answered by sync_command before this.
            Command::StartDaemon(_) | Command::StopDaemon(_) => Err((
                2,
                "rvs takes --start-daemon and --stop-daemon as commands of their own, not in -R\n"
                    .into(),
            )),
            Command::AddLaddr {
                service,
                laddr,
                ifname,
            } => {
                if table.get(service).is_some() {
                    laddrs
                        .check_port(ifname)
                        .map_err(|e| (KERNEL_ERROR, format!("{e}\n")))?;
                }
                table
                    .add_laddr(service, *laddr, ifname)
                    .map_err(|e| (KERNEL_ERROR, format!("{}\n", laddr_message(&e))))
            }
            Command::DelLaddr { service, laddr, .. } => table
                .del_laddr(service, *laddr)
                .map_err(|e| (KERNEL_ERROR, format!("{}\n", laddr_message(&e)))),
            Command::GetLaddr(key) => {
                let set = table.snapshot();
                let svcs: Vec<_> = set
                    .services()
                    .iter()
                    .filter(|s| key.is_none_or(|k| s.key() == k))
                    .collect();
                if key.is_some() && svcs.is_empty() {
                    return Err(kernel(IpvsError::NoService));
                }
                out.push_str(&laddrs.get_text(&svcs));
                Ok(())
            }
        }
    }
}

/// -A with DPVS's `--synproxy`: refused whole when the service could not
/// have it.
fn add_service(
    table: &mut ServiceTable,
    cfg: &ServiceConfig,
    synproxy: bool,
) -> Result<(), IpvsError> {
    if synproxy {
        service::synproxy_key(&cfg.key)?;
    }
    table.add_service(cfg.clone())?;
    if synproxy {
        table.set_synproxy(&cfg.key, true)?;
    }
    Ok(())
}

/// -E: like the rest of the service, `--synproxy` is sent whole, so an
/// edit without it turns the SYN proxy off (as DPVS's -E does).
fn edit_service(
    table: &mut ServiceTable,
    cfg: &ServiceConfig,
    synproxy: bool,
) -> Result<(), IpvsError> {
    if synproxy {
        if let Some(s) = table.get(&cfg.key) {
            service::synproxy_allowed(s)?;
        }
    }
    table.edit_service(cfg.clone())?;
    table.set_synproxy(&cfg.key, synproxy)
}

/// A service named by ipvsadm's words (-t|-u ADDR:PORT, -f MARK [-6]).
fn service_key(words: &[&str]) -> Option<ServiceKey> {
    let mut del = vec!["-D".to_string()];
    del.extend(words.iter().map(|w| w.to_string()));
    match parse_as("rvsadm", &del) {
        Ok(Command::DeleteService(k)) => Some(k),
        _ => None,
    }
}

impl Host for Engine {
    fn health_tick(&mut self, now: std::time::Instant) -> Vec<Job> {
        let (jobs, ts) = self.health.tick(&mut self.table, now);
        self.log_transitions(ts);
        jobs
    }

    fn health_report(&mut self, target: Target, seq: u64, verdict: Verdict) {
        let t = self.health.report(&mut self.table, target, seq, verdict);
        self.log_transitions(t.into_iter().collect());
    }
}

/// Mark rules as `--mark-add` lines.
fn mark_lines(table: &ServiceTable) -> String {
    table
        .marks()
        .rules()
        .iter()
        .map(|r| format!("--mark-add {r}\n"))
        .collect()
}

/// `--toa on` lines for the services that have it, after the -A lines.
fn toa_lines(table: &ServiceTable, keep: &dyn Fn(&ServiceKey) -> bool) -> String {
    table
        .services()
        .iter()
        .filter(|s| s.toa() && keep(&s.key()))
        .map(|s| format!("--toa on {}\n", s.key().words()))
        .collect()
}

/// DPVS's texts for local-address errors.
fn laddr_message(e: &IpvsError) -> String {
    match e {
        IpvsError::NoService => "Service not defined".into(),
        IpvsError::DestExists => "Local address already exists".into(),
        IpvsError::NoDest => "No such local address".into(),
        other => other.to_string(),
    }
}

/// `-S`'s table part. Mark rules first, so a restore has them before the
/// -f services that use them (rvs-only lines: none without rules).
/// Of the services `keep` says.
fn save_text(table: &ServiceTable, numeric: bool, keep: &dyn Fn(&ServiceKey) -> bool) -> String {
    let mut s = mark_lines(table);
    let services: Vec<Arc<Service>> = table
        .snapshot()
        .services()
        .iter()
        .filter(|svc| keep(&svc.key()))
        .cloned()
        .collect();
    s.push_str(&format::save(&services, numeric, &names::System));
    s.push_str(&toa_lines(table, keep));
    s
}

/// Whether a command may change what workers see.
fn cmd_changes(cmd: &Command) -> bool {
    !matches!(
        cmd,
        Command::List(_) | Command::Save { .. } | Command::Help | Command::Version
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        Engine::new(
            1,
            Arc::new(ArcSwap::from_pointee(ServiceSet::default())),
            Arc::new(ArcSwap::from_pointee(Timeouts::default())),
        )
    }

    fn run(e: &mut Engine, line: &str) -> Reply {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        e.execute("ipvsadm", &args, None)
    }

    /// ipvsadm's dest line, from its format string "  -> %-28s %-7s %-6d %-10u %-10u\n".
    fn dest_line(addr: &str, fwd: &str, w: i32, a: u32, i: u32) -> String {
        format!("  -> {addr:<28} {fwd:<7} {w:<6} {a:<10} {i:<10}\n")
    }

    const HEADER: &str = "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n";

    #[test]
    fn an_operators_nat_session_lists_as_ipvsadm_would() {
        let mut e = engine();
        for l in [
            "-A -t 10.0.0.1:80 -s rr",
            "-a -t 10.0.0.1:80 -r 192.168.0.2:80 -m",
            "-a -t 10.0.0.1:80 -r 192.168.0.1:80 -m -w 2",
            "-A -f 10 -s wlc -p 3600",
            "-a -f 10 -r 192.168.0.3:0 -g",
        ] {
            assert_eq!(run(&mut e, l).code, 0, "{l}: {:?}", run(&mut e, l));
        }
        let r = run(&mut e, "-Ln");
        let want = format!(
            "{HEADER}TCP  10.0.0.1:80 rr\n{}{}FWM  10 wlc persistent 3600\n{}",
            dest_line("192.168.0.1:80", "Masq", 2, 0, 0),
            dest_line("192.168.0.2:80", "Masq", 1, 0, 0),
            dest_line("192.168.0.3:0", "Route", 1, 0, 0),
        );
        assert_eq!(r.stdout, want);
        assert_eq!(r.code, 0);
        // The workers' snapshot follows every change.
        assert_eq!(e.services.load().services().len(), 2);
    }

    #[test]
    fn proxy_protocol_takes_fullnat_and_nat_tcp_services_and_refuses_the_rest() {
        let mut e = engine();
        for l in [
            "-A -t 10.0.0.1:80 -s rr --proxy-protocol v1",
            "-a -t 10.0.0.1:80 -r 192.168.0.2:80 -b",
            "-a -t 10.0.0.1:80 -r 192.168.0.3:80 -m",
        ] {
            assert_eq!(run(&mut e, l).code, 0, "{l}: {:?}", run(&mut e, l));
        }
        let saved = run(&mut e, "-Sn").stdout;
        assert!(saved.starts_with("-A -t 10.0.0.1:80 -s rr --proxy-protocol v1\n"));
        let refused = [
            ("-a -t 10.0.0.1:80 -r 192.168.0.4:80 -g", "FULLNAT or NAT"),
            ("-e -t 10.0.0.1:80 -r 192.168.0.2:80 -i", "FULLNAT or NAT"),
            (
                "-E -t 10.0.0.1:80 -s rr --proxy-protocol v2-insecure",
                "insecure",
            ),
            ("-A -u 10.0.0.1:53 --proxy-protocol v2", "TCP service"),
            ("-A -f 7 --proxy-protocol v2", "TCP service"),
            (
                "-A --sctp-service 10.0.0.1:9 --proxy-protocol v2",
                "TCP service",
            ),
        ];
        for (l, why) in refused {
            let r = run(&mut e, l);
            assert_eq!(r.code, 2, "{l}");
            assert!(r.stderr.contains(why), "{l}: {}", r.stderr);
            assert_eq!(run(&mut e, "-Sn").stdout, saved, "{l} changed the table");
        }
        // A DR service cannot turn it on either; turning it off is fine.
        run(&mut e, "-A -t 10.0.0.9:80 -s rr");
        run(&mut e, "-a -t 10.0.0.9:80 -r 192.168.0.9:80 -g");
        assert_eq!(
            run(&mut e, "-E -t 10.0.0.9:80 -s rr --proxy-protocol v2").code,
            2
        );
        assert_eq!(run(&mut e, "-E -t 10.0.0.1:80 -s rr").code, 0);
        assert!(!run(&mut e, "-Sn").stdout.contains("proxy"));
    }

    #[test]
    fn kernel_errors_print_ipvsadms_text_and_exit_255() {
        let mut e = engine();
        run(&mut e, "-A -t 10.0.0.1:80");
        let cases = [
            ("-A -t 10.0.0.1:80", "Service already exists\n"),
            ("-E -t 10.0.0.9:80", "No such service\n"),
            ("-D -t 10.0.0.9:80", "No such service\n"),
            ("-a -t 10.0.0.9:80 -r 10.1.1.1", "Service not defined\n"),
            ("-d -t 10.0.0.1:80 -r 10.1.1.1", "No such destination\n"),
            (
                "-A -t 10.0.0.2:80 -s nosuch",
                "Scheduler or persistence engine not found\n",
            ),
        ];
        for (l, msg) in cases {
            let r = run(&mut e, l);
            assert_eq!((r.code, r.stderr.as_str()), (255, msg), "{l}");
        }
        run(&mut e, "-a -t 10.0.0.1:80 -r 10.1.1.1");
        let r = run(&mut e, "-a -t 10.0.0.1:80 -r 10.1.1.1");
        assert_eq!(
            (r.code, r.stderr.as_str()),
            (255, "Destination already exists\n")
        );
        let r = run(&mut e, "-n -L");
        assert_eq!(r.code, 255, "command not first: {r:?}");
        assert_eq!(
            r.stderr,
            "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n"
        );
    }

    #[test]
    fn real_servers_the_kernel_refuses_as_not_unicast() {
        let mut e = engine();
        run(&mut e, "-A -t 10.0.0.1:80 -s rr");
        run(&mut e, "-A -t [2001:db8::1]:80 -s rr");
        // ipvsadm prints libipvs's text for EINVAL and exits 255.
        let refused =
            "Invalid operation.  Possibly wrong module version, address not unicast, ...\n";
        for r in [
            "0.0.0.0:80",
            "0.1.2.3:80",
            "255.255.255.255:80",
            "224.0.0.1:80",
            "239.1.1.1:80",
        ] {
            let out = run(&mut e, &format!("-a -t 10.0.0.1:80 -r {r} -m"));
            assert_eq!((out.code, out.stderr.as_str()), (255, refused), "{r}");
        }
        for r in [
            "[::]:80",
            "[ff02::1]:80",
            "[fe80::1]:80",
            "[::ffff:10.1.1.1]:80",
        ] {
            let out = run(&mut e, &format!("-a -t [2001:db8::1]:80 -r {r} -m"));
            assert_eq!((out.code, out.stderr.as_str()), (255, refused), "{r}");
        }
        let out = run(&mut e, "--sorry-set -t 10.0.0.1:80 -r 224.0.0.9:80 -m");
        assert_eq!((out.code, out.stderr.as_str()), (255, refused));
        assert_eq!(
            run(&mut e, "-Sn").stdout,
            "-A -t 10.0.0.1:80 -s rr\n-A -t [2001:db8::1]:80 -s rr\n"
        );
        // Unicast, loopback and a (kernel-local) broadcast-looking host: taken.
        for r in ["10.1.1.1:80", "127.0.0.1:80", "192.168.1.255:80"] {
            assert_eq!(
                run(&mut e, &format!("-a -t 10.0.0.1:80 -r {r} -m")).code,
                0,
                "{r}"
            );
        }
        assert_eq!(run(&mut e, "-a -t [2001:db8::1]:80 -r [::1]:80 -m").code, 0);
    }

    #[test]
    fn scheduler_none_is_a_service_without_one() {
        let mut e = engine();
        assert_eq!(run(&mut e, "-A -t 10.0.0.1:80 -s none").code, 0);
        let list = run(&mut e, "-Ln").stdout;
        assert!(list.contains("TCP  10.0.0.1:80 none\n"), "{list}");
        assert_eq!(run(&mut e, "-Sn").stdout, "-A -t 10.0.0.1:80 -s none\n");
    }

    #[test]
    fn zero_of_the_all_zero_service_zeroes_every_counter() {
        let mut e = engine();
        run(&mut e, "-A -t 10.0.0.1:80 -s rr");
        run(&mut e, "-A -u 10.0.0.2:53 -s rr");
        for s in e.table().services() {
            s.stats.worker(0).conns.inc();
        }
        let conns = |e: &Engine| -> Vec<u64> {
            e.table()
                .services()
                .iter()
                .map(|s| s.stats.snapshot().conns)
                .collect()
        };
        assert_eq!(conns(&e), [1, 1]);
        // A service that does not exist, but not the all-zero one: refused.
        assert_eq!(run(&mut e, "-Z -t 10.9.9.9:80").code, 255);
        assert_eq!(conns(&e), [1, 1]);
        let r = run(&mut e, "-Z -t 0.0.0.0");
        assert_eq!((r.code, r.stderr.as_str()), (0, ""));
        assert_eq!(conns(&e), [0, 0]);
    }

    #[test]
    fn delete_dest_takes_exactly_the_port_given() {
        let mut e = engine();
        run(&mut e, "-A -t 10.0.0.1:80 -s rr");
        // DR: stored on the service's port, whatever -a said.
        run(&mut e, "-a -t 10.0.0.1:80 -r 10.1.1.1:8080 -g");
        assert_eq!(
            run(&mut e, "-Sn").stdout,
            "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.1.1:80 -g -w 1\n"
        );
        let r = run(&mut e, "-d -t 10.0.0.1:80 -r 10.1.1.1:8080");
        assert_eq!((r.code, r.stderr.as_str()), (255, "No such destination\n"));
        assert_eq!(run(&mut e, "-d -t 10.0.0.1:80 -r 10.1.1.1:80").code, 0);
        assert_eq!(run(&mut e, "-Sn").stdout, "-A -t 10.0.0.1:80 -s rr\n");
    }

    #[test]
    fn a_fwmark_services_real_server_ports_print_as_numbers() {
        let mut e = engine();
        run(&mut e, "-A -f 10 -s rr");
        run(&mut e, "-a -f 10 -r 10.1.1.1:80 -m");
        run(&mut e, "-A -t 10.0.0.1:80 -s rr");
        run(&mut e, "-a -t 10.0.0.1:80 -r 10.1.1.1:80 -m");
        // ipvsadm's "  -> %-28s %-7s %-6d %-10u %-10u" without -n.
        let list = run(&mut e, "-L").stdout;
        assert!(
            list.contains("TCP  10.0.0.1:http rr\n  -> 10.1.1.1:http                Masq    1      0          0         \n"),
            "{list}"
        );
        assert!(
            list.contains("FWM  10 rr\n  -> 10.1.1.1:80                  Masq    1      0          0         \n"),
            "{list}"
        );
        let save = run(&mut e, "-S").stdout;
        assert!(save.contains("-a -f 10 -r 10.1.1.1:80 -m -w 1\n"), "{save}");
        assert!(
            save.contains("-a -t 10.0.0.1:http -r 10.1.1.1:http -m -w 1\n"),
            "{save}"
        );
    }

    #[test]
    fn an_option_error_on_a_restore_line_fails_the_restore() {
        let mut e = engine();
        let rules = "-A -t 10.0.0.1:80 -s rr\n-A -t 10.0.0.2:80 --bogus\n";
        let r = e.execute("ipvsadm", &["-R".into()], Some(rules));
        assert_eq!(r.code, 255);
        assert_eq!(
            r.stderr,
            "--bogus: unknown option\nipvsadm: -R line 2: -A -t 10.0.0.2:80 --bogus: nothing was applied\n"
        );
        assert_eq!(run(&mut e, "-Sn").stdout, "");
    }

    #[test]
    fn twos_the_kernels_14th_scheduler_is_taken_listed_and_saved() {
        let mut e = engine();
        assert_eq!(run(&mut e, "-A -t 10.0.0.1:80 -s twos").code, 0);
        assert_eq!(run(&mut e, "-a -t 10.0.0.1:80 -r 10.1.1.1:80 -m").code, 0);
        let list = run(&mut e, "-Ln").stdout;
        assert!(list.contains("TCP  10.0.0.1:80 twos\n"), "{list}");
        assert_eq!(
            run(&mut e, "-Sn").stdout,
            "-A -t 10.0.0.1:80 -s twos\n-a -t 10.0.0.1:80 -r 10.1.1.1:80 -m -w 1\n"
        );
    }

    fn scratch_dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("rvs-engine-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn every_accepted_change_is_in_the_rules_file_before_the_reply() {
        let d = scratch_dir("persist");
        let path = d.join("rules");
        let mut e = engine();
        e.persist_to(path.clone()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        run(&mut e, "-A -t 10.0.0.1:80 -s wlc");
        run(&mut e, "-a -t 10.0.0.1:80 -r 10.1.1.1:8080 -m -w 3");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "-A -t 10.0.0.1:80 -s wlc\n-a -t 10.0.0.1:80 -r 10.1.1.1:8080 -m -w 3\n"
        );
        // Refused: nothing changes, the file neither.
        assert_ne!(run(&mut e, "-A -t 10.0.0.1:80 -s rr").code, 0);
        // Timeouts are not in ipvsadm-save's output, but a restart must
        // not lose them; checks and mark rules ride along too.
        run(&mut e, "--set 900 60 30");
        run(&mut e, "--mark-add 10.0.0.9 tcp 443 7");
        let r = run(
            &mut e,
            "--check-set -t 10.0.0.1:80 checktype=connect checkinterval=4",
        );
        assert_eq!(r.code, 0, "{r:?}");
        let saved = std::fs::read_to_string(&path).unwrap();
        assert!(saved.starts_with("--mark-add 10.0.0.9"), "{saved}");
        assert!(saved.contains("--check-set -t 10.0.0.1:80 "), "{saved}");
        assert!(saved.ends_with("--set 900 60 30\n"), "{saved}");

        // The next start: a new engine restores the file and saves the same.
        let mut again = engine();
        let r = again.restore("rvsd", &saved);
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(run(&mut again, "-Sn").stdout, run(&mut e, "-Sn").stdout);
        assert_eq!(
            run(&mut again, "-L --timeout").stdout,
            "Timeout (tcp tcpfin udp): 900 60 30\n"
        );
        assert_eq!(again.rules_text(), saved);

        run(&mut e, "-C");
        run(&mut e, "--mark-del 10.0.0.9 tcp 443 7");
        run(&mut e, "--set 900 120 300");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_change_that_cannot_be_saved_stays_live_and_says_so() {
        let d = scratch_dir("unsaved");
        let path = d.join("rules");
        let mut e = engine();
        e.persist_to(path.clone()).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
        let r = run(&mut e, "-A -t 10.0.0.1:80 -s rr");
        assert_eq!(r.code, 0, "{r:?}");
        assert!(
            r.stderr.contains("the change is live but not saved to")
                && r.stderr.contains(&path.display().to_string()),
            "{r:?}"
        );
        assert_eq!(run(&mut e, "-Sn").stdout, "-A -t 10.0.0.1:80 -s rr\n");
        // The directory is back: the next save (here the stop's) succeeds.
        std::fs::create_dir_all(&d).unwrap();
        assert_eq!(e.save_rules().unwrap().unwrap(), path.as_path());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "-A -t 10.0.0.1:80 -s rr\n"
        );
        let r = run(&mut e, "-Ln");
        assert_eq!(r.stderr, "");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn restore_is_all_or_nothing_and_names_the_failing_line() {
        let mut e = engine();
        run(&mut e, "-A -t 10.0.0.1:80 -s rr");
        let before = run(&mut e, "-Sn").stdout;
        let bad = "-A -t 10.0.0.2:80 -s rr\n-a -t 10.0.0.2:80 -r 10.1.1.1:80 -m\n\n-A -t 10.0.0.1:80 -s rr\n-A -t 10.0.0.3:80\n";
        let r = e.execute("ipvsadm", &["-R".into()], Some(bad));
        assert_eq!(r.code, 255);
        assert!(
            r.stderr.starts_with("Service already exists\n"),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr.contains("-R line 4: -A -t 10.0.0.1:80 -s rr"),
            "{}",
            r.stderr
        );
        assert_eq!(run(&mut e, "-Sn").stdout, before, "nothing applied");

        let good = "-A -t 10.0.0.2:80 -s rr\n-a -t 10.0.0.2:80 -r 10.1.1.1:80 -m -w 3\n-e -t 10.0.0.2:80 -r 10.1.1.1:80 -m -w 5\n";
        let r = e.execute("ipvsadm", &["-R".into()], Some(good));
        assert_eq!(r.code, 0, "{r:?}");
        let saved = run(&mut e, "-Sn").stdout;
        assert!(
            saved.contains("-a -t 10.0.0.2:80 -r 10.1.1.1:80 -m -w 5\n"),
            "{saved}"
        );

        // -S | -C | -R round-trips.
        run(&mut e, "-C");
        assert_eq!(run(&mut e, "-Sn").stdout, "");
        let r = e.execute("ipvsadm", &["-R".into()], Some(&saved));
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(run(&mut e, "-Sn").stdout, saved);
    }

    #[test]
    fn a_failed_dry_run_leaves_live_dest_weights_alone() {
        let mut e = engine();
        run(&mut e, "-A -t 10.0.0.1:80");
        run(&mut e, "-a -t 10.0.0.1:80 -r 10.1.1.1:80 -m -w 4");
        let live = e.table().services()[0].dests()[0].clone();
        let r = e.execute(
            "ipvsadm",
            &["-R".into()],
            Some("-e -t 10.0.0.1:80 -r 10.1.1.1:80 -m -w 9\n-D -t 10.9.9.9:80\n"),
        );
        assert_eq!(r.code, 255);
        assert_eq!(
            live.weight(),
            4,
            "the -e of a failed restore never touched the live dest"
        );
    }

    #[test]
    fn mark_rules_route_packets_to_fwmark_services_and_save_and_restore() {
        let mut e = engine();
        for l in [
            "--mark-add 10.0.0.1 tcp 80 10",
            "--mark-add 10.0.0.1 tcp 443 10",
            "-A -f 10 -s rr -p 3600",
            "-a -f 10 -r 192.168.39.17 -g",
        ] {
            assert_eq!(run(&mut e, l).code, 0, "{l}");
        }
        let set = e.services.load();
        let ip: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let fwm = |port| {
            set.lookup(0, crate::ipvs::Protocol::Tcp, ip, port)
                .map(|s| s.key())
        };
        assert_eq!(
            fwm(80),
            Some(ServiceKey::Fwmark {
                mark: 10,
                ipv6: false
            })
        );
        assert_eq!(
            fwm(443),
            Some(ServiceKey::Fwmark {
                mark: 10,
                ipv6: false
            })
        );
        assert_eq!(fwm(22), None);
        assert_eq!(
            run(&mut e, "--mark-list").stdout,
            "--mark-add 10.0.0.1/32 tcp 80 10\n--mark-add 10.0.0.1/32 tcp 443 10\n"
        );
        let saved = run(&mut e, "-Sn").stdout;
        assert!(saved.starts_with("--mark-add 10.0.0.1/32 tcp 80 10\n--mark-add 10.0.0.1/32 tcp 443 10\n-A -f 10 -s rr -p 3600\n"), "{saved}");
        let mut fresh = engine();
        assert_eq!(
            fresh.execute("ipvsadm", &["-R".into()], Some(&saved)).code,
            0
        );
        assert_eq!(run(&mut fresh, "-Sn").stdout, saved);
        assert_eq!(
            run(&mut e, "--mark-add 10.0.0.1 tcp 80 10").code,
            255,
            "duplicate"
        );
        assert_eq!(run(&mut e, "--mark-add nope 5").code, 2);
        assert_eq!(run(&mut e, "--mark-del 10.0.0.1 tcp 80 10").code, 0);
        assert_eq!(
            e.services
                .load()
                .lookup(0, crate::ipvs::Protocol::Tcp, ip, 80)
                .map(|s| s.key()),
            None
        );
    }

    #[test]
    fn toa_is_per_service_saved_and_restored() {
        let mut e = engine();
        run(&mut e, "-A -t 10.0.0.1:80 -s rr");
        run(&mut e, "-a -t 10.0.0.1:80 -r 10.1.1.1:80 -b");
        assert_eq!(run(&mut e, "--toa on -t 10.0.0.1:80").code, 0);
        assert!(
            e.services.load().services()[0].toa(),
            "published to the workers"
        );
        let r = run(&mut e, "--toa on -t 10.0.0.9:80");
        assert_eq!((r.code, r.stderr.as_str()), (255, "No such service\n"));
        assert_eq!(run(&mut e, "--toa maybe -t 10.0.0.1:80").code, 2);
        // -E keeps it: TOA is not part of what ipvsadm's -E replaces.
        run(&mut e, "-E -t 10.0.0.1:80 -s wlc");
        let saved = run(&mut e, "-Sn").stdout;
        assert!(saved.ends_with("--toa on -t 10.0.0.1:80\n"), "{saved}");
        let mut fresh = engine();
        let r = fresh.execute("ipvsadm", &["-R".into()], Some(&saved));
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(run(&mut fresh, "-Sn").stdout, saved);
        assert_eq!(run(&mut e, "--toa off -t 10.0.0.1:80").code, 0);
        assert!(!run(&mut e, "-Sn").stdout.contains("--toa"));
    }

    #[test]
    fn synproxy_is_per_service_listed_saved_restored_and_off_by_default() {
        let mut e = engine();
        run(&mut e, "-A -t 10.0.0.1:80 -s rr");
        assert!(
            !e.services.load().services()[0].synproxy(),
            "off by default"
        );
        assert_eq!(run(&mut e, "-E -t 10.0.0.1:80 -s rr -j enable").code, 0);
        assert!(
            e.services.load().services()[0].synproxy(),
            "published to the workers"
        );
        assert_eq!(run(&mut e, "-a -t 10.0.0.1:80 -r 10.1.1.1:80 -b").code, 0);
        assert_eq!(run(&mut e, "-a -t 10.0.0.1:80 -r 10.1.1.2:80 -m").code, 0);
        let listing = run(&mut e, "-Ln").stdout;
        assert!(
            listing.contains("TCP  10.0.0.1:80 rr synproxy\n"),
            "{listing}"
        );
        let saved = run(&mut e, "-Sn").stdout;
        assert!(
            saved.starts_with("-A -t 10.0.0.1:80 -s rr -j enable\n"),
            "{saved}"
        );
        let mut fresh = engine();
        let r = fresh.execute("ipvsadm", &["-R".into()], Some(&saved));
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(run(&mut fresh, "-Sn").stdout, saved);
        assert!(fresh.services.load().services()[0].synproxy());
        // -E sends it whole: an edit without it turns it off.
        assert_eq!(run(&mut e, "-E -t 10.0.0.1:80 -s wlc").code, 0);
        assert!(!run(&mut e, "-Ln").stdout.contains("synproxy"));
        assert!(!e.services.load().services()[0].synproxy());
    }

    #[test]
    fn synproxy_is_refused_where_it_cannot_work_and_nothing_changes() {
        let mut e = engine();
        let refused = |e: &mut Engine, line: &str, why: &str| {
            let before = run(e, "-Sn").stdout;
            let r = run(e, line);
            assert_ne!(r.code, 0, "{line}");
            assert!(r.stderr.contains(why), "{line}: {r:?}");
            assert_eq!(run(e, "-Sn").stdout, before, "{line} changed something");
        };
        let tcp_only = "--synproxy needs a TCP service";
        let fnat_nat = "--synproxy needs real servers that forward by FULLNAT (-b) or NAT (-m)";
        refused(&mut e, "-A -u 10.0.0.1:53 -j enable", tcp_only);
        refused(
            &mut e,
            "-A --sctp-service 10.0.0.1:5000 -j enable",
            tcp_only,
        );
        refused(&mut e, "-A -f 10 -j enable", tcp_only);
        run(&mut e, "-A -u 10.0.0.1:53");
        refused(&mut e, "-E -u 10.0.0.1:53 -j enable", tcp_only);
        // A service with DR or TUN real servers cannot have it ...
        run(&mut e, "-A -t 10.0.0.2:80");
        run(&mut e, "-a -t 10.0.0.2:80 -r 10.1.1.1 -g");
        refused(&mut e, "-E -t 10.0.0.2:80 -j enable", fnat_nat);
        run(&mut e, "-A -t 10.0.0.3:80");
        run(&mut e, "-a -t 10.0.0.3:80 -r 10.1.1.1 -i");
        refused(&mut e, "-E -t 10.0.0.3:80 -j enable", fnat_nat);
        // ... and a SYN-proxy service takes no DR or TUN real server.
        run(&mut e, "-A -t 10.0.0.4:80 -j enable");
        run(&mut e, "-a -t 10.0.0.4:80 -r 10.1.1.1:80 -b");
        refused(&mut e, "-a -t 10.0.0.4:80 -r 10.1.1.2 -g", fnat_nat);
        refused(&mut e, "-a -t 10.0.0.4:80 -r 10.1.1.2 -i", fnat_nat);
        refused(&mut e, "-e -t 10.0.0.4:80 -r 10.1.1.1:80 -g", fnat_nat);
    }

    #[test]
    fn timeouts_set_and_list() {
        let mut e = engine();
        assert_eq!(
            run(&mut e, "-L --timeout").stdout,
            "Timeout (tcp tcpfin udp): 900 120 300\n"
        );
        assert_eq!(run(&mut e, "--set 60 0 30").code, 0);
        assert_eq!(
            run(&mut e, "-L --timeout").stdout,
            "Timeout (tcp tcpfin udp): 60 120 30\n"
        );
        assert_eq!(e.published_timeouts.load().as_ipvsadm(), (60, 120, 30));
        assert_eq!(run(&mut e, "-h").stdout, usage("ipvsadm"));
        assert_eq!(run(&mut e, "-v").stdout, format!("{VERSION_LINE}\n"));
    }

    fn words(e: &mut Engine, words: &[&str]) -> Reply {
        let args: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        e.execute("rvsadm", &args, None)
    }

    #[test]
    fn checks_and_sorry_servers_are_set_listed_saved_and_restored() {
        let mut e = engine();
        for l in [
            "-A -t 10.0.0.1:80 -s rr",
            "-a -t 10.0.0.1:80 -r 192.168.0.1:80 -b -w 2",
        ] {
            assert_eq!(run(&mut e, l).code, 0);
        }
        let r = words(
            &mut e,
            &[
                "--check-set",
                "-t",
                "10.0.0.1:80",
                "checktype=negotiate",
                "service=http",
                "request=/health",
                "receive=real server",
                "checkinterval=2",
                "quiescent=no",
            ],
        );
        assert_eq!(r.code, 0, "{r:?}");
        let r = run(&mut e, "--sorry-set -t 10.0.0.1:80 -r 192.168.0.9:8080 -b");
        assert_eq!(r.code, 0, "{r:?}");
        // The service has an up server: the sorry server stands by.
        let listing = run(&mut e, "-Ln").stdout;
        assert!(!listing.contains("192.168.0.9"), "{listing}");
        let checks = run(&mut e, "--check-list").stdout;
        assert!(checks.contains("-t 10.0.0.1:80 checktype=negotiate service=http request=/health 'receive=real server'"), "{checks}");
        assert!(
            checks.contains("sorry 192.168.0.9:8080 standing by"),
            "{checks}"
        );

        let saved = run(&mut e, "-Sn").stdout;
        assert!(
            saved.contains("--check-set -t 10.0.0.1:80 checktype=negotiate"),
            "{saved}"
        );
        assert!(
            saved.ends_with("--sorry-set -t 10.0.0.1:80 -r 192.168.0.9:8080 -b -w 1\n"),
            "{saved}"
        );
        let mut fresh = engine();
        let r = fresh.execute("ipvsadm", &["-R".into()], Some(&saved));
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(run(&mut fresh, "-Sn").stdout, saved);
        assert_eq!(run(&mut fresh, "--check-list").stdout, checks);

        // Deleting the last real server puts the sorry server in the list.
        run(&mut e, "-d -t 10.0.0.1:80 -r 192.168.0.1:80");
        let listing = run(&mut e, "-Ln").stdout;
        assert!(listing.contains("  -> 192.168.0.9:8080"), "{listing}");
        assert!(!run(&mut e, "-Sn")
            .stdout
            .contains("-a -t 10.0.0.1:80 -r 192.168.0.9"));
        assert_eq!(run(&mut e, "--sorry-del -t 10.0.0.1:80").code, 0);
        assert!(!run(&mut e, "-Ln").stdout.contains("192.168.0.9"));
        assert_eq!(run(&mut e, "--check-del -t 10.0.0.1:80").code, 0);
        assert!(!run(&mut e, "-Sn").stdout.contains("--check-set"));
    }

    #[test]
    fn bad_health_commands_get_clear_errors_and_change_nothing() {
        let mut e = engine();
        run(&mut e, "-A -t 10.0.0.1:80 -s rr");
        let before = run(&mut e, "-Sn").stdout;
        for (line, code, text) in [
            (
                "--check-set -t 10.0.0.2:80 checktype=connect",
                255,
                "Service not defined",
            ),
            (
                "--check-set -t 10.0.0.1:80 checktype=smtp",
                2,
                "checktype=smtp",
            ),
            (
                "--check-set -t 10.0.0.1:80 checkinterval=never",
                2,
                "checkinterval=never",
            ),
            ("--check-set checktype=connect", 2, "give the service"),
            ("--check-del -t 10.0.0.1:80", 255, "No check"),
            ("--sorry-del -t 10.0.0.1:80", 255, "No sorry server"),
            // ipvsadm's own grammar error and exit code for -a.
            ("--sorry-set -t 10.0.0.1:80 -r", 255, "-r: missing argument"),
        ] {
            let r = run(&mut e, line);
            assert_eq!(r.code, code, "{line}: {r:?}");
            assert!(r.stderr.contains(text), "{line}: {r:?}");
        }
        assert_eq!(run(&mut e, "-Sn").stdout, before);
        let r = e.execute(
            "ipvsadm",
            &["-R".into()],
            Some("-A -t 10.0.0.3:80\n--check-set -t 10.0.0.3:80 fall=zero\n"),
        );
        assert_ne!(r.code, 0);
        assert!(r.stderr.contains("line 2"), "{r:?}");
        assert_eq!(run(&mut e, "-Sn").stdout, before, "-R applied nothing");
    }
}
