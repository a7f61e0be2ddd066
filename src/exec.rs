//! The one entry point for every read and mutation, whoever asks.
//!
//! `execute` takes a parsed [`Command`], applies it to the store and writes
//! the reply through the encoder. It converts client expiry times with the
//! clock, keeps the per-worker counters, and decides whether the connection
//! goes on.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::clock::{absolute_expiry, Clock};
use crate::config::Config;
use crate::protocol::command::{Args, CachedumpArgs, ClassSet, CrawlTarget, Num};
use crate::protocol::encode::{self, MetaItem, Reply};
use crate::protocol::{Command, Keys, ProtocolError, StoreVerb};
use crate::stats::{ConnStats, WorkerStats, WorkerTotals};
use crate::storage::{
    ArithOutcome, ClassReport, CrawlOutcome, DumpCursor, DumpEntry, MemoryReport, Miss,
    ReassignOutcome, Store, StoreConfig, StoreMode, StoreOutcome,
};

/// Settings that admin commands change at run time; `stats settings`
/// shows them instead of the start-up values.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeSettings {
    /// `lru_crawler enable|disable`.
    pub lru_crawler: bool,
    /// `lru_crawler sleep <us>`.
    pub lru_crawler_sleep: u32,
    /// `lru_crawler tocrawl <n>`.
    pub lru_crawler_tocrawl: u32,
    /// `stats sizes_enable|sizes_disable` (`-o track_sizes`).
    pub track_sizes: bool,
    /// `slabs automove ratio <r>`.
    pub slab_automove_ratio: f64,
    /// `lru mode flat|segmented`.
    pub lru_segmented: bool,
    /// `lru tune <hot> <warm> <hot factor> <warm factor>`.
    pub hot_lru_pct: u32,
    pub warm_lru_pct: u32,
    pub hot_max_factor: f64,
    pub warm_max_factor: f64,
    /// `lru temp_ttl <n>` (negative: off).
    pub temp_lru: bool,
    pub temporary_ttl: u32,
}

impl RuntimeSettings {
    fn from_config(config: &Config) -> RuntimeSettings {
        let t = &config.tuning;
        RuntimeSettings {
            lru_crawler: t.lru_crawler,
            lru_crawler_sleep: t.lru_crawler_sleep.max(0) as u32,
            lru_crawler_tocrawl: t.lru_crawler_tocrawl,
            track_sizes: t.track_sizes,
            slab_automove_ratio: t.slab_automove_ratio,
            lru_segmented: t.lru_segmented,
            hot_lru_pct: t.hot_lru_pct.max(0) as u32,
            warm_lru_pct: t.warm_lru_pct.max(0) as u32,
            hot_max_factor: t.hot_max_factor,
            warm_max_factor: t.warm_max_factor,
            temp_lru: t.temp_lru,
            temporary_ttl: t.temporary_ttl,
        }
    }
}

/// State shared by every thread of the server.
pub struct Shared {
    pub config: Config,
    pub store: Store,
    pub clock: Clock,
    pub conns: ConnStats,
    /// One entry per worker thread, in worker order.
    pub workers: Vec<Arc<WorkerStats>>,
    /// Runtime verbosity (`-v` count, changed by `verbosity N`).
    pub verbosity: AtomicU8,
    /// `-m` in bytes, changed by `cache_memlimit`.
    pub memory_limit: AtomicU64,
    /// 1 while the acceptor takes new connections.
    pub accepting: AtomicBool,
    /// Settings changed by admin commands.
    pub runtime: Mutex<RuntimeSettings>,
}

impl Shared {
    pub fn new(config: Config) -> Shared {
        let store = Store::new(StoreConfig {
            memory_limit: config.memory_limit_bytes(),
            item_size_max: config.item_size_max,
            evictions: config.evictions,
            cas_enabled: config.cas_enabled,
        });
        store.set_automove(config.tuning.slab_automove.clamp(0, 2) as u8);
        let workers = (0..config.threads.max(1))
            .map(|_| Arc::new(WorkerStats::default()))
            .collect();
        Shared {
            runtime: Mutex::new(RuntimeSettings::from_config(&config)),
            verbosity: AtomicU8::new(config.verbosity),
            memory_limit: AtomicU64::new(config.memory_limit_bytes()),
            accepting: AtomicBool::new(true),
            store,
            clock: Clock::new(),
            conns: ConnStats::default(),
            workers,
            config,
        }
    }

    /// The run-time settings (admin commands are rare; a plain lock).
    pub fn runtime(&self) -> MutexGuard<'_, RuntimeSettings> {
        self.runtime.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sum of every worker's counters.
    pub fn worker_totals(&self) -> WorkerTotals {
        let mut t = WorkerTotals::default();
        for w in &self.workers {
            w.add_to(&mut t);
        }
        t
    }
}

/// One pass of background upkeep, run by the server's maintenance thread a
/// few times a second: reclaims expired and flushed items so that memory
/// and `curr_items` come back without reads. Returns the number of items
/// reclaimed (the caller sleeps longer when it is 0).
pub fn maintain(shared: &Shared) -> usize {
    let now = shared.clock.now();
    shared.store.maintain(now)
}

