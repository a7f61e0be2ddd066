//! The meta dialect: `mg`, `ms`, `md`, `ma` and `me`.

use super::Ctx;
use crate::clock::absolute_expiry;
use crate::protocol::encode::{self, MetaCode, Reply};
use crate::protocol::{MetaCmd, MetaVerb, ProtocolError, SetMode};
use crate::storage::{
    ArithOutcome, MetaDeleteOutcome, MetaMark, MetaUpdate, Miss, StoreMode, StoreOutcome,
};

/// The soonest absolute expiry among relative/absolute client TTLs given
/// (0 when none sets one).
fn soonest_expiry(ttls: &[Option<i64>], now: u32) -> u32 {
    ttls.iter()
        .flatten()
        .map(|&t| absolute_expiry(t, now))
        .filter(|&e| e != 0)
        .min()
        .unwrap_or(0)
}

/// A meta request (`mg ms md ma me`). Replies follow memcached 1.6.18
/// (see `protocol::meta` and the tests).
pub(super) fn meta(ctx: &Ctx<'_>, m: &MetaCmd<'_>, out: &mut Vec<u8>) {
    let mut kbuf = [0u8; crate::protocol::KEY_MAX_LEN];
    // The parser checked that the key decodes.
    let Some(key) = m.key_bytes(&mut kbuf) else {
        encode::protocol_error(out, ProtocolError::DecodingKey);
        return;
    };
    match m.verb {
        MetaVerb::Get => meta_get(ctx, m, key, out),
        MetaVerb::Set => meta_set(ctx, m, key, out),
        MetaVerb::Delete => meta_delete(ctx, m, key, out),
        MetaVerb::Arith => meta_arith(ctx, m, key, out),
        MetaVerb::Debug => meta_debug(ctx, key, out),
    }
}

/// Remaining TTL as `t` reports it: -1 for never.
fn ttl_left(exptime: u32, now: u32) -> i64 {
    if exptime == 0 {
        -1
    } else {
        i64::from(exptime) - i64::from(now)
    }
}

/// Echoes the `O` and `k` flags (the only ones on a miss / failure line).
fn meta_echo(m: &MetaCmd<'_>, key: &[u8], out: &mut Vec<u8>) {
    for t in m.flags.tokens() {
        match t[0] {
            b'O' => encode::meta_token(out, t),
            b'k' => encode::meta_key(out, key, m.flags.base64),
            _ => {}
        }
    }
}

fn meta_get(ctx: &Ctx<'_>, m: &MetaCmd<'_>, key: &[u8], out: &mut Vec<u8>) {
    meta_read_and_update(ctx, m, key, out);
    // A TTL update (T) or a vivified placeholder (N) changes the item.
    if m.flags.ttl.is_some() || m.flags.vivify.is_some() {
        ctx.mutated_with_expiry(key, soonest_expiry(&[m.flags.ttl, m.flags.vivify], ctx.now));
    }
}

