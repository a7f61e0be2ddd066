//! The item store: keys to items under a memory limit.
//!
//! Knows nothing of the protocol, sockets or replication. Every call takes
//! `now` (Unix seconds) so expiry is testable without sleeping. Expiry times
//! are absolute Unix seconds, 0 meaning never.
//!
//! The API here is the one the slab/LRU implementation keeps: byte keys,
//! outcomes as enums, a CAS unique per item.
//!
//! Shape:
//! - The key hash ([`KeyHasher`], seeded once per process) picks one of S
//!   shards (a power of two, 64 by default). Each `Shard` (shard.rs) is a
//!   single-owner structure (`&mut self` methods) behind its own mutex,
//!   held only for one operation. No code path holds two shard locks.
//! - An item is one heap allocation: a 22-byte header, the key, the value
//!   (item.rs). A shard indexes its items through a slot arena: a chained
//!   hash table (doubling incrementally) and an intrusive doubly linked LRU
//!   list share the slots.
//! - Memory: every item is charged its memcached size ([`item_size`])
//!   against one global budget (an atomic). A write reserves its growth
//!   from the budget while it holds its shard's lock; when the budget is
//!   short it lets the lock go, evicts from shards' LRU tails one lock at a
//!   time (round robin) until the bytes are reserved, and tries again.
//! - Reads mark an item fetched and active (a bit in its header); the
//!   tail walk gives an active item a second chance at the head.
//! - Every write takes a store sequence from one atomic counter; it is the
//!   CAS unique when CAS is enabled. `flush_all` records the sequence
//!   reached, so items stored after it survive even in the same second.
//!   Delayed flushes compare the second of the last store.
//! - Dead items go lazily when met (lookups, the LRU tail) or through
//!   [`Store::reclaim_expired`], an incremental sweep for a maintenance
//!   thread.

mod hash;
mod item;
pub mod report;
mod shard;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

pub use hash::KeyHasher;
pub use item::item_size;
pub use report::{ClassReport, CrawlOutcome, DumpEntry, MemoryReport, ReassignOutcome};

/// Where a resumable walk over the store (`Store::dump`) stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DumpCursor {
    shard: usize,
    slot: usize,
    done: bool,
}

impl DumpCursor {
    pub fn is_done(&self) -> bool {
        self.done
    }
}
use item::Item;
use shard::{Shard, Validity};

/// Static configuration of a store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `-m` in bytes.
    pub memory_limit: u64,
    /// `-I` in bytes (largest item, header included).
    pub item_size_max: usize,
    /// false with `-M`: a full cache refuses stores instead of evicting.
    pub evictions: bool,
    /// false with `-C`: items carry no CAS unique (reported as 0).
    pub cas_enabled: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            memory_limit: 64 * 1024 * 1024,
            item_size_max: 1024 * 1024,
            evictions: true,
            cas_enabled: true,
        }
    }
}

/// A read-only view of one live item, valid while the callback runs.
#[derive(Debug, Clone, Copy)]
pub struct ItemView<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub flags: u32,
    /// CAS unique (0 when CAS is disabled).
    pub cas: u64,
    /// Absolute expiry, Unix seconds, 0 = never.
    pub exptime: u32,
}

/// How a store request treats an existing item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    /// Store only if the item's CAS unique equals this one.
    Cas(u64),
}

/// Outcome of a store request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    Stored {
        cas: u64,
    },
    NotStored,
    /// `cas` with a different unique.
    Exists,
    /// `cas` on a missing key.
    NotFound,
    /// The item would exceed the item size limit.
    TooLarge,
    /// No memory and evictions are disabled (or nothing can be evicted).
    OutOfMemory,
}

/// Why a lookup found nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    NotFound,
    /// The item was there but its expiry time had passed.
    Expired,
    /// The item was there but invalidated by `flush_all`.
    Flushed,
}

/// Outcome of incr/decr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOutcome {
    Value { value: u64, cas: u64 },
    NotFound,
    NonNumeric,
    OutOfMemory,
}

