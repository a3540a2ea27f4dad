//! `--start-daemon`, `--stop-daemon` and `-L --daemon`: the sync daemons'
//! settings, published to the workers, which run them
//! (src/dataplane/sync.rs).
use super::*;
use crate::ipvs::sync::{Role, SyncConfig, SyncDaemons};

use super::super::grammar::{DaemonConfig, SyncState};

/// The daemons as the workers read them, and rvsd's ports they may use.
pub struct SyncView {
    daemons: Arc<ArcSwap<SyncDaemons>>,
    /// rvsd's port names with their MTUs; None where the engine runs
    /// without a dataplane (a configuration check), which takes any name.
    ports: Option<Vec<(String, u16)>>,
}

impl Default for SyncView {
    fn default() -> SyncView {
        SyncView {
            daemons: Arc::new(ArcSwap::from_pointee(SyncDaemons::default())),
            ports: None,
        }
    }
}

impl SyncView {
    pub fn set_ports(&mut self, ports: Vec<(String, u16)>) {
        self.ports = Some(ports);
    }

    /// What the workers load.
    pub fn daemons(&self) -> Arc<ArcSwap<SyncDaemons>> {
        self.daemons.clone()
    }

    fn port_mtu(&self, name: &str) -> Option<u16> {
        match &self.ports {
            Some(ports) => ports.iter().find(|(n, _)| n == name).map(|(_, m)| *m),
            None => Some(1500),
        }
    }
}

fn kernel(msg: &str) -> Reply {
    Reply::fail(KERNEL_ERROR, format!("{msg}\n"))
}

/// What the kernel reports back for `-L --daemon` (every field set).
fn as_listed(c: &SyncConfig) -> DaemonConfig {
    DaemonConfig {
        state: match c.role {
            Role::Master => SyncState::Master,
            Role::Backup => SyncState::Backup,
        },
        mcast_interface: c.ifname.clone(),
        syncid: c.syncid,
        sync_maxlen: Some(c.maxlen),
        mcast_group: Some(c.group),
        mcast_port: Some(c.port),
        mcast_ttl: Some(c.ttl),
    }
}

impl Engine {
    pub fn sync_view(&mut self) -> &mut SyncView {
        &mut self.sync
    }

    /// The daemon commands; None for any other.
    pub(super) fn sync_command(&mut self, cmd: &Command) -> Option<Reply> {
        match cmd {
            Command::StartDaemon(d) => Some(self.start_daemon(d)),
            Command::StopDaemon(d) => Some(self.stop_daemon(d)),
            Command::List(o) if o.daemon && !o.connections && !o.timeout => {
                let now = self.sync.daemons.load();
                let listed: Vec<DaemonConfig> = [&now.master, &now.backup]
                    .into_iter()
                    .flatten()
                    .map(as_listed)
                    .collect();
                Some(Reply::ok(format::daemons(&listed)))
            }
            _ => None,
        }
    }

    /// start_sync_thread: the defaults, then the interface (ENODEV), then
    /// a daemon of that role already running (EEXIST).
    fn start_daemon(&mut self, d: &DaemonConfig) -> Reply {
        let role = match d.state {
            SyncState::Master => Role::Master,
            SyncState::Backup => Role::Backup,
        };
        if d.mcast_group.is_some_and(|g| g.is_ipv6()) {
            return Reply::fail(
                KERNEL_ERROR,
                "rvs: --mcast-group: rvs's sync daemons use IPv4 groups only (the kernel's default 224.0.0.81 or another); an IPv6 group is not supported\n"
                    .into(),
            );
        }
        let Some(mtu) = self.sync.port_mtu(&d.mcast_interface) else {
            // strerror(ENODEV), as ipvs_strerror has no text of its own.
            return kernel("No such device");
        };
        let cfg = SyncConfig::with_defaults(
            role,
            &d.mcast_interface,
            d.syncid,
            d.sync_maxlen,
            d.mcast_group,
            d.mcast_port,
            d.mcast_ttl,
            mtu,
        );
        let mut now = (**self.sync.daemons.load()).clone();
        let slot = match role {
            Role::Master => &mut now.master,
            Role::Backup => &mut now.backup,
        };
        if slot.is_some() {
            return kernel("Daemon has already run");
        }
        log::info!(
            "sync: {} daemon started on port {:?}, syncid {}, group {}:{}, ttl {}, maxlen {}",
            role.name(),
            cfg.ifname,
            cfg.syncid,
            cfg.group,
            cfg.port,
            cfg.ttl,
            cfg.maxlen
        );
        *slot = Some(cfg);
        self.sync.daemons.store(Arc::new(now));
        Reply::ok(String::new())
    }