fn meta_read_and_update(ctx: &Ctx<'_>, m: &MetaCmd<'_>, key: &[u8], out: &mut Vec<u8>) {
    let fl = &m.flags;
    let now = ctx.now;
    let new_ttl = fl.ttl.map(|t| absolute_expiry(t, now));
    let recache = fl.recache.map(|t| absolute_expiry(t, now));
    let res = ctx
        .shared
        .store
        .meta_read_touching(key, now, fl.ttl.is_some(), |it, st| {
            let mut upd = MetaUpdate {
                bump: !fl.no_bump,
                ..MetaUpdate::default()
            };
            let mut exp = it.exptime;
            let mut won = false;
            encode::meta_code(
                out,
                if fl.value {
                    MetaCode::Va(it.value.len())
                } else {
                    MetaCode::Hd
                },
            );
            // Return flags in request order; `T` applies from where it
            // stands (a `t` before it shows the old TTL, as memcached).
            for t in fl.tokens() {
                match t[0] {
                    b'T' => {
                        if let Some(e) = new_ttl {
                            exp = e;
                            upd.exptime = Some(e);
                        }
                    }
                    b'R' => {
                        if let Some(r) = recache {
                            if !st.win_sent && exp != 0 && exp < r {
                                won = true;
                            }
                        }
                    }
                    b's' => encode::meta_flag_u64(out, b's', it.value.len() as u64),
                    b't' => encode::meta_flag_i64(out, b't', ttl_left(exp, now)),
                    b'c' => encode::meta_flag_u64(out, b'c', it.cas),
                    b'f' => encode::meta_flag_u64(out, b'f', u64::from(it.flags)),
                    b'l' => encode::meta_flag_u64(
                        out,
                        b'l',
                        u64::from(now.saturating_sub(st.last_access)),
                    ),
                    b'h' => encode::meta_flag_u64(out, b'h', u64::from(st.fetched)),
                    b'O' => encode::meta_token(out, t),
                    // The item remembers whether its key came in base64.
                    b'k' => encode::meta_key(out, key, st.key_binary),
                    _ => {}
                }
            }
            if st.win_sent {
                encode::meta_flag(out, b'Z');
            }
            if st.stale {
                encode::meta_flag(out, b'X');
                if !st.win_sent {
                    won = true;
                }
            }
            if won {
                encode::meta_flag(out, b'W');
                upd.win = true;
            }
            encode::meta_end(out);
            if fl.value {
                encode::value_data(out, it.value);
            }
            ((), upd)
        });
    // Counted like get (and touch with `T`); a miss that vivifies counts
    // nowhere, as in memcached (observed).
    let count = |hit: bool| {
        ctx.stats.cmd_get.incr();
        if new_ttl.is_some() {
            ctx.stats.cmd_touch.incr();
        }
        let (g, t) = if hit {
            (&ctx.stats.get_hits, &ctx.stats.touch_hits)
        } else {
            (&ctx.stats.get_misses, &ctx.stats.touch_misses)
        };
        g.incr();
        if new_ttl.is_some() {
            t.incr();
        }
    };
    match res {
        Ok(()) => count(true),
        Err(miss) => {
            if fl.vivify.is_none() {
                count(false);
                match miss {
                    Miss::Expired => ctx.stats.get_expired.incr(),
                    Miss::Flushed => ctx.stats.get_flushed.incr(),
                    Miss::NotFound => {}
                }
            }
            if let Some(n) = fl.vivify {
                // Vivify: an empty placeholder whose win token goes to
                // this client; later readers see `Z` until it is set. Its
                // TTL is the last of `N` and `T` in request order.
                let exp = absolute_expiry(n, now);
                let mut final_exp = exp;
                for t in fl.tokens() {
                    match t[0] {
                        b'N' => final_exp = exp,
                        b'T' => final_exp = new_ttl.unwrap_or(final_exp),
                        _ => {}
                    }
                }
                let store = &ctx.shared.store;
                if let StoreOutcome::Stored { cas } =
                    store.store(StoreMode::Add, key, 0, final_exp, b"", now)
                {
                    store.meta_mark(
                        key,
                        now,
                        MetaMark {
                            win_sent: true,
                            key_binary: fl.base64,
                            read: !fl.no_bump,
                            ..MetaMark::default()
                        },
                    );
                    encode::meta_code(
                        out,
                        if fl.value {
                            MetaCode::Va(0)
                        } else {
                            MetaCode::Hd
                        },
                    );
                    // The new item's TTL is set where `N` (or `T`) stands
                    // among the flags: a `t` before them shows -1.
                    let mut cur = 0;
                    for t in fl.tokens() {
                        match t[0] {
                            b'N' => cur = exp,
                            b'T' => cur = new_ttl.unwrap_or(cur),
                            b's' => encode::meta_flag_u64(out, b's', 0),
                            b't' => encode::meta_flag_i64(out, b't', ttl_left(cur, now)),
                            b'c' => encode::meta_flag_u64(out, b'c', cas),
                            b'f' => encode::meta_flag_u64(out, b'f', 0),
                            b'l' => encode::meta_flag_u64(out, b'l', 0),
                            b'h' => encode::meta_flag_u64(out, b'h', 0),
                            b'O' => encode::meta_token(out, t),
                            b'k' => encode::meta_key(out, key, fl.base64),
                            _ => {}
                        }
                    }
                    encode::meta_flag(out, b'W');
                    encode::meta_end(out);
                    if fl.value {
                        encode::value_data(out, b"");
                    }
                    return;
                }
            }
            if !fl.quiet {
                encode::meta_code(out, MetaCode::En);
                meta_echo(m, key, out);
                encode::meta_end(out);
            }
        }
    }
}

