//! Property tests of the store against a plain `HashMap` model with a
//! moving clock.
//!
//! 1. With a limit large enough that nothing is evicted, every outcome and
//!    every read must equal the model's exactly.
//! 2. With a small limit the store may lose any key, but whatever it
//!    returns must be what the model says the key holds: never a stale or
//!    wrong value, never a write that needed a key it could not have had.

mod model;

use model::{MItem, Model};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use std::sync::atomic::{AtomicU64, Ordering};
use twincache::storage::{
    item_size, parse_counter, ArithOutcome, Miss, Store, StoreConfig, StoreMode, StoreOptions,
    StoreOutcome,
};

const START: u32 = 1_700_000_000;

#[derive(Debug, Clone)]
enum Op {
    Set(usize, usize, u32, u32),
    Add(usize, usize, u32, u32),
    Replace(usize, usize, u32, u32),
    Append(usize, usize),
    Prepend(usize, usize),
    /// Cas with the current unique (true) or a wrong one.
    Cas(usize, usize, bool),
    Arith(usize, bool, u64),
    Delete(usize),
    Touch(usize, u32),
    Gat(usize, u32),
    Get(usize),
    Flush(u32),
    Tick(u32),
    Reclaim(usize),
}

const KEYS: &[&[u8]] = &[
    b"a",
    b"b",
    b"key-c",
    b"\x00\xffbin",
    b"k5",
    b"long-key-0123456789",
];
const VALUES: &[&[u8]] = &[
    b"",
    b"x",
    b"hello world",
    b"5",
    b"100",
    b"  42  ",
    b"18446744073709551615",
    b"007",
    b"abc",
    b"\r\n\0binary\xff",
    b"0",
];

fn op() -> impl Strategy<Value = Op> {
    let k = 0..KEYS.len();
    let v = 0..VALUES.len();
    // exptime as an offset from the current clock; 0 = never
    let e = prop_oneof![Just(0u32), 1u32..6];
    prop_oneof![
        (k.clone(), v.clone(), 0u32..3, e.clone()).prop_map(|(k, v, f, e)| Op::Set(k, v, f, e)),
        (k.clone(), v.clone(), 0u32..3, e.clone()).prop_map(|(k, v, f, e)| Op::Add(k, v, f, e)),
        (k.clone(), v.clone(), 0u32..3, e.clone()).prop_map(|(k, v, f, e)| Op::Replace(k, v, f, e)),
        (k.clone(), v.clone()).prop_map(|(k, v)| Op::Append(k, v)),
        (k.clone(), v.clone()).prop_map(|(k, v)| Op::Prepend(k, v)),
        (k.clone(), v.clone(), any::<bool>()).prop_map(|(k, v, b)| Op::Cas(k, v, b)),
        (
            k.clone(),
            any::<bool>(),
            prop_oneof![0u64..200, Just(u64::MAX)]
        )
            .prop_map(|(k, i, d)| Op::Arith(k, i, d)),
        k.clone().prop_map(Op::Delete),
        (k.clone(), e.clone()).prop_map(|(k, e)| Op::Touch(k, e)),
        (k.clone(), e.clone()).prop_map(|(k, e)| Op::Gat(k, e)),
        k.clone().prop_map(Op::Get),
        k.prop_map(Op::Get),
        prop_oneof![Just(0u32), 1u32..4].prop_map(Op::Flush),
        (0u32..3).prop_map(Op::Tick),
        (1usize..50).prop_map(Op::Reclaim),
    ]
}

impl Model {
    fn new_cas(&mut self, cas: u64) -> Result<(), TestCaseError> {
        prop_assert!(
            cas > self.last_cas,
            "cas {} not above {}",
            cas,
            self.last_cas
        );
        self.last_cas = cas;
        Ok(())
    }
}

/// The store reports the model's reason for a miss, or NotFound when a
/// sweep already removed the dead item.
fn same_miss<T>(got: &Result<T, Miss>, want: Miss) -> bool {
    matches!(got, Err(m) if *m == want || *m == Miss::NotFound)
}

fn exp(now: u32, e: u32) -> u32 {
    if e == 0 {
        0
    } else {
        now + e
    }
}

