//! One index shard: a chained hash table over item chunks, and one LRU
//! list per slab class for the items of this shard, both threaded through
//! the item headers. A shard has one owner at a time (`&mut self`); the
//! store keeps each behind its own lock. Every item linked here is owned
//! by this shard: its chunk bytes are touched only through `&self` /
//! `&mut self` of this shard (see slabs.rs for the ownership protocol).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use super::hash::KeyHasher;
use super::item::*;
use super::slabs::{Ref, Slabs, NIL};
use super::tomb::Tombs;
use super::Miss;

/// What decides whether an item is still live, read once per operation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Validity {
    pub now: u32,
    /// Items with a store sequence at or below this are flushed.
    pub flush_seq: u64,
}

/// Per-class counters of one shard (summed by the store).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ClassCounters {
    pub total_items: u64,
    pub evicted: u64,
    pub evicted_nonzero: u64,
    pub evicted_time: u32,
    pub evicted_at: u32,
    pub evicted_unfetched: u64,
    pub evicted_active: u64,
    pub outofmemory: u64,
    pub reclaimed: u64,
    pub expired_unfetched: u64,
    pub crawler_reclaimed: u64,
    pub crawler_items_checked: u64,
    pub get_hits: u64,
    pub cmd_set: u64,
    pub delete_hits: u64,
    pub incr_hits: u64,
    pub decr_hits: u64,
    pub cas_hits: u64,
    pub cas_badval: u64,
    pub touch_hits: u64,
    pub slab_reassign_rescues: u64,
    pub slab_reassign_evictions: u64,
}

/// One class's LRU within a shard.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClassLru {
    pub head: Ref,
    pub tail: Ref,
    pub number: u64,
    /// Items among them whose value continues in other chunks.
    pub chained: u64,
    /// memcached-accounted bytes of these items.
    pub requested: u64,
    pub c: ClassCounters,
}

impl Default for ClassLru {
    fn default() -> Self {
        ClassLru {
            head: NIL,
            tail: NIL,
            number: 0,
            chained: 0,
            requested: 0,
            c: ClassCounters::default(),
        }
    }
}

/// Tail times of every (class, shard) LRU, published for evictors that do
/// not hold the shard's lock: `[class * shards + shard]`, u32::MAX = empty.
pub(crate) struct Tails {
    pub shards: usize,
    pub t: Box<[AtomicU32]>,
}

impl Tails {
    pub(crate) fn new(classes: usize, shards: usize) -> Tails {
        Tails {
            shards,
            t: (0..classes * shards)
                .map(|_| AtomicU32::new(u32::MAX))
                .collect(),
        }
    }

    #[inline]
    pub(crate) fn get(&self, c: usize, si: usize) -> u32 {
        self.t[c * self.shards + si].load(Ordering::Relaxed)
    }
}

pub(crate) struct Shard {
    id: usize,
    slabs: Arc<Slabs>,
    tails: Arc<Tails>,
    hasher: KeyHasher,
    cas_enabled: bool,
    buckets: Vec<u32>,
    /// While the table doubles: the previous bucket array, whose buckets
    /// below `migrated` have already moved to `buckets`. Empty otherwise.
    old: Vec<u32>,
    migrated: usize,
    len: usize,
    pub(crate) lru: Vec<ClassLru>,
    sweep_cursor: usize,
    /// Deleted keys and their delete versions (replicated mode only).
    pub(crate) tombs: Tombs,
}

impl Shard {
    pub(crate) fn new(
        id: usize,
        slabs: Arc<Slabs>,
        tails: Arc<Tails>,
        hasher: KeyHasher,
        cas_enabled: bool,
        buckets: usize,
        tombs: Tombs,
    ) -> Shard {
        let n = buckets.max(4).next_power_of_two();
        let classes = slabs.classes.len();
        Shard {
            id,
            slabs,
            tails,
            hasher,
            cas_enabled,
            buckets: vec![NIL; n],
            old: Vec::new(),
            migrated: 0,
            len: 0,
            lru: vec![ClassLru::default(); classes],
            sweep_cursor: 0,
            tombs,
        }
    }

    // ----- raw field access (this shard owns the chunks it names) -----

