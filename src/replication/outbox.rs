//! The outbox: keys changed by clients whose state the peer has not had
//! yet, coalesced by key and bounded.
//!
//! An entry is only a key: the sender reads the key's state (value, flags,
//! expiry, version, or its tombstone) from the store when it sends, so a
//! hot key written a thousand times costs one entry and one record, and
//! values are never copied twice. The set is split in parts by key hash
//! (own locks) so workers writing different keys do not queue on one
//! mutex; order between keys does not matter (records carry versions).
//!
//! Bounded by entries (`-q`) and bytes (`--repl-outbox-bytes`). When a
//! push would pass a bound the outbox is emptied and marked overflowed:
//! the sender then walks the whole store (a full resync) instead, which
//! covers every dropped key. Clients never see a difference.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// Parts the key set is split into (a power of two).
const PARTS: usize = 16;
/// Bytes one entry costs besides its key (one copy, shared by the queue
/// and the set): the shared allocation's header, the hash slot, the queue
/// slot, the enqueue time.
pub const ENTRY_OVERHEAD: u64 = 64;

#[derive(Default)]
struct Part {
    /// Keys in the order they were first changed, with that time (ms).
    order: VecDeque<(Arc<[u8]>, u64)>,
    members: HashSet<Arc<[u8]>>,
    bytes: u64,
}

/// A pending `flush_all` for the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingFlush {
    pub version: u64,
    pub at: u32,
}

pub struct Outbox {
    parts: Box<[Mutex<Part>]>,
    items: AtomicU64,
    bytes: AtomicU64,
    max_items: u64,
    max_bytes: u64,
    overflowed: AtomicBool,
    overflows: AtomicU64,
    flushes: Mutex<Vec<PendingFlush>>,
    wake: OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// A wake-up is pending (or waking is paused): pushes do not wake
    /// the sender again until it re-arms.
    wake_pending: AtomicBool,
}

