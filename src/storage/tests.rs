//! Unit tests of the store: every operation and outcome.

use super::*;

const NOW: u32 = 1_000_000;

fn cfg(limit: u64) -> StoreConfig {
    StoreConfig {
        memory_limit: limit,
        ..Default::default()
    }
}

/// Tiny pages so that a test can hold a handful of items: 384-byte pages,
/// 4 chunks of class 1 (96 bytes: a 2-byte key and up to 60 bytes of
/// value), 3 of class 2 (120), 2 of class 3 (152).
fn paged(pages: u64) -> StoreConfig {
    StoreConfig {
        slab_page_size: 384,
        memory_limit: pages * 384,
        ..Default::default()
    }
}

fn one_shard(c: StoreConfig) -> Store {
    Store::with_options(
        c,
        StoreOptions {
            shards: 1,
            initial_buckets: 4,
            seed: Some((1, 2)),
            ..Default::default()
        },
    )
}

fn val(s: &Store, key: &[u8], now: u32) -> Result<Vec<u8>, Miss> {
    s.get(key, now, |it| it.value.to_vec())
}

fn set(s: &Store, key: &[u8], v: &[u8]) -> StoreOutcome {
    s.store(StoreMode::Set, key, 0, 0, v, NOW)
}

fn cas_of(s: &Store, key: &[u8]) -> u64 {
    s.get(key, NOW, |it| it.cas).unwrap()
}

impl Store {
    /// Keys of one shard from the LRU head to the tail.
    fn lru_keys(&self, si: usize) -> Vec<Vec<u8>> {
        let g = self.lock(si);
        (1..g.lru.len()).flat_map(|c| g.lru_keys(c)).collect()
    }
}

#[test]
fn set_get_overwrite_delete() {
    let s = Store::new(cfg(1 << 20));
    assert_eq!(val(&s, b"a", NOW), Err(Miss::NotFound));
    assert!(matches!(set(&s, b"a", b"one"), StoreOutcome::Stored { .. }));
    assert_eq!(val(&s, b"a", NOW).unwrap(), b"one");
    assert!(matches!(
        set(&s, b"a", b"two!"),
        StoreOutcome::Stored { .. }
    ));
    assert_eq!(val(&s, b"a", NOW).unwrap(), b"two!");
    let v = s
        .get(b"a", NOW, |it| (it.key.to_vec(), it.flags, it.exptime))
        .unwrap();
    assert_eq!(v, (b"a".to_vec(), 0, 0));
    assert_eq!(s.delete(b"a", NOW), Ok(()));
    assert_eq!(s.delete(b"a", NOW), Err(Miss::NotFound));
    assert_eq!(val(&s, b"a", NOW), Err(Miss::NotFound));
    let st = s.stats();
    assert_eq!((st.curr_items, st.total_items, st.bytes), (0, 2, 0));
    s.check_invariants().unwrap();
}

#[test]
fn binary_keys_and_values_and_limits_on_keys() {
    let s = Store::new(cfg(1 << 20));
    let key: Vec<u8> = (0..=249u8).collect();
    let value: Vec<u8> = (0..=255u8).rev().collect();
    assert!(matches!(set(&s, &key, &value), StoreOutcome::Stored { .. }));
    assert_eq!(val(&s, &key, NOW).unwrap(), value);
    let long = [b'k'; 251];
    assert_eq!(set(&s, &long, b"x"), StoreOutcome::NotStored);
    assert_eq!(set(&s, b"", b"x"), StoreOutcome::NotStored);
    assert_eq!(val(&s, &long, NOW), Err(Miss::NotFound));
    assert_eq!(s.arith(&long, true, 1, NOW), ArithOutcome::NotFound);
    assert!(matches!(set(&s, b"e", b""), StoreOutcome::Stored { .. }));
    assert_eq!(val(&s, b"e", NOW).unwrap(), b"");
}

#[test]
fn flags_and_exptime_are_kept() {
    let s = Store::new(cfg(1 << 20));
    s.store(StoreMode::Set, b"k", u32::MAX, NOW + 10, b"v", NOW);
    let (f, e) = s.get(b"k", NOW, |it| (it.flags, it.exptime)).unwrap();
    assert_eq!((f, e), (u32::MAX, NOW + 10));
}

#[test]
fn add_and_replace() {
    let s = Store::new(cfg(1 << 20));
    assert_eq!(
        s.store(StoreMode::Replace, b"k", 0, 0, b"r", NOW),
        StoreOutcome::NotStored
    );
    assert!(matches!(
        s.store(StoreMode::Add, b"k", 0, 0, b"a", NOW),
        StoreOutcome::Stored { .. }
    ));
    assert_eq!(
        s.store(StoreMode::Add, b"k", 0, 0, b"b", NOW),
        StoreOutcome::NotStored
    );
    assert_eq!(val(&s, b"k", NOW).unwrap(), b"a");
    assert!(matches!(
        s.store(StoreMode::Replace, b"k", 3, 0, b"r", NOW),
        StoreOutcome::Stored { .. }
    ));
    assert_eq!(
        s.get(b"k", NOW, |it| (it.value.to_vec(), it.flags))
            .unwrap(),
        (b"r".to_vec(), 3)
    );
    // add over an expired item stores
    s.store(StoreMode::Set, b"x", 0, NOW + 1, b"old", NOW);
    assert!(matches!(
        s.store(StoreMode::Add, b"x", 0, 0, b"new", NOW + 1),
        StoreOutcome::Stored { .. }
    ));
    assert_eq!(val(&s, b"x", NOW + 5).unwrap(), b"new");
}