    #[inline]
    fn p(&self, r: Ref) -> *mut u8 {
        self.slabs.ptr(r)
    }

    #[inline]
    pub(crate) fn rd32(&self, r: Ref, off: usize) -> u32 {
        // SAFETY: r is a chunk owned by this shard (linked here, or a
        // reservation of the thread holding this shard), off + 4 is within
        // the header; shard exclusivity (&self under the shard lock) means
        // no other thread writes these bytes.
        unsafe { std::ptr::read_unaligned(self.p(r).add(off) as *const u32) }
    }

    #[inline]
    pub(crate) fn wr32(&mut self, r: Ref, off: usize, v: u32) {
        // SAFETY: as rd32, with &mut self (the shard lock held).
        unsafe { std::ptr::write_unaligned(self.p(r).add(off) as *mut u32, v) }
    }

    #[inline]
    pub(crate) fn rd64(&self, r: Ref, off: usize) -> u64 {
        // SAFETY: as rd32.
        unsafe { std::ptr::read_unaligned(self.p(r).add(off) as *const u64) }
    }

    #[inline]
    fn wr64(&mut self, r: Ref, off: usize, v: u64) {
        // SAFETY: as wr32.
        unsafe { std::ptr::write_unaligned(self.p(r).add(off) as *mut u64, v) }
    }

    #[inline]
    pub(crate) fn rd8(&self, r: Ref, off: usize) -> u8 {
        // SAFETY: as rd32.
        unsafe { *self.p(r).add(off) }
    }

    #[inline]
    fn wr8(&mut self, r: Ref, off: usize, v: u8) {
        // SAFETY: as wr32.
        unsafe { *self.p(r).add(off) = v }
    }

    /// `len` bytes of chunk `r` from `off`; the caller keeps within the
    /// chunk.
    #[inline]
    fn bytes(&self, r: Ref, off: usize, len: usize) -> &[u8] {
        debug_assert!(off + len <= self.slabs.chunk_size_of(r));
        // SAFETY: within chunk r, owned by this shard; the slice lives no
        // longer than &self, i.e. while the shard lock is held.
        unsafe { std::slice::from_raw_parts(self.p(r).add(off), len) }
    }

    #[inline]
    fn bytes_mut(&mut self, r: Ref, off: usize, len: usize) -> &mut [u8] {
        debug_assert!(off + len <= self.slabs.chunk_size_of(r));
        // SAFETY: as bytes, exclusive through &mut self.
        unsafe { std::slice::from_raw_parts_mut(self.p(r).add(off), len) }
    }

    // ----- item fields -----

    #[inline]
    pub(crate) fn bits(&self, r: Ref) -> u8 {
        self.rd8(r, BITS)
    }
    #[inline]
    pub(crate) fn set_bits(&mut self, r: Ref, b: u8) {
        self.wr8(r, BITS, b)
    }
    #[inline]
    pub(crate) fn seq(&self, r: Ref) -> u64 {
        self.rd64(r, SEQ)
    }
    #[inline]
    pub(crate) fn set_seq(&mut self, r: Ref, s: u64) {
        self.wr64(r, SEQ, s)
    }
    #[inline]
    pub(crate) fn exptime(&self, r: Ref) -> u32 {
        self.rd32(r, EXP)
    }
    #[inline]
    pub(crate) fn set_exptime(&mut self, r: Ref, e: u32) {
        self.wr32(r, EXP, e)
    }
    #[inline]
    pub(crate) fn time(&self, r: Ref) -> u32 {
        self.rd32(r, TIME)
    }
    #[inline]
    pub(crate) fn set_time(&mut self, r: Ref, t: u32) {
        self.wr32(r, TIME, t)
    }
    #[inline]
    pub(crate) fn vlen(&self, r: Ref) -> usize {
        self.rd32(r, VLEN) as usize
    }
    #[inline]
    fn klen(&self, r: Ref) -> usize {
        self.rd8(r, KLEN) as usize
    }
    #[inline]
    pub(crate) fn flags(&self, r: Ref) -> u32 {
        if self.bits(r) & HAS_FLAGS != 0 {
            self.rd32(r, HDR)
        } else {
            0
        }
    }
    #[inline]
    pub(crate) fn key(&self, r: Ref) -> &[u8] {
        let off = key_offset(self.bits(r));
        self.bytes(r, off, self.klen(r))
    }
    #[inline]
    pub(crate) fn is_chained(&self, r: Ref) -> bool {
        self.bits(r) & CHAINED != 0
    }
    /// First continuation chunk of a chained item.
    #[inline]
    fn first_cont(&self, r: Ref) -> Ref {
        let off = HDR + if self.bits(r) & HAS_FLAGS != 0 { 4 } else { 0 };
        self.rd32(r, off)
    }