fn part_of(key: &[u8]) -> usize {
    // FNV-1a: cheap, and only spreads keys over a few locks.
    let mut h: u32 = 0x811c_9dc5;
    for &b in key {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    (h as usize ^ (h as usize >> 16)) & (PARTS - 1)
}

fn entry_cost(key: &[u8]) -> u64 {
    key.len() as u64 + ENTRY_OVERHEAD
}

impl Outbox {
    pub fn new(max_items: u64, max_bytes: u64) -> Outbox {
        Outbox {
            parts: (0..PARTS).map(|_| Mutex::new(Part::default())).collect(),
            items: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            max_items: max_items.max(1),
            max_bytes: max_bytes.max(1),
            overflowed: AtomicBool::new(false),
            overflows: AtomicU64::new(0),
            flushes: Mutex::new(Vec::new()),
            wake: OnceLock::new(),
            // Paused until the sender arms it (no link yet).
            wake_pending: AtomicBool::new(true),
        }
    }

    /// How the outbox wakes the sender (set once).
    pub fn set_waker(&self, wake: Box<dyn Fn() + Send + Sync>) {
        let _ = self.wake.set(wake);
    }

    fn lock(&self, i: usize) -> MutexGuard<'_, Part> {
        self.parts[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `key` changed at `now_ms`.
    pub fn push(&self, key: &[u8], now_ms: u64) {
        let mut g = self.lock(part_of(key));
        if g.members.contains(key) {
            return;
        }
        let cost = entry_cost(key);
        if self.items.load(Ordering::Relaxed) + 1 > self.max_items
            || self.bytes.load(Ordering::Relaxed) + cost > self.max_bytes
        {
            drop(g);
            self.overflow();
            return;
        }
        // One copy of the key, shared by the set and the queue.
        let key: Arc<[u8]> = key.into();
        g.members.insert(Arc::clone(&key));
        g.order.push_back((key, now_ms));
        g.bytes += cost;
        self.items.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(cost, Ordering::Relaxed);
        drop(g);
        self.wake();
    }

    /// Records a client `flush_all` (kept apart: never dropped by an
    /// overflow, as a walk cannot carry it).
    pub fn push_flush(&self, f: PendingFlush) {
        {
            let mut g = self.flushes.lock().unwrap_or_else(|p| p.into_inner());
            // Coalesced: the newest immediate barrier covers older ones,
            // and a delayed flush replaces the pending delayed one (as
            // `flush_all N` does on one server), so the list stays short
            // however long the link is down.
            if f.version != 0 {
                g.retain(|p| p.version == 0);
            } else {
                g.retain(|p| p.version != 0);
            }
            g.push(f);
        }
        self.wake();
    }

    pub fn take_flushes(&self) -> Vec<PendingFlush> {
        std::mem::take(&mut *self.flushes.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn overflow(&self) {
        if !self.overflowed.swap(true, Ordering::AcqRel) {
            self.overflows.fetch_add(1, Ordering::Relaxed);
        }
        self.clear();
        self.wake();
    }

    /// Drops every entry (a full walk is about to cover them).
    pub fn clear(&self) {
        for i in 0..PARTS {
            let mut g = self.lock(i);
            let n = g.order.len() as u64;
            let b = g.bytes;
            g.order.clear();
            g.members.clear();
            g.order.shrink_to(1024);
            g.members.shrink_to(1024);
            g.bytes = 0;
            self.items.fetch_sub(n, Ordering::Relaxed);
            self.bytes.fetch_sub(b, Ordering::Relaxed);
        }
    }

    /// Entries were dropped and the peer still needs its full resync.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }

    /// True (once) when entries were dropped since the last call: the
    /// peer needs a full resync.
    pub fn take_overflow(&self) -> bool {
        self.overflowed.swap(false, Ordering::AcqRel)
    }

    /// Moves up to `max` keys into `out`, visiting the parts round-robin
    /// from `*next`. Returns how many were taken.
    pub fn pop_batch(&self, next: &mut usize, max: usize, out: &mut Vec<Arc<[u8]>>) -> usize {
        let mut taken = 0;
        let per_part = (max / PARTS).max(8);
        for _ in 0..PARTS {
            if taken >= max {
                break;
            }
            let i = *next & (PARTS - 1);
            *next = next.wrapping_add(1);
            let mut g = self.lock(i);
            let mut n = 0;
            let mut freed = 0;
            while n < per_part && taken < max {
                let Some((key, _)) = g.order.pop_front() else {
                    break;
                };
                g.members.remove(&key);
                freed += entry_cost(&key);
                out.push(key);
                n += 1;
                taken += 1;
            }
            g.bytes -= freed;
            self.items.fetch_sub(n as u64, Ordering::Relaxed);
            self.bytes.fetch_sub(freed, Ordering::Relaxed);
        }
        taken
    }

    /// The sender is ready for more: the next push wakes it.
    pub fn arm(&self) {
        self.wake_pending.store(false, Ordering::Release);
    }

    /// The sender cannot send (no link, or backpressure): pushes stop
    /// waking it until it arms again.
    pub fn pause(&self) {
        self.wake_pending.store(true, Ordering::Release);
    }

    fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            if let Some(w) = self.wake.get() {
                w();
            }
        }
    }

    pub fn len(&self) -> u64 {
        self.items.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0 && self.flushes.lock().map(|f| f.is_empty()).unwrap_or(true)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn overflows(&self) -> u64 {
        self.overflows.load(Ordering::Relaxed)
    }

    /// When the oldest entry still waiting was queued (ms), if any.
    pub fn oldest_ms(&self) -> Option<u64> {
        (0..PARTS)
            .filter_map(|i| self.lock(i).order.front().map(|e| e.1))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    fn drain(o: &Outbox) -> Vec<Vec<u8>> {
        let mut next = 0;
        let mut out = Vec::new();
        while o.pop_batch(&mut next, 1000, &mut out) > 0 {}
        let mut v: Vec<Vec<u8>> = out.into_iter().map(|k| k.to_vec()).collect();
        v.sort();
        v
    }

    #[test]
    fn coalesces_by_key_and_accounts_bytes() {
        let o = Outbox::new(100, 1 << 20);
        for _ in 0..5 {
            o.push(b"a", 1);
            o.push(b"bb", 2);
        }
        assert_eq!(o.len(), 2);
        assert_eq!(o.bytes(), entry_cost(b"a") + entry_cost(b"bb"));
        assert_eq!(o.oldest_ms(), Some(1));
        assert_eq!(drain(&o), vec![b"a".to_vec(), b"bb".to_vec()]);
        assert_eq!((o.len(), o.bytes()), (0, 0));
        // Popped keys can be queued again.
        o.push(b"a", 3);
        assert_eq!(o.len(), 1);
    }

    #[test]
    fn overflow_empties_and_flags_once() {
        let o = Outbox::new(10, 1 << 20);
        for i in 0..10u32 {
            o.push(&i.to_be_bytes(), 0);
        }
        assert_eq!(o.len(), 10);
        assert!(!o.take_overflow());
        o.push(b"one too many", 0);
        assert_eq!((o.len(), o.bytes()), (0, 0));
        assert_eq!(o.overflows(), 1);
        assert!(o.take_overflow());
        assert!(!o.take_overflow());
        // The byte bound works the same way.
        let o = Outbox::new(1000, 3 * entry_cost(b"k0"));
        for k in [b"k0", b"k1", b"k2", b"k3"] {
            o.push(k, 0);
        }
        assert!(o.take_overflow());
        assert_eq!(o.len(), 0);
    }

    #[test]
    fn flushes_survive_overflow() {
        let o = Outbox::new(1, 1 << 20);
        o.push_flush(PendingFlush { version: 7, at: 0 });
        o.push(b"a", 0);
        o.push(b"b", 0);
        assert!(o.take_overflow());
        assert_eq!(o.take_flushes(), vec![PendingFlush { version: 7, at: 0 }]);
        assert!(o.take_flushes().is_empty());
    }

    #[test]
    fn flushes_coalesce() {
        let o = Outbox::new(10, 1 << 20);
        for v in 1..=100 {
            o.push_flush(PendingFlush { version: v, at: 0 });
            o.push_flush(PendingFlush {
                version: 0,
                at: v as u32,
            });
        }
        let mut f = o.take_flushes();
        f.sort_by_key(|p| p.version);
        assert_eq!(
            f,
            vec![
                PendingFlush {
                    version: 0,
                    at: 100
                },
                PendingFlush {
                    version: 100,
                    at: 0
                }
            ]
        );
    }

    #[test]
    fn wakes_once_until_armed() {
        let o = Outbox::new(100, 1 << 20);
        let n = Arc::new(AtomicUsize::new(0));
        let n2 = Arc::clone(&n);
        o.set_waker(Box::new(move || {
            n2.fetch_add(1, Ordering::SeqCst);
        }));
        o.push(b"a", 0);
        assert_eq!(n.load(Ordering::SeqCst), 0, "paused until armed");
        o.arm();
        o.push(b"b", 0);
        o.push(b"c", 0);
        assert_eq!(n.load(Ordering::SeqCst), 1);
        o.arm();
        o.push(b"d", 0);
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn many_threads_lose_nothing() {
        let o = Arc::new(Outbox::new(1_000_000, 1 << 30));
        let hs: Vec<_> = (0..4)
            .map(|t| {
                let o = Arc::clone(&o);
                std::thread::spawn(move || {
                    for i in 0..5000u32 {
                        o.push(format!("{t}-{i}").as_bytes(), 0);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(drain(&o).len(), 20_000);
    }
}