fn meta_set(ctx: &Ctx<'_>, m: &MetaCmd<'_>, key: &[u8], out: &mut Vec<u8>) {
    let fl = &m.flags;
    let now = ctx.now;
    let store = &ctx.shared.store;
    ctx.stats.cmd_set.incr();
    let exp = absolute_expiry(fl.ttl.unwrap_or(0), now);
    // `C` makes a set or replace a cas (missing: NF, mismatch: EX);
    // append/prepend compare it too (missing: NS, mismatch: EX); add
    // ignores it (observed).
    let mode = match (fl.set_mode(), fl.compare_cas) {
        (Some(SetMode::Set | SetMode::Replace) | None, Some(c)) => StoreMode::Cas(c),
        (Some(SetMode::Set) | None, None) => StoreMode::Set,
        (Some(SetMode::Add), _) => StoreMode::Add,
        (Some(SetMode::Append), _) => StoreMode::Append,
        (Some(SetMode::Prepend), _) => StoreMode::Prepend,
        (Some(SetMode::Replace), None) => StoreMode::Replace,
    };
    let precheck = match (mode, fl.compare_cas) {
        (StoreMode::Append | StoreMode::Prepend, Some(c)) => {
            // Compare, then apply: two steps under two locks (a racing
            // writer between them is not detected).
            match store.meta_read(key, now, |it, _| (it.cas, MetaUpdate::default())) {
                Ok(cur) if cur != c => Some(StoreOutcome::Exists),
                Ok(_) => None,
                Err(_) => Some(StoreOutcome::NotStored),
            }
        }
        _ => None,
    };
    let mut outcome = match precheck {
        Some(o) => o,
        None => store.store(mode, key, fl.client_flags, exp, m.data, now),
    };
    if let (StoreOutcome::Exists, true, StoreMode::Cas(c)) = (outcome, fl.invalidate, mode) {
        // `I` with an older CAS: the value is stored anyway, marked stale,
        // keeping the old TTL and win-token mark. (Two steps under two
        // locks: a racing writer may slip in between; it then wins.)
        let old = store
            .meta_read(key, now, |it, st| {
                ((it.cas, it.exptime, st.win_sent), MetaUpdate::default())
            })
            .ok();
        if let Some((cur, old_exp, win)) = old {
            if c < cur {
                outcome = store.store(StoreMode::Set, key, fl.client_flags, old_exp, m.data, now);
                if let StoreOutcome::Stored { .. } = outcome {
                    store.meta_mark(
                        key,
                        now,
                        MetaMark {
                            stale: true,
                            win_sent: win,
                            key_binary: fl.base64,
                            read: false,
                        },
                    );
                }
            }
        }
    }
    if let (StoreOutcome::Stored { .. }, true) = (outcome, fl.base64) {
        // memcached remembers that the key came in base64.
        store.meta_mark(
            key,
            now,
            MetaMark {
                key_binary: true,
                ..MetaMark::default()
            },
        );
    }
    if matches!(
        outcome,
        StoreOutcome::Stored { .. } | StoreOutcome::TooLarge
    ) {
        ctx.mutated_with_expiry(key, exp);
    }
    let (code, cas) = match outcome {
        StoreOutcome::Stored { cas } => {
            if fl.compare_cas.is_some() {
                ctx.stats.cas_hits.incr();
            }
            if fl.quiet {
                return;
            }
            (MetaCode::Hd, cas)
        }
        StoreOutcome::NotStored => (MetaCode::Ns, 0),
        StoreOutcome::Exists => {
            ctx.stats.cas_badval.incr();
            (MetaCode::Ex, 0)
        }
        StoreOutcome::NotFound => {
            ctx.stats.cas_misses.incr();
            (MetaCode::Nf, 0)
        }
        StoreOutcome::TooLarge => {
            ctx.stats.store_too_large.incr();
            encode::protocol_error(out, ProtocolError::TooLarge);
            return;
        }
        StoreOutcome::OutOfMemory => {
            ctx.stats.store_no_memory.incr();
            encode::reply(out, Reply::OutOfMemoryStoring);
            return;
        }
    };
    encode::meta_code(out, code);
    for t in fl.tokens() {
        match t[0] {
            b'O' => encode::meta_token(out, t),
            b'k' => encode::meta_key(out, key, fl.base64),
            b'c' => encode::meta_flag_u64(out, b'c', cas),
            _ => {}
        }
    }
    encode::meta_end(out);
}

