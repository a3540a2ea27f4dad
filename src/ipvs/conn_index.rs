//! The conn table's index: a key's hash to the slab slots that may hold
//! it, a client's tuple to its conn and a reply's tuple to its conn in one
//! (as the kernel keeps a conn in one table).
//!
//! Cache-line buckets of seven entries and an overflow count. An entry is
//! the upper half of its key's hash (the tag, never 0; the tags side by
//! side, compared all at once), one bit of it flipped where the key is its
//! conn's reply tuple (`REPLY`), and the conn's slot with a bit that says it
//! lives away from its first line; an empty entry's tag is 0. A packet
//! whose tuple could be either side of a conn is looked up both ways in the
//! lines one hash names, and a tuple no conn holds (a new conn's, a free
//! local port's) reads one line, not one in each of two indexes.
//!
//! A hash has two lines: its low half picks the first, and the other is
//! the first reflected about a point the tag (without its side) picks
//! (`other`), so an entry's other line is known from the entry alone, and
//! both sides of one hash share their lines. An insert that finds
//! both full moves entries to their other lines to make room (cuckoo
//! hashing, a bounded walk that is undone when it finds none), so the
//! index fills to nearly every entry before it refuses one. A line counts
//! the entries whose first line it is that live in their other line (as
//! F14's chunks count their overflow): while that is 0, a key not in its
//! first line is in neither, and a miss reads one line too. Sized for its
//! entries at 85 % of its room: 21.5 bytes a conn for its two entries.
//!
//! Why not hashbrown, as before: a lookup here reads one line that the
//! hash alone names (hashbrown reads its control bytes, then the entry,
//! elsewhere), so the first stage of a burst can ask for every packet's
//! line before it reads any (`line`), and a busy table's lookups overlap
//! their cache misses instead of waiting on each in turn. Removal leaves
//! no tombstone to clear.
//!
//! The index keeps no keys: `find` hands each slot whose tag matches to the
//! caller, which compares the conn's own tuple.

use crate::dpdk::hugepage::{CacheLine, ZeroedLines};
use crate::dpdk::simd::eq_mask8;

/// A line's words: seven entries' tags and the overflow count, then their
/// slots; 64 bytes, one cache line.
const WORDS: usize = 2 * (WAYS + 1);
type Line = [u32; WORDS];
const _: () = assert!(std::mem::size_of::<Line>() == std::mem::size_of::<CacheLine>());
static EMPTY: Line = [0; WORDS];

const WAYS: usize = 7;
/// Where the overflow count sits among the tags.
const OVERFLOW: usize = WAYS;
/// Where the slots start.
const SLOTS: usize = WAYS + 1;
const SLOT: u32 = 0x7fff_ffff;
/// The entry lives in its other line.
const AWAY: u32 = 1 << 31;

/// The ways of line `l` whose tag is `t`: bit `w` for way `w` (the
/// overflow count, beside the tags, left out).
#[inline(always)]
fn tags_equal(l: &Line, t: u32) -> u32 {
    let [tags @ .., _, _, _, _, _, _, _, _] = l;
    eq_mask8(tags, t) & ((1 << WAYS) - 1)
}

/// Moves an insert may make before it gives up (and puts back what it
/// moved).
const MAX_MOVES: usize = 64;

/// The line `Index::at` gives past the lines: a call, so that the common
/// case is a compare and a branch, not a select of the empty line's
/// address on every line read.
#[cold]
fn empty() -> &'static Line {
    &EMPTY
}

/// The lines live in one zeroed allocation, each on a cache line of its
/// own (`ZeroedLines`: pages the kernel zero-fills when first touched, so
/// a table sized for tens of millions of conns costs nothing until they
/// come, and starts at once).
#[derive(Debug)]
pub(super) struct Index {
    mem: ZeroedLines,
}