    /// The value of an unchained item.
    #[inline]
    pub(crate) fn value_inline(&self, r: Ref) -> Option<&[u8]> {
        let b = self.bits(r);
        if b & CHAINED != 0 {
            return None;
        }
        Some(self.bytes(r, key_offset(b) + self.klen(r), self.vlen(r)))
    }

    #[inline]
    pub(crate) fn value_inline_mut(&mut self, r: Ref) -> Option<&mut [u8]> {
        let b = self.bits(r);
        if b & CHAINED != 0 {
            return None;
        }
        let (off, n) = (key_offset(b) + self.klen(r), self.vlen(r));
        Some(self.bytes_mut(r, off, n))
    }

    /// Calls `f` with each piece of the value in order.
    pub(crate) fn value_parts(&self, r: Ref, f: &mut dyn FnMut(&[u8])) {
        let b = self.bits(r);
        let vlen = self.vlen(r);
        let start = key_offset(b) + self.klen(r);
        if b & CHAINED == 0 {
            f(self.bytes(r, start, vlen));
            return;
        }
        let head_room = self.slabs.chunk_size_of(r) - start;
        let first = vlen.min(head_room);
        f(self.bytes(r, start, first));
        let mut left = vlen - first;
        let mut c = self.first_cont(r);
        while left > 0 && c != NIL {
            let room = self.slabs.chunk_size_of(c) - LINK;
            let n = left.min(room);
            f(self.bytes(c, LINK, n));
            left -= n;
            c = self.rd32(c, 0);
        }
    }

