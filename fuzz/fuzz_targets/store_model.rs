//! Store operations against a plain model.
//!
//! The input is decoded into an op stream (3 bytes an op) run on
//! `twincache::storage::Store` and on a `HashMap` model with a moving
//! clock. Byte 0 picks the mode:
//! - exact (limit of 1 GiB, nothing can be evicted): every outcome and every
//!   read must equal the model's;
//! - lossy (one to four 1 MB slab pages, so most classes get no page and
//!   their writes fail or evict): a key may vanish at any time, but
//!   a read never returns anything but what the model says the key holds
//!   (no stale or wrong value, flags, expiry or CAS), and no write succeeds
//!   that needed a key that cannot exist. Memory used never exceeds the
//!   limit.
//!
//! After every op the store's own invariants hold; at the end of an exact
//! run the store holds exactly the model (item count and bytes).
#![no_main]
// `cfg(sanitize)` (cargo-fuzz needs RUSTC_BOOTSTRAP=1 anyway).
#![feature(cfg_sanitize)]

#[path = "../../tests/model/mod.rs"]
mod model;

use libfuzzer_sys::fuzz_target;
use model::{MItem, Model};
use twincache::storage::{
    item_size, parse_counter, ArithOutcome, Miss, Store, StoreConfig, StoreMode, StoreOptions,
    StoreOutcome,
};

// Every run builds and drops a store: about 3 MB of zeroed page tables
// plus 1 MB pages. With glibc's malloc, the first free of such a block
// raises its mmap threshold, so later ones come from the heap; the small
// allocations libFuzzer keeps for each new corpus entry then land between
// them and the heap never shrinks: RSS grew about 1 MB per new unit until
// the RSS limit killed the run (issue 6; no page is leaked, see the test
// storage::slabs::tests::dropped_stores_free_every_page). mimalloc returns
// such blocks to the system and keeps RSS flat. Not under a sanitizer:
// ASan's own allocator unmaps large blocks, and it must see the storage's
// pages to check the unsafe code that writes them.
#[cfg(not(any(sanitize = "address", sanitize = "memory", sanitize = "thread")))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const START: u32 = 1_700_000_000;
const ITEM_MAX: usize = 1024;

const KEYS: &[&[u8]] = &[
    b"a",
    b"b",
    b"key-c",
    b"\x00\xffbin",
    b"k5",
    b"long-key-0123456789",
    b"\xc3\xa9",
    b"z",
];

const VALUES: &[&[u8]] = &[
    b"",
    b"x",
    b"hello world",
    b"5",
    b"100",
    b"  42  ",
    b"18446744073709551615",
    b"18446744073709551616",
    b"007",
    b"abc",
    b"\r\n\0binary\xff",
    b"0",
    b"-1",
    b"+7",
    b"9\0tail",
    // 900 bytes: two appends of it go over the 1 KiB item limit
    &[b'v'; 900],
];

const DELTAS: &[u64] = &[0, 1, 2, 7, 100, 1 << 32, u64::MAX - 1, u64::MAX];

#[derive(Debug, Clone, Copy)]
enum Op {
    Store(StoreMode, usize, usize, u32, u32),
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

fn decode(bytes: &[u8]) -> Vec<Op> {
    bytes
        .chunks_exact(3)
        .map(|c| {
            let (op, a, b) = (c[0], c[1], c[2]);
            let k = usize::from(a) % KEYS.len();
            let v = usize::from(b) % VALUES.len();
            let flags = u32::from(a >> 4) % 3;
            // exptime as an offset from the clock; 0 = never
            let e = u32::from(b >> 4) % 6;
            match op % 16 {
                0 | 1 => Op::Store(StoreMode::Set, k, v, flags, e),
                2 => Op::Store(StoreMode::Add, k, v, flags, e),
                3 => Op::Store(StoreMode::Replace, k, v, flags, e),
                4 => Op::Store(StoreMode::Append, k, v, flags, e),
                5 => Op::Store(StoreMode::Prepend, k, v, flags, e),
                6 => Op::Cas(k, v, b & 1 == 0),
                7 => Op::Arith(k, b & 1 == 0, DELTAS[usize::from(b >> 1) % DELTAS.len()]),
                8 => Op::Delete(k),
                9 => Op::Touch(k, e),
                10 => Op::Gat(k, e),
                11 | 12 => Op::Get(k),
                13 => Op::Flush(u32::from(b) % 4),
                14 => Op::Tick(u32::from(b) % 3),
                _ => Op::Reclaim(1 + usize::from(b) % 50),
            }
        })
        .collect()
}

impl Model {
    fn new_cas(&mut self, cas: u64) {
        assert!(cas > self.last_cas, "cas {cas} not above {}", self.last_cas);
        self.last_cas = cas;
    }