    /// stop_sync_thread: ESRCH when that role runs no daemon.
    fn stop_daemon(&mut self, d: &DaemonConfig) -> Reply {
        let mut now = (**self.sync.daemons.load()).clone();
        let slot = match d.state {
            SyncState::Master => &mut now.master,
            SyncState::Backup => &mut now.backup,
        };
        if slot.take().is_none() {
            return kernel("No daemon is running");
        }
        log::info!("sync: {} daemon stopped", d.state_name());
        self.sync.daemons.store(Arc::new(now));
        Reply::ok(String::new())
    }
}

impl DaemonConfig {
    fn state_name(&self) -> &'static str {
        match self.state {
            SyncState::Master => "master",
            SyncState::Backup => "backup",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let mut e = Engine::new(
            1,
            Arc::new(ArcSwap::from_pointee(ServiceSet::default())),
            Arc::new(ArcSwap::from_pointee(Timeouts::default())),
        );
        e.sync_view()
            .set_ports(vec![("client".into(), 1500), ("servers".into(), 9000)]);
        e
    }

    fn run(e: &mut Engine, line: &str) -> Reply {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        e.execute("ipvsadm", &args, None)
    }

    #[test]
    fn start_list_stop_as_ipvsadm_and_the_kernel_answer() {
        let mut e = engine();
        assert_eq!(run(&mut e, "-L --daemon").stdout, "");
        let r = run(
            &mut e,
            "--start-daemon master --mcast-interface client --syncid 5",
        );
        assert_eq!((r.code, r.stderr.as_str()), (0, ""));
        let r = run(
            &mut e,
            "--start-daemon backup --mcast-interface servers --mcast-group 224.0.0.82 --mcast-port 9000 --mcast-ttl 3",
        );
        assert_eq!(r.code, 0, "master and backup run at once: {}", r.stderr);
        // Worked out by hand from list_daemon's printf formats; the backup's
        // maxlen is its port's MTU (9000) less 28.
        assert_eq!(
            run(&mut e, "-L --daemon").stdout,
            "master sync daemon (mcast=client, syncid=5, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n\
             backup sync daemon (mcast=servers, syncid=0, maxlen=8972, group=224.0.0.82, port=9000, ttl=3)\n"
        );
        let workers = e.sync_view().daemons();
        assert_eq!(workers.load().master.as_ref().unwrap().syncid, 5);
        let r = run(&mut e, "--start-daemon master --mcast-interface servers");
        assert_eq!(
            (r.code, r.stderr.as_str()),
            (255, "Daemon has already run\n")
        );
        let r = run(&mut e, "--stop-daemon master");
        assert_eq!((r.code, r.stderr.as_str()), (0, ""));
        assert!(workers.load().master.is_none());
        let r = run(&mut e, "--stop-daemon master");
        assert_eq!((r.code, r.stderr.as_str()), (255, "No daemon is running\n"));
        assert_eq!(
            run(&mut e, "-L --daemon").stdout,
            "backup sync daemon (mcast=servers, syncid=0, maxlen=8972, group=224.0.0.82, port=9000, ttl=3)\n"
        );
    }

    #[test]
    fn an_unknown_port_is_the_kernels_enodev_and_comes_before_eexist() {
        let mut e = engine();
        // ipvsadm's default interface, eth0, is no rvs port.
        let r = run(&mut e, "--start-daemon master");
        assert_eq!((r.code, r.stderr.as_str()), (255, "No such device\n"));
        assert_eq!(
            run(&mut e, "--start-daemon master --mcast-interface client").code,
            0
        );
        let r = run(&mut e, "--start-daemon master --mcast-interface nope");
        assert_eq!((r.code, r.stderr.as_str()), (255, "No such device\n"));
    }

    #[test]
    fn an_ipv6_group_is_refused_with_a_reason() {
        let mut e = engine();
        let r = run(
            &mut e,
            "--start-daemon master --mcast-interface client --mcast-group ff02::81",
        );
        assert_eq!(r.code, 255);
        assert!(r.stderr.contains("IPv4 groups only"), "{}", r.stderr);
        assert_eq!(run(&mut e, "-L --daemon").stdout, "");
    }
}
