//! The item store: keys to items under a memory limit.
//!
//! Knows nothing of the protocol, sockets or replication. Every call takes
//! `now` (Unix seconds) so expiry is testable without sleeping. Expiry times
//! are absolute Unix seconds, 0 meaning never.
//!
//! The API here is the one the slab/LRU implementation keeps: byte keys,
//! outcomes as enums, a CAS unique per item.

use std::collections::HashMap;
use std::sync::Mutex;

/// Static configuration of a store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `-m` in bytes.
    pub memory_limit: u64,
    /// `-I` in bytes (largest item, header included).
    pub item_size_max: usize,
    /// false with `-M`: a full cache refuses stores instead of evicting.
    pub evictions: bool,
    /// false with `-C`: items carry no CAS unique (reported as 0).
    pub cas_enabled: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            memory_limit: 64 * 1024 * 1024,
            item_size_max: 1024 * 1024,
            evictions: true,
            cas_enabled: true,
        }
    }
}

/// A read-only view of one live item, valid while the callback runs.
#[derive(Debug, Clone, Copy)]
pub struct ItemView<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub flags: u32,
    /// CAS unique (0 when CAS is disabled).
    pub cas: u64,
    /// Absolute expiry, Unix seconds, 0 = never.
    pub exptime: u32,
}

/// How a store request treats an existing item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    /// Store only if the item's CAS unique equals this one.
    Cas(u64),
}

/// Outcome of a store request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    Stored {
        cas: u64,
    },
    NotStored,
    /// `cas` with a different unique.
    Exists,
    /// `cas` on a missing key.
    NotFound,
    /// The item would exceed the item size limit.
    TooLarge,
    /// No memory and evictions are disabled (or nothing can be evicted).
    OutOfMemory,
}

/// Why a lookup found nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    NotFound,
    /// The item was there but its expiry time had passed.
    Expired,
    /// The item was there but invalidated by `flush_all`.
    Flushed,
}

/// Outcome of incr/decr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOutcome {
    Value { value: u64, cas: u64 },
    NotFound,
    NonNumeric,
    OutOfMemory,
}

/// Gauges and counters the store maintains (summed over shards).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub curr_items: u64,
    pub total_items: u64,
    /// Bytes used by items (key + value + header), as memcached's `bytes`.
    pub bytes: u64,
    pub evictions: u64,
    pub reclaimed: u64,
    pub expired_unfetched: u64,
    pub evicted_unfetched: u64,
    pub limit_maxbytes: u64,
}

struct Item {
    value: Box<[u8]>,
    flags: u32,
    cas: u64,
    exptime: u32,
    /// Unix seconds of the last store, for delayed `flush_all`.
    time: u32,
}

/// Accounted size of one item: what memcached would charge against `-m`.
fn item_size(key: &[u8], value_len: usize) -> u64 {
    (48 + 8 + key.len() + 1 + value_len + 2) as u64
}

struct Inner {
    map: HashMap<Box<[u8]>, Item>,
    next_cas: u64,
    stats: StoreStats,
    /// Items stored at or before this time (Unix secs) are invalid once
    /// `flush_at <= now`. 0 = no flush pending/applied.
    flush_at: u32,
    /// Items with a CAS at or below this are invalid (immediate flush).
    flush_cas: u64,
}

/// The store. Placeholder internals (one map under one lock) until the
/// slab/LRU storage replaces them; the API is final.
pub struct Store {
    cfg: StoreConfig,
    inner: Mutex<Inner>,
}

