//! The slab memory model: class tables equal to memcached 1.6.18's, chained
//! items, the page budget, eviction order, -M, the crawler, delayed flush,
//! page moves (slabs reassign, automove after a size-mix change), the
//! memory report, the dump walk, and a multi-threaded stress run.

use std::sync::Arc;
use twincache::storage::{
    ClassReport, CrawlOutcome, DumpCursor, Miss, ReassignOutcome, Store, StoreConfig, StoreMode,
    StoreOptions, StoreOutcome,
};

const NOW: u32 = 1_700_000_000;

/// The tables memcached 1.6.18 prints with -vv (chunk size, per page).
// memcached -vv
const DEFAULT: &[(u32, u32)] = &[
    (96, 10922),
    (120, 8738),
    (152, 6898),
    (192, 5461),
    (240, 4369),
    (304, 3449),
    (384, 2730),
    (480, 2184),
    (600, 1747),
    (752, 1394),
    (944, 1110),
    (1184, 885),
    (1480, 708),
    (1856, 564),
    (2320, 451),
    (2904, 361),
    (3632, 288),
    (4544, 230),
    (5680, 184),
    (7104, 147),
    (8880, 118),
    (11104, 94),
    (13880, 75),
    (17352, 60),
    (21696, 48),
    (27120, 38),
    (33904, 30),
    (42384, 24),
    (52984, 19),
    (66232, 15),
    (82792, 12),
    (103496, 10),
    (129376, 8),
    (161720, 6),
    (202152, 5),
    (252696, 4),
    (315872, 3),
    (394840, 2),
    (524288, 2),
];

// memcached -vv -f 2 -n 16
const F2_N16: &[(u32, u32)] = &[
    (64, 16384),
    (128, 8192),
    (256, 4096),
    (512, 2048),
    (1024, 1024),
    (2048, 512),
    (4096, 256),
    (8192, 128),
    (16384, 64),
    (32768, 32),
    (65536, 16),
    (131072, 8),
    (524288, 2),
];

// memcached -vv -f 1.1 -n 100 -o slab_chunk_max=262144
const F1_1_N100_CM256K: &[(u32, u32)] = &[
    (152, 6898),
    (168, 6241),
    (184, 5698),
    (208, 5041),
    (232, 4519),
    (256, 4096),
    (288, 3640),
    (320, 3276),
    (352, 2978),
    (392, 2674),
    (432, 2427),
    (480, 2184),
    (528, 1985),
    (584, 1795),
    (648, 1618),
    (712, 1472),
    (784, 1337),
    (864, 1213),
    (952, 1101),
    (1048, 1000),
    (1152, 910),
    (1272, 824),
    (1400, 748),
    (1544, 679),
    (1704, 615),
    (1880, 557),
    (2072, 506),
    (2280, 459),
    (2512, 417),
    (2768, 378),
    (3048, 344),
    (3352, 312),
    (3688, 284),
    (4056, 258),
    (4464, 234),
    (4912, 213),
    (5408, 193),
    (5952, 176),
    (6552, 160),
    (7208, 145),
    (7928, 132),
    (8720, 120),
    (9592, 109),
    (10552, 99),
    (11608, 90),
    (12768, 82),
    (14048, 74),
    (15456, 67),
    (17008, 61),
    (18712, 56),
    (20584, 50),
    (22648, 46),
    (24912, 42),
    (27408, 38),
    (30152, 34),
    (33168, 31),
    (36488, 28),
    (40136, 26),
    (44152, 23),
    (48568, 21),
    (53424, 19),
    (58768, 17),
    (262144, 4),
];

// memcached -vv -I 2m -f 1.5
const I2M_F1_5: &[(u32, u32)] = &[
    (96, 10922),
    (144, 7281),
    (216, 4854),
    (328, 3196),
    (496, 2114),
    (744, 1409),
    (1120, 936),
    (1680, 624),
    (2520, 416),
    (3784, 277),
    (5680, 184),
    (8520, 123),
    (12784, 82),
    (19176, 54),
    (28768, 36),
    (43152, 24),
    (64728, 16),
    (97096, 10),
    (145648, 7),
    (218472, 4),
    (327712, 3),
    (524288, 2),
];

