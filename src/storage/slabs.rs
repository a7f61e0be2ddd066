//! Slab classes, the page pool and chunk allocation.
//!
//! Memory is a set of pages (1 MB by default) drawn from one global budget
//! of `limit / page_size` pages. A page belongs to at most one slab class
//! and is cut into that class's chunks. A chunk is named by a 32-bit
//! [`Ref`]: the page number in the high bits, the chunk's index in its
//! page in the low `chunk_bits` bits.
//!
//! Ownership protocol (what makes the raw memory accesses sound):
//! - A free chunk belongs to its class allocator and is touched only under
//!   that class's lock (the free list runs through its first 4 bytes).
//! - An allocated chunk belongs to whoever allocated it: first the thread
//!   that allocated it (a "reservation"), then, once linked, the index
//!   shard its item's key hashes to. Its bytes are read and written only
//!   under that shard's lock (or by the reserving thread before linking).
//! - Page table entries change only while no chunk of the page is
//!   allocated, so a chunk's address is stable while anyone owns it.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

pub(crate) type Ref = u32;
pub(crate) const NIL: Ref = u32::MAX;

/// memcached's item header size on 64-bit builds; its class table starts
/// at this plus `-n`.
const MC_ITEM_HEADER: usize = 48;
/// Chunk sizes are multiples of this.
const ALIGN: usize = 8;
/// memcached's MAX_NUMBER_OF_SLAB_CLASSES (63 usable ids + 1).
const MAX_CLASSES: usize = 64;
/// Page alignment: the low bits of a page table entry hold the class id.
const PAGE_ALIGN: usize = 64;

#[cfg(test)]
thread_local! {
    /// Pages allocated minus pages freed by this thread (test builds only):
    /// a store built, used and dropped on one thread brings it back to 0.
    static LIVE_PAGES: std::cell::Cell<i64> = const { std::cell::Cell::new(0) };
}

/// Counts a page allocated (+1) or freed (-1); nothing outside tests.
#[inline]
fn count_page(_delta: i64) {
    #[cfg(test)]
    LIVE_PAGES.with(|n| n.set(n.get() + _delta));
}

