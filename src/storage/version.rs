//! Item versions: the number every write stamps on an item, which is also
//! its CAS unique.
//!
//! Two modes, fixed when the store is made:
//! - standalone (no node id): a plain counter 1, 2, 3... exactly as
//!   memcached numbers its CAS uniques;
//! - replicated (node id `n`): a hybrid logical clock. A version is
//!   `hlc << 8 | n` with `hlc = ms << 14 | logical` (56 bits: wall clock
//!   milliseconds and a 14-bit counter for writes within one millisecond).
//!   Each local version takes `hlc = max(clock_ms << 14, last_hlc + 1)`, so
//!   versions are strictly increasing on a node, unique across nodes (the
//!   low byte) and ordered roughly by wall clock. Observing a version
//!   received from the peer moves the clock past it, so the next local
//!   write wins over everything this node has seen.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bits of the node id at the bottom of a version.
pub const NODE_BITS: u32 = 8;
/// Bits of the logical counter below the milliseconds.
pub const LOGICAL_BITS: u32 = 14;
/// The largest hybrid clock value (56 bits).
const HLC_MAX: u64 = (1 << (64 - NODE_BITS)) - 1;
/// The largest millisecond count that fits (about year 2109).
const MS_MAX: u64 = HLC_MAX >> LOGICAL_BITS;

/// The node that made version `v` (replicated mode).
#[inline]
pub fn node_of(v: u64) -> u8 {
    v as u8
}

/// The wall clock milliseconds of version `v` (replicated mode).
#[inline]
pub fn millis_of(v: u64) -> u64 {
    v >> (NODE_BITS + LOGICAL_BITS)
}

/// The logical counter of version `v` (replicated mode).
#[inline]
pub fn logical_of(v: u64) -> u64 {
    (v >> NODE_BITS) & ((1 << LOGICAL_BITS) - 1)
}

/// The hybrid clock part of version `v` (everything but the node byte).
#[inline]
pub fn hlc_of(v: u64) -> u64 {
    v >> NODE_BITS
}

/// Builds a version from its parts (replicated mode).
#[inline]
pub fn make(ms: u64, logical: u64, node: u8) -> u64 {
    let hlc = (ms.min(MS_MAX) << LOGICAL_BITS) | (logical & ((1 << LOGICAL_BITS) - 1));
    (hlc << NODE_BITS) | node as u64
}

/// The wall clock in Unix milliseconds (the default clock).
pub fn system_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How far ahead of the wall clock an observed version may move the
/// local clock (one hour).
pub const MAX_AHEAD_MS: u64 = 3_600_000;

/// The version generator of one store.
pub(crate) struct Versions {
    /// Replicated (hybrid clock) mode.
    hlc: bool,
    /// The node id in the low byte (replicated mode); may change once,
    /// before the first link, when two derived ids clash.
    node: std::sync::atomic::AtomicU8,
    /// The last version handed out or observed.
    last: AtomicU64,
    clock_ms: fn() -> u64,
}

impl Versions {
    pub(crate) fn new(node: Option<u8>, clock_ms: fn() -> u64) -> Versions {
        Versions {
            hlc: node.is_some(),
            node: std::sync::atomic::AtomicU8::new(node.unwrap_or(0)),
            last: AtomicU64::new(0),
            clock_ms,
        }
    }

    /// The node id (replicated mode).
    #[inline]
    pub(crate) fn node(&self) -> Option<u8> {
        self.hlc.then(|| self.node.load(Ordering::Relaxed))
    }

    /// Changes the node id (replicated mode only).
    pub(crate) fn set_node(&self, n: u8) {
        if self.hlc {
            self.node.store(n, Ordering::Relaxed);
        }
    }

    /// True in replicated (hybrid clock) mode.
    #[inline]
    pub(crate) fn is_hlc(&self) -> bool {
        self.hlc
    }

