//! What the store reports about its memory, for `stats slabs`,
//! `stats items`, `stats sizes`, the slab mover and the LRU crawler, and
//! the entries of a key dump. Plain data: exec formats it.

/// One slab class as `stats slabs` and `stats items` show it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassReport {
    /// memcached's class id (1-based).
    pub id: u32,
    pub chunk_size: u64,
    pub chunks_per_page: u64,
    pub total_pages: u64,
    pub total_chunks: u64,
    pub used_chunks: u64,
    pub free_chunks: u64,
    /// Chunks never handed out yet at the end of the newest page.
    pub free_chunks_end: u64,
    /// Bytes the items of this class asked for (key + value + header).
    pub mem_requested: u64,
    /// Live items (`items:N:number`), split by LRU segment when segmented.
    pub number: u64,
    pub number_hot: u64,
    pub number_warm: u64,
    pub number_cold: u64,
    /// Seconds since the last access of the LRU tail item (`age`), and of
    /// the hot/warm tails.
    pub age: u64,
    pub age_hot: u64,
    pub age_warm: u64,
    pub evicted: u64,
    /// Evictions of items that had an expiry time.
    pub evicted_nonzero: u64,
    /// Seconds since the last access of the most recently evicted item.
    pub evicted_time: u64,
    /// Stores refused for lack of memory in this class (`-M`, or nothing
    /// evictable).
    pub outofmemory: u64,
    pub tailrepairs: u64,
    pub reclaimed: u64,
    pub expired_unfetched: u64,
    pub evicted_unfetched: u64,
    pub evicted_active: u64,
    pub crawler_reclaimed: u64,
    pub crawler_items_checked: u64,
    pub lrutail_reflocked: u64,
    pub moves_to_cold: u64,
    pub moves_to_warm: u64,
    pub moves_within_lru: u64,
    pub direct_reclaims: u64,
    pub hits_to_hot: u64,
    pub hits_to_warm: u64,
    pub hits_to_cold: u64,
    pub hits_to_temp: u64,
    /// Per-class command counters of `stats slabs` (memcached keeps them
    /// per slab class; the exporter requires cmd_set, cas_hits,
    /// cas_badval).
    pub get_hits: u64,
    pub cmd_set: u64,
    pub delete_hits: u64,
    pub incr_hits: u64,
    pub decr_hits: u64,
    pub cas_hits: u64,
    pub cas_badval: u64,
    pub touch_hits: u64,
}

/// The whole memory picture: every class that has pages or items, plus the
/// totals of `stats slabs` and the page mover's counters for `stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryReport {
    pub classes: Vec<ClassReport>,
    /// Classes with at least one page.
    pub active_slabs: u64,
    /// Bytes of pages handed out to classes.
    pub total_malloced: u64,
    /// Pages not assigned to any class (`slab_global_page_pool`).
    pub global_page_pool: u64,
    pub slabs_moved: u64,
    pub slab_reassign_rescues: u64,
    pub slab_reassign_chunk_rescues: u64,
    pub slab_reassign_evictions_nomem: u64,
    pub slab_reassign_inline_reclaim: u64,
    pub slab_reassign_busy_items: u64,
    pub slab_reassign_busy_deletes: u64,
    pub slab_reassign_running: bool,
    pub lru_crawler_running: bool,
    pub lru_crawler_starts: u64,
    pub lru_maintainer_juggles: u64,
    pub moves_to_cold: u64,
    pub moves_to_warm: u64,
    pub moves_within_lru: u64,
    pub direct_reclaims: u64,
    pub lrutail_reflocked: u64,
    pub lru_bumps_dropped: u64,
    pub crawler_items_checked: u64,
}

/// Outcome of `slabs reassign <src> <dst>` (memcached's replies in exec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReassignOutcome {
    /// `OK`: a page is moving.
    Ok,
    /// `BUSY currently processing reassign request`
    Running,
    /// `BADCLASS invalid src or dst class id`
    BadClass,
    /// `NOSPARE source class has no spare pages`
    NoSpare,
    /// `SAME src and dst class are identical`
    Same,
}

/// One item of a key dump (`lru_crawler metadump`, `stats cachedump`,
/// replication resync).
#[derive(Debug, Clone, Copy)]
pub struct DumpEntry<'a> {
    pub key: &'a [u8],
    /// Absolute expiry (Unix seconds), 0 = never.
    pub exptime: u32,
    /// Last access (Unix seconds).
    pub last_access: u32,
    pub cas: u64,
    pub fetched: bool,
    pub class: u32,
    /// Value length in bytes.
    pub value_len: usize,
    /// Total item size charged to the class (header + key + value).
    pub size: usize,
}

/// Outcome of `lru_crawler crawl <classes|all>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrawlOutcome {
    /// `OK`: the crawl is queued; the maintenance thread runs it.
    Ok,
    /// `BUSY currently processing crawler request`
    Running,
    /// `BADCLASS invalid class id`
    BadClass,
}