/// The key's hash as the index reads it: multiplied and folded, so that
/// its two halves (the first line, the tag) are both spread however the
/// keys differ. Straight from the table's hasher, the tuples of one
/// client's ports filled lines unevenly enough that an insert at 80 % of
/// the room could find none in a few tables of a hundred.
#[inline(always)]
fn spread(h: u64) -> u64 {
    let h = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 32)
}

/// The tag's bit that a conn's reply tuple has flipped (its client
/// tuple's tag is the hash's own).
const REPLY: u32 = 2;

/// A client tuple's tag of hash `h` (`^ REPLY` for a reply's).
#[inline(always)]
fn tag(h: u64) -> u32 {
    (spread(h) >> 32) as u32 | 1
}

/// The tag of hash `h` on side `reply`.
#[inline(always)]
fn side_tag(h: u64, reply: bool) -> u32 {
    tag(h) ^ if reply { REPLY } else { 0 }
}

/// Where a lookup of one hash reads (`Index::spot`): its first line and
/// its tag, worked out once for a caller that asks for the line ahead of
/// the lookup; a client tuple's, and `reply` the same hash's as a reply's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spot {
    line: u32,
    tag: u32,
}

impl Spot {
    /// The spot of the same hash as a reply's tuple.
    #[inline(always)]
    pub fn reply(self) -> Spot {
        Spot {
            tag: self.tag ^ REPLY,
            ..self
        }
    }
}

/// An entry out of the index: its tag, its slot and its first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    tag: u32,
    slot: u32,
    home: usize,
}

impl Index {
    /// An index for `n` entries, at most 85 % of its room (at least two
    /// lines).
    pub(super) fn with_capacity(n: usize) -> Index {
        let lines = Self::lines_for(n);
        Index {
            mem: ZeroedLines::new(lines),
        }
    }

    /// Where the lines' allocation starts (tests look its pages up).
    #[cfg(test)]
    pub(super) fn words_ptr(&self) -> *const u8 {
        self.mem.as_ptr()
    }

    fn lines_for(n: usize) -> usize {
        n.saturating_mul(20)
            .div_ceil(WAYS * 17)
            .clamp(2, u32::MAX as usize)
    }

    /// Bytes an index for `n` entries allocates.
    pub(super) fn bytes_for(n: usize) -> usize {
        (Self::lines_for(n) + 1) * std::mem::size_of::<CacheLine>()
    }

    pub(super) fn allocation_size(&self) -> usize {
        self.mem.allocation_size()
    }

    /// Entries held, counted line by line.
    #[cfg(test)]
    fn len(&self) -> usize {
        (0..self.lines())
            .map(|at| self.at(at)[..WAYS].iter().filter(|&&t| t != 0).count())
            .sum()
    }

    /// Lines held.
    #[inline(always)]
    fn lines(&self) -> usize {
        self.mem.lines().len()
    }

    /// Line `i` (below `lines`: every caller's index is scaled to them; a
    /// line past them reads as empty and takes no writes).
    #[inline(always)]
    fn at(&self, i: usize) -> &Line {
        match self.mem.lines().get(i) {
            Some(l) => &l.0,
            None => empty(),
        }
    }

    #[inline(always)]
    fn at_mut(&mut self, i: usize) -> Option<&mut Line> {
        self.mem.lines_mut().get_mut(i).map(|l| &mut l.0)
    }

    /// `x`, a 32-bit value, scaled to a line (a multiply, no division).
    #[inline(always)]
    fn scale(&self, x: u64) -> usize {
        (((x & 0xffff_ffff) * self.lines() as u64) >> 32) as usize
    }

    #[inline(always)]
    fn first(&self, h: u64) -> usize {
        self.scale(spread(h))
    }