fn assert_table(cfg: StoreConfig, want: &[(u32, u32)]) {
    let s = Store::new(cfg);
    let got: Vec<(u32, u32)> = s.class_table().iter().map(|&(_, a, b)| (a, b)).collect();
    assert_eq!(got, want);
    let ids: Vec<u32> = s.class_table().iter().map(|&(i, _, _)| i).collect();
    assert_eq!(ids, (1..=want.len() as u32).collect::<Vec<_>>());
}

#[test]
fn class_tables_equal_memcached() {
    assert_table(StoreConfig::default(), DEFAULT);
    assert_table(
        StoreConfig {
            growth_factor: 2.0,
            chunk_size: 16,
            ..Default::default()
        },
        F2_N16,
    );
    assert_table(
        StoreConfig {
            growth_factor: 1.1,
            chunk_size: 100,
            slab_chunk_max: 262_144,
            ..Default::default()
        },
        F1_1_N100_CM256K,
    );
    assert_table(
        StoreConfig {
            growth_factor: 1.5,
            item_size_max: 2 << 20,
            ..Default::default()
        },
        I2M_F1_5,
    );
}

fn stored(o: StoreOutcome) -> bool {
    matches!(o, StoreOutcome::Stored { .. })
}

fn class_of(s: &Store, id: u32) -> ClassReport {
    s.memory_report_at(NOW)
        .classes
        .into_iter()
        .find(|c| c.id == id)
        .unwrap_or_default()
}

#[test]
fn chained_items_up_to_item_size_max() {
    for imax in [1usize << 20, 4 << 20] {
        let s = Store::new(StoreConfig {
            item_size_max: imax,
            ..Default::default()
        });
        // the largest value memcached accepts for key "k": -I minus its
        // accounted header (48 + 8 CAS + key + NUL + CRLF)
        let max = imax - 48 - 8 - 1 - 1 - 2;
        let v: Vec<u8> = (0..max).map(|i| (i * 7 % 251) as u8).collect();
        assert!(stored(s.store(StoreMode::Set, b"k", 0, 0, &v, NOW)));
        assert_eq!(
            s.store(StoreMode::Set, b"j", 0, 0, &vec![0; max + 1], NOW),
            StoreOutcome::TooLarge
        );
        let got = s.get(b"k", NOW, |it| it.value.to_vec()).unwrap();
        assert!(got == v, "chained value differs");
        // append onto a chained item, and a 600 KB item with a small tail
        let mid: Vec<u8> = (0..600_000).map(|i| (i % 13) as u8).collect();
        assert!(stored(s.store(StoreMode::Set, b"m", 5, 0, &mid, NOW)));
        assert!(stored(s.store(StoreMode::Append, b"m", 0, 0, b"tail", NOW)));
        let got = s
            .get(b"m", NOW, |it| (it.value.to_vec(), it.flags))
            .unwrap();
        assert_eq!(got.1, 5);
        assert_eq!(&got.0[..600_000], &mid[..]);
        assert_eq!(&got.0[600_000..], b"tail");
        s.check_invariants().unwrap();
        assert_eq!(s.delete(b"k", NOW), Ok(()));
        assert_eq!(s.delete(b"m", NOW), Ok(()));
        s.check_invariants().unwrap();
        let rep = s.memory_report_at(NOW);
        assert!(rep.classes.iter().all(|c| c.used_chunks == 0), "{rep:?}");
    }
}

