//! Tombstones of one shard: deleted keys and the version of their delete,
//! kept (replicated mode only) so that an older write arriving from the
//! peer later cannot bring a deleted key back.
//!
//! A tombstone lives at least `ttl` seconds from when it was recorded or
//! last raised (the clock counts whole seconds: it goes in the second after
//! `now + ttl`), and the shard's tombstones together stay within a byte cap:
//! past it the oldest go early (counted). Each tombstone has an id from
//! an increasing counter, renewed when it is raised; the ids give the
//! insertion order (expiry and the cap drop from the lowest id) and a
//! stable position for a resumable walk.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Bytes charged per tombstone besides its key (the two map entries, the
/// shared key's header).
pub(crate) const TOMB_OVERHEAD: u64 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tomb {
    version: u64,
    /// Unix seconds at which it goes.
    expires: u32,
    id: u64,
}

pub(crate) struct Tombs {
    map: HashMap<Arc<[u8]>, Tomb>,
    /// id -> key, in insertion order.
    order: BTreeMap<u64, Arc<[u8]>>,
    next_id: u64,
    bytes: u64,
    cap: u64,
    ttl: u32,
    dropped_early: u64,
}

/// A live tombstone met by a walk.
pub(crate) struct TombEntry<'a> {
    pub key: &'a [u8],
    pub version: u64,
}

impl Tombs {
    pub(crate) fn new(ttl: u32, cap: u64) -> Tombs {
        Tombs {
            map: HashMap::new(),
            order: BTreeMap::new(),
            next_id: 1,
            bytes: 0,
            cap,
            ttl,
            dropped_early: 0,
        }
    }

    #[inline]
    fn cost(key: &[u8]) -> u64 {
        key.len() as u64 + TOMB_OVERHEAD
    }

    #[inline]
    fn live(t: &Tomb, now: u32, flush: u64) -> bool {
        t.expires > now && t.version > flush
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// (count, bytes, dropped early).
    pub(crate) fn stats(&self) -> (u64, u64, u64) {
        (self.map.len() as u64, self.bytes, self.dropped_early)
    }

    /// The version of `key`'s live tombstone, without changing anything.
    pub(crate) fn peek(&self, key: &[u8], now: u32, flush: u64) -> Option<u64> {
        if self.map.is_empty() {
            return None;
        }
        self.map
            .get(key)
            .filter(|t| Self::live(t, now, flush))
            .map(|t| t.version)
    }

    /// The version of `key`'s live tombstone; a dead one found is dropped.
    pub(crate) fn get(&mut self, key: &[u8], now: u32, flush: u64) -> Option<u64> {
        if self.map.is_empty() {
            return None;
        }
        let t = *self.map.get(key)?;
        if Self::live(&t, now, flush) {
            Some(t.version)
        } else {
            self.remove(key);
            None
        }
    }

    /// Drops `key`'s tombstone, if any.
    pub(crate) fn remove(&mut self, key: &[u8]) {
        if self.map.is_empty() {
            return;
        }
        if let Some((k, t)) = self.map.remove_entry(key) {
            self.order.remove(&t.id);
            self.bytes -= Self::cost(&k);
        }
    }

    /// Records a delete of `key` at `version`: a new tombstone, or a
    /// higher version (and a new lifetime) for the one there. A lower
    /// version than the one recorded changes nothing.
    pub(crate) fn raise(&mut self, key: &[u8], version: u64, now: u32) {
        self.expire(now);
        // +1: made late in second `now`, it must still outlive `ttl`.
        let expires = now.saturating_add(self.ttl).saturating_add(1);
        let id = self.next_id;
        match self.map.get_mut(key) {
            Some(t) if t.version >= version => return,
            Some(t) => {
                let old = t.id;
                *t = Tomb {
                    version,
                    expires,
                    id,
                };
                if let Some(k) = self.order.remove(&old) {
                    self.order.insert(id, k);
                }
            }
            None => {
                let k: Arc<[u8]> = Arc::from(key);
                self.bytes += Self::cost(key);
                self.order.insert(id, Arc::clone(&k));
                self.map.insert(
                    k,
                    Tomb {
                        version,
                        expires,
                        id,
                    },
                );
            }
        }
        self.next_id += 1;
        while self.bytes > self.cap {
            if !self.pop_oldest() {
                break;
            }
            self.dropped_early += 1;
        }
    }

    fn pop_oldest(&mut self) -> bool {
        let Some((_, k)) = self.order.pop_first() else {
            return false;
        };
        self.map.remove(&k);
        self.bytes -= Self::cost(&k);
        true
    }

    /// Drops the tombstones whose time has come (oldest first; stops at
    /// the first one still due later). Returns how many went.
    pub(crate) fn expire(&mut self, now: u32) -> usize {
        let mut n = 0;
        while let Some((_, k)) = self.order.first_key_value() {
            let due = self.map.get(k).is_none_or(|t| t.expires <= now);
            if !due {
                break;
            }
            self.pop_oldest();
            n += 1;
        }
        n
    }

    /// Drops every tombstone at or below a flush barrier.
    pub(crate) fn purge_upto(&mut self, version: u64) {
        if self.map.is_empty() {
            return;
        }
        let gone: Vec<u64> = self
            .map
            .values()
            .filter(|t| t.version <= version)
            .map(|t| t.id)
            .collect();
        for id in gone {
            if let Some(k) = self.order.remove(&id) {
                self.map.remove(&k);
                self.bytes -= Self::cost(&k);
            }
        }
    }

    /// Calls `f` with the live tombstones whose id is at least `from`, at
    /// most `budget` of them (dead ones count but are skipped). Returns
    /// the id to continue from (None when none is left) and how many were
    /// looked at.
    pub(crate) fn walk_from(
        &self,
        from: u64,
        budget: usize,
        now: u32,
        flush: u64,
        f: &mut dyn FnMut(TombEntry<'_>),
    ) -> (Option<u64>, usize) {
        let mut it = self.order.range(from..);
        let mut seen = 0;
        while seen < budget.max(1) {
            let Some((&id, k)) = it.next() else {
                return (None, seen);
            };
            seen += 1;
            if let Some(t) = self.map.get(k) {
                if t.id == id && Self::live(t, now, flush) {
                    f(TombEntry {
                        key: k,
                        version: t.version,
                    });
                }
            }
        }
        (it.next().map(|(&id, _)| id), seen)
    }

    /// Every tombstone key (live or not).
    pub(crate) fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.map.keys().map(|k| &k[..])
    }

    /// Checks the two maps against each other and the byte count.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.map.len() != self.order.len() {
            return Err(format!(
                "tombstones: {} keys, {} in order",
                self.map.len(),
                self.order.len()
            ));
        }
        let mut bytes = 0;
        for (id, k) in &self.order {
            match self.map.get(k) {
                Some(t) if t.id == *id => bytes += Self::cost(k),
                _ => return Err("tombstone order names a missing key".into()),
            }
            if *id >= self.next_id {
                return Err("tombstone id from the future".into());
            }
        }
        if bytes != self.bytes {
            return Err(format!("tombstone bytes {} != {bytes}", self.bytes));
        }
        if self.bytes > self.cap {
            return Err(format!(
                "tombstone bytes {} over cap {}",
                self.bytes, self.cap
            ));
        }
        Ok(())
    }
}