/// What the server layer provides to `exec` (implemented in `server/`).
pub trait ServerInfo {
    /// Writes the `stats conns` lines (without `END`).
    fn write_conns(&self, out: &mut Vec<u8>, now: u32);
}

/// A server with no connections to report (tests, tools).
pub struct NoServer;

impl ServerInfo for NoServer {
    fn write_conns(&self, _out: &mut Vec<u8>, _now: u32) {}
}

/// Everything `execute` needs for one request.
pub struct Ctx<'a> {
    pub shared: &'a Shared,
    /// The calling worker's counters.
    pub stats: &'a WorkerStats,
    /// Unix seconds, read once per event-loop wake.
    pub now: u32,
    pub server: &'a dyn ServerInfo,
}

/// What the connection does after a request.
#[derive(Debug)]
pub enum Flow {
    Continue,
    /// `quit`: close without a reply.
    Close,
    /// `shutdown` (with `-A`): stop the server.
    Shutdown {
        graceful: bool,
    },
    /// The reply is long: the connection calls [`resume`] with this state
    /// whenever its output runs low, until it reports the reply finished,
    /// and only then goes on with later requests.
    Stream(Continuation),
}

/// A long reply in progress (`lru_crawler metadump`, `stats cachedump`,
/// `stats sizes`): where its walk over the store stands. Owns everything
/// it needs, so it outlives the request buffer.
#[derive(Debug)]
pub struct Continuation {
    cursor: DumpCursor,
    kind: StreamKind,
}

#[derive(Debug)]
enum StreamKind {
    /// `None`: every class.
    Metadump { classes: Option<ClassSet> },
    Cachedump {
        class: u32,
        /// 0 = no limit.
        limit: u32,
        shown: u32,
        bytes: usize,
        full: bool,
    },
    /// Item counts per 32-byte size bucket.
    Sizes { buckets: BTreeMap<u64, u64> },
}

/// Slots of the store examined per `Store::dump` call of a stream.
const STREAM_SLOTS: usize = 512;
/// A resume step stops once it has appended this many bytes...
const STREAM_CHUNK: usize = 64 * 1024;
/// ... or after this many `Store::dump` calls.
const STREAM_CALLS: usize = 16;
/// `stats cachedump` stops before its reply would pass 2 MiB, as
/// memcached's does.
const CACHEDUMP_MAX_BYTES: usize = 2 * 1024 * 1024;
/// Size buckets of `stats sizes` (bytes).
const SIZE_BUCKET: u64 = 32;

impl Continuation {
    fn new(kind: StreamKind) -> Continuation {
        Continuation {
            cursor: DumpCursor::default(),
            kind,
        }
    }

    fn take(&mut self, e: &DumpEntry<'_>, out: &mut Vec<u8>) {
        match &mut self.kind {
            StreamKind::Metadump { classes } => {
                if classes.is_some_and(|c| !c.contains(e.class)) {
                    return;
                }
                encode::metadump_item(
                    out,
                    &MetaItem {
                        key: e.key,
                        exptime: (e.exptime != 0).then_some(e.exptime),
                        last_access: e.last_access,
                        cas: e.cas,
                        fetched: e.fetched,
                        class: e.class,
                        size: e.size as u64,
                    },
                );
            }
            StreamKind::Cachedump {
                class,
                limit,
                shown,
                bytes,
                full,
            } => {
                if *full || e.class != *class {
                    return;
                }
                let start = out.len();
                encode::cachedump_item(out, e.key, e.value_len as u64, e.exptime);
                let len = out.len() - start;
                // memcached keeps room for its `END\r\n` and a NUL.
                if *bytes + len + 6 > CACHEDUMP_MAX_BYTES {
                    out.truncate(start);
                    *full = true;
                    return;
                }
                *bytes += len;
                *shown += 1;
                if *limit != 0 && *shown >= *limit {
                    *full = true;
                }
            }
            StreamKind::Sizes { buckets } => {
                let bucket = (e.size as u64).div_ceil(SIZE_BUCKET) * SIZE_BUCKET;
                *buckets.entry(bucket).or_insert(0) += 1;
            }
        }
    }

    fn finished(&self) -> bool {
        self.cursor.is_done() || matches!(self.kind, StreamKind::Cachedump { full: true, .. })
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if let StreamKind::Sizes { buckets } = &self.kind {
            for (&bucket, &count) in buckets {
                encode::size_stat(out, bucket, count);
            }
        }
        encode::reply(out, Reply::End);
    }
}

/// Appends the next part of a long reply. Returns true when the reply is
/// complete (its `END` written); the continuation is then spent.
pub fn resume(ctx: &Ctx<'_>, cont: &mut Continuation, out: &mut Vec<u8>) -> bool {
    let start = out.len();
    let mut calls = 0;
    while !cont.finished() && calls < STREAM_CALLS && out.len() - start < STREAM_CHUNK {
        calls += 1;
        let mut cursor = cont.cursor;
        ctx.shared
            .store
            .dump(&mut cursor, STREAM_SLOTS, ctx.now, |e| cont.take(&e, out));
        cont.cursor = cursor;
    }
    if cont.finished() {
        cont.finish(out);
        return true;
    }
    false
}