#[test]
fn pages_never_exceed_the_limit_and_every_class_is_served() {
    // -m 8: eight pages for 39 classes. memcached would grant every class
    // a page beyond the limit; here classes take pages from each other.
    let s = Store::new(StoreConfig {
        memory_limit: 8 << 20,
        ..Default::default()
    });
    let sizes = [
        10usize, 100, 500, 1000, 3000, 9000, 30_000, 100_000, 300_000, 700_000,
    ];
    for round in 0..3u32 {
        for (i, &n) in sizes.iter().enumerate() {
            for j in 0..20u32 {
                let key = format!("s{i}-{j}-{round}");
                let v = vec![b'a' + i as u8; n];
                let o = s.store(StoreMode::Set, key.as_bytes(), 0, 0, &v, NOW);
                assert!(stored(o), "{key} {n}: {o:?}");
                assert_eq!(s.get(key.as_bytes(), NOW, |it| it.value.len()), Ok(n));
                assert!(s.used_bytes() <= 8 << 20);
            }
        }
        s.check_invariants().unwrap();
    }
    let rep = s.memory_report_at(NOW);
    assert!(rep.classes.iter().map(|c| c.total_pages).sum::<u64>() <= 8);
    assert!(rep.slabs_moved > 0);
}

#[test]
fn eviction_takes_the_oldest_items_across_shards() {
    // two pages of 6898 chunks of class 3 (100-byte values), 64 shards
    let s = Store::new(StoreConfig {
        memory_limit: 2 << 20,
        ..Default::default()
    });
    let v = [b'x'; 100];
    let cap = 2 * 6898u32;
    for i in 0..cap {
        let now = NOW + i / 1000;
        assert!(stored(s.store(
            StoreMode::Set,
            format!("key{i:06}").as_bytes(),
            0,
            0,
            &v,
            now
        )));
    }
    assert_eq!(s.stats().evictions, 0);
    // 1000 more at a later second: the items of the first second go
    let later = NOW + 100;
    for i in cap..cap + 1000 {
        assert!(stored(s.store(
            StoreMode::Set,
            format!("key{i:06}").as_bytes(),
            0,
            0,
            &v,
            later
        )));
    }
    let st = s.stats();
    assert_eq!(st.evictions, 1000);
    assert_eq!(st.evicted_unfetched, 1000);
    let alive = |i: u32| {
        s.get(format!("key{i:06}").as_bytes(), later, |_| ())
            .is_ok()
    };
    for i in 1000..cap + 1000 {
        assert!(alive(i), "key{i} evicted before older ones");
    }
    let c3 = class_of(&s, 3);
    assert_eq!(c3.evicted, 1000);
    assert_eq!(c3.evicted_time, 100);
    s.check_invariants().unwrap();
}

#[test]
fn no_evictions_mode_refuses_and_keeps_every_item() {
    // port of the idea of memcached's t/dash-M.t
    let s = Store::new(StoreConfig {
        memory_limit: 8 << 20,
        evictions: false,
        ..Default::default()
    });
    let v = vec![b'x'; 5000];
    let mut n = 0u32;
    loop {
        let o = s.store(StoreMode::Set, format!("k{n}").as_bytes(), 0, 0, &v, NOW);
        if o == StoreOutcome::OutOfMemory {
            break;
        }
        assert!(stored(o));
        n += 1;
        assert!(n < 100_000);
    }
    // 5,039 bytes: 4,544-byte heads and 600-byte tails, the pages shared by
    // the two classes as they asked (memcached: 8 pages of 184 chunks of
    // 5,680 bytes, 1,472 items)
    assert!(n >= 1400, "{n}");
    for i in 0..n {
        assert!(s.get(format!("k{i}").as_bytes(), NOW, |_| ()).is_ok());
    }
    assert_eq!(s.stats().evictions, 0);
    assert_eq!(s.stats().outofmemory, 1);
    s.check_invariants().unwrap();
}

