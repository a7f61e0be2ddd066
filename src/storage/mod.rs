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
//!
//! Files: this one holds the [`Store`] type, its construction and the
//! shard and version plumbing every operation uses; `impl Store` goes on
//! in read.rs (get, touch, gat, meta reads), write.rs (set and the other
//! storage commands), delete.rs, arith.rs (incr/decr), alloc.rs (chunks
//! for a write, eviction), flush.rs (flush barrier, validity), limits.rs
//! (`cache_memlimit`), mover.rs (slab page moves, automove), maintain.rs
//! (crawler, expiry sweep), stats.rs, dump.rs, check.rs and replica.rs.
//! api.rs and config.rs hold the public types operations take and
//! return.

mod alloc;
mod api;
mod arith;
mod check;
mod config;
mod delete;
mod dump;
mod flush;
mod hash;
mod item;
mod limits;
mod maintain;
mod mover;
mod read;
mod replica;
pub mod report;
mod shard;
mod slabs;
mod stats;
#[cfg(test)]
mod tests;
mod tomb;
pub mod version;
mod write;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard};

pub use api::{
    ArithOutcome, ItemView, MetaDeleteOutcome, MetaMark, MetaState, MetaUpdate, Miss, StoreMode,
    StoreOutcome,
};
pub use arith::parse_counter;
pub use config::{StoreConfig, StoreOptions, KEY_MAX, TOMBSTONE_OVERHEAD};
pub use dump::DumpCursor;
pub use hash::KeyHasher;
pub use item::item_size;
pub use replica::{ApplyOutcome, Exported, WalkCursor};
pub use report::{ClassReport, CrawlOutcome, DumpEntry, MemoryReport, ReassignOutcome};
pub use slabs::class_sizes;
pub use stats::StoreStats;

use maintain::Crawl;
use mover::{AutoMove, MoveStats, Mover};
use shard::{Shard, Tails};
use slabs::Slabs;
use tomb::Tombs;
use version::Versions;

/// Buckets examined per shard lock hold by the crawler.
const SWEEP_CHUNK: usize = 256;

/// A shard lock on its own cache lines.
#[repr(align(128))]
struct Padded(Mutex<Shard>);

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

    #[inline]
    fn cas_of(&self, seq: u64) -> u64 {
        if self.cfg.cas_enabled {
            seq
        } else {
            0
        }
    }
}

/// The wall clock in Unix seconds, for the few calls that take no `now`.
fn crate_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}