    /// The line paired with `b` for entries of `tag`: `b` reflected about
    /// a point the tag (its side's bit left out) picks, modulo the lines, so
    /// that `other(other(b)) == b`. It is `b` itself for one `b` per tag:
    /// such an entry has one line.
    #[inline(always)]
    fn other(&self, b: usize, tag: u32) -> usize {
        let key = u64::from(tag & !REPLY);
        let at = self.scale(key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32);
        if at >= b {
            at - b
        } else {
            at + self.lines() - b
        }
    }

    /// Where a lookup of hash `h` reads: its first line and its tag (a
    /// client tuple's; `Spot::reply` a reply's).
    #[inline(always)]
    pub(super) fn spot(&self, h: u64) -> Spot {
        Spot {
            line: self.first(h) as u32,
            tag: tag(h),
        }
    }

    /// The start of the line a lookup at `p` reads first: what to
    /// prefetch.
    #[inline(always)]
    pub(super) fn line(&self, p: Spot) -> &u32 {
        &self.at(p.line as usize)[0]
    }

    /// The slot of the first entry in `p`'s first line whose tag is `p`'s:
    /// what `find_at` would most likely hand `eq` first.
    #[inline(always)]
    pub(super) fn first_match(&self, p: Spot) -> Option<u32> {
        Self::first_tagged(self.at(p.line as usize), p.tag)
    }

    /// The start of `p`'s other line, where its first line's entries
    /// spill; None where none spilled (a lookup at `p` reads no other).
    #[inline(always)]
    pub(super) fn other_line(&self, p: Spot) -> Option<&u32> {
        self.spilled_to(p).map(|l| &l[0])
    }

    /// `first_match` in `p`'s other line, where its first line spilled.
    #[inline(always)]
    pub(super) fn other_match(&self, p: Spot) -> Option<u32> {
        Self::first_tagged(self.spilled_to(p)?, p.tag)
    }

    /// `p`'s other line, if its first line spilled.
    #[inline(always)]
    fn spilled_to(&self, p: Spot) -> Option<&Line> {
        let b = p.line as usize;
        (self.at(b)[OVERFLOW] != 0).then(|| self.at(self.other(b, p.tag)))
    }

    /// The slot of line `l`'s first entry under tag `t`.
    #[inline(always)]
    fn first_tagged(l: &Line, t: u32) -> Option<u32> {
        let m = tags_equal(l, t);
        (m != 0).then(|| l[SLOTS + m.trailing_zeros() as usize] & SLOT)
    }

    /// The first slot of hash `h` as a client's tuple that `eq` accepts.
    #[inline(always)]
    pub(super) fn find(&self, h: u64, eq: impl FnMut(u32) -> bool) -> Option<u32> {
        self.find_at(self.spot(h), eq)
    }

    /// The first slot at spot `p` as a client's tuple that `eq_in`
    /// accepts, else as a reply's that `eq_out` does (and true): a packet
    /// looked up both ways, the lines read once.
    #[inline(always)]
    pub(super) fn find_either(
        &self,
        p: Spot,
        mut eq_in: impl FnMut(u32) -> bool,
        mut eq_out: impl FnMut(u32) -> bool,
    ) -> Option<(u32, bool)> {
        let (t, b) = (p.tag, p.line as usize);
        let l = self.at(b);
        if let Some(s) = Self::scan(l, t, &mut eq_in) {
            return Some((s, false));
        }
        let other = (l[OVERFLOW] != 0).then(|| self.at(self.other(b, t)));
        if let Some(s) = other.and_then(|o| Self::scan(o, t, &mut eq_in)) {
            return Some((s, false));
        }
        let r = t ^ REPLY;
        if let Some(s) = Self::scan(l, r, &mut eq_out) {
            return Some((s, true));
        }
        Some((Self::scan(other?, r, &mut eq_out)?, true))
    }

    /// The first slot at spot `p` that `eq` accepts.
    #[inline(always)]
    pub(super) fn find_at(&self, p: Spot, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let (t, b) = (p.tag, p.line as usize);
        let l = self.at(b);
        if let Some(s) = Self::scan(l, t, &mut eq) {
            return Some(s);
        }
        if l[OVERFLOW] == 0 {
            return None;
        }
        Self::scan(self.at(self.other(b, t)), t, &mut eq)
    }