/// Starts a long reply: its first part now, the rest through [`resume`].
fn stream(ctx: &Ctx<'_>, kind: StreamKind, out: &mut Vec<u8>) -> Flow {
    let mut cont = Continuation::new(kind);
    if resume(ctx, &mut cont, out) {
        Flow::Continue
    } else {
        Flow::Stream(cont)
    }
}

/// Runs one request and appends its reply (if any) to `out`.
pub fn execute(ctx: &Ctx<'_>, cmd: &Command<'_>, out: &mut Vec<u8>) -> Flow {
    match *cmd {
        Command::Get { keys, with_cas } => {
            retrieve(ctx, keys, with_cas, None, out);
        }
        Command::Gat {
            exptime,
            keys,
            with_cas,
        } => {
            retrieve(ctx, keys, with_cas, Some(exptime), out);
        }
        Command::Store {
            verb,
            key,
            flags,
            exptime,
            data,
            cas_unique,
            noreply,
        } => store(
            ctx, verb, key, flags, exptime, data, cas_unique, noreply, out,
        ),
        Command::Delete { key, noreply } => {
            let r = match ctx.shared.store.delete(key, ctx.now) {
                Ok(()) => {
                    ctx.stats.delete_hits.incr();
                    Reply::Deleted
                }
                Err(_) => {
                    ctx.stats.delete_misses.incr();
                    Reply::NotFound
                }
            };
            if !noreply {
                encode::reply(out, r);
            }
        }
        Command::Arith {
            key,
            delta,
            incr,
            noreply,
        } => arith(ctx, key, delta, incr, noreply, out),
        Command::Touch {
            key,
            exptime,
            noreply,
        } => {
            ctx.stats.cmd_touch.incr();
            let exp = absolute_expiry(exptime, ctx.now);
            let r = match ctx.shared.store.touch(key, exp, ctx.now) {
                Ok(()) => {
                    ctx.stats.touch_hits.incr();
                    Reply::Touched
                }
                Err(_) => {
                    ctx.stats.touch_misses.incr();
                    Reply::NotFound
                }
            };
            if !noreply {
                encode::reply(out, r);
            }
        }
        Command::FlushAll { delay, noreply } => {
            if !ctx.shared.config.flush_enabled {
                if !noreply {
                    encode::reply(out, Reply::FlushDisabled);
                }
                return Flow::Continue;
            }
            ctx.stats.cmd_flush.incr();
            let at = if delay > 0 {
                absolute_expiry(delay, ctx.now).saturating_sub(1)
            } else {
                0
            };
            ctx.shared.store.flush_all(at, ctx.now);
            if !noreply {
                encode::reply(out, Reply::Ok);
            }
        }
        Command::Version => encode::version(out, crate::MEMCACHED_VERSION),
        Command::Verbosity { level, noreply } => {
            ctx.shared
                .verbosity
                .store(level.min(u8::MAX as u32) as u8, Ordering::Relaxed);
            if !noreply {
                encode::reply(out, Reply::Ok);
            }
        }
        Command::Quit => return Flow::Close,
        Command::Shutdown { graceful } => {
            if !ctx.shared.config.shutdown_enabled {
                encode::reply(out, Reply::ShutdownDisabled);
            } else {
                return Flow::Shutdown { graceful };
            }
        }
        Command::CacheMemlimit { megabytes, noreply } => {
            cache_memlimit(ctx, megabytes, noreply, out)
        }
        Command::Stats { args } => return stats(ctx, &args, out),
        Command::StatsCachedump(spec) => return cachedump(ctx, spec, out),
        Command::SlabsReassign { src, dst } => slabs_reassign(ctx, src, dst, out),
        Command::SlabsAutomove { level, noreply } => {
            ctx.shared.store.set_automove(level);
            if !noreply {
                encode::reply(out, Reply::Ok);
            }
        }
        Command::SlabsAutomoveRatio { ratio, noreply } => {
            ctx.shared.runtime().slab_automove_ratio = ratio.0;
            if !noreply {
                encode::reply(out, Reply::Ok);
            }
        }
        Command::LruCrawlerCrawl { target } => crawl(ctx, target, out),
        Command::LruCrawlerMetadump { target } => return metadump(ctx, target, out),
        Command::LruCrawlerSleep { micros } => {
            if micros > 1_000_000 {
                encode::reply(out, Reply::CrawlerSleepTooLong);
            } else {
                ctx.shared.runtime().lru_crawler_sleep = micros;
                encode::reply(out, Reply::Ok);
            }
        }
        Command::LruCrawlerTocrawl { items } => {
            ctx.shared.runtime().lru_crawler_tocrawl = items;
            encode::reply(out, Reply::Ok);
        }
        Command::LruCrawlerEnable { on } => {
            let mut rt = ctx.shared.runtime();
            if on && rt.lru_crawler {
                // memcached cannot start a second crawler thread.
                encode::reply(out, Reply::CrawlerStartFailed);
            } else {
                rt.lru_crawler = on;
                encode::reply(out, Reply::Ok);
            }
        }
        Command::LruTune {
            hot_pct,
            warm_pct,
            hot_factor,
            warm_factor,
            noreply,
        } => {
            // The sum wraps in 32 bits, as in memcached.
            let r = if hot_pct.wrapping_add(warm_pct) > 80 {
                Reply::LruPctTooLarge
            } else if hot_factor.0 <= 0.0 || warm_factor.0 <= 0.0 {
                Reply::LruFactorNotPositive
            } else {
                let mut rt = ctx.shared.runtime();
                rt.hot_lru_pct = hot_pct;
                rt.warm_lru_pct = warm_pct;
                rt.hot_max_factor = hot_factor.0;
                rt.warm_max_factor = warm_factor.0;
                Reply::Ok
            };
            if !noreply {
                encode::reply(out, r);
            }
        }
        Command::LruMode { segmented, noreply } => {
            let r = if ctx.shared.config.tuning.lru_maintainer {
                ctx.shared.runtime().lru_segmented = segmented;
                Reply::Ok
            } else {
                Reply::Error
            };
            if !noreply {
                encode::reply(out, r);
            }
        }
        Command::LruTempTtl { ttl, noreply } => {
            let r = if ctx.shared.config.tuning.lru_maintainer {
                let mut rt = ctx.shared.runtime();
                if ttl < 0 {
                    rt.temp_lru = false;
                } else {
                    rt.temp_lru = true;
                    rt.temporary_ttl = ttl as u32;
                }
                Reply::Ok
            } else {
                Reply::Error
            };
            if !noreply {
                encode::reply(out, r);
            }
        }
    }
    Flow::Continue
}

