//! The store's replication surface: hybrid clock versions, tombstones,
//! export (a peek), apply by version (last writer wins, convergence in any
//! order), the exact resumable walk, and counter mode left as memcached.

use proptest::prelude::*;
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use twincache::storage::version::{self, make, millis_of, node_of};
use twincache::storage::{
    ApplyOutcome, DumpCursor, Exported, MetaUpdate, Miss, Store, StoreConfig, StoreMode,
    StoreOptions, StoreOutcome, WalkCursor, TOMBSTONE_OVERHEAD,
};

const NOW: u32 = 1_700_000_000;
const MS: u64 = NOW as u64 * 1000;

thread_local! {
    /// The fake wall clock (ms) of stores made on this thread.
    static CLOCK: Cell<u64> = const { Cell::new(MS) };
}

fn fake_clock() -> u64 {
    CLOCK.with(|c| c.get())
}

fn set_clock(ms: u64) {
    CLOCK.with(|c| c.set(ms));
}

fn store_with(
    node: Option<u8>,
    shards: usize,
    buckets: usize,
    f: impl FnOnce(&mut StoreConfig),
) -> Store {
    let mut cfg = StoreConfig {
        memory_limit: 64 << 20,
        node_id: node,
        ..StoreConfig::default()
    };
    f(&mut cfg);
    Store::with_options(
        cfg,
        StoreOptions {
            shards,
            initial_buckets: buckets,
            seed: Some((7, 9)),
            clock_ms: fake_clock,
        },
    )
}

fn node(n: u8) -> Store {
    store_with(Some(n), 4, 16, |_| {})
}

fn set(s: &Store, key: &[u8], v: &[u8], now: u32) -> u64 {
    match s.store(StoreMode::Set, key, 0, 0, v, now) {
        StoreOutcome::Stored { cas } => cas,
        o => panic!("set {key:?}: {o:?}"),
    }
}

/// What the peer would be told about `key`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum State {
    Item {
        value: Vec<u8>,
        flags: u32,
        exptime: u32,
        version: u64,
        stale: bool,
    },
    Tomb(u64),
}

fn owned(e: Exported<'_>) -> (Vec<u8>, State) {
    match e {
        Exported::Item {
            key,
            value,
            flags,
            exptime,
            version,
            stale,
        } => (
            key.to_vec(),
            State::Item {
                value: value.to_vec(),
                flags,
                exptime,
                version,
                stale,
            },
        ),
        Exported::Tombstone { key, version } => (key.to_vec(), State::Tomb(version)),
    }
}

fn export(s: &Store, key: &[u8], now: u32) -> Option<State> {
    s.export(key, now, |e| owned(e).1)
}

/// Everything a full walk reports, key -> state (a key seen twice must
/// be seen with one state when nothing changes meanwhile).
fn walk_all(s: &Store, budget: usize, now: u32) -> BTreeMap<Vec<u8>, State> {
    let mut out = BTreeMap::new();
    let mut c = WalkCursor::default();
    let mut steps = 0;
    while !s.walk(&mut c, budget, now, |e| {
        let (k, st) = owned(e);
        if let Some(prev) = out.insert(k.clone(), st.clone()) {
            assert_eq!(prev, st, "key {k:?} seen with two states");
        }
    }) {
        steps += 1;
        assert!(steps < 1_000_000, "walk does not end");
    }
    assert!(c.is_done());
    out
}

// ----- (a) versions -----

#[test]
fn hlc_versions_carry_the_node_and_the_wall_clock() {
    set_clock(MS + 123);
    let s = node(7);
    let a = set(&s, b"a", b"1", NOW);
    let b = set(&s, b"b", b"1", NOW);
    assert_eq!(node_of(a), 7);
    assert_eq!(millis_of(a), MS + 123);
    assert_eq!(a, make(MS + 123, 0, 7));
    assert_eq!(b, make(MS + 123, 1, 7));
    assert_eq!(s.current_version(), b);
    // The clock going back does not make versions go back.
    set_clock(MS - 10_000);
    let c = set(&s, b"c", b"1", NOW);
    assert!(c > b);
    // gets reports the version as the CAS unique; cas with it works.
    let cas = s.get(b"c", NOW, |it| it.cas).unwrap();
    assert_eq!(cas, c);
    assert!(matches!(
        s.store(StoreMode::Cas(c), b"c", 0, 0, b"2", NOW),
        StoreOutcome::Stored { .. }
    ));
    set_clock(MS);
}