fn meta_delete(ctx: &Ctx<'_>, m: &MetaCmd<'_>, key: &[u8], out: &mut Vec<u8>) {
    let fl = &m.flags;
    let now = ctx.now;
    let invalidate = fl
        .invalidate
        .then(|| fl.ttl.map(|t| absolute_expiry(t, now)));
    let code = match ctx
        .shared
        .store
        .meta_delete(key, now, fl.compare_cas, invalidate)
    {
        MetaDeleteOutcome::Deleted | MetaDeleteOutcome::Invalidated => {
            ctx.mutated_with_expiry(key, invalidate.flatten().unwrap_or(0));
            // An invalidation is not a delete hit in memcached (observed).
            if invalidate.is_none() {
                ctx.stats.delete_hits.incr();
            }
            if fl.quiet {
                return;
            }
            MetaCode::Hd
        }
        MetaDeleteOutcome::NotFound => {
            ctx.stats.delete_misses.incr();
            MetaCode::Nf
        }
        MetaDeleteOutcome::Exists => MetaCode::Ex,
    };
    encode::meta_code(out, code);
    meta_echo(m, key, out);
    encode::meta_end(out);
}

fn meta_arith(ctx: &Ctx<'_>, m: &MetaCmd<'_>, key: &[u8], out: &mut Vec<u8>) {
    let fl = &m.flags;
    let now = ctx.now;
    let store = &ctx.shared.store;
    let incr = fl.arith_incr().unwrap_or(true);
    let (hits, misses) = if incr {
        (&ctx.stats.incr_hits, &ctx.stats.incr_misses)
    } else {
        (&ctx.stats.decr_hits, &ctx.stats.decr_misses)
    };
    if let Some(c) = fl.compare_cas {
        // Compare, then apply (two steps; see meta_set on races).
        let cur = store.meta_read(key, now, |it, _| (it.cas, MetaUpdate::default()));
        if let Ok(cur) = cur {
            if cur != c {
                encode::meta_code(out, MetaCode::Ex);
                meta_echo(m, key, out);
                encode::meta_end(out);
                return;
            }
        }
    }
    let mut created = false;
    let mut result = None;
    for _ in 0..2 {
        match store.arith(key, incr, fl.delta, now) {
            ArithOutcome::Value { value, cas } => {
                hits.incr();
                result = Some((value, cas));
                break;
            }
            ArithOutcome::NotFound => {
                // A miss that creates the counter is not counted (observed).
                let Some(n) = fl.vivify else {
                    misses.incr();
                    break;
                };
                let mut digits = Vec::new();
                encode::push_u64(&mut digits, fl.initial);
                let exp = absolute_expiry(n, now);
                if let StoreOutcome::Stored { cas } =
                    store.store(StoreMode::Add, key, 0, exp, &digits, now)
                {
                    created = true;
                    result = Some((fl.initial, cas));
                    break;
                }
            }
            ArithOutcome::NonNumeric => {
                encode::reply(out, Reply::NonNumeric);
                return;
            }
            ArithOutcome::OutOfMemory => {
                ctx.stats.store_no_memory.incr();
                encode::reply(out, Reply::OutOfMemoryStoring);
                return;
            }
        }
    }
    let Some((value, cas)) = result else {
        encode::meta_code(out, MetaCode::Nf);
        meta_echo(m, key, out);
        encode::meta_end(out);
        return;
    };
    if let (Some(t), false) = (fl.ttl, created) {
        let _ = store.touch(key, absolute_expiry(t, now), now);
    }
    ctx.mutated_with_expiry(key, soonest_expiry(&[fl.ttl, fl.vivify], now));
    // memcached answers a created counter even under `q` (observed).
    if fl.quiet && !created {
        return;
    }
    let mut digits = Vec::new();
    encode::push_u64(&mut digits, value);
    encode::meta_code(
        out,
        if fl.value {
            MetaCode::Va(digits.len())
        } else {
            MetaCode::Hd
        },
    );
    let exptime = if fl.has(b't') {
        store
            .meta_read(key, now, |it, _| (it.exptime, MetaUpdate::default()))
            .unwrap_or(0)
    } else {
        0
    };
    for t in fl.tokens() {
        match t[0] {
            b't' => encode::meta_flag_i64(out, b't', ttl_left(exptime, now)),
            b'c' => encode::meta_flag_u64(out, b'c', cas),
            b'O' => encode::meta_token(out, t),
            b'k' => encode::meta_key(out, key, fl.base64),
            _ => {}
        }
    }
    encode::meta_end(out);
    if fl.value {
        encode::value_data(out, &digits);
    }
}