/// `stats cachedump <class> <limit>`: checks in memcached's order
/// (dumping allowed, argument count, numbers, class id < 64).
fn cachedump(ctx: &Ctx<'_>, spec: CachedumpArgs<'_>, out: &mut Vec<u8>) -> Flow {
    if !ctx.shared.config.dumping_enabled {
        encode::reply(out, Reply::CachedumpDisabled);
        return Flow::Continue;
    }
    let (class, limit) = match spec {
        CachedumpArgs::Missing(_) => {
            encode::reply(out, Reply::CachedumpUsage);
            return Flow::Continue;
        }
        CachedumpArgs::Given {
            class: Num::Ok(class),
            limit: Num::Ok(limit),
        } => (class, limit),
        CachedumpArgs::Given { .. } => {
            encode::reply(out, Reply::BadCommandLine);
            return Flow::Continue;
        }
    };
    if class > ClassSet::MAX_ID {
        encode::reply(out, Reply::IllegalSlabId);
        return Flow::Continue;
    }
    stream(
        ctx,
        StreamKind::Cachedump {
            class,
            limit,
            shown: 0,
            bytes: 0,
            full: false,
        },
        out,
    )
}

fn slabs_reassign(ctx: &Ctx<'_>, src: Num<'_, i32>, dst: Num<'_, i32>, out: &mut Vec<u8>) {
    if !ctx.shared.config.tuning.slab_reassign {
        encode::reply(out, Reply::ReassignDisabled);
        return;
    }
    let (Num::Ok(src), Num::Ok(dst)) = (src, dst) else {
        encode::reply(out, Reply::BadCommandLine);
        return;
    };
    let r = match ctx
        .shared
        .store
        .slabs_reassign(i64::from(src), i64::from(dst))
    {
        ReassignOutcome::Ok => Reply::Ok,
        ReassignOutcome::Running => Reply::ReassignBusy,
        ReassignOutcome::BadClass => Reply::ReassignBadClass,
        ReassignOutcome::NoSpare => Reply::ReassignNoSpare,
        ReassignOutcome::Same => Reply::ReassignSame,
    };
    encode::reply(out, r);
}

fn crawl(ctx: &Ctx<'_>, target: CrawlTarget<'_>, out: &mut Vec<u8>) {
    if !ctx.shared.runtime().lru_crawler {
        encode::reply(out, Reply::CrawlerDisabled);
        return;
    }
    let outcome = match target {
        CrawlTarget::All => ctx.shared.store.crawl(None),
        // memcached walks the hash table only for a metadump.
        CrawlTarget::Hash => {
            encode::reply(out, Reply::CrawlerError);
            return;
        }
        CrawlTarget::Bad(_) => CrawlOutcome::BadClass,
        CrawlTarget::Classes(set) if set.is_empty() => {
            encode::reply(out, Reply::CrawlerNotStarted);
            return;
        }
        CrawlTarget::Classes(set) => {
            let ids: Vec<u32> = set.iter().collect();
            ctx.shared.store.crawl(Some(&ids))
        }
    };
    encode::reply(
        out,
        match outcome {
            CrawlOutcome::Ok => Reply::Ok,
            CrawlOutcome::Running => Reply::CrawlerBusy,
            CrawlOutcome::BadClass => Reply::CrawlerBadClass,
        },
    );
}

