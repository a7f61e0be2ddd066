//! One shard: a chained hash table over a slot arena, with an intrusive
//! doubly linked LRU list through the same slots. A shard has one owner at
//! a time (`&mut self`); the store keeps each behind its own lock.
//!
//! Memory accounting: the shard keeps the sum of its live items' sizes in
//! `bytes` and adds what it frees to `freed`, which the store drains after
//! each locked operation and gives back to the global budget. Growth is
//! never taken here: the store reserves it from the budget first.

use super::item::{Item, ACTIVE, FETCHED};
use super::Miss;

pub(crate) const NIL: u32 = u32::MAX;

struct Slot {
    item: Option<Item>,
    /// Low 32 bits of the key hash (bucket index and compare tag).
    hash: u32,
    /// Next slot in the bucket chain, or in the free list.
    chain: u32,
    /// LRU neighbours: `prev` is towards the head (most recent).
    prev: u32,
    next: u32,
}

/// What decides whether an item is still live, read once per operation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Validity {
    pub now: u32,
    /// Items with a store sequence at or below this are flushed.
    pub flush_seq: u64,
    /// Items stored at or before this second are flushed (a delayed flush
    /// that has come; 0 = none).
    pub flush_time: u32,
}

impl Validity {
    #[inline]
    pub(crate) fn check(&self, it: &Item) -> Option<Miss> {
        if it.seq() <= self.flush_seq || (self.flush_time != 0 && it.time() <= self.flush_time) {
            Some(Miss::Flushed)
        } else if it.exptime() != 0 && it.exptime() <= self.now {
            Some(Miss::Expired)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counters {
    pub total_items: u64,
    pub evictions: u64,
    pub reclaimed: u64,
    pub expired_unfetched: u64,
    pub evicted_unfetched: u64,
    pub crawler_reclaimed: u64,
    pub evicted_active: u64,
}

pub(crate) struct Shard {
    slots: Vec<Slot>,
    free: u32,
    buckets: Vec<u32>,
    /// While the table doubles: the previous bucket array, whose buckets
    /// below `migrated` have already moved to `buckets`. Empty otherwise.
    old: Vec<u32>,
    migrated: usize,
    head: u32,
    tail: u32,
    len: usize,
    bytes: u64,
    /// Bytes of the item allocations (what the heap holds for them).
    raw_bytes: usize,
    freed: u64,
    cas_enabled: bool,
    pub(crate) counters: Counters,
    sweep_cursor: usize,
}

impl Shard {
    pub(crate) fn new(cas_enabled: bool, buckets: usize) -> Shard {
        let n = buckets.max(4).next_power_of_two();
        Shard {
            slots: Vec::new(),
            free: NIL,
            buckets: vec![NIL; n],
            old: Vec::new(),
            migrated: 0,
            head: NIL,
            tail: NIL,
            len: 0,
            bytes: 0,
            raw_bytes: 0,
            freed: 0,
            cas_enabled,
            counters: Counters::default(),
            sweep_cursor: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Calls `f` on the live items of slots `start..`, at most `budget`
    /// slots examined; returns the next slot to look at, or None at the end.
    pub(crate) fn dump_from(
        &self,
        start: usize,
        budget: usize,
        v: &Validity,
        f: &mut dyn FnMut(&Item),
    ) -> Option<usize> {
        let end = start.saturating_add(budget).min(self.slots.len());
        for slot in self.slots.get(start..end).unwrap_or(&[]) {
            if let Some(it) = &slot.item {
                if v.check(it).is_none() {
                    f(it);
                }
            }
        }
        (end < self.slots.len()).then_some(end)
    }

    /// True while the bucket array is being doubled (old chains still to
    /// move).
    pub(crate) fn is_expanding(&self) -> bool {
        !self.old.is_empty()
    }

    pub(crate) fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// Heap bytes this shard holds: item allocations, the slot arena and
    /// the bucket array (allocator overhead not included).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.raw_bytes
            + self.slots.capacity() * std::mem::size_of::<Slot>()
            + (self.buckets.capacity() + self.old.capacity()) * std::mem::size_of::<u32>()
    }

    /// Bytes freed since the last call (to give back to the budget).
    pub(crate) fn take_freed(&mut self) -> u64 {
        std::mem::take(&mut self.freed)
    }

    /// Where the chain of hash `h` starts: (in the old array, index).
    #[inline]
    fn bucket_of(&self, h: u32) -> (bool, usize) {
        if !self.old.is_empty() {
            let ob = (h as usize) & (self.old.len() - 1);
            if ob >= self.migrated {
                return (true, ob);
            }
        }
        (false, (h as usize) & (self.buckets.len() - 1))
    }

    #[inline]
    fn chain_head(&self, h: u32) -> u32 {
        match self.bucket_of(h) {
            (true, b) => self.old[b],
            (false, b) => self.buckets[b],
        }
    }

    #[inline]
    fn chain_head_mut(&mut self, h: u32) -> &mut u32 {
        match self.bucket_of(h) {
            (true, b) => &mut self.old[b],
            (false, b) => &mut self.buckets[b],
        }
    }

    /// Starts doubling the bucket array; the chains move over a few
    /// buckets per insert (see `migrate`), so no operation rehashes the
    /// whole shard.
    fn start_grow(&mut self) {
        let n = self.buckets.len() * 2;
        self.old = std::mem::replace(&mut self.buckets, vec![NIL; n]);
        self.migrated = 0;
    }

    /// Moves up to `steps` old buckets' chains into the new array.
    fn migrate(&mut self, steps: usize) {
        let mask = self.buckets.len() - 1;
        for _ in 0..steps {
            if self.old.is_empty() {
                return;
            }
            let mut i = std::mem::replace(&mut self.old[self.migrated], NIL);
            while i != NIL {
                let s = &mut self.slots[i as usize];
                let next = s.chain;
                let b = (s.hash as usize) & mask;
                s.chain = self.buckets[b];
                self.buckets[b] = i;
                i = next;
            }
            self.migrated += 1;
            if self.migrated == self.old.len() {
                self.old = Vec::new();
                self.migrated = 0;
            }
        }
    }

    #[inline]
    pub(crate) fn item(&self, idx: u32) -> &Item {
        match &self.slots[idx as usize].item {
            Some(it) => it,
            None => unreachable!("slot {idx} is linked but empty"),
        }
    }

    #[inline]
    pub(crate) fn item_mut(&mut self, idx: u32) -> &mut Item {
        match &mut self.slots[idx as usize].item {
            Some(it) => it,
            None => unreachable!("slot {idx} is linked but empty"),
        }
    }

    /// The slot holding `key`, live or not.
    #[inline]
    pub(crate) fn find(&self, key: &[u8], h: u32) -> Option<u32> {
        let mut i = self.chain_head(h);
        while i != NIL {
            let s = &self.slots[i as usize];
            if s.hash == h {
                if let Some(it) = &s.item {
                    if it.key() == key {
                        return Some(i);
                    }
                }
            }
            i = s.chain;
        }
        None
    }

    /// The slot holding a live `key`; a dead item found there is unlinked
    /// and reported as the reason for the miss.
    #[inline]
    pub(crate) fn lookup(&mut self, key: &[u8], h: u32, v: &Validity) -> Result<u32, Miss> {
        let idx = self.find(key, h).ok_or(Miss::NotFound)?;
        if let Some(miss) = v.check(self.item(idx)) {
            self.unlink(idx);
            return Err(miss);
        }
        Ok(idx)
    }

    /// Marks an item read: fetched, and active for the LRU tail walk.
    #[inline]
    pub(crate) fn mark_read(&mut self, idx: u32) {
        let it = self.item_mut(idx);
        let b = it.bits();
        if b & (FETCHED | ACTIVE) != FETCHED | ACTIVE {
            it.set_bits(b | FETCHED | ACTIVE);
        }
    }

    fn lru_remove(&mut self, idx: u32) {
        let (p, n) = {
            let s = &self.slots[idx as usize];
            (s.prev, s.next)
        };
        if p == NIL {
            self.head = n;
        } else {
            self.slots[p as usize].next = n;
        }
        if n == NIL {
            self.tail = p;
        } else {
            self.slots[n as usize].prev = p;
        }
    }

    fn lru_push_head(&mut self, idx: u32) {
        let old = self.head;
        {
            let s = &mut self.slots[idx as usize];
            s.prev = NIL;
            s.next = old;
        }
        if old == NIL {
            self.tail = idx;
        } else {
            self.slots[old as usize].prev = idx;
        }
        self.head = idx;
    }

    /// Moves an item to the head of the LRU.
    pub(crate) fn bump(&mut self, idx: u32) {
        if self.head != idx {
            self.lru_remove(idx);
            self.lru_push_head(idx);
        }
    }

    /// Removes an item from the table and LRU and returns it; its size is
    /// added to `freed`.
    pub(crate) fn unlink(&mut self, idx: u32) -> Item {
        let h = self.slots[idx as usize].hash;
        let next_in_chain = self.slots[idx as usize].chain;
        if self.chain_head(h) == idx {
            *self.chain_head_mut(h) = next_in_chain;
        } else {
            let mut i = self.chain_head(h);
            while i != NIL {
                let c = self.slots[i as usize].chain;
                if c == idx {
                    self.slots[i as usize].chain = next_in_chain;
                    break;
                }
                i = c;
            }
        }
        self.lru_remove(idx);
        let s = &mut self.slots[idx as usize];
        let it = match s.item.take() {
            Some(it) => it,
            None => unreachable!("unlink of an empty slot"),
        };
        s.chain = self.free;
        s.prev = NIL;
        s.next = NIL;
        self.free = idx;
        let size = it.size(self.cas_enabled);
        self.raw_bytes -= it.raw_len();
        self.len -= 1;
        self.bytes -= size;
        self.freed += size;
        it
    }

    /// Links a new item (its key must not be present). The caller has
    /// reserved its size from the budget.
    pub(crate) fn link(&mut self, item: Item, h: u32) -> u32 {
        if self.old.is_empty() && self.len >= self.buckets.len() {
            self.start_grow();
        }
        // Two old buckets per insert: the move ends long before the next
        // doubling is due (that needs as many inserts as old buckets).
        self.migrate(2);
        let size = item.size(self.cas_enabled);
        self.raw_bytes += item.raw_len();
        let idx = if self.free != NIL {
            let idx = self.free;
            let s = &mut self.slots[idx as usize];
            self.free = s.chain;
            s.item = Some(item);
            s.hash = h;
            idx
        } else {
            let idx = self.slots.len() as u32;
            self.slots.push(Slot {
                item: Some(item),
                hash: h,
                chain: NIL,
                prev: NIL,
                next: NIL,
            });
            idx
        };
        let head = self.chain_head(h);
        self.slots[idx as usize].chain = head;
        *self.chain_head_mut(h) = idx;
        self.lru_push_head(idx);
        self.len += 1;
        self.bytes += size;
        self.counters.total_items += 1;
        idx
    }

    /// Replaces the item in a linked slot (same key) and bumps it. The
    /// caller has reserved any growth; a shrink is added to `freed`.
    pub(crate) fn replace(&mut self, idx: u32, item: Item) {
        let new_size = item.size(self.cas_enabled);
        self.raw_bytes += item.raw_len();
        let old = self.slots[idx as usize].item.replace(item);
        let (old_size, old_raw) = old
            .map(|o| (o.size(self.cas_enabled), o.raw_len()))
            .unwrap_or((0, 0));
        self.raw_bytes -= old_raw;
        self.bytes = self.bytes - old_size + new_size;
        if old_size > new_size {
            self.freed += old_size - new_size;
        }
        self.counters.total_items += 1;
        self.bump(idx);
    }

    /// Frees at least `want` bytes from the LRU tail if it can (dead items
    /// first come as they are met; an active item gets a second chance at
    /// the head). Returns the bytes freed.
    pub(crate) fn evict(&mut self, want: u64, max_items: usize, v: &Validity) -> u64 {
        let mut freed = 0;
        let mut removed = 0;
        // Each item is passed over at most once as active, so this bounds
        // the walk even when everything is active.
        let mut spared = 0;
        while freed < want && removed < max_items && self.tail != NIL {
            let idx = self.tail;
            let it = self.item(idx);
            let bits = it.bits();
            let fetched = bits & FETCHED != 0;
            if v.check(it).is_some() {
                // memcached counts flushed items met at the tail here too.
                self.counters.reclaimed += 1;
                if !fetched {
                    self.counters.expired_unfetched += 1;
                }
            } else if bits & ACTIVE != 0 && spared < self.len {
                spared += 1;
                self.item_mut(idx).set_bits(bits & !ACTIVE);
                self.bump(idx);
                continue;
            } else {
                self.counters.evictions += 1;
                if !fetched {
                    self.counters.evicted_unfetched += 1;
                }
                // Only when every item was passed over once already (the
                // whole shard is being read): memcached's evicted_active.
                if bits & ACTIVE != 0 {
                    self.counters.evicted_active += 1;
                }
            }
            freed += self.unlink(idx).size(self.cas_enabled);
            removed += 1;
        }
        freed
    }

    /// Examines up to `budget` slots from the sweep cursor and unlinks the
    /// dead items among them. Returns (examined, removed, wrapped): wrapped
    /// when the cursor went past the last slot and restarted at 0.
    pub(crate) fn sweep(&mut self, budget: usize, v: &Validity) -> (usize, usize, bool) {
        let mut examined = 0;
        let mut removed = 0;
        while examined < budget {
            if self.sweep_cursor >= self.slots.len() {
                self.sweep_cursor = 0;
                return (examined, removed, true);
            }
            let idx = self.sweep_cursor as u32;
            self.sweep_cursor += 1;
            examined += 1;
            let Some(it) = &self.slots[idx as usize].item else {
                continue;
            };
            if let Some(miss) = v.check(it) {
                let fetched = it.bits() & FETCHED != 0;
                self.counters.crawler_reclaimed += 1;
                if !fetched && miss == Miss::Expired {
                    self.counters.expired_unfetched += 1;
                }
                self.unlink(idx);
                removed += 1;
            }
        }
        (examined, removed, false)
    }

    /// Checks the internal structure; returns the first inconsistency.
    pub(crate) fn check(&self) -> Result<(), String> {
        let mut live = 0;
        let mut bytes = 0;
        let mut raw = 0;
        for (i, s) in self.slots.iter().enumerate() {
            if let Some(it) = &s.item {
                live += 1;
                bytes += it.size(self.cas_enabled);
                raw += it.raw_len();
                if self.find(it.key(), s.hash) != Some(i as u32) {
                    return Err(format!("slot {i} not reachable from its bucket"));
                }
            }
        }
        if live != self.len {
            return Err(format!("len {} but {live} live slots", self.len));
        }
        if raw != self.raw_bytes {
            return Err(format!("raw_bytes {} but items hold {raw}", self.raw_bytes));
        }
        if bytes != self.bytes {
            return Err(format!("bytes {} but items sum to {bytes}", self.bytes));
        }
        // Walk the LRU both ways.
        let mut n = 0;
        let mut i = self.head;
        let mut prev = NIL;
        while i != NIL {
            let s = &self.slots[i as usize];
            if s.item.is_none() || s.prev != prev {
                return Err(format!("LRU broken at slot {i}"));
            }
            n += 1;
            if n > self.len {
                return Err("LRU cycle".into());
            }
            prev = i;
            i = s.next;
        }
        if n != self.len || self.tail != prev {
            return Err(format!("LRU has {n} items, len {}", self.len));
        }
        let mut chained = 0;
        for &b in self.buckets.iter().chain(&self.old) {
            let mut i = b;
            while i != NIL {
                chained += 1;
                if chained > self.len {
                    return Err("bucket chains longer than len".into());
                }
                i = self.slots[i as usize].chain;
            }
        }
        if chained != self.len {
            return Err(format!("chains hold {chained}, len {}", self.len));
        }
        Ok(())
    }

    /// Keys from the LRU head (most recent) to the tail; for tests.
    #[cfg(test)]
    pub(crate) fn lru_keys(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut i = self.head;
        while i != NIL {
            out.push(self.item(i).key().to_vec());
            i = self.slots[i as usize].next;
        }
        out
    }
}