/// `me <key>`: one line about the item in memcached's format (answered
/// under `-X` too, as memcached 1.6.18 does).
fn meta_debug(ctx: &Ctx<'_>, key: &[u8], out: &mut Vec<u8>) {
    let now = ctx.now;
    let mut line = Vec::new();
    let res = ctx.shared.store.meta_read(key, now, |it, st| {
        // memcached prints `exp` as now minus the expiry (negative for a
        // live item with a TTL), -1 for none; the class is the one its
        // accounted size falls in.
        let exp = if it.exptime == 0 {
            -1
        } else {
            i64::from(now) - i64::from(it.exptime)
        };
        let class = ctx
            .shared
            .store
            .class_table()
            .iter()
            .find(|&&(_, size, _)| u64::from(size) >= st.size)
            .map_or(st.class, |&(id, _, _)| id);
        encode::meta_debug(
            &mut line,
            key,
            exp,
            u64::from(now.saturating_sub(st.last_access)),
            it.cas,
            st.fetched,
            class,
            st.size,
        );
        ((), MetaUpdate::default())
    });
    match res {
        Ok(()) => out.extend_from_slice(&line),
        Err(_) => {
            encode::meta_code(out, MetaCode::En);
            encode::meta_end(out);
        }
    }
}

#[cfg(test)]
mod tests {
    //! Reply text is compared with what memcached 1.6.18 answered to the
    //! same request (quoted where it matters).

    use super::super::testing::T;