/// `lru_crawler metadump`: memcached checks that the crawler is on, then
/// that dumping is allowed, then the classes. Unlike memcached (which
/// refuses a metadump with replies still queued before it, and drops the
/// requests pipelined after it), the dump is one reply in the
/// connection's order like any other.
fn metadump(ctx: &Ctx<'_>, target: CrawlTarget<'_>, out: &mut Vec<u8>) -> Flow {
    if !ctx.shared.runtime().lru_crawler {
        encode::reply(out, Reply::CrawlerDisabled);
        return Flow::Continue;
    }
    if !ctx.shared.config.dumping_enabled {
        encode::reply(out, Reply::MetadumpDisabled);
        return Flow::Continue;
    }
    let classes = match target {
        CrawlTarget::All | CrawlTarget::Hash => None,
        CrawlTarget::Bad(_) => {
            encode::reply(out, Reply::CrawlerBadClass);
            return Flow::Continue;
        }
        CrawlTarget::Classes(set) if set.is_empty() => {
            encode::reply(out, Reply::CrawlerNotStarted);
            return Flow::Continue;
        }
        CrawlTarget::Classes(set) => Some(set),
    };
    stream(ctx, StreamKind::Metadump { classes }, out)
}

/// Answers a request the parser refused: writes memcached's reply (unless
/// the request's `noreply` silences it), keeps the counters memcached keeps
/// for it and, for a refused `set`, unlinks the old item as memcached does.
pub fn refused(
    ctx: &Ctx<'_>,
    error: ProtocolError,
    unlink: Option<&[u8]>,
    silent: bool,
    out: &mut Vec<u8>,
) {
    let config = &ctx.shared.config;
    match error {
        // memcached counts a too-large value in store_too_large only; a
        // bad data chunk was a parsed storage command, so it is a cmd_set.
        ProtocolError::TooLarge => ctx.stats.store_too_large.incr(),
        ProtocolError::BadDataChunk => ctx.stats.cmd_set.incr(),
        // memcached checks -F before it reads the delay.
        ProtocolError::FlushDelay if !config.flush_enabled => {
            if !silent {
                encode::reply(out, Reply::FlushDisabled);
            }
            return;
        }
        ProtocolError::FlushDelay => ctx.stats.cmd_flush.incr(),
        // Without -A every shutdown line is refused the same way.
        ProtocolError::ShutdownMode if !config.shutdown_enabled => {
            encode::reply(out, Reply::ShutdownDisabled);
            return;
        }
        _ => {}
    }
    if let Some(key) = unlink {
        let _ = ctx.shared.store.delete(key, ctx.now);
    }
    if !silent {
        encode::protocol_error(out, error);
    }
}

fn retrieve(ctx: &Ctx<'_>, keys: Keys<'_>, with_cas: bool, touch: Option<i64>, out: &mut Vec<u8>) {
    let store = &ctx.shared.store;
    let new_exp = touch.map(|e| absolute_expiry(e, ctx.now));
    for key in keys {
        let emit = |it: crate::storage::ItemView<'_>| {
            encode::value(out, key, it.flags, it.value, with_cas.then_some(it.cas));
        };
        let res = match new_exp {
            None => store.get(key, ctx.now, emit),
            Some(exp) => store.get_and_touch(key, exp, ctx.now, emit),
        };
        if touch.is_some() {
            ctx.stats.cmd_touch.incr();
            match res {
                Ok(()) => ctx.stats.touch_hits.incr(),
                Err(_) => ctx.stats.touch_misses.incr(),
            }
        } else {
            ctx.stats.cmd_get.incr();
            match res {
                Ok(()) => ctx.stats.get_hits.incr(),
                Err(miss) => {
                    ctx.stats.get_misses.incr();
                    match miss {
                        Miss::Expired => ctx.stats.get_expired.incr(),
                        Miss::Flushed => ctx.stats.get_flushed.incr(),
                        Miss::NotFound => {}
                    }
                }
            }
        }
    }
    encode::reply(out, Reply::End);
}

#[allow(clippy::too_many_arguments)]
fn store(
    ctx: &Ctx<'_>,
    verb: StoreVerb,
    key: &[u8],
    flags: u32,
    exptime: i64,
    data: &[u8],
    cas_unique: u64,
    noreply: bool,
    out: &mut Vec<u8>,
) {
    ctx.stats.cmd_set.incr();
    let mode = match verb {
        StoreVerb::Set => StoreMode::Set,
        StoreVerb::Add => StoreMode::Add,
        StoreVerb::Replace => StoreMode::Replace,
        StoreVerb::Append => StoreMode::Append,
        StoreVerb::Prepend => StoreMode::Prepend,
        StoreVerb::Cas => StoreMode::Cas(cas_unique),
    };
    let exp = absolute_expiry(exptime, ctx.now);
    let outcome = ctx.shared.store.store(mode, key, flags, exp, data, ctx.now);
    let reply = match outcome {
        StoreOutcome::Stored { .. } => {
            if verb == StoreVerb::Cas {
                ctx.stats.cas_hits.incr();
            }
            Reply::Stored
        }
        StoreOutcome::NotStored => Reply::NotStored,
        StoreOutcome::Exists => {
            ctx.stats.cas_badval.incr();
            Reply::Exists
        }
        StoreOutcome::NotFound => {
            ctx.stats.cas_misses.incr();
            Reply::NotFound
        }
        StoreOutcome::TooLarge => {
            ctx.stats.store_too_large.incr();
            if !noreply {
                encode::protocol_error(out, ProtocolError::TooLarge);
            }
            return;
        }
        StoreOutcome::OutOfMemory => {
            ctx.stats.store_no_memory.incr();
            Reply::OutOfMemoryStoring
        }
    };
    if !noreply {
        encode::reply(out, reply);
    }
}

