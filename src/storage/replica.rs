//! What replication needs from the store: reading a key's state without
//! touching it ([`Store::export`]), applying the peer's state by version
//! (last writer wins: [`Store::apply_item`], [`Store::apply_delete`],
//! [`Store::apply_flush`]), tombstone figures, and an exact resumable walk
//! over items and tombstones ([`Store::walk`]).
//!
//! Applying is atomic with its version check: both happen under the key's
//! shard lock, where its item and its tombstone live. Every apply moves
//! the local version clock past the version it carries.

use super::alloc::Step;
use super::item::{self, footprint, item_size};
use super::shard::{Shard, Validity};
use super::slabs::Ref;
use super::{Miss, Store, SWEEP_CHUNK};
use std::sync::atomic::Ordering;

/// A key's state as the peer should receive it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exported<'a> {
    Item {
        key: &'a [u8],
        value: &'a [u8],
        flags: u32,
        /// Absolute expiry, Unix seconds, 0 = never.
        exptime: u32,
        version: u64,
        /// Invalidated by the meta protocol (`md I`, `ms I`).
        stale: bool,
    },
    Tombstone {
        key: &'a [u8],
        version: u64,
    },
}

/// What applying a peer's record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    Applied,
    /// The local state (item, tombstone or flush barrier) is as new or
    /// newer; nothing changed.
    Older,
    /// The item exceeds this node's `-I` (or the key is not a valid key);
    /// the local state was left as it was.
    TooLarge,
    /// No memory and evictions are disabled (`-M`); the local state was
    /// left as it was.
    OutOfMemory,
}

/// Where a [`Store::walk`] stands: a shard, a reverse-binary bucket
/// cursor within it, then a tombstone id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalkCursor {
    shard: usize,
    pos: u64,
    in_tombs: bool,
    tomb_id: u64,
    done: bool,
}

impl WalkCursor {
    pub fn is_done(&self) -> bool {
        self.done
    }
}

/// An incoming item record with what was worked out before locking.
struct Incoming<'a> {
    key: &'a [u8],
    h: u32,
    flags: u32,
    exptime: u32,
    value: &'a [u8],
    version: u64,
    stale: bool,
    too_large: bool,
    never_fits: bool,
}

