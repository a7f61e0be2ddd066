//! Background upkeep: the maintenance pass, the LRU crawler
//! (`lru_crawler crawl`) and the expiry sweep that removes dead items.

use std::sync::atomic::Ordering;
use std::sync::MutexGuard;

use super::{CrawlOutcome, Store, SWEEP_CHUNK};

/// Buckets a maintenance pass examines.
const MAINTAIN_BUDGET: usize = 4096;

#[derive(Default)]
pub(super) struct Crawl {
    /// Classes asked for by `crawl` (bit per class id), 0 = none pending.
    mask: u64,
    /// Shards left in the requested crawl.
    shard: usize,
    pub(super) running: bool,
}

impl Store {
    /// Removes up to a bounded number of dead (expired or flushed) items,
    /// examining about `budget` hash buckets from where the previous call
    /// stopped. Takes one shard lock at a time. Returns the number removed.
    pub fn reclaim_expired(&self, now: u32, budget: usize) -> usize {
        self.sweep(now, budget, u64::MAX)
    }

    fn sweep(&self, now: u32, budget: usize, mask: u64) -> usize {
        let mut left = budget;
        let mut removed = 0;
        let mut wraps = 0;
        while left > 0 && wraps <= self.shards.len() {
            let raw = self.sweep_shard.load(Ordering::Relaxed);
            let si = raw & self.shard_mask;
            let v = self.validity(now);
            let (examined, rm, wrapped) =
                self.with_shard(si, |sh| sh.sweep(left.min(SWEEP_CHUNK), &v, mask));
            left = left.saturating_sub(examined.max(1));
            removed += rm;
            if wrapped {
                wraps += 1;
                let _ = self.sweep_shard.compare_exchange(
                    raw,
                    raw.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        }
        removed
    }

    pub(super) fn lock_crawl(&self) -> MutexGuard<'_, Crawl> {
        self.crawl.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `lru_crawler crawl`: queue a crawl of the given classes (None = all);
    /// the maintenance pass runs it.
    pub fn crawl(&self, classes: Option<&[u32]>) -> CrawlOutcome {
        let n = self.slabs.classes.len() as u32;
        let mask = match classes {
            None => u64::MAX,
            Some(list) => {
                let mut m = 0u64;
                for &c in list {
                    if c == 0 || c >= n {
                        return CrawlOutcome::BadClass;
                    }
                    m |= 1 << c;
                }
                m
            }
        };
        let mut cr = self.lock_crawl();
        if cr.running {
            return CrawlOutcome::Running;
        }
        cr.mask = mask;
        cr.shard = 0;
        cr.running = true;
        self.ms.lru_crawler_starts.fetch_add(1, Ordering::Relaxed);
        CrawlOutcome::Ok
    }

    /// Runs a queued crawl for up to `budget` buckets.
    fn crawl_step(&self, now: u32, budget: usize) -> usize {
        let mut cr = self.lock_crawl();
        if !cr.running {
            return 0;
        }
        let mut left = budget;
        let mut removed = 0;
        let v = self.validity(now);
        let mask = cr.mask;
        while left > 0 && cr.shard < self.shards.len() {
            let si = cr.shard;
            // Each shard is crawled whole from its own cursor position;
            // the cursor wraps once per shard.
            let (ex, rm, wrapped) =
                self.with_shard(si, |sh| sh.sweep(left.min(SWEEP_CHUNK), &v, mask));
            left = left.saturating_sub(ex.max(1));
            removed += rm;
            if wrapped {
                cr.shard += 1;
            }
        }
        if cr.shard >= self.shards.len() {
            cr.running = false;
            cr.mask = 0;
        }
        removed
    }

    /// Background upkeep, called by the maintenance thread a few times a
    /// second: a queued crawl, the expiry sweep, the page mover and the
    /// automove decision. Returns the number of items reclaimed.
    pub fn maintain(&self, now: u32) -> usize {
        self.maintain_with(now, true)
    }

    /// [`Store::maintain`], with the crawler (queued crawls and the
    /// background expiry sweep) on or off (`lru_crawler disable`). Page
    /// moves and giving pages back to a lowered limit run either way.
    pub fn maintain_with(&self, now: u32, crawler: bool) -> usize {
        let mut n = 0;
        if crawler {
            n += self.crawl_step(now, MAINTAIN_BUDGET);
            n += self.reclaim_expired(now, MAINTAIN_BUDGET);
        }
        if self.slabs.pages_over_limit() > 0 {
            self.shrink_to_limit(now);
        }
        self.expire_tombstones(now);
        self.automove_tick(now);
        if self.moving.load(Ordering::Acquire) || !self.lock_mover().unfinished.is_empty() {
            self.mover_step();
        }
        n
    }
}