fn arith(ctx: &Ctx<'_>, key: &[u8], delta: u64, incr: bool, noreply: bool, out: &mut Vec<u8>) {
    let outcome = ctx.shared.store.arith(key, incr, delta, ctx.now);
    let (hits, misses) = if incr {
        (&ctx.stats.incr_hits, &ctx.stats.incr_misses)
    } else {
        (&ctx.stats.decr_hits, &ctx.stats.decr_misses)
    };
    match outcome {
        ArithOutcome::Value { value, .. } => {
            hits.incr();
            if !noreply {
                encode::number(out, value);
            }
        }
        ArithOutcome::NotFound => {
            misses.incr();
            if !noreply {
                encode::reply(out, Reply::NotFound);
            }
        }
        ArithOutcome::NonNumeric => {
            if !noreply {
                encode::reply(out, Reply::NonNumeric);
            }
        }
        ArithOutcome::OutOfMemory => {
            ctx.stats.store_no_memory.incr();
            if !noreply {
                encode::reply(out, Reply::OutOfMemoryStoring);
            }
        }
    }
}

fn cache_memlimit(ctx: &Ctx<'_>, megabytes: u64, noreply: bool, out: &mut Vec<u8>) {
    // noreply silences these refusals too, as in memcached.
    let refusal = if megabytes < 8 {
        Some(Reply::MemlimitTooSmall)
    } else if megabytes > 1_000_000_000 {
        Some(Reply::MemlimitNotMegabytes)
    } else {
        None
    };
    if let Some(r) = refusal {
        if !noreply {
            encode::reply(out, r);
        }
        return;
    }
    let bytes = megabytes * 1024 * 1024;
    ctx.shared.memory_limit.store(bytes, Ordering::Relaxed);
    ctx.shared.store.set_memory_limit(bytes);
    if !noreply {
        encode::reply(out, Reply::Ok);
    }
}

fn stats(ctx: &Ctx<'_>, args: &Args<'_>, out: &mut Vec<u8>) -> Flow {
    match args.get(0) {
        None => general_stats(ctx, out),
        Some(b"settings") => settings_stats(ctx, out),
        Some(b"conns") => {
            ctx.server.write_conns(out, ctx.now);
            encode::reply(out, Reply::End);
        }
        Some(b"reset") => {
            for w in &ctx.shared.workers {
                w.reset();
            }
            ctx.shared.conns.reset();
            ctx.shared.store.reset_counters();
            encode::reply(out, Reply::Reset);
        }
        Some(b"slabs") => write_slabs(&ctx.shared.store.memory_report(), out),
        Some(b"items") => write_items(
            &ctx.shared.store.memory_report(),
            ctx.shared.config.tuning.lru_maintainer,
            out,
        ),
        Some(b"sizes") => {
            if !ctx.shared.runtime().track_sizes {
                encode::stat(out, "sizes_status", "disabled");
                encode::reply(out, Reply::End);
            } else {
                return stream(
                    ctx,
                    StreamKind::Sizes {
                        buckets: BTreeMap::new(),
                    },
                    out,
                );
            }
        }
        // memcached answers these two with the status line and no END.
        Some(b"sizes_enable") => {
            ctx.shared.runtime().track_sizes = true;
            encode::stat(out, "sizes_status", "enabled");
        }
        Some(b"sizes_disable") => {
            ctx.shared.runtime().track_sizes = false;
            encode::stat(out, "sizes_status", "disabled");
        }
        Some(b"detail") => match args.get(1) {
            Some(b"on") | Some(b"off") => encode::reply(out, Reply::Ok),
            Some(b"dump") => encode::reply(out, Reply::End),
            _ => encode::reply(out, Reply::StatsDetailUsage),
        },
        Some(b"extstore") | Some(b"proxy") => encode::reply(out, Reply::End),
        _ => encode::reply(out, Reply::Error),
    }
    Flow::Continue
}

/// `stats slabs`: every class with pages, memcached 1.6.18's fields in its
/// order, then `active_slabs` and `total_malloced`.
pub fn write_slabs(report: &MemoryReport, out: &mut Vec<u8>) {
    for c in report.classes.iter().filter(|c| c.total_pages > 0) {
        let fields: [(&str, u64); 15] = [
            ("chunk_size", c.chunk_size),
            ("chunks_per_page", c.chunks_per_page),
            ("total_pages", c.total_pages),
            ("total_chunks", c.total_chunks),
            ("used_chunks", c.used_chunks),
            ("free_chunks", c.free_chunks),
            ("free_chunks_end", c.free_chunks_end),
            ("get_hits", c.get_hits),
            ("cmd_set", c.cmd_set),
            ("delete_hits", c.delete_hits),
            ("incr_hits", c.incr_hits),
            ("decr_hits", c.decr_hits),
            ("cas_hits", c.cas_hits),
            ("cas_badval", c.cas_badval),
            ("touch_hits", c.touch_hits),
        ];
        for (name, v) in fields {
            encode::class_stat(out, c.id, name, v);
        }
    }
    encode::stat(out, "active_slabs", report.active_slabs);
    encode::stat(out, "total_malloced", report.total_malloced);
    encode::reply(out, Reply::End);
}

