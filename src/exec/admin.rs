//! Operator commands: `stats cachedump`, `slabs reassign`, the LRU
//! crawler (`crawl`, `metadump`, `sleep`, `enable`), `lru` tuning and
//! `cache_memlimit`.

use std::sync::atomic::Ordering;

use super::stream::{stream, StreamKind};
use super::{Ctx, Flow};
use crate::protocol::command::{CachedumpArgs, ClassSet, CrawlTarget, Float, Num};
use crate::protocol::encode::{self, Reply};
use crate::storage::{CrawlOutcome, ReassignOutcome};

/// `stats cachedump <class> <limit>`: checks in memcached's order
/// (dumping allowed, argument count, numbers, class id < 64).
pub(super) fn cachedump(ctx: &Ctx<'_>, spec: CachedumpArgs<'_>, out: &mut Vec<u8>) -> Flow {
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

pub(super) fn slabs_reassign(
    ctx: &Ctx<'_>,
    src: Num<'_, i32>,
    dst: Num<'_, i32>,
    out: &mut Vec<u8>,
) {
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

pub(super) fn crawl(ctx: &Ctx<'_>, target: CrawlTarget<'_>, out: &mut Vec<u8>) {
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
pub(super) fn metadump(ctx: &Ctx<'_>, target: CrawlTarget<'_>, out: &mut Vec<u8>) -> Flow {
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

/// `lru_crawler sleep <us>`: at most one second.
pub(super) fn crawler_sleep(ctx: &Ctx<'_>, micros: u32, out: &mut Vec<u8>) {
    if micros > 1_000_000 {
        encode::reply(out, Reply::CrawlerSleepTooLong);
    } else {
        ctx.shared.runtime().lru_crawler_sleep = micros;
        encode::reply(out, Reply::Ok);
    }
}

/// `lru_crawler enable|disable`.
pub(super) fn crawler_enable(ctx: &Ctx<'_>, on: bool, out: &mut Vec<u8>) {
    let mut rt = ctx.shared.runtime();
    if on && rt.lru_crawler {
        // memcached cannot start a second crawler thread.
        encode::reply(out, Reply::CrawlerStartFailed);
    } else {
        rt.lru_crawler = on;
        encode::reply(out, Reply::Ok);
    }
}

/// `lru tune <hot pct> <warm pct> <hot factor> <warm factor>`.
pub(super) fn lru_tune(
    ctx: &Ctx<'_>,
    hot_pct: u32,
    warm_pct: u32,
    hot_factor: Float,
    warm_factor: Float,
    noreply: bool,
    out: &mut Vec<u8>,
) {
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

/// `lru mode flat|segmented` (only with the LRU maintainer).
pub(super) fn lru_mode(ctx: &Ctx<'_>, segmented: bool, noreply: bool, out: &mut Vec<u8>) {
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

/// `lru temp_ttl <n>` (only with the LRU maintainer; negative: off).
pub(super) fn lru_temp_ttl(ctx: &Ctx<'_>, ttl: i32, noreply: bool, out: &mut Vec<u8>) {
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

pub(super) fn cache_memlimit(ctx: &Ctx<'_>, megabytes: u64, noreply: bool, out: &mut Vec<u8>) {
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

#[cfg(test)]
mod tests {
    //! Reply text is compared with what memcached 1.6.18 answered to the
    //! same request (quoted where it matters).

    use super::super::testing::T;

    #[test]
    fn slabs_commands() {
        let t = T::new(&[]);
        assert_eq!(t.text("slabs automove 0\r\n"), "OK\r\n");
        assert_eq!(t.setting("slab_automove"), "0");
        assert_eq!(t.text("slabs automove 2\r\n"), "OK\r\n");
        assert_eq!(t.setting("slab_automove"), "2");
        assert_eq!(t.text("slabs automove 1 noreply\r\n"), "");
        assert_eq!(t.setting("slab_automove"), "1");
        assert_eq!(t.text("slabs automove 3\r\n"), "ERROR\r\n");
        assert_eq!(
            t.text("slabs automove -1\r\n"),
            "CLIENT_ERROR bad command line format\r\n"
        );
        assert_eq!(t.text("slabs automove ratio 0.5\r\n"), "OK\r\n");
        assert_eq!(t.setting("slab_automove_ratio"), "0.50");
        assert_eq!(
            t.text("slabs reassign x 1\r\n"),
            "CLIENT_ERROR bad command line format\r\n"
        );
        assert_eq!(t.text("slabs reassign 1 2 noreply\r\n"), "ERROR\r\n");
        // The outcome is the store's; its reply is one of memcached's.
        let r = t.text("slabs reassign 1 2\r\n");
        assert!(
            [
                "OK\r\n",
                "BUSY currently processing reassign request\r\n",
                "BADCLASS invalid src or dst class id\r\n",
                "NOSPARE source class has no spare pages\r\n",
                "SAME src and dst class are identical\r\n"
            ]
            .contains(&r.as_str()),
            "{r}"
        );
        // -o slab_automove=N is the starting mode.
        assert_eq!(
            T::new(&["-o", "slab_automove=2"]).setting("slab_automove"),
            "2"
        );
        // -o no_slab_reassign: memcached checks this before the numbers.
        let t = T::new(&["-o", "no_slab_reassign"]);
        for line in ["slabs reassign 1 2\r\n", "slabs reassign x y\r\n"] {
            assert_eq!(t.text(line), "CLIENT_ERROR slab reassignment disabled\r\n");
        }
    }

    #[test]
    fn lru_crawler_commands() {
        let t = T::new(&[]);
        assert_eq!(t.setting("lru_crawler"), "yes");
        assert_eq!(
            t.text("lru_crawler enable\r\n"),
            "ERROR failed to start lru crawler thread\r\n"
        );
        assert_eq!(t.text("lru_crawler crawl all\r\n"), "OK\r\n");
        assert_eq!(
            t.text("lru_crawler crawl hash\r\n"),
            "ERROR an unknown error happened\r\n"
        );
        assert_eq!(
            t.text("lru_crawler crawl ,\r\n"),
            "NOTSTARTED no items to crawl\r\n"
        );
        for bad in ["0", "64", "1,x", "ALL"] {
            assert_eq!(
                t.text(&format!("lru_crawler crawl {bad}\r\n")),
                "BADCLASS invalid class id\r\n"
            );
            assert_eq!(
                t.text(&format!("lru_crawler metadump {bad}\r\n")),
                "BADCLASS invalid class id\r\n"
            );
        }
        assert_eq!(
            t.text("lru_crawler metadump ,\r\n"),
            "NOTSTARTED no items to crawl\r\n"
        );
        assert_eq!(t.text("lru_crawler sleep 1000000\r\n"), "OK\r\n");
        assert_eq!(
            t.text("lru_crawler sleep 1000001\r\n"),
            "CLIENT_ERROR sleep must be one second or less\r\n"
        );
        assert_eq!(t.setting("lru_crawler_sleep"), "1000000");
        assert_eq!(t.text("lru_crawler tocrawl 4294967297\r\n"), "OK\r\n");
        assert_eq!(t.setting("lru_crawler_tocrawl"), "1");
        assert_eq!(t.text("lru_crawler disable\r\n"), "OK\r\n");
        assert_eq!(t.text("lru_crawler disable\r\n"), "OK\r\n");
        assert_eq!(t.setting("lru_crawler"), "no");
        for line in [
            "lru_crawler crawl all\r\n",
            "lru_crawler crawl 0\r\n",
            "lru_crawler metadump all\r\n",
        ] {
            assert_eq!(t.text(line), "CLIENT_ERROR lru crawler disabled\r\n");
        }
        assert_eq!(t.text("lru_crawler enable\r\n"), "OK\r\n");
        assert_eq!(t.setting("lru_crawler"), "yes");
    }

    #[test]
    fn dumping_disabled() {
        let t = T::new(&["--disable-dumping"]);
        for line in [
            "stats cachedump 1 1\r\n",
            "stats cachedump\r\n",
            "stats cachedump x y\r\n",
        ] {
            assert_eq!(t.text(line), "CLIENT_ERROR stats cachedump not allowed\r\n");
        }
        for line in ["lru_crawler metadump all\r\n", "lru_crawler metadump x\r\n"] {
            assert_eq!(t.text(line), "ERROR metadump not allowed\r\n");
        }
        assert_eq!(t.text("lru_crawler disable\r\n"), "OK\r\n");
        assert_eq!(
            t.text("lru_crawler metadump all\r\n"),
            "CLIENT_ERROR lru crawler disabled\r\n"
        );
    }

    #[test]
    fn cachedump_errors() {
        let t = T::new(&[]);
        assert_eq!(
            t.text("stats cachedump\r\n"),
            "CLIENT_ERROR bad command line\r\n"
        );
        assert_eq!(
            t.text("stats cachedump 1\r\n"),
            "CLIENT_ERROR bad command line\r\n"
        );
        for line in [
            "stats cachedump x 1\r\n",
            "stats cachedump 1 x\r\n",
            "stats cachedump -1 1\r\n",
            "stats cachedump 300 x\r\n",
        ] {
            assert_eq!(t.text(line), "CLIENT_ERROR bad command line format\r\n");
        }
        for line in ["stats cachedump 64 1\r\n", "stats cachedump 200 1\r\n"] {
            assert_eq!(t.text(line), "CLIENT_ERROR Illegal slab id\r\n");
        }
        assert_eq!(t.text("stats cachedump 63 1\r\n"), "END\r\n");
    }

    #[test]
    fn lru_commands() {
        let t = T::new(&[]);
        assert_eq!(t.text("lru tune 10 10 0.5 1.5\r\n"), "OK\r\n");
        assert_eq!(t.setting("hot_lru_pct"), "10");
        assert_eq!(t.setting("warm_lru_pct"), "10");
        assert_eq!(t.setting("hot_max_factor"), "0.50");
        assert_eq!(t.setting("warm_max_factor"), "1.50");
        assert_eq!(
            t.text("lru tune 50 40 0.5 1.5\r\n"),
            "ERROR hot and warm pcts must not exceed 80\r\n"
        );
        assert_eq!(
            t.text("lru tune 10 10 0 1.5\r\n"),
            "ERROR hot/warm age factors must be greater than 0\r\n"
        );
        assert_eq!(t.text("lru tune 50 40 0.5 1.5 noreply\r\n"), "");
        assert_eq!(t.text("lru mode flat\r\n"), "OK\r\n");
        assert_eq!(t.setting("lru_segmented"), "no");
        assert_eq!(t.text("lru mode segmented\r\n"), "OK\r\n");
        assert_eq!(t.setting("lru_segmented"), "yes");
        assert_eq!(t.text("lru temp_ttl 100\r\n"), "OK\r\n");
        assert_eq!(t.setting("temp_lru"), "yes");
        assert_eq!(t.setting("temporary_ttl"), "100");
        assert_eq!(t.text("lru temp_ttl -1\r\n"), "OK\r\n");
        assert_eq!(t.setting("temp_lru"), "no");
        assert_eq!(t.setting("temporary_ttl"), "100");
        assert_eq!(t.text("lru x\r\n"), "ERROR\r\n");
        // Without the LRU maintainer mode and temp_ttl are refused.
        let t = T::new(&["-o", "no_lru_maintainer"]);
        assert_eq!(t.text("lru mode flat\r\n"), "ERROR\r\n");
        assert_eq!(t.text("lru temp_ttl 5\r\n"), "ERROR\r\n");
        assert_eq!(t.text("lru tune 10 10 0.5 1.5\r\n"), "OK\r\n");
    }
}
