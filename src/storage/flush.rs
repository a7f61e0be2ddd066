//! Which items are alive: the flush barrier (`flush_all`, immediate or
//! delayed), the validity every lookup checks against it, and the
//! version a write takes, with whether a delayed flush already kills it.

use std::sync::atomic::Ordering;

use super::shard::Validity;
use super::Store;

impl Store {
    #[inline]
    pub(super) fn validity(&self, now: u32) -> Validity {
        let mut flush_seq = self.flush_seq.load(Ordering::Acquire);
        let pending = self.flush_at.load(Ordering::Acquire);
        if pending != 0 && pending <= now {
            if !self.flush_passed.load(Ordering::Relaxed) {
                self.flush_passed.store(true, Ordering::Release);
            }
            flush_seq = flush_seq.max(self.pending_seq.load(Ordering::Acquire));
        }
        Validity { now, flush_seq }
    }

    /// A new store sequence for a write at `now`, and whether the write
    /// is dead at birth (its clock is at or before a delayed flush that
    /// has already been seen to pass).
    #[inline]
    pub(super) fn next_seq(&self, now: u32) -> (u64, bool) {
        let s = self.versions.next();
        (s, self.dead_at_birth(s, now))
    }

    /// Whether a write of version `s` at `now` is dead at birth (a
    /// delayed flush that has passed covers `now`); a write while a
    /// delayed flush is pending joins the versions it will kill.
    #[inline]
    pub(super) fn dead_at_birth(&self, s: u64, now: u32) -> bool {
        if now <= self.passed_at.load(Ordering::Acquire) {
            return true;
        }
        let pending = self.flush_at.load(Ordering::Acquire);
        if pending != 0 && now <= pending {
            if self.flush_passed.load(Ordering::Acquire) {
                return true;
            }
            self.pending_seq.fetch_max(s, Ordering::AcqRel);
        }
        false
    }

    /// Invalidates every item stored so far when `at` is 0 or not in the
    /// future; otherwise every item stored at or before `at` (Unix
    /// seconds), once `at` has come.
    ///
    /// Returns the flush barrier of an immediate flush: items and
    /// tombstones with a version at or below it are dead. In replicated
    /// mode the barrier is a fresh version (the flush is ordered among the
    /// writes like one of them; [`Store::apply_flush`] replays it on the
    /// peer); standalone it is the last sequence handed out, as before. A
    /// delayed flush returns 0.
    pub fn flush_all(&self, at: u32, now: u32) -> u64 {
        let _g = self.flush_lock.lock().unwrap_or_else(|p| p.into_inner());
        let pending = self.flush_at.load(Ordering::Acquire);
        if pending != 0 && pending <= now {
            // The delayed flush being replaced has already happened: keep
            // it in force.
            self.flush_seq
                .fetch_max(self.pending_seq.load(Ordering::Acquire), Ordering::AcqRel);
            self.passed_at.fetch_max(pending, Ordering::AcqRel);
        }
        if at == 0 || at <= now {
            let reached = if self.replicated() {
                self.versions.next()
            } else {
                self.versions.current()
            };
            let barrier = self
                .flush_seq
                .fetch_max(reached, Ordering::AcqRel)
                .max(reached);
            self.flush_at.store(0, Ordering::Release);
            self.pending_seq.store(0, Ordering::Release);
            self.flush_passed.store(false, Ordering::Release);
            self.purge_tombstones(barrier);
            barrier
        } else {
            self.pending_seq
                .store(self.versions.current(), Ordering::Release);
            self.flush_passed.store(false, Ordering::Release);
            self.flush_at.store(at, Ordering::Release);
            0
        }
    }

    /// Drops the tombstones at or below a flush barrier, one shard at a
    /// time (replicated mode; nothing to do otherwise).
    pub(super) fn purge_tombstones(&self, barrier: u64) {
        if !self.replicated() {
            return;
        }
        for si in 0..self.shards.len() {
            self.with_shard(si, |sh| sh.tombs.purge_upto(barrier));
        }
    }
}