/// `stats items`: every class holding items, memcached 1.6.18's fields in
/// its order. The segmented-LRU fields come only with the LRU maintainer
/// (`-o no_lru_maintainer` drops them, as in memcached); `number_temp`
/// (temporary LRU) is not reported.
pub fn write_items(report: &MemoryReport, maintainer: bool, out: &mut Vec<u8>) {
    for c in report.classes.iter().filter(|c| c.number > 0) {
        for (name, v) in item_fields(c, maintainer) {
            encode::item_class_stat(out, c.id, name, v);
        }
    }
    encode::reply(out, Reply::End);
}

fn item_fields(c: &ClassReport, maintainer: bool) -> Vec<(&'static str, u64)> {
    let mut f = vec![("number", c.number)];
    if maintainer {
        f.extend([
            ("number_hot", c.number_hot),
            ("number_warm", c.number_warm),
            ("number_cold", c.number_cold),
            ("age_hot", c.age_hot),
            ("age_warm", c.age_warm),
        ]);
    }
    f.extend([
        ("age", c.age),
        ("mem_requested", c.mem_requested),
        ("evicted", c.evicted),
        ("evicted_nonzero", c.evicted_nonzero),
        ("evicted_time", c.evicted_time),
        ("outofmemory", c.outofmemory),
        ("tailrepairs", c.tailrepairs),
        ("reclaimed", c.reclaimed),
        ("expired_unfetched", c.expired_unfetched),
        ("evicted_unfetched", c.evicted_unfetched),
    ]);
    if maintainer {
        f.push(("evicted_active", c.evicted_active));
    }
    f.extend([
        ("crawler_reclaimed", c.crawler_reclaimed),
        ("crawler_items_checked", c.crawler_items_checked),
        ("lrutail_reflocked", c.lrutail_reflocked),
    ]);
    if maintainer {
        f.extend([
            ("moves_to_cold", c.moves_to_cold),
            ("moves_to_warm", c.moves_to_warm),
            ("moves_within_lru", c.moves_within_lru),
            ("direct_reclaims", c.direct_reclaims),
            ("hits_to_hot", c.hits_to_hot),
            ("hits_to_warm", c.hits_to_warm),
            ("hits_to_cold", c.hits_to_cold),
            ("hits_to_temp", c.hits_to_temp),
        ]);
    }
    f
}

fn rusage() -> (String, String) {
    let (user, sys) = crate::stats::cpu_times();
    (
        format!("{}.{:06}", user.0, user.1),
        format!("{}.{:06}", sys.0, sys.1),
    )
}