/// Computes memcached's slab class table: chunk sizes, 1-based (index 0
/// unused). `custom` replaces the geometric series (`-o slab_sizes`).
pub fn class_sizes(
    min_chunk: usize,
    factor: f64,
    chunk_max: usize,
    custom: Option<&[u32]>,
) -> Vec<u32> {
    let mut sizes = vec![0u32];
    let mut size = (MC_ITEM_HEADER + min_chunk) as f64;
    let mut i = 0;
    while i < MAX_CLASSES - 2 {
        let mut s = match custom {
            Some(list) => match list.get(i) {
                Some(&v) if v != 0 => v as usize,
                _ => break,
            },
            None => {
                if size >= chunk_max as f64 / factor {
                    break;
                }
                size as usize
            }
        };
        if s % ALIGN != 0 {
            s += ALIGN - s % ALIGN;
        }
        sizes.push(s as u32);
        if custom.is_none() {
            // memcached multiplies the aligned size (an unsigned int).
            size = (s as f64 * factor).floor();
        }
        i += 1;
    }
    sizes.push(chunk_max as u32);
    sizes
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct ClassInfo {
    pub size: u32,
    pub perslab: u32,
}

/// One class's allocator state (behind the class lock).
#[derive(Default)]
pub(crate) struct ClassAlloc {
    free_head: Ref,
    pub free_count: u64,
    /// Pages owned by this class, in the order they came.
    pub pages: Vec<u32>,
    /// Pages not yet cut: the one being cut and those waiting.
    carve_page: u32,
    carve_next: u32,
    fresh: Vec<u32>,
    /// Chunks allocated (items, continuation chunks, reservations).
    pub used: u64,
    /// The page being emptied for a move, if any.
    pub draining: Option<u32>,
}

#[derive(Default)]
struct Pool {
    limit_pages: u64,
    /// Pages that have memory (assigned to a class or free).
    allocated: u64,
    /// Pages with memory and no class.
    free: Vec<u32>,
    /// Page numbers without memory, ready for reuse.
    spare_ids: Vec<u32>,
    next_id: u32,
}

#[repr(align(128))]
struct Padded<T>(T);

/// Classes, pages and allocators.
pub(crate) struct Slabs {
    pub classes: Vec<ClassInfo>,
    pub page_size: usize,
    chunk_bits: u32,
    max_pages: u32,
    /// Page table: base address | class id, 0 = no memory.
    pages: Box<[AtomicU64]>,
    /// Allocated chunks per page (changed under the owning class lock).
    page_used: Box<[AtomicU32]>,
    alloc: Box<[Padded<Mutex<ClassAlloc>>]>,
    pool: Mutex<Pool>,
    pub total_malloced: AtomicU64,
}

/// `n` zeroed atomics whose memory the kernel hands out lazily (a large
/// zeroed allocation is mapped on demand), so a table sized for the largest
/// possible page count costs resident memory only for the pages in use.
fn zeroed_atomics_u64(n: usize) -> Box<[AtomicU64]> {
    let b: Box<[u64]> = vec![0u64; n].into_boxed_slice();
    // SAFETY: AtomicU64 has the size, alignment and bit validity of u64,
    // and the box's allocation moves over unchanged.
    unsafe { Box::from_raw(Box::into_raw(b) as *mut [AtomicU64]) }
}

fn zeroed_atomics_u32(n: usize) -> Box<[AtomicU32]> {
    let b: Box<[u32]> = vec![0u32; n].into_boxed_slice();
    // SAFETY: AtomicU32 has the size, alignment and bit validity of u32.
    unsafe { Box::from_raw(Box::into_raw(b) as *mut [AtomicU32]) }
}

impl Slabs {
    pub(crate) fn new(sizes: &[u32], page_size: usize, limit: u64) -> Slabs {
        let classes: Vec<ClassInfo> = sizes
            .iter()
            .map(|&s| ClassInfo {
                size: s,
                perslab: if s == 0 {
                    0
                } else {
                    (page_size / s as usize) as u32
                },
            })
            .collect();
        let max_per = classes.iter().map(|c| c.perslab).max().unwrap_or(1).max(1);
        let chunk_bits = 32 - (max_per - 1).max(1).leading_zeros();
        let max_pages = ((1u64 << (32 - chunk_bits)) - 2).min(1 << 22) as u32;
        // The page tables get one entry per page the current limit allows
        // (capped by what a Ref can name), plus room for limit increases.
        let n = max_pages as usize;
        let alloc = (0..classes.len())
            .map(|_| {
                Padded(Mutex::new(ClassAlloc {
                    free_head: NIL,
                    carve_page: NIL,
                    ..Default::default()
                }))
            })
            .collect();
        let s = Slabs {
            classes,
            page_size,
            chunk_bits,
            max_pages,
            pages: zeroed_atomics_u64(n),
            page_used: zeroed_atomics_u32(n),
            alloc,
            pool: Mutex::new(Pool::default()),
            total_malloced: AtomicU64::new(0),
        };
        s.set_limit(limit);
        s
    }

    /// Highest class id.
    pub(crate) fn largest(&self) -> usize {
        self.classes.len() - 1
    }

    pub(crate) fn chunk_max(&self) -> usize {
        self.classes[self.largest()].size as usize
    }

    /// The smallest class whose chunks hold `n` bytes (0 if none does).
    pub(crate) fn class_for(&self, n: usize) -> usize {
        // classes[1..] are ascending
        let c = self.classes[1..].partition_point(|c| (c.size as usize) < n) + 1;
        if c < self.classes.len() {
            c
        } else {
            0
        }
    }

    pub(crate) fn limit_pages(&self) -> u64 {
        self.lock_pool().limit_pages
    }

    /// Sets the page budget; returns how many pages are over it now.
    pub(crate) fn set_limit(&self, bytes: u64) -> u64 {
        let mut p = self.lock_pool();
        let pages = if bytes == 0 {
            self.max_pages as u64
        } else {
            (bytes / self.page_size as u64).min(self.max_pages as u64)
        };
        p.limit_pages = pages;
        // Free pages over the limit go at once.
        while p.allocated > p.limit_pages {
            let Some(id) = p.free.pop() else { break };
            self.release_page_memory(id);
            p.spare_ids.push(id);
            p.allocated -= 1;
        }
        p.allocated.saturating_sub(p.limit_pages)
    }

    pub(crate) fn pages_over_limit(&self) -> u64 {
        let p = self.lock_pool();
        p.allocated.saturating_sub(p.limit_pages)
    }

    fn lock_pool(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn lock_class(&self, c: usize) -> MutexGuard<'_, ClassAlloc> {
        self.alloc[c].0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pages in the global pool (memory, no class) and allocated pages.
    pub(crate) fn pool_counts(&self) -> (u64, u64) {
        let p = self.lock_pool();
        (p.free.len() as u64, p.allocated)
    }

    #[inline]
    fn entry(&self, page: u32) -> u64 {
        self.pages[page as usize].load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn page_of(&self, r: Ref) -> u32 {
        r >> self.chunk_bits
    }

    #[inline]
    fn index_of(&self, r: Ref) -> u32 {
        r & ((1 << self.chunk_bits) - 1)
    }

    #[inline]
    fn make_ref(&self, page: u32, idx: u32) -> Ref {
        (page << self.chunk_bits) | idx
    }

    /// The class of the page holding `r`.
    #[inline]
    pub(crate) fn class_of(&self, r: Ref) -> usize {
        (self.entry(self.page_of(r)) & (PAGE_ALIGN as u64 - 1)) as usize
    }

    #[inline]
    pub(crate) fn chunk_size_of(&self, r: Ref) -> usize {
        self.classes[self.class_of(r)].size as usize
    }

    /// Address of chunk `r`. `r` must be a chunk of a page that has memory.
    #[inline]
    pub(crate) fn ptr(&self, r: Ref) -> *mut u8 {
        let e = self.entry(self.page_of(r));
        let base = (e & !(PAGE_ALIGN as u64 - 1)) as usize as *mut u8;
        let size = self.classes[(e & (PAGE_ALIGN as u64 - 1)) as usize].size as usize;
        debug_assert!(!base.is_null());
        // SAFETY: the index is below the class's chunks per page, so the
        // offset stays inside the page's allocation.
        unsafe { base.add(self.index_of(r) as usize * size) }
    }

    fn page_layout(&self) -> Layout {
        // page_size is at least 1 KB and a multiple of 8 (checked by the
        // store); PAGE_ALIGN is a power of two.
        Layout::from_size_align(self.page_size, PAGE_ALIGN).unwrap_or(Layout::new::<u64>())
    }

    /// Frees the memory of a page with no class. Pool lock held.
    fn release_page_memory(&self, id: u32) {
        let e = self.pages[id as usize].swap(0, Ordering::AcqRel);
        let base = (e & !(PAGE_ALIGN as u64 - 1)) as usize as *mut u8;
        if !base.is_null() {
            // SAFETY: base came from alloc_zeroed with this layout and no
            // chunk of the page is in use (the page is in the free pool).
            unsafe { dealloc(base, self.page_layout()) };
            count_page(-1);
            self.total_malloced
                .fetch_sub(self.page_size as u64, Ordering::Relaxed);
        }
    }

    /// Takes a page for class `c` from the pool (or allocates one under
    /// the limit). Class lock of `c` held by the caller.
    fn page_from_pool(&self, c: usize) -> Option<u32> {
        let mut p = self.lock_pool();
        let id = if let Some(id) = p.free.pop() {
            id
        } else {
            if p.allocated >= p.limit_pages {
                return None;
            }
            let id = match p.spare_ids.pop() {
                Some(id) => id,
                None => {
                    if p.next_id >= self.max_pages {
                        return None;
                    }
                    p.next_id += 1;
                    p.next_id - 1
                }
            };
            // SAFETY: the layout has a non-zero size.
            let base = unsafe { alloc_zeroed(self.page_layout()) };
            if base.is_null() {
                p.spare_ids.push(id);
                return None;
            }
            count_page(1);
            self.total_malloced
                .fetch_add(self.page_size as u64, Ordering::Relaxed);
            self.pages[id as usize].store(base as usize as u64, Ordering::Release);
            p.allocated += 1;
            id
        };
        drop(p);
        let e = self.entry(id) & !(PAGE_ALIGN as u64 - 1);
        self.pages[id as usize].store(e | c as u64, Ordering::Release);
        Some(id)
    }

    /// Gives page `id` (no chunk in use, already out of its class) to the
    /// pool, or frees it when the pool is over its limit.
    pub(crate) fn page_to_pool(&self, id: u32) {
        let mut p = self.lock_pool();
        let e = self.entry(id) & !(PAGE_ALIGN as u64 - 1);
        self.pages[id as usize].store(e, Ordering::Release);
        if p.allocated > p.limit_pages {
            self.release_page_memory(id);
            p.spare_ids.push(id);
            p.allocated -= 1;
        } else {
            p.free.push(id);
        }
    }

    /// Moves a page from the global pool to class `c`; false when the pool
    /// has none.
    pub(crate) fn pool_page_to_class(&self, c: usize) -> bool {
        let id = self.lock_pool().free.pop();
        match id {
            Some(id) => {
                self.page_to_class(id, c);
                true
            }
            None => false,
        }
    }

    /// Gives page `id` (empty, out of its old class) to class `c`.
    pub(crate) fn page_to_class(&self, id: u32, c: usize) {
        let mut a = self.lock_class(c);
        let e = self.entry(id) & !(PAGE_ALIGN as u64 - 1);
        self.pages[id as usize].store(e | c as u64, Ordering::Release);
        a.pages.push(id);
        a.fresh.push(id);
    }

    /// Allocates one chunk of class `c`; None when the class has no free
    /// chunk and no page can be had.
    pub(crate) fn alloc(&self, c: usize, new_page: bool) -> Option<Ref> {
        let mut a = self.lock_class(c);
        self.alloc_locked(&mut a, c, new_page)
    }

    pub(crate) fn alloc_locked(&self, a: &mut ClassAlloc, c: usize, new_page: bool) -> Option<Ref> {
        let r = if a.free_head != NIL {
            let r = a.free_head;
            // SAFETY: r is a free chunk of class c (we hold its lock); its
            // first 4 bytes hold the next free chunk.
            a.free_head = unsafe { std::ptr::read_unaligned(self.ptr(r) as *const u32) };
            a.free_count -= 1;
            r
        } else {
            if a.carve_page == NIL || a.carve_next >= self.classes[c].perslab {
                a.carve_page = NIL;
                if let Some(p) = a.fresh.pop() {
                    a.carve_page = p;
                } else if new_page {
                    let p = self.page_from_pool(c)?;
                    a.pages.push(p);
                    a.carve_page = p;
                } else {
                    return None;
                }
                a.carve_next = 0;
            }
            a.carve_next += 1;
            self.make_ref(a.carve_page, a.carve_next - 1)
        };
        a.used += 1;
        self.page_used[self.page_of(r) as usize].fetch_add(1, Ordering::Relaxed);
        Some(r)
    }

    /// Returns chunk `r` to its class.
    pub(crate) fn free(&self, r: Ref) {
        let c = self.class_of(r);
        let mut a = self.lock_class(c);
        self.free_locked(&mut a, r);
    }

    pub(crate) fn free_locked(&self, a: &mut ClassAlloc, r: Ref) {
        let page = self.page_of(r);
        a.used -= 1;
        self.page_used[page as usize].fetch_sub(1, Ordering::Relaxed);
        if a.draining == Some(page) {
            return;
        }
        // SAFETY: the caller owned r (allocated, unlinked now); it becomes
        // a free chunk of this class, whose lock we hold.
        unsafe { std::ptr::write_unaligned(self.ptr(r) as *mut u32, a.free_head) };
        a.free_head = r;
        a.free_count += 1;
    }

    pub(crate) fn page_used(&self, page: u32) -> u32 {
        self.page_used[page as usize].load(Ordering::Relaxed)
    }

    /// Free chunks of class `c` not yet cut from its pages.
    pub(crate) fn uncarved(&self, a: &ClassAlloc, c: usize) -> u64 {
        let per = self.classes[c].perslab as u64;
        let mut n = a.fresh.len() as u64 * per;
        if a.carve_page != NIL {
            n += per - a.carve_next as u64;
        }
        n
    }

    /// Chunks of the draining page not in use.
    pub(crate) fn draining_free(&self, a: &ClassAlloc, c: usize) -> u64 {
        match a.draining {
            Some(p) => self.classes[c].perslab as u64 - self.page_used(p) as u64,
            None => 0,
        }
    }

    /// Starts emptying one page of class `c`: the page with the fewest
    /// chunks in use leaves the free list and the carving queue. Returns
    /// it, or None when the class has no page or already drains one.
    pub(crate) fn start_drain(&self, c: usize) -> Option<u32> {
        let mut a = self.lock_class(c);
        if a.draining.is_some() || a.pages.is_empty() {
            return None;
        }
        let page = *a.pages.iter().min_by_key(|&&p| self.page_used(p))?;
        a.draining = Some(page);
        if a.carve_page == page {
            a.carve_page = NIL;
        }
        a.fresh.retain(|&p| p != page);
        // Rebuild the free list without the page's chunks.
        let mut r = a.free_head;
        let mut keep = Vec::new();
        while r != NIL {
            // SAFETY: free chunks of class c, lock held.
            let next = unsafe { std::ptr::read_unaligned(self.ptr(r) as *const u32) };
            if self.page_of(r) != page {
                keep.push(r);
            }
            r = next;
        }
        a.free_head = NIL;
        a.free_count = 0;
        for &r in keep.iter().rev() {
            // SAFETY: as above.
            unsafe { std::ptr::write_unaligned(self.ptr(r) as *mut u32, a.free_head) };
            a.free_head = r;
            a.free_count += 1;
        }
        Some(page)
    }

    /// Ends a drain if the page is empty: takes it out of class `c` and
    /// returns it. False while chunks of it are still in use.
    pub(crate) fn finish_drain(&self, c: usize, page: u32) -> bool {
        let mut a = self.lock_class(c);
        if a.draining != Some(page) || self.page_used(page) != 0 {
            return false;
        }
        a.draining = None;
        a.pages.retain(|&p| p != page);
        true
    }

    /// Checks the allocator of every class: free + used + uncut chunks =
    /// pages x chunks per page, and the free list has `free_count` entries
    /// of the class's own pages.
    pub(crate) fn check(&self) -> Result<(), String> {
        let mut pages_total = 0u64;
        for c in 1..self.classes.len() {
            let a = self.lock_class(c);
            pages_total += a.pages.len() as u64;
            let per = self.classes[c].perslab as u64;
            let mut n = 0;
            let mut r = a.free_head;
            while r != NIL {
                if self.class_of(r) != c || Some(self.page_of(r)) == a.draining {
                    return Err(format!("class {c}: foreign chunk {r} on the free list"));
                }
                n += 1;
                if n > a.pages.len() as u64 * per {
                    return Err(format!("class {c}: free list cycle"));
                }
                // SAFETY: free chunk of class c, lock held.
                r = unsafe { std::ptr::read_unaligned(self.ptr(r) as *const u32) };
            }
            if n != a.free_count {
                return Err(format!(
                    "class {c}: free list {n} != count {}",
                    a.free_count
                ));
            }
            let total = a.free_count + a.used + self.uncarved(&a, c) + self.draining_free(&a, c);
            if total != a.pages.len() as u64 * per {
                return Err(format!(
                    "class {c}: free {} + used {} + uncut {} + draining {} != {} pages x {per}",
                    a.free_count,
                    a.used,
                    self.uncarved(&a, c),
                    self.draining_free(&a, c),
                    a.pages.len()
                ));
            }
            let used: u64 = a.pages.iter().map(|&p| self.page_used(p) as u64).sum();
            if used != a.used {
                return Err(format!(
                    "class {c}: pages count {used} used, class {}",
                    a.used
                ));
            }
        }
        let p = self.lock_pool();
        if pages_total + p.free.len() as u64 != p.allocated {
            return Err(format!(
                "pages: {pages_total} in classes + {} free != {} allocated",
                p.free.len(),
                p.allocated
            ));
        }
        if p.allocated > p.limit_pages {
            return Err(format!(
                "{} pages over the limit {}",
                p.allocated, p.limit_pages
            ));
        }
        Ok(())
    }
}

impl Drop for Slabs {
    fn drop(&mut self) {
        let layout = self.page_layout();
        for e in self.pages.iter() {
            let e = e.load(Ordering::Acquire);
            let base = (e & !(PAGE_ALIGN as u64 - 1)) as usize as *mut u8;
            if !base.is_null() {
                // SAFETY: every non-zero entry came from alloc_zeroed with
                // this layout; nothing uses the pages any more (&mut self).
                unsafe { dealloc(base, layout) };
                count_page(-1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LIVE_PAGES;
    use crate::storage::{Store, StoreConfig, StoreMode, StoreOptions, StoreOutcome};

    fn live_pages() -> i64 {
        LIVE_PAGES.with(|n| n.get())
    }

    /// Builds, fills and drops 200 stores of several shapes (one and four
    /// shards, small pages, items chained over several chunks, a limit
    /// lowered under the pages in use, flushes and sweeps): every page a
    /// store allocated is freed when it is dropped.
    #[test]
    fn dropped_stores_free_every_page() {
        let now = 1_700_000_000;
        let base = live_pages();
        let mut peak = 0;
        for i in 0..200u32 {
            let s = Store::with_options(
                StoreConfig {
                    memory_limit: 8 << 20,
                    item_size_max: 64 * 1024,
                    // 16 KB chunks at most: 40 KB values are chained
                    slab_chunk_max: 16 * 1024,
                    ..StoreConfig::default()
                },
                StoreOptions {
                    shards: if i.is_multiple_of(2) { 1 } else { 4 },
                    initial_buckets: 2,
                    seed: Some((1, 2)),
                    ..StoreOptions::default()
                },
            );
            for k in 0..64u32 {
                let len = [1usize, 100, 900, 5000, 40_000][(k + i) as usize % 5];
                let key = format!("key-{k}");
                let exptime = if k % 3 == 0 { now + 1 } else { 0 };
                let got = s.store(
                    StoreMode::Set,
                    key.as_bytes(),
                    k,
                    exptime,
                    &vec![b'v'; len],
                    now,
                );
                assert!(matches!(got, StoreOutcome::Stored { .. }), "{key}: {got:?}");
            }
            s.store(StoreMode::Append, b"key-1", 0, 0, &[b'a'; 3000], now);
            let _ = s.delete(b"key-2", now);
            s.reclaim_expired(now + 5, 10);
            if i.is_multiple_of(4) {
                s.flush_all(0, now);
                s.reclaim_expired(now, 100);
            }
            if i.is_multiple_of(5) {
                // fewer pages than in use: free pages go at once
                s.set_memory_limit(1 << 20);
            }
            s.check_invariants().expect("invariants");
            peak = peak.max(live_pages() - base);
            drop(s);
            assert_eq!(live_pages(), base, "store {i} left pages behind");
        }
        // the counter saw the pages (a test that cannot fail is no test)
        assert!(peak >= 4, "peak {peak} pages");
    }
}
