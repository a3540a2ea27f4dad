//! The dests a worker's conns hold: each by an index into the worker's own
//! table (`DestIx`), not by an `Arc` clone per conn.
//!
//! Every worker's conns point at the same few dests. An `Arc<Dest>` per
//! conn took a locked add as the conn was made and a locked sub as it
//! ended, both on the one line of the dest's reference count, which every
//! worker writes. Here a worker holds each dest its conns use once (one
//! `Arc` clone), counts the conns on it in a plain integer of its own, and
//! lets the dest go when none is left; a conn keeps the index. The dest's
//! slot for the worker (`Dest::handle`) says where the worker holds it, so
//! that a new conn finds its index without a search.
//!
//! The same table lists the dests whose counts the worker changed since
//! its last fold (`change`) and folds them (`fold`, every millisecond from
//! `Lb::poll`, and as the table goes); a dest is let go only at a fold, so
//! nothing it has pending is lost.
use std::sync::Arc;

use super::dest::Dest;

/// Where a worker's `DestRefs` holds a conn's dest; `NONE` for a conn
/// without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestIx(u32);

impl DestIx {
    pub const NONE: DestIx = DestIx(u32::MAX);
}

#[derive(Debug)]
struct Held {
    dest: Option<Arc<Dest>>,
    /// The worker's conns and templates on it.
    conns: u32,
}

/// One worker's dests, held for its conns, and its count changes to fold.
#[derive(Debug)]
pub struct DestRefs {
    worker: usize,
    held: Vec<Held>,
    /// Entries with no dest, to use again.
    free: Vec<u32>,
    /// Dests whose counts changed since the last fold, each once
    /// (`Dest::changed`).
    listed: Vec<u32>,
    /// Entries whose last conn went since the last fold: let go at the
    /// fold unless a conn took them up again.
    idle: Vec<u32>,
}

impl DestRefs {
    pub fn new(worker: usize) -> DestRefs {
        DestRefs {
            worker,
            held: Vec::new(),
            free: Vec::new(),
            listed: Vec::new(),
            idle: Vec::new(),
        }
    }

    /// One more conn of the worker's on `d`: its index.
    #[inline(always)]
    pub fn hold(&mut self, d: &Arc<Dest>) -> DestIx {
        let h = d.handle(self.worker);
        if let Some(e) = self.held.get_mut(h.wrapping_sub(1) as usize) {
            // The hint is another table's where a worker has two (tests).
            if e.dest.as_ref().is_some_and(|x| Arc::ptr_eq(x, d)) {
                e.conns += 1;
                return DestIx(h - 1);
            }
        }
        self.hold_anew(d)
    }

    /// `hold` of a dest the worker does not hold yet: once per dest, until
    /// its conns are gone.
    #[inline(never)]
    fn hold_anew(&mut self, d: &Arc<Dest>) -> DestIx {
        let e = Held {
            dest: Some(Arc::clone(d)),
            conns: 1,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.held[i as usize] = e;
                i
            }
            None => {
                self.held.push(e);
                (self.held.len() - 1) as u32
            }
        };
        d.set_handle(self.worker, i + 1);
        DestIx(i)
    }

    /// The dest at `ix`.
    #[inline(always)]
    pub fn get(&self, ix: DestIx) -> Option<&Arc<Dest>> {
        self.held.get(ix.0 as usize)?.dest.as_ref()
    }

    /// One conn fewer on the dest at `ix`, which counted nowhere (a conn
    /// the table refused): `end` without a change of the counts.
    #[inline]
    pub fn let_go(&mut self, ix: DestIx) {
        self.end(ix, |_, _| false);
    }

    /// A conn of the dest at `ix` ends: `f` changes the counts as
    /// `change` does, and the conn lets go of the dest, which goes at the
    /// next fold if no conn holds it by then. One lookup for both.
    #[inline(always)]
    pub fn end(&mut self, ix: DestIx, f: impl FnOnce(&Dest, usize) -> bool) {
        let Some(e) = self.held.get_mut(ix.0 as usize) else {
            return;
        };
        if e.dest.as_deref().is_some_and(|d| f(d, self.worker)) {
            self.listed.push(ix.0);
        }
        e.conns = e.conns.saturating_sub(1);
        if e.conns == 0 {
            self.idle.push(ix.0);
        }
    }

    /// A change of the counts of the dest at `ix` in the worker's slot
    /// (`f`, given the worker: one of `Dest`'s count changes), and the
    /// dest listed where the change says it must be.
    #[inline(always)]
    pub fn change(&mut self, ix: DestIx, f: impl FnOnce(&Dest, usize) -> bool) {
        if let Some(d) = self.get(ix) {
            if f(d, self.worker) {
                self.listed.push(ix.0);
            }
        }
    }

    /// `change` of `d`, which the worker holds at `ix` (its caller has
    /// it at hand: not looked up again).
    #[inline(always)]
    pub fn change_held(&mut self, ix: DestIx, d: &Dest, f: impl FnOnce(&Dest, usize) -> bool) {
        debug_assert!(self.get(ix).is_some_and(|h| std::ptr::eq(&**h, d)));
        if f(d, self.worker) {
            self.listed.push(ix.0);
        }
    }

    /// Every listed dest's changes into its totals; then the dests no
    /// conn holds any more are let go.
    pub fn fold(&mut self) {
        for i in self.listed.drain(..) {
            if let Some(d) = self.held.get(i as usize).and_then(|e| e.dest.as_ref()) {
                d.fold(self.worker);
            }
        }
        for i in std::mem::take(&mut self.idle) {
            let Some(e) = self.held.get_mut(i as usize) else {
                continue;
            };
            if e.conns != 0 {
                continue;
            }
            if let Some(d) = e.dest.take() {
                if d.handle(self.worker) == i + 1 {
                    d.set_handle(self.worker, 0);
                }
                self.free.push(i);
            }
        }
    }

    /// Dests listed and not yet folded (tests).
    pub fn listed(&self) -> usize {
        self.listed.len()
    }

    /// Dests held (tests).
    pub fn held(&self) -> usize {
        self.held.iter().filter(|e| e.dest.is_some()).count()
    }
}

