//! Scheduling a new connection: persistence templates (ip_vs_sched_persist,
//! ip_vs_check_template) and the plain path (ip_vs_schedule), ending in a
//! conn bound to its dest and counted in the service's and dest's stats.
//!
//! The caller handles the packet that opened the conn afterwards, with
//! `ConnTable::on_packet`, as ip_vs_in does after ip_vs_schedule, unless
//! it handed that packet over (`SchedCtx::first`): the conn is then made
//! as the packet leaves it (`ConnTable::insert_first`).
use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use thiserror::Error;

use super::conn::{Conn, ConnId, ConnTable, Hashes};
use super::dest::{Dest, FwdMethod};
use super::pe_sip;
use super::proto::{Direction, Timeouts, IPPROTO_IP, IPPROTO_UDP};
use super::sched::Scheduler;
use super::service::{Service, ServiceKey};
use super::tuple::Tuple;
use super::Millis;

pub const FTP_PORT: u16 = 21;
pub const FTP_DATA_PORT: u16 = 20;

/// What a persistence template is found by: <proto, client network, 0,
/// vaddr, vport>.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TemplateKey {
    /// The packet's protocol, or 0 (IPPROTO_IP) for a firewall-mark service.
    pub proto: u8,
    /// The client's address masked by the service's netmask (-M).
    pub client_net: IpAddr,
    /// The VIP, or for a firewall-mark service the mark as an IPv4 address.
    pub vaddr: IpAddr,
    /// The service port; 0 for port-zero, firewall-mark and FTP services.
    pub vport: u16,
}

impl TemplateKey {
    /// The key ip_vs_sched_persist builds for a packet to `svc`. A packet to
    /// the service's own port keys by that port (except FTP's 21, whose data
    /// connections on other ports must follow the control connection);
    /// otherwise the service is a port-zero or firewall-mark one and the
    /// port is 0, with a mark service keyed by its mark instead of the VIP.
    pub fn new(svc: &Service, input: &Tuple) -> TemplateKey {
        let svc_port = svc.key().port();
        let client_net = svc.config.netmask.apply(input.saddr);
        let mut key = TemplateKey {
            proto: input.proto,
            client_net,
            vaddr: input.daddr,
            vport: 0,
        };
        if input.dport == svc_port {
            if svc_port != FTP_PORT {
                key.vport = input.dport;
            }
        } else if let ServiceKey::Fwmark { mark, .. } = svc.key() {
            key.proto = IPPROTO_IP;
            key.vaddr = IpAddr::V4(Ipv4Addr::from(mark));
        }
        key
    }
}

/// ip_vs_check_template: whether template `ct` may still be used. One whose
/// dest has left its service, or (with `expire_quiescent`, the
/// expire_quiescent_template sysctl, default off) has weight 0, is
/// invalidated: no lookup finds it again, and it lives only as long as the
/// conns it controls.
pub fn check_template(table: &mut ConnTable, ct: ConnId, expire_quiescent: bool) -> bool {
    let usable = table
        .get(ct)
        .and_then(|c| c.dest())
        .is_some_and(|d| d.is_available() && !(expire_quiescent && d.weight() == 0));
    if !usable {
        table.invalidate_template(ct);
    }
    usable
}

/// Why no conn was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SchedError {
    /// The packet is not to be scheduled: let it pass (the kernel's
    /// `*ignored = 1`; an FTP data connection from a real server).
    #[error("packet not scheduled")]
    Ignored,
    /// No dest can take it: ICMP port unreachable and drop.
    #[error("no destination available")]
    NoDest,
    /// The conn table is full: drop.
    #[error("connection table full")]
    TableFull,
    /// A FULLNAT dest was picked but no local address/port was free: drop.
    #[error("no local address for FULLNAT")]
    NoLocalAddr,
    /// The service's persistence engine found none of its data in the
    /// packet (SIP: no Call-ID): drop, as the kernel does.
    #[error("no persistence engine data")]
    NoPeData,
}

/// Gives a FULLNAT conn its local address and port once its dest is
/// known (the laddr pool of the worker). It sees the table, so it can reuse
/// a local port toward another real server (the out-tuple differs).
pub type LocalBind<'a> = &'a mut dyn FnMut(&ConnTable, &Arc<Dest>, &Tuple) -> Option<Bound>;

/// A FULLNAT conn's local address and port, with the hash of the reply
/// tuple they make with its real server where the bind worked it out (to
/// find no conn holding that tuple): the conn's reply entry takes it.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub addr: IpAddr,
    pub port: u16,
    pub reply_hash: Option<u64>,
}

/// What scheduling needs besides the service, scheduler, table and packet.
pub struct SchedCtx<'a> {
    /// The worker's slot in the stats.
    pub worker: usize,
    pub now: Millis,
    /// The expire_quiescent_template sysctl (default off).
    pub expire_quiescent_template: bool,
    /// Required for FULLNAT dests.
    pub local: Option<LocalBind<'a>>,
    /// The packet's UDP payload, for a service with a persistence engine
    /// (empty otherwise).
    pub payload: &'a [u8],
    /// The client's packet the conn is made for, where the conn is to be
    /// made as that packet leaves it (`ConnTable::insert_first`); the
    /// caller then moves it no further for that packet. None: made as it
    /// was scheduled, for the caller to move (`ConnTable::on_packet`).
    pub first: Option<FirstPacket<'a>>,
}

