//! Counters and the memory picture: `stats` ([`StoreStats`]),
//! `stats slabs` / `stats items` ([`MemoryReport`]), `stats reset`, and
//! the heap the store holds.

use std::sync::atomic::Ordering;

use super::shard::ClassLru;
use super::{crate_now, ClassReport, MemoryReport, Store};

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
    /// Evicted although recently read (the second chance was used up).
    pub evicted_active: u64,
    pub limit_maxbytes: u64,
    /// Dead items removed by the crawler (`crawler_reclaimed`).
    pub crawler_reclaimed: u64,
    /// log2 of the number of hash buckets over all shards.
    pub hash_power_level: u64,
    /// Bytes of hash bucket arrays over all shards.
    pub hash_bytes: u64,
    /// Shards whose bucket array is being doubled right now.
    pub hash_expanding_shards: u64,
    /// Stores refused for lack of memory.
    pub outofmemory: u64,
    /// Bytes of pages handed out (`total_malloced`).
    pub total_malloced: u64,
    pub slabs_moved: u64,
}

impl Store {
    /// Per-class sums over the shards.
    pub(super) fn class_sums(&self) -> Vec<ClassLru> {
        let n = self.slabs.classes.len();
        let mut out = vec![ClassLru::default(); n];
        for si in 0..self.shards.len() {
            let g = self.lock(si);
            for (c, l) in g.lru.iter().enumerate() {
                let o = &mut out[c];
                o.number += l.number;
                o.requested += l.requested;
                let (a, b) = (&mut o.c, &l.c);
                a.total_items += b.total_items;
                a.evicted += b.evicted;
                a.evicted_nonzero += b.evicted_nonzero;
                if b.evicted_at >= a.evicted_at && b.evicted > 0 {
                    a.evicted_at = b.evicted_at;
                    a.evicted_time = b.evicted_time;
                }
                a.evicted_unfetched += b.evicted_unfetched;
                a.evicted_active += b.evicted_active;
                a.outofmemory += b.outofmemory;
                a.reclaimed += b.reclaimed;
                a.expired_unfetched += b.expired_unfetched;
                a.crawler_reclaimed += b.crawler_reclaimed;
                a.crawler_items_checked += b.crawler_items_checked;
                a.get_hits += b.get_hits;
                a.cmd_set += b.cmd_set;
                a.delete_hits += b.delete_hits;
                a.incr_hits += b.incr_hits;
                a.decr_hits += b.decr_hits;
                a.cas_hits += b.cas_hits;
                a.cas_badval += b.cas_badval;
                a.touch_hits += b.touch_hits;
                a.slab_reassign_rescues += b.slab_reassign_rescues;
                a.slab_reassign_evictions += b.slab_reassign_evictions;
            }
        }
        out
    }

    /// The memory picture for `stats slabs` / `stats items`: every class
    /// with pages or items.
    pub fn memory_report(&self) -> MemoryReport {
        self.memory_report_at(crate_now())
    }