/// Gauges and counters the store maintains (summed over shards).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub curr_items: u64,
    pub total_items: u64,
    /// Bytes used by items (key + value + header), as memcached's `bytes`.
    pub bytes: u64,
    pub evictions: u64,
    pub reclaimed: u64,
    pub expired_unfetched: u64,
    pub evicted_unfetched: u64,
    /// Evicted although recently read (the second chance was used up).
    pub evicted_active: u64,
    pub limit_maxbytes: u64,
    /// Dead items removed by `reclaim_expired` (memcached's
    /// `crawler_reclaimed`).
    pub crawler_reclaimed: u64,
    /// log2 of the number of hash buckets over all shards.
    pub hash_power_level: u64,
    /// Bytes of hash bucket arrays over all shards.
    pub hash_bytes: u64,
    /// Shards whose bucket array is being doubled right now.
    pub hash_expanding_shards: u64,
}

/// Tuning knobs that are not memcached options (tests use them).
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Number of shards, rounded up to a power of two (at least 1).
    pub shards: usize,
    /// Initial hash buckets per shard (a power of two; tables double).
    pub initial_buckets: usize,
    /// Hash seed; `None` draws the per-process seed.
    pub seed: Option<(u64, u64)>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            shards: 64,
            initial_buckets: 1024,
            seed: None,
        }
    }
}

/// Largest key the store accepts (memcached's KEY_MAX_LENGTH).
pub const KEY_MAX: usize = 250;

/// Items evicted per shard lock hold at most.
const EVICT_BATCH: usize = 32;
/// Slots examined per shard lock hold by `reclaim_expired`.
const SWEEP_CHUNK: usize = 256;
/// Items a maintenance pass examines.
const MAINTAIN_BUDGET: usize = 4096;

/// A shard lock on its own cache lines, so that neighbouring locks do not
/// share one.
#[repr(align(128))]
struct Padded(Mutex<Shard>);

/// What one locked attempt at a write decided.
enum Step<T> {
    Done(T),
    /// The write needs this many more bytes than the budget has.
    Need(u64),
}

/// The store: S shards behind their own locks and one global memory
/// budget. No operation ever holds two shard locks.
pub struct Store {
    cfg: StoreConfig,
    hasher: KeyHasher,
    shards: Box<[Padded]>,
    shard_mask: usize,
    /// Bytes charged: live items plus reservations in flight.
    used: AtomicU64,
    limit: AtomicU64,
    /// Last store sequence handed out (the CAS unique when enabled).
    seq: AtomicU64,
    /// Items with a sequence at or below this were flushed.
    flush_seq: AtomicU64,
    /// A delayed flush not yet known to have passed (0 = none).
    flush_at: AtomicU32,
    /// The latest delayed flush known to have passed (0 = none).
    flushed_before: AtomicU32,
    flush_lock: Mutex<()>,
    evict_cursor: AtomicUsize,
    sweep_shard: AtomicUsize,
    /// Page mover mode (`slabs automove`).
    automove: std::sync::atomic::AtomicU8,
}

impl Store {
    pub fn new(cfg: StoreConfig) -> Store {
        Store::with_options(cfg, StoreOptions::default())
    }

    pub fn with_options(cfg: StoreConfig, opts: StoreOptions) -> Store {
        let n = opts.shards.clamp(1, 1 << 16).next_power_of_two();
        let hasher = match opts.seed {
            Some((a, b)) => KeyHasher::with_seed(a, b),
            None => KeyHasher::process(),
        };
        let shards = (0..n)
            .map(|_| {
                Padded(Mutex::new(Shard::new(
                    cfg.cas_enabled,
                    opts.initial_buckets,
                )))
            })
            .collect();
        Store {
            hasher,
            shards,
            shard_mask: n - 1,
            used: AtomicU64::new(0),
            limit: AtomicU64::new(cfg.memory_limit),
            seq: AtomicU64::new(0),
            flush_seq: AtomicU64::new(0),
            flush_at: AtomicU32::new(0),
            flushed_before: AtomicU32::new(0),
            flush_lock: Mutex::new(()),
            evict_cursor: AtomicUsize::new(0),
            sweep_shard: AtomicUsize::new(0),
            automove: std::sync::atomic::AtomicU8::new(1),
            cfg,
        }
    }

    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The hash of `key` and its shard; `None` for a key the store does
    /// not accept.
    #[inline]
    fn locate(&self, key: &[u8]) -> Option<(u32, usize)> {
        if key.is_empty() || key.len() > KEY_MAX {
            return None;
        }
        let h = self.hasher.hash(key);
        Some((h as u32, (h >> 40) as usize & self.shard_mask))
    }