/// What a conn's first packet moves it by: the packet's TCP flags (an
/// SCTP packet's `SctpEvent`), and the timeouts of the state it goes to.
#[derive(Clone, Copy)]
pub struct FirstPacket<'a> {
    pub tcp_flags: u8,
    pub timeouts: &'a Timeouts,
    /// The hash of its tuple, where the lookup that found no conn for it
    /// worked it out (`Probe::hash`).
    pub in_hash: Option<u64>,
}

impl<'a> SchedCtx<'a> {
    pub fn new(worker: usize, now: Millis) -> SchedCtx<'a> {
        SchedCtx {
            worker,
            now,
            expire_quiescent_template: false,
            local: None,
            payload: &[],
            first: None,
        }
    }
}

/// The kernel's timer for a template is svc->timeout jiffies; timers here
/// count milliseconds below 2^31.
fn persist_ms(secs: u32) -> u32 {
    secs.saturating_mul(1000).min(super::conn::MAX_TIMEOUT_MS)
}

/// The scheduler's dest, borrowed from the service: only the conn holds a
/// reference of its own (each clone and drop is an atomic write to a line
/// every worker writes).
fn pick<'s>(
    svc: &'s Service,
    sched: &mut dyn Scheduler,
    input: &Tuple,
    now: Millis,
) -> Result<&'s Arc<Dest>, SchedError> {
    sched
        .schedule(svc.dests(), input, now)
        .and_then(|i| svc.dests().get(i))
        .ok_or(SchedError::NoDest)
}

/// Makes the conn for a packet that opened one: through the client's
/// persistence template when the service is persistent (creating the
/// template when there is none or it is no longer usable), else straight
/// from the scheduler. The conn starts in state NONE, counted inactive on
/// its dest, or, given its first packet (`ctx.first`), as that packet
/// leaves it; it counts one connection in the service's and the dest's
/// stats for `ctx.worker`.
pub fn schedule(
    svc: &Service,
    sched: &mut dyn Scheduler,
    table: &mut ConnTable,
    input: &Tuple,
    ctx: &mut SchedCtx<'_>,
) -> Result<ConnId, SchedError> {
    if input.sport == FTP_DATA_PORT {
        return Err(SchedError::Ignored);
    }
    let svc_port = svc.key().port();
    let is_fwmark = matches!(svc.key(), ServiceKey::Fwmark { .. });
    if let Some(secs) = svc.config.persistent {
        return schedule_persist(svc, sched, table, input, ctx, persist_ms(secs));
    }
    if !is_fwmark && input.dport != svc_port {
        // Port-zero services are only valid when persistent.
        return Err(SchedError::NoDest);
    }
    let dest = pick(svc, sched, input, ctx.now)?;
    let dport = if dest.port() != 0 {
        dest.port()
    } else {
        input.dport
    };
    let cp = new_conn(svc, table, input, dest, dport, ctx)?;
    count(svc, dest, ctx.worker);
    Ok(cp)
}

/// The service's own `Arc` of `d`, a usable template's dest (which
/// `check_template` saw in its service's list): borrowed from the service,
/// so that a persistent conn takes no `Arc` clone on the line every worker
/// writes; a clone only where the service no longer lists it.
fn own_dest<'s>(svc: &'s Service, d: &Arc<Dest>) -> Cow<'s, Arc<Dest>> {
    match svc.dests().iter().find(|x| Arc::ptr_eq(x, d)) {
        Some(own) => Cow::Borrowed(own),
        None => Cow::Owned(Arc::clone(d)),
    }
}

fn schedule_persist(
    svc: &Service,
    sched: &mut dyn Scheduler,
    table: &mut ConnTable,
    input: &Tuple,
    ctx: &mut SchedCtx<'_>,
    timeout_ms: u32,
) -> Result<ConnId, SchedError> {
    let svc_port = svc.key().port();
    let key = TemplateKey::new(svc, input);
    let pe = match svc.config.pe.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => Some(pe_data(name, input, ctx.payload).ok_or(SchedError::NoPeData)?),
        None => None,
    };
    let found = match pe {
        Some(data) => table.lookup_template_pe(&key, data),
        None => table.lookup_template(&key),
    };
    let found = found
        .filter(|&ct| check_template(table, ct, ctx.expire_quiescent_template))
        .and_then(|ct| Some((ct, own_dest(svc, table.get(ct)?.dest()?))));
    let (ct, dest) = match found {
        Some(found) => found,
        None => {
            let dest = pick(svc, sched, input, ctx.now)?;
            let tpl_dport = if input.dport == svc_port && svc_port != FTP_PORT {
                dest.port()
            } else {
                0
            };
            let tpl = Conn::template(&key, dest, tpl_dport, timeout_ms);
            let ct = match pe {
                Some(data) => table.insert_template_pe(tpl, dest, data, ctx.now),
                None => table.insert(tpl, Some(dest), ctx.now),
            }
            .map_err(|_| SchedError::TableFull)?;
            (ct, Cow::Borrowed(dest))
        }
    };
    let dport = if input.dport == svc_port && dest.port() != 0 {
        dest.port()
    } else {
        input.dport
    };
    let made = new_conn(svc, table, input, &dest, dport, ctx);
    // Every use restarts the template's timer (ip_vs_conn_put), failed or not.
    if let Ok(cp) = made {
        table.control_add(cp, ct);
    }
    table.touch(ct, ctx.now);
    let cp = made?;
    count(svc, &dest, ctx.worker);
    Ok(cp)
}

