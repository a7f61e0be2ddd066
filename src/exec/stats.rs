//! `stats` and its sub-commands: the general counters, `settings`,
//! `slabs`, `items`, `sizes`, `conns`, `reset`, `replication`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use super::stream::{stream, StreamKind};
use super::{Ctx, Flow};
use crate::protocol::command::Args;
use crate::protocol::encode::{self, Reply};
use crate::storage::{ClassReport, MemoryReport};

pub(super) fn stats(ctx: &Ctx<'_>, args: &Args<'_>, out: &mut Vec<u8>) -> Flow {
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
        Some(b"replication") if ctx.shared.replicator.get().is_some() => {
            if let Some(r) = ctx.shared.replicator.get() {
                for (name, value) in r.stat_lines(false) {
                    encode::stat(out, name, value);
                }
            }
            encode::reply(out, Reply::End);
        }
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
    if let Some(r) = sh.replicator.get() {
        for (name, value) in r.stat_lines(true) {
            encode::stat(out, name, value);
        }
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

#[cfg(test)]
mod tests {
    //! Reply text is compared with what memcached 1.6.18 answered to the
    //! same request (quoted where it matters).

    use super::super::testing::T;
    use super::*;

    fn class(id: u32, base: u64) -> ClassReport {
        ClassReport {
            id,
            chunk_size: 96,
            chunks_per_page: 10922,
            total_pages: 1,
            total_chunks: 10922,
            used_chunks: 2,
            free_chunks: 10920,
            free_chunks_end: 0,
            mem_requested: 136,
            number: 2,
            number_hot: base + 1,
            number_warm: base + 2,
            number_cold: base + 3,
            age: base + 4,
            age_hot: base + 5,
            age_warm: base + 6,
            evicted: base + 7,
            evicted_nonzero: base + 8,
            evicted_time: base + 9,
            outofmemory: base + 10,
            tailrepairs: base + 11,
            reclaimed: base + 12,
            expired_unfetched: base + 13,
            evicted_unfetched: base + 14,
            evicted_active: base + 15,
            crawler_reclaimed: base + 16,
            crawler_items_checked: base + 17,
            lrutail_reflocked: base + 18,
            moves_to_cold: base + 19,
            moves_to_warm: base + 20,
            moves_within_lru: base + 21,
            direct_reclaims: base + 22,
            hits_to_hot: base + 23,
            hits_to_warm: base + 24,
            hits_to_cold: base + 25,
            hits_to_temp: base + 26,
            get_hits: base + 27,
            cmd_set: base + 28,
            delete_hits: base + 29,
            incr_hits: base + 30,
            decr_hits: base + 31,
            cas_hits: base + 32,
            cas_badval: base + 33,
            touch_hits: base + 34,
        }
    }

    fn report() -> MemoryReport {
        let mut idle = class(5, 0);
        // A class with pages but no items: in stats slabs only.
        idle.number = 0;
        // A class with items but (transiently) no pages: stats items only.
        let mut nopages = class(7, 0);
        nopages.total_pages = 0;
        MemoryReport {
            classes: vec![class(1, 0), idle, class(6, 100), nopages],
            active_slabs: 3,
            total_malloced: 3145728,
            ..Default::default()
        }
    }

    #[test]
    fn stats_slabs_golden() {
        let mut out = Vec::new();
        write_slabs(&report(), &mut out);
        let expected = "\
STAT 1:chunk_size 96\r\nSTAT 1:chunks_per_page 10922\r\nSTAT 1:total_pages 1\r\n\
STAT 1:total_chunks 10922\r\nSTAT 1:used_chunks 2\r\nSTAT 1:free_chunks 10920\r\n\
STAT 1:free_chunks_end 0\r\nSTAT 1:get_hits 27\r\nSTAT 1:cmd_set 28\r\n\
STAT 1:delete_hits 29\r\nSTAT 1:incr_hits 30\r\nSTAT 1:decr_hits 31\r\n\
STAT 1:cas_hits 32\r\nSTAT 1:cas_badval 33\r\nSTAT 1:touch_hits 34\r\n\
STAT 5:chunk_size 96\r\nSTAT 5:chunks_per_page 10922\r\nSTAT 5:total_pages 1\r\n\
STAT 5:total_chunks 10922\r\nSTAT 5:used_chunks 2\r\nSTAT 5:free_chunks 10920\r\n\
STAT 5:free_chunks_end 0\r\nSTAT 5:get_hits 27\r\nSTAT 5:cmd_set 28\r\n\
STAT 5:delete_hits 29\r\nSTAT 5:incr_hits 30\r\nSTAT 5:decr_hits 31\r\n\
STAT 5:cas_hits 32\r\nSTAT 5:cas_badval 33\r\nSTAT 5:touch_hits 34\r\n\
STAT 6:chunk_size 96\r\nSTAT 6:chunks_per_page 10922\r\nSTAT 6:total_pages 1\r\n\
STAT 6:total_chunks 10922\r\nSTAT 6:used_chunks 2\r\nSTAT 6:free_chunks 10920\r\n\
STAT 6:free_chunks_end 0\r\nSTAT 6:get_hits 127\r\nSTAT 6:cmd_set 128\r\n\
STAT 6:delete_hits 129\r\nSTAT 6:incr_hits 130\r\nSTAT 6:decr_hits 131\r\n\
STAT 6:cas_hits 132\r\nSTAT 6:cas_badval 133\r\nSTAT 6:touch_hits 134\r\n\
STAT active_slabs 3\r\nSTAT total_malloced 3145728\r\nEND\r\n";
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn stats_slabs_and_items_of_an_empty_cache() {
        // memcached 1.6.18, fresh: `stats slabs` ->
        // "STAT active_slabs 0\r\nSTAT total_malloced 0\r\nEND\r\n";
        // `stats items` -> "END\r\n".
        let mut out = Vec::new();
        write_slabs(&MemoryReport::default(), &mut out);
        assert_eq!(
            out,
            b"STAT active_slabs 0\r\nSTAT total_malloced 0\r\nEND\r\n"
        );
        out.clear();
        write_items(&MemoryReport::default(), true, &mut out);
        assert_eq!(out, b"END\r\n");
    }

    #[test]
    fn stats_items_golden() {
        let mut out = Vec::new();
        let r = MemoryReport {
            classes: vec![class(1, 0)],
            ..Default::default()
        };
        write_items(&r, true, &mut out);
        let expected = "\
STAT items:1:number 2\r\nSTAT items:1:number_hot 1\r\nSTAT items:1:number_warm 2\r\n\
STAT items:1:number_cold 3\r\nSTAT items:1:age_hot 5\r\nSTAT items:1:age_warm 6\r\n\
STAT items:1:age 4\r\nSTAT items:1:mem_requested 136\r\nSTAT items:1:evicted 7\r\n\
STAT items:1:evicted_nonzero 8\r\nSTAT items:1:evicted_time 9\r\n\
STAT items:1:outofmemory 10\r\nSTAT items:1:tailrepairs 11\r\n\
STAT items:1:reclaimed 12\r\nSTAT items:1:expired_unfetched 13\r\n\
STAT items:1:evicted_unfetched 14\r\nSTAT items:1:evicted_active 15\r\n\
STAT items:1:crawler_reclaimed 16\r\nSTAT items:1:crawler_items_checked 17\r\n\
STAT items:1:lrutail_reflocked 18\r\nSTAT items:1:moves_to_cold 19\r\n\
STAT items:1:moves_to_warm 20\r\nSTAT items:1:moves_within_lru 21\r\n\
STAT items:1:direct_reclaims 22\r\nSTAT items:1:hits_to_hot 23\r\n\
STAT items:1:hits_to_warm 24\r\nSTAT items:1:hits_to_cold 25\r\n\
STAT items:1:hits_to_temp 26\r\nEND\r\n";
        assert_eq!(String::from_utf8(out).unwrap(), expected);

        // Without the LRU maintainer, as memcached -o no_lru_maintainer.
        let mut out = Vec::new();
        write_items(&r, false, &mut out);
        let expected = "\
STAT items:1:number 2\r\nSTAT items:1:age 4\r\nSTAT items:1:mem_requested 136\r\n\
STAT items:1:evicted 7\r\nSTAT items:1:evicted_nonzero 8\r\n\
STAT items:1:evicted_time 9\r\nSTAT items:1:outofmemory 10\r\n\
STAT items:1:tailrepairs 11\r\nSTAT items:1:reclaimed 12\r\n\
STAT items:1:expired_unfetched 13\r\nSTAT items:1:evicted_unfetched 14\r\n\
STAT items:1:crawler_reclaimed 16\r\nSTAT items:1:crawler_items_checked 17\r\n\
STAT items:1:lrutail_reflocked 18\r\nEND\r\n";
        assert_eq!(String::from_utf8(out).unwrap(), expected);

        // Only classes holding items are listed, in report order.
        let mut out = Vec::new();
        write_items(&report(), true, &mut out);
        let text = String::from_utf8(out).unwrap();
        let ids: Vec<&str> = text
            .lines()
            .filter_map(|l| {
                l.strip_suffix(" 2")
                    .and_then(|l| l.strip_prefix("STAT items:"))
            })
            .filter(|l| l.ends_with(":number"))
            .collect();
        assert_eq!(ids, vec!["1:number", "6:number", "7:number"]);
        assert!(!text.contains("items:5:"));
    }

    #[test]
    fn general_stats_memory_fields_in_memcached_order() {
        let t = T::new(&[]);
        let text = t.text("stats\r\n");
        assert!(text.len() < 4096, "{} bytes", text.len());
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("STAT "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        // The tail of memcached 1.6.18's `stats` (defaults), minus
        // malloc_fails, log_*, unexpected_napi_ids, round_robin_fallback.
        let tail = [
            "hash_power_level",
            "hash_bytes",
            "hash_is_expanding",
            "slab_reassign_rescues",
            "slab_reassign_chunk_rescues",
            "slab_reassign_evictions_nomem",
            "slab_reassign_inline_reclaim",
            "slab_reassign_busy_items",
            "slab_reassign_busy_deletes",
            "slab_reassign_running",
            "slabs_moved",
            "lru_crawler_running",
            "lru_crawler_starts",
            "lru_maintainer_juggles",
            "bytes",
            "curr_items",
            "total_items",
            "slab_global_page_pool",
            "expired_unfetched",
            "evicted_unfetched",
            "evicted_active",
            "evictions",
            "reclaimed",
            "crawler_reclaimed",
            "crawler_items_checked",
            "lrutail_reflocked",
            "moves_to_cold",
            "moves_to_warm",
            "moves_within_lru",
            "direct_reclaims",
            "lru_bumps_dropped",
            "twincache_version",
        ];
        let at = names.iter().position(|&n| n == "hash_power_level").unwrap();
        assert_eq!(&names[at..], &tail[..]);
        assert!(text.ends_with("END\r\n"));

        // Off switches drop their fields, as in memcached (observed with
        // -o no_slab_reassign,no_lru_crawler,no_lru_maintainer).
        let t = T::new(&["-o", "no_slab_reassign,no_lru_crawler,no_lru_maintainer"]);
        let text = t.text("stats\r\n");
        for gone in [
            "slab_reassign_rescues",
            "slabs_moved",
            "lru_crawler_running",
            "lru_crawler_starts",
            "lru_maintainer_juggles",
            "evicted_active",
            "moves_to_cold",
            "direct_reclaims",
            "lru_bumps_dropped",
        ] {
            assert!(!text.contains(&format!("STAT {gone} ")), "{gone}");
        }
        // `lru_crawler enable` brings the crawler lines back.
        assert_eq!(t.text("lru_crawler enable\r\n"), "OK\r\n");
        assert!(t.text("stats\r\n").contains("STAT lru_crawler_starts "));
    }

    #[test]
    fn idle_kicks_sits_after_auth_errors() {
        let t = T::new(&["-o", "idle_timeout=10"]);
        let text = t.text("stats\r\n");
        assert!(
            text.contains("STAT auth_errors 0\r\nSTAT idle_kicks 0\r\nSTAT bytes_read "),
            "{text}"
        );
    }

    #[test]
    fn sizes() {
        let t = T::new(&[]);
        // memcached: `stats sizes` -> "STAT sizes_status disabled\r\nEND\r\n";
        // `stats sizes_enable` -> "STAT sizes_status enabled\r\n" (no END).
        assert_eq!(
            t.text("stats sizes\r\n"),
            "STAT sizes_status disabled\r\nEND\r\n"
        );
        assert_eq!(
            t.text("stats sizes_enable\r\n"),
            "STAT sizes_status enabled\r\n"
        );
        assert_eq!(t.setting("track_sizes"), "yes");
        assert_eq!(t.text("stats sizes\r\n"), "END\r\n");
        let mut input = String::new();
        for i in 0..10 {
            input.push_str(&format!("set s{i} 0 0 1 noreply\r\nx\r\n"));
        }
        input.push_str(&format!(
            "set big 0 0 300 noreply\r\n{}\r\n",
            "y".repeat(300)
        ));
        t.run(input.as_bytes());
        let text = t.text("stats sizes\r\n");
        let mut total = 0;
        for line in text.lines().filter(|l| l.starts_with("STAT ")) {
            let mut it = line.split(' ').skip(1);
            let bucket: u64 = it.next().unwrap().parse().unwrap();
            let count: u64 = it.next().unwrap().parse().unwrap();
            assert_eq!(bucket % 32, 0);
            total += count;
        }
        assert_eq!(total, 11);
        assert!(text.ends_with("END\r\n"));
        assert_eq!(
            t.text("stats sizes_disable\r\n"),
            "STAT sizes_status disabled\r\n"
        );
        assert_eq!(t.setting("track_sizes"), "no");
        // -o track_sizes starts with tracking on.
        assert_eq!(
            T::new(&["-o", "track_sizes"]).text("stats sizes\r\n"),
            "END\r\n"
        );
    }
}