#[test]
fn append_prepend_keep_flags_and_expiry() {
    let s = Store::new(cfg(1 << 20));
    assert_eq!(
        s.store(StoreMode::Append, b"k", 0, 0, b"x", NOW),
        StoreOutcome::NotStored
    );
    assert_eq!(
        s.store(StoreMode::Prepend, b"k", 0, 0, b"x", NOW),
        StoreOutcome::NotStored
    );
    s.store(StoreMode::Set, b"k", 7, NOW + 100, b"mid", NOW);
    assert!(matches!(
        s.store(StoreMode::Append, b"k", 1, 5, b"-end", NOW),
        StoreOutcome::Stored { .. }
    ));
    assert!(matches!(
        s.store(StoreMode::Prepend, b"k", 2, 6, b"start-", NOW),
        StoreOutcome::Stored { .. }
    ));
    let got = s
        .get(b"k", NOW, |it| (it.value.to_vec(), it.flags, it.exptime))
        .unwrap();
    assert_eq!(got, (b"start-mid-end".to_vec(), 7, NOW + 100));
    s.check_invariants().unwrap();
}

#[test]
fn append_past_item_size_max_is_not_stored() {
    let s = Store::new(StoreConfig {
        item_size_max: 1024,
        ..cfg(1 << 20)
    });
    // largest value for key "k", flags 0, CAS on: 1024 - 48 - 8 - 1 - 1 - 2
    let max = 1024 - 60;
    assert!(matches!(
        set(&s, b"k", &vec![b'a'; max]),
        StoreOutcome::Stored { .. }
    ));
    assert_eq!(set(&s, b"j", &vec![b'a'; max + 1]), StoreOutcome::TooLarge);
    assert!(matches!(
        set(&s, b"j", &vec![b'a'; max - 1]),
        StoreOutcome::Stored { .. }
    ));
    assert_eq!(
        s.store(StoreMode::Append, b"j", 0, 0, b"bb", NOW),
        StoreOutcome::NotStored
    );
    assert_eq!(
        s.store(StoreMode::Prepend, b"j", 0, 0, b"bb", NOW),
        StoreOutcome::NotStored
    );
    assert!(matches!(
        s.store(StoreMode::Append, b"j", 0, 0, b"b", NOW),
        StoreOutcome::Stored { .. }
    ));
    // the data alone too large: TooLarge for append too
    assert_eq!(
        s.store(StoreMode::Append, b"j", 0, 0, &vec![b'a'; max + 1], NOW),
        StoreOutcome::TooLarge
    );
    // non-zero flags cost 4 bytes
    assert_eq!(
        s.store(StoreMode::Set, b"f", 1, 0, &vec![b'a'; max - 3], NOW),
        StoreOutcome::TooLarge
    );
    assert!(matches!(
        s.store(StoreMode::Set, b"f", 1, 0, &vec![b'a'; max - 4], NOW),
        StoreOutcome::Stored { .. }
    ));
}

#[test]
fn too_large_set_unlinks_the_old_value_but_add_does_not() {
    let s = Store::new(StoreConfig {
        item_size_max: 1024,
        ..cfg(1 << 20)
    });
    set(&s, b"k", b"old");
    assert_eq!(set(&s, b"k", &[0; 2000]), StoreOutcome::TooLarge);
    assert_eq!(val(&s, b"k", NOW), Err(Miss::NotFound));
    set(&s, b"k", b"old");
    assert_eq!(
        s.store(StoreMode::Replace, b"k", 0, 0, &[0; 2000], NOW),
        StoreOutcome::TooLarge
    );
    assert_eq!(val(&s, b"k", NOW).unwrap(), b"old");
}

#[test]
fn cas_rules() {
    let s = Store::new(cfg(1 << 20));
    assert_eq!(
        s.store(StoreMode::Cas(1), b"k", 0, 0, b"v", NOW),
        StoreOutcome::NotFound
    );
    let StoreOutcome::Stored { cas: c1 } = set(&s, b"k", b"v1") else {
        panic!()
    };
    assert_eq!(cas_of(&s, b"k"), c1);
    assert_eq!(
        s.store(StoreMode::Cas(c1 + 1), b"k", 0, 0, b"v2", NOW),
        StoreOutcome::Exists
    );
    let StoreOutcome::Stored { cas: c2 } = s.store(StoreMode::Cas(c1), b"k", 0, 0, b"v2", NOW)
    else {
        panic!()
    };
    assert!(c2 > c1);
    assert_eq!(val(&s, b"k", NOW).unwrap(), b"v2");
    assert_eq!(
        s.store(StoreMode::Cas(c1), b"k", 0, 0, b"v3", NOW),
        StoreOutcome::Exists
    );
    // uniques grow across keys and operations
    let StoreOutcome::Stored { cas: c3 } = set(&s, b"other", b"1") else {
        panic!()
    };
    assert!(c3 > c2);
    let ArithOutcome::Value { cas: c4, .. } = s.arith(b"other", true, 1, NOW) else {
        panic!()
    };
    assert!(c4 > c3);
    assert_eq!(cas_of(&s, b"other"), c4);
    // cas on an expired item: NotFound
    s.store(StoreMode::Set, b"e", 0, NOW + 1, b"v", NOW);
    let c = cas_of(&s, b"e");
    assert_eq!(
        s.store(StoreMode::Cas(c), b"e", 0, 0, b"w", NOW + 2),
        StoreOutcome::NotFound
    );
}