    /// The first slot of line `l` under tag `t` that `eq` accepts.
    #[inline(always)]
    fn scan(l: &Line, t: u32, eq: &mut impl FnMut(u32) -> bool) -> Option<u32> {
        // The first way on its own: where a lookup of a tracked conn
        // finds it in a table short of full. The rest compared at once
        // (`tags_equal`), so a tuple the table lacks, a new conn's or a
        // free port's, costs no loop.
        if l[0] == t {
            let s = l[SLOTS] & SLOT;
            if eq(s) {
                return Some(s);
            }
        }
        let mut m = tags_equal(l, t) & !1;
        while m != 0 {
            let w = m.trailing_zeros() as usize;
            m &= m - 1;
            let s = l[SLOTS + w] & SLOT;
            if eq(s) {
                return Some(s);
            }
        }
        None
    }

    /// The first line of the entry at `way` of line `at`.
    fn home_of(&self, at: usize, way: usize) -> usize {
        let l = self.at(at);
        if l[SLOTS + way] & AWAY != 0 {
            self.other(at, l[way])
        } else {
            at
        }
    }

    fn bump(&mut self, at: usize, up: bool) {
        if let Some(l) = self.at_mut(at) {
            l[OVERFLOW] = if up { l[OVERFLOW] + 1 } else { l[OVERFLOW] - 1 };
        }
    }

    /// Puts `new` (or nothing) at `way` of line `at` and hands back what
    /// was there, keeping the overflow counts of both entries' first lines.
    fn swap(&mut self, at: usize, way: usize, new: Option<Held>) -> Option<Held> {
        let (t, s) = (self.at(at)[way], self.at(at)[SLOTS + way]);
        let prev = (t != 0).then(|| {
            let home = self.home_of(at, way);
            if home != at {
                self.bump(home, false);
            }
            Held {
                tag: t,
                slot: s & SLOT,
                home,
            }
        });
        let (t, s) = match new {
            None => (0, 0),
            Some(h) => {
                let away = h.home != at;
                if away {
                    self.bump(h.home, true);
                }
                (h.tag, h.slot | if away { AWAY } else { 0 })
            }
        };
        if let Some(l) = self.at_mut(at) {
            (l[way], l[SLOTS + way]) = (t, s);
        }
        prev
    }

    fn free_way(&self, at: usize) -> Option<usize> {
        self.at(at)[..WAYS].iter().position(|&t| t == 0)
    }

    /// Adds `slot` (below 2^31) under hash `h` on side `reply`; false
    /// (nothing changed) when no room can be made.
    /// In line where the first line has room, as most inserts find it:
    /// there an entry needs nothing but its two words.
    #[inline]
    pub(super) fn insert(&mut self, h: u64, slot: u32, reply: bool) -> bool {
        let (t, b) = (side_tag(h, reply), self.first(h));
        if let Some((way, l)) = self.free_way(b).zip(self.at_mut(b)) {
            (l[way], l[SLOTS + way]) = (t, slot & SLOT);
            return true;
        }
        self.insert_spilled(h, slot, reply)
    }

    /// `insert` where the first line is full: into the other line, else
    /// with room made.
    #[inline(never)]
    fn insert_spilled(&mut self, h: u64, slot: u32, reply: bool) -> bool {
        let t = side_tag(h, reply);
        let b = self.first(h);
        let carry = Held {
            tag: t,
            slot: slot & SLOT,
            home: b,
        };
        let o = self.other(b, t);
        if let Some(way) = self.free_way(o) {
            self.swap(o, way, Some(carry));
            return true;
        }
        self.make_room(b, carry)
    }