fn arith_result(old: &[u8], incr: bool, delta: u64) -> Option<(u64, Vec<u8>)> {
    let cur = parse_counter(old)?;
    let v = if incr {
        cur.wrapping_add(delta)
    } else {
        cur.saturating_sub(delta)
    };
    let mut d = v.to_string().into_bytes();
    if d.len() <= old.len() {
        d.resize(old.len(), b' ');
    }
    Some((v, d))
}

/// 384-byte pages (four 96-byte chunks of class 1; the largest chunk is
/// the whole page), so that a few pages are a small cache and values that
/// grow by append get chained over several chunks.
const PAGE: u64 = 384;

fn cfg(limit: u64) -> StoreConfig {
    StoreConfig {
        memory_limit: limit,
        item_size_max: 1024,
        evictions: true,
        cas_enabled: true,
        slab_page_size: PAGE as usize,
        ..StoreConfig::default()
    }
}

/// Runs `ops` with exact checks (no evictions possible).
fn run_exact(ops: &[Op], shards: usize) -> Result<(), TestCaseError> {
    let s = Store::with_options(
        cfg(1 << 30),
        StoreOptions {
            shards,
            initial_buckets: 2,
            seed: Some((3, 4)),
            ..Default::default()
        },
    );
    let mut m = Model {
        now: START,
        ..Default::default()
    };
    for op in ops {
        let now = m.now;
        match *op {
            Op::Set(k, v, f, e) | Op::Add(k, v, f, e) | Op::Replace(k, v, f, e) => {
                let mode = match op {
                    Op::Set(..) => StoreMode::Set,
                    Op::Add(..) => StoreMode::Add,
                    _ => StoreMode::Replace,
                };
                let got = s.store(mode, KEYS[k], f, exp(now, e), VALUES[v], now);
                let present = m.live(k).is_ok();
                let should = match mode {
                    StoreMode::Set => true,
                    StoreMode::Add => !present,
                    _ => present,
                };
                if should {
                    let StoreOutcome::Stored { cas } = got else {
                        return Err(TestCaseError::fail(format!("{op:?}: {got:?}")));
                    };
                    m.new_cas(cas)?;
                    m.items.insert(
                        k,
                        MItem {
                            value: VALUES[v].to_vec(),
                            flags: f,
                            exptime: exp(now, e),
                            cas,
                            time: now,
                            flushed: false,
                        },
                    );
                } else {
                    prop_assert_eq!(got, StoreOutcome::NotStored, "{:?}", op);
                }
            }
            Op::Append(k, v) | Op::Prepend(k, v) => {
                let append = matches!(op, Op::Append(..));
                let mode = if append {
                    StoreMode::Append
                } else {
                    StoreMode::Prepend
                };
                let got = s.store(mode, KEYS[k], 9, 0, VALUES[v], now);
                match m.live(k) {
                    Err(_) => prop_assert_eq!(got, StoreOutcome::NotStored),
                    Ok(it) => {
                        let StoreOutcome::Stored { cas } = got else {
                            return Err(TestCaseError::fail(format!("{op:?}: {got:?}")));
                        };
                        if append {
                            it.value.extend_from_slice(VALUES[v]);
                        } else {
                            it.value.splice(0..0, VALUES[v].iter().copied());
                        }
                        it.cas = cas;
                        it.time = now;
                        m.new_cas(cas)?;
                    }
                }
            }
            Op::Cas(k, v, right) => {
                let unique = match m.live(k) {
                    Ok(it) if right => it.cas,
                    Ok(it) => it.cas + 1,
                    Err(_) => 12345,
                };
                let got = s.store(StoreMode::Cas(unique), KEYS[k], 1, 0, VALUES[v], now);
                match m.live(k) {
                    Err(_) => prop_assert_eq!(got, StoreOutcome::NotFound),
                    Ok(_) if !right => prop_assert_eq!(got, StoreOutcome::Exists),
                    Ok(_) => {
                        let StoreOutcome::Stored { cas } = got else {
                            return Err(TestCaseError::fail(format!("{op:?}: {got:?}")));
                        };
                        m.new_cas(cas)?;
                        m.items.insert(
                            k,
                            MItem {
                                value: VALUES[v].to_vec(),
                                flags: 1,
                                exptime: 0,
                                cas,
                                time: now,
                                flushed: false,
                            },
                        );
                    }
                }
            }
            Op::Arith(k, incr, d) => {
                let got = s.arith(KEYS[k], incr, d, now);
                match m.live(k) {
                    Err(_) => prop_assert_eq!(got, ArithOutcome::NotFound),
                    Ok(it) => match arith_result(&it.value, incr, d) {
                        None => prop_assert_eq!(got, ArithOutcome::NonNumeric),
                        Some((v, digits)) => {
                            let ArithOutcome::Value { value, cas } = got else {
                                return Err(TestCaseError::fail(format!("{op:?}: {got:?}")));
                            };
                            prop_assert_eq!(value, v);
                            it.value = digits;
                            it.cas = cas;
                            it.time = now;
                            m.new_cas(cas)?;
                        }
                    },
                }
            }
            Op::Delete(k) => {
                let got = s.delete(KEYS[k], now);
                let want = m.live(k).map(|_| ());
                match want {
                    Ok(()) => prop_assert_eq!(got, Ok(())),
                    Err(miss) => prop_assert!(same_miss(&got, miss), "{:?}: {:?}", op, got),
                }
                m.items.remove(&k);
            }
            Op::Touch(k, e) | Op::Gat(k, e) => {
                let got = s.get_and_touch(KEYS[k], exp(now, e), now, |it| it.value.to_vec());
                match m.live(k) {
                    Err(miss) => {
                        prop_assert!(same_miss(&got, miss), "{:?}: {:?} want {:?}", op, got, miss)
                    }
                    Ok(it) => {
                        prop_assert_eq!(got, Ok(it.value.clone()));
                        it.exptime = exp(now, e);
                    }
                }
            }
            Op::Get(k) => {
                let got = s.get(KEYS[k], now, |it| {
                    (
                        it.value.to_vec(),
                        it.flags,
                        it.exptime,
                        it.cas,
                        it.key.to_vec(),
                    )
                });
                match m.live(k) {
                    Err(miss) => {
                        prop_assert!(same_miss(&got, miss), "{:?}: {:?} want {:?}", op, got, miss)
                    }
                    Ok(it) => prop_assert_eq!(
                        got,
                        Ok((
                            it.value.clone(),
                            it.flags,
                            it.exptime,
                            it.cas,
                            KEYS[k].to_vec()
                        ))
                    ),
                }
            }
            Op::Flush(delay) => {
                let at = if delay == 0 { 0 } else { now + delay };
                s.flush_all(at, now);
                if m.pending_flush != 0 && m.pending_flush <= now {
                    m.passed_flush = m.passed_flush.max(m.pending_flush);
                }
                if at == 0 {
                    m.items.values_mut().for_each(|it| it.flushed = true);
                    m.pending_flush = 0;
                } else {
                    m.pending_flush = at;
                }
            }
            Op::Tick(d) => m.now += d,
            Op::Reclaim(n) => {
                s.reclaim_expired(now, n);
            }
        }
        prop_assert!(s.check_invariants().is_ok(), "{:?}", s.check_invariants());
    }
    // Force out every dead item, then the store holds exactly the model.
    for (k, key) in KEYS.iter().enumerate() {
        let _ = s.get(key, m.now, |_| ());
        let _ = m.live(k);
    }
    let st = s.stats();
    prop_assert_eq!(st.curr_items, m.items.len() as u64);
    let bytes: u64 = m
        .items
        .iter()
        .map(|(k, it)| item_size(KEYS[*k].len(), it.value.len(), it.flags, true))
        .sum();
    prop_assert_eq!(st.bytes, bytes);
    prop_assert!(s.check_invariants().is_ok(), "{:?}", s.check_invariants());
    Ok(())
}

