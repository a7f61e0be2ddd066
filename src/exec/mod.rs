//! The one entry point for every read and mutation, whoever asks.
//!
//! `execute` takes a parsed [`Command`], applies it to the store and writes
//! the reply through the encoder. It converts client expiry times with the
//! clock, keeps the per-worker counters, and decides whether the connection
//! goes on.
//!
//! This file holds the shared state, the request context and the dispatch;
//! the commands themselves live in `text` (storage and retrieval), `meta`
//! (the meta dialect), `admin` (operator commands), `stats`, `stream` (long
//! replies) and `peer` (what the replication layer calls).

mod admin;
mod meta;
mod peer;
mod stats;
mod stream;
mod text;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::clock::Clock;
use crate::config::Config;
use crate::protocol::encode::{self, Reply};
use crate::protocol::{Command, MetaVerb};
use crate::stats::{ConnStats, WorkerStats, WorkerTotals};
pub use crate::storage::{item_size, ApplyOutcome, Exported, WalkCursor};
use crate::storage::{Store, StoreConfig};

pub use peer::{
    apply_peer, current_version, derived_node_id, export, node_id, observe_version, set_node_id,
    tombstone_stats, version_millis, walk, PeerRecord, Replicator,
};
pub use stats::{write_items, write_slabs};
pub use stream::{resume, Continuation};
pub use text::refused;

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
    /// Called with the new level when `verbosity N` changes it (main.rs
    /// sets it to reload the log filter).
    pub on_verbosity: std::sync::OnceLock<VerbosityHook>,
    /// Settings changed by admin commands.
    pub runtime: Mutex<RuntimeSettings>,
    /// The replication layer, when a peer is configured: told of every
    /// client mutation (never of records applied from the peer).
    pub replicator: std::sync::OnceLock<Arc<dyn Replicator>>,
}

/// What `verbosity N` calls besides storing the level.
pub type VerbosityHook = Box<dyn Fn(u8) + Send + Sync>;