#[test]
fn crawler_reclaims_expired_items_without_reads() {
    let s = Store::new(StoreConfig::default());
    for i in 0..3000u32 {
        let exp = if i % 3 == 0 { NOW + 5 } else { 0 };
        let v = vec![b'v'; if i % 2 == 0 { 10 } else { 2000 }];
        s.store(StoreMode::Set, format!("k{i}").as_bytes(), 0, exp, &v, NOW);
    }
    assert_eq!(s.crawl(Some(&[0])), CrawlOutcome::BadClass);
    assert_eq!(s.crawl(Some(&[200])), CrawlOutcome::BadClass);
    // crawl only the class of the small values
    assert_eq!(s.crawl(Some(&[1])), CrawlOutcome::Ok);
    assert_eq!(s.crawl(None), CrawlOutcome::Running);
    let rep = s.memory_report_at(NOW);
    assert!(rep.lru_crawler_running);
    assert_eq!(rep.lru_crawler_starts, 1);
    let mut guard = 0;
    while s.memory_report_at(NOW + 6).lru_crawler_running {
        s.maintain(NOW + 6);
        guard += 1;
        assert!(guard < 10_000);
    }
    let c1 = class_of(&s, 1);
    assert_eq!(c1.crawler_reclaimed + c1.reclaimed, 500, "{c1:?}");
    assert_eq!(c1.number, 1000);
    assert!(c1.crawler_items_checked >= 1500);
    // the background sweep takes the rest
    for _ in 0..100 {
        s.maintain(NOW + 6);
    }
    let st = s.stats();
    assert_eq!(st.curr_items, 2000);
    assert_eq!(st.crawler_reclaimed, 1000);
    assert_eq!(st.expired_unfetched, 1000);
    s.check_invariants().unwrap();
}

#[test]
fn delayed_flush_invalidates_exactly_the_items_stored_before() {
    let s = Store::new(StoreConfig::default());
    s.store(StoreMode::Set, b"a", 0, 0, b"1", NOW);
    s.flush_all(NOW + 10, NOW);
    s.store(StoreMode::Set, b"b", 0, 0, b"2", NOW + 10);
    assert!(s.get(b"a", NOW + 9, |_| ()).is_ok());
    s.store(StoreMode::Set, b"c", 0, 0, b"3", NOW + 11);
    assert_eq!(s.get(b"a", NOW + 11, |_| ()), Err(Miss::Flushed));
    assert_eq!(s.get(b"b", NOW + 11, |_| ()), Err(Miss::Flushed));
    assert!(s.get(b"c", NOW + 11, |_| ()).is_ok());
    // the crawler brings memory back after a flush, without reads
    for i in 0..500 {
        s.store(
            StoreMode::Set,
            format!("x{i}").as_bytes(),
            0,
            0,
            b"v",
            NOW + 11,
        );
    }
    s.flush_all(0, NOW + 12);
    for _ in 0..100 {
        s.maintain(NOW + 12);
    }
    assert_eq!(s.stats().curr_items, 0);
    s.check_invariants().unwrap();
}

#[test]
fn slabs_reassign_moves_a_page() {
    let s = Store::new(StoreConfig::default());
    s.set_automove(0);
    let v = [b'v'; 10];
    for i in 0..25_000u32 {
        s.store(StoreMode::Set, format!("k{i:05}").as_bytes(), 0, 0, &v, NOW);
    }
    // 25,000 items of class 1 (10,922 a page): 3 pages
    assert_eq!(class_of(&s, 1).total_pages, 3);
    assert_eq!(s.slabs_reassign(1, 1), ReassignOutcome::Same);
    assert_eq!(s.slabs_reassign(1, 99), ReassignOutcome::BadClass);
    assert_eq!(s.slabs_reassign(-2, 5), ReassignOutcome::BadClass);
    assert_eq!(s.slabs_reassign(5, 1), ReassignOutcome::NoSpare);
    assert_eq!(s.slabs_reassign(1, 5), ReassignOutcome::Ok);
    assert_eq!(s.slabs_reassign(1, 6), ReassignOutcome::Running);
    assert!(s.memory_report_at(NOW).slab_reassign_running);
    let mut guard = 0;
    while s.memory_report_at(NOW).slab_reassign_running {
        s.maintain(NOW);
        guard += 1;
        assert!(guard < 1000);
    }
    let rep = s.memory_report_at(NOW);
    assert_eq!(rep.slabs_moved, 1);
    assert_eq!(class_of(&s, 1).total_pages, 2);
    assert_eq!(class_of(&s, 5).total_pages, 1);
    // the emptiest page moved: its items were rescued into free chunks
    // where there were some, the rest evicted
    let c1 = class_of(&s, 1);
    assert_eq!(c1.number, 25_000 - rep.slab_reassign_evictions_nomem);
    assert_eq!(rep.slab_reassign_evictions_nomem, 25_000 - 2 * 10_922);
    s.check_invariants().unwrap();
    // -1: any class with a spare page
    assert_eq!(s.slabs_reassign(-1, 5), ReassignOutcome::Ok);
    while s.memory_report_at(NOW).slab_reassign_running {
        s.maintain(NOW);
    }
    assert_eq!(class_of(&s, 5).total_pages, 2);
    assert_eq!(s.slabs_reassign(-1, 5), ReassignOutcome::BadClass);
    s.check_invariants().unwrap();
}