    /// `insert` when both lines are full: carries an entry from line to
    /// line (`carry` into `at`, what it displaces to that one's other line)
    /// until one lands in a line with room; undone when none does.
    #[cold]
    #[inline(never)]
    fn make_room(&mut self, mut at: usize, mut carry: Held) -> bool {
        let t = carry.tag;
        let mut path = [(0usize, 0usize); MAX_MOVES];
        for (k, step) in path.iter_mut().enumerate() {
            let way = (k + t as usize) % WAYS;
            let Some(out) = self.swap(at, way, Some(carry)) else {
                // Not reached: the line was full.
                return true;
            };
            *step = (at, way);
            carry = out;
            at = self.other(at, carry.tag);
            if let Some(way) = self.free_way(at) {
                self.swap(at, way, Some(carry));
                return true;
            }
        }
        for &(at, way) in path.iter().rev() {
            if let Some(back) = self.swap(at, way, Some(carry)) {
                carry = back;
            }
        }
        false
    }

    /// Takes `slot`'s entry under hash `h` on side `reply` out; false when
    /// there is none. (Where a conn's two tuples' tags come out equal in
    /// one pair of lines, either of its entries may go first: the table
    /// takes a conn's both out together.)
    pub(super) fn remove(&mut self, h: u64, slot: u32, reply: bool) -> bool {
        let t = side_tag(h, reply);
        let b = self.first(h);
        for at in [b, self.other(b, t)] {
            let l = self.at(at);
            let found = (0..WAYS).find(|&w| l[w] == t && l[SLOTS + w] & SLOT == slot);
            if let Some(way) = found {
                self.swap(at, way, None);
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn mix(mut x: u64) -> u64 {
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }

    /// An index of `n` lines.
    fn lines(n: usize) -> Index {
        Index {
            mem: ZeroedLines::new(n),
        }
    }

    /// Every line's overflow count is the number of entries away from it.
    fn assert_counts(ix: &Index) {
        let mut want = vec![0u32; ix.lines()];
        for at in 0..ix.lines() {
            for w in 0..WAYS {
                if ix.at(at)[w] != 0 && ix.home_of(at, w) != at {
                    want[ix.home_of(at, w)] += 1;
                }
            }
        }
        let got: Vec<u32> = (0..ix.lines()).map(|at| ix.at(at)[OVERFLOW]).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn every_entry_is_found_until_removed_at_full_load() {
        let n = 100_000;
        let mut ix = Index::with_capacity(n);
        let hashes: Vec<u64> = (0..n as u64).map(mix).collect();
        for (i, &h) in hashes.iter().enumerate() {
            assert!(ix.insert(h, i as u32, false), "entry {i} of {n} refused");
        }
        assert_eq!(ix.len(), n);
        for (i, &h) in hashes.iter().enumerate() {
            assert_eq!(ix.find(h, |s| s == i as u32), Some(i as u32));
        }
        assert_counts(&ix);
        for (i, &h) in hashes.iter().enumerate().step_by(2) {
            assert!(ix.remove(h, i as u32, false));
            assert!(!ix.remove(h, i as u32, false), "removed twice");
        }
        for (i, &h) in hashes.iter().enumerate() {
            let want = (i % 2 == 1).then_some(i as u32);
            assert_eq!(ix.find(h, |s| s == i as u32), want, "entry {i}");
        }
        assert_eq!(ix.len(), n / 2);
        assert_counts(&ix);
        // A key never added is not found, and with no overflow from its
        // first line, only that line was read.
        let mut looked = 0;
        for k in 0..1000u64 {
            let h = mix(k + (1 << 40));
            assert_eq!(
                ix.find(h, |_| {
                    looked += 1;
                    false
                }),
                None
            );
        }
        assert!(looked < 100, "{looked} tag matches for 1000 absent keys");
    }

    #[test]
    fn the_index_fills_far_past_half_and_a_refusal_changes_nothing() {
        // Eight lines, 56 entries: cuckoo moves fill nearly all of them.
        let mut ix = Index::with_capacity(16);
        assert_eq!(ix.allocation_size(), (3 + 1) * 64);
        assert_eq!(Index::bytes_for(16), ix.allocation_size());
        let mut ix8 = lines(8);
        let mut kept = HashMap::new();
        let mut refused = 0;
        for i in 0..56u32 {
            let h = mix(u64::from(i) + 7);
            if ix8.insert(h, i, false) {
                kept.insert(i, h);
            } else {
                refused += 1;
                assert_eq!(ix8.find(h, |s| s == i), None);
            }
        }
        assert!(kept.len() >= 49, "only {} of 56 placed", kept.len());
        assert_eq!(kept.len() + refused, 56);
        assert_counts(&ix8);
        assert_eq!(ix8.len(), kept.len());
        for (&i, &h) in &kept {
            assert_eq!(ix8.find(h, |s| s == i), Some(i), "entry {i} lost");
        }
        // Same tag, other slots: find hands each to the caller's check.
        assert!(ix.insert(5, 1, false) && ix.insert(5, 2, false));
        let mut seen = vec![];
        assert_eq!(
            ix.find(5, |s| {
                seen.push(s);
                s == 2
            }),
            Some(2)
        );
        assert_eq!(seen, [1, 2]);
    }

    #[test]
    fn an_entry_away_from_its_first_line_is_asked_for_in_its_other_line() {
        // At the size's full load, where some lines spill.
        let n = 1000u32;
        let mut ix = Index::with_capacity(n as usize);
        for i in 0..n {
            assert!(ix.insert(mix(u64::from(i)), i, false));
        }
        let mut away = 0;
        for i in 0..n {
            let p = ix.spot(mix(u64::from(i)));
            let first = ix.at(p.line as usize);
            let home = (0..WAYS).any(|w| first[w] == p.tag && first[SLOTS + w] & SLOT == i);
            if home {
                continue;
            }
            away += 1;
            // The lookup's second line is the one asked for, and the entry
            // the first there under its tag.
            let other = ix.at(ix.other(p.line as usize, p.tag));
            assert!(std::ptr::eq(ix.other_line(p).expect("spilled"), &other[0]));
            assert_eq!(ix.other_match(p), Some(i), "entry {i}");
            assert_eq!(ix.find(mix(u64::from(i)), |s| s == i), Some(i));
        }
        assert!(away > 0, "no line spilled at full load");
        // A line that spilled nothing names no other line.
        let empty = Index::with_capacity(1000);
        let p = empty.spot(mix(7));
        assert_eq!((empty.other_line(p), empty.other_match(p)), (None, None));
    }

    /// A conn's two tuples live in the one index apart by their side: a
    /// client's entry is no reply's and the reverse, a tuple that is both
    /// (one conn's client tuple, another's reply) is the client's first, as
    /// two indexes looked up in turn found it, and at full load both sides
    /// of a hash, away from their first line or not, are found by the one
    /// lookup of both ways.
    #[test]
    fn both_sides_of_a_hash_share_its_lines_the_clients_first() {
        let mut ix = Index::with_capacity(64);
        let h = mix(3);
        let p = ix.spot(h);
        assert!(ix.insert(h, 7, true));
        assert_eq!(ix.find_either(p, |_| true, |_| true), Some((7, true)));
        assert_eq!(ix.find(h, |_| true), None, "a reply's entry is no client's");
        assert!(ix.insert(h, 9, false));
        assert_eq!(ix.find_either(p, |_| true, |_| true), Some((9, false)));
        assert_eq!(ix.find_at(p.reply(), |_| true), Some(7));
        assert_eq!(ix.find_either(p, |s| s != 9, |_| true), Some((7, true)));
        assert!(!ix.remove(h, 7, false), "taken out only on its own side");
        assert!(ix.remove(h, 9, false) && ix.remove(h, 7, true));
        assert_eq!(ix.find_either(p, |_| true, |_| true), None);
        assert_eq!(ix.len(), 0);

        // Two entries a hash, client and reply.
        let n = 1000u32;
        let mut ix = Index::with_capacity(2 * n as usize);
        for i in 0..2 * n {
            assert!(ix.insert(mix(u64::from(i / 2)), i, i % 2 == 1), "entry {i}");
        }
        assert_counts(&ix);
        let mut away = 0;
        for k in 0..n {
            let (c, r) = (2 * k, 2 * k + 1);
            let p = ix.spot(mix(u64::from(k)));
            let first = ix.at(p.line as usize);
            away += [(c, p.tag), (r, p.reply().tag)]
                .iter()
                .filter(|&&(s, t)| !(0..WAYS).any(|w| first[w] == t && first[SLOTS + w] == s))
                .count();
            assert_eq!(ix.find_either(p, |s| s == c, |s| s == r), Some((c, false)));
            assert_eq!(ix.find_either(p, |_| false, |s| s == r), Some((r, true)));
            assert_eq!(ix.find_either(p, |s| s == r, |s| s == c), None, "{k}");
        }
        assert!(away > 0, "no entry away from its first line at full load");
    }

    #[test]
    fn a_hash_names_the_line_a_lookup_reads_first() {
        let mut ix = Index::with_capacity(1000);
        for i in 0..400u32 {
            assert!(ix.insert(mix(u64::from(i)), i, false));
        }
        let mut in_first = 0;
        for i in 0..400u32 {
            let h = mix(u64::from(i));
            let line = ix.at(ix.first(h));
            assert!(std::ptr::eq(ix.line(ix.spot(h)), &line[0]));
            assert_eq!(
                ix.line(ix.spot(h)) as *const u32 as usize % 64,
                0,
                "a line is a cache line"
            );
            if (0..WAYS).any(|w| line[w] == tag(h) && line[SLOTS + w] == i) {
                in_first += 1;
            }
        }
        // Below half load nearly every entry sits in its first line.
        assert!(in_first >= 390, "{in_first} of 400 in their first line");
    }

    #[test]
    fn every_line_and_its_pair_are_in_range_and_paired_both_ways() {
        for n in [2usize, 3, 7, 157, 40_960] {
            let ix = lines(n);
            for t in (1..2_000_000u32).step_by(9973) {
                let t = t | 1;
                for b in [0, n / 2, n - 1] {
                    let o = ix.other(b, t);
                    assert!(o < n);
                    assert_eq!(ix.other(o, t), b, "n {n} tag {t} line {b}");
                }
            }
        }
    }

    /// Tuples that differ in a port alone (one client's connections),
    /// hashed as the conn table hashes them, fill an index sized for them
    /// to the last entry, round after round of churn, in table after table
    /// (each hasher seeded afresh). Without `spread`, a few tables in a
    /// hundred refused an insert at 75 to 84 % of the room.
    #[test]
    fn one_clients_ports_fill_the_index_to_the_last_entry() {
        let n = 1000;
        for table in 0..120 {
            let hb = hashbrown::DefaultHashBuilder::default();
            let mut ix = Index::with_capacity(n);
            let mut live = Vec::new();
            let mut port = 0u32;
            for round in 0..20 {
                for slot in 0..n as u32 {
                    port += 1;
                    let key = super::super::V4Hash::of(
                        0xc000_0201,
                        0x0a00_0001,
                        (port & 0xffff) << 16 | 80,
                        6,
                    );
                    let h = std::hash::BuildHasher::hash_one(&hb, key);
                    assert!(
                        ix.insert(h, slot, false),
                        "table {table} round {round}: {slot} of {n}"
                    );
                    live.push((h, slot));
                }
                for (h, slot) in live.drain(..) {
                    assert!(ix.remove(h, slot, false));
                }
            }
        }
    }
}