impl Shared {
    pub fn new(config: Config) -> Shared {
        let store = Store::new(StoreConfig {
            memory_limit: config.memory_limit_bytes(),
            item_size_max: config.item_size_max,
            evictions: config.evictions,
            cas_enabled: config.cas_enabled,
            growth_factor: config.growth_factor,
            chunk_size: config.chunk_size,
            slab_chunk_max: config.tuning.slab_chunk_max.max(1) as usize,
            slab_sizes: config.tuning.slab_sizes.as_ref().map(|l| {
                l.split('-')
                    .filter_map(|x| x.trim().parse::<u32>().ok())
                    .collect()
            }),
            node_id: config.replication_enabled().then(|| {
                config
                    .replication
                    .node_id
                    .unwrap_or_else(|| derived_node_id(&config))
            }),
            tombstone_ttl: config.replication.tombstone_ttl,
            tombstone_max_bytes: config.replication.tombstone_bytes,
            ..StoreConfig::default()
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
            on_verbosity: std::sync::OnceLock::new(),
            replicator: std::sync::OnceLock::new(),
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
    let crawler = shared.runtime().lru_crawler;
    shared.store.maintain_with(now, crawler)
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

impl Ctx<'_> {
    /// Tells the replicator (if any) that a client changed `key`.
    #[inline]
    fn mutated(&self, key: &[u8]) {
        if let Some(r) = self.shared.replicator.get() {
            r.mutated(key);
        }
    }

    /// [`Ctx::mutated`] for a write that set the item's expiry to the
    /// absolute time `exp` (0: none). One already past (a negative or past
    /// expiry) must reach the peer as a delete, not as nothing: the
    /// expired item becomes its tombstone now.
    #[inline]
    fn mutated_with_expiry(&self, key: &[u8], exp: u32) {
        if let Some(r) = self.shared.replicator.get() {
            if exp != 0 && exp <= self.now {
                self.shared.store.settle_expired(key, self.now);
            }
            r.mutated(key);
        }
    }
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

/// Runs one request and appends its reply (if any) to `out`.
pub fn execute(ctx: &Ctx<'_>, cmd: &Command<'_>, out: &mut Vec<u8>) -> Flow {
    match *cmd {
        Command::Get { keys, with_cas } => {
            text::retrieve(ctx, keys, with_cas, None, out);
        }
        Command::Meta(ref m) => {
            // memcached's cmd_meta counts only `me` (observed).
            if m.verb == MetaVerb::Debug {
                ctx.stats.cmd_meta.incr();
            }
            meta::meta(ctx, m, out);
        }
        Command::MetaNoop => encode::meta_noop(out),
        Command::Gat {
            exptime,
            keys,
            with_cas,
        } => {
            text::retrieve(ctx, keys, with_cas, Some(exptime), out);
        }
        Command::Store {
            verb,
            key,
            flags,
            exptime,
            data,
            cas_unique,
            noreply,
        } => text::store(
            ctx, verb, key, flags, exptime, data, cas_unique, noreply, out,
        ),
        Command::Delete { key, noreply } => text::delete(ctx, key, noreply, out),
        Command::Arith {
            key,
            delta,
            incr,
            noreply,
        } => text::arith(ctx, key, delta, incr, noreply, out),
        Command::Touch {
            key,
            exptime,
            noreply,
        } => text::touch(ctx, key, exptime, noreply, out),
        Command::FlushAll { delay, noreply } => text::flush_all(ctx, delay, noreply, out),
        Command::Version => encode::version(out, crate::MEMCACHED_VERSION),
        Command::Verbosity { level, noreply } => {
            let level = level.min(u8::MAX as u32) as u8;
            ctx.shared.verbosity.store(level, Ordering::Relaxed);
            if let Some(hook) = ctx.shared.on_verbosity.get() {
                hook(level);
            }
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
            admin::cache_memlimit(ctx, megabytes, noreply, out)
        }
        Command::Stats { args } => return stats::stats(ctx, &args, out),
        Command::StatsCachedump(spec) => return admin::cachedump(ctx, spec, out),
        Command::SlabsReassign { src, dst } => admin::slabs_reassign(ctx, src, dst, out),
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
        Command::LruCrawlerCrawl { target } => admin::crawl(ctx, target, out),
        Command::LruCrawlerMetadump { target } => return admin::metadump(ctx, target, out),
        Command::LruCrawlerSleep { micros } => admin::crawler_sleep(ctx, micros, out),
        Command::LruCrawlerTocrawl { items } => {
            ctx.shared.runtime().lru_crawler_tocrawl = items;
            encode::reply(out, Reply::Ok);
        }
        Command::LruCrawlerEnable { on } => admin::crawler_enable(ctx, on, out),
        Command::LruTune {
            hot_pct,
            warm_pct,
            hot_factor,
            warm_factor,
            noreply,
        } => admin::lru_tune(
            ctx,
            hot_pct,
            warm_pct,
            hot_factor,
            warm_factor,
            noreply,
            out,
        ),
        Command::LruMode { segmented, noreply } => admin::lru_mode(ctx, segmented, noreply, out),
        Command::LruTempTtl { ttl, noreply } => admin::lru_temp_ttl(ctx, ttl, noreply, out),
    }
    Flow::Continue
}

#[cfg(test)]
mod testing {
    //! A request runner for the unit tests of every exec module.

    use super::*;
    use crate::protocol::{parse, Limits, Parsed};

    fn config(args: &[&str]) -> Config {
        let mut all = vec!["-U", "0", "-l", "127.0.0.1"];
        all.extend_from_slice(args);
        match Config::from_args(all.iter().map(std::ffi::OsString::from)) {
            Ok(c) => c,
            Err(e) => panic!("{args:?}: {e:?}"),
        }
    }

    pub(super) struct T {
        pub(super) shared: Shared,
        pub(super) stats: WorkerStats,
    }

    impl T {
        pub(super) fn new(args: &[&str]) -> T {
            T {
                shared: Shared::new(config(args)),
                stats: WorkerStats::default(),
            }
        }

        /// Runs every request of `input` like a connection would (long
        /// replies resumed to their end) and returns all the reply bytes.
        pub(super) fn run(&self, input: &[u8]) -> Vec<u8> {
            let ctx = Ctx {
                shared: &self.shared,
                stats: &self.stats,
                now: self.shared.clock.now(),
                server: &NoServer,
            };
            let mut out = Vec::new();
            let mut rest = input;
            while !rest.is_empty() {
                match parse(rest, &Limits::default()) {
                    Parsed::Complete { cmd, consumed } => {
                        if let Flow::Stream(mut cont) = execute(&ctx, &cmd, &mut out) {
                            let mut steps = 0;
                            while !resume(&ctx, &mut cont, &mut out) {
                                steps += 1;
                                assert!(steps < 1_000_000, "stream never ends");
                            }
                        }
                        rest = &rest[consumed..];
                    }
                    Parsed::Invalid {
                        error,
                        consumed,
                        silent,
                        unlink,
                        ..
                    } => {
                        refused(&ctx, error, unlink, silent, &mut out);
                        rest = &rest[consumed..];
                    }
                    Parsed::Incomplete => panic!("incomplete: {rest:?}"),
                }
            }
            out
        }

        pub(super) fn text(&self, input: &str) -> String {
            String::from_utf8(self.run(input.as_bytes())).expect("utf8")
        }

        pub(super) fn setting(&self, name: &str) -> String {
            let all = self.text("stats settings\r\n");
            let prefix = format!("STAT {name} ");
            all.lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .unwrap_or_else(|| panic!("no {name}"))
                .to_string()
        }
    }
}
