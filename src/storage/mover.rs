//! Moving pages between slab classes: `slabs reassign`, automove (the
//! once-a-second decision and the donor class a full class takes a page
//! from instead of evicting), pages taken inline for a class with no
//! items, and the mover that drains a page one shard lock at a time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::MutexGuard;

use super::{ReassignOutcome, Store};

/// Shards a mover step visits per maintenance pass.
const MOVER_SHARDS_PER_STEP: usize = 16;

/// An evicting class takes a page from a class whose LRU tail is older
/// than its own by this ratio (memcached's slab_automove_ratio).
const AUTOMOVE_AGE_RATIO: f64 = 0.8;

/// A page on its way from one class to another (`slabs reassign`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Move {
    src: usize,
    /// 0 = the global page pool.
    dst: usize,
    page: Option<u32>,
    next_shard: usize,
    passes: u32,
}

#[derive(Default)]
pub(super) struct Mover {
    pub(super) active: Option<Move>,
    /// Pages whose inline move could not finish (chunks in flight).
    pub(super) unfinished: Vec<Move>,
    rr: usize,
}

#[derive(Default)]
pub(super) struct AutoMove {
    last_tick: u32,
    last_evicted: Vec<u64>,
}

#[derive(Default)]
pub(super) struct MoveStats {
    pub(super) slabs_moved: AtomicU64,
    pub(super) rescues: AtomicU64,
    pub(super) evictions_nomem: AtomicU64,
    pub(super) busy_items: AtomicU64,
    pub(super) lru_crawler_starts: AtomicU64,
}

impl Store {
    /// With automove on, the class that should give class `c` a page
    /// instead of `c` evicting: its LRU tail is clearly older than the
    /// tail `c` would evict (memcached's automove judges page value by
    /// tail age the same way, but only once per window).
    pub(super) fn donor_for(&self, c: usize, now: u32) -> Option<usize> {
        let d = self.donor.load(Ordering::Relaxed);
        if d == 0 || self.automove() == 0 {
            return None;
        }
        let (dc, dt) = ((d >> 32) as usize, d as u32);
        if dc == c {
            return None;
        }
        // The donor's oldest item must be older than the one `c` would
        // evict by more than the clock's granularity (two seconds), so
        // that classes of equal age do not trade pages back and forth.
        let mine = self.oldest_tail(c).map(|(_, t)| t).unwrap_or(now);
        (dt.saturating_add(2) <= mine).then_some(dc)
    }

    /// Recomputes the donor class (see `donor`).
    pub(super) fn refresh_donor(&self) {
        let mut best: Option<(usize, u32)> = None;
        for c in 1..self.slabs.classes.len() {
            if self.slabs.lock_class(c).pages.len() < 2 {
                continue;
            }
            if let Some((_, t)) = self.oldest_tail(c) {
                if best.is_none_or(|(_, bt)| t < bt) {
                    best = Some((c, t));
                }
            }
        }
        let v = best.map(|(c, t)| (c as u64) << 32 | t as u64).unwrap_or(0);
        self.donor.store(v, Ordering::Relaxed);
    }

    /// Takes a page from another class for class `dst`, which has no item
    /// to evict. False when no class can give one.
    pub(super) fn steal_page(&self, dst: usize, now: u32) -> bool {
        // Classes with a page's worth of free chunks first, then by the age
        // of their LRU tails, oldest first.
        let mut cands: Vec<(u64, u32, usize)> = Vec::new();
        for c in 1..self.slabs.classes.len() {
            if c == dst {
                continue;
            }
            let (pages, free) = {
                let a = self.slabs.lock_class(c);
                (a.pages.len(), a.free_count + self.slabs.uncarved(&a, c))
            };
            if pages == 0 {
                continue;
            }
            let idle = free >= self.slabs.classes[c].perslab as u64;
            let age = self.oldest_tail(c).map(|(_, t)| t).unwrap_or(0);
            cands.push((if idle { 0 } else { 1 }, age, c));
        }
        cands.sort_unstable();
        cands
            .into_iter()
            .take(4)
            .any(|(_, _, src)| self.move_page_now(src, dst, now))
    }