/// Runs `ops` under a small limit: keys may vanish, values never lie.
/// Hits served and items evicted over all lossy runs, to show that the
/// lossy property really exercised both.
static LOSSY_HITS: AtomicU64 = AtomicU64::new(0);
static LOSSY_EVICTIONS: AtomicU64 = AtomicU64::new(0);

fn run_lossy(ops: &[Op], shards: usize, limit: u64) -> Result<(), TestCaseError> {
    let s = Store::with_options(
        cfg(limit),
        StoreOptions {
            shards,
            initial_buckets: 2,
            seed: Some((5, 6)),
            ..Default::default()
        },
    );
    let mut m = Model {
        now: START,
        ..Default::default()
    };
    let fail = |op: &Op, what: String| Err(TestCaseError::fail(format!("{op:?}: {what}")));
    for op in ops {
        let now = m.now;
        // What the model holds, if the store still has the key.
        match *op {
            Op::Set(k, v, f, e) | Op::Add(k, v, f, e) | Op::Replace(k, v, f, e) => {
                let mode = match op {
                    Op::Set(..) => StoreMode::Set,
                    Op::Add(..) => StoreMode::Add,
                    _ => StoreMode::Replace,
                };
                let got = s.store(mode, KEYS[k], f, exp(now, e), VALUES[v], now);
                let present = m.live(k).is_ok();
                match got {
                    StoreOutcome::Stored { cas } => {
                        if mode == StoreMode::Replace && !present {
                            return fail(op, "replace stored a key that cannot exist".into());
                        }
                        m.new_cas(cas)?;
                        m.items.insert(
                            k,
                            MItem {
                                value: VALUES[v].to_vec(),
                                flags: f,
                                exptime: exp(now, e),
                                cas,
                                time: now,
                                flushed: false,
                            },
                        );
                    }
                    StoreOutcome::NotStored if mode == StoreMode::Add => {
                        if !present {
                            return fail(op, "add refused a key that cannot exist".into());
                        }
                    }
                    StoreOutcome::NotStored if mode == StoreMode::Replace => {
                        m.items.remove(&k);
                    }
                    StoreOutcome::OutOfMemory => {
                        m.items.remove(&k);
                    }
                    other => return fail(op, format!("{other:?}")),
                }
            }
            Op::Append(k, v) | Op::Prepend(k, v) => {
                let append = matches!(op, Op::Append(..));
                let mode = if append {
                    StoreMode::Append
                } else {
                    StoreMode::Prepend
                };
                let got = s.store(mode, KEYS[k], 9, 0, VALUES[v], now);
                match (got, m.live(k)) {
                    (StoreOutcome::Stored { cas }, Ok(it)) => {
                        if append {
                            it.value.extend_from_slice(VALUES[v]);
                        } else {
                            it.value.splice(0..0, VALUES[v].iter().copied());
                        }
                        it.cas = cas;
                        it.time = now;
                        m.new_cas(cas)?;
                    }
                    (StoreOutcome::Stored { .. }, Err(_)) => {
                        return fail(op, "appended to a key that cannot exist".into())
                    }
                    // Not stored: the key is gone, or there was no room for
                    // the longer value and it is unchanged.
                    (StoreOutcome::NotStored, _) => {}
                    (other, _) => return fail(op, format!("{other:?}")),
                }
            }
            Op::Cas(k, v, right) => {
                let unique = match m.live(k) {
                    Ok(it) if right => it.cas,
                    Ok(it) => it.cas + 1,
                    Err(_) => 12345,
                };
                let got = s.store(StoreMode::Cas(unique), KEYS[k], 1, 0, VALUES[v], now);
                match (got, m.live(k)) {
                    (StoreOutcome::Stored { cas }, Ok(it)) if right => {
                        *it = MItem {
                            value: VALUES[v].to_vec(),
                            flags: 1,
                            exptime: 0,
                            cas,
                            time: now,
                            flushed: false,
                        };
                        m.new_cas(cas)?;
                    }
                    (StoreOutcome::Exists, Ok(_)) if !right => {}
                    (StoreOutcome::NotFound, _) => {
                        m.items.remove(&k);
                    }
                    (StoreOutcome::OutOfMemory, _) => {}
                    (other, model) => return fail(op, format!("{other:?} model {model:?}")),
                }
            }
            Op::Arith(k, incr, d) => {
                let got = s.arith(KEYS[k], incr, d, now);
                match (got, m.live(k)) {
                    (ArithOutcome::NotFound, _) => {
                        m.items.remove(&k);
                    }
                    (ArithOutcome::OutOfMemory, _) => {}
                    (got, Ok(it)) => match arith_result(&it.value, incr, d) {
                        None => prop_assert_eq!(got, ArithOutcome::NonNumeric),
                        Some((v, digits)) => {
                            let ArithOutcome::Value { value, cas } = got else {
                                return fail(op, format!("{got:?}"));
                            };
                            prop_assert_eq!(value, v);
                            it.value = digits;
                            it.cas = cas;
                            it.time = now;
                            m.new_cas(cas)?;
                        }
                    },
                    (got, Err(_)) => return fail(op, format!("{got:?} on a missing key")),
                }
            }
            Op::Delete(k) => {
                let got = s.delete(KEYS[k], now);
                let model = m.live(k).map(|_| ());
                if got.is_ok() && model.is_err() {
                    return fail(op, "deleted a key that cannot exist".into());
                }
                m.items.remove(&k);
            }
            Op::Touch(k, e) | Op::Gat(k, e) => {
                let got =
                    s.get_and_touch(KEYS[k], exp(now, e), now, |it| (it.value.to_vec(), it.cas));
                match (got, m.live(k)) {
                    (Ok(got), Ok(it)) => {
                        LOSSY_HITS.fetch_add(1, Ordering::Relaxed);
                        prop_assert_eq!(got, (it.value.clone(), it.cas));
                        it.exptime = exp(now, e);
                    }
                    (Ok(got), Err(_)) => return fail(op, format!("stale hit {got:?}")),
                    (Err(_), _) => {
                        m.items.remove(&k);
                    }
                }
            }
            Op::Get(k) => {
                let got = s.get(KEYS[k], now, |it| {
                    (it.value.to_vec(), it.flags, it.exptime, it.cas)
                });
                match (got, m.live(k)) {
                    (Ok(got), Ok(it)) => {
                        LOSSY_HITS.fetch_add(1, Ordering::Relaxed);
                        prop_assert_eq!(got, (it.value.clone(), it.flags, it.exptime, it.cas))
                    }
                    (Ok(got), Err(_)) => return fail(op, format!("stale hit {got:?}")),
                    (Err(_), _) => {
                        m.items.remove(&k);
                    }
                }
            }
            Op::Flush(delay) => {
                let at = if delay == 0 { 0 } else { now + delay };
                s.flush_all(at, now);
                if m.pending_flush != 0 && m.pending_flush <= now {
                    m.passed_flush = m.passed_flush.max(m.pending_flush);
                }
                if at == 0 {
                    m.items.values_mut().for_each(|it| it.flushed = true);
                    m.pending_flush = 0;
                } else {
                    m.pending_flush = at;
                }
            }
            Op::Tick(d) => m.now += d,
            Op::Reclaim(n) => {
                s.reclaim_expired(now, n);
            }
        }
        prop_assert!(
            s.used_bytes() <= limit,
            "used {} > {}",
            s.used_bytes(),
            limit
        );
        prop_assert!(s.check_invariants().is_ok(), "{:?}", s.check_invariants());
    }
    // items pushed out: LRU evictions, and items of pages that moved to
    // another class
    LOSSY_EVICTIONS.fetch_add(
        s.stats().evictions + s.memory_report().slab_reassign_evictions_nomem,
        Ordering::Relaxed,
    );
    Ok(())
}

#[test]
fn lossy_never_stale() {
    let strategy = (
        prop::collection::vec(op(), 1..160),
        prop_oneof![Just(1usize), Just(4)],
        1u64..4,
    );
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    });
    let r = runner.run(&strategy, |(ops, shards, room)| {
        // room for a handful of small items: a few pages
        run_lossy(&ops, shards, room * PAGE)
    });
    if let Err(e) = r {
        panic!("{e}");
    }
    let hits = LOSSY_HITS.load(Ordering::Relaxed);
    let evictions = LOSSY_EVICTIONS.load(Ordering::Relaxed);
    println!("lossy: {hits} hits, {evictions} evictions");
    assert!(
        hits > 100 && evictions > 20,
        "hits {hits} evictions {evictions}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn exact_against_model_one_shard(ops in prop::collection::vec(op(), 1..120)) {
        run_exact(&ops, 1)?;
    }

    #[test]
    fn exact_against_model_many_shards(ops in prop::collection::vec(op(), 1..120)) {
        run_exact(&ops, 4)?;
    }

}