    /// [`Store::memory_report`] with ages computed against `now`.
    pub fn memory_report_at(&self, now: u32) -> MemoryReport {
        let sums = self.class_sums();
        let mut rep = MemoryReport::default();
        #[allow(clippy::needless_range_loop)]
        for c in 1..self.slabs.classes.len() {
            let info = self.slabs.classes[c];
            let (pages, used, free, end) = {
                let a = self.slabs.lock_class(c);
                let end = self.slabs.uncarved(&a, c);
                (
                    a.pages.len() as u64,
                    a.used,
                    a.free_count + end + self.slabs.draining_free(&a, c),
                    end,
                )
            };
            let s = &sums[c];
            if pages == 0 && s.number == 0 {
                continue;
            }
            let age = self
                .oldest_tail(c)
                .map(|(_, t)| now.saturating_sub(t) as u64)
                .unwrap_or(0);
            let k = &s.c;
            rep.classes.push(ClassReport {
                id: c as u32,
                chunk_size: info.size as u64,
                chunks_per_page: info.perslab as u64,
                total_pages: pages,
                total_chunks: pages * info.perslab as u64,
                used_chunks: used,
                free_chunks: free,
                free_chunks_end: end,
                mem_requested: s.requested,
                number: s.number,
                number_hot: 0,
                number_warm: 0,
                number_cold: s.number,
                age,
                age_hot: 0,
                age_warm: 0,
                evicted: k.evicted,
                evicted_nonzero: k.evicted_nonzero,
                evicted_time: k.evicted_time as u64,
                outofmemory: k.outofmemory,
                tailrepairs: 0,
                reclaimed: k.reclaimed,
                expired_unfetched: k.expired_unfetched,
                evicted_unfetched: k.evicted_unfetched,
                evicted_active: k.evicted_active,
                crawler_reclaimed: k.crawler_reclaimed,
                crawler_items_checked: k.crawler_items_checked,
                lrutail_reflocked: 0,
                moves_to_cold: 0,
                moves_to_warm: 0,
                moves_within_lru: 0,
                direct_reclaims: 0,
                hits_to_hot: 0,
                hits_to_warm: 0,
                hits_to_cold: k.get_hits,
                hits_to_temp: 0,
                get_hits: k.get_hits,
                cmd_set: k.cmd_set,
                delete_hits: k.delete_hits,
                incr_hits: k.incr_hits,
                decr_hits: k.decr_hits,
                cas_hits: k.cas_hits,
                cas_badval: k.cas_badval,
                touch_hits: k.touch_hits,
            });
            rep.crawler_items_checked += k.crawler_items_checked;
            if pages > 0 {
                rep.active_slabs += 1;
            }
        }
        let (free_pages, _) = self.slabs.pool_counts();
        rep.total_malloced = self.slabs.total_malloced.load(Ordering::Relaxed)
            - free_pages * self.slabs.page_size as u64;
        rep.global_page_pool = free_pages;
        rep.slabs_moved = self.ms.slabs_moved.load(Ordering::Relaxed);
        rep.slab_reassign_rescues = self.ms.rescues.load(Ordering::Relaxed);
        rep.slab_reassign_chunk_rescues = 0;
        rep.slab_reassign_evictions_nomem = self.ms.evictions_nomem.load(Ordering::Relaxed);
        rep.slab_reassign_inline_reclaim = 0;
        rep.slab_reassign_busy_items = self.ms.busy_items.load(Ordering::Relaxed);
        rep.slab_reassign_busy_deletes = 0;
        rep.slab_reassign_running = self.moving.load(Ordering::Acquire);
        let cr = self.lock_crawl();
        rep.lru_crawler_running = cr.running;
        drop(cr);
        rep.lru_crawler_starts = self.ms.lru_crawler_starts.load(Ordering::Relaxed);
        rep
    }

    /// Zeroes the counters (`stats reset`): total_items, evictions,
    /// reclaimed, the *_unfetched counts and the per-class command
    /// counters. Gauges (curr_items, bytes) stay.
    pub fn reset_counters(&self) {
        for si in 0..self.shards.len() {
            for l in self.lock(si).lru.iter_mut() {
                l.c = Default::default();
            }
        }
    }

    pub fn stats(&self) -> StoreStats {
        let mut s = StoreStats {
            limit_maxbytes: self.limit.load(Ordering::Acquire),
            ..Default::default()
        };
        let mut buckets = 0u64;
        for si in 0..self.shards.len() {
            let g = self.lock(si);
            s.curr_items += g.len() as u64;
            for l in &g.lru {
                let c = &l.c;
                s.bytes += l.requested;
                s.total_items += c.total_items;
                s.evictions += c.evicted;
                s.reclaimed += c.reclaimed;
                s.expired_unfetched += c.expired_unfetched;
                s.evicted_unfetched += c.evicted_unfetched;
                s.evicted_active += c.evicted_active;
                s.crawler_reclaimed += c.crawler_reclaimed;
                s.outofmemory += c.outofmemory;
            }
            buckets += g.bucket_count() as u64;
            s.hash_expanding_shards += g.is_expanding() as u64;
        }
        s.hash_power_level = 63 - buckets.max(1).leading_zeros() as u64;
        s.hash_bytes = buckets * 4;
        s.total_malloced = self.slabs.total_malloced.load(Ordering::Relaxed);
        s.slabs_moved = self.ms.slabs_moved.load(Ordering::Relaxed);
        s
    }

    /// Heap bytes the store holds: pages, bucket arrays and LRU heads
    /// (allocator overhead not included).
    pub fn heap_bytes(&self) -> u64 {
        self.slabs.total_malloced.load(Ordering::Relaxed)
            + (0..self.shards.len())
                .map(|si| self.lock(si).heap_bytes() as u64)
                .sum::<u64>()
    }

    /// Bytes of pages allocated right now (never above the limit's pages).
    pub fn used_bytes(&self) -> u64 {
        self.slabs.total_malloced.load(Ordering::Relaxed)
    }
}
