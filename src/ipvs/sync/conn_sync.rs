//! The conn table's side of the sync daemon: the master's per-packet
//! decision (with the template synced along) and a backup's install or
//! update of a synced conn (ip_vs_proc_conn).
use super::*;

impl Conn {
    /// A conn as a backup installs it: the synced state, counted active or
    /// not, living `timeout_ms` from its insert.
    pub fn synced(mut self, state: u8, active: bool, timeout_ms: u32) -> Conn {
        self.set_state(state);
        if active && !self.is_template() {
            self.flag_off(flags::INACTIVE);
        } else if !self.is_template() {
            self.flag_on(flags::INACTIVE);
        }
        self.timeout = timeout_ms.min(MAX_TIMEOUT_MS);
        self.sync = SyncMarks::synced(state);
        self
    }
}

impl ConnTable {
    /// One packet from the client for conn `id` on a master: whether it
    /// goes into the sync message now, and the template that goes too
    /// (ip_vs_sync_conn's `control` loop; one level, as rvs's templates
    /// have no template of their own). A one-packet conn is never sent,
    /// but its template is, at each of its packets, as the kernel does.
    #[inline]
    pub fn sync_input(&mut self, id: ConnId) -> (bool, Option<ConnId>) {
        let Some(c) = self
            .slab
            .get_mut(id.index())
            .filter(|c| c.has(flags::LIVE) && !c.has(flags::TEMPLATE))
        else {
            return (false, None);
        };
        let one = c.has(flags::ONE_PACKET);
        let send = if one {
            false
        } else if c.sync.conn_packet(c.proto(), c.state()) {
            true
        } else {
            return (false, None);
        };
        let ctl = c.control;
        let tpl = (ctl != NIL)
            .then(|| self.slab.get_mut(ctl as usize))
            .flatten()
            .filter(|t| t.has(flags::LIVE) && t.is_template())
            .map(|t| {
                let s = t.state();
                t.sync.template(s);
                ConnId(ctl)
            });
        (send, tpl)
    }

    /// Inserts a conn made by `Conn::synced`, its sync marks kept.
    pub fn insert_synced(
        &mut self,
        conn: Conn,
        dest: &Arc<Dest>,
        now: Millis,
    ) -> Result<ConnId, TableFull> {
        let marks = conn.sync;
        let id = self.insert(conn, Some(dest), now)?;
        if let Some(c) = self.slab.get_mut(id.index()) {
            c.sync = marks;
        }
        Ok(id)
    }

    /// A synced update of conn `id`: its state, active or not (the dest's
    /// counts follow), and its timer restarted at `timeout_ms`.
    pub fn update_synced(
        &mut self,
        id: ConnId,
        state: u8,
        active: bool,
        timeout_ms: u32,
        now: Millis,
    ) -> bool {
        let Some(c) = self.slab.get_mut(id.index()).filter(|c| c.has(flags::LIVE)) else {
            return false;
        };
        let mut embryonic_changed = false;
        if !c.is_template() {
            let inactive = c.has(flags::INACTIVE);
            if inactive != active {
                self.dests.change(c.dest, |d, w| d.conn_became(w, active));
            }
            if active {
                c.flag_off(flags::INACTIVE);
            } else {
                c.flag_on(flags::INACTIVE);
            }
            embryonic_changed = pressure::embryonic_state(c.proto(), c.state())
                != pressure::embryonic_state(c.proto(), state);
        }
        c.set_state(state);
        c.timeout = timeout_ms.min(MAX_TIMEOUT_MS);
        c.sync = SyncMarks::synced(state);
        let t = c.timeout;
        self.set_expiry(id.0, now.saturating_add(u64::from(t)), now);
        if embryonic_changed {
            self.embryonic_update(id.0);
        }
        true
    }
}