/// A NAT real server of a service whose persistence engine lets real
/// servers start conns (sip, UDP only) sends `input`, a packet to a client
/// that matched no conn (the pe's conn_out, ip_vs_new_conn_out). The conn
/// made is the one the client's packets to the service would have made
/// (client → VIP:vport, to `dest`), so the client's answer comes back to
/// this server; for a persistent service it is controlled by a template
/// with the packet's pe data, pointing at `dest` (a template of that data
/// that points elsewhere is invalidated), so the client's later conns of
/// the same call reach this server too. `Ignored`: no conn, and the
/// packet is not the load balancer's.
pub fn conn_out(
    svc: &Service,
    dest: &Arc<Dest>,
    table: &mut ConnTable,
    input: &Tuple,
    ctx: &mut SchedCtx<'_>,
) -> Result<ConnId, SchedError> {
    let ServiceKey::Addr {
        addr: vaddr,
        port: vport,
        ..
    } = svc.key()
    else {
        return Err(SchedError::Ignored);
    };
    if input.proto != IPPROTO_UDP || vport == 0 || input.sport == 0 {
        return Err(SchedError::Ignored);
    }
    let mut ct = None;
    if let Some(secs) = svc.config.persistent {
        let key = TemplateKey {
            proto: input.proto,
            client_net: svc.config.netmask.apply(input.daddr),
            vaddr,
            vport,
        };
        let pe = match svc.config.pe.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => Some(pe_data(name, input, ctx.payload).ok_or(SchedError::Ignored)?),
            None => None,
        };
        let found = match pe {
            Some(data) => table.lookup_template_pe(&key, data),
            None => table.lookup_template(&key),
        };
        let same_dest = |table: &ConnTable, t: ConnId| {
            table
                .get(t)
                .and_then(|c| c.dest())
                .is_some_and(|d| d.addr() == dest.addr() && d.port() == dest.port())
        };
        let found = found.filter(|&t| {
            check_template(table, t, ctx.expire_quiescent_template) && {
                let same = same_dest(table, t);
                if !same {
                    table.invalidate_template(t);
                }
                same
            }
        });
        ct = Some(match found {
            Some(t) => t,
            None => {
                let tpl = Conn::template(&key, dest, input.sport, persist_ms(secs));
                match pe {
                    Some(data) => table.insert_template_pe(tpl, dest, data, ctx.now),
                    None => table.insert(tpl, Some(dest), ctx.now),
                }
                .map_err(|_| SchedError::TableFull)?
            }
        });
    }
    if table.is_full() {
        table.refuse();
        return Err(SchedError::TableFull);
    }
    let mut conn = Conn::new(
        input.proto,
        (input.daddr, input.dport),
        (vaddr, vport),
        input.sport,
        FwdMethod::Masq,
    );
    if svc.config.one_packet {
        conn = conn.with_one_packet();
    }
    let made = table.insert(conn, Some(dest), ctx.now);
    if let Some(t) = ct {
        if let Ok(cp) = made {
            table.control_add(cp, t);
        }
        table.touch(t, ctx.now);
    }
    let cp = made.map_err(|_| SchedError::TableFull)?;
    count(svc, dest, ctx.worker);
    Ok(cp)
}

/// The persistence engine `name`'s data for the packet (its fill_param):
/// None when it finds none, and the packet is dropped. The sip engine
/// looks at UDP only.
fn pe_data<'p>(name: &str, input: &Tuple, payload: &'p [u8]) -> Option<&'p [u8]> {
    match name {
        pe_sip::NAME if input.proto == IPPROTO_UDP => pe_sip::call_id(payload),
        _ => None,
    }
}

/// A conn of `dest` for `input`, bound to a local address under FULLNAT
/// and made as its first packet leaves it where `ctx.first` says so. In
/// line, as `count` is: a new conn's way is one function from the
/// schedule on (fnat-new 2036.5 -> 2004.5 with both).
#[inline(always)]
fn new_conn(
    svc: &Service,
    table: &mut ConnTable,
    input: &Tuple,
    dest: &Arc<Dest>,
    dport: u16,
    ctx: &mut SchedCtx<'_>,
) -> Result<ConnId, SchedError> {
    // Checked before a FULLNAT port is taken, so that none is leaked.
    if table.is_full() {
        table.refuse();
        return Err(SchedError::TableFull);
    }
    let fwd = dest.fwd();
    // The local address before the conn is built: the conn is not kept
    // across the bind (one copy of it fewer).
    let local = if fwd == FwdMethod::FullNat {
        Some(
            ctx.local
                .as_mut()
                .and_then(|bind| bind(table, dest, input))
                .ok_or(SchedError::NoLocalAddr)?,
        )
    } else {
        None
    };
    // Taken before the conn is built, so that the bind's answer is not
    // kept across it.
    let known = Hashes {
        client: ctx.first.and_then(|p| p.in_hash),
        reply: local.and_then(|b| b.reply_hash),
    };
    let mut conn = Conn::new(
        input.proto,
        (input.saddr, input.sport),
        (input.daddr, input.dport),
        dport,
        fwd,
    );
    if let Some(b) = local {
        conn = conn.with_local(b.addr, b.port);
    }
    if svc.config.one_packet && input.proto == IPPROTO_UDP {
        conn = conn.with_one_packet();
    }
    match ctx.first {
        Some(p) => {
            let (flags, now) = (p.tcp_flags, ctx.now);
            table.insert_first(
                conn,
                Some(dest),
                Direction::Input,
                flags,
                now,
                p.timeouts,
                known,
            )
        }
        None => table.insert(conn, Some(dest), ctx.now),
    }
    .map_err(|_| SchedError::TableFull)
}

