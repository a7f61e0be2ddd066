//! Typed requests borrowing from the read buffer.

/// The six storage verbs of the text protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreVerb {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    Cas,
}

/// A validated, space-separated list of keys (1..=250 bytes each, no
/// control bytes). Iterating yields each key in request order, duplicates
/// included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keys<'a> {
    /// The raw key list as received (single spaces or runs of spaces
    /// between keys; already validated by the parser). Empty only for
    /// `gat <exptime>` / `gats <exptime>` without keys, which memcached
    /// answers with a bare `END`.
    raw: &'a [u8],
}

impl<'a> Keys<'a> {
    /// Wraps an already validated key list. Only the parser (and tests)
    /// should build one.
    pub fn from_validated(raw: &'a [u8]) -> Self {
        Keys { raw }
    }

    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    pub fn iter(&self) -> KeyIter<'a> {
        KeyIter { rest: self.raw }
    }
}

impl<'a> IntoIterator for Keys<'a> {
    type Item = &'a [u8];
    type IntoIter = KeyIter<'a>;
    fn into_iter(self) -> KeyIter<'a> {
        self.iter()
    }
}

/// Iterator over the keys of a [`Keys`].
#[derive(Debug, Clone)]
pub struct KeyIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for KeyIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let start = self.rest.iter().position(|&b| b != b' ')?;
        let rest = &self.rest[start..];
        let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        let (key, tail) = rest.split_at(end);
        self.rest = tail;
        Some(key)
    }
}

/// Up to this many arguments of `stats` are kept (its sub-commands take at
/// most two). memcached's tokenizer keeps 24 tokens.
pub const MAX_ARGS: usize = 8;

/// Space-separated arguments of `stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Args<'a> {
    pub items: [&'a [u8]; MAX_ARGS],
    pub len: usize,
}

impl<'a> Args<'a> {
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        if i < self.len {
            Some(self.items[i])
        } else {
            None
        }
    }
    pub fn as_slice(&self) -> &[&'a [u8]] {
        &self.items[..self.len]
    }
}

/// One parsed client request.
///
/// Expiry times are the raw client numbers (relative seconds, absolute Unix
/// time or negative); `exec` converts them with the clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// `get` / `gets` (with_cas).
    Get {
        keys: Keys<'a>,
        with_cas: bool,
    },
    /// `gat` / `gats` (with_cas).
    Gat {
        exptime: i64,
        keys: Keys<'a>,
        with_cas: bool,
    },
    /// `set add replace append prepend cas`.
    Store {
        verb: StoreVerb,
        key: &'a [u8],
        flags: u32,
        exptime: i64,
        data: &'a [u8],
        /// The unique of a `cas` command; 0 for the others.
        cas_unique: u64,
        noreply: bool,
    },
    Delete {
        key: &'a [u8],
        noreply: bool,
    },
    /// `incr` (incr = true) / `decr`.
    Arith {
        key: &'a [u8],
        delta: u64,
        incr: bool,
        noreply: bool,
    },
    Touch {
        key: &'a [u8],
        exptime: i64,
        noreply: bool,
    },
    /// `flush_all [delay] [noreply]`; delay 0 when absent.
    FlushAll {
        delay: i64,
        noreply: bool,
    },
    Version,
    Verbosity {
        level: u32,
        noreply: bool,
    },
    Quit,
    /// `shutdown [graceful]`.
    Shutdown {
        graceful: bool,
    },
    CacheMemlimit {
        megabytes: u64,
        noreply: bool,
    },
    /// `stats [args...]`.
    Stats {
        args: Args<'a>,
    },
    /// `stats cachedump <class> <limit>`.
    StatsCachedump(CachedumpArgs<'a>),
    /// `slabs reassign <src> <dst>`.
    SlabsReassign {
        src: Num<'a, i32>,
        dst: Num<'a, i32>,
    },
    /// `slabs automove <0|1|2>`.
    SlabsAutomove {
        level: u8,
        noreply: bool,
    },
    /// `slabs automove ratio <r>`.
    SlabsAutomoveRatio {
        ratio: Float,
        noreply: bool,
    },
    /// `lru_crawler crawl <classes|all>`.
    LruCrawlerCrawl {
        target: CrawlTarget<'a>,
    },
    /// `lru_crawler metadump <classes|all|hash>`.
    LruCrawlerMetadump {
        target: CrawlTarget<'a>,
    },
    /// `lru_crawler sleep <microseconds>` (range checked by exec).
    LruCrawlerSleep {
        micros: u32,
    },
    /// `lru_crawler tocrawl <n>`.
    LruCrawlerTocrawl {
        items: u32,
    },
    /// `lru_crawler enable` (true) / `lru_crawler disable`.
    LruCrawlerEnable {
        on: bool,
    },
    /// `lru tune <hot pct> <warm pct> <hot factor> <warm factor>` (ranges
    /// checked by exec).
    LruTune {
        hot_pct: u32,
        warm_pct: u32,
        hot_factor: Float,
        warm_factor: Float,
        noreply: bool,
    },
    /// `lru mode flat|segmented`.
    LruMode {
        segmented: bool,
        noreply: bool,
    },
    /// `mg ms md ma me` (meta dialect).
    Meta(super::meta::MetaCmd<'a>),
    /// `mn`: answers `MN` (the end of a quiet pipeline).
    MetaNoop,
    /// `lru temp_ttl <seconds>` (negative turns the temporary LRU off).
    LruTempTtl {
        ttl: i32,
        noreply: bool,
    },
}

/// A decimal argument as C's `strtod` reads it (finite). Compared bit for
/// bit, so that commands stay `Eq`.
#[derive(Debug, Clone, Copy)]
pub struct Float(pub f64);

impl PartialEq for Float {
    fn eq(&self, other: &Float) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Float {}

/// A numeric argument as memcached reads it, or the token it could not
/// read (the reply to a bad number may depend on server state checked
/// first, so the parser keeps it for exec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Num<'a, T> {
    Ok(T),
    Bad(&'a [u8]),
}

/// The arguments of `stats cachedump`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachedumpArgs<'a> {
    /// Fewer than two arguments (the one given, if any).
    Missing(Option<&'a [u8]>),
    Given {
        class: Num<'a, u32>,
        limit: Num<'a, u32>,
    },
}

/// What `lru_crawler crawl` / `metadump` is asked to walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrawlTarget<'a> {
    All,
    /// `hash`: the whole hash table (metadump only).
    Hash,
    /// Comma-separated class ids, each 1..=63; empty pieces are skipped,
    /// so the set may be empty.
    Classes(ClassSet),
    /// A list with a piece that is not a class id.
    Bad(&'a [u8]),
}

/// A set of slab class ids 1..=63.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClassSet(u64);

impl ClassSet {
    /// Largest class id memcached accepts in a class list.
    pub const MAX_ID: u32 = 63;

    /// Adds `id` (again, if already there); false and no change when it
    /// is not in 1..=63.
    pub fn insert(&mut self, id: u32) -> bool {
        if id == 0 || id > Self::MAX_ID {
            return false;
        }
        self.0 |= 1 << id;
        true
    }

    pub fn contains(&self, id: u32) -> bool {
        id > 0 && id <= Self::MAX_ID && self.0 & (1 << id) != 0
    }

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// The ids in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (1..=Self::MAX_ID).filter(move |&i| self.contains(i))
    }
}