#[test]
fn observe_makes_the_next_local_version_win() {
    set_clock(MS);
    let s = node(1);
    let peer = make(MS + 60_000, 5, 200);
    s.observe(peer);
    assert_eq!(s.current_version(), peer);
    let v = set(&s, b"k", b"v", NOW);
    assert!(v > peer);
    assert_eq!(node_of(v), 1);
    // apply_* observe too, even when they are refused.
    let far = make(MS + 120_000, 0, 2);
    assert_eq!(s.apply_delete(b"k", far, NOW), ApplyOutcome::Applied);
    assert!(set(&s, b"k", b"w", NOW) > far);
    let farther = make(MS + 200_000, 0, 2);
    assert_eq!(
        s.apply_item(&[0u8; 300], 0, 0, b"x", farther, false, NOW),
        ApplyOutcome::TooLarge
    );
    assert!(set(&s, b"k", b"w", NOW) > farther);
}

proptest! {
    #[test]
    fn hlc_versions_strictly_increase(
        steps in proptest::collection::vec((0u64..3_000, any::<bool>(), 0u64..5_000, 0u8..=255), 1..80),
        me in 0u8..=255,
    ) {
        let s = node(me);
        let mut last = 0u64;
        let mut seen = 0u64;
        for (i, (clock_off, obs, obs_off, obs_node)) in steps.into_iter().enumerate() {
            // The clock wanders around MS, forwards and back.
            set_clock(MS + clock_off);
            if obs {
                let v = make(MS + obs_off, obs_off % 7, obs_node);
                s.observe(v);
                seen = seen.max(v);
            }
            let v = set(&s, format!("k{}", i % 5).as_bytes(), b"v", NOW);
            prop_assert!(v > last, "{v} after {last}");
            prop_assert!(v > seen, "{v} not above observed {seen}");
            prop_assert_eq!(node_of(v), me);
            prop_assert!(millis_of(v) >= MS + clock_off);
            last = v;
        }
        set_clock(MS);
    }
}

#[test]
fn hlc_touch_gat_and_meta_ttl_take_new_versions() {
    let s = node(3);
    let v0 = set(&s, b"k", b"v", NOW);
    s.touch(b"k", NOW + 100, NOW).unwrap();
    let v1 = s.export(b"k", NOW, |e| match e {
        Exported::Item {
            version, exptime, ..
        } => {
            assert_eq!(exptime, NOW + 100);
            version
        }
        _ => panic!(),
    });
    let v1 = v1.unwrap();
    assert!(v1 > v0);
    let (cas, exp) = s
        .get_and_touch(b"k", NOW + 200, NOW, |it| (it.cas, it.exptime))
        .unwrap();
    assert!(cas > v1);
    assert_eq!(exp, NOW + 200);
    s.meta_read(b"k", NOW, |_, _| {
        (
            (),
            MetaUpdate {
                exptime: Some(NOW + 300),
                ..MetaUpdate::default()
            },
        )
    })
    .unwrap();
    let v3 = s.get(b"k", NOW, |it| it.cas).unwrap();
    assert!(v3 > cas);
    // A meta read without T keeps the version.
    s.meta_read(b"k", NOW, |_, _| ((), MetaUpdate::default()))
        .unwrap();
    assert_eq!(s.get(b"k", NOW, |it| it.cas).unwrap(), v3);
    // `mg T c`: the CAS reported is the one the item keeps after T.
    let seen = s
        .meta_read_touching(b"k", NOW, true, |it, _| {
            (
                it.cas,
                MetaUpdate {
                    exptime: Some(NOW + 400),
                    ..MetaUpdate::default()
                },
            )
        })
        .unwrap();
    assert!(seen > v3);
    assert_eq!(s.get(b"k", NOW, |it| it.cas).unwrap(), seen);
    s.check_invariants().unwrap();
}

// ----- (f) counter mode -----

#[test]
fn counter_mode_is_memcached_and_keeps_no_tombstones() {
    let s = store_with(None, 4, 16, |_| {});
    assert_eq!(set(&s, b"a", b"1", NOW), 1);
    assert_eq!(set(&s, b"b", b"1", NOW), 2);
    assert_eq!(set(&s, b"a", b"2", NOW), 3);
    // touch and gat keep the CAS unique, as memcached.
    s.touch(b"a", NOW + 50, NOW).unwrap();
    assert_eq!(s.get_and_touch(b"a", NOW + 60, NOW, |it| it.cas), Ok(3));
    s.delete(b"a", NOW).unwrap();
    assert_eq!(
        s.meta_delete(b"b", NOW, None, None),
        twincache::storage::MetaDeleteOutcome::Deleted
    );
    assert_eq!(export(&s, b"a", NOW), None);
    assert_eq!(s.tombstone_stats(), (0, 0, 0));
    assert_eq!(set(&s, b"c", b"1", NOW), 4);
    assert_eq!(s.current_version(), 4);
    // An immediate flush returns the sequence reached; a delayed one 0.
    assert_eq!(s.flush_all(0, NOW), 4);
    assert_eq!(s.flush_all(NOW + 10, NOW), 0);
    assert_eq!(set(&s, b"d", b"1", NOW), 5);
    assert!(walk_all(&s, 3, NOW).contains_key(&b"d"[..]));
    s.check_invariants().unwrap();
}