/// ip_vs_conn_stats: one more connection for the service, the dest and
/// the director's totals.
#[inline(always)]
fn count(svc: &Service, dest: &Dest, worker: usize) {
    svc.stats.worker(worker).conns.inc();
    dest.stats.worker(worker).conns.inc();
    svc.total().worker(worker).conns.inc();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::dest::DestConfig;
    use crate::ipvs::proto::tcp_flags::{ACK, SYN};
    use crate::ipvs::proto::{Direction, Timeouts, IPPROTO_TCP};
    use crate::ipvs::service::{Netmask, Protocol, ServiceConfig, ServiceTable};
    use crate::ipvs::wheel::TICK_MS;
    use crate::ipvs::Tuple;

    /// Round robin over dests with weight > 0, in list order.
    struct Rr(usize);

    impl Scheduler for Rr {
        fn name(&self) -> &'static str {
            "test-rr"
        }
        fn schedule(&mut self, dests: &[Arc<Dest>], _: &Tuple, _: Millis) -> Option<usize> {
            let n = dests.len();
            let i = (0..n)
                .map(|k| (self.0 + k) % n)
                .find(|&i| dests[i].weight() > 0)?;
            self.0 = i + 1;
            Some(i)
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn tcp_key(addr: &str, port: u16) -> ServiceKey {
        ServiceKey::Addr {
            proto: Protocol::Tcp,
            addr: ip(addr),
            port,
        }
    }

    /// A service with two DR dests .1 and .2 (the kernel's list order puts
    /// the newer first), persistent for `persist` seconds with a /24 mask.
    fn table_with(key: ServiceKey, persist: Option<u32>) -> ServiceTable {
        let mut t = ServiceTable::new(1);
        let mut cfg = ServiceConfig::new(key);
        cfg.scheduler = "rr".into();
        cfg.persistent = persist;
        cfg.netmask = Netmask::V4(0xffff_ff00);
        add_service(&mut t, cfg);
        t.add_dest(&key, DestConfig::new(ip("192.168.1.1"), 80))
            .unwrap();
        t.add_dest(&key, DestConfig::new(ip("192.168.1.2"), 80))
            .unwrap();
        t
    }

    fn add_service(t: &mut ServiceTable, cfg: ServiceConfig) {
        t.add_service(cfg).unwrap();
    }

    fn input(client: &str, cport: u16, vip: &str, vport: u16) -> Tuple {
        Tuple {
            proto: IPPROTO_TCP,
            saddr: ip(client),
            sport: cport,
            daddr: ip(vip),
            dport: vport,
        }
    }

    fn sched(
        svc: &Service,
        rr: &mut Rr,
        table: &mut ConnTable,
        inp: &Tuple,
        now: Millis,
    ) -> Result<(ConnId, IpAddr), SchedError> {
        let id = schedule(svc, rr, table, inp, &mut SchedCtx::new(0, now))?;
        Ok((id, table.get(id).unwrap().daddr()))
    }

    #[test]
    fn plain_service_counts_and_maps_the_port() {
        let key = tcp_key("10.0.0.1", 80);
        let mut st = ServiceTable::new(1);
        let mut cfg = ServiceConfig::new(key);
        cfg.scheduler = "rr".into();
        add_service(&mut st, cfg);
        let mut nat = DestConfig::new(ip("192.168.1.1"), 8080);
        nat.fwd = FwdMethod::Masq;
        st.add_dest(&key, nat).unwrap();
        let svc = st.get(&key).unwrap().clone();
        let mut table = ConnTable::with_capacity(8);
        let mut rr = Rr(0);
        let (id, daddr) = sched(
            &svc,
            &mut rr,
            &mut table,
            &input("192.0.2.1", 1000, "10.0.0.1", 80),
            0,
        )
        .unwrap();
        let c = table.get(id).unwrap();
        assert_eq!(
            (daddr, c.dport(), c.state_name(), c.fwd()),
            (ip("192.168.1.1"), 8080, "NONE", FwdMethod::Masq)
        );
        let d = &svc.dests()[0];
        assert_eq!(
            (d.activeconns(), d.inactconns(), d.persistconns()),
            (0, 1, 0)
        );
        assert_eq!(
            (svc.stats.snapshot().conns, d.stats.snapshot().conns),
            (1, 1)
        );
        assert_eq!(table.len(), 1, "no template for a plain service");
        let ftp_data = input("192.0.2.1", 20, "10.0.0.1", 80);
        assert_eq!(
            sched(&svc, &mut rr, &mut table, &ftp_data, 0),
            Err(SchedError::Ignored)
        );
        assert_eq!(
            sched(
                &svc,
                &mut rr,
                &mut table,
                &input("192.0.2.1", 1001, "10.0.0.1", 81),
                0
            ),
            Err(SchedError::NoDest)
        );
        // The opening SYN is then handled as any packet of the conn.
        assert!(table.on_packet(id, Direction::Input, SYN, 0, &Timeouts::new()));
        assert_eq!((d.activeconns(), d.inactconns()), (1, 0));
        let mut full = ConnTable::with_capacity(1);
        full.insert(table.get(id).unwrap().conn().clone(), Some(d), 0)
            .unwrap();
        let before = svc.stats.snapshot().conns;
        assert_eq!(
            sched(
                &svc,
                &mut rr,
                &mut full,
                &input("192.0.2.9", 1, "10.0.0.1", 80),
                0
            ),
            Err(SchedError::TableFull)
        );
        assert_eq!((svc.stats.snapshot().conns, full.full_drops()), (before, 1));
    }

    #[test]
    fn ppc_port_specific_with_a_slash_24() {
        let key = tcp_key("10.0.0.1", 80);
        let st = table_with(key, Some(300));
        let svc = st.get(&key).unwrap().clone();
        let mut table = ConnTable::with_capacity(16);
        let mut rr = Rr(0);
        let (a, da) = sched(
            &svc,
            &mut rr,
            &mut table,
            &input("192.0.2.10", 1000, "10.0.0.1", 80),
            0,
        )
        .unwrap();
        let (_, db) = sched(
            &svc,
            &mut rr,
            &mut table,
            &input("192.0.2.20", 2000, "10.0.0.1", 80),
            10,
        )
        .unwrap();
        assert_eq!(da, db, "same /24, same dest");
        let (_, dc) = sched(
            &svc,
            &mut rr,
            &mut table,
            &input("198.51.100.1", 3000, "10.0.0.1", 80),
            20,
        )
        .unwrap();
        assert_ne!(dc, da, "another /24 is scheduled anew");
        let tkey = TemplateKey {
            proto: IPPROTO_TCP,
            client_net: ip("192.0.2.0"),
            vaddr: ip("10.0.0.1"),
            vport: 80,
        };
        let ct = table.lookup_template(&tkey).unwrap();
        let t = table.get(ct).unwrap();
        assert_eq!(
            (t.n_control(), t.dport(), t.daddr(), t.cport()),
            (2, 80, da, 0)
        );
        assert_eq!(t.expires_in(10), 300_000, "restarted by the second conn");
        assert_eq!(table.get(a).unwrap().control(), Some(ct));
        let d = svc.dests().iter().find(|d| d.addr() == da).unwrap();
        assert_eq!(
            (d.persistconns(), d.inactconns(), d.activeconns()),
            (1, 2, 0)
        );
        assert_eq!(table.len(), 5, "three conns, two templates");
    }

    /// A usable template's dest is the service's own `Arc`, borrowed (no
    /// clone per conn); one the service no longer lists is cloned.
    #[test]
    fn a_templates_dest_is_borrowed_from_its_service() {
        let key = tcp_key("10.0.0.1", 80);
        let st = table_with(key, Some(300));
        let svc = st.get(&key).unwrap().clone();
        let mut table = ConnTable::with_capacity(16);
        let mut rr = Rr(0);
        for port in [1000, 1001, 1002] {
            let inp = input("192.0.2.10", port, "10.0.0.1", 80);
            sched(&svc, &mut rr, &mut table, &inp, 0).unwrap();
        }
        let listed = &svc.dests()[0];
        let counts = Arc::strong_count(listed);
        match own_dest(&svc, &Arc::clone(listed)) {
            Cow::Borrowed(d) => assert!(std::ptr::eq(d, listed), "the service's own"),
            Cow::Owned(_) => panic!("a listed dest cloned"),
        }
        assert_eq!(Arc::strong_count(listed), counts);
        let gone = Arc::new(Dest::new(&DestConfig::new(ip("192.168.9.9"), 80), 1));
        assert!(matches!(own_dest(&svc, &gone), Cow::Owned(d) if Arc::ptr_eq(&d, &gone)));
    }

    #[test]
    fn pcc_port_zero_service_pins_every_port() {
        let key = tcp_key("10.0.0.1", 0);
        let st = table_with(key, Some(300));
        let svc = st.get(&key).unwrap().clone();
        let mut table = ConnTable::with_capacity(16);
        let mut rr = Rr(0);
        let (a, da) = sched(
            &svc,
            &mut rr,
            &mut table,
            &input("192.0.2.10", 1000, "10.0.0.1", 80),
            0,
        )
        .unwrap();
        let (b, db) = sched(
            &svc,
            &mut rr,
            &mut table,
            &input("192.0.2.11", 1001, "10.0.0.1", 443),
            0,
        )
        .unwrap();
        assert_eq!(da, db);
        assert_eq!(
            (table.get(a).unwrap().dport(), table.get(b).unwrap().dport()),
            (80, 443)
        );
        let (_, dc) = sched(
            &svc,
            &mut rr,
            &mut table,
            &input("192.0.3.1", 1, "10.0.0.1", 22),
            0,
        )
        .unwrap();
        assert_ne!(dc, da);
        let tkey = TemplateKey {
            proto: IPPROTO_TCP,
            client_net: ip("192.0.2.0"),
            vaddr: ip("10.0.0.1"),
            vport: 0,
        };
        let t = table.get(table.lookup_template(&tkey).unwrap()).unwrap();
        assert_eq!((t.vport(), t.dport(), t.n_control()), (0, 0, 2));
    }

    #[test]
    fn pfwm_keys_by_the_mark() {
        let key = ServiceKey::Fwmark {
            mark: 7,
            ipv6: false,
        };
        let st = table_with(key, Some(300));
        let svc = st.get(&key).unwrap().clone();
        let mut table = ConnTable::with_capacity(16);
        let mut rr = Rr(0);
        let (_, da) = sched(
            &svc,
            &mut rr,
            &mut table,
            &input("192.0.2.10", 1000, "10.0.0.1", 80),
            0,
        )
        .unwrap();
        let (b, db) = sched(
            &svc,
            &mut rr,
            &mut table,
            &input("192.0.2.99", 1000, "10.0.0.2", 443),
            0,
        )
        .unwrap();
        assert_eq!(da, db, "another VIP and port of the same mark");
        assert_eq!(
            table.get(b).unwrap().dport(),
            443,
            "fwmark conns keep the packet's port"
        );
        let (_, dc) = sched(
            &svc,
            &mut rr,
            &mut table,
            &input("203.0.113.5", 1, "10.0.0.1", 80),
            0,
        )
        .unwrap();
        assert_ne!(dc, da);
        let tkey = TemplateKey {
            proto: 0,
            client_net: ip("192.0.2.0"),
            vaddr: ip("0.0.0.7"),
            vport: 0,
        };
        let t = table.get(table.lookup_template(&tkey).unwrap()).unwrap();
        assert_eq!((t.proto(), t.vaddr(), t.n_control()), (0, ip("0.0.0.7"), 2));
    }

    #[test]
    fn ftp_templates_have_port_zero() {
        let key = tcp_key("10.0.0.1", 21);
        let st = table_with(key, Some(300));
        let svc = st.get(&key).unwrap();
        let k = TemplateKey::new(svc, &input("192.0.2.10", 1000, "10.0.0.1", 21));
        assert_eq!((k.vport, k.client_net), (0, ip("192.0.2.0")));
        let mut table = ConnTable::with_capacity(4);
        let (id, _) = sched(
            svc,
            &mut Rr(0),
            &mut table,
            &input("192.0.2.10", 1000, "10.0.0.1", 21),
            0,
        )
        .unwrap();
        let t = table
            .get(table.get(id).unwrap().control().unwrap())
            .unwrap();
        assert_eq!((t.vport(), t.dport()), (0, 0));
    }

    #[test]
    fn a_controlling_template_is_rearmed_for_60_seconds() {
        let key = tcp_key("10.0.0.1", 80);
        let st = table_with(key, Some(300));
        let svc = st.get(&key).unwrap().clone();
        let mut table = ConnTable::with_capacity(16);
        let to = Timeouts::new();
        let mut rr = Rr(0);
        let (a, da) = sched(
            &svc,
            &mut rr,
            &mut table,
            &input("192.0.2.10", 1000, "10.0.0.1", 80),
            0,
        )
        .unwrap();
        table.on_packet(a, Direction::Input, SYN, 0, &to);
        table.on_packet(a, Direction::Input, ACK, 0, &to);
        let ct = table.get(a).unwrap().control().unwrap();
        assert_eq!(table.get(ct).unwrap().state_name(), "ASSURED");
        // The template's 300 s pass while the conn (900 s) lives.
        assert_eq!(table.expire(300_000 + TICK_MS, usize::MAX), 0);
        let t = table.get(ct).unwrap();
        assert_eq!(
            (t.timeout_ms(), t.expires_in(300_000)),
            (60_000, 60_000),
            "60 s from when it fired"
        );
        // A new conn through it restarts its timer with the timeout it now
        // has: the kernel keeps the 60 s once the template was re-armed.
        let (_, db) = sched(
            &svc,
            &mut rr,
            &mut table,
            &input("192.0.2.11", 1, "10.0.0.1", 80),
            310_000,
        )
        .unwrap();
        assert_eq!(db, da);
        assert_eq!(table.get(ct).unwrap().expires_in(310_000), 60_000);
        // Both conns end; the template goes at its next firing.
        let end = 900_000 + 310_000;
        let removed = table.expire(end + TICK_MS, usize::MAX);
        assert!(removed >= 2);
        assert!(
            table.is_empty(),
            "the template went once nothing was controlled"
        );
        let d = svc.dests().iter().find(|d| d.addr() == da).unwrap();
        assert_eq!(
            (d.persistconns(), d.activeconns(), d.inactconns()),
            (0, 0, 0)
        );
    }

    #[test]
    fn a_removed_dest_invalidates_the_template() {
        let key = tcp_key("10.0.0.1", 80);
        let mut st = table_with(key, Some(300));
        let svc = st.get(&key).unwrap().clone();
        let mut table = ConnTable::with_capacity(16);
        let mut rr = Rr(0);
        let (a, da) = sched(
            &svc,
            &mut rr,
            &mut table,
            &input("192.0.2.10", 1000, "10.0.0.1", 80),
            0,
        )
        .unwrap();
        let old = table.get(a).unwrap().control().unwrap();
        st.delete_dest(&key, da, 80).unwrap();
        let svc = st.get(&key).unwrap().clone();
        let (b, db) = sched(
            &svc,
            &mut rr,
            &mut table,
            &input("192.0.2.10", 1001, "10.0.0.1", 80),
            1000,
        )
        .unwrap();
        assert_ne!(db, da);
        let new = table.get(b).unwrap().control().unwrap();
        assert_ne!(new, old);
        let o = table.get(old).unwrap();
        assert_eq!(
            (o.vport(), o.dport(), o.n_control()),
            (0xffff, 0xffff, 1),
            "kept for the conn it controls"
        );
        let tkey = TemplateKey {
            proto: IPPROTO_TCP,
            client_net: ip("192.0.2.0"),
            vaddr: ip("10.0.0.1"),
            vport: 80,
        };
        assert_eq!(table.lookup_template(&tkey), Some(new));
    }

    #[test]
    fn a_quiesced_dest_keeps_its_template_unless_told() {
        let key = tcp_key("10.0.0.1", 80);
        let mut st = table_with(key, Some(300));
        let svc = st.get(&key).unwrap().clone();
        let mut table = ConnTable::with_capacity(16);
        let mut rr = Rr(0);
        let (_, da) = sched(
            &svc,
            &mut rr,
            &mut table,
            &input("192.0.2.10", 1000, "10.0.0.1", 80),
            0,
        )
        .unwrap();
        let mut q = DestConfig::new(da, 80);
        q.weight = 0;
        st.edit_dest(&key, q).unwrap();
        let svc = st.get(&key).unwrap().clone();
        let (_, db) = sched(
            &svc,
            &mut rr,
            &mut table,
            &input("192.0.2.10", 1001, "10.0.0.1", 80),
            0,
        )
        .unwrap();
        assert_eq!(db, da, "weight 0 does not break persistence by default");
        let mut ctx = SchedCtx::new(0, 0);
        ctx.expire_quiescent_template = true;
        let id = schedule(
            &svc,
            &mut rr,
            &mut table,
            &input("192.0.2.10", 1002, "10.0.0.1", 80),
            &mut ctx,
        )
        .unwrap();
        assert_ne!(
            table.get(id).unwrap().daddr(),
            da,
            "expire_quiescent_template"
        );
    }

    fn sip(call_id: &str) -> Vec<u8> {
        format!(
            "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
             Call-ID: {call_id}\r\nCSeq: 314159 INVITE\r\n\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn pe_sip_keys_templates_by_call_id() {
        let key = ServiceKey::Addr {
            proto: Protocol::Udp,
            addr: ip("10.0.0.1"),
            port: 5060,
        };
        let mut st = table_with(key, Some(300));
        let mut cfg = st.get(&key).unwrap().config.clone();
        cfg.pe = Some("sip".into());
        cfg.netmask = Netmask::V4(0);
        st.edit_service(cfg).unwrap();
        let svc = st.get(&key).unwrap().clone();
        let mut table = ConnTable::with_capacity(16);
        let mut rr = Rr(0);
        let udp = |client: &str, port: u16| Tuple {
            proto: IPPROTO_UDP,
            ..input(client, port, "10.0.0.1", 5060)
        };
        let mut go = |table: &mut ConnTable, inp: &Tuple, msg: &[u8]| {
            let mut ctx = SchedCtx {
                payload: msg,
                ..SchedCtx::new(0, 0)
            };
            schedule(&svc, &mut rr, table, inp, &mut ctx)
                .map(|id| (id, table.get(id).unwrap().daddr()))
        };
        let a = sip("a84b4c76e66710@pc33.atlanta.example.com");
        let (c1, d1) = go(&mut table, &udp("192.0.2.1", 5060), &a).unwrap();
        let (_, d2) = go(&mut table, &udp("198.51.100.7", 5070), &a).unwrap();
        assert_eq!(d1, d2, "one call, two sources, one server");
        let (_, d3) = go(&mut table, &udp("192.0.2.1", 5062), &sip("other@x")).unwrap();
        assert_ne!(d3, d1, "another call is scheduled anew");
        let (_, d4) = go(&mut table, &udp("203.0.113.9", 1024), &sip("other@x")).unwrap();
        assert_eq!(d4, d3);
        let ct = table.get(c1).unwrap().control().unwrap();
        let t = table.get(ct).unwrap();
        assert_eq!(
            (t.cport(), t.caddr(), t.vport(), t.n_control()),
            (0, ip("0.0.0.0"), 5060, 2)
        );
        assert_eq!(
            table.pe_data(ct),
            Some(&b"a84b4c76e66710@pc33.atlanta.example.com"[..])
        );
        assert_eq!(table.pe_data(c1), None, "the conn itself has none");
        assert_eq!(table.len(), 6, "four conns, two templates");
        // No Call-ID, or not UDP: dropped, as the kernel does.
        let none = b"INVITE sip:x SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n";
        assert_eq!(
            go(&mut table, &udp("192.0.2.50", 1), none),
            Err(SchedError::NoPeData)
        );
        let tcp = input("192.0.2.50", 2, "10.0.0.1", 5060);
        assert_eq!(go(&mut table, &tcp, &a), Err(SchedError::NoPeData));
        assert_eq!(table.len(), 6);
        // A plain template of the same client net is another template.
        assert_eq!(
            table.lookup_template(&TemplateKey::new(&svc, &udp("192.0.2.1", 1))),
            None
        );
        // Both conns of the call end: its template goes when it expires.
        let ids: Vec<ConnId> = table.iter().map(|(i, _)| i).collect();
        for i in ids {
            table.remove(i);
        }
        assert!(table.expire(u64::from(u32::MAX / 4), usize::MAX) > 0);
        assert!(table.is_empty());
        assert_eq!(table.pe_data(ct), None);
    }

    #[test]
    fn pe_sip_real_servers_start_calls_that_clients_follow() {
        let key = ServiceKey::Addr {
            proto: Protocol::Udp,
            addr: ip("10.0.0.1"),
            port: 5060,
        };
        let mut st = ServiceTable::new(1);
        let mut cfg = ServiceConfig::new(key);
        cfg.scheduler = "rr".into();
        cfg.persistent = Some(60);
        cfg.pe = Some("sip".into());
        add_service(&mut st, cfg);
        for rs in ["192.168.1.2", "192.168.1.1"] {
            let mut d = DestConfig::new(ip(rs), 5060);
            d.fwd = FwdMethod::Masq;
            st.add_dest(&key, d).unwrap();
        }
        let set = st.snapshot();
        let rr_first = set.services()[0].dests()[0].addr();
        assert_eq!(rr_first, ip("192.168.1.1"), "the newest first");
        let (svc, second) = set
            .find_real_service(Protocol::Udp, ip("192.168.1.2"), 5060)
            .unwrap();
        assert!(set
            .find_real_service(Protocol::Udp, ip("192.168.1.2"), 5061)
            .is_none());
        assert!(set
            .find_real_service(Protocol::Tcp, ip("192.168.1.2"), 5060)
            .is_none());
        let mut table = ConnTable::with_capacity(16);
        let from_rs = |rs: &str, client_port: u16| Tuple {
            proto: IPPROTO_UDP,
            saddr: ip(rs),
            sport: 5060,
            daddr: ip("192.0.2.1"),
            dport: client_port,
        };
        let msg = sip("call-x@192.168.1.2");
        let out = |table: &mut ConnTable, dest: &Arc<Dest>, inp: &Tuple, m: &[u8]| {
            let mut ctx = SchedCtx {
                payload: m,
                ..SchedCtx::new(0, 0)
            };
            conn_out(svc, dest, table, inp, &mut ctx)
        };
        let cp = out(&mut table, second, &from_rs("192.168.1.2", 5080), &msg).unwrap();
        let c = table.get(cp).unwrap();
        assert_eq!(
            (
                c.caddr(),
                c.cport(),
                c.vaddr(),
                c.vport(),
                c.daddr(),
                c.dport()
            ),
            (
                ip("192.0.2.1"),
                5080,
                ip("10.0.0.1"),
                5060,
                ip("192.168.1.2"),
                5060
            )
        );
        // The server's packet is a reply of that conn, and so is the
        // client's answer to the VIP an input of it.
        let reply = Tuple {
            proto: IPPROTO_UDP,
            saddr: ip("192.168.1.2"),
            sport: 5060,
            daddr: ip("192.0.2.1"),
            dport: 5080,
        };
        assert_eq!(table.lookup_out(&reply), Some(cp));
        let ct = c.control().unwrap();
        assert_eq!(table.pe_data(ct), Some(&b"call-x@192.168.1.2"[..]));
        // The client's next conn of that call follows the template, where
        // rr would have started with the other server.
        let mut ctx = SchedCtx {
            payload: &msg,
            ..SchedCtx::new(0, 0)
        };
        let inp = Tuple {
            proto: IPPROTO_UDP,
            ..input("192.0.2.1", 5081, "10.0.0.1", 5060)
        };
        let id = schedule(svc, &mut Rr(0), &mut table, &inp, &mut ctx).unwrap();
        assert_eq!(table.get(id).unwrap().daddr(), ip("192.168.1.2"));
        assert_eq!(table.get(id).unwrap().control(), Some(ct));
        // The other server starting the same call takes it over.
        let first = svc
            .dests()
            .iter()
            .find(|d| d.addr() == ip("192.168.1.1"))
            .unwrap();
        let cp2 = out(&mut table, first, &from_rs("192.168.1.1", 5090), &msg).unwrap();
        let ct2 = table.get(cp2).unwrap().control().unwrap();
        assert_ne!(ct2, ct);
        assert_eq!(table.get(ct).unwrap().vport(), 0xffff, "invalidated");
        // No Call-ID: no conn, the packet is not the load balancer's.
        let none = b"NOTIFY sip:x SIP/2.0\r\nCSeq: 1 NOTIFY\r\n\r\n";
        let before = table.len();
        assert_eq!(
            out(&mut table, first, &from_rs("192.168.1.1", 5091), none),
            Err(SchedError::Ignored)
        );
        assert_eq!(table.len(), before);
        assert_eq!(svc.stats.snapshot().conns, 3);
    }

    #[test]
    fn fullnat_needs_a_local_address() {
        let key = tcp_key("10.0.0.1", 80);
        let mut st = ServiceTable::new(1);
        let mut cfg = ServiceConfig::new(key);
        cfg.scheduler = "rr".into();
        add_service(&mut st, cfg);
        let mut f = DestConfig::new(ip("192.168.1.1"), 8080);
        f.fwd = FwdMethod::FullNat;
        st.add_dest(&key, f).unwrap();
        let svc = st.get(&key).unwrap().clone();
        let mut table = ConnTable::with_capacity(4);
        let inp = input("192.0.2.1", 1000, "10.0.0.1", 80);
        let mut ctx = SchedCtx::new(0, 0);
        assert_eq!(
            schedule(&svc, &mut Rr(0), &mut table, &inp, &mut ctx),
            Err(SchedError::NoLocalAddr)
        );
        let mut bind = |_: &ConnTable, _: &Arc<Dest>, _: &Tuple| {
            Some(Bound {
                addr: ip("10.1.0.1"),
                port: 40000,
                reply_hash: None,
            })
        };
        let mut ctx = SchedCtx {
            local: Some(&mut bind),
            ..SchedCtx::new(0, 0)
        };
        let id = schedule(&svc, &mut Rr(0), &mut table, &inp, &mut ctx).unwrap();
        let reply = Tuple {
            proto: IPPROTO_TCP,
            saddr: ip("192.168.1.1"),
            sport: 8080,
            daddr: ip("10.1.0.1"),
            dport: 40000,
        };
        assert_eq!(table.lookup_out(&reply), Some(id));
        assert_eq!(
            svc.dests()[0].inactconns(),
            1,
            "the failed attempt left nothing bound"
        );
    }
}