    fn lock(&self, si: usize) -> MutexGuard<'_, Shard> {
        self.shards[si].0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on shard `si` under its lock, then gives what it freed back
    /// to the budget.
    #[inline]
    fn with_shard<R>(&self, si: usize, f: impl FnOnce(&mut Shard) -> R) -> R {
        let mut g = self.lock(si);
        let r = f(&mut g);
        let freed = g.take_freed();
        drop(g);
        if freed > 0 {
            self.used.fetch_sub(freed, Ordering::AcqRel);
        }
        r
    }

    #[inline]
    fn validity(&self, now: u32) -> Validity {
        let pending = self.flush_at.load(Ordering::Acquire);
        let before = self.flushed_before.load(Ordering::Acquire);
        let due = if pending != 0 && pending <= now {
            pending
        } else {
            0
        };
        Validity {
            now,
            flush_seq: self.flush_seq.load(Ordering::Acquire),
            flush_time: due.max(before),
        }
    }

    #[inline]
    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::AcqRel) + 1
    }

    #[inline]
    fn cas_of(&self, seq: u64) -> u64 {
        if self.cfg.cas_enabled {
            seq
        } else {
            0
        }
    }

    fn view<'a>(&self, it: &'a Item) -> ItemView<'a> {
        ItemView {
            key: it.key(),
            value: it.value(),
            flags: it.flags(),
            cas: self.cas_of(it.seq()),
            exptime: it.exptime(),
        }
    }

    /// Takes `n` bytes from the budget if they fit under the limit.
    #[inline]
    fn try_reserve(&self, n: u64) -> bool {
        if n == 0 {
            return true;
        }
        let limit = self.limit.load(Ordering::Acquire);
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                let t = u.checked_add(n)?;
                (t <= limit).then_some(t)
            })
            .is_ok()
    }

    fn release(&self, n: u64) {
        if n > 0 {
            self.used.fetch_sub(n, Ordering::AcqRel);
        }
    }

    /// Uses `extra` bytes: first from what this request already reserved,
    /// then from the budget. On failure returns how many are missing.
    #[inline]
    fn take(&self, extra: u64, reserved: &mut u64) -> Result<(), u64> {
        if *reserved >= extra {
            *reserved -= extra;
            return Ok(());
        }
        let short = extra - *reserved;
        if self.try_reserve(short) {
            *reserved = 0;
            Ok(())
        } else {
            Err(short)
        }
    }

    /// Reserves `n` bytes, evicting from shards' LRU tails (one shard lock
    /// at a time) until they fit. False when nothing more can be evicted.
    fn reserve_evicting(&self, n: u64, now: u32) -> bool {
        if n > self.limit.load(Ordering::Acquire) {
            return false;
        }
        loop {
            if self.try_reserve(n) {
                return true;
            }
            let want = (self.used.load(Ordering::Acquire) + n)
                .saturating_sub(self.limit.load(Ordering::Acquire))
                .max(1);
            if !self.evict_somewhere(want, now) {
                return false;
            }
        }
    }

    /// Evicts about `want` bytes from the next shards in turn; false when
    /// a whole round found nothing to evict.
    fn evict_somewhere(&self, want: u64, now: u32) -> bool {
        for _ in 0..self.shards.len() {
            let si = self.evict_cursor.fetch_add(1, Ordering::Relaxed) & self.shard_mask;
            let v = self.validity(now);
            let freed = self.with_shard(si, |sh| sh.evict(want, EVICT_BATCH, &v));
            if freed > 0 {
                return true;
            }
        }
        false
    }

    /// Looks `key` up; on a hit calls `f` with the item.
    pub fn get<R>(
        &self,
        key: &[u8],
        now: u32,
        f: impl FnOnce(ItemView<'_>) -> R,
    ) -> Result<R, Miss> {
        let (h, si) = self.locate(key).ok_or(Miss::NotFound)?;
        let v = self.validity(now);
        self.with_shard(si, |sh| {
            let idx = sh.lookup(key, h, &v)?;
            sh.mark_read(idx);
            Ok(f(self.view(sh.item(idx))))
        })
    }

    /// Sets a new expiry on a live item and calls `f` with it (gat/gats).
    pub fn get_and_touch<R>(
        &self,
        key: &[u8],
        exptime: u32,
        now: u32,
        f: impl FnOnce(ItemView<'_>) -> R,
    ) -> Result<R, Miss> {
        let (h, si) = self.locate(key).ok_or(Miss::NotFound)?;
        let v = self.validity(now);
        self.with_shard(si, |sh| {
            let idx = sh.lookup(key, h, &v)?;
            sh.mark_read(idx);
            sh.item_mut(idx).set_exptime(exptime);
            Ok(f(self.view(sh.item(idx))))
        })
    }

    /// Sets a new expiry on a live item.
    pub fn touch(&self, key: &[u8], exptime: u32, now: u32) -> Result<(), Miss> {
        self.get_and_touch(key, exptime, now, |_| ())
    }

    pub fn store(
        &self,
        mode: StoreMode,
        key: &[u8],
        flags: u32,
        exptime: u32,
        data: &[u8],
        now: u32,
    ) -> StoreOutcome {
        let Some((h, si)) = self.locate(key) else {
            return StoreOutcome::NotStored;
        };
        if item_size(key.len(), data.len(), flags, self.cfg.cas_enabled)
            > self.cfg.item_size_max as u64
        {
            if mode == StoreMode::Set {
                self.unlink_key(key, h, si);
            }
            return StoreOutcome::TooLarge;
        }
        let req = Req {
            mode,
            key,
            h,
            flags,
            exptime,
            data,
        };
        let mut reserved = 0;
        let mut tries = 0;
        let outcome = loop {
            let v = self.validity(now);
            let step = self.with_shard(si, |sh| self.store_locked(sh, &req, &v, &mut reserved));
            match step {
                Step::Done(o) => break o,
                Step::Need(n) => {
                    tries += 1;
                    if !self.cfg.evictions || tries > 8 || !self.reserve_evicting(n, now) {
                        match mode {
                            // memcached drops the old value of a `set` it
                            // could not store.
                            StoreMode::Set => self.unlink_key(key, h, si),
                            // memcached allocates the appended data first
                            // (small, it usually fits) and answers
                            // NOT_STORED when the combined item does not.
                            StoreMode::Append | StoreMode::Prepend => {
                                break StoreOutcome::NotStored
                            }
                            _ => {}
                        }
                        break StoreOutcome::OutOfMemory;
                    }
                    reserved += n;
                }
            }
        };
        self.release(reserved);
        outcome
    }

    fn unlink_key(&self, key: &[u8], h: u32, si: usize) {
        self.with_shard(si, |sh| {
            if let Some(idx) = sh.find(key, h) {
                sh.unlink(idx);
            }
        });
    }

    fn store_locked(
        &self,
        sh: &mut Shard,
        r: &Req<'_>,
        v: &Validity,
        reserved: &mut u64,
    ) -> Step<StoreOutcome> {
        let found = sh.lookup(r.key, r.h, v).ok();
        match (r.mode, found) {
            (StoreMode::Add, Some(idx)) => {
                // memcached refreshes the LRU position of the item an `add`
                // ran into.
                sh.bump(idx);
                return Step::Done(StoreOutcome::NotStored);
            }
            (StoreMode::Replace | StoreMode::Append | StoreMode::Prepend, None) => {
                return Step::Done(StoreOutcome::NotStored)
            }
            (StoreMode::Cas(_), None) => return Step::Done(StoreOutcome::NotFound),
            (StoreMode::Cas(unique), Some(idx))
                if !self.cfg.cas_enabled || sh.item(idx).seq() != unique =>
            {
                return Step::Done(StoreOutcome::Exists);
            }
            _ => {}
        }
        let cas_on = self.cfg.cas_enabled;
        let (flags, exptime, vlen) = match (r.mode, found) {
            (StoreMode::Append | StoreMode::Prepend, Some(idx)) => {
                let old = sh.item(idx);
                (old.flags(), old.exptime(), old.value().len() + r.data.len())
            }
            _ => (r.flags, r.exptime, r.data.len()),
        };
        let new_size = item_size(r.key.len(), vlen, flags, cas_on);
        if new_size > self.cfg.item_size_max as u64 {
            // Only append/prepend get here; memcached answers NOT_STORED
            // when the combined item is too large.
            return Step::Done(StoreOutcome::NotStored);
        }
        let old_size = found.map(|idx| sh.item(idx).size(cas_on)).unwrap_or(0);
        if let Err(short) = self.take(new_size.saturating_sub(old_size), reserved) {
            return Step::Need(short);
        }
        let seq = self.next_seq();
        let item = match (r.mode, found) {
            (StoreMode::Append, Some(idx)) => Item::new(
                seq,
                exptime,
                v.now,
                flags,
                r.key,
                &[sh.item(idx).value(), r.data],
            ),
            (StoreMode::Prepend, Some(idx)) => Item::new(
                seq,
                exptime,
                v.now,
                flags,
                r.key,
                &[r.data, sh.item(idx).value()],
            ),
            _ => Item::new(seq, exptime, v.now, flags, r.key, &[r.data]),
        };
        match found {
            Some(idx) => sh.replace(idx, item),
            None => {
                sh.link(item, r.h);
            }
        }
        Step::Done(StoreOutcome::Stored {
            cas: self.cas_of(seq),
        })
    }

    pub fn delete(&self, key: &[u8], now: u32) -> Result<(), Miss> {
        let (h, si) = self.locate(key).ok_or(Miss::NotFound)?;
        let v = self.validity(now);
        self.with_shard(si, |sh| {
            let idx = sh.lookup(key, h, &v)?;
            sh.unlink(idx);
            Ok(())
        })
    }

    pub fn arith(&self, key: &[u8], incr: bool, delta: u64, now: u32) -> ArithOutcome {
        let Some((h, si)) = self.locate(key) else {
            return ArithOutcome::NotFound;
        };
        let mut reserved = 0;
        let mut tries = 0;
        let outcome = loop {
            let v = self.validity(now);
            let step = self.with_shard(si, |sh| {
                self.arith_locked(sh, key, h, incr, delta, &v, &mut reserved)
            });
            match step {
                Step::Done(o) => break o,
                Step::Need(n) => {
                    tries += 1;
                    if !self.cfg.evictions || tries > 8 || !self.reserve_evicting(n, now) {
                        break ArithOutcome::OutOfMemory;
                    }
                    reserved += n;
                }
            }
        };
        self.release(reserved);
        outcome
    }

    #[allow(clippy::too_many_arguments)]
    fn arith_locked(
        &self,
        sh: &mut Shard,
        key: &[u8],
        h: u32,
        incr: bool,
        delta: u64,
        v: &Validity,
        reserved: &mut u64,
    ) -> Step<ArithOutcome> {
        let Ok(idx) = sh.lookup(key, h, v) else {
            return Step::Done(ArithOutcome::NotFound);
        };
        let old = sh.item(idx);
        let Some(current) = parse_counter(old.value()) else {
            return Step::Done(ArithOutcome::NonNumeric);
        };
        let value = if incr {
            current.wrapping_add(delta)
        } else {
            current.saturating_sub(delta)
        };
        let mut buf = [0u8; 20];
        let digits = format_u64(value, &mut buf);
        let old_len = old.value().len();
        if digits.len() <= old_len {
            // memcached rewrites the value in place, space padded, when the
            // new number fits in the old length.
            let seq = self.next_seq();
            let it = sh.item_mut(idx);
            let val = it.value_mut();
            val[..digits.len()].copy_from_slice(digits);
            val[digits.len()..].fill(b' ');
            it.set_seq(seq);
            it.set_time(v.now);
            sh.bump(idx);
            return Step::Done(ArithOutcome::Value {
                value,
                cas: self.cas_of(seq),
            });
        }
        let cas_on = self.cfg.cas_enabled;
        let (flags, exptime) = (old.flags(), old.exptime());
        let old_size = old.size(cas_on);
        let new_size = item_size(key.len(), digits.len(), flags, cas_on);
        if let Err(short) = self.take(new_size.saturating_sub(old_size), reserved) {
            return Step::Need(short);
        }
        let seq = self.next_seq();
        sh.replace(idx, Item::new(seq, exptime, v.now, flags, key, &[digits]));
        Step::Done(ArithOutcome::Value {
            value,
            cas: self.cas_of(seq),
        })
    }

    /// Invalidates every item stored so far when `at` is 0 or not in the
    /// future; otherwise every item stored at or before `at` (Unix
    /// seconds), once `at` has come.
    pub fn flush_all(&self, at: u32, now: u32) {
        let _g = self.flush_lock.lock().unwrap_or_else(|p| p.into_inner());
        let pending = self.flush_at.load(Ordering::Acquire);
        if pending != 0 && pending <= now {
            // The delayed flush being replaced has already happened: keep
            // it in force.
            self.flushed_before.fetch_max(pending, Ordering::AcqRel);
        }
        if at == 0 || at <= now {
            self.flush_seq
                .fetch_max(self.seq.load(Ordering::Acquire), Ordering::AcqRel);
            self.flush_at.store(0, Ordering::Release);
        } else {
            self.flush_at.store(at, Ordering::Release);
        }
    }

    /// Changes the memory limit at run time (`cache_memlimit`); a smaller
    /// limit evicts down to it at once.
    pub fn set_memory_limit(&self, bytes: u64) {
        self.limit.store(bytes, Ordering::Release);
        self.shrink_to_limit(crate_now());
    }

    fn shrink_to_limit(&self, now: u32) {
        loop {
            let over = self
                .used
                .load(Ordering::Acquire)
                .saturating_sub(self.limit.load(Ordering::Acquire));
            if over == 0 || !self.evict_somewhere(over, now) {
                return;
            }
        }
    }

    /// Removes up to a bounded number of dead (expired or flushed) items,
    /// examining about `budget` slots from where the previous call stopped.
    /// Takes one shard lock at a time. Returns the number removed.
    pub fn reclaim_expired(&self, now: u32, budget: usize) -> usize {
        let mut left = budget;
        let mut removed = 0;
        let mut wraps = 0;
        while left > 0 && wraps <= self.shards.len() {
            let raw = self.sweep_shard.load(Ordering::Relaxed);
            let si = raw & self.shard_mask;
            let v = self.validity(now);
            let (examined, rm, wrapped) =
                self.with_shard(si, |sh| sh.sweep(left.min(SWEEP_CHUNK), &v));
            left = left.saturating_sub(examined);
            removed += rm;
            if wrapped {
                wraps += 1;
                let _ = self.sweep_shard.compare_exchange(
                    raw,
                    raw.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        }
        removed
    }

    /// Walks the live items in resumable steps: calls `f` for each live
    /// item of the next `budget` slots after `cursor`, holding one shard
    /// lock at a time, and advances the cursor. Items stored or deleted
    /// while a walk is under way may or may not be seen. Returns true when
    /// the walk has finished.
    pub fn dump(
        &self,
        cursor: &mut DumpCursor,
        budget: usize,
        now: u32,
        mut f: impl FnMut(DumpEntry<'_>),
    ) -> bool {
        let v = self.validity(now);
        let cas_enabled = self.cfg.cas_enabled;
        let mut left = budget.max(1);
        while !cursor.done && left > 0 {
            if cursor.shard >= self.shards.len() {
                cursor.done = true;
                break;
            }
            let step = left.min(SWEEP_CHUNK);
            let next = self
                .lock(cursor.shard)
                .dump_from(cursor.slot, step, &v, &mut |it| {
                    f(DumpEntry {
                        key: it.key(),
                        exptime: it.exptime(),
                        last_access: it.time(),
                        cas: if cas_enabled { it.seq() } else { 0 },
                        fetched: it.bits() & item::FETCHED != 0,
                        class: 0,
                        value_len: it.value().len(),
                        size: it.size(cas_enabled) as usize,
                    })
                });
            left -= step;
            match next {
                Some(slot) => cursor.slot = slot,
                None => {
                    cursor.shard += 1;
                    cursor.slot = 0;
                }
            }
        }
        cursor.done
    }

    /// The memory picture for `stats slabs` / `stats items`. This store
    /// has no slab classes yet, so it reports none.
    pub fn memory_report(&self) -> MemoryReport {
        MemoryReport::default()
    }

    /// `slabs reassign <src> <dst>`: this store has no slab classes yet.
    pub fn slabs_reassign(&self, _src: i64, _dst: i64) -> ReassignOutcome {
        ReassignOutcome::BadClass
    }

    /// `slabs automove 0|1|2` (and `-o slab_automove`): the mode the page
    /// mover runs in. This store has no pages yet; the mode is kept.
    pub fn set_automove(&self, mode: u8) {
        self.automove.store(mode, Ordering::Relaxed);
    }

    pub fn automove(&self) -> u8 {
        self.automove.load(Ordering::Relaxed)
    }

    /// `lru_crawler crawl`: queue a crawl of the given classes (None = all).
    /// This store has no classes yet: every crawl is of everything.
    pub fn crawl(&self, classes: Option<&[u32]>) -> CrawlOutcome {
        match classes {
            Some(c) if c.contains(&0) => CrawlOutcome::BadClass,
            _ => CrawlOutcome::Ok,
        }
    }

    /// Background upkeep, called by the maintenance thread a few times a
    /// second: expiry sweep (and, with slab classes, crawls, LRU upkeep and
    /// page moves). Returns the number of items reclaimed.
    pub fn maintain(&self, now: u32) -> usize {
        self.reclaim_expired(now, MAINTAIN_BUDGET)
    }

    /// Zeroes the counters (`stats reset`): total_items, evictions,
    /// reclaimed and the *_unfetched counts. Gauges (curr_items, bytes)
    /// stay.
    pub fn reset_counters(&self) {
        for si in 0..self.shards.len() {
            self.lock(si).counters = shard::Counters::default();
        }
    }

    pub fn stats(&self) -> StoreStats {
        let mut s = StoreStats {
            limit_maxbytes: self.limit.load(Ordering::Acquire),
            ..Default::default()
        };
        let mut buckets = 0u64;
        for si in 0..self.shards.len() {
            let g = self.lock(si);
            let c = g.counters;
            s.curr_items += g.len() as u64;
            s.bytes += g.bytes();
            s.total_items += c.total_items;
            s.evictions += c.evictions;
            s.reclaimed += c.reclaimed;
            s.expired_unfetched += c.expired_unfetched;
            s.evicted_unfetched += c.evicted_unfetched;
            s.evicted_active += c.evicted_active;
            s.crawler_reclaimed += c.crawler_reclaimed;
            buckets += g.bucket_count() as u64;
            s.hash_expanding_shards += g.is_expanding() as u64;
        }
        s.hash_power_level = 63 - buckets.max(1).leading_zeros() as u64;
        s.hash_bytes = buckets * 4;
        s
    }

    /// Heap bytes the store's own structures hold (items, slot arenas,
    /// bucket arrays; allocator overhead not included).
    pub fn heap_bytes(&self) -> u64 {
        (0..self.shards.len())
            .map(|si| self.lock(si).heap_bytes() as u64)
            .sum()
    }

    /// Bytes charged against the limit right now (items plus in-flight
    /// reservations).
    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// Checks every shard's structure and that the budget equals the sum
    /// of item sizes (call when no operation is in flight).
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut bytes = 0;
        for si in 0..self.shards.len() {
            let g = self.lock(si);
            g.check().map_err(|e| format!("shard {si}: {e}"))?;
            bytes += g.bytes();
        }
        let used = self.used.load(Ordering::Acquire);
        if used != bytes {
            return Err(format!("budget used {used} but items sum to {bytes}"));
        }
        if used > self.limit.load(Ordering::Acquire) {
            return Err(format!("used {used} over the limit"));
        }
        Ok(())
    }
}

/// A store request's fixed part.
struct Req<'a> {
    mode: StoreMode,
    key: &'a [u8],
    h: u32,
    flags: u32,
    exptime: u32,
    data: &'a [u8],
}

/// The wall clock in Unix seconds, for the few calls that take no `now`.
fn crate_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

/// Writes `v` in decimal into `buf`; returns the digits.
fn format_u64(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Reads a counter the way memcached does (strtoull plus its checks):
/// leading whitespace, an optional sign, decimal digits that fit in 64
/// bits, then the end of the value, a whitespace byte or a NUL. A negative
/// number is refused unless it wraps to a value below 2^63, as strtoull
/// does. An empty value is not a number.
pub fn parse_counter(value: &[u8]) -> Option<u64> {
    let mut i = 0;
    while i < value.len() && is_c_space(value[i]) {
        i += 1;
    }
    let neg = match value.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let start = i;
    let mut n: u64 = 0;
    while let Some(&b) = value.get(i) {
        if !b.is_ascii_digit() {
            break;
        }
        n = n.checked_mul(10)?.checked_add((b - b'0') as u64)?;
        i += 1;
    }
    if i == start {
        return None;
    }
    match value.get(i) {
        None => {}
        Some(&b) if b == 0 || is_c_space(b) => {}
        Some(_) => return None,
    }
    let v = if neg { n.wrapping_neg() } else { n };
    if (v as i64) < 0 && neg {
        return None;
    }
    Some(v)
}