    fn flush(&mut self, at: u32) {
        if self.pending_flush != 0 && self.pending_flush <= self.now {
            self.passed_flush = self.passed_flush.max(self.pending_flush);
        }
        if at == 0 {
            self.items.values_mut().for_each(|it| it.flushed = true);
            self.pending_flush = 0;
        } else {
            self.pending_flush = at;
        }
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

fn new_store(limit: u64, shards: usize) -> Store {
    Store::with_options(
        StoreConfig {
            memory_limit: limit,
            item_size_max: ITEM_MAX,
            evictions: true,
            cas_enabled: true,
            ..StoreConfig::default()
        },
        StoreOptions {
            shards,
            initial_buckets: 2,
            seed: Some((3, 4)),
            ..Default::default()
        },
    )
}

fn too_large(key: usize, value_len: usize, flags: u32) -> bool {
    item_size(KEYS[key].len(), value_len, flags, true) > ITEM_MAX as u64
}

fn run_exact(ops: &[Op], shards: usize) {
    let s = new_store(1 << 30, shards);
    let mut m = Model {
        now: START,
        ..Default::default()
    };
    for op in ops {
        let now = m.now;
        match *op {
            Op::Store(mode, k, v, f, e) => {
                let data = VALUES[v];
                let got = s.store(mode, KEYS[k], f, exp(now, e), data, now);
                if too_large(k, data.len(), f) {
                    assert_eq!(got, StoreOutcome::TooLarge, "{op:?}");
                    if mode == StoreMode::Set {
                        // a refused set drops the old value
                        m.items.remove(&k);
                    }
                    continue;
                }
                let present = m.live(k).is_ok();
                let should = match mode {
                    StoreMode::Set => true,
                    StoreMode::Add => !present,
                    _ => present,
                };
                if !should {
                    assert_eq!(got, StoreOutcome::NotStored, "{op:?}");
                    continue;
                }
                match mode {
                    StoreMode::Append | StoreMode::Prepend => {
                        let it = m.live(k).expect("present");
                        if too_large(k, it.value.len() + data.len(), it.flags) {
                            assert_eq!(got, StoreOutcome::NotStored, "{op:?}");
                            continue;
                        }
                        let StoreOutcome::Stored { cas } = got else {
                            panic!("{op:?}: {got:?}");
                        };
                        if mode == StoreMode::Append {
                            it.value.extend_from_slice(data);
                        } else {
                            it.value.splice(0..0, data.iter().copied());
                        }
                        it.cas = cas;
                        it.time = now;
                        m.new_cas(cas);
                    }
                    _ => {
                        let StoreOutcome::Stored { cas } = got else {
                            panic!("{op:?}: {got:?}");
                        };
                        m.new_cas(cas);
                        m.items.insert(
                            k,
                            MItem {
                                value: data.to_vec(),
                                flags: f,
                                exptime: exp(now, e),
                                cas,
                                time: now,
                                flushed: false,
                            },
                        );
                    }
                }
            }
            Op::Cas(k, v, right) => {
                let unique = match m.live(k) {
                    Ok(it) if right => it.cas,
                    Ok(it) => it.cas + 1,
                    Err(_) => 12345,
                };
                let data = VALUES[v];
                let got = s.store(StoreMode::Cas(unique), KEYS[k], 1, 0, data, now);
                if too_large(k, data.len(), 1) {
                    assert_eq!(got, StoreOutcome::TooLarge, "{op:?}");
                    continue;
                }
                match m.live(k) {
                    Err(_) => assert_eq!(got, StoreOutcome::NotFound, "{op:?}"),
                    Ok(_) if !right => assert_eq!(got, StoreOutcome::Exists, "{op:?}"),
                    Ok(_) => {
                        let StoreOutcome::Stored { cas } = got else {
                            panic!("{op:?}: {got:?}");
                        };
                        m.new_cas(cas);
                        m.items.insert(
                            k,
                            MItem {
                                value: data.to_vec(),
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
                    Err(_) => assert_eq!(got, ArithOutcome::NotFound, "{op:?}"),
                    Ok(it) => match arith_result(&it.value, incr, d) {
                        None => assert_eq!(got, ArithOutcome::NonNumeric, "{op:?}"),
                        Some((v, digits)) => {
                            let ArithOutcome::Value { value, cas } = got else {
                                panic!("{op:?}: {got:?}");
                            };
                            assert_eq!(value, v, "{op:?}");
                            it.value = digits;
                            it.cas = cas;
                            it.time = now;
                            m.new_cas(cas);
                        }
                    },
                }
            }
            Op::Delete(k) => {
                let got = s.delete(KEYS[k], now);
                match m.live(k).map(|_| ()) {
                    Ok(()) => assert_eq!(got, Ok(()), "{op:?}"),
                    Err(miss) => assert!(same_miss(&got, miss), "{op:?}: {got:?}"),
                }
                m.items.remove(&k);
            }
            Op::Touch(k, e) | Op::Gat(k, e) => {
                let got = if matches!(op, Op::Touch(..)) {
                    s.touch(KEYS[k], exp(now, e), now).map(|()| None)
                } else {
                    s.get_and_touch(KEYS[k], exp(now, e), now, |it| Some(it.value.to_vec()))
                };
                match m.live(k) {
                    Err(miss) => assert!(same_miss(&got, miss), "{op:?}: {got:?} want {miss:?}"),
                    Ok(it) => {
                        match got {
                            Ok(Some(v)) => assert_eq!(v, it.value, "{op:?}"),
                            Ok(None) => {}
                            Err(e) => panic!("{op:?}: {e:?}"),
                        }
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
                    Err(miss) => assert!(same_miss(&got, miss), "{op:?}: {got:?} want {miss:?}"),
                    Ok(it) => assert_eq!(
                        got,
                        Ok((
                            it.value.clone(),
                            it.flags,
                            it.exptime,
                            it.cas,
                            KEYS[k].to_vec()
                        )),
                        "{op:?}"
                    ),
                }
            }
            Op::Flush(delay) => {
                let at = if delay == 0 { 0 } else { now + delay };
                s.flush_all(at, now);
                m.flush(at);
            }
            Op::Tick(d) => m.now += d,
            Op::Reclaim(n) => {
                s.reclaim_expired(now, n);
            }
        }
        if let Err(e) = s.check_invariants() {
            panic!("after {op:?}: {e}");
        }
    }
    // Force out every dead item; then the store holds exactly the model.
    for (k, key) in KEYS.iter().enumerate() {
        let _ = s.get(key, m.now, |_| ());
        let _ = m.live(k);
    }
    let st = s.stats();
    assert_eq!(st.curr_items, m.items.len() as u64);
    let bytes: u64 = m
        .items
        .iter()
        .map(|(k, it)| item_size(KEYS[*k].len(), it.value.len(), it.flags, true))
        .sum();
    assert_eq!(st.bytes, bytes);
    // used_bytes() counts pages now: check the slab structures instead.
    if let Err(e) = s.check_invariants() {
        panic!("store invariants: {e}");
    }
}

fn run_lossy(ops: &[Op], shards: usize, limit: u64) {
    let s = new_store(limit, shards);
    let mut m = Model {
        now: START,
        ..Default::default()
    };
    for op in ops {
        let now = m.now;
        match *op {
            Op::Store(mode, k, v, f, e) => {
                let data = VALUES[v];
                let got = s.store(mode, KEYS[k], f, exp(now, e), data, now);
                let present = m.live(k).is_ok();
                match (mode, got) {
                    (_, StoreOutcome::TooLarge) => {
                        assert!(too_large(k, data.len(), f), "{op:?}: too large");
                        if mode == StoreMode::Set {
                            m.items.remove(&k);
                        }
                    }
                    (StoreMode::Append | StoreMode::Prepend, StoreOutcome::Stored { cas }) => {
                        let Ok(it) = m.live(k) else {
                            panic!("{op:?}: appended to a key that cannot exist");
                        };
                        if mode == StoreMode::Append {
                            it.value.extend_from_slice(data);
                        } else {
                            it.value.splice(0..0, data.iter().copied());
                        }
                        it.cas = cas;
                        it.time = now;
                        m.new_cas(cas);
                    }
                    (StoreMode::Append | StoreMode::Prepend, StoreOutcome::NotStored) => {}
                    (_, StoreOutcome::Stored { cas }) => {
                        if mode == StoreMode::Replace && !present {
                            panic!("{op:?}: replace stored a key that cannot exist");
                        }
                        m.new_cas(cas);
                        m.items.insert(
                            k,
                            MItem {
                                value: data.to_vec(),
                                flags: f,
                                exptime: exp(now, e),
                                cas,
                                time: now,
                                flushed: false,
                            },
                        );
                    }
                    (StoreMode::Add, StoreOutcome::NotStored) => {
                        assert!(present, "{op:?}: add refused a key that cannot exist");
                    }
                    (StoreMode::Replace, StoreOutcome::NotStored) => {
                        m.items.remove(&k);
                    }
                    // A failed set drops the old value (a later hit on it
                    // fails the check); other modes may leave it.
                    (StoreMode::Set, StoreOutcome::OutOfMemory) => {
                        m.items.remove(&k);
                    }
                    (_, StoreOutcome::OutOfMemory) => {}
                    (_, other) => panic!("{op:?}: {other:?}"),
                }
            }
            Op::Cas(k, v, right) => {
                let unique = match m.live(k) {
                    Ok(it) if right => it.cas,
                    Ok(it) => it.cas + 1,
                    Err(_) => 12345,
                };
                let data = VALUES[v];
                let got = s.store(StoreMode::Cas(unique), KEYS[k], 1, 0, data, now);
                match (got, m.live(k)) {
                    (StoreOutcome::TooLarge, _) => assert!(too_large(k, data.len(), 1)),
                    (StoreOutcome::Stored { cas }, Ok(it)) if right => {
                        *it = MItem {
                            value: data.to_vec(),
                            flags: 1,
                            exptime: 0,
                            cas,
                            time: now,
                            flushed: false,
                        };
                        m.new_cas(cas);
                    }
                    (StoreOutcome::Exists, Ok(_)) if !right => {}
                    (StoreOutcome::NotFound, _) => {
                        m.items.remove(&k);
                    }
                    (StoreOutcome::OutOfMemory, _) => {}
                    (other, model) => panic!("{op:?}: {other:?} model {model:?}"),
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
                        None => assert_eq!(got, ArithOutcome::NonNumeric, "{op:?}"),
                        Some((v, digits)) => {
                            let ArithOutcome::Value { value, cas } = got else {
                                panic!("{op:?}: {got:?}");
                            };
                            assert_eq!(value, v, "{op:?}");
                            it.value = digits;
                            it.cas = cas;
                            it.time = now;
                            m.new_cas(cas);
                        }
                    },
                    (got, Err(_)) => panic!("{op:?}: {got:?} on a missing key"),
                }
            }
            Op::Delete(k) => {
                let got = s.delete(KEYS[k], now);
                let model = m.live(k).map(|_| ());
                assert!(
                    !(got.is_ok() && model.is_err()),
                    "{op:?}: deleted a key that cannot exist"
                );
                m.items.remove(&k);
            }
            Op::Touch(k, e) | Op::Gat(k, e) => {
                let got =
                    s.get_and_touch(KEYS[k], exp(now, e), now, |it| (it.value.to_vec(), it.cas));
                match (got, m.live(k)) {
                    (Ok(got), Ok(it)) => {
                        assert_eq!(got, (it.value.clone(), it.cas), "{op:?}");
                        it.exptime = exp(now, e);
                    }
                    (Ok(got), Err(_)) => panic!("{op:?}: stale hit {got:?}"),
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
                    (Ok(got), Ok(it)) => assert_eq!(
                        got,
                        (it.value.clone(), it.flags, it.exptime, it.cas),
                        "{op:?}"
                    ),
                    (Ok(got), Err(_)) => panic!("{op:?}: stale hit {got:?}"),
                    (Err(_), _) => {
                        m.items.remove(&k);
                    }
                }
            }
            Op::Flush(delay) => {
                let at = if delay == 0 { 0 } else { now + delay };
                s.flush_all(at, now);
                m.flush(at);
            }
            Op::Tick(d) => m.now += d,
            Op::Reclaim(n) => {
                s.reclaim_expired(now, n);
            }
        }
        assert!(s.used_bytes() <= limit, "used {} > {limit}", s.used_bytes());
        if let Err(e) = s.check_invariants() {
            panic!("after {op:?}: {e}");
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let ops = decode(rest);
    let shards = if mode & 1 == 0 { 1 } else { 4 };
    if mode & 2 == 0 {
        run_exact(&ops, shards);
    } else {
        // One to four pages. The budget counts whole pages (1 MB), so a
        // limit of a few items' bytes would be no page at all and every
        // write would fail.
        let pages = 1 + u64::from(mode >> 2) % 4;
        run_lossy(&ops, shards, pages << 20);
    }
});
