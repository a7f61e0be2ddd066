//! The item store: keys to items inside slab pages under a memory limit.
//!
//! Knows nothing of the protocol, sockets or replication. Every call takes
//! `now` (Unix seconds) so expiry is testable without sleeping. Expiry times
//! are absolute Unix seconds, 0 meaning never.
//!
//! Shape (memcached's memory model):
//! - Memory is `-m` worth of pages (1 MB by default) from one global budget
//!   (slabs.rs). The number of pages never exceeds the limit. A page
//!   belongs to one slab class and is cut into its chunks; the classes are
//!   memcached's (`-n`, `-f`, `slab_chunk_max`). An item lives in one chunk
//!   (header, key, value; item.rs); an item larger than the largest chunk
//!   is chained over several.
//! - The key hash ([`KeyHasher`]) picks one of S index shards (shard.rs),
//!   each behind its own mutex, held only for one operation. A shard has a
//!   hash table over its items (doubling incrementally) and one LRU list
//!   per class. Lock order: shard, then class allocator, then page pool;
//!   no code path holds two shard locks.
//! - Reads mark an item fetched and active (a bit in its header, under the
//!   shard lock they already hold); the tail walk gives an active item a
//!   second chance at the head.
//! - A write that finds no free chunk in its class takes a page from the
//!   pool; failing that it evicts from the LRU tail of its class (the
//!   shard whose tail is oldest: in place when that is its own shard,
//!   otherwise it lets its lock go, evicts there and comes back with the
//!   chunk); a class with no items at all takes a page from another class
//!   (slab reassignment, done inline).
//! - Every write takes a version (store sequence) from one atomic
//!   (version.rs); it is kept in the item header even with `-C` and is the
//!   CAS unique when CAS is enabled. Standalone (no node id) versions count
//!   1, 2, 3... as memcached's CAS. With a node id (a replicated pair) a
//!   version is a hybrid logical clock, `(ms << 14 | logical) << 8 | node`:
//!   strictly increasing per node, unique across the pair, roughly wall
//!   clock ordered, and pushed past every version received
//!   ([`Store::observe`]); touch / gat / `mg T` then also take a new one,
//!   as their change must win on the peer. `flush_all` records the version
//!   reached (replicated: a fresh one) as the flush barrier, so items
//!   stored after it survive even in the same second; items and
//!   tombstones at or below it are dead. A delayed flush records the last
//!   version stored at or before its time.
//! - Tombstones (replicated mode only; tomb.rs): a local delete, and a
//!   `set` that fails and drops the old value, leave the key's tombstone
//!   with a fresh version in the key's shard, under the same lock as its
//!   items; a write of the key drops it. They keep an older write from the
//!   peer from bringing a deleted key back, last `tombstone_ttl` seconds and
//!   stay within `tombstone_max_bytes` (oldest dropped first, counted).
//!   Clients never see them (gets miss, `add` succeeds, not in curr_items
//!   or dumps).
//! - Replication (replica.rs): [`Store::export`] reads a key's item or
//!   tombstone without touching it; [`Store::apply_item`],
//!   [`Store::apply_delete`] and [`Store::apply_flush`] apply the peer's
//!   state, last writer (highest version) wins, check and write under one
//!   shard lock, so any order of the same records converges;
//!   [`Store::walk`] visits every item and tombstone present throughout
//!   (a reverse-binary cursor per shard that stays exact while tables
//!   double, then tombstones by id), one shard lock at a time.
//! - Dead items go lazily when met (lookups, the LRU tail) or through the
//!   crawler ([`Store::maintain`], [`Store::reclaim_expired`]), which also
//!   runs the page mover (`slabs reassign`, automove).

mod hash;
mod item;
mod replica;
pub mod report;
mod shard;
mod slabs;
#[cfg(test)]
mod tests;
mod tomb;
pub mod version;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

pub use hash::KeyHasher;
pub use item::item_size;
pub use replica::{ApplyOutcome, Exported, WalkCursor};
pub use report::{ClassReport, CrawlOutcome, DumpEntry, MemoryReport, ReassignOutcome};
pub use slabs::class_sizes;

use item::{footprint, LINK};
use shard::{ClassLru, Shard, Tails, Validity};
use slabs::{Ref, Slabs};
use tomb::Tombs;
use version::Versions;

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

/// Static configuration of a store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `-m` in bytes (0: no limit, as memcached's allocator treats it).
    pub memory_limit: u64,
    /// `-I` in bytes (largest item, header included).
    pub item_size_max: usize,
    /// false with `-M`: a full cache refuses stores instead of evicting.
    pub evictions: bool,
    /// false with `-C`: items carry no CAS unique (reported as 0).
    pub cas_enabled: bool,
    /// `-f`: chunk size growth factor between classes.
    pub growth_factor: f64,
    /// `-n`: minimum space for key + value + flags in the smallest class.
    pub chunk_size: usize,
    /// `-o slab_chunk_max`: the largest chunk (bigger items are chained).
    pub slab_chunk_max: usize,
    /// Page size (memcached 1.6: 1 MB whatever `-I` is). Tests use small
    /// pages.
    pub slab_page_size: usize,
    /// `-o slab_sizes`: explicit chunk sizes instead of the series.
    pub slab_sizes: Option<Vec<u32>>,
    /// This node's id in a replicated pair: versions become a hybrid
    /// logical clock tagged with it and deletes leave tombstones. None (a
    /// standalone server): versions count 1, 2, 3... as memcached's CAS.
    pub node_id: Option<u8>,
    /// Seconds a tombstone is kept (replicated mode).
    pub tombstone_ttl: u32,
    /// Bytes all tombstones may take (key + [`TOMBSTONE_OVERHEAD`] each);
    /// past it the oldest go early.
    pub tombstone_max_bytes: u64,
}

/// Bytes a tombstone is charged besides its key.
pub const TOMBSTONE_OVERHEAD: u64 = tomb::TOMB_OVERHEAD;

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            memory_limit: 64 * 1024 * 1024,
            item_size_max: 1024 * 1024,
            evictions: true,
            cas_enabled: true,
            growth_factor: 1.25,
            chunk_size: 48,
            slab_chunk_max: 512 * 1024,
            slab_page_size: 1024 * 1024,
            slab_sizes: None,
            node_id: None,
            tombstone_ttl: 3600,
            tombstone_max_bytes: 16 * 1024 * 1024,
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

/// Per-item state the meta protocol reads, as it was before the current
/// access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaState {
    /// Read at least once since stored (`h`).
    pub fetched: bool,
    /// Last access, Unix seconds (`l` reports `now` minus this).
    pub last_access: u32,
    /// Invalidated by `md I` / `ms I` (`X`).
    pub stale: bool,
    /// A win token was already handed out (`Z`).
    pub win_sent: bool,
    /// Stored through a base64 (`b`) key.
    pub key_binary: bool,
    /// Slab class and accounted size (`me`).
    pub class: u32,
    pub size: u64,
}

/// Marks [`Store::meta_mark`] sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetaMark {
    pub stale: bool,
    pub win_sent: bool,
    pub key_binary: bool,
    /// Count a read (fetched bit, access time), as a vivifying `mg` does.
    pub read: bool,
}

/// What a meta read changes on the item it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetaUpdate {
    /// New absolute expiry (`T`).
    pub exptime: Option<u32>,
    /// Hand out the win token: set the win-sent mark.
    pub win: bool,
    /// Count the access (fetched bit, access time, LRU activity); false
    /// for `u` and `me`.
    pub bump: bool,
}

/// Outcome of a meta delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaDeleteOutcome {
    Deleted,
    /// Marked stale instead (`md I`).
    Invalidated,
    NotFound,
    /// The compare CAS (`C`) did not match.
    Exists,
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
    /// Dead items removed by the crawler (`crawler_reclaimed`).
    pub crawler_reclaimed: u64,
    /// log2 of the number of hash buckets over all shards.
    pub hash_power_level: u64,
    /// Bytes of hash bucket arrays over all shards.
    pub hash_bytes: u64,
    /// Shards whose bucket array is being doubled right now.
    pub hash_expanding_shards: u64,
    /// Stores refused for lack of memory.
    pub outofmemory: u64,
    /// Bytes of pages handed out (`total_malloced`).
    pub total_malloced: u64,
    pub slabs_moved: u64,
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
    /// The wall clock in Unix milliseconds, for hybrid clock versions.
    pub clock_ms: fn() -> u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            shards: 64,
            initial_buckets: 1024,
            seed: None,
            clock_ms: version::system_clock_ms,
        }
    }
}