// ----- tombstones from local deletes -----

#[test]
fn local_deletes_leave_tombstones_that_stay_invisible() {
    let s = node(1);
    set(&s, b"k", b"v", NOW);
    set(&s, b"m", b"v", NOW);
    set(&s, b"x", b"v", NOW);
    s.delete(b"k", NOW).unwrap();
    assert_eq!(
        s.meta_delete(b"m", NOW, None, None),
        twincache::storage::MetaDeleteOutcome::Deleted
    );
    // md I keeps the item: no tombstone.
    assert_eq!(
        s.meta_delete(b"x", NOW, None, Some(None)),
        twincache::storage::MetaDeleteOutcome::Invalidated
    );
    let tk = match export(&s, b"k", NOW) {
        Some(State::Tomb(v)) => v,
        o => panic!("{o:?}"),
    };
    assert!(tk > 0 && node_of(tk) == 1);
    assert!(matches!(export(&s, b"m", NOW), Some(State::Tomb(_))));
    assert!(matches!(
        export(&s, b"x", NOW),
        Some(State::Item { stale: true, .. })
    ));
    assert_eq!(s.tombstone_stats().0, 2);
    // Invisible to clients: get misses, incr misses, curr_items and the
    // dump do not count them.
    assert_eq!(s.get(b"k", NOW, |_| ()), Err(Miss::NotFound));
    assert_eq!(
        s.arith(b"k", true, 1, NOW),
        twincache::storage::ArithOutcome::NotFound
    );
    assert_eq!(s.stats().curr_items, 1);
    let mut dumped = Vec::new();
    let mut c = DumpCursor::default();
    while !s.dump(&mut c, 100, NOW, |e| dumped.push(e.key.to_vec())) {}
    assert_eq!(dumped, vec![b"x".to_vec()]);
    // add on a tombstoned key succeeds and drops the tombstone.
    assert!(matches!(
        s.store(StoreMode::Add, b"k", 0, 0, b"new", NOW),
        StoreOutcome::Stored { .. }
    ));
    assert!(matches!(export(&s, b"k", NOW), Some(State::Item { .. })));
    assert_eq!(s.tombstone_stats().0, 1);
    // A set that is too large drops the old value: that is a delete too.
    let big = vec![0u8; 2 << 20];
    assert_eq!(
        s.store(StoreMode::Set, b"k", 0, 0, &big, NOW),
        StoreOutcome::TooLarge
    );
    assert!(matches!(export(&s, b"k", NOW), Some(State::Tomb(_))));
    s.check_invariants().unwrap();
}

// ----- (c) no resurrection, newer wins -----

#[test]
fn a_tombstone_stops_older_items_and_newer_ones_win() {
    let s = node(1);
    let v = |ms: u64| make(MS + ms, 0, 2);
    assert_eq!(
        s.apply_item(b"k", 5, 0, b"one", v(10), false, NOW),
        ApplyOutcome::Applied
    );
    assert_eq!(s.apply_delete(b"k", v(20), NOW), ApplyOutcome::Applied);
    assert_eq!(s.get(b"k", NOW, |_| ()), Err(Miss::NotFound));
    // An older write arriving late does not bring the key back.
    assert_eq!(
        s.apply_item(b"k", 5, 0, b"zombie", v(15), false, NOW),
        ApplyOutcome::Older
    );
    assert_eq!(export(&s, b"k", NOW), Some(State::Tomb(v(20))));
    // An older delete does not lower the tombstone.
    assert_eq!(s.apply_delete(b"k", v(12), NOW), ApplyOutcome::Applied);
    assert_eq!(export(&s, b"k", NOW), Some(State::Tomb(v(20))));
    // A newer write wins and drops the tombstone.
    assert_eq!(
        s.apply_item(b"k", 6, 0, b"two", v(30), true, NOW),
        ApplyOutcome::Applied
    );
    assert_eq!(
        export(&s, b"k", NOW),
        Some(State::Item {
            value: b"two".to_vec(),
            flags: 6,
            exptime: 0,
            version: v(30),
            stale: true
        })
    );
    assert_eq!(s.tombstone_stats().0, 0);
    // The same record again, or an older one: Older, nothing changes.
    assert_eq!(
        s.apply_item(b"k", 6, 0, b"two", v(30), true, NOW),
        ApplyOutcome::Older
    );
    assert_eq!(
        s.apply_item(b"k", 6, 0, b"older", v(25), false, NOW),
        ApplyOutcome::Older
    );
    // A delete older than the live item is refused.
    assert_eq!(s.apply_delete(b"k", v(29), NOW), ApplyOutcome::Older);
    assert_eq!(
        s.get(b"k", NOW, |it| it.value.to_vec()),
        Ok(b"two".to_vec())
    );
    // The applied item's CAS is its version; a local write takes a
    // greater one and beats it.
    assert_eq!(s.get(b"k", NOW, |it| it.cas), Ok(v(30)));
    let local = set(&s, b"k", b"local", NOW);
    assert!(local > v(30));
    assert_eq!(local, make(MS + 30, 1, 1));
    // From the other node, a hair older than the local write: loses.
    assert_eq!(
        s.apply_item(b"k", 0, 0, b"late", make(MS + 30, 1, 0), false, NOW),
        ApplyOutcome::Older
    );
    assert_eq!(
        s.apply_item(b"k", 0, 0, b"later", make(MS + 30, 1, 2), false, NOW),
        ApplyOutcome::Applied
    );
    s.check_invariants().unwrap();
}

