//! How a store is configured: the memcached options it honours
//! ([`StoreConfig`]), tuning knobs that are not memcached options
//! ([`StoreOptions`]), and the fixed limits that go with them.

use super::tomb;
use super::version;

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