/// Calls `f` with live item `r` as an export.
fn export_item<R>(sh: &Shard, r: Ref, f: impl FnOnce(Exported<'_>) -> R) -> R {
    fn make<'a>(sh: &'a Shard, r: Ref, value: &'a [u8]) -> Exported<'a> {
        Exported::Item {
            key: sh.key(r),
            value,
            flags: sh.flags(r),
            exptime: sh.exptime(r),
            version: sh.seq(r),
            stale: sh.bits(r) & item::INVALID != 0,
        }
    }
    match sh.value_inline(r) {
        Some(val) => f(make(sh, r, val)),
        None => {
            let val = sh.value_vec(r);
            f(make(sh, r, &val))
        }
    }
}

impl Store {
    /// The state of `key` for the peer, without counting a read, marking
    /// the item fetched or moving it in its LRU: a live item, else a live
    /// tombstone, else None.
    pub fn export<R>(&self, key: &[u8], now: u32, f: impl FnOnce(Exported<'_>) -> R) -> Option<R> {
        let (h, si) = self.locate(key)?;
        let v = self.validity(now);
        let mut sh = self.lock(si);
        // An item found expired is sent as its delete (see `settle`).
        if let Some(r) = self.settle(&mut sh, key, h, &v) {
            if sh.check_live(r, &v).is_none() {
                return Some(export_item(&sh, r, f));
            }
        }
        let version = sh.tombs.peek(key, now, v.flush_seq)?;
        Some(f(Exported::Tombstone { key, version }))
    }

    /// Applies the peer's item: stored with the peer's `version` (not a
    /// fresh one) unless the local item, the key's tombstone or the flush
    /// barrier is as new or newer (`Older`). An item already expired at
    /// `now` is applied as a delete at `version` (it removes an older
    /// copy). A stored item replaces the key's item (dead or live) and
    /// drops its tombstone; its meta marks start fresh except the stale
    /// mark (`stale`). Memory comes as for a client store (evicting
    /// unless `-M`). A local item found expired counts as a delete at its
    /// own version (see `settle`). The local clock observes `version` in
    /// every case.
    #[allow(clippy::too_many_arguments)]
    pub fn apply_item(
        &self,
        key: &[u8],
        flags: u32,
        exptime: u32,
        value: &[u8],
        version: u64,
        stale: bool,
        now: u32,
    ) -> ApplyOutcome {
        self.observe(version);
        let Some((h, si)) = self.locate(key) else {
            return ApplyOutcome::TooLarge;
        };
        let too_large = item_size(key.len(), value.len(), flags, self.cfg.cas_enabled)
            > self.cfg.item_size_max as u64;
        let a = Incoming {
            key,
            h,
            flags,
            exptime,
            value,
            version,
            stale,
            too_large,
            never_fits: !too_large && !self.could_ever_fit(key.len(), value.len(), flags),
        };
        self.write_with_room(
            si,
            now,
            |sh, v, res| self.apply_locked(sh, si, &a, v, res),
            || ApplyOutcome::OutOfMemory,
        )
    }

    fn apply_locked(
        &self,
        sh: &mut Shard,
        si: usize,
        a: &Incoming<'_>,
        v: &Validity,
        res: &mut Vec<Ref>,
    ) -> Step<ApplyOutcome> {
        if a.version <= v.flush_seq {
            return Step::Done(ApplyOutcome::Older);
        }
        let found = self.settle(sh, a.key, a.h, v);
        if let Some(r) = found {
            if sh.check_live(r, v).is_none() && sh.seq(r) >= a.version {
                return Step::Done(ApplyOutcome::Older);
            }
        }
        if sh
            .tombs
            .get(a.key, v.now, v.flush_seq)
            .is_some_and(|t| t >= a.version)
        {
            return Step::Done(ApplyOutcome::Older);
        }
        if a.exptime != 0 && a.exptime <= v.now {
            self.delete_locked(sh, a.key, a.h, a.version, v.now);
            return Step::Done(ApplyOutcome::Applied);
        }
        if a.too_large {
            return Step::Done(ApplyOutcome::TooLarge);
        }
        if a.never_fits {
            let c = self.slabs.largest();
            sh.lru[c].c.outofmemory += 1;
            return Step::Done(ApplyOutcome::OutOfMemory);
        }
        let (klen, vlen) = (a.key.len(), a.value.len());
        // Over an item of the same class: reuse its chunk (as a set does).
        if let Some(idx) = found {
            let fp = footprint(klen, vlen, a.flags);
            if !sh.is_chained(idx)
                && fp <= self.slabs.chunk_max()
                && self.slabs.class_for(fp) == sh.class_of(idx)
            {
                let head = sh.unlink_keep_head(idx);
                self.link_applied(sh, head, &[], a, v.now);
                return Step::Done(ApplyOutcome::Applied);
            }
        }
        let (head, conts) = match self.get_chunks(sh, si, (klen, vlen, a.flags), v, res) {
            Ok(x) => x,
            Err(c) => return Step::Need(c),
        };
        // Making room may have evicted the old item: look again.
        if let Some(r) = sh.find(a.key, a.h) {
            sh.unlink(r);
        }
        self.link_applied(sh, head, &conts, a, v.now);
        Step::Done(ApplyOutcome::Applied)
    }

    fn link_applied(&self, sh: &mut Shard, head: Ref, conts: &[Ref], a: &Incoming<'_>, now: u32) {
        sh.write_item(
            head,
            conts,
            a.version,
            a.exptime,
            now,
            a.flags,
            a.key,
            &[a.value],
        );
        let mut b = sh.bits(head);
        if a.stale {
            b |= item::INVALID;
        }
        if self.dead_at_birth(a.version, now) {
            b |= item::STALE;
        }
        sh.set_bits(head, b);
        sh.link(head);
        sh.tombs.remove(a.key);
    }

    /// The key's item before an apply compares versions with it. An item
    /// whose expiry has passed (but not flushed) is state the peer also
    /// reaches, as a delete at the item's version (an item expired on
    /// arrival is applied so): it is turned into that tombstone here, so
    /// an older record cannot bring the key back and both nodes end with
    /// the same tombstone. (One removed earlier by a lookup or the crawler
    /// left nothing: expiry is local.) Returns the item still linked,
    /// live or flushed.
    fn settle(&self, sh: &mut Shard, key: &[u8], h: u32, v: &Validity) -> Option<Ref> {
        let r = sh.find(key, h)?;
        if sh.check_live(r, v) != Some(Miss::Expired) {
            return Some(r);
        }
        let version = sh.seq(r);
        sh.unlink(r);
        if self.replicated() {
            sh.tombs.raise(key, version, v.now);
        }
        None
    }

    /// After a client write that left `key` already expired (a negative
    /// or past expiry on set, touch, gat, `ms T`): in replicated mode the
    /// expired item becomes its tombstone now, so the peer drops its older
    /// copy as it would for a delete. Nothing otherwise.
    pub fn settle_expired(&self, key: &[u8], now: u32) {
        if !self.replicated() {
            return;
        }
        let Some((h, si)) = self.locate(key) else {
            return;
        };
        let v = self.validity(now);
        let mut sh = self.lock(si);
        let _ = self.settle(&mut sh, key, h, &v);
    }

    /// Removes `key`'s item (live or dead) and records its tombstone at
    /// `version` (replicated mode).
    fn delete_locked(&self, sh: &mut Shard, key: &[u8], h: u32, version: u64, now: u32) {
        if let Some(r) = sh.find(key, h) {
            sh.unlink(r);
        }
        if self.replicated() {
            sh.tombs.raise(key, version, now);
        }
    }

    /// Applies the peer's delete: `Older` when a live local item has a
    /// greater version or the flush barrier covers `version`; otherwise
    /// the key's item goes and its tombstone is recorded or raised to
    /// `version` (`Applied`, also when there was no item: the tombstone
    /// still stops older writes; a local item found expired leaves its own
    /// version if greater). A key that cannot be stored is `TooLarge`.
    /// The local clock observes `version`.
    pub fn apply_delete(&self, key: &[u8], version: u64, now: u32) -> ApplyOutcome {
        self.observe(version);
        let Some((h, si)) = self.locate(key) else {
            return ApplyOutcome::TooLarge;
        };
        let v = self.validity(now);
        self.with_shard(si, |sh| {
            if version <= v.flush_seq {
                // Every item at or below the barrier is dead already.
                return ApplyOutcome::Older;
            }
            if let Some(r) = self.settle(sh, key, h, &v) {
                if sh.check_live(r, &v).is_none() && sh.seq(r) > version {
                    return ApplyOutcome::Older;
                }
            }
            self.delete_locked(sh, key, h, version, now);
            ApplyOutcome::Applied
        })
    }

    /// Applies the peer's flush: every item and tombstone with a version
    /// at or below `version` is dead. The local clock observes `version`.
    pub fn apply_flush(&self, version: u64) {
        self.observe(version);
        let _g = self.flush_lock.lock().unwrap_or_else(|p| p.into_inner());
        let barrier = self
            .flush_seq
            .fetch_max(version, Ordering::AcqRel)
            .max(version);
        drop(_g);
        self.purge_tombstones(barrier);
    }

    /// Tombstones held: (count, bytes charged, dropped early by the cap).
    pub fn tombstone_stats(&self) -> (u64, u64, u64) {
        let mut out = (0, 0, 0);
        if !self.replicated() {
            return out;
        }
        for si in 0..self.shards.len() {
            let (n, b, d) = self.lock(si).tombs.stats();
            out.0 += n;
            out.1 += b;
            out.2 += d;
        }
        out
    }

    /// Drops expired tombstones (maintenance; replicated mode only).
    pub(super) fn expire_tombstones(&self, now: u32) {
        if !self.replicated() {
            return;
        }
        for si in 0..self.shards.len() {
            self.with_shard(si, |sh| {
                if !sh.tombs.is_empty() {
                    sh.tombs.expire(now);
                }
            });
        }
    }

    /// Walks the live items and live tombstones in resumable steps, for a
    /// resync: examines about `budget` hash buckets or tombstones per call
    /// from `cursor`, holding one shard lock at a time (never two, never a
    /// global lock), calls `f` with each live item or tombstone met and
    /// advances the cursor. Returns true when the walk has finished.
    ///
    /// Exact: every item and every tombstone present for the whole walk
    /// is visited at least once, even while hash tables double between
    /// or during steps (each shard's buckets are scanned with a
    /// reverse-binary cursor, see `Shard::scan_step`; then its tombstones
    /// in increasing id, which a raise renews and removals never shift).
    /// Something written, deleted or raised during the walk may be seen
    /// or not, and may be seen twice (it then moved ahead of the
    /// cursor); the receiver applies by version, so repeats are harmless.
    /// Like [`Store::export`], a walk is a peek: no counters, marks or LRU
    /// moves.
    pub fn walk(
        &self,
        cursor: &mut WalkCursor,
        budget: usize,
        now: u32,
        mut f: impl FnMut(Exported<'_>),
    ) -> bool {
        let mut left = budget.max(1);
        while !cursor.done && left > 0 {
            if cursor.shard >= self.shards.len() {
                cursor.done = true;
                break;
            }
            let v = self.validity(now);
            let sh = self.lock(cursor.shard);
            if !cursor.in_tombs {
                let chunk = left.min(SWEEP_CHUNK);
                let mut spent = 0;
                while spent < chunk {
                    let (next, examined) = sh.scan_step(cursor.pos, &v, &mut |sh, r| {
                        export_item(sh, r, &mut f);
                    });
                    spent += examined;
                    cursor.pos = next;
                    if next == 0 {
                        cursor.in_tombs = true;
                        cursor.tomb_id = 0;
                        break;
                    }
                }
                left = left.saturating_sub(spent);
            } else {
                let (next, seen) = sh.tombs.walk_from(
                    cursor.tomb_id,
                    left.min(SWEEP_CHUNK),
                    now,
                    v.flush_seq,
                    &mut |t| {
                        f(Exported::Tombstone {
                            key: t.key,
                            version: t.version,
                        })
                    },
                );
                left = left.saturating_sub(seen);
                match next {
                    Some(id) => cursor.tomb_id = id,
                    None => {
                        cursor.shard += 1;
                        cursor.pos = 0;
                        cursor.in_tombs = false;
                        cursor.tomb_id = 0;
                    }
                }
            }
        }
        cursor.done
    }

    /// The flush barrier in force at `now` (versions at or below it are
    /// dead).
    #[doc(hidden)]
    pub fn flush_barrier(&self, now: u32) -> u64 {
        self.validity(now).flush_seq
    }
}