    /// Masks the digits after `c` / `cas=` in a meta reply.
    fn nocas(s: &str) -> String {
        s.split(' ')
            .map(|t| {
                for p in ["c", "cas="] {
                    if let Some(r) = t.strip_prefix(p) {
                        let d: String = r.chars().take_while(|c| c.is_ascii_digit()).collect();
                        if !d.is_empty() {
                            return format!("{p}#{}", &r[d.len()..]);
                        }
                    }
                }
                t.to_string()
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn meta_get_set_replies() {
        // Replies observed on memcached 1.6.18.
        let t = T::new(&[]);
        assert_eq!(t.text("mg k v\r\n"), "EN\r\n");
        assert_eq!(t.text("mg k v q\r\n"), "");
        assert_eq!(t.text("mg k k O7\r\n"), "EN kk O7\r\n");
        assert_eq!(t.text("ms k 2 T0 F5\r\nhi\r\n"), "HD\r\n");
        assert_eq!(
            nocas(&t.text("mg k v f c t k Oab s h l\r\n")),
            "VA 2 f5 c#1 t-1 kk Oab s2 h0 l0\r\nhi\r\n".replace("c#1", "c#")
        );
        assert_eq!(t.text("mg k\r\n"), "HD\r\n");
        // q hides only the miss.
        assert_eq!(t.text("mg k q\r\n"), "HD\r\n");
        assert_eq!(t.text("mg k h\r\n"), "HD h1\r\n");
        assert_eq!(t.text("ms k 1 q\r\nx\r\n"), "");
        assert_eq!(t.text("ms k 1 q ME\r\nx\r\n"), "NS\r\n");
        assert_eq!(t.text("ms k 1 ME c k O5\r\nx\r\n"), "NS c0 kk O5\r\n");
        assert_eq!(t.text("ms k 1 C1 c\r\nx\r\n"), "EX c0\r\n");
        assert_eq!(t.text("ms nope 1 C1\r\nx\r\n"), "NF\r\n");
        assert_eq!(t.text("ms nope 1 MR\r\nx\r\n"), "NS\r\n");
        assert_eq!(t.text("ms nope 1 MA\r\nx\r\n"), "NS\r\n");
        assert_eq!(t.text("ms k 1 MA\r\ny\r\n"), "HD\r\n");
        assert_eq!(t.text("ms k 1 MP\r\nw\r\n"), "HD\r\n");
        assert_eq!(t.text("mg k v\r\n"), "VA 3\r\nwxy\r\n");
        assert_eq!(t.text("mn\r\n"), "MN\r\n");
        // A binary key is remembered by the item.
        assert_eq!(t.text("ms YjE= 1 b\r\nz\r\n"), "HD\r\n");
        assert_eq!(t.text("mg b1 k v\r\n"), "VA 1 kYjE= b\r\nz\r\n");
        assert_eq!(t.text("mg YjE= b k\r\n"), "HD kYjE= b\r\n");
    }

    #[test]
    fn meta_win_stale_and_vivify() {
        let t = T::new(&[]);
        // Vivify: the first miss wins an empty placeholder, later readers
        // see Z; a `t` before `N` shows -1.
        assert_eq!(t.text("mg a N30 v s\r\n"), "VA 0 s0 W\r\n\r\n");
        assert_eq!(t.text("mg a v s\r\n"), "VA 0 s0 Z\r\n\r\n");
        assert_eq!(t.text("mg b t N30\r\n"), "HD t-1 W\r\n");
        assert_eq!(t.text("ms a 1\r\nz\r\n"), "HD\r\n");
        assert_eq!(t.text("mg a v\r\n"), "VA 1\r\nz\r\n");
        // Recache: a TTL under R wins once.
        assert_eq!(t.text("ms r 1 T100\r\nz\r\n"), "HD\r\n");
        assert_eq!(t.text("mg r R200 v\r\n"), "VA 1 W\r\nz\r\n");
        assert_eq!(t.text("mg r R200 v\r\n"), "VA 1 Z\r\nz\r\n");
        assert_eq!(t.text("ms r2 1 T0\r\nz\r\n"), "HD\r\n");
        assert_eq!(t.text("mg r2 R200\r\n"), "HD\r\n");
        // md I: stale, new CAS, one winner, then Z X.
        assert_eq!(t.text("ms s 1\r\nx\r\n"), "HD\r\n");
        let before = t.text("mg s c\r\n");
        assert_eq!(t.text("md s I T30\r\n"), "HD\r\n");
        let after = t.text("mg s c\r\n");
        assert!(after.ends_with(" X W\r\n"), "{after:?}");
        assert_ne!(before.split(' ').nth(1), after.split(' ').nth(1));
        assert_eq!(t.text("mg s v\r\n"), "VA 1 Z X\r\nx\r\n");
        // ms I with an older CAS stores a stale value.
        assert_eq!(t.text("ms s 1 C1 I\r\ny\r\n"), "HD\r\n");
        assert_eq!(t.text("mg s v\r\n"), "VA 1 Z X\r\ny\r\n");
        // A plain set clears the marks.
        assert_eq!(t.text("ms s 1\r\nw\r\n"), "HD\r\n");
        assert_eq!(t.text("mg s v\r\n"), "VA 1\r\nw\r\n");
        assert_eq!(t.text("md nope I\r\n"), "NF\r\n");
    }

    #[test]
    fn meta_delete_arith_debug() {
        let t = T::new(&[]);
        assert_eq!(t.text("md k\r\n"), "NF\r\n");
        // q hides HD only.
        assert_eq!(t.text("md k q\r\n"), "NF\r\n");
        assert_eq!(t.text("md k q k O1\r\n"), "NF kk O1\r\n");
        assert_eq!(t.text("ms k 1\r\nx\r\n"), "HD\r\n");
        assert_eq!(t.text("md k C5 q\r\n"), "EX\r\n");
        assert_eq!(t.text("md k q\r\n"), "");
        assert_eq!(t.text("ma n\r\n"), "NF\r\n");
        assert_eq!(t.text("ma n q\r\n"), "NF\r\n");
        assert_eq!(t.text("ma n N0 J10 v\r\n"), "VA 2\r\n10\r\n");
        assert_eq!(t.text("ma n v\r\n"), "VA 2\r\n11\r\n");
        assert_eq!(t.text("ma n MD D100 v\r\n"), "VA 1\r\n0\r\n");
        assert_eq!(t.text("ma n M+ D5 v t k O2\r\n"), "VA 1 t-1 kn O2\r\n5\r\n");
        assert_eq!(t.text("ma n q v\r\n"), "");
        // A created counter answers even under q.
        assert_eq!(t.text("ma m q N0\r\n"), "HD\r\n");
        assert_eq!(t.text("ma n C1 v\r\n"), "EX\r\n");
        assert_eq!(t.text("ms k 1\r\nx\r\n"), "HD\r\n");
        assert_eq!(
            t.text("ma k v\r\n"),
            "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
        );
        assert_eq!(t.text("me nope\r\n"), "EN\r\n");
        assert_eq!(t.text("ms e 1\r\na\r\n"), "HD\r\n");
        assert_eq!(
            nocas(&t.text("me e\r\n")),
            "ME e exp=-1 la=0 cas=# fetch=no cls=1 size=61\r\n"
        );
        assert_eq!(
            t.text(&("ms e2 100 T100 F3\r\n".to_owned() + &"x".repeat(100) + "\r\n")),
            "HD\r\n"
        );
        let me = t.text("me e2\r\n");
        assert!(me.contains(" fetch=no cls=4 size=165\r\n"), "{me:?}");
        assert!(me.starts_with("ME e2 exp=-"), "{me:?}");
    }

    #[test]
    fn meta_me_allowed_when_dumping_is_disabled() {
        // memcached 1.6.18 answers `me` under -X.
        let t = T::new(&["--disable-dumping"]);
        assert_eq!(t.text("ms e 1\r\na\r\n"), "HD\r\n");
        assert!(t.text("me e\r\n").starts_with("ME e exp=-1 "));
    }
}