/// Largest key the store accepts (memcached's KEY_MAX_LENGTH).
pub const KEY_MAX: usize = 250;

/// Buckets examined per shard lock hold by the crawler.
const SWEEP_CHUNK: usize = 256;
/// Buckets a maintenance pass examines.
const MAINTAIN_BUDGET: usize = 4096;
/// Shards a mover step visits per maintenance pass.
const MOVER_SHARDS_PER_STEP: usize = 16;
/// An evicting class takes a page from a class whose LRU tail is older
/// than its own by this ratio (memcached's slab_automove_ratio).
const AUTOMOVE_AGE_RATIO: f64 = 0.8;

/// A shard lock on its own cache lines.
#[repr(align(128))]
struct Padded(Mutex<Shard>);

/// What one locked attempt at a write decided.
enum Step<T> {
    Done(T),
    /// The write needs a chunk of this class that it could not get.
    Need(usize),
}

/// A page on its way from one class to another (`slabs reassign`).
#[derive(Debug, Clone, Copy)]
struct Move {
    src: usize,
    /// 0 = the global page pool.
    dst: usize,
    page: Option<u32>,
    next_shard: usize,
    passes: u32,
}

#[derive(Default)]
struct Mover {
    active: Option<Move>,
    /// Pages whose inline move could not finish (chunks in flight).
    unfinished: Vec<Move>,
    rr: usize,
}

#[derive(Default)]
struct AutoMove {
    last_tick: u32,
    last_evicted: Vec<u64>,
}

#[derive(Default)]
struct Crawl {
    /// Classes asked for by `crawl` (bit per class id), 0 = none pending.
    mask: u64,
    /// Shards left in the requested crawl.
    shard: usize,
    running: bool,
}

#[derive(Default)]
struct MoveStats {
    slabs_moved: AtomicU64,
    rescues: AtomicU64,
    evictions_nomem: AtomicU64,
    busy_items: AtomicU64,
    lru_crawler_starts: AtomicU64,
}

/// The store: index shards behind their own locks, slab classes with
/// their allocators, one page budget.
pub struct Store {
    cfg: StoreConfig,
    hasher: KeyHasher,
    slabs: Arc<Slabs>,
    tails: Arc<Tails>,
    shards: Box<[Padded]>,
    shard_mask: usize,
    limit: AtomicU64,
    /// Item versions (store sequences): the CAS unique when enabled.
    versions: Versions,
    /// Items (and tombstones) with a version at or below this were
    /// flushed.
    flush_seq: AtomicU64,
    /// A delayed flush (0 = none) and the last sequence stored at or
    /// before its time.
    flush_at: AtomicU32,
    pending_seq: AtomicU64,
    /// The delayed flush's time has been seen to pass.
    flush_passed: AtomicBool,
    /// The latest delayed flush replaced after its time had come: writes
    /// with a clock at or before it are dead at birth.
    passed_at: AtomicU32,
    flush_lock: Mutex<()>,
    evict_cursor: AtomicUsize,
    sweep_shard: AtomicUsize,
    automove: AtomicU8,
    mover: Mutex<Mover>,
    moving: AtomicBool,
    am: Mutex<AutoMove>,
    /// The class whose LRU tail is oldest among those with a spare page,
    /// and that tail's time: `class << 32 | time`, 0 = none. Refreshed
    /// once a second and after each page it gives.
    donor: AtomicU64,
    crawl: Mutex<Crawl>,
    ms: MoveStats,
}

impl Store {
    pub fn new(cfg: StoreConfig) -> Store {
        Store::with_options(cfg, StoreOptions::default())
    }

    pub fn with_options(mut cfg: StoreConfig, opts: StoreOptions) -> Store {
        let n = opts.shards.clamp(1, 1 << 16).next_power_of_two();
        let hasher = match opts.seed {
            Some((a, b)) => KeyHasher::with_seed(a, b),
            None => KeyHasher::process(),
        };
        cfg.slab_page_size = cfg.slab_page_size.max(384) / 8 * 8;
        cfg.slab_chunk_max = cfg.slab_chunk_max.clamp(304, cfg.slab_page_size) / 8 * 8;
        let sizes = class_sizes(
            cfg.chunk_size.max(1),
            if cfg.growth_factor > 1.0 {
                cfg.growth_factor
            } else {
                1.25
            },
            cfg.slab_chunk_max,
            cfg.slab_sizes.as_deref(),
        );
        let slabs = Arc::new(Slabs::new(&sizes, cfg.slab_page_size, cfg.memory_limit));
        let tails = Arc::new(Tails::new(slabs.classes.len(), n));
        let tomb_cap = cfg.tombstone_max_bytes / n as u64;
        let shards = (0..n)
            .map(|i| {
                Padded(Mutex::new(Shard::new(
                    i,
                    Arc::clone(&slabs),
                    Arc::clone(&tails),
                    hasher,
                    cfg.cas_enabled,
                    opts.initial_buckets,
                    Tombs::new(cfg.tombstone_ttl, tomb_cap),
                )))
            })
            .collect();
        Store {
            hasher,
            slabs,
            tails,
            shards,
            shard_mask: n - 1,
            limit: AtomicU64::new(cfg.memory_limit),
            versions: Versions::new(cfg.node_id, opts.clock_ms),
            flush_seq: AtomicU64::new(0),
            flush_at: AtomicU32::new(0),
            pending_seq: AtomicU64::new(0),
            flush_passed: AtomicBool::new(false),
            passed_at: AtomicU32::new(0),
            flush_lock: Mutex::new(()),
            evict_cursor: AtomicUsize::new(0),
            sweep_shard: AtomicUsize::new(0),
            automove: AtomicU8::new(1),
            mover: Mutex::new(Mover::default()),
            moving: AtomicBool::new(false),
            am: Mutex::new(AutoMove::default()),
            donor: AtomicU64::new(0),
            crawl: Mutex::new(Crawl::default()),
            ms: MoveStats::default(),
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

    /// The slab classes: (id, chunk size, chunks per page), as memcached
    /// prints them with `-vv`.
    pub fn class_table(&self) -> Vec<(u32, u32, u32)> {
        self.slabs
            .classes
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, c)| (i as u32, c.size, c.perslab))
            .collect()
    }

    #[inline]
    fn locate(&self, key: &[u8]) -> Option<(u32, usize)> {
        if key.is_empty() || key.len() > KEY_MAX {
            return None;
        }
        let h = self.hasher.hash(key);
        Some((h as u32, (h >> 40) as usize & self.shard_mask))
    }

    fn shard_of(&self, key: &[u8]) -> usize {
        (self.hasher.hash(key) >> 40) as usize & self.shard_mask
    }

    fn lock(&self, si: usize) -> MutexGuard<'_, Shard> {
        self.shards[si].0.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[inline]
    fn with_shard<R>(&self, si: usize, f: impl FnOnce(&mut Shard) -> R) -> R {
        let mut g = self.lock(si);
        f(&mut g)
    }