#[test]
fn rebalancing_after_the_size_mix_changes() {
    // -m 64 filled with 10 KB values, then a long run of 100-byte values:
    // the mover gives the small class pages until it stops evicting.
    let s = Store::new(StoreConfig::default());
    assert_eq!(s.automove(), 1);
    let big = vec![b'B'; 10 * 1024];
    let mut now = NOW;
    for i in 0..8000u32 {
        s.store(
            StoreMode::Set,
            format!("big{i}").as_bytes(),
            0,
            0,
            &big,
            now,
        );
    }
    // 10 KB items: 8,880-byte heads (class 21) and 1,480-byte tails
    assert_eq!(
        s.memory_report_at(now)
            .classes
            .iter()
            .map(|c| c.total_pages)
            .sum::<u64>(),
        64
    );
    assert!(class_of(&s, 21).total_pages >= 50);
    let small = [b's'; 100];
    let total = 200_000u32;
    let mut evicted_before_last = 0;
    for i in 0..total {
        if i % 4000 == 0 {
            now += 1;
            for _ in 0..8 {
                s.maintain(now);
            }
            if i == total - 40_000 {
                evicted_before_last = class_of(&s, 3).evicted;
            }
        }
        assert!(stored(s.store(
            StoreMode::Set,
            format!("small{i:06}").as_bytes(),
            0,
            0,
            &small,
            now
        )));
    }
    let c3 = class_of(&s, 3);
    // the small class stopped evicting in the last 40k writes
    assert_eq!(c3.evicted, evicted_before_last, "{c3:?}");
    let hits = (total - 100_000..total)
        .filter(|i| {
            s.get(format!("small{i:06}").as_bytes(), now, |_| ())
                .is_ok()
        })
        .count();
    assert!(hits >= 95_000, "only {hits} of the last 100k small keys");
    let rep = s.memory_report_at(now);
    assert!(rep.slabs_moved >= 25, "{}", rep.slabs_moved);
    assert!(rep.classes.iter().map(|c| c.total_pages).sum::<u64>() <= 64);
    s.check_invariants().unwrap();
}

#[test]
fn memory_report_is_consistent_with_stats() {
    let s = Store::new(StoreConfig::default());
    for i in 0..5000u32 {
        let v = vec![b'v'; (i as usize * 37) % 3000];
        s.store(
            StoreMode::Set,
            format!("k{i}").as_bytes(),
            i % 3,
            0,
            &v,
            NOW,
        );
        if i % 7 == 0 {
            let _ = s.get(format!("k{i}").as_bytes(), NOW, |_| ());
        }
    }
    s.store(StoreMode::Set, b"n", 0, 0, b"1", NOW);
    s.arith(b"n", true, 1, NOW);
    s.arith(b"n", false, 1, NOW);
    s.store(StoreMode::Cas(1), b"n", 0, 0, b"1", NOW);
    s.touch(b"n", 0, NOW).unwrap();
    s.delete(b"k1", NOW).unwrap();
    let rep = s.memory_report_at(NOW);
    let st = s.stats();
    let sum = |f: fn(&ClassReport) -> u64| rep.classes.iter().map(f).sum::<u64>();
    assert_eq!(sum(|c| c.number), st.curr_items);
    assert_eq!(sum(|c| c.mem_requested), st.bytes);
    assert_eq!(sum(|c| c.cmd_set), 5001);
    assert_eq!(sum(|c| c.get_hits), 715);
    assert_eq!(sum(|c| c.incr_hits), 1);
    assert_eq!(sum(|c| c.decr_hits), 1);
    assert_eq!(sum(|c| c.cas_badval), 1);
    assert_eq!(sum(|c| c.touch_hits), 1);
    assert_eq!(sum(|c| c.delete_hits), 1);
    assert_eq!(
        rep.active_slabs,
        rep.classes.iter().filter(|c| c.total_pages > 0).count() as u64
    );
    assert_eq!(rep.total_malloced, sum(|c| c.total_pages) << 20);
    for c in &rep.classes {
        assert_eq!(c.total_chunks, c.used_chunks + c.free_chunks, "{c:?}");
        assert_eq!(c.total_chunks, c.total_pages * c.chunks_per_page);
    }
    s.check_invariants().unwrap();
}