#[test]
fn cas_disabled_like_memcached_dash_capital_c() {
    let s = Store::new(StoreConfig {
        cas_enabled: false,
        ..cfg(1 << 20)
    });
    assert_eq!(set(&s, b"k", b"v"), StoreOutcome::Stored { cas: 0 });
    assert_eq!(cas_of(&s, b"k"), 0);
    assert_eq!(
        s.store(StoreMode::Cas(0), b"k", 0, 0, b"w", NOW),
        StoreOutcome::Exists
    );
    assert_eq!(
        s.store(StoreMode::Cas(1), b"k", 0, 0, b"w", NOW),
        StoreOutcome::Exists
    );
    assert_eq!(
        s.store(StoreMode::Cas(0), b"n", 0, 0, b"w", NOW),
        StoreOutcome::NotFound
    );
    assert_eq!(s.arith(b"k", true, 1, NOW), ArithOutcome::NonNumeric);
    set(&s, b"n", b"1");
    assert_eq!(
        s.arith(b"n", true, 5, NOW),
        ArithOutcome::Value { value: 6, cas: 0 }
    );
    // without CAS an item is charged 8 bytes less (probed on memcached -C)
    assert_eq!(s.stats().bytes, item_size(1, 1, 0, false) * 2);
    assert_eq!(item_size(1, 1, 0, false), 48 + 1 + 1 + 1 + 2);
    // flush works without CAS too
    s.flush_all(0, NOW);
    assert_eq!(val(&s, b"k", NOW), Err(Miss::Flushed));
    set(&s, b"k", b"again");
    assert_eq!(val(&s, b"k", NOW).unwrap(), b"again");
}

#[test]
fn expiry_is_lazy_and_reported() {
    let s = Store::new(cfg(1 << 20));
    s.store(StoreMode::Set, b"k", 0, NOW + 10, b"v", NOW);
    assert_eq!(val(&s, b"k", NOW + 9).unwrap(), b"v");
    assert_eq!(val(&s, b"k", NOW + 10), Err(Miss::Expired));
    assert_eq!(val(&s, b"k", NOW + 10), Err(Miss::NotFound));
    assert_eq!(s.stats().curr_items, 0);
    s.store(StoreMode::Set, b"d", 0, NOW + 10, b"v", NOW);
    assert_eq!(s.delete(b"d", NOW + 11), Err(Miss::Expired));
    s.store(StoreMode::Set, b"t", 0, NOW + 10, b"v", NOW);
    assert_eq!(s.touch(b"t", NOW + 20, NOW + 5), Ok(()));
    assert_eq!(val(&s, b"t", NOW + 15).unwrap(), b"v");
    assert_eq!(s.touch(b"t", 0, NOW + 20), Err(Miss::Expired));
    s.store(StoreMode::Set, b"g", 0, NOW + 10, b"v", NOW);
    let e = s.get_and_touch(b"g", 0, NOW + 1, |it| it.exptime).unwrap();
    assert_eq!(e, 0);
    assert_eq!(val(&s, b"g", u32::MAX).unwrap(), b"v");
    assert_eq!(s.arith(b"zz", true, 1, NOW), ArithOutcome::NotFound);
    s.store(StoreMode::Set, b"n", 0, NOW + 1, b"5", NOW);
    assert_eq!(s.arith(b"n", true, 1, NOW + 1), ArithOutcome::NotFound);
}

#[test]
fn flush_now_spares_later_stores_in_the_same_second() {
    let s = Store::new(cfg(1 << 20));
    set(&s, b"a", b"1");
    set(&s, b"b", b"2");
    s.flush_all(0, NOW);
    set(&s, b"c", b"3");
    assert_eq!(val(&s, b"a", NOW), Err(Miss::Flushed));
    assert_eq!(val(&s, b"b", NOW), Err(Miss::Flushed));
    assert_eq!(val(&s, b"c", NOW).unwrap(), b"3");
    // a flush "at" a time already passed is immediate
    s.flush_all(NOW - 5, NOW);
    assert_eq!(val(&s, b"c", NOW), Err(Miss::Flushed));
    set(&s, b"a", b"1");
    assert_eq!(
        s.store(StoreMode::Append, b"a", 0, 0, b"x", NOW),
        StoreOutcome::Stored {
            cas: cas_of(&s, b"a")
        }
    );
}