impl Store {
    pub fn new(cfg: StoreConfig) -> Store {
        let stats = StoreStats {
            limit_maxbytes: cfg.memory_limit,
            ..Default::default()
        };
        Store {
            cfg,
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                next_cas: 1,
                stats,
                flush_at: 0,
                flush_cas: 0,
            }),
        }
    }

    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks `key` up; on a hit calls `f` with the item.
    pub fn get<R>(
        &self,
        key: &[u8],
        now: u32,
        f: impl FnOnce(ItemView<'_>) -> R,
    ) -> Result<R, Miss> {
        let mut g = self.lock();
        let inner = &mut *g;
        match live(inner, key, now) {
            Err(m) => Err(m),
            Ok(()) => {
                let it = &inner.map[key];
                Ok(f(view(key, it)))
            }
        }
    }

    /// Sets a new expiry on a live item and calls `f` with it (gat/gats).
    pub fn get_and_touch<R>(
        &self,
        key: &[u8],
        exptime: u32,
        now: u32,
        f: impl FnOnce(ItemView<'_>) -> R,
    ) -> Result<R, Miss> {
        let mut g = self.lock();
        let inner = &mut *g;
        live(inner, key, now)?;
        let it = inner.map.get_mut(key).expect("live item");
        it.exptime = exptime;
        Ok(f(view(key, it)))
    }

    /// Sets a new expiry on a live item.
    pub fn touch(&self, key: &[u8], exptime: u32, now: u32) -> Result<(), Miss> {
        self.get_and_touch(key, exptime, now, |_| ())
    }

    pub fn store(
        &self,
        mode: StoreMode,
        key: &[u8],
        flags: u32,
        exptime: u32,
        data: &[u8],
        now: u32,
    ) -> StoreOutcome {
        let mut g = self.lock();
        let inner = &mut *g;
        let existing = live(inner, key, now).is_ok();
        let new_value: Box<[u8]> = match mode {
            StoreMode::Set => data.into(),
            StoreMode::Add => {
                if existing {
                    return StoreOutcome::NotStored;
                }
                data.into()
            }
            StoreMode::Replace => {
                if !existing {
                    return StoreOutcome::NotStored;
                }
                data.into()
            }
            StoreMode::Append | StoreMode::Prepend => {
                if !existing {
                    return StoreOutcome::NotStored;
                }
                let old = &inner.map[key].value;
                let mut v = Vec::with_capacity(old.len() + data.len());
                if mode == StoreMode::Append {
                    v.extend_from_slice(old);
                    v.extend_from_slice(data);
                } else {
                    v.extend_from_slice(data);
                    v.extend_from_slice(old);
                }
                v.into()
            }
            StoreMode::Cas(unique) => {
                if !existing {
                    return StoreOutcome::NotFound;
                }
                if !self.cfg.cas_enabled || inner.map[key].cas != unique {
                    return StoreOutcome::Exists;
                }
                data.into()
            }
        };
        if item_size(key, new_value.len()) as usize > self.cfg.item_size_max + 1 {
            return StoreOutcome::TooLarge;
        }
        let (flags, exptime) = match mode {
            // append/prepend keep the old item's flags and expiry
            StoreMode::Append | StoreMode::Prepend => {
                let old = &inner.map[key];
                (old.flags, old.exptime)
            }
            _ => (flags, exptime),
        };
        let cas = insert(inner, &self.cfg, key, new_value, flags, exptime, now);
        match cas {
            Some(cas) => StoreOutcome::Stored { cas },
            None => StoreOutcome::OutOfMemory,
        }
    }

    pub fn delete(&self, key: &[u8], now: u32) -> Result<(), Miss> {
        let mut g = self.lock();
        let inner = &mut *g;
        live(inner, key, now)?;
        remove(inner, key);
        Ok(())
    }

    pub fn arith(&self, key: &[u8], incr: bool, delta: u64, now: u32) -> ArithOutcome {
        let mut g = self.lock();
        let inner = &mut *g;
        if live(inner, key, now).is_err() {
            return ArithOutcome::NotFound;
        }
        let it = &inner.map[key];
        let Some(current) = parse_counter(&it.value) else {
            return ArithOutcome::NonNumeric;
        };
        let value = if incr {
            current.wrapping_add(delta)
        } else {
            current.saturating_sub(delta)
        };
        let (flags, exptime) = (it.flags, it.exptime);
        let mut digits = value.to_string().into_bytes();
        // memcached keeps the old length on decr when the number shrinks,
        // padding with spaces.
        if !incr && digits.len() < it.value.len() {
            digits.resize(it.value.len(), b' ');
        }
        match insert(inner, &self.cfg, key, digits.into(), flags, exptime, now) {
            Some(cas) => ArithOutcome::Value { value, cas },
            None => ArithOutcome::OutOfMemory,
        }
    }

    /// Invalidates every item stored at or before `at` (Unix seconds), or
    /// every item stored so far when `at` is 0.
    pub fn flush_all(&self, at: u32, now: u32) {
        let mut g = self.lock();
        if at == 0 || at <= now {
            g.flush_cas = g.next_cas - 1;
            g.flush_at = 0;
        } else {
            g.flush_at = at;
        }
    }

    /// Changes the memory limit at run time (`cache_memlimit`).
    pub fn set_memory_limit(&self, bytes: u64) {
        let mut g = self.lock();
        g.stats.limit_maxbytes = bytes;
    }

    pub fn stats(&self) -> StoreStats {
        self.lock().stats
    }
}

fn view<'a>(key: &'a [u8], it: &'a Item) -> ItemView<'a> {
    ItemView {
        key,
        value: &it.value,
        flags: it.flags,
        cas: it.cas,
        exptime: it.exptime,
    }
}

/// Checks that `key` holds a live item; removes a dead one.
fn live(inner: &mut Inner, key: &[u8], now: u32) -> Result<(), Miss> {
    let Some(it) = inner.map.get(key) else {
        return Err(Miss::NotFound);
    };
    let miss = if it.cas <= inner.flush_cas
        || (inner.flush_at != 0 && inner.flush_at <= now && it.time <= inner.flush_at)
    {
        Some(Miss::Flushed)
    } else if it.exptime != 0 && it.exptime <= now {
        Some(Miss::Expired)
    } else {
        None
    };
    match miss {
        Some(m) => {
            remove(inner, key);
            Err(m)
        }
        None => Ok(()),
    }
}

fn remove(inner: &mut Inner, key: &[u8]) {
    if let Some(it) = inner.map.remove(key) {
        inner.stats.curr_items -= 1;
        inner.stats.bytes -= item_size(key, it.value.len());
    }
}

fn insert(
    inner: &mut Inner,
    cfg: &StoreConfig,
    key: &[u8],
    value: Box<[u8]>,
    flags: u32,
    exptime: u32,
    now: u32,
) -> Option<u64> {
    let size = item_size(key, value.len());
    remove(inner, key);
    if inner.stats.bytes + size > inner.stats.limit_maxbytes {
        if !cfg.evictions {
            return None;
        }
        // Placeholder eviction: drop arbitrary items until it fits.
        let victims: Vec<Box<[u8]>> = inner.map.keys().take(64).cloned().collect();
        for k in victims {
            if inner.stats.bytes + size <= inner.stats.limit_maxbytes {
                break;
            }
            remove(inner, &k);
            inner.stats.evictions += 1;
        }
        if inner.stats.bytes + size > inner.stats.limit_maxbytes {
            return None;
        }
    }
    let cas = if cfg.cas_enabled {
        let c = inner.next_cas;
        inner.next_cas += 1;
        c
    } else {
        inner.next_cas += 1;
        0
    };
    inner.stats.curr_items += 1;
    inner.stats.total_items += 1;
    inner.stats.bytes += size;
    inner.map.insert(
        key.into(),
        Item {
            value,
            flags,
            cas,
            exptime,
            time: now,
        },
    );
    Some(cas)
}

/// memcached reads a counter with strtoull: leading digits, then only
/// spaces (the padding decr leaves) are allowed.
pub fn parse_counter(value: &[u8]) -> Option<u64> {
    let digits_end = value
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(value.len());
    if digits_end == 0 || value[digits_end..].iter().any(|&b| b != b' ') {
        return None;
    }
    let mut n: u64 = 0;
    for &b in &value[..digits_end] {
        n = n.checked_mul(10)?.checked_add((b - b'0') as u64)?;
    }
    Some(n)
}