fn general_stats(ctx: &Ctx<'_>, out: &mut Vec<u8>) {
    let sh = ctx.shared;
    let t = sh.worker_totals();
    let s = sh.store.stats();
    let m = sh.store.memory_report();
    let c = &sh.conns;
    let tuning = &sh.config.tuning;
    let crawler = sh.runtime().lru_crawler;
    let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let (ru_user, ru_sys) = rusage();
    let st = |out: &mut Vec<u8>, n: &str, v: u64| encode::stat(out, n, v);
    // memcached 1.6.18's order. Left out, having no meaning here:
    // response_obj_*, read_buf_*, reserved_fds, time_in_listen_disabled_us,
    // malloc_fails, log_*, unexpected_napi_ids, round_robin_fallback.
    st(out, "pid", std::process::id() as u64);
    st(out, "uptime", sh.clock.uptime());
    st(out, "time", ctx.now as u64);
    encode::stat(out, "version", crate::MEMCACHED_VERSION);
    encode::stat(out, "libevent", "mio");
    st(
        out,
        "pointer_size",
        (std::mem::size_of::<usize>() * 8) as u64,
    );
    encode::stat(out, "rusage_user", ru_user);
    encode::stat(out, "rusage_system", ru_sys);
    st(out, "max_connections", sh.config.max_connections as u64);
    st(out, "curr_connections", ld(&c.curr_connections));
    st(out, "total_connections", ld(&c.total_connections));
    st(out, "rejected_connections", ld(&c.rejected_connections));
    st(out, "connection_structures", ld(&c.connection_structures));
    st(out, "cmd_get", t.cmd_get);
    st(out, "cmd_set", t.cmd_set);
    st(out, "cmd_flush", t.cmd_flush);
    st(out, "cmd_touch", t.cmd_touch);
    st(out, "cmd_meta", t.cmd_meta);
    st(out, "get_hits", t.get_hits);
    st(out, "get_misses", t.get_misses);
    st(out, "get_expired", t.get_expired);
    st(out, "get_flushed", t.get_flushed);
    st(out, "delete_misses", t.delete_misses);
    st(out, "delete_hits", t.delete_hits);
    st(out, "incr_misses", t.incr_misses);
    st(out, "incr_hits", t.incr_hits);
    st(out, "decr_misses", t.decr_misses);
    st(out, "decr_hits", t.decr_hits);
    st(out, "cas_misses", t.cas_misses);
    st(out, "cas_hits", t.cas_hits);
    st(out, "cas_badval", t.cas_badval);
    st(out, "touch_hits", t.touch_hits);
    st(out, "touch_misses", t.touch_misses);
    st(out, "store_too_large", t.store_too_large);
    st(out, "store_no_memory", t.store_no_memory);
    st(out, "auth_cmds", t.auth_cmds);
    st(out, "auth_errors", t.auth_errors);
    if sh.config.idle_timeout > 0 {
        st(out, "idle_kicks", t.idle_kicks);
    }
    st(out, "bytes_read", t.bytes_read);
    st(out, "bytes_written", t.bytes_written);
    st(
        out,
        "limit_maxbytes",
        sh.memory_limit.load(Ordering::Relaxed),
    );
    st(
        out,
        "accepting_conns",
        sh.accepting.load(Ordering::Relaxed) as u64,
    );
    st(out, "listen_disabled_num", ld(&c.listen_disabled_num));
    st(out, "threads", sh.workers.len() as u64);
    st(out, "conn_yields", t.conn_yields);
    st(out, "hash_power_level", s.hash_power_level);
    st(out, "hash_bytes", s.hash_bytes);
    st(
        out,
        "hash_is_expanding",
        (s.hash_expanding_shards > 0) as u64,
    );
    if tuning.slab_reassign {
        st(out, "slab_reassign_rescues", m.slab_reassign_rescues);
        st(
            out,
            "slab_reassign_chunk_rescues",
            m.slab_reassign_chunk_rescues,
        );
        st(
            out,
            "slab_reassign_evictions_nomem",
            m.slab_reassign_evictions_nomem,
        );
        st(
            out,
            "slab_reassign_inline_reclaim",
            m.slab_reassign_inline_reclaim,
        );
        st(out, "slab_reassign_busy_items", m.slab_reassign_busy_items);
        st(
            out,
            "slab_reassign_busy_deletes",
            m.slab_reassign_busy_deletes,
        );
        st(out, "slab_reassign_running", m.slab_reassign_running as u64);
        st(out, "slabs_moved", m.slabs_moved);
    }
    if crawler {
        st(out, "lru_crawler_running", m.lru_crawler_running as u64);
        st(out, "lru_crawler_starts", m.lru_crawler_starts);
    }
    if tuning.lru_maintainer {
        st(out, "lru_maintainer_juggles", m.lru_maintainer_juggles);
    }
    st(out, "bytes", s.bytes);
    st(out, "curr_items", s.curr_items);
    st(out, "total_items", s.total_items);
    st(out, "slab_global_page_pool", m.global_page_pool);
    st(out, "expired_unfetched", s.expired_unfetched);
    st(out, "evicted_unfetched", s.evicted_unfetched);
    if tuning.lru_maintainer {
        st(out, "evicted_active", s.evicted_active);
    }
    st(out, "evictions", s.evictions);
    st(out, "reclaimed", s.reclaimed);
    st(out, "crawler_reclaimed", s.crawler_reclaimed);
    st(out, "crawler_items_checked", m.crawler_items_checked);
    st(out, "lrutail_reflocked", m.lrutail_reflocked);
    if tuning.lru_maintainer {
        st(out, "moves_to_cold", m.moves_to_cold);
        st(out, "moves_to_warm", m.moves_to_warm);
        st(out, "moves_within_lru", m.moves_within_lru);
        st(out, "direct_reclaims", m.direct_reclaims);
        st(out, "lru_bumps_dropped", m.lru_bumps_dropped);
    }
    encode::stat(out, "twincache_version", crate::TWINCACHE_VERSION);
    encode::reply(out, Reply::End);
}

fn settings_stats(ctx: &Ctx<'_>, out: &mut Vec<u8>) {
    let sh = ctx.shared;
    let maxbytes = sh.memory_limit.load(Ordering::Relaxed).to_string();
    let verbosity = sh.verbosity.load(Ordering::Relaxed).to_string();
    let rt = sh.runtime().clone();
    let yn = |b: bool| if b { "yes" } else { "no" }.to_string();
    for (name, value) in sh.config.settings() {
        // Values that change at run time; the formats are config's.
        let value = match name {
            "maxbytes" => maxbytes.clone(),
            "verbosity" => verbosity.clone(),
            "slab_automove" => sh.store.automove().to_string(),
            "slab_automove_ratio" => format!("{:.2}", rt.slab_automove_ratio),
            "lru_crawler" => yn(rt.lru_crawler),
            "lru_crawler_sleep" => rt.lru_crawler_sleep.to_string(),
            "lru_crawler_tocrawl" => rt.lru_crawler_tocrawl.to_string(),
            "lru_segmented" => yn(rt.lru_segmented),
            "hot_lru_pct" => rt.hot_lru_pct.to_string(),
            "warm_lru_pct" => rt.warm_lru_pct.to_string(),
            "hot_max_factor" => format!("{:.2}", rt.hot_max_factor),
            "warm_max_factor" => format!("{:.2}", rt.warm_max_factor),
            "temp_lru" => yn(rt.temp_lru),
            "temporary_ttl" => rt.temporary_ttl.to_string(),
            "track_sizes" => yn(rt.track_sizes),
            _ => value,
        };
        encode::stat(out, name, value);
    }
    encode::reply(out, Reply::End);
}