#[test]
fn delayed_flush() {
    let s = Store::new(cfg(1 << 20));
    s.store(StoreMode::Set, b"a", 0, 0, b"1", NOW);
    s.flush_all(NOW + 10, NOW);
    s.store(StoreMode::Set, b"b", 0, 0, b"2", NOW + 5);
    assert_eq!(val(&s, b"a", NOW + 9).unwrap(), b"1");
    s.store(StoreMode::Set, b"c", 0, 0, b"3", NOW + 10);
    s.store(StoreMode::Set, b"d", 0, 0, b"4", NOW + 11);
    assert_eq!(val(&s, b"a", NOW + 10), Err(Miss::Flushed));
    assert_eq!(val(&s, b"b", NOW + 11), Err(Miss::Flushed));
    assert_eq!(val(&s, b"c", NOW + 11), Err(Miss::Flushed));
    assert_eq!(val(&s, b"d", NOW + 11).unwrap(), b"4");
    // a later delayed flush does not bring back what the first one flushed
    s.store(StoreMode::Set, b"e", 0, 0, b"5", NOW + 3);
    s.flush_all(NOW + 100, NOW + 20);
    assert_eq!(val(&s, b"e", NOW + 21), Err(Miss::Flushed));
    assert_eq!(val(&s, b"d", NOW + 21).unwrap(), b"4");
}

#[test]
fn incr_decr_memcached_rules() {
    let s = Store::new(cfg(1 << 20));
    let ok = |v: u64| ArithOutcome::Value { value: v, cas: 0 };
    let strip = |o: ArithOutcome| match o {
        ArithOutcome::Value { value, .. } => ok(value),
        o => o,
    };
    // probed on memcached 1.6.18: `set n 0 0 3 / 100`, `decr n 95` -> 5,
    // then get shows "5  ".
    set(&s, b"n", b"100");
    assert_eq!(strip(s.arith(b"n", false, 95, NOW)), ok(5));
    assert_eq!(val(&s, b"n", NOW).unwrap(), b"5  ");
    // incr past the old length makes a longer value
    assert_eq!(strip(s.arith(b"n", true, 1000, NOW)), ok(1005));
    assert_eq!(val(&s, b"n", NOW).unwrap(), b"1005");
    // an incr that gets shorter is padded too
    set(&s, b"w", b"18446744073709551615");
    assert_eq!(strip(s.arith(b"w", true, 2, NOW)), ok(1));
    assert_eq!(val(&s, b"w", NOW).unwrap(), b"1                   ");
    // decr floors at 0
    set(&s, b"d", b"3");
    assert_eq!(strip(s.arith(b"d", false, 10, NOW)), ok(0));
    assert_eq!(val(&s, b"d", NOW).unwrap(), b"0");
    // leading/trailing spaces, leading zeros, signs
    set(&s, b"a", b"  5  ");
    assert_eq!(strip(s.arith(b"a", true, 1, NOW)), ok(6));
    assert_eq!(val(&s, b"a", NOW).unwrap(), b"6    ");
    set(&s, b"b", b"0000000000000000000000007");
    assert_eq!(strip(s.arith(b"b", true, 1, NOW)), ok(8));
    set(&s, b"c", b"18446744073709551616");
    assert_eq!(s.arith(b"c", true, 1, NOW), ArithOutcome::NonNumeric);
    set(&s, b"e", b"5 abc");
    assert_eq!(strip(s.arith(b"e", true, 1, NOW)), ok(6));
    set(&s, b"f", b"-0");
    assert_eq!(strip(s.arith(b"f", true, 1, NOW)), ok(1));
    set(&s, b"g", b"+7");
    assert_eq!(strip(s.arith(b"g", true, 1, NOW)), ok(8));
    set(&s, b"h", b"-7");
    assert_eq!(s.arith(b"h", true, 1, NOW), ArithOutcome::NonNumeric);
    set(&s, b"i", b"5\0x");
    assert_eq!(strip(s.arith(b"i", true, 1, NOW)), ok(6));
    set(&s, b"j", b"");
    assert_eq!(s.arith(b"j", true, 1, NOW), ArithOutcome::NonNumeric);
    set(&s, b"k", b"5abc");
    assert_eq!(s.arith(b"k", true, 1, NOW), ArithOutcome::NonNumeric);
    set(&s, b"l", b"\t\n5");
    assert_eq!(strip(s.arith(b"l", true, 1, NOW)), ok(6));
    set(&s, b"m", b" 9");
    assert_eq!(strip(s.arith(b"m", true, 1, NOW)), ok(10));
    assert_eq!(val(&s, b"m", NOW).unwrap(), b"10");
    // wrap at 2^64
    set(&s, b"x", b"18446744073709551615");
    assert_eq!(strip(s.arith(b"x", true, 1, NOW)), ok(0));
    // flags and expiry survive
    s.store(StoreMode::Set, b"fx", 9, NOW + 50, b"99", NOW);
    s.arith(b"fx", true, 1, NOW);
    let got = s
        .get(b"fx", NOW, |it| (it.value.to_vec(), it.flags, it.exptime))
        .unwrap();
    assert_eq!(got, (b"100".to_vec(), 9, NOW + 50));
    s.check_invariants().unwrap();
}

