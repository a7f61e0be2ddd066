//! The text protocol's storage, retrieval and counter commands (`get`,
//! `gat`, `set` and friends, `incr`/`decr`, `delete`, `touch`,
//! `flush_all`) and the answer to a request the parser refused.

use super::Ctx;
use crate::clock::absolute_expiry;
use crate::protocol::encode::{self, Reply};
use crate::protocol::{Keys, ProtocolError, StoreVerb};
use crate::storage::{ArithOutcome, Miss, StoreMode, StoreOutcome};

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
        if ctx.shared.store.delete(key, ctx.now).is_ok() {
            ctx.mutated(key);
        }
    }
    if !silent {
        encode::protocol_error(out, error);
    }
}

/// `delete <key>`.
pub(super) fn delete(ctx: &Ctx<'_>, key: &[u8], noreply: bool, out: &mut Vec<u8>) {
    let r = match ctx.shared.store.delete(key, ctx.now) {
        Ok(()) => {
            ctx.mutated(key);
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

/// `touch <key> <exptime>`.
pub(super) fn touch(ctx: &Ctx<'_>, key: &[u8], exptime: i64, noreply: bool, out: &mut Vec<u8>) {
    ctx.stats.cmd_touch.incr();
    let exp = absolute_expiry(exptime, ctx.now);
    let r = match ctx.shared.store.touch(key, exp, ctx.now) {
        Ok(()) => {
            ctx.mutated_with_expiry(key, exp);
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

/// `flush_all [delay]`: refused under `-F`; an immediate flush hands the
/// replicator its barrier version, a delayed one its time.
pub(super) fn flush_all(ctx: &Ctx<'_>, delay: i64, noreply: bool, out: &mut Vec<u8>) {
    if !ctx.shared.config.flush_enabled {
        if !noreply {
            encode::reply(out, Reply::FlushDisabled);
        }
        return;
    }
    ctx.stats.cmd_flush.incr();
    let at = if delay > 0 {
        absolute_expiry(delay, ctx.now).saturating_sub(1)
    } else {
        0
    };
    let barrier = ctx.shared.store.flush_all(at, ctx.now);
    if let Some(r) = ctx.shared.replicator.get() {
        r.flushed(if at == 0 { barrier } else { 0 }, at);
    }
    if !noreply {
        encode::reply(out, Reply::Ok);
    }
}

pub(super) fn retrieve(
    ctx: &Ctx<'_>,
    keys: Keys<'_>,
    with_cas: bool,
    touch: Option<i64>,
    out: &mut Vec<u8>,
) {
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
                Ok(()) => {
                    ctx.mutated_with_expiry(key, new_exp.unwrap_or(0));
                    ctx.stats.touch_hits.incr()
                }
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
pub(super) fn store(
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
    if matches!(
        outcome,
        StoreOutcome::Stored { .. } | StoreOutcome::TooLarge
    ) {
        // A too-large set unlinks the old item (as memcached does).
        ctx.mutated_with_expiry(key, exp);
    }
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

pub(super) fn arith(
    ctx: &Ctx<'_>,
    key: &[u8],
    delta: u64,
    incr: bool,
    noreply: bool,
    out: &mut Vec<u8>,
) {
    let outcome = ctx.shared.store.arith(key, incr, delta, ctx.now);
    if let ArithOutcome::Value { .. } = outcome {
        ctx.mutated(key);
    }
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