    /// Moves one page of `src` to `dst` (0 = pool) right away, evicting or
    /// rescuing its items one shard lock at a time. True when a page moved.
    pub(super) fn move_page_now(&self, src: usize, dst: usize, now: u32) -> bool {
        let _ = now;
        let Some(page) = self.slabs.start_drain(src) else {
            return false;
        };
        for pass in 0..64 {
            for si in 0..self.shards.len() {
                self.evacuate(si, src, page);
            }
            if self.slabs.finish_drain(src, page) {
                self.give_page(page, dst);
                return true;
            }
            if pass > 2 {
                std::thread::yield_now();
            }
        }
        // Chunks of the page are still held by writers in flight: the
        // maintenance thread finishes the move.
        self.lock_mover().unfinished.push(Move {
            src,
            dst,
            page: Some(page),
            next_shard: 0,
            passes: 0,
        });
        false
    }

    fn evacuate(&self, si: usize, src: usize, page: u32) {
        let (rescued, evicted) = self.with_shard(si, |sh| sh.evacuate(src, page, true));
        self.ms.rescues.fetch_add(rescued, Ordering::Relaxed);
        self.ms
            .evictions_nomem
            .fetch_add(evicted, Ordering::Relaxed);
    }

    fn give_page(&self, page: u32, dst: usize) {
        if dst == 0 {
            self.slabs.page_to_pool(page);
        } else {
            self.slabs.page_to_class(page, dst);
        }
        self.ms.slabs_moved.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn lock_mover(&self) -> MutexGuard<'_, Mover> {
        self.mover.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Advances the page mover by a bounded step.
    pub(super) fn mover_step(&self) {
        let mut m = self.lock_mover();
        let mut mv = match m.active.take() {
            Some(mv) => mv,
            None => match m.unfinished.pop() {
                Some(mv) => mv,
                None => {
                    self.moving.store(false, Ordering::Release);
                    return;
                }
            },
        };
        drop(m);
        let page = match mv.page {
            Some(p) => p,
            None => match self.slabs.start_drain(mv.src) {
                Some(p) => {
                    mv.page = Some(p);
                    p
                }
                None => {
                    self.moving.store(false, Ordering::Release);
                    return;
                }
            },
        };
        let end = (mv.next_shard + MOVER_SHARDS_PER_STEP).min(self.shards.len());
        for si in mv.next_shard..end {
            self.evacuate(si, mv.src, page);
        }
        mv.next_shard = end;
        if end == self.shards.len() {
            if self.slabs.finish_drain(mv.src, page) {
                self.give_page(page, mv.dst);
                self.moving.store(false, Ordering::Release);
                return;
            }
            mv.next_shard = 0;
            mv.passes += 1;
            if mv.passes > 3 {
                self.ms.busy_items.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.lock_mover().active = Some(mv);
        self.moving.store(true, Ordering::Release);
    }

    /// `slabs reassign <src> <dst>`: queues a move of one page of class
    /// `src` (-1: any class with a spare page) to class `dst` (0: the
    /// global page pool); the maintenance pass carries it out.
    pub fn slabs_reassign(&self, src: i64, dst: i64) -> ReassignOutcome {
        // memcached's order of checks: busy, same, pick any, bad, no spare.
        let n = self.slabs.classes.len() as i64;
        let mut m = self.lock_mover();
        if m.active.is_some() || self.moving.load(Ordering::Acquire) {
            return ReassignOutcome::Running;
        }
        if src == dst {
            return ReassignOutcome::Same;
        }
        let pages = |c: usize| self.slabs.lock_class(c).pages.len();
        let src = if src == -1 {
            let start = m.rr;
            m.rr = m.rr.wrapping_add(1);
            (0..n as usize - 1)
                .map(|k| 1 + (start + k) % (n as usize - 1))
                .find(|&c| c as i64 != dst && pages(c) > 1)
                .map(|c| c as i64)
                .unwrap_or(-1)
        } else {
            src
        };
        if src < 0 || src >= n || dst < 0 || dst >= n {
            return ReassignOutcome::BadClass;
        }
        if src == 0 {
            // From the global page pool: a free page goes at once.
            if dst == 0 || !self.slabs.pool_page_to_class(dst as usize) {
                return ReassignOutcome::NoSpare;
            }
            self.ms.slabs_moved.fetch_add(1, Ordering::Relaxed);
            return ReassignOutcome::Ok;
        }
        if pages(src as usize) < 2 {
            return ReassignOutcome::NoSpare;
        }
        m.active = Some(Move {
            src: src as usize,
            dst: dst as usize,
            page: None,
            next_shard: 0,
            passes: 0,
        });
        self.moving.store(true, Ordering::Release);
        ReassignOutcome::Ok
    }

    /// `slabs automove 0|1|2` (and `-o slab_automove`): 0 off; 1 moves a
    /// page to a class that keeps evicting from a class with a page of
    /// free chunks or a clearly older LRU tail, judged once a second; 2
    /// moves a page to every class that evicted in the last second.
    pub fn set_automove(&self, mode: u8) {
        self.automove.store(mode.min(2), Ordering::Relaxed);
    }

    pub fn automove(&self) -> u8 {
        self.automove.load(Ordering::Relaxed)
    }

    /// One automove decision per second of `now`.
    pub(super) fn automove_tick(&self, now: u32) {
        let mode = self.automove();
        if mode == 0 {
            return;
        }
        let mut am = self.am.lock().unwrap_or_else(|p| p.into_inner());
        if am.last_tick == now {
            return;
        }
        am.last_tick = now;
        self.refresh_donor();
        if self.moving.load(Ordering::Acquire) {
            return;
        }
        let sums = self.class_sums();
        let n = sums.len();
        if am.last_evicted.len() != n {
            am.last_evicted = sums.iter().map(|s| s.c.evicted).collect();
            return;
        }
        let mut dst = 0;
        let mut most = 0;
        #[allow(clippy::needless_range_loop)]
        for c in 1..n {
            let d = sums[c].c.evicted - am.last_evicted[c].min(sums[c].c.evicted);
            am.last_evicted[c] = sums[c].c.evicted;
            if d > most {
                most = d;
                dst = c;
            }
        }
        drop(am);
        if dst == 0 {
            return;
        }
        let dst_age = self
            .oldest_tail(dst)
            .map(|(_, t)| now.saturating_sub(t))
            .unwrap_or(0) as f64;
        let mut idle: Option<(usize, u64)> = None;
        let mut old: Option<(usize, u32)> = None;
        for c in 1..n {
            if c == dst {
                continue;
            }
            let (pages, free) = {
                let a = self.slabs.lock_class(c);
                (
                    a.pages.len() as u64,
                    a.free_count + self.slabs.uncarved(&a, c),
                )
            };
            if pages == 0 {
                continue;
            }
            let per = self.slabs.classes[c].perslab as u64;
            if free >= per && idle.is_none_or(|(_, f)| free > f) {
                idle = Some((c, free));
            }
            if pages >= 2 {
                let age = self
                    .oldest_tail(c)
                    .map(|(_, t)| now.saturating_sub(t))
                    .unwrap_or(u32::MAX);
                if old.is_none_or(|(_, a)| age > a) {
                    old = Some((c, age));
                }
            }
        }
        let src = match (idle, old) {
            (Some((c, _)), _) => Some(c),
            (None, Some((c, age))) if mode == 2 || dst_age < AUTOMOVE_AGE_RATIO * age as f64 => {
                Some(c)
            }
            _ => None,
        };
        if let Some(src) = src {
            let mut m = self.lock_mover();
            if m.active.is_none() {
                m.active = Some(Move {
                    src,
                    dst,
                    page: None,
                    next_shard: 0,
                    passes: 0,
                });
                self.moving.store(true, Ordering::Release);
            }
        }
    }
}