#[test]
fn parse_counter_edges() {
    assert_eq!(parse_counter(b"0"), Some(0));
    assert_eq!(parse_counter(b"18446744073709551615"), Some(u64::MAX));
    assert_eq!(parse_counter(b"18446744073709551616"), None);
    assert_eq!(parse_counter(b" "), None);
    assert_eq!(parse_counter(b"+"), None);
    assert_eq!(parse_counter(b"-"), None);
    assert_eq!(parse_counter(b"12\r\n"), Some(12));
    // strtoull wraps a negative number; memcached then refuses it only
    // when it reads as negative.
    assert_eq!(parse_counter(b"-18446744073709551615"), Some(1));
}

#[test]
fn accounting_matches_memcached_bytes() {
    let s = Store::new(cfg(1 << 20));
    s.store(StoreMode::Set, b"z", 0, 0, b"hello", NOW);
    s.store(StoreMode::Set, b"z2", 5, 0, b"hello", NOW);
    let st = s.stats();
    assert_eq!(st.bytes, 65 + 70);
    assert_eq!(st.curr_items, 2);
    // one page of 1 MB for the two items
    assert_eq!(s.used_bytes(), 1 << 20);
    assert_eq!(st.limit_maxbytes, 1 << 20);
    s.store(StoreMode::Append, b"z", 0, 0, b"!!", NOW);
    assert_eq!(s.stats().bytes, 67 + 70);
    s.arith(b"z", true, 1, NOW);
    s.check_invariants().unwrap();
}

#[test]
fn lru_evicts_least_recently_used_and_a_read_protects() {
    let size = item_size(2, 10, 0, true);
    assert!(size < 96);
    // room for exactly 4 items in one shard: one page of four chunks
    let s = one_shard(paged(1));
    for k in [b"k1", b"k2", b"k3", b"k4"] {
        assert!(matches!(
            set(&s, k, &[b'v'; 10]),
            StoreOutcome::Stored { .. }
        ));
    }
    assert_eq!(s.stats().evictions, 0);
    // read k1 (the oldest): it survives the next eviction, k2 goes
    val(&s, b"k1", NOW).unwrap();
    set(&s, b"k5", &[b'v'; 10]);
    assert_eq!(val(&s, b"k2", NOW), Err(Miss::NotFound));
    assert!(val(&s, b"k1", NOW).is_ok());
    // k1 was moved to the head when the tail walk spared it
    let keys = |s: &Store| -> Vec<String> {
        s.lru_keys(0)
            .into_iter()
            .map(|k| String::from_utf8(k).unwrap())
            .collect()
    };
    assert_eq!(keys(&s), ["k5", "k1", "k4", "k3"]);
    // now k3 is the least recently used; k1 (read again) stays put until
    // the tail walk reaches it
    set(&s, b"k6", &[b'v'; 10]);
    assert_eq!(val(&s, b"k3", NOW), Err(Miss::NotFound));
    assert_eq!(keys(&s), ["k6", "k5", "k1", "k4"]);
    let st = s.stats();
    assert_eq!(st.evictions, 2);
    assert_eq!(st.evicted_unfetched, 2);
    assert_eq!(st.curr_items, 4);
    // k4 goes next; then k1 gets its second chance and k5 goes
    set(&s, b"k7", &[b'v'; 10]);
    assert_eq!(keys(&s), ["k7", "k6", "k5", "k1"]);
    set(&s, b"k8", &[b'v'; 10]);
    assert_eq!(keys(&s), ["k8", "k1", "k7", "k6"]);
    // a second read marks it again; an unread item is not protected
    val(&s, b"k6", NOW).unwrap();
    set(&s, b"k9", &[b'v'; 10]);
    assert_eq!(keys(&s), ["k9", "k6", "k8", "k1"]);
    assert_eq!(s.stats().evictions, 5);
    s.check_invariants().unwrap();
}

#[test]
fn lru_order_is_store_order_without_reads() {
    // 70-byte values: class 2, three chunks per page
    let v = [b'v'; 70];
    let s = one_shard(paged(1));
    for i in 0..10u8 {
        let k = [b'k', b'0' + i];
        set(&s, &k, &v);
        assert_eq!(s.lru_keys(0).first().unwrap(), &k.to_vec());
    }
    assert_eq!(
        s.lru_keys(0),
        vec![b"k9".to_vec(), b"k8".to_vec(), b"k7".to_vec()]
    );
    // overwriting an item makes it the most recent
    set(&s, b"k7", &[b'w'; 70]);
    assert_eq!(
        s.lru_keys(0),
        vec![b"k7".to_vec(), b"k9".to_vec(), b"k8".to_vec()]
    );
    assert_eq!(s.stats().evictions, 7);
    s.check_invariants().unwrap();
}

