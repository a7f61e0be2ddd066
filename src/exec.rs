//! The one entry point for every read and mutation, whoever asks.
//!
//! `execute` takes a parsed [`Command`], applies it to the store and writes
//! the reply through the encoder. It converts client expiry times with the
//! clock, keeps the per-worker counters, and decides whether the connection
//! goes on.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use crate::clock::{absolute_expiry, Clock};
use crate::config::Config;
use crate::protocol::command::Args;
use crate::protocol::encode::{self, Reply};
use crate::protocol::{Command, Keys, ProtocolError, StoreVerb};
use crate::stats::{ConnStats, WorkerStats, WorkerTotals};
use crate::storage::{ArithOutcome, Miss, Store, StoreConfig, StoreMode, StoreOutcome};

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
}

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
            ..StoreConfig::default()
        });
        store.set_automove(config.tuning.slab_automove.clamp(0, 2) as u8);
        let workers = (0..config.threads.max(1))
            .map(|_| Arc::new(WorkerStats::default()))
            .collect();
        Shared {
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// `quit`: close without a reply.
    Close,
    /// `shutdown` (with `-A`): stop the server.
    Shutdown {
        graceful: bool,
    },
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
        Command::Stats { args } => stats(ctx, &args, out),
        Command::Admin { .. } => encode::reply(out, Reply::Error),
    }
    Flow::Continue
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

fn stats(ctx: &Ctx<'_>, args: &Args<'_>, out: &mut Vec<u8>) {
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
        Some(b"sizes") => {
            encode::stat(out, "sizes_status", "disabled");
            encode::reply(out, Reply::End);
        }
        Some(b"detail") => match args.get(1) {
            Some(b"on") | Some(b"off") => encode::reply(out, Reply::Ok),
            Some(b"dump") => encode::reply(out, Reply::End),
            _ => encode::reply(out, Reply::StatsDetailUsage),
        },
        Some(b"extstore") | Some(b"proxy") => encode::reply(out, Reply::End),
        _ => encode::reply(out, Reply::Error),
    }
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
    let c = &sh.conns;
    let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let (ru_user, ru_sys) = rusage();
    let st = |out: &mut Vec<u8>, n: &str, v: u64| encode::stat(out, n, v);
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
    st(out, "bytes", s.bytes);
    st(out, "curr_items", s.curr_items);
    st(out, "total_items", s.total_items);
    st(out, "expired_unfetched", s.expired_unfetched);
    st(out, "evicted_unfetched", s.evicted_unfetched);
    st(out, "evicted_active", s.evicted_active);
    st(out, "evictions", s.evictions);
    st(out, "reclaimed", s.reclaimed);
    st(out, "crawler_reclaimed", s.crawler_reclaimed);
    if sh.config.idle_timeout > 0 {
        st(out, "idle_kicks", t.idle_kicks);
    }
    encode::stat(out, "twincache_version", crate::TWINCACHE_VERSION);
    encode::reply(out, Reply::End);
}

fn settings_stats(ctx: &Ctx<'_>, out: &mut Vec<u8>) {
    let sh = ctx.shared;
    let maxbytes = sh.memory_limit.load(Ordering::Relaxed).to_string();
    let verbosity = sh.verbosity.load(Ordering::Relaxed).to_string();
    for (name, value) in sh.config.settings() {
        let value = match name {
            "maxbytes" => maxbytes.clone(),
            "verbosity" => verbosity.clone(),
            _ => value,
        };
        encode::stat(out, name, value);
    }
    encode::reply(out, Reply::End);
}