    #[inline]
    fn validity(&self, now: u32) -> Validity {
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
    fn next_seq(&self, now: u32) -> (u64, bool) {
        let s = self.versions.next();
        (s, self.dead_at_birth(s, now))
    }

    /// Whether a write of version `s` at `now` is dead at birth (a
    /// delayed flush that has passed covers `now`); a write while a
    /// delayed flush is pending joins the versions it will kill.
    #[inline]
    fn dead_at_birth(&self, s: u64, now: u32) -> bool {
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

    /// True when versions are a hybrid clock (a node id is configured):
    /// deletes leave tombstones, touches take new versions.
    #[inline]
    fn replicated(&self) -> bool {
        self.versions.is_hlc()
    }

    /// Advances the version clock to at least `version`, so every later
    /// local version is greater.
    pub fn observe(&self, version: u64) {
        self.versions.observe(version);
    }

    /// This store's node id in versions (None: standalone counter).
    pub fn node_id(&self) -> Option<u8> {
        self.versions.node()
    }

    /// Takes another node id (replicated mode): for a derived id that
    /// turned out to be the peer's too.
    pub fn set_node_id(&self, n: u8) {
        self.versions.set_node(n);
    }

    /// The last version handed out or observed (0 before any).
    pub fn current_version(&self) -> u64 {
        self.versions.current()
    }

    /// Records a local delete of `key` (replicated mode): a tombstone with
    /// a fresh version.
    fn tombstone_local(&self, sh: &mut Shard, key: &[u8], now: u32) {
        if self.replicated() {
            let s = self.versions.next();
            sh.tombs.raise(key, s, now);
        }
    }

    #[inline]
    fn cas_of(&self, seq: u64) -> u64 {
        if self.cfg.cas_enabled {
            seq
        } else {
            0
        }
    }

    /// The shard whose LRU tail of class `c` is oldest (ties go round
    /// robin), with that time; None when no shard has an item of `c`.
    fn oldest_tail(&self, c: usize) -> Option<(usize, u32)> {
        let n = self.shards.len();
        let start = self.evict_cursor.fetch_add(1, Ordering::Relaxed);
        let mut best: Option<(usize, u32)> = None;
        for k in 0..n {
            let si = (start + k) & self.shard_mask;
            let t = self.tails.get(c, si);
            if t != u32::MAX && best.is_none_or(|(_, bt)| t < bt) {
                best = Some((si, t));
            }
        }
        best
    }

    /// One chunk of class `c` for a write under shard `si`'s lock: from
    /// the request's reserve, the allocator, or by evicting this shard's
    /// tail when it is the oldest. Err(c) when the caller must make room
    /// without the lock.
    fn get_chunk(
        &self,
        sh: &mut Shard,
        si: usize,
        c: usize,
        v: &Validity,
        res: &mut Vec<Ref>,
    ) -> Result<Ref, usize> {
        if let Some(pos) = res.iter().position(|&r| self.slabs.class_of(r) == c) {
            return Ok(res.swap_remove(pos));
        }
        if let Some(r) = self.slabs.alloc(c, true) {
            return Ok(r);
        }
        if !self.cfg.evictions {
            return Err(c);
        }
        if self.donor_for(c, v.now).is_some() {
            return Err(c);
        }
        if let (Some(mine), Some((_, oldest))) = (sh.tail_time(c), self.oldest_tail(c)) {
            if mine <= oldest {
                if let Some(r) = sh.evict_one(c, v) {
                    return Ok(r);
                }
            }
        }
        let _ = si;
        Err(c)
    }

    /// Chunks for an item of `fp` bytes (`klen`/`vlen`/`flags` for the
    /// chained layout): head first.
    fn get_chunks(
        &self,
        sh: &mut Shard,
        si: usize,
        (klen, vlen, flags): (usize, usize, u32),
        v: &Validity,
        res: &mut Vec<Ref>,
    ) -> Result<(Ref, Vec<Ref>), usize> {
        let fp = footprint(klen, vlen, flags);
        let max = self.slabs.chunk_max();
        let mut got: Vec<Ref> = Vec::new();
        let need =
            |this: &Store, sh: &mut Shard, c: usize, got: &mut Vec<Ref>, res: &mut Vec<Ref>| {
                match this.get_chunk(sh, si, c, v, res) {
                    Ok(r) => {
                        got.push(r);
                        Ok(())
                    }
                    Err(c) => {
                        res.append(got);
                        Err(c)
                    }
                }
            };
        if fp <= max {
            if let Some((h, t)) = self.split_plan(fp, vlen) {
                // Split only with memory at hand or evictable in both
                // classes; a class that would need a page taken from
                // another class gets the whole item instead.
                for c in [h, t] {
                    if let Some(pos) = res.iter().position(|&r| self.slabs.class_of(r) == c) {
                        got.push(res.swap_remove(pos));
                    } else if let Some(r) = self.slabs.alloc(c, true) {
                        got.push(r);
                    } else if self.cfg.evictions && self.oldest_tail(c).is_some() {
                        need(self, sh, c, &mut got, res)?;
                    } else {
                        res.append(&mut got);
                        break;
                    }
                }
                if got.len() == 2 {
                    let head = got.remove(0);
                    return Ok((head, got));
                }
            }
            let c = self.slabs.class_for(fp);
            return self.get_chunk(sh, si, c, v, res).map(|r| (r, Vec::new()));
        }
        let big = self.slabs.largest();
        let head_room = max - (fp - vlen) - LINK;
        let mut left = vlen - head_room.min(vlen);
        need(self, sh, big, &mut got, res)?;
        while left > 0 {
            let room = max - LINK;
            if left > room {
                need(self, sh, big, &mut got, res)?;
                left -= room;
            } else {
                let tc = self.slabs.class_for(left + LINK);
                if let Some(pos) = res.iter().position(|&r| self.slabs.class_of(r) == tc) {
                    got.push(res.swap_remove(pos));
                } else if let Some(r) = self.slabs.alloc(tc, true) {
                    got.push(r);
                } else {
                    need(self, sh, big, &mut got, res)?;
                }
                left = 0;
            }
        }
        let head = got.remove(0);
        Ok((head, got))
    }

    /// Whether an item of `fp` bytes (value `vlen`) is better stored as a
    /// head chunk of a smaller class plus a tail chunk: when its own class
    /// would waste at least 256 bytes and 5% of the chunk. memcached's
    /// classes grow by 25%, so an item just above a class boundary wastes
    /// up to a fifth of its chunk (a 4 KB value: 403 bytes of 4,544);
    /// split, it wastes far less. Returns (head class, tail class).
    fn split_plan(&self, fp: usize, vlen: usize) -> Option<(usize, usize)> {
        if fp < 1024 {
            return None;
        }
        let c = self.slabs.class_for(fp);
        if c == 0 {
            return None;
        }
        let whole = self.slabs.classes[c].size as usize;
        let before = fp - vlen + LINK;
        let mut best: Option<(usize, usize, usize)> = None;
        for h in (c.saturating_sub(3).max(1)..c).rev() {
            let hs = self.slabs.classes[h].size as usize;
            if hs <= before || fp + LINK <= hs {
                continue;
            }
            let rest = vlen - (hs - before);
            let t = self.slabs.class_for(rest + LINK);
            if t == 0 {
                continue;
            }
            let total = hs + self.slabs.classes[t].size as usize;
            if best.is_none_or(|(_, _, bt)| total < bt) {
                best = Some((h, t, total));
            }
        }
        let (h, t, total) = best?;
        let saved = whole.saturating_sub(total);
        (saved >= 256 && saved * 20 >= whole).then_some((h, t))
    }

    /// False when an item this size needs more chunks of the largest class
    /// than the whole page budget holds (nothing is evicted for it).
    fn could_ever_fit(&self, klen: usize, vlen: usize, flags: u32) -> bool {
        let fp = footprint(klen, vlen, flags);
        let max = self.slabs.chunk_max();
        if fp <= max {
            return true;
        }
        let chunks = 1 + (fp - max + LINK).div_ceil(max - LINK) as u64;
        let per = self.slabs.classes[self.slabs.largest()].perslab.max(1) as u64;
        chunks.div_ceil(per) <= self.slabs.limit_pages()
    }

    /// With automove on, the class that should give class `c` a page
    /// instead of `c` evicting: its LRU tail is clearly older than the
    /// tail `c` would evict (memcached's automove judges page value by
    /// tail age the same way, but only once per window).
    fn donor_for(&self, c: usize, now: u32) -> Option<usize> {
        let d = self.donor.load(Ordering::Relaxed);
        if d == 0 || self.automove() == 0 {
            return None;
        }
        let (dc, dt) = ((d >> 32) as usize, d as u32);
        if dc == c {
            return None;
        }
        // The donor's oldest item must be older than the one `c` would
        // evict by more than the clock's granularity (two seconds), so
        // that classes of equal age do not trade pages back and forth.
        let mine = self.oldest_tail(c).map(|(_, t)| t).unwrap_or(now);
        (dt.saturating_add(2) <= mine).then_some(dc)
    }

    /// Recomputes the donor class (see `donor`).
    fn refresh_donor(&self) {
        let mut best: Option<(usize, u32)> = None;
        for c in 1..self.slabs.classes.len() {
            if self.slabs.lock_class(c).pages.len() < 2 {
                continue;
            }
            if let Some((_, t)) = self.oldest_tail(c) {
                if best.is_none_or(|(_, bt)| t < bt) {
                    best = Some((c, t));
                }
            }
        }
        let v = best.map(|(c, t)| (c as u64) << 32 | t as u64).unwrap_or(0);
        self.donor.store(v, Ordering::Relaxed);
    }

    /// Makes room for a chunk of class `c` with no lock held: takes a page
    /// from a class with much older items (automove on), else evicts the
    /// oldest tail of the class (keeping the chunk in `res`), or moves a
    /// page from another class when no shard has an item of `c`.
    fn make_room(&self, c: usize, res: &mut Vec<Ref>, now: u32) -> bool {
        if !self.cfg.evictions {
            return false;
        }
        if let Some(src) = self.donor_for(c, now) {
            // Chunks this request holds could sit in the page to move.
            self.release_reserve(std::mem::take(res));
            let moved = self.move_page_now(src, c, now);
            self.refresh_donor();
            if moved {
                return true;
            }
        }
        for _ in 0..4 {
            match self.oldest_tail(c) {
                Some((si, _)) => {
                    let v = self.validity(now);
                    if let Some(r) = self.with_shard(si, |sh| sh.evict_one(c, &v)) {
                        if self.slabs.class_of(r) == c {
                            res.push(r);
                        } else {
                            self.slabs.free(r);
                        }
                        return true;
                    }
                }
                None => {
                    self.release_reserve(std::mem::take(res));
                    return self.steal_page(c, now);
                }
            }
        }
        // Raced with others emptying the tails: let the caller retry.
        true
    }

    fn release_reserve(&self, res: Vec<Ref>) {
        for r in res {
            self.slabs.free(r);
        }
    }

    fn count_oom(&self, si: usize, c: usize) {
        self.with_shard(si, |sh| {
            if let Some(l) = sh.lru.get_mut(c) {
                l.c.outofmemory += 1;
            }
        });
    }

    /// Looks `key` up; on a hit calls `f` with the item.
    pub fn get<R>(
        &self,
        key: &[u8],
        now: u32,
        f: impl FnOnce(ItemView<'_>) -> R,
    ) -> Result<R, Miss> {
        self.read(key, None, now, f)
    }

    fn read<R>(
        &self,
        key: &[u8],
        touch: Option<u32>,
        now: u32,
        f: impl FnOnce(ItemView<'_>) -> R,
    ) -> Result<R, Miss> {
        let (h, si) = self.locate(key).ok_or(Miss::NotFound)?;
        let v = self.validity(now);
        self.with_shard(si, |sh| {
            let r = sh.lookup(key, h, &v)?;
            sh.mark_read(r, now);
            let c = sh.class_of(r);
            match touch {
                Some(e) => {
                    sh.set_exptime(r, e);
                    sh.lru[c].c.touch_hits += 1;
                    self.revise(sh, r, now);
                }
                None => sh.lru[c].c.get_hits += 1,
            }
            let sh: &Shard = sh;
            match sh.value_inline(r) {
                Some(val) => Ok(f(self.view(sh, r, val))),
                None => {
                    let val = sh.value_vec(r);
                    Ok(f(self.view(sh, r, &val)))
                }
            }
        })
    }

    /// In replicated mode, gives a live item whose state changed in place
    /// (a new expiry) a new version, so the change wins on the peer.
    fn revise(&self, sh: &mut Shard, r: Ref, now: u32) {
        if self.replicated() {
            let (s, dead) = self.next_seq(now);
            sh.set_seq(r, s);
            if dead {
                let b = sh.bits(r);
                sh.set_bits(r, b | item::STALE);
            }
        }
    }

    #[inline]
    fn view<'a>(&self, sh: &'a Shard, r: Ref, value: &'a [u8]) -> ItemView<'a> {
        ItemView {
            key: sh.key(r),
            value,
            flags: sh.flags(r),
            cas: self.cas_of(sh.seq(r)),
            exptime: sh.exptime(r),
        }
    }

    /// Sets a new expiry on a live item and calls `f` with it (gat/gats).
    pub fn get_and_touch<R>(
        &self,
        key: &[u8],
        exptime: u32,
        now: u32,
        f: impl FnOnce(ItemView<'_>) -> R,
    ) -> Result<R, Miss> {
        self.read(key, Some(exptime), now, f)
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
                self.unlink_key(key, h, si, now);
            }
            return StoreOutcome::TooLarge;
        }
        if !self.could_ever_fit(key.len(), data.len(), flags) {
            let c = self.slabs.largest();
            self.count_oom(si, c);
            if mode == StoreMode::Set {
                self.unlink_key(key, h, si, now);
            }
            return StoreOutcome::OutOfMemory;
        }
        let req = Req {
            mode,
            key,
            h,
            flags,
            exptime,
            data,
        };
        let mut res = Vec::new();
        let mut tries = 0;
        let outcome = loop {
            let v = self.validity(now);
            let step = self.with_shard(si, |sh| self.store_locked(sh, si, &req, &v, &mut res));
            match step {
                Step::Done(o) => break o,
                Step::Need(c) => {
                    tries += 1;
                    if tries > 64 || !self.make_room(c, &mut res, now) {
                        self.count_oom(si, c);
                        match mode {
                            // memcached drops the old value of a `set` it
                            // could not store.
                            StoreMode::Set => self.unlink_key(key, h, si, now),
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
                }
            }
        };
        self.release_reserve(res);
        outcome
    }

    /// Drops the old value of a `set` that could not be stored (a delete
    /// the peer must hear of too).
    fn unlink_key(&self, key: &[u8], h: u32, si: usize, now: u32) {
        self.with_shard(si, |sh| {
            if let Some(r) = sh.find(key, h) {
                sh.unlink(r);
                self.tombstone_local(sh, key, now);
            }
        });
    }

    fn store_locked(
        &self,
        sh: &mut Shard,
        si: usize,
        r: &Req<'_>,
        v: &Validity,
        res: &mut Vec<Ref>,
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
                if !self.cfg.cas_enabled || sh.seq(idx) != unique =>
            {
                let c = sh.class_of(idx);
                sh.lru[c].c.cas_badval += 1;
                return Step::Done(StoreOutcome::Exists);
            }
            _ => {}
        }
        let (flags, exptime, vlen) = match (r.mode, found) {
            (StoreMode::Append | StoreMode::Prepend, Some(idx)) => {
                (sh.flags(idx), sh.exptime(idx), sh.vlen(idx) + r.data.len())
            }
            _ => (r.flags, r.exptime, r.data.len()),
        };
        let new_size = item_size(r.key.len(), vlen, flags, self.cfg.cas_enabled);
        if new_size > self.cfg.item_size_max as u64 {
            // Only append/prepend get here; memcached answers NOT_STORED
            // when the combined item is too large.
            return Step::Done(StoreOutcome::NotStored);
        }
        // A set over an item of the same class reuses its chunk (no trip
        // to the allocator; under -M a same-size overwrite always fits).
        if let (StoreMode::Set | StoreMode::Replace | StoreMode::Cas(_), Some(idx)) =
            (r.mode, found)
        {
            let fp = footprint(r.key.len(), vlen, flags);
            if !sh.is_chained(idx)
                && fp <= self.slabs.chunk_max()
                && self.slabs.class_for(fp) == sh.class_of(idx)
            {
                let head = sh.unlink_keep_head(idx);
                let (seq, stale) = self.next_seq(v.now);
                sh.write_item(head, &[], seq, exptime, v.now, flags, r.key, &[r.data]);
                if stale {
                    let b = sh.bits(head);
                    sh.set_bits(head, b | item::STALE);
                }
                sh.link(head);
                sh.tombs.remove(r.key);
                let c = sh.class_of(head);
                sh.lru[c].c.cmd_set += 1;
                if let StoreMode::Cas(_) = r.mode {
                    sh.lru[c].c.cas_hits += 1;
                }
                return Step::Done(StoreOutcome::Stored {
                    cas: self.cas_of(seq),
                });
            }
        }
        let (head, conts) = match self.get_chunks(sh, si, (r.key.len(), vlen, flags), v, res) {
            Ok(x) => x,
            Err(c) => return Step::Need(c),
        };
        // The old item may have been evicted to make room.
        let found = match found {
            Some(idx) if sh.find(r.key, r.h) == Some(idx) => Some(idx),
            Some(_) => {
                if r.mode != StoreMode::Set {
                    // It went while we made room; say what a later look
                    // would have said.
                    res.push(head);
                    res.extend(conts);
                    return Step::Done(match r.mode {
                        StoreMode::Cas(_) => StoreOutcome::NotFound,
                        _ => StoreOutcome::NotStored,
                    });
                }
                None
            }
            None => None,
        };
        let (seq, stale) = self.next_seq(v.now);
        match (r.mode, found) {
            (StoreMode::Append, Some(idx)) => {
                let old = sh.value_vec(idx);
                sh.write_item(
                    head,
                    &conts,
                    seq,
                    exptime,
                    v.now,
                    flags,
                    r.key,
                    &[&old, r.data],
                );
            }
            (StoreMode::Prepend, Some(idx)) => {
                let old = sh.value_vec(idx);
                sh.write_item(
                    head,
                    &conts,
                    seq,
                    exptime,
                    v.now,
                    flags,
                    r.key,
                    &[r.data, &old],
                );
            }
            _ => sh.write_item(head, &conts, seq, exptime, v.now, flags, r.key, &[r.data]),
        }
        if stale {
            let b = sh.bits(head);
            sh.set_bits(head, b | item::STALE);
        }
        match found {
            Some(idx) => sh.replace(idx, head),
            None => sh.link(head),
        }
        sh.tombs.remove(r.key);
        let c = sh.class_of(head);
        sh.lru[c].c.cmd_set += 1;
        if let StoreMode::Cas(_) = r.mode {
            sh.lru[c].c.cas_hits += 1;
        }
        Step::Done(StoreOutcome::Stored {
            cas: self.cas_of(seq),
        })
    }

    /// Meta read: calls `f` with the live item and its meta state as they
    /// were before this access; `f` returns its result and the changes to
    /// apply, which are made under the same lock.
    pub fn meta_read<R>(
        &self,
        key: &[u8],
        now: u32,
        f: impl FnOnce(ItemView<'_>, MetaState) -> (R, MetaUpdate),
    ) -> Result<R, Miss> {
        self.meta_read_touching(key, now, false, f)
    }

    /// [`Store::meta_read`] for a caller that will set a new expiry
    /// (`mg T`): with versions (a replicated store) the item takes its new
    /// version before `f` sees it, so the CAS `f` reports is the one the
    /// item keeps (as memcached reports the state after `T`).
    pub fn meta_read_touching<R>(
        &self,
        key: &[u8],
        now: u32,
        touching: bool,
        f: impl FnOnce(ItemView<'_>, MetaState) -> (R, MetaUpdate),
    ) -> Result<R, Miss> {
        let (h, si) = self.locate(key).ok_or(Miss::NotFound)?;
        let v = self.validity(now);
        self.with_shard(si, |sh| {
            let r = sh.lookup(key, h, &v)?;
            if touching {
                self.revise(sh, r, now);
            }
            let b = sh.bits(r);
            let state = MetaState {
                fetched: b & item::FETCHED != 0,
                last_access: sh.time(r),
                stale: b & item::INVALID != 0,
                win_sent: b & item::WIN_SENT != 0,
                key_binary: b & item::KEY_BINARY != 0,
                class: sh.class_of(r) as u32,
                size: sh.size(r),
            };
            let (out, upd) = {
                let shr: &Shard = sh;
                match shr.value_inline(r) {
                    Some(val) => f(self.view(shr, r, val), state),
                    None => {
                        let val = shr.value_vec(r);
                        f(self.view(shr, r, &val), state)
                    }
                }
            };
            if let Some(e) = upd.exptime {
                sh.set_exptime(r, e);
                if !touching {
                    self.revise(sh, r, now);
                }
            }
            if upd.win {
                let b = sh.bits(r);
                sh.set_bits(r, b | item::WIN_SENT);
            }
            if upd.bump {
                sh.mark_read(r, now);
                let c = sh.class_of(r);
                sh.lru[c].c.get_hits += 1;
            }
            Ok(out)
        })
    }

    /// Sets the meta marks of a live item (after a store that must leave
    /// it stale or with its win token already handed out). False when the
    /// item is gone.
    pub fn meta_mark(&self, key: &[u8], now: u32, mark: MetaMark) -> bool {
        let Some((h, si)) = self.locate(key) else {
            return false;
        };
        let v = self.validity(now);
        self.with_shard(si, |sh| match sh.lookup(key, h, &v) {
            Ok(r) => {
                let mut b = sh.bits(r);
                if mark.stale {
                    b |= item::INVALID;
                }
                if mark.win_sent {
                    b |= item::WIN_SENT;
                }
                if mark.key_binary {
                    b |= item::KEY_BINARY;
                }
                sh.set_bits(r, b);
                if mark.read {
                    sh.mark_read(r, now);
                }
                true
            }
            Err(_) => false,
        })
    }

    /// Meta delete: with `compare`, only when the item's CAS equals it;
    /// with `invalidate`, the item is kept, marked stale with its win
    /// token free again, given a new CAS unique (a fresh store sequence,
    /// so flush ordering still holds) and, when given, a new expiry.
    pub fn meta_delete(
        &self,
        key: &[u8],
        now: u32,
        compare: Option<u64>,
        invalidate: Option<Option<u32>>,
    ) -> MetaDeleteOutcome {
        let Some((h, si)) = self.locate(key) else {
            return MetaDeleteOutcome::NotFound;
        };
        let v = self.validity(now);
        self.with_shard(si, |sh| {
            let Ok(r) = sh.lookup(key, h, &v) else {
                return MetaDeleteOutcome::NotFound;
            };
            if let Some(c) = compare {
                if !self.cfg.cas_enabled || sh.seq(r) != c {
                    return MetaDeleteOutcome::Exists;
                }
            }
            let c = sh.class_of(r);
            match invalidate {
                Some(exp) => {
                    if let Some(e) = exp {
                        sh.set_exptime(r, e);
                    }
                    let (seq, dead) = self.next_seq(v.now);
                    sh.set_seq(r, seq);
                    let mut b = (sh.bits(r) | item::INVALID) & !item::WIN_SENT;
                    if dead {
                        b |= item::STALE;
                    }
                    sh.set_bits(r, b);
                    MetaDeleteOutcome::Invalidated
                }
                None => {
                    sh.lru[c].c.delete_hits += 1;
                    sh.unlink(r);
                    self.tombstone_local(sh, key, now);
                    MetaDeleteOutcome::Deleted
                }
            }
        })
    }

    pub fn delete(&self, key: &[u8], now: u32) -> Result<(), Miss> {
        let (h, si) = self.locate(key).ok_or(Miss::NotFound)?;
        let v = self.validity(now);
        self.with_shard(si, |sh| {
            let r = sh.lookup(key, h, &v)?;
            let c = sh.class_of(r);
            sh.lru[c].c.delete_hits += 1;
            sh.unlink(r);
            self.tombstone_local(sh, key, now);
            Ok(())
        })
    }

    pub fn arith(&self, key: &[u8], incr: bool, delta: u64, now: u32) -> ArithOutcome {
        let Some((h, si)) = self.locate(key) else {
            return ArithOutcome::NotFound;
        };
        let mut res = Vec::new();
        let mut tries = 0;
        let outcome = loop {
            let v = self.validity(now);
            let step = self.with_shard(si, |sh| {
                self.arith_locked(sh, si, key, h, incr, delta, &v, &mut res)
            });
            match step {
                Step::Done(o) => break o,
                Step::Need(c) => {
                    tries += 1;
                    if tries > 64 || !self.make_room(c, &mut res, now) {
                        self.count_oom(si, c);
                        break ArithOutcome::OutOfMemory;
                    }
                }
            }
        };
        self.release_reserve(res);
        outcome
    }

    #[allow(clippy::too_many_arguments)]
    fn arith_locked(
        &self,
        sh: &mut Shard,
        si: usize,
        key: &[u8],
        h: u32,
        incr: bool,
        delta: u64,
        v: &Validity,
        res: &mut Vec<Ref>,
    ) -> Step<ArithOutcome> {
        let Ok(idx) = sh.lookup(key, h, v) else {
            return Step::Done(ArithOutcome::NotFound);
        };
        let parsed = match sh.value_inline(idx) {
            Some(val) => parse_counter(val),
            None => parse_counter(&sh.value_vec(idx)),
        };
        let Some(current) = parsed else {
            return Step::Done(ArithOutcome::NonNumeric);
        };
        let value = if incr {
            current.wrapping_add(delta)
        } else {
            current.saturating_sub(delta)
        };
        let c = sh.class_of(idx);
        if incr {
            sh.lru[c].c.incr_hits += 1;
        } else {
            sh.lru[c].c.decr_hits += 1;
        }
        let mut buf = [0u8; 20];
        let digits = format_u64(value, &mut buf);
        let old_len = sh.vlen(idx);
        if digits.len() <= old_len && !sh.is_chained(idx) {
            // memcached rewrites the value in place, space padded, when the
            // new number fits in the old length.
            let (seq, stale) = self.next_seq(v.now);
            // The rewritten counter counts as not fetched again (observed
            // with `mg <key> h` after incr/ma on 1.6.18).
            let mut b = sh.bits(idx) & !item::FETCHED;
            if stale {
                b |= item::STALE;
            }
            sh.set_bits(idx, b);
            if let Some(val) = sh.value_inline_mut(idx) {
                val[..digits.len()].copy_from_slice(digits);
                val[digits.len()..].fill(b' ');
            }
            sh.set_seq(idx, seq);
            sh.set_time(idx, v.now);
            sh.bump(idx);
            return Step::Done(ArithOutcome::Value {
                value,
                cas: self.cas_of(seq),
            });
        }
        let (flags, exptime) = (sh.flags(idx), sh.exptime(idx));
        let mut padded = digits.to_vec();
        if padded.len() < old_len {
            padded.resize(old_len, b' ');
        }
        let (head, conts) = match self.get_chunks(sh, si, (key.len(), padded.len(), flags), v, res)
        {
            Ok(x) => x,
            Err(c) => return Step::Need(c),
        };
        if sh.find(key, h) != Some(idx) {
            res.push(head);
            res.extend(conts);
            return Step::Done(ArithOutcome::NotFound);
        }
        let (seq, stale) = self.next_seq(v.now);
        sh.write_item(head, &conts, seq, exptime, v.now, flags, key, &[&padded]);
        if stale {
            let b = sh.bits(head);
            sh.set_bits(head, b | item::STALE);
        }
        sh.replace(idx, head);
        Step::Done(ArithOutcome::Value {
            value,
            cas: self.cas_of(seq),
        })
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
    fn purge_tombstones(&self, barrier: u64) {
        if !self.replicated() {
            return;
        }
        for si in 0..self.shards.len() {
            self.with_shard(si, |sh| sh.tombs.purge_upto(barrier));
        }
    }

    /// Changes the memory limit at run time (`cache_memlimit`); a smaller
    /// limit gives pages back at once, evicting their items.
    pub fn set_memory_limit(&self, bytes: u64) {
        self.limit.store(bytes, Ordering::Release);
        self.slabs.set_limit(bytes);
        self.shrink_to_limit(crate_now());
    }

    fn shrink_to_limit(&self, now: u32) {
        let mut guard = 0;
        while self.slabs.pages_over_limit() > 0 && guard < 1_000_000 {
            guard += 1;
            // The class with the most pages gives one back.
            let src =
                (1..self.slabs.classes.len()).max_by_key(|&c| self.slabs.lock_class(c).pages.len());
            let Some(src) = src else { return };
            if self.slabs.lock_class(src).pages.is_empty() {
                return;
            }
            if !self.move_page_now(src, 0, now) {
                return;
            }
        }
    }

    /// Takes a page from another class for class `dst`, which has no item
    /// to evict. False when no class can give one.
    fn steal_page(&self, dst: usize, now: u32) -> bool {
        // Classes with a page's worth of free chunks first, then by the age
        // of their LRU tails, oldest first.
        let mut cands: Vec<(u64, u32, usize)> = Vec::new();
        for c in 1..self.slabs.classes.len() {
            if c == dst {
                continue;
            }
            let (pages, free) = {
                let a = self.slabs.lock_class(c);
                (a.pages.len(), a.free_count + self.slabs.uncarved(&a, c))
            };
            if pages == 0 {
                continue;
            }
            let idle = free >= self.slabs.classes[c].perslab as u64;
            let age = self.oldest_tail(c).map(|(_, t)| t).unwrap_or(0);
            cands.push((if idle { 0 } else { 1 }, age, c));
        }
        cands.sort_unstable();
        cands
            .into_iter()
            .take(4)
            .any(|(_, _, src)| self.move_page_now(src, dst, now))
    }

    /// Moves one page of `src` to `dst` (0 = pool) right away, evicting or
    /// rescuing its items one shard lock at a time. True when a page moved.
    fn move_page_now(&self, src: usize, dst: usize, now: u32) -> bool {
        let _ = now;
        let Some(page) = self.slabs.start_drain(src) else {
            return false;
        };
        for pass in 0..64 {
            for si in 0..self.shards.len() {
                self.evacuate(si, src, page);
            }
            if self.slabs.finish_drain(src, page) {
                self.give_page(page, dst);
                return true;
            }
            if pass > 2 {
                std::thread::yield_now();
            }
        }
        // Chunks of the page are still held by writers in flight: the
        // maintenance thread finishes the move.
        self.lock_mover().unfinished.push(Move {
            src,
            dst,
            page: Some(page),
            next_shard: 0,
            passes: 0,
        });
        false
    }

    fn evacuate(&self, si: usize, src: usize, page: u32) {
        let (rescued, evicted) = self.with_shard(si, |sh| sh.evacuate(src, page, true));
        self.ms.rescues.fetch_add(rescued, Ordering::Relaxed);
        self.ms
            .evictions_nomem
            .fetch_add(evicted, Ordering::Relaxed);
    }

    fn give_page(&self, page: u32, dst: usize) {
        if dst == 0 {
            self.slabs.page_to_pool(page);
        } else {
            self.slabs.page_to_class(page, dst);
        }
        self.ms.slabs_moved.fetch_add(1, Ordering::Relaxed);
    }

    fn lock_mover(&self) -> MutexGuard<'_, Mover> {
        self.mover.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Advances the page mover by a bounded step.
    fn mover_step(&self) {
        let mut m = self.lock_mover();
        let mut mv = match m.active.take() {
            Some(mv) => mv,
            None => match m.unfinished.pop() {
                Some(mv) => mv,
                None => {
                    self.moving.store(false, Ordering::Release);
                    return;
                }
            },
        };
        drop(m);
        let page = match mv.page {
            Some(p) => p,
            None => match self.slabs.start_drain(mv.src) {
                Some(p) => {
                    mv.page = Some(p);
                    p
                }
                None => {
                    self.moving.store(false, Ordering::Release);
                    return;
                }
            },
        };
        let end = (mv.next_shard + MOVER_SHARDS_PER_STEP).min(self.shards.len());
        for si in mv.next_shard..end {
            self.evacuate(si, mv.src, page);
        }
        mv.next_shard = end;
        if end == self.shards.len() {
            if self.slabs.finish_drain(mv.src, page) {
                self.give_page(page, mv.dst);
                self.moving.store(false, Ordering::Release);
                return;
            }
            mv.next_shard = 0;
            mv.passes += 1;
            if mv.passes > 3 {
                self.ms.busy_items.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.lock_mover().active = Some(mv);
        self.moving.store(true, Ordering::Release);
    }

    /// Removes up to a bounded number of dead (expired or flushed) items,
    /// examining about `budget` hash buckets from where the previous call
    /// stopped. Takes one shard lock at a time. Returns the number removed.
    pub fn reclaim_expired(&self, now: u32, budget: usize) -> usize {
        self.sweep(now, budget, u64::MAX)
    }

    fn sweep(&self, now: u32, budget: usize, mask: u64) -> usize {
        let mut left = budget;
        let mut removed = 0;
        let mut wraps = 0;
        while left > 0 && wraps <= self.shards.len() {
            let raw = self.sweep_shard.load(Ordering::Relaxed);
            let si = raw & self.shard_mask;
            let v = self.validity(now);
            let (examined, rm, wrapped) =
                self.with_shard(si, |sh| sh.sweep(left.min(SWEEP_CHUNK), &v, mask));
            left = left.saturating_sub(examined.max(1));
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
    /// item of the next `budget` hash buckets after `cursor`, holding one
    /// shard lock at a time, and advances the cursor. Items stored or
    /// deleted while a walk is under way may or may not be seen. Returns
    /// true when the walk has finished.
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
                .dump_from(cursor.slot, step, &v, &mut |sh, r| {
                    f(DumpEntry {
                        key: sh.key(r),
                        exptime: sh.exptime(r),
                        last_access: sh.time(r),
                        cas: if cas_enabled { sh.seq(r) } else { 0 },
                        fetched: sh.bits(r) & item::FETCHED != 0,
                        class: sh.class_of(r) as u32,
                        value_len: sh.vlen(r),
                        size: sh.size(r) as usize,
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

    /// Per-class sums over the shards.
    fn class_sums(&self) -> Vec<ClassLru> {
        let n = self.slabs.classes.len();
        let mut out = vec![ClassLru::default(); n];
        for si in 0..self.shards.len() {
            let g = self.lock(si);
            for (c, l) in g.lru.iter().enumerate() {
                let o = &mut out[c];
                o.number += l.number;
                o.requested += l.requested;
                let (a, b) = (&mut o.c, &l.c);
                a.total_items += b.total_items;
                a.evicted += b.evicted;
                a.evicted_nonzero += b.evicted_nonzero;
                if b.evicted_at >= a.evicted_at && b.evicted > 0 {
                    a.evicted_at = b.evicted_at;
                    a.evicted_time = b.evicted_time;
                }
                a.evicted_unfetched += b.evicted_unfetched;
                a.evicted_active += b.evicted_active;
                a.outofmemory += b.outofmemory;
                a.reclaimed += b.reclaimed;
                a.expired_unfetched += b.expired_unfetched;
                a.crawler_reclaimed += b.crawler_reclaimed;
                a.crawler_items_checked += b.crawler_items_checked;
                a.get_hits += b.get_hits;
                a.cmd_set += b.cmd_set;
                a.delete_hits += b.delete_hits;
                a.incr_hits += b.incr_hits;
                a.decr_hits += b.decr_hits;
                a.cas_hits += b.cas_hits;
                a.cas_badval += b.cas_badval;
                a.touch_hits += b.touch_hits;
                a.slab_reassign_rescues += b.slab_reassign_rescues;
                a.slab_reassign_evictions += b.slab_reassign_evictions;
            }
        }
        out
    }

    /// The memory picture for `stats slabs` / `stats items`: every class
    /// with pages or items.
    pub fn memory_report(&self) -> MemoryReport {
        self.memory_report_at(crate_now())
    }

    /// [`Store::memory_report`] with ages computed against `now`.
    pub fn memory_report_at(&self, now: u32) -> MemoryReport {
        let sums = self.class_sums();
        let mut rep = MemoryReport::default();
        #[allow(clippy::needless_range_loop)]
        for c in 1..self.slabs.classes.len() {
            let info = self.slabs.classes[c];
            let (pages, used, free, end) = {
                let a = self.slabs.lock_class(c);
                let end = self.slabs.uncarved(&a, c);
                (
                    a.pages.len() as u64,
                    a.used,
                    a.free_count + end + self.slabs.draining_free(&a, c),
                    end,
                )
            };
            let s = &sums[c];
            if pages == 0 && s.number == 0 {
                continue;
            }
            let age = self
                .oldest_tail(c)
                .map(|(_, t)| now.saturating_sub(t) as u64)
                .unwrap_or(0);
            let k = &s.c;
            rep.classes.push(ClassReport {
                id: c as u32,
                chunk_size: info.size as u64,
                chunks_per_page: info.perslab as u64,
                total_pages: pages,
                total_chunks: pages * info.perslab as u64,
                used_chunks: used,
                free_chunks: free,
                free_chunks_end: end,
                mem_requested: s.requested,
                number: s.number,
                number_hot: 0,
                number_warm: 0,
                number_cold: s.number,
                age,
                age_hot: 0,
                age_warm: 0,
                evicted: k.evicted,
                evicted_nonzero: k.evicted_nonzero,
                evicted_time: k.evicted_time as u64,
                outofmemory: k.outofmemory,
                tailrepairs: 0,
                reclaimed: k.reclaimed,
                expired_unfetched: k.expired_unfetched,
                evicted_unfetched: k.evicted_unfetched,
                evicted_active: k.evicted_active,
                crawler_reclaimed: k.crawler_reclaimed,
                crawler_items_checked: k.crawler_items_checked,
                lrutail_reflocked: 0,
                moves_to_cold: 0,
                moves_to_warm: 0,
                moves_within_lru: 0,
                direct_reclaims: 0,
                hits_to_hot: 0,
                hits_to_warm: 0,
                hits_to_cold: k.get_hits,
                hits_to_temp: 0,
                get_hits: k.get_hits,
                cmd_set: k.cmd_set,
                delete_hits: k.delete_hits,
                incr_hits: k.incr_hits,
                decr_hits: k.decr_hits,
                cas_hits: k.cas_hits,
                cas_badval: k.cas_badval,
                touch_hits: k.touch_hits,
            });
            rep.crawler_items_checked += k.crawler_items_checked;
            if pages > 0 {
                rep.active_slabs += 1;
            }
        }
        let (free_pages, _) = self.slabs.pool_counts();
        rep.total_malloced = self.slabs.total_malloced.load(Ordering::Relaxed)
            - free_pages * self.slabs.page_size as u64;
        rep.global_page_pool = free_pages;
        rep.slabs_moved = self.ms.slabs_moved.load(Ordering::Relaxed);
        rep.slab_reassign_rescues = self.ms.rescues.load(Ordering::Relaxed);
        rep.slab_reassign_chunk_rescues = 0;
        rep.slab_reassign_evictions_nomem = self.ms.evictions_nomem.load(Ordering::Relaxed);
        rep.slab_reassign_inline_reclaim = 0;
        rep.slab_reassign_busy_items = self.ms.busy_items.load(Ordering::Relaxed);
        rep.slab_reassign_busy_deletes = 0;
        rep.slab_reassign_running = self.moving.load(Ordering::Acquire);
        let cr = self.lock_crawl();
        rep.lru_crawler_running = cr.running;
        drop(cr);
        rep.lru_crawler_starts = self.ms.lru_crawler_starts.load(Ordering::Relaxed);
        rep
    }

    /// `slabs reassign <src> <dst>`: queues a move of one page of class
    /// `src` (-1: any class with a spare page) to class `dst` (0: the
    /// global page pool); the maintenance pass carries it out.
    pub fn slabs_reassign(&self, src: i64, dst: i64) -> ReassignOutcome {
        // memcached's order of checks: busy, same, pick any, bad, no spare.
        let n = self.slabs.classes.len() as i64;
        let mut m = self.lock_mover();
        if m.active.is_some() || self.moving.load(Ordering::Acquire) {
            return ReassignOutcome::Running;
        }
        if src == dst {
            return ReassignOutcome::Same;
        }
        let pages = |c: usize| self.slabs.lock_class(c).pages.len();
        let src = if src == -1 {
            let start = m.rr;
            m.rr = m.rr.wrapping_add(1);
            (0..n as usize - 1)
                .map(|k| 1 + (start + k) % (n as usize - 1))
                .find(|&c| c as i64 != dst && pages(c) > 1)
                .map(|c| c as i64)
                .unwrap_or(-1)
        } else {
            src
        };
        if src < 0 || src >= n || dst < 0 || dst >= n {
            return ReassignOutcome::BadClass;
        }
        if src == 0 {
            // From the global page pool: a free page goes at once.
            if dst == 0 || !self.slabs.pool_page_to_class(dst as usize) {
                return ReassignOutcome::NoSpare;
            }
            self.ms.slabs_moved.fetch_add(1, Ordering::Relaxed);
            return ReassignOutcome::Ok;
        }
        if pages(src as usize) < 2 {
            return ReassignOutcome::NoSpare;
        }
        m.active = Some(Move {
            src: src as usize,
            dst: dst as usize,
            page: None,
            next_shard: 0,
            passes: 0,
        });
        self.moving.store(true, Ordering::Release);
        ReassignOutcome::Ok
    }

    /// `slabs automove 0|1|2` (and `-o slab_automove`): 0 off; 1 moves a
    /// page to a class that keeps evicting from a class with a page of
    /// free chunks or a clearly older LRU tail, judged once a second; 2
    /// moves a page to every class that evicted in the last second.
    pub fn set_automove(&self, mode: u8) {
        self.automove.store(mode.min(2), Ordering::Relaxed);
    }

    pub fn automove(&self) -> u8 {
        self.automove.load(Ordering::Relaxed)
    }

    fn lock_crawl(&self) -> MutexGuard<'_, Crawl> {
        self.crawl.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `lru_crawler crawl`: queue a crawl of the given classes (None = all);
    /// the maintenance pass runs it.
    pub fn crawl(&self, classes: Option<&[u32]>) -> CrawlOutcome {
        let n = self.slabs.classes.len() as u32;
        let mask = match classes {
            None => u64::MAX,
            Some(list) => {
                let mut m = 0u64;
                for &c in list {
                    if c == 0 || c >= n {
                        return CrawlOutcome::BadClass;
                    }
                    m |= 1 << c;
                }
                m
            }
        };
        let mut cr = self.lock_crawl();
        if cr.running {
            return CrawlOutcome::Running;
        }
        cr.mask = mask;
        cr.shard = 0;
        cr.running = true;
        self.ms.lru_crawler_starts.fetch_add(1, Ordering::Relaxed);
        CrawlOutcome::Ok
    }

    /// Runs a queued crawl for up to `budget` buckets.
    fn crawl_step(&self, now: u32, budget: usize) -> usize {
        let mut cr = self.lock_crawl();
        if !cr.running {
            return 0;
        }
        let mut left = budget;
        let mut removed = 0;
        let v = self.validity(now);
        let mask = cr.mask;
        while left > 0 && cr.shard < self.shards.len() {
            let si = cr.shard;
            // Each shard is crawled whole from its own cursor position;
            // the cursor wraps once per shard.
            let (ex, rm, wrapped) =
                self.with_shard(si, |sh| sh.sweep(left.min(SWEEP_CHUNK), &v, mask));
            left = left.saturating_sub(ex.max(1));
            removed += rm;
            if wrapped {
                cr.shard += 1;
            }
        }
        if cr.shard >= self.shards.len() {
            cr.running = false;
            cr.mask = 0;
        }
        removed
    }

    /// One automove decision per second of `now`.
    fn automove_tick(&self, now: u32) {
        let mode = self.automove();
        if mode == 0 {
            return;
        }
        let mut am = self.am.lock().unwrap_or_else(|p| p.into_inner());
        if am.last_tick == now {
            return;
        }
        am.last_tick = now;
        self.refresh_donor();
        if self.moving.load(Ordering::Acquire) {
            return;
        }
        let sums = self.class_sums();
        let n = sums.len();
        if am.last_evicted.len() != n {
            am.last_evicted = sums.iter().map(|s| s.c.evicted).collect();
            return;
        }
        let mut dst = 0;
        let mut most = 0;
        #[allow(clippy::needless_range_loop)]
        for c in 1..n {
            let d = sums[c].c.evicted - am.last_evicted[c].min(sums[c].c.evicted);
            am.last_evicted[c] = sums[c].c.evicted;
            if d > most {
                most = d;
                dst = c;
            }
        }
        drop(am);
        if dst == 0 {
            return;
        }
        let dst_age = self
            .oldest_tail(dst)
            .map(|(_, t)| now.saturating_sub(t))
            .unwrap_or(0) as f64;
        let mut idle: Option<(usize, u64)> = None;
        let mut old: Option<(usize, u32)> = None;
        for c in 1..n {
            if c == dst {
                continue;
            }
            let (pages, free) = {
                let a = self.slabs.lock_class(c);
                (
                    a.pages.len() as u64,
                    a.free_count + self.slabs.uncarved(&a, c),
                )
            };
            if pages == 0 {
                continue;
            }
            let per = self.slabs.classes[c].perslab as u64;
            if free >= per && idle.is_none_or(|(_, f)| free > f) {
                idle = Some((c, free));
            }
            if pages >= 2 {
                let age = self
                    .oldest_tail(c)
                    .map(|(_, t)| now.saturating_sub(t))
                    .unwrap_or(u32::MAX);
                if old.is_none_or(|(_, a)| age > a) {
                    old = Some((c, age));
                }
            }
        }
        let src = match (idle, old) {
            (Some((c, _)), _) => Some(c),
            (None, Some((c, age))) if mode == 2 || dst_age < AUTOMOVE_AGE_RATIO * age as f64 => {
                Some(c)
            }
            _ => None,
        };
        if let Some(src) = src {
            let mut m = self.lock_mover();
            if m.active.is_none() {
                m.active = Some(Move {
                    src,
                    dst,
                    page: None,
                    next_shard: 0,
                    passes: 0,
                });
                self.moving.store(true, Ordering::Release);
            }
        }
    }

    /// Background upkeep, called by the maintenance thread a few times a
    /// second: a queued crawl, the expiry sweep, the page mover and the
    /// automove decision. Returns the number of items reclaimed.
    pub fn maintain(&self, now: u32) -> usize {
        self.maintain_with(now, true)
    }

    /// [`Store::maintain`], with the crawler (queued crawls and the
    /// background expiry sweep) on or off (`lru_crawler disable`). Page
    /// moves and giving pages back to a lowered limit run either way.
    pub fn maintain_with(&self, now: u32, crawler: bool) -> usize {
        let mut n = 0;
        if crawler {
            n += self.crawl_step(now, MAINTAIN_BUDGET);
            n += self.reclaim_expired(now, MAINTAIN_BUDGET);
        }
        if self.slabs.pages_over_limit() > 0 {
            self.shrink_to_limit(now);
        }
        self.expire_tombstones(now);
        self.automove_tick(now);
        if self.moving.load(Ordering::Acquire) || !self.lock_mover().unfinished.is_empty() {
            self.mover_step();
        }
        n
    }

    /// Zeroes the counters (`stats reset`): total_items, evictions,
    /// reclaimed, the *_unfetched counts and the per-class command
    /// counters. Gauges (curr_items, bytes) stay.
    pub fn reset_counters(&self) {
        for si in 0..self.shards.len() {
            for l in self.lock(si).lru.iter_mut() {
                l.c = Default::default();
            }
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
            s.curr_items += g.len() as u64;
            for l in &g.lru {
                let c = &l.c;
                s.bytes += l.requested;
                s.total_items += c.total_items;
                s.evictions += c.evicted;
                s.reclaimed += c.reclaimed;
                s.expired_unfetched += c.expired_unfetched;
                s.evicted_unfetched += c.evicted_unfetched;
                s.evicted_active += c.evicted_active;
                s.crawler_reclaimed += c.crawler_reclaimed;
                s.outofmemory += c.outofmemory;
            }
            buckets += g.bucket_count() as u64;
            s.hash_expanding_shards += g.is_expanding() as u64;
        }
        s.hash_power_level = 63 - buckets.max(1).leading_zeros() as u64;
        s.hash_bytes = buckets * 4;
        s.total_malloced = self.slabs.total_malloced.load(Ordering::Relaxed);
        s.slabs_moved = self.ms.slabs_moved.load(Ordering::Relaxed);
        s
    }

    /// Heap bytes the store holds: pages, bucket arrays and LRU heads
    /// (allocator overhead not included).
    pub fn heap_bytes(&self) -> u64 {
        self.slabs.total_malloced.load(Ordering::Relaxed)
            + (0..self.shards.len())
                .map(|si| self.lock(si).heap_bytes() as u64)
                .sum::<u64>()
    }

    /// Bytes of pages allocated right now (never above the limit's pages).
    pub fn used_bytes(&self) -> u64 {
        self.slabs.total_malloced.load(Ordering::Relaxed)
    }

    /// Checks every shard's structure, every class's chunk accounting and
    /// the page budget (call when no operation is in flight): each LRU
    /// holds exactly the live items of its class in that shard, used
    /// chunks = chunks held by items, free + used = pages x chunks per page,
    /// pages <= limit.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        self.slabs.check()?;
        let n = self.slabs.classes.len();
        let mut held = vec![0u64; n];
        for si in 0..self.shards.len() {
            let g = self.lock(si);
            g.check(si, &|k| self.shard_of(k))
                .map_err(|e| format!("shard {si}: {e}"))?;
            for (c, x) in g.chunk_counts().into_iter().enumerate() {
                held[c] += x;
            }
        }
        let m = self.lock_mover();
        let idle = m.active.is_none() && m.unfinished.is_empty();
        drop(m);
        for (c, &h) in held.iter().enumerate().skip(1) {
            let used = self.slabs.lock_class(c).used;
            if used != h && idle {
                return Err(format!("class {c}: {used} chunks used, items hold {h}"));
            }
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