#[test]
fn eviction_prefers_dead_items_and_counts_reclaimed() {
    // 100-byte values: class 3, two chunks per page
    let v: &[u8] = &[b'v'; 100];
    let s = one_shard(paged(1));
    s.store(StoreMode::Set, b"k1", 0, NOW + 1, v, NOW);
    s.store(StoreMode::Set, b"k2", 0, 0, v, NOW);
    s.store(StoreMode::Set, b"k3", 0, 0, v, NOW + 2);
    let st = s.stats();
    assert_eq!(
        (st.reclaimed, st.expired_unfetched, st.evictions),
        (1, 1, 0)
    );
    assert!(val(&s, b"k2", NOW + 2).is_ok());
    // flushed items met at the tail are reclaimed too; k3 was never
    // fetched, k2 was
    s.flush_all(0, NOW + 2);
    s.store(StoreMode::Set, b"k4", 0, 0, v, NOW + 2);
    s.store(StoreMode::Set, b"k5", 0, 0, v, NOW + 2);
    let st = s.stats();
    assert_eq!(
        (st.reclaimed, st.expired_unfetched, st.evictions),
        (3, 2, 0)
    );
    assert_eq!(st.curr_items, 2);
    // and live ones are evicted, counted as never fetched
    s.store(StoreMode::Set, b"k6", 0, 0, v, NOW + 2);
    let st = s.stats();
    assert_eq!((st.evictions, st.evicted_unfetched), (1, 1));
    s.check_invariants().unwrap();
    assert_eq!(val(&s, b"k4", NOW + 2), Err(Miss::NotFound));
}

#[test]
fn no_evictions_mode_refuses_and_set_unlinks() {
    // one page: two chunks of class 3 (100-byte values)
    let v: &[u8] = &[b'v'; 100];
    let s = one_shard(StoreConfig {
        evictions: false,
        ..paged(1)
    });
    set(&s, b"k1", v);
    set(&s, b"k2", v);
    assert_eq!(set(&s, b"k3", v), StoreOutcome::OutOfMemory);
    // same-class overwrite fits (the old item's chunk is reused)
    assert!(matches!(
        set(&s, b"k1", &[b'w'; 100]),
        StoreOutcome::Stored { .. }
    ));
    // a set into another class that has no page drops the old value
    assert_eq!(set(&s, b"k1", b"short"), StoreOutcome::OutOfMemory);
    assert_eq!(val(&s, b"k1", NOW), Err(Miss::NotFound));
    set(&s, b"k1", v);
    // append/prepend/replace/cas/incr keep the old value
    // (append/prepend answer NOT_STORED, as memcached 1.6.18 -M does)
    assert_eq!(
        s.store(StoreMode::Append, b"k1", 0, 0, b"x", NOW),
        StoreOutcome::NotStored
    );
    assert_eq!(
        s.store(StoreMode::Prepend, b"k1", 0, 0, b"x", NOW),
        StoreOutcome::NotStored
    );
    assert_eq!(
        s.store(StoreMode::Replace, b"k1", 0, 0, b"xx", NOW),
        StoreOutcome::OutOfMemory
    );
    let c = cas_of(&s, b"k1");
    assert_eq!(
        s.store(StoreMode::Cas(c), b"k1", 0, 0, b"xx", NOW),
        StoreOutcome::OutOfMemory
    );
    let mut nine = vec![b' '; 100];
    nine[0] = b'9';
    set(&s, b"k2", &nine);
    // in-place arith needs no memory
    assert!(matches!(
        s.arith(b"k2", false, 1, NOW),
        ArithOutcome::Value { value: 8, .. }
    ));
    assert_eq!(val(&s, b"k1", NOW).unwrap(), v);
    assert_eq!(s.stats().evictions, 0);
    let rep = s.memory_report();
    let c3 = rep.classes.iter().find(|c| c.id == 3).unwrap();
    // k3, and the append and prepend of k1
    assert_eq!(c3.outofmemory, 3);
    // plus the three refusals in class 1, which has no page to report
    assert_eq!(s.stats().outofmemory, 6);
    s.check_invariants().unwrap();
}

#[test]
fn item_larger_than_the_whole_limit_does_not_wipe_the_cache() {
    let s = one_shard(paged(1));
    set(&s, b"k1", b"v");
    // needs chained chunks of the largest class, more than one page holds
    assert_eq!(set(&s, b"k2", &[0; 900]), StoreOutcome::OutOfMemory);
    assert!(val(&s, b"k1", NOW).is_ok());
    s.check_invariants().unwrap();
}

#[test]
fn shrinking_the_limit_evicts_down_to_it() {
    let s = Store::new(cfg(64 << 20));
    // 100-byte values in class 3 (152-byte chunks, 6898 a page): 5 pages
    for i in 0..30_000 {
        set(&s, format!("key{i:05}").as_bytes(), &[b'x'; 100]);
    }
    let before = s.stats();
    assert_eq!(before.curr_items, 30_000);
    assert_eq!(before.total_malloced, 5 << 20);
    s.set_memory_limit(3 << 20);
    let after = s.stats();
    assert_eq!(after.total_malloced, 3 << 20, "{after:?}");
    assert_eq!(after.curr_items, 3 * 6898, "{after:?}");
    assert_eq!(after.limit_maxbytes, 3 << 20);
    let rep = s.memory_report();
    assert_eq!(rep.slab_reassign_evictions_nomem, 30_000 - 3 * 6898);
    assert_eq!(rep.classes[0].total_pages, 3);
    s.check_invariants().unwrap();
    s.set_memory_limit(8 << 20);
    set(&s, b"new", b"v");
    s.check_invariants().unwrap();
}