#[test]
fn dump_reports_classes_and_last_access() {
    let s = Store::new(StoreConfig::default());
    s.store(StoreMode::Set, b"small", 0, 0, b"v", NOW);
    s.store(StoreMode::Set, b"large", 0, NOW + 50, &[b'x'; 3000], NOW);
    s.get(b"small", NOW + 7, |_| ()).unwrap();
    let mut seen = Vec::new();
    let mut cur = DumpCursor::default();
    while !s.dump(&mut cur, 100, NOW + 8, |e| {
        seen.push((e.key.to_vec(), e.class, e.last_access, e.fetched, e.exptime))
    }) {}
    seen.sort();
    assert_eq!(
        seen,
        vec![
            // 3,039 bytes: a 2,904-byte head in class 16 and a 152-byte tail
            // (memcached: one 3,632-byte chunk of class 17)
            (b"large".to_vec(), 16, NOW, false, NOW + 50),
            (b"small".to_vec(), 1, NOW + 7, true, 0),
        ]
    );
}

#[test]
fn many_threads_with_mover_crawler_and_limit_changes_keep_invariants() {
    let s = Arc::new(Store::with_options(
        StoreConfig {
            slab_page_size: 4096,
            memory_limit: 64 * 4096,
            item_size_max: 16 * 1024,
            ..Default::default()
        },
        StoreOptions {
            shards: 8,
            ..Default::default()
        },
    ));
    s.set_automove(2);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let maint = {
        let (s, stop) = (Arc::clone(&s), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                s.maintain(NOW + i / 50);
                if i.is_multiple_of(37) {
                    let _ = s.slabs_reassign(-1, 1 + (i % 9) as i64);
                }
                if i.is_multiple_of(91) {
                    let _ = s.crawl(None);
                }
                if i.is_multiple_of(200) {
                    s.set_memory_limit((40 + (i as u64 / 200) % 30) * 4096);
                }
                std::thread::yield_now();
            }
        })
    };
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                let mut x = (t + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                for i in 0..30_000u32 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let key = format!("k{}", x % 2000);
                    let key = key.as_bytes();
                    let now = NOW + i / 3000;
                    let len = [5usize, 60, 200, 900, 3000, 9000][(x >> 20) as usize % 6];
                    match x % 8 {
                        0..=2 => {
                            let mut v = key.to_vec();
                            v.resize(len.max(key.len()), b'.');
                            let o = s.store(StoreMode::Set, key, 0, now + (x % 7) as u32, &v, now);
                            assert!(stored(o), "{o:?}");
                        }
                        3..=5 => {
                            let _ = s.get(key, now, |it| {
                                assert!(it.value.starts_with(key) || it.value[0].is_ascii_digit());
                            });
                        }
                        6 => {
                            let _ = s.delete(key, now);
                        }
                        _ => {
                            s.store(StoreMode::Append, key, 0, 0, b"+", now);
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    maint.join().unwrap();
    // let a pending move finish
    for _ in 0..1000 {
        if !s.memory_report().slab_reassign_running {
            break;
        }
        s.maintain(NOW + 100);
    }
    s.check_invariants().unwrap();
    assert!(s.used_bytes() <= 70 * 4096);
    let st = s.stats();
    assert!(st.evictions > 0);
}