impl Drop for DestRefs {
    fn drop(&mut self) {
        self.fold();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::DestConfig;

    fn dest(workers: usize) -> Arc<Dest> {
        let c = DestConfig::new("10.0.0.1".parse().unwrap(), 80);
        Arc::new(Dest::new(&c, workers))
    }

    #[test]
    fn a_dest_is_held_once_for_all_its_conns_and_let_go_at_the_fold_after_the_last() {
        let d = dest(2);
        let mut refs = DestRefs::new(1);
        let ix = refs.hold(&d);
        assert_eq!(Arc::strong_count(&d), 2, "one clone for the worker");
        for _ in 0..999 {
            assert_eq!(refs.hold(&d), ix, "found by its handle");
        }
        assert_eq!(Arc::strong_count(&d), 2, "not one per conn");
        for _ in 0..999 {
            refs.let_go(ix);
        }
        refs.fold();
        assert_eq!(refs.held(), 1, "one conn still holds it");
        refs.let_go(ix);
        assert!(refs.get(ix).is_some(), "held until the fold");
        refs.fold();
        assert_eq!((refs.held(), Arc::strong_count(&d)), (0, 1));
        assert_eq!(d.handle(1), 0);
    }

    #[test]
    fn a_dest_taken_up_again_before_the_fold_is_kept() {
        let (a, b) = (dest(1), dest(1));
        let mut refs = DestRefs::new(0);
        let ia = refs.hold(&a);
        refs.let_go(ia);
        assert_eq!(refs.hold(&a), ia);
        refs.fold();
        assert_eq!(refs.get(ia).map(|d| Arc::ptr_eq(d, &a)), Some(true));
        refs.let_go(ia);
        refs.fold();
        // Its entry serves the next dest.
        assert_eq!(refs.hold(&b), ia);
        assert_eq!(refs.get(ia).map(|d| Arc::ptr_eq(d, &b)), Some(true));
        assert_eq!(a.handle(0), 0);
    }

    #[test]
    fn two_tables_of_one_worker_each_hold_the_dest_their_conns_name() {
        let d = dest(1);
        let (mut one, mut two) = (DestRefs::new(0), DestRefs::new(0));
        let other = dest(1);
        let taken = two.hold(&other);
        let i1 = one.hold(&d);
        let i2 = two.hold(&d);
        assert_ne!(i2, taken, "the hint was the other table's");
        // The hint is now the second table's: the first holds the dest
        // again, in an entry of its own (correct, if not the one entry).
        let again = one.hold(&d);
        assert!(Arc::ptr_eq(one.get(again).unwrap(), &d));
        assert!(Arc::ptr_eq(one.get(i1).unwrap(), &d));
        assert!(Arc::ptr_eq(two.get(i2).unwrap(), &d));
        assert!(Arc::ptr_eq(two.get(taken).unwrap(), &other));
    }

    #[test]
    fn the_list_folds_what_it_listed_and_as_it_goes() {
        let d = dest(2);
        let mut refs = DestRefs::new(1);
        let ix = refs.hold(&d);
        for _ in 0..2 {
            refs.change(ix, |d, w| d.bind_conn(w, true));
        }
        assert_eq!(refs.listed(), 1, "listed once");
        assert_eq!(d.activeconns_at(0), 0);
        refs.fold();
        assert_eq!(refs.listed(), 0);
        assert_eq!(d.activeconns_at(0), 2);
        refs.change(ix, |d, w| d.bind_conn(w, false));
        refs.let_go(ix);
        assert_eq!(d.inactconns_at(0), 0);
        drop(refs);
        assert_eq!(d.inactconns_at(0), 1, "a worker's list folds as it stops");
        assert_eq!(Arc::strong_count(&d), 1);
    }
}