    /// The whole value, copied.
    pub(crate) fn value_vec(&self, r: Ref) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.vlen(r));
        self.value_parts(r, &mut |p| v.extend_from_slice(p));
        v
    }

    /// The chunks of an item: head first.
    pub(crate) fn chunks(&self, r: Ref) -> Vec<Ref> {
        let mut out = vec![r];
        if self.is_chained(r) {
            let mut c = self.first_cont(r);
            while c != NIL {
                out.push(c);
                c = self.rd32(c, 0);
            }
        }
        out
    }

    /// memcached's accounted size of an item.
    pub(crate) fn size(&self, r: Ref) -> u64 {
        item_size(self.klen(r), self.vlen(r), self.flags(r), self.cas_enabled)
    }

    /// Writes a new item into owned chunks: `head` and, for a chained
    /// item, `conts` in order. The value is the concatenation of `parts`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn write_item(
        &mut self,
        head: Ref,
        conts: &[Ref],
        seq: u64,
        exptime: u32,
        now: u32,
        flags: u32,
        key: &[u8],
        parts: &[&[u8]],
    ) {
        let vlen: usize = parts.iter().map(|p| p.len()).sum();
        let mut bits = 0;
        if flags != 0 {
            bits |= HAS_FLAGS;
        }
        if !conts.is_empty() {
            bits |= CHAINED;
        }
        self.wr32(head, PREV, NIL);
        self.wr32(head, NEXT, NIL);
        self.wr32(head, HNEXT, NIL);
        self.wr64(head, SEQ, seq);
        self.wr32(head, EXP, exptime);
        self.wr32(head, TIME, now);
        self.wr32(head, VLEN, vlen as u32);
        self.wr8(head, KLEN, key.len() as u8);
        self.wr8(head, BITS, bits);
        let mut off = HDR;
        if flags != 0 {
            self.wr32(head, off, flags);
            off += 4;
        }
        if !conts.is_empty() {
            self.wr32(head, off, conts[0]);
            off += LINK;
        }
        self.bytes_mut(head, off, key.len()).copy_from_slice(key);
        off += key.len();
        // Value bytes across the chunks.
        let mut chunk = head;
        let mut room = self.slabs.chunk_size_of(head) - off;
        let mut next_cont = 0;
        for p in parts {
            let mut p: &[u8] = p;
            while !p.is_empty() {
                if room == 0 {
                    let c = conts[next_cont];
                    next_cont += 1;
                    let link = conts.get(next_cont).copied().unwrap_or(NIL);
                    self.wr32(c, 0, link);
                    chunk = c;
                    off = LINK;
                    room = self.slabs.chunk_size_of(c) - LINK;
                }
                let n = p.len().min(room);
                self.bytes_mut(chunk, off, n).copy_from_slice(&p[..n]);
                off += n;
                room -= n;
                p = &p[n..];
            }
        }
        // Chunks planned but not reached (empty tail): terminate links.
        while next_cont < conts.len() {
            let c = conts[next_cont];
            next_cont += 1;
            let link = conts.get(next_cont).copied().unwrap_or(NIL);
            self.wr32(c, 0, link);
        }
    }

    // ----- table -----

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_expanding(&self) -> bool {
        !self.old.is_empty()
    }

    pub(crate) fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        (self.buckets.capacity() + self.old.capacity()) * 4
            + self.lru.capacity() * std::mem::size_of::<ClassLru>()
    }

    #[inline]
    pub(crate) fn hash32(&self, key: &[u8]) -> u32 {
        self.hasher.hash(key) as u32
    }

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
    fn set_chain_head(&mut self, h: u32, r: Ref) {
        match self.bucket_of(h) {
            (true, b) => self.old[b] = r,
            (false, b) => self.buckets[b] = r,
        }
    }

    fn start_grow(&mut self) {
        let n = self.buckets.len() * 2;
        self.old = std::mem::replace(&mut self.buckets, vec![NIL; n]);
        self.migrated = 0;
    }

    fn migrate(&mut self, steps: usize) {
        let mask = self.buckets.len() - 1;
        for _ in 0..steps {
            if self.old.is_empty() {
                return;
            }
            let mut i = std::mem::replace(&mut self.old[self.migrated], NIL);
            while i != NIL {
                let next = self.rd32(i, HNEXT);
                let b = (self.hash32(self.key(i)) as usize) & mask;
                let head = self.buckets[b];
                self.wr32(i, HNEXT, head);
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

    /// The item holding `key`, live or not.
    #[inline]
    pub(crate) fn find(&self, key: &[u8], h: u32) -> Option<Ref> {
        let mut i = self.chain_head(h);
        while i != NIL {
            if self.key(i) == key {
                return Some(i);
            }
            i = self.rd32(i, HNEXT);
        }
        None
    }

    #[inline]
    pub(crate) fn check_live(&self, r: Ref, v: &Validity) -> Option<Miss> {
        if self.seq(r) <= v.flush_seq || self.bits(r) & STALE != 0 {
            Some(Miss::Flushed)
        } else {
            let e = self.exptime(r);
            if e != 0 && e <= v.now {
                Some(Miss::Expired)
            } else {
                None
            }
        }
    }

    /// The live item holding `key`; a dead one found there is unlinked
    /// and reported as the reason for the miss.
    #[inline]
    pub(crate) fn lookup(&mut self, key: &[u8], h: u32, v: &Validity) -> Result<Ref, Miss> {
        let r = self.find(key, h).ok_or(Miss::NotFound)?;
        if let Some(miss) = self.check_live(r, v) {
            self.unlink(r);
            return Err(miss);
        }
        Ok(r)
    }

    /// Marks an item read: fetched, active for the tail walk, accessed now.
    #[inline]
    pub(crate) fn mark_read(&mut self, r: Ref, now: u32) {
        let b = self.bits(r);
        if b & (FETCHED | ACTIVE) != FETCHED | ACTIVE {
            self.set_bits(r, b | FETCHED | ACTIVE);
        }
        if self.time(r) != now {
            self.set_time(r, now);
        }
    }

    #[inline]
    pub(crate) fn class_of(&self, r: Ref) -> usize {
        self.slabs.class_of(r)
    }

    fn publish_tail(&self, c: usize) {
        let t = self.lru[c].tail;
        let v = if t == NIL { u32::MAX } else { self.time(t) };
        let slot = &self.tails.t[c * self.tails.shards + self.id];
        if slot.load(Ordering::Relaxed) != v {
            slot.store(v, Ordering::Relaxed);
        }
    }

    fn lru_remove(&mut self, r: Ref, c: usize) {
        let (p, n) = (self.rd32(r, PREV), self.rd32(r, NEXT));
        if p == NIL {
            self.lru[c].head = n;
        } else {
            self.wr32(p, NEXT, n);
        }
        if n == NIL {
            self.lru[c].tail = p;
        } else {
            self.wr32(n, PREV, p);
        }
    }

    fn lru_push_head(&mut self, r: Ref, c: usize) {
        let old = self.lru[c].head;
        self.wr32(r, PREV, NIL);
        self.wr32(r, NEXT, old);
        if old == NIL {
            self.lru[c].tail = r;
        } else {
            self.wr32(old, PREV, r);
        }
        self.lru[c].head = r;
    }

    /// Moves an item to the head of its class's LRU.
    pub(crate) fn bump(&mut self, r: Ref) {
        let c = self.class_of(r);
        if self.lru[c].head != r {
            let was_tail = self.lru[c].tail == r;
            self.lru_remove(r, c);
            self.lru_push_head(r, c);
            if was_tail {
                self.publish_tail(c);
            }
        }
    }

    fn hash_remove(&mut self, r: Ref) {
        let h = self.hash32(self.key(r));
        let next = self.rd32(r, HNEXT);
        let mut i = self.chain_head(h);
        if i == r {
            self.set_chain_head(h, next);
            return;
        }
        while i != NIL {
            let c = self.rd32(i, HNEXT);
            if c == r {
                self.wr32(i, HNEXT, next);
                return;
            }
            i = c;
        }
    }

    /// Takes an item out of the table and its LRU; its chunks stay owned
    /// by the caller (returned, head first).
    pub(crate) fn detach(&mut self, r: Ref) -> Vec<Ref> {
        let c = self.class_of(r);
        self.hash_remove(r);
        let was_tail = self.lru[c].tail == r;
        self.lru_remove(r, c);
        if was_tail {
            self.publish_tail(c);
        }
        let size = self.size(r);
        let chained = self.is_chained(r) as u64;
        let l = &mut self.lru[c];
        l.number -= 1;
        l.chained -= chained;
        l.requested -= size;
        self.len -= 1;
        self.chunks(r)
    }

    /// Unlinks an item and frees its chunks.
    pub(crate) fn unlink(&mut self, r: Ref) {
        for ch in self.detach(r) {
            self.slabs.free(ch);
        }
    }

    /// Unlinks an item and frees its chunks except the head, which is
    /// returned (to reuse for an item of the same class).
    pub(crate) fn unlink_keep_head(&mut self, r: Ref) -> Ref {
        let ch = self.detach(r);
        for &c in &ch[1..] {
            self.slabs.free(c);
        }
        ch[0]
    }

    /// Links a written item (its key must not be present).
    pub(crate) fn link(&mut self, r: Ref) {
        if self.old.is_empty() && self.len >= self.buckets.len() + self.buckets.len() / 2 {
            self.start_grow();
        }
        self.migrate(2);
        let h = self.hash32(self.key(r));
        let head = self.chain_head(h);
        self.wr32(r, HNEXT, head);
        self.set_chain_head(h, r);
        let c = self.class_of(r);
        let was_empty = self.lru[c].tail == NIL;
        self.lru_push_head(r, c);
        if was_empty {
            self.publish_tail(c);
        }
        let size = self.size(r);
        let chained = self.is_chained(r) as u64;
        let l = &mut self.lru[c];
        l.number += 1;
        l.chained += chained;
        l.requested += size;
        l.c.total_items += 1;
        self.len += 1;
    }

    /// Replaces linked item `old` by the written item `new` (same key).
    pub(crate) fn replace(&mut self, old: Ref, new: Ref) {
        self.unlink(old);
        self.link(new);
    }

    /// Moves a linked, unchained item to chunk `to` (same class, owned by
    /// the caller), keeping its place in the table and the LRU.
    pub(crate) fn relocate(&mut self, r: Ref, to: Ref) {
        let size = self.slabs.chunk_size_of(r);
        let c = self.class_of(r);
        // SAFETY: r (linked here) and to (owned by the caller) are
        // distinct chunks of the same size.
        unsafe { std::ptr::copy_nonoverlapping(self.p(r), self.p(to), size) };
        // hash chain
        let h = self.hash32(self.key(to));
        let mut i = self.chain_head(h);
        if i == r {
            self.set_chain_head(h, to);
        } else {
            while i != NIL {
                let n = self.rd32(i, HNEXT);
                if n == r {
                    self.wr32(i, HNEXT, to);
                    break;
                }
                i = n;
            }
        }
        // LRU neighbours
        let (p, n) = (self.rd32(to, PREV), self.rd32(to, NEXT));
        if p == NIL {
            self.lru[c].head = to;
        } else {
            self.wr32(p, NEXT, to);
        }
        if n == NIL {
            self.lru[c].tail = to;
        } else {
            self.wr32(n, PREV, to);
        }
        self.slabs.free(r);
    }

    /// Frees one chunk of class `c` from this shard's LRU tail: a dead item
    /// first, else the least recently used one (an active item gets a
    /// second chance at the head). The freed head chunk is returned, owned
    /// by the caller, when the item was of class `c`.
    pub(crate) fn evict_one(&mut self, c: usize, v: &Validity) -> Option<Ref> {
        let mut spared = 0u64;
        loop {
            let r = self.lru[c].tail;
            if r == NIL {
                return None;
            }
            let bits = self.bits(r);
            let fetched = bits & FETCHED != 0;
            if self.check_live(r, v).is_some() {
                let l = &mut self.lru[c].c;
                l.reclaimed += 1;
                if !fetched {
                    l.expired_unfetched += 1;
                }
            } else if bits & ACTIVE != 0 && spared < self.lru[c].number {
                spared += 1;
                self.set_bits(r, bits & !ACTIVE);
                self.bump(r);
                continue;
            } else {
                let age = v.now.saturating_sub(self.time(r));
                let nonzero = self.exptime(r) != 0;
                let l = &mut self.lru[c].c;
                l.evicted += 1;
                l.evicted_time = age;
                l.evicted_at = v.now;
                if nonzero {
                    l.evicted_nonzero += 1;
                }
                if !fetched {
                    l.evicted_unfetched += 1;
                }
                if bits & ACTIVE != 0 {
                    l.evicted_active += 1;
                }
            }
            return Some(self.unlink_keep_head(r));
        }
    }

    /// Examines up to `budget` buckets' chains from the sweep cursor and
    /// unlinks the dead items there (only items of classes in `mask`, all
    /// when `mask` is u64::MAX). Returns (examined buckets, removed,
    /// wrapped).
    pub(crate) fn sweep(&mut self, budget: usize, v: &Validity, mask: u64) -> (usize, usize, bool) {
        let mut examined = 0;
        let mut removed = 0;
        while examined < budget {
            let nb = self.buckets.len() + self.old.len();
            if self.sweep_cursor >= nb {
                self.sweep_cursor = 0;
                return (examined, removed, true);
            }
            let b = self.sweep_cursor;
            self.sweep_cursor += 1;
            examined += 1;
            let mut i = if b < self.buckets.len() {
                self.buckets[b]
            } else {
                self.old[b - self.buckets.len()]
            };
            while i != NIL {
                let next = self.rd32(i, HNEXT);
                let c = self.class_of(i);
                if mask & (1u64 << (c & 63)) != 0 {
                    self.lru[c].c.crawler_items_checked += 1;
                    if let Some(miss) = self.check_live(i, v) {
                        let l = &mut self.lru[c].c;
                        l.crawler_reclaimed += 1;
                        if self.bits(i) & FETCHED == 0 && miss == Miss::Expired {
                            self.lru[c].c.expired_unfetched += 1;
                        }
                        self.unlink(i);
                        removed += 1;
                    }
                }
                i = next;
            }
        }
        (examined, removed, false)
    }

    /// Calls `f` on the live items of buckets `start..` (at most `budget`
    /// buckets); returns the next bucket, or None at the end. Old-table
    /// buckets come after the new ones.
    pub(crate) fn dump_from(
        &self,
        start: usize,
        budget: usize,
        v: &Validity,
        f: &mut dyn FnMut(&Shard, Ref),
    ) -> Option<usize> {
        let nb = self.buckets.len() + self.old.len();
        let end = start.saturating_add(budget).min(nb);
        for b in start..end {
            let mut i = if b < self.buckets.len() {
                self.buckets[b]
            } else {
                self.old[b - self.buckets.len()]
            };
            while i != NIL {
                if self.check_live(i, v).is_none() {
                    f(self, i);
                }
                i = self.rd32(i, HNEXT);
            }
        }
        (end < nb).then_some(end)
    }

    /// One step of an exact resumable scan (a reverse-binary cursor, as
    /// Redis's SCAN): calls `f` on the live items of every bucket that
    /// holds keys whose hash has low bits `cursor & mask`, where `mask` is
    /// the smaller table's (the old one while the table doubles: that old
    /// bucket and its two successors in the new table). Returns the next
    /// cursor (0 when the scan has wrapped) and the buckets examined.
    ///
    /// Why nothing present throughout is missed: with `k` = log2 of the
    /// smaller table, the hashes already covered are those whose low `k`
    /// bits, read in reverse, are below the cursor's low `k` bits read in
    /// reverse. The cursor is advanced by adding one to its reversed low
    /// `k` bits and clearing the bits above, so the covered set grows by
    /// exactly the group just visited. When the table has doubled since
    /// (k+1 bits), a hash's reversed k+1 bits are twice its reversed low k
    /// bits plus bit k, and the cursor's bit k is 0: "below the cursor"
    /// names the same hashes. The covered set therefore never shrinks
    /// across doublings, and the scan ends (cursor back to 0) only when it
    /// holds every hash. The table never shrinks.
    pub(crate) fn scan_step(
        &self,
        cursor: u64,
        v: &Validity,
        f: &mut dyn FnMut(&Shard, Ref),
    ) -> (u64, usize) {
        let (mask, examined) = if self.old.is_empty() {
            (self.buckets.len() - 1, 1)
        } else {
            (self.old.len() - 1, 3)
        };
        let b = cursor as usize & mask;
        let mut visit = |i: u32| {
            let mut i = i;
            while i != NIL {
                if self.check_live(i, v).is_none() {
                    f(self, i);
                }
                i = self.rd32(i, HNEXT);
            }
        };
        if self.old.is_empty() {
            visit(self.buckets[b]);
        } else {
            // Buckets below `migrated` are empty in the old table.
            visit(self.old[b]);
            visit(self.buckets[b]);
            visit(self.buckets[b + self.old.len()]);
        }
        let next = (cursor | !(mask as u64))
            .reverse_bits()
            .wrapping_add(1)
            .reverse_bits();
        (next, examined)
    }

    /// Empties `page` of class `c` as far as this shard goes: moves its
    /// items to other chunks of the class when there are free ones
    /// (`rescue`), else evicts them. Returns (rescued, evicted).
    pub(crate) fn evacuate(&mut self, c: usize, page: u32, rescue: bool) -> (u64, u64) {
        let (mut rescued, mut evicted) = (0, 0);
        // Collect first: relocation and unlinking change the list.
        let mut hits = Vec::new();
        let mut r = self.lru[c].head;
        while r != NIL {
            let here = if self.is_chained(r) {
                self.chunks(r)
                    .iter()
                    .any(|&ch| self.slabs.page_of(ch) == page)
            } else {
                self.slabs.page_of(r) == page
            };
            if here {
                hits.push(r);
            }
            r = self.rd32(r, NEXT);
        }
        // Chained items of other classes can have a chunk here.
        let mut tails = Vec::new();
        for oc in 1..self.lru.len() {
            if oc == c || self.lru[oc].chained == 0 {
                continue;
            }
            let mut r = self.lru[oc].head;
            while r != NIL {
                if self.is_chained(r)
                    && self.chunks(r)[1..]
                        .iter()
                        .any(|&ch| self.slabs.page_of(ch) == page)
                {
                    tails.push(r);
                }
                r = self.rd32(r, NEXT);
            }
        }
        for r in hits {
            if rescue && !self.is_chained(r) {
                if let Some(to) = self.slabs.alloc(c, false) {
                    self.relocate(r, to);
                    self.lru[c].c.slab_reassign_rescues += 1;
                    rescued += 1;
                    continue;
                }
            }
            self.unlink(r);
            self.lru[c].c.slab_reassign_evictions += 1;
            evicted += 1;
        }
        for r in tails {
            let oc = self.class_of(r);
            self.unlink(r);
            self.lru[oc].c.slab_reassign_evictions += 1;
            evicted += 1;
        }
        if self.lru[c].tail != NIL {
            self.publish_tail(c);
        }
        (rescued, evicted)
    }

    /// Checks the table, the LRUs and the counts; returns the first
    /// inconsistency. `live` gets every item's class.
    pub(crate) fn check(
        &self,
        si: usize,
        shard_of: &dyn Fn(&[u8]) -> usize,
    ) -> Result<Vec<u64>, String> {
        let mut per_class = vec![0u64; self.lru.len()];
        let mut chained = 0;
        for &b in self.buckets.iter().chain(&self.old) {
            let mut i = b;
            while i != NIL {
                chained += 1;
                if chained > self.len {
                    return Err("bucket chains longer than len".into());
                }
                if shard_of(self.key(i)) != si {
                    return Err("item in the wrong shard".into());
                }
                if self.find(self.key(i), self.hash32(self.key(i))) != Some(i) {
                    return Err("item not reachable from its bucket".into());
                }
                per_class[self.class_of(i)] += 1;
                i = self.rd32(i, HNEXT);
            }
        }
        if chained != self.len {
            return Err(format!("chains hold {chained}, len {}", self.len));
        }
        for (c, l) in self.lru.iter().enumerate() {
            let mut n = 0u64;
            let mut bytes = 0;
            let mut chained = 0u64;
            let mut i = l.head;
            let mut prev = NIL;
            while i != NIL {
                if self.rd32(i, PREV) != prev || self.class_of(i) != c {
                    return Err(format!("class {c} LRU broken"));
                }
                n += 1;
                if n > l.number {
                    return Err(format!("class {c} LRU longer than its count"));
                }
                bytes += self.size(i);
                chained += self.is_chained(i) as u64;
                let h = self.hash32(self.key(i));
                if self.find(self.key(i), h) != Some(i) {
                    return Err(format!("class {c}: LRU item not in the table"));
                }
                prev = i;
                i = self.rd32(i, NEXT);
            }
            if n != l.number || l.tail != prev || n != per_class[c] {
                return Err(format!(
                    "class {c}: LRU has {n}, count {}, table {}",
                    l.number, per_class[c]
                ));
            }
            if chained != l.chained {
                return Err(format!("class {c}: {chained} chained, count {}", l.chained));
            }
            if bytes != l.requested {
                return Err(format!("class {c}: bytes {bytes} != {}", l.requested));
            }
        }
        self.tombs.check()?;
        for k in self.tombs.keys() {
            if shard_of(k) != si {
                return Err("tombstone in the wrong shard".into());
            }
            if self.find(k, self.hash32(k)).is_some() {
                return Err("a key with both an item and a tombstone".into());
            }
        }
        Ok(per_class)
    }

    /// Chunks held by linked items, per class.
    pub(crate) fn chunk_counts(&self) -> Vec<u64> {
        let mut out = vec![0u64; self.lru.len()];
        for l in &self.lru {
            let mut i = l.head;
            while i != NIL {
                for ch in self.chunks(i) {
                    out[self.class_of(ch)] += 1;
                }
                i = self.rd32(i, NEXT);
            }
        }
        out
    }

    /// Keys of class `c` from the LRU head to the tail; for tests.
    #[cfg(test)]
    pub(crate) fn lru_keys(&self, c: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut i = self.lru[c].head;
        while i != NIL {
            out.push(self.key(i).to_vec());
            i = self.rd32(i, NEXT);
        }
        out
    }

    /// The time of this shard's tail item of class `c`.
    pub(crate) fn tail_time(&self, c: usize) -> Option<u32> {
        let t = self.lru[c].tail;
        (t != NIL).then(|| self.time(t))
    }
}