    /// A new version, greater than every version handed out or observed.
    #[inline]
    pub(crate) fn next(&self) -> u64 {
        let Some(n) = self.node() else {
            return self.last.fetch_add(1, Ordering::AcqRel) + 1;
        };
        let wall = (self.clock_ms)().min(MS_MAX) << LOGICAL_BITS;
        let mut cur = self.last.load(Ordering::Acquire);
        loop {
            let hlc = wall.max(hlc_of(cur) + 1).min(HLC_MAX);
            let v = (hlc << NODE_BITS) | n as u64;
            // Past the end of the clock (year 2109, or a peer sending
            // absurd versions) versions stop growing; never go back.
            let new = v.max(cur);
            match self
                .last
                .compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return v,
                Err(x) => cur = x,
            }
        }
    }

    /// Moves the clock to at least `v`: every later local version is
    /// greater than `v`.
    #[inline]
    pub(crate) fn observe(&self, v: u64) {
        // A clock far ahead of ours (a broken or hostile peer) is not
        // followed past an hour ahead of the wall clock: following it to
        // the end of the 56 bits would freeze every later version.
        let v = match self.node() {
            Some(_) => {
                let cap = (((self.clock_ms)().saturating_add(MAX_AHEAD_MS)).min(MS_MAX)
                    << LOGICAL_BITS)
                    << NODE_BITS;
                v.min(cap)
            }
            None => v,
        };
        if self.last.load(Ordering::Relaxed) < v {
            self.last.fetch_max(v, Ordering::AcqRel);
        }
    }

    /// The last version handed out or observed.
    #[inline]
    pub(crate) fn current(&self) -> u64 {
        self.last.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frozen() -> u64 {
        1_700_000_000_000
    }

    #[test]
    fn counter_mode_counts_from_one() {
        let v = Versions::new(None, frozen);
        assert_eq!((v.next(), v.next(), v.next()), (1, 2, 3));
        v.observe(10);
        assert_eq!(v.current(), 10);
        assert_eq!(v.next(), 11);
    }

    #[test]
    fn hlc_parts_round_trip() {
        let x = make(1_700_000_000_123, 77, 9);
        assert_eq!(node_of(x), 9);
        assert_eq!(millis_of(x), 1_700_000_000_123);
        assert_eq!(logical_of(x), 77);
        assert_eq!(hlc_of(x), (1_700_000_000_123 << LOGICAL_BITS) | 77);
    }

    #[test]
    fn hlc_with_a_frozen_clock_counts_logically() {
        let v = Versions::new(Some(3), frozen);
        let a = v.next();
        let b = v.next();
        assert_eq!(a, make(frozen(), 0, 3));
        assert_eq!(b, make(frozen(), 1, 3));
        // A version from another node far ahead: the next local one beats it.
        let peer = make(frozen() + 5000, 12, 200);
        v.observe(peer);
        let c = v.next();
        assert!(c > peer);
        assert_eq!(node_of(c), 3);
        assert_eq!(millis_of(c), frozen() + 5000);
        assert_eq!(logical_of(c), 13);
        // Observing something older changes nothing.
        v.observe(a);
        assert!(v.next() > c);
    }

    #[test]
    fn saturated_clock_never_goes_back_or_panics() {
        let v = Versions::new(Some(1), || u64::MAX);
        let a = v.next();
        v.observe(u64::MAX);
        let b = v.next();
        assert!(b >= a);
        assert!(v.current() >= b);
    }

    #[test]
    fn a_far_future_version_is_followed_only_an_hour_ahead() {
        let v = Versions::new(Some(1), frozen);
        v.observe(u64::MAX - 1);
        let a = v.next();
        assert_eq!(millis_of(a), frozen() + MAX_AHEAD_MS);
        let b = v.next();
        assert!(b > a, "versions keep growing");
        // Within the hour a peer clock is followed as before.
        let w = Versions::new(Some(1), frozen);
        let near = ((frozen() + 5_000) << LOGICAL_BITS) << NODE_BITS;
        w.observe(near);
        assert!(w.next() > near);
    }
}