#[test]
fn small_limit_serves_every_shard() {
    // 64 shards, five pages of four items: every key can still be stored.
    let s = Store::new(paged(5));
    for i in 0..500 {
        let k = format!("key{i:03}");
        let v = [b'x'; 50];
        assert!(
            matches!(set(&s, k.as_bytes(), &v), StoreOutcome::Stored { .. }),
            "{k}"
        );
        assert_eq!(val(&s, k.as_bytes(), NOW).unwrap(), v.to_vec());
        assert!(s.used_bytes() <= 5 * 384);
    }
    assert_eq!(s.stats().curr_items, 20);
    s.check_invariants().unwrap();
}

#[test]
fn reclaim_expired_sweeps_incrementally() {
    let s = Store::new(cfg(1 << 24));
    for i in 0..2000u32 {
        let exp = if i % 2 == 0 { NOW + 5 } else { 0 };
        s.store(
            StoreMode::Set,
            format!("k{i}").as_bytes(),
            0,
            exp,
            b"v",
            NOW,
        );
    }
    assert_eq!(s.reclaim_expired(NOW + 1, 100_000), 0);
    let mut total = 0;
    let mut calls = 0;
    while total < 1000 {
        let n = s.reclaim_expired(NOW + 5, 100);
        total += n;
        calls += 1;
        assert!(calls < 1000, "sweep makes no progress");
    }
    assert!(calls > 10, "budget not honoured");
    assert_eq!(total, 1000);
    let st = s.stats();
    assert_eq!(st.curr_items, 1000);
    assert_eq!(st.crawler_reclaimed, 1000);
    assert_eq!(st.expired_unfetched, 1000);
    // flushed items are swept as well
    s.flush_all(0, NOW + 5);
    let mut n = 0;
    for _ in 0..200 {
        n += s.reclaim_expired(NOW + 5, 500);
    }
    assert_eq!(n, 1000);
    assert_eq!(s.stats().curr_items, 0);
    s.check_invariants().unwrap();
}

#[test]
fn stats_report_hash_table() {
    let s = one_shard(cfg(1 << 24));
    let st = s.stats();
    assert_eq!(st.hash_power_level, 2);
    assert_eq!(st.hash_bytes, 16);
    for i in 0..100 {
        set(&s, format!("k{i}").as_bytes(), b"v");
    }
    let st = s.stats();
    assert_eq!(st.hash_power_level, 7);
    s.check_invariants().unwrap();
}

#[test]
fn concurrent_mixed_ops_keep_invariants() {
    use std::sync::Arc;
    let s = Arc::new(Store::with_options(
        StoreConfig {
            slab_page_size: 1024,
            item_size_max: 4096,
            ..cfg(40 * 1024)
        },
        StoreOptions {
            shards: 8,
            ..Default::default()
        },
    ));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                let mut x = t.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                for i in 0..20_000u32 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let key = format!("k{:05}", x % 1000);
                    let key = key.as_bytes();
                    let now = NOW + i / 1000;
                    match x % 11 {
                        0..=3 => {
                            // values carry their key so a wrong read shows
                            let mut v = key.to_vec();
                            v.resize(8 + (x % 56) as usize, b'.');
                            s.store(StoreMode::Set, key, 0, now + (x % 5) as u32 * 3, &v, now);
                        }
                        4..=6 => {
                            let _ = s.get(key, now, |it| {
                                assert!(it.value.starts_with(key) || it.value[0].is_ascii_digit());
                            });
                        }
                        7 => {
                            let _ = s.delete(key, now);
                        }
                        8 => {
                            s.store(StoreMode::Append, key, 0, 0, b"+", now);
                        }
                        9 => {
                            s.store(StoreMode::Set, key, 0, 0, b"10", now);
                            s.arith(key, x % 2 == 0, 3, now);
                        }
                        _ => {
                            if i % 500 == 0 {
                                s.reclaim_expired(now, 64);
                            }
                            if i % 5000 == 0 && t == 0 {
                                s.flush_all(0, now);
                            }
                            let _ = s.touch(key, now + 10, now);
                        }
                    }
                    assert!(s.used_bytes() <= 40 * 1024);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    s.check_invariants().unwrap();
    let st = s.stats();
    assert!(s.used_bytes() <= 40 * 1024);
    assert!(st.evictions > 0);
    let mut hits = 0;
    for i in 0..1000 {
        let key = format!("k{i:05}");
        let _ = s.get(key.as_bytes(), NOW + 19, |it| {
            hits += 1;
            let ok = it.value.starts_with(key.as_bytes())
                || it
                    .value
                    .iter()
                    .all(|b| b.is_ascii_digit() || *b == b' ' || *b == b'+');
            assert!(ok, "{key}: {:?}", String::from_utf8_lossy(it.value));
        });
    }
    assert!(hits > 10, "only {hits} keys left");
}