// ----- (h) expired on arrival -----

#[test]
fn an_item_expired_on_arrival_removes_the_older_copy() {
    let s = node(1);
    let v = |ms: u64| make(MS + ms, 0, 2);
    assert_eq!(
        s.apply_item(b"k", 0, NOW + 100, b"old", v(1), false, NOW),
        ApplyOutcome::Applied
    );
    assert_eq!(
        s.apply_item(b"k", 0, NOW - 1, b"new", v(2), false, NOW),
        ApplyOutcome::Applied
    );
    assert_eq!(s.get(b"k", NOW, |_| ()), Err(Miss::NotFound));
    assert_eq!(export(&s, b"k", NOW), Some(State::Tomb(v(2))));
    assert_eq!(
        s.apply_item(b"k", 0, 0, b"old2", v(1), false, NOW),
        ApplyOutcome::Older
    );
    // Not older than the live item: refused, the item stays.
    assert_eq!(
        s.apply_item(b"j", 0, 0, b"live", v(9), false, NOW),
        ApplyOutcome::Applied
    );
    assert_eq!(
        s.apply_item(b"j", 0, NOW, b"x", v(8), false, NOW),
        ApplyOutcome::Older
    );
    assert_eq!(
        s.get(b"j", NOW, |it| it.value.to_vec()),
        Ok(b"live".to_vec())
    );
    s.check_invariants().unwrap();
}

#[test]
fn an_expired_newer_item_counts_as_its_delete() {
    let v = |ms: u64| make(MS + ms, 0, 2);
    // a: the newer item expires before the older record arrives.
    let a = node(1);
    assert_eq!(
        a.apply_item(b"k", 0, NOW + 10, b"new", v(9), false, NOW),
        ApplyOutcome::Applied
    );
    assert_eq!(
        a.apply_item(b"k", 0, 0, b"old", v(5), false, NOW + 20),
        ApplyOutcome::Older
    );
    assert_eq!(export(&a, b"k", NOW + 20), Some(State::Tomb(v(9))));
    // b: the same two records the other way round.
    let b = node(2);
    assert_eq!(
        b.apply_item(b"k", 0, 0, b"old", v(5), false, NOW),
        ApplyOutcome::Applied
    );
    assert_eq!(
        b.apply_item(b"k", 0, NOW + 10, b"new", v(9), false, NOW + 20),
        ApplyOutcome::Applied
    );
    assert_eq!(export(&b, b"k", NOW + 20), Some(State::Tomb(v(9))));
    // An older delete meeting an expired newer item: the tombstone keeps
    // the item's version.
    let c = node(3);
    c.apply_item(b"k", 0, NOW + 10, b"new", v(9), false, NOW);
    assert_eq!(c.apply_delete(b"k", v(5), NOW + 20), ApplyOutcome::Applied);
    assert_eq!(export(&c, b"k", NOW + 20), Some(State::Tomb(v(9))));
    for s in [&a, &b, &c] {
        s.check_invariants().unwrap();
    }
}

// ----- flush barriers -----

#[test]
fn flush_barriers_order_with_writes() {
    set_clock(MS);
    let a = node(1);
    let b = node(2);
    let before = set(&a, b"old", b"1", NOW);
    a.delete(b"gone", NOW).ok();
    set(&a, b"gone", b"1", NOW);
    a.delete(b"gone", NOW).unwrap();
    let barrier = a.flush_all(0, NOW);
    assert!(barrier > before);
    assert_eq!(node_of(barrier), 1);
    assert_eq!(a.tombstone_stats().0, 0, "the flush drops older tombstones");
    let after = set(&a, b"new", b"1", NOW);
    assert!(after > barrier);
    assert_eq!(a.flush_barrier(NOW), barrier);
    // The peer: an older item dies with the barrier, a newer one lives.
    assert_eq!(
        b.apply_item(b"old", 0, 0, b"1", before, false, NOW),
        ApplyOutcome::Applied
    );
    b.apply_flush(barrier);
    assert_eq!(b.get(b"old", NOW, |_| ()), Err(Miss::Flushed));
    assert_eq!(
        b.apply_item(b"old", 0, 0, b"1", before, false, NOW),
        ApplyOutcome::Older
    );
    assert_eq!(b.apply_delete(b"old", before, NOW), ApplyOutcome::Older);
    assert_eq!(
        b.apply_item(b"new", 0, 0, b"1", after, false, NOW),
        ApplyOutcome::Applied
    );
    // The peer's next local write is newer than the barrier.
    assert!(set(&b, b"x", b"1", NOW) > barrier);
    // An older barrier changes nothing.
    b.apply_flush(before);
    assert!(b.get(b"new", NOW, |_| ()).is_ok());
    assert_eq!(b.flush_barrier(NOW), barrier);
    a.check_invariants().unwrap();
    b.check_invariants().unwrap();
}