#[test]
fn table_grows_incrementally_and_stays_consistent() {
    let s = one_shard(cfg(1 << 30));
    for i in 0..20_000u32 {
        let k = format!("key-{i}");
        set(&s, k.as_bytes(), k.as_bytes());
        if i % 3 == 0 && i > 0 {
            let old = format!("key-{}", i - 1);
            assert_eq!(s.delete(old.as_bytes(), NOW), Ok(()));
        }
        if i % 997 == 0 {
            s.check_invariants().unwrap();
        }
        // a migration is in flight most of the time: every key must be
        // found wherever its chain currently lives
        if i % 1013 == 0 {
            for j in (0..=i).step_by(7) {
                let k = format!("key-{j}");
                let deleted = j % 3 == 2 && j < i;
                match val(&s, k.as_bytes(), NOW) {
                    Ok(v) => assert!(!deleted && v == k.as_bytes(), "{k}"),
                    Err(m) => assert!(deleted && m == Miss::NotFound, "{k} lost"),
                }
            }
        }
    }
    s.check_invariants().unwrap();
    let st = s.stats();
    assert_eq!(st.curr_items, 20_000 - 6_666);
    assert!(st.hash_power_level >= 14);
}

#[test]
fn concurrent_limit_changes_and_no_eviction_mode() {
    use std::sync::Arc;
    for evictions in [true, false] {
        let s = Arc::new(Store::with_options(
            StoreConfig {
                evictions,
                slab_page_size: 1024,
                ..cfg(200_000)
            },
            StoreOptions {
                shards: 4,
                ..Default::default()
            },
        ));
        let writers: Vec<_> = (0..3u32)
            .map(|t| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    let mut oom = 0;
                    for i in 0..20_000u32 {
                        let key = format!("t{t}-{}", i % 3000);
                        match s.store(StoreMode::Set, key.as_bytes(), 0, 0, &[b'x'; 90], NOW) {
                            StoreOutcome::Stored { .. } => {}
                            StoreOutcome::OutOfMemory => oom += 1,
                            o => panic!("{o:?}"),
                        }
                        if i % 7 == 0 {
                            let _ = s.delete(key.as_bytes(), NOW);
                        }
                    }
                    oom
                })
            })
            .collect();
        for i in 0..200u64 {
            s.set_memory_limit(100_000 + (i % 5) * 50_000);
            std::thread::yield_now();
        }
        let oom: u32 = writers.into_iter().map(|w| w.join().unwrap()).sum();
        s.set_memory_limit(120_000);
        s.check_invariants().unwrap();
        let st = s.stats();
        assert!(s.used_bytes() <= 120_000, "{st:?}");
        if evictions {
            assert_eq!(oom, 0);
            assert!(st.evictions > 0);
        } else {
            assert!(oom > 0);
        }
    }
}

#[test]
fn dump_walks_every_live_item_once_in_small_steps() {
    let store = Store::with_options(
        StoreConfig::default(),
        StoreOptions {
            shards: 4,
            ..Default::default()
        },
    );
    let now = 1_000_000;
    for i in 0..500u32 {
        let key = format!("k{i}");
        let exp = if i % 5 == 0 { now - 1 } else { 0 };
        assert!(matches!(
            store.store(StoreMode::Set, key.as_bytes(), 0, exp, b"v", now - 10),
            StoreOutcome::Stored { .. }
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut cursor = DumpCursor::default();
    let mut steps = 0;
    while !store.dump(&mut cursor, 7, now, |e| {
        assert!(seen.insert(e.key.to_vec()), "seen twice");
        assert_eq!(e.value_len, 1);
    }) {
        steps += 1;
        assert!(steps < 10_000, "walk does not finish");
    }
    assert!(cursor.is_done());
    // the expired fifth is not reported
    assert_eq!(seen.len(), 400);
}

#[test]
fn export_and_walk_leave_the_lru_and_the_item_bits_alone() {
    let s = Store::with_options(
        StoreConfig {
            node_id: Some(1),
            ..cfg(1 << 20)
        },
        StoreOptions {
            shards: 1,
            initial_buckets: 4,
            seed: Some((1, 2)),
            ..Default::default()
        },
    );
    for k in [&b"a"[..], b"b", b"c"] {
        set(&s, k, b"v");
    }
    let order = s.lru_keys(0);
    assert_eq!(order, vec![b"c".to_vec(), b"b".to_vec(), b"a".to_vec()]);
    let bits = |s: &Store| -> Vec<u8> {
        let g = s.lock(0);
        (1..g.lru.len())
            .flat_map(|c| g.lru_keys(c))
            .map(|k| g.bits(g.find(&k, g.hash32(&k)).unwrap()))
            .collect()
    };
    let before = bits(&s);
    // The tail item exported and walked: a read would move it to the head.
    assert!(s.export(b"a", NOW + 3, |_| ()).is_some());
    let mut c = WalkCursor::default();
    while !s.walk(&mut c, 1, NOW + 3, |_| {}) {}
    assert_eq!(s.lru_keys(0), order);
    assert_eq!(bits(&s), before);
    // A real read does move it (the check above can fail).
    val(&s, b"a", NOW + 3).unwrap();
    assert_ne!(bits(&s), before);
}