// ----- (b) convergence -----

#[derive(Debug, Clone)]
enum Rec {
    Item {
        key: usize,
        value: usize,
        flags: u32,
        /// 0 never, 1 in the past, 2 in the future.
        exp: u8,
        stale: bool,
    },
    Delete(usize),
    Flush,
}

const KEYS: &[&[u8]] = &[b"a", b"b", b"c", b"\x00bin", b"long-key-0123456789"];
const VALUES: &[&[u8]] = &[b"", b"x", b"hello", b"\r\n\0\xff"];

fn rec() -> impl Strategy<Value = Rec> {
    prop_oneof![
        6 => (0..KEYS.len(), 0..VALUES.len(), prop_oneof![Just(0u32), Just(9u32)], 0u8..3, any::<bool>())
            .prop_map(|(key, value, flags, exp, stale)| Rec::Item { key, value, flags, exp, stale }),
        3 => (0..KEYS.len()).prop_map(Rec::Delete),
        1 => Just(Rec::Flush),
    ]
}

fn apply(s: &Store, r: &Rec, version: u64) -> ApplyOutcome {
    match *r {
        Rec::Item {
            key,
            value,
            flags,
            exp,
            stale,
        } => {
            let exptime = match exp {
                0 => 0,
                1 => NOW - 5,
                _ => NOW + 1000,
            };
            s.apply_item(
                KEYS[key],
                flags,
                exptime,
                VALUES[value],
                version,
                stale,
                NOW,
            )
        }
        Rec::Delete(key) => s.apply_delete(KEYS[key], version, NOW),
        Rec::Flush => {
            s.apply_flush(version);
            ApplyOutcome::Applied
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn stores_fed_the_same_records_in_any_order_converge(
        recs in proptest::collection::vec((rec(), 0u64..50, 0u8..3), 1..40),
        perm_seed in any::<u64>(),
    ) {
        // Unique versions: (ms, logical by position, node).
        let recs: Vec<(Rec, u64)> = recs
            .into_iter()
            .enumerate()
            .map(|(i, (r, ms, n))| (r, make(MS + ms, i as u64, 10 + n)))
            .collect();
        let a = store_with(Some(1), 2, 4, |_| {});
        let b = store_with(Some(2), 4, 4, |_| {});
        let c = store_with(Some(3), 1, 4, |_| {});
        for (r, v) in &recs {
            apply(&a, r, *v);
        }
        // b: reversed; c: a pseudo-random shuffle, each record twice.
        for (r, v) in recs.iter().rev() {
            apply(&b, r, *v);
        }
        let mut order: Vec<usize> = (0..recs.len()).chain(0..recs.len()).collect();
        let mut x = perm_seed | 1;
        for i in (1..order.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        for i in order {
            apply(&c, &recs[i].0, recs[i].1);
        }
        let wa = walk_all(&a, 3, NOW);
        prop_assert_eq!(&wa, &walk_all(&b, 2, NOW));
        prop_assert_eq!(&wa, &walk_all(&c, 1, NOW));
        prop_assert_eq!(a.tombstone_stats().0, b.tombstone_stats().0);
        prop_assert_eq!(a.tombstone_stats().0, c.tombstone_stats().0);
        // The state is the newest record of each key above the last
        // barrier (an item expired on arrival counts as a delete).
        let barrier = recs
            .iter()
            .filter(|(r, _)| matches!(r, Rec::Flush))
            .map(|(_, v)| *v)
            .max()
            .unwrap_or(0);
        let mut want: BTreeMap<Vec<u8>, State> = BTreeMap::new();
        for (k, key) in KEYS.iter().enumerate() {
            let newest = recs
                .iter()
                .filter(|(r, v)| *v > barrier && match r {
                    Rec::Item { key, .. } | Rec::Delete(key) => *key == k,
                    Rec::Flush => false,
                })
                .max_by_key(|(_, v)| *v);
            let st = match newest {
                None => continue,
                Some((Rec::Item { value, flags, exp, stale, .. }, v)) => match *exp {
                    1 => State::Tomb(*v),
                    _ => State::Item {
                        value: VALUES[*value].to_vec(),
                        flags: *flags,
                        exptime: if *exp == 0 { 0 } else { NOW + 1000 },
                        version: *v,
                        stale: *stale,
                    },
                },
                Some((_, v)) => State::Tomb(*v),
            };
            want.insert(key.to_vec(), st);
        }
        prop_assert_eq!(&wa, &want);
        for s in [&a, &b, &c] {
            s.check_invariants().map_err(TestCaseError::fail)?;
        }
    }
}

// ----- (d) walk exactness under table doublings -----

/// Walks `s` in steps of `budget`, calling `between` after each step;
/// returns every key seen.
fn walk_with(s: &Store, budget: usize, mut between: impl FnMut(usize)) -> BTreeSet<Vec<u8>> {
    let mut seen = BTreeSet::new();
    let mut c = WalkCursor::default();
    let mut step = 0;
    while !s.walk(&mut c, budget, NOW, |e| {
        seen.insert(owned(e).0);
    }) {
        between(step);
        step += 1;
        assert!(step < 1_000_000);
    }
    seen
}

#[test]
fn walk_sees_every_key_present_throughout_while_tables_double() {
    for (shards, budget) in [(1usize, 1usize), (1, 2), (2, 1), (4, 3), (1, 7)] {
        let s = store_with(Some(1), shards, 4, |_| {});
        let base: Vec<Vec<u8>> = (0..60).map(|i| format!("base:{i}").into_bytes()).collect();
        for k in &base {
            set(&s, k, b"v", NOW);
        }
        // Tombstones present throughout.
        let gone: Vec<Vec<u8>> = (0..20).map(|i| format!("gone:{i}").into_bytes()).collect();
        for k in &gone {
            set(&s, k, b"v", NOW);
            s.delete(k, NOW).unwrap();
        }
        let level0 = s.stats().hash_power_level;
        let mut expanding_seen = 0;
        let mut n = 0;
        let seen = walk_with(&s, budget, |step| {
            // Many inserts between the first steps: several doublings during
            // the walk, often caught mid-migration. Some churn deletes (new
            // keys only), and some new tombstones come and go. (Growing
            // without end would keep a small-budget walk from finishing.)
            if step >= 150 {
                return;
            }
            for _ in 0..7 * budget {
                set(&s, format!("new:{n}").as_bytes(), b"v", NOW);
                if n % 3 == 0 {
                    s.delete(format!("new:{}", n / 2).as_bytes(), NOW).ok();
                }
                n += 1;
            }
            if step % 5 == 0 {
                s.store(
                    StoreMode::Set,
                    format!("gone:{}", 100 + step).as_bytes(),
                    0,
                    0,
                    b"v",
                    NOW,
                );
            }
            expanding_seen += s.stats().hash_expanding_shards;
        });
        assert!(
            s.stats().hash_power_level >= level0 + 3,
            "{shards} shards, budget {budget}: tables should have doubled several times: {level0} -> {} ({} items, {n} inserts)",
            s.stats().hash_power_level,
            s.stats().curr_items
        );
        assert!(expanding_seen > 0, "no step ran during a doubling");
        for k in base.iter().chain(&gone) {
            assert!(
                seen.contains(k),
                "{shards} shards, budget {budget}: missed {:?}",
                String::from_utf8_lossy(k)
            );
        }
        s.check_invariants().unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn walk_is_exact_under_random_growth(
        base in 1usize..200,
        shards in prop_oneof![Just(1usize), Just(2), Just(8)],
        budget in 1usize..9,
        growth in proptest::collection::vec(0usize..40, 1..200),
    ) {
        let s = store_with(Some(4), shards, 4, |_| {});
        for i in 0..base {
            set(&s, format!("b{i}").as_bytes(), b"v", NOW);
        }
        let mut n = 0;
        let mut g = growth.into_iter();
        let seen = walk_with(&s, budget, |_| {
            for _ in 0..g.next().unwrap_or(0) {
                set(&s, format!("n{n}").as_bytes(), b"v", NOW);
                n += 1;
            }
        });
        for i in 0..base {
            prop_assert!(seen.contains(format!("b{i}").as_bytes()), "missed b{}", i);
        }
    }
}

#[test]
fn walk_reports_items_and_tombstones_as_export_does() {
    let s = node(2);
    set(&s, b"a", b"1", NOW);
    s.store(StoreMode::Set, b"f", 42, NOW + 50, b"flagged", NOW);
    let big: Vec<u8> = (0..700_000).map(|i| (i % 251) as u8).collect();
    set(&s, b"big", &big, NOW);
    set(&s, b"d", b"1", NOW);
    s.delete(b"d", NOW).unwrap();
    let all = walk_all(&s, 2, NOW);
    assert_eq!(all.len(), 4);
    for (k, st) in &all {
        assert_eq!(export(&s, k, NOW).as_ref(), Some(st));
    }
    match &all[&b"big"[..]] {
        State::Item { value, .. } => assert_eq!(value, &big),
        o => panic!("{o:?}"),
    }
    // Expired items are not walked.
    assert!(!walk_all(&s, 5, NOW + 60).contains_key(&b"f"[..]));
}

// ----- (e) tombstone lifetime and cap -----

#[test]
fn tombstones_expire_after_their_ttl() {
    let s = store_with(Some(1), 2, 4, |c| c.tombstone_ttl = 10);
    let v = |ms: u64| make(MS + ms, 0, 2);
    assert_eq!(s.apply_delete(b"k", v(5), NOW), ApplyOutcome::Applied);
    s.delete(b"nothing", NOW).ok();
    set(&s, b"j", b"1", NOW);
    s.delete(b"j", NOW).unwrap();
    assert_eq!(s.tombstone_stats().0, 2);
    // Whole seconds: made at any instant of second NOW, it must outlive
    // 10 s, so it is there all through second NOW + 10.
    assert_eq!(export(&s, b"k", NOW + 10), Some(State::Tomb(v(5))));
    assert_eq!(
        s.apply_item(b"k", 0, 0, b"old", v(1), false, NOW + 10),
        ApplyOutcome::Older
    );
    // Its window is over: gone, and an old write applies again.
    assert_eq!(export(&s, b"k", NOW + 11), None);
    assert_eq!(s.maintain(NOW + 11), 0);
    assert_eq!(s.tombstone_stats().0, 0);
    assert_eq!(
        s.apply_item(b"k", 0, 0, b"old", v(1), false, NOW + 11),
        ApplyOutcome::Applied
    );
    // Raising a tombstone renews its lifetime.
    let t = store_with(Some(1), 1, 4, |c| c.tombstone_ttl = 10);
    t.apply_delete(b"r", v(1), NOW);
    t.apply_delete(b"r", v(2), NOW + 8);
    assert_eq!(export(&t, b"r", NOW + 18), Some(State::Tomb(v(2))));
    assert_eq!(export(&t, b"r", NOW + 19), None);
    s.check_invariants().unwrap();
    t.check_invariants().unwrap();
}

#[test]
fn tombstone_bytes_are_capped_oldest_first() {
    let key_len = 4u64;
    let per = key_len + TOMBSTONE_OVERHEAD;
    let s = store_with(Some(1), 1, 4, |c| c.tombstone_max_bytes = 5 * per + 3);
    let v = |ms: u64| make(MS + ms, 0, 2);
    for i in 0..8u64 {
        assert_eq!(
            s.apply_delete(format!("t:{i:02}").as_bytes(), v(i + 1), NOW),
            ApplyOutcome::Applied
        );
    }
    assert_eq!(s.tombstone_stats(), (5, 5 * per, 3));
    for i in 0..8u64 {
        let got = export(&s, format!("t:{i:02}").as_bytes(), NOW);
        if i < 3 {
            assert_eq!(got, None, "t:{i:02} should have gone first");
        } else {
            assert_eq!(got, Some(State::Tomb(v(i + 1))));
        }
    }
    // Raising an old one makes it the newest: the next drop takes t:04.
    s.apply_delete(b"t:03", v(100), NOW);
    s.apply_delete(b"t:08", v(101), NOW);
    assert_eq!(export(&s, b"t:04", NOW), None);
    assert_eq!(export(&s, b"t:03", NOW), Some(State::Tomb(v(100))));
    assert_eq!(s.tombstone_stats().2, 4);
    // The cap is shared out over the shards.
    let many = store_with(Some(1), 4, 4, |c| c.tombstone_max_bytes = 4 * 3 * per);
    for i in 0..200u64 {
        many.apply_delete(format!("u:{i:02}").as_bytes(), v(i + 1), NOW);
    }
    let (n, bytes, dropped) = many.tombstone_stats();
    assert!(bytes <= 4 * 3 * per);
    assert_eq!(n + dropped, 200);
    assert!(n >= 8, "{n}");
    s.check_invariants().unwrap();
    many.check_invariants().unwrap();
}

// ----- (g) export is a peek -----

#[test]
fn export_changes_nothing() {
    let s = node(1);
    set(&s, b"k", b"v", NOW);
    let hits = |s: &Store| -> u64 {
        s.memory_report_at(NOW)
            .classes
            .iter()
            .map(|c| c.get_hits)
            .sum()
    };
    for _ in 0..3 {
        assert!(matches!(
            export(&s, b"k", NOW + 5),
            Some(State::Item { .. })
        ));
    }
    assert_eq!(hits(&s), 0);
    let st = s
        .meta_read(b"k", NOW + 7, |_, st| {
            (
                st,
                MetaUpdate {
                    bump: false,
                    ..MetaUpdate::default()
                },
            )
        })
        .unwrap();
    assert!(!st.fetched, "export marked the item fetched");
    assert_eq!(st.last_access, NOW, "export touched the access time");
    // A walk is a peek too.
    walk_all(&s, 1, NOW + 8);
    let st = s
        .meta_read(b"k", NOW + 9, |_, st| {
            ((st.fetched, st.last_access), MetaUpdate::default())
        })
        .unwrap();
    assert_eq!(st, (false, NOW));
    assert_eq!(hits(&s), 0);
}

// ----- limits on apply -----

#[test]
fn apply_refusals_leave_the_local_item() {
    let s = store_with(Some(1), 1, 4, |c| c.item_size_max = 1024);
    let v = |ms: u64| make(MS + ms, 0, 2);
    assert_eq!(
        s.apply_item(b"k", 0, 0, b"small", v(1), false, NOW),
        ApplyOutcome::Applied
    );
    assert_eq!(
        s.apply_item(b"k", 0, 0, &[7u8; 2000], v(2), false, NOW),
        ApplyOutcome::TooLarge
    );
    assert_eq!(
        s.get(b"k", NOW, |it| it.value.to_vec()),
        Ok(b"small".to_vec())
    );
    // An older record is Older even when it is also too large.
    assert_eq!(
        s.apply_item(b"k", 0, 0, &[7u8; 2000], v(0), false, NOW),
        ApplyOutcome::Older
    );
    assert_eq!(
        s.apply_item(b"", 0, 0, b"x", v(3), false, NOW),
        ApplyOutcome::TooLarge
    );

    // -M: a full cache refuses the peer's item like a client's.
    let m = store_with(Some(1), 2, 4, |c| {
        c.memory_limit = 2 << 20;
        c.slab_page_size = 1 << 20;
        c.evictions = false;
    });
    let val = vec![b'x'; 3000];
    let mut refused = None;
    for i in 0..10_000u64 {
        match m.apply_item(
            format!("k{i}").as_bytes(),
            0,
            0,
            &val,
            v(i + 10),
            false,
            NOW,
        ) {
            ApplyOutcome::Applied => {}
            o => {
                refused = Some((i, o));
                break;
            }
        }
    }
    let (i, o) = refused.expect("the cache never filled");
    assert_eq!(o, ApplyOutcome::OutOfMemory);
    assert!(m.get(b"k0", NOW, |_| ()).is_ok());
    assert!(m.get(format!("k{i}").as_bytes(), NOW, |_| ()).is_err());
    m.check_invariants().unwrap();
    s.check_invariants().unwrap();
}

#[test]
fn apply_evicts_like_a_client_store() {
    let s = store_with(Some(1), 2, 4, |c| {
        c.memory_limit = 2 << 20;
        c.slab_page_size = 1 << 20;
    });
    let val = vec![b'x'; 3000];
    for i in 0..5_000u64 {
        assert_eq!(
            s.apply_item(
                format!("k{i}").as_bytes(),
                0,
                0,
                &val,
                make(MS, i, 2),
                false,
                NOW
            ),
            ApplyOutcome::Applied
        );
    }
    assert!(s.stats().evictions > 0);
    assert!(s.get(b"k4999", NOW, |_| ()).is_ok());
    s.check_invariants().unwrap();
}

#[test]
fn concurrent_apply_local_writes_and_walks_keep_invariants() {
    use std::sync::Arc;
    let s = Arc::new(store_with(Some(1), 4, 4, |c| c.memory_limit = 8 << 20));
    let threads: Vec<_> = (0..3u64)
        .map(|t| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                for i in 0..3000u64 {
                    let k = format!("k{}", (i * 7 + t) % 300);
                    let ver = version::make(MS + i, t, 100 + t as u8);
                    match i % 5 {
                        0 => {
                            s.apply_delete(k.as_bytes(), ver, NOW);
                        }
                        1 => {
                            s.delete(k.as_bytes(), NOW).ok();
                        }
                        2 => {
                            s.store(StoreMode::Set, k.as_bytes(), 0, 0, b"local", NOW);
                        }
                        _ => {
                            s.apply_item(
                                k.as_bytes(),
                                1,
                                0,
                                &vec![b'p'; (i % 500) as usize],
                                ver,
                                false,
                                NOW,
                            );
                        }
                    }
                }
            })
        })
        .collect();
    let mut walks = 0;
    while threads.iter().any(|t| !t.is_finished()) {
        let mut c = WalkCursor::default();
        while !s.walk(&mut c, 16, NOW, |_| {}) {}
        walks += 1;
    }
    for t in threads {
        t.join().unwrap();
    }
    assert!(walks > 0);
    s.check_invariants().unwrap();
}
