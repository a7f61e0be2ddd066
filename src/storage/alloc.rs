//! Chunks for a write. Under the key's shard lock: from the request's
//! reserve, the class allocator, or by evicting that shard's LRU tail
//! when it is the oldest of the class. With no lock held, making room: a
//! donor page under automove, the oldest tail evicted in whichever shard
//! holds it, or a page taken from another class. Also whether a big item
//! is better split over two chunks, and whether it could ever fit.

use std::sync::atomic::Ordering;

use super::item::{footprint, LINK};
use super::shard::{Shard, Validity};
use super::slabs::Ref;
use super::Store;

/// A write that keeps failing to find room gives up after this many
/// rounds of making room (others may take the room it made).
const MAX_ROOM_TRIES: u32 = 64;

/// What one locked attempt at a write decided.
pub(super) enum Step<T> {
    Done(T),
    /// The write needs a chunk of this class that it could not get.
    Need(usize),
}

impl Store {
    /// The shard whose LRU tail of class `c` is oldest (ties go round
    /// robin), with that time; None when no shard has an item of `c`.
    pub(super) fn oldest_tail(&self, c: usize) -> Option<(usize, u32)> {
        let n = self.shards.len();
        let start = self.evict_cursor.fetch_add(1, Ordering::Relaxed);
        let mut best: Option<(usize, u32)> = None;
        for k in 0..n {
            let si = (start + k) & self.shard_mask;
            let t = self.tails.get(c, si);
            if t != u32::MAX && best.is_none_or(|(_, bt)| t < bt) {
                best = Some((si, t));
            }
        }
        best
    }

    /// One chunk of class `c` for a write under shard `si`'s lock: from
    /// the request's reserve, the allocator, or by evicting this shard's
    /// tail when it is the oldest. Err(c) when the caller must make room
    /// without the lock.
    fn get_chunk(
        &self,
        sh: &mut Shard,
        si: usize,
        c: usize,
        v: &Validity,
        res: &mut Vec<Ref>,
    ) -> Result<Ref, usize> {
        if let Some(pos) = res.iter().position(|&r| self.slabs.class_of(r) == c) {
            return Ok(res.swap_remove(pos));
        }
        if let Some(r) = self.slabs.alloc(c, true) {
            return Ok(r);
        }
        if !self.cfg.evictions {
            return Err(c);
        }
        if self.donor_for(c, v.now).is_some() {
            return Err(c);
        }
        if let (Some(mine), Some((_, oldest))) = (sh.tail_time(c), self.oldest_tail(c)) {
            if mine <= oldest {
                if let Some(r) = sh.evict_one(c, v) {
                    return Ok(r);
                }
            }
        }
        let _ = si;
        Err(c)
    }

    /// Chunks for an item of `fp` bytes (`klen`/`vlen`/`flags` for the
    /// chained layout): head first.
    pub(super) fn get_chunks(
        &self,
        sh: &mut Shard,
        si: usize,
        (klen, vlen, flags): (usize, usize, u32),
        v: &Validity,
        res: &mut Vec<Ref>,
    ) -> Result<(Ref, Vec<Ref>), usize> {
        let fp = footprint(klen, vlen, flags);
        let max = self.slabs.chunk_max();
        let mut got: Vec<Ref> = Vec::new();
        let need =
            |this: &Store, sh: &mut Shard, c: usize, got: &mut Vec<Ref>, res: &mut Vec<Ref>| {
                match this.get_chunk(sh, si, c, v, res) {
                    Ok(r) => {
                        got.push(r);
                        Ok(())
                    }
                    Err(c) => {
                        res.append(got);
                        Err(c)
                    }
                }
            };
        if fp <= max {
            if let Some((h, t)) = self.split_plan(fp, vlen) {
                // Split only with memory at hand or evictable in both
                // classes; a class that would need a page taken from
                // another class gets the whole item instead.
                for c in [h, t] {
                    if let Some(pos) = res.iter().position(|&r| self.slabs.class_of(r) == c) {
                        got.push(res.swap_remove(pos));
                    } else if let Some(r) = self.slabs.alloc(c, true) {
                        got.push(r);
                    } else if self.cfg.evictions && self.oldest_tail(c).is_some() {
                        need(self, sh, c, &mut got, res)?;
                    } else {
                        res.append(&mut got);
                        break;
                    }
                }
                if got.len() == 2 {
                    let head = got.remove(0);
                    return Ok((head, got));
                }
            }
            let c = self.slabs.class_for(fp);
            return self.get_chunk(sh, si, c, v, res).map(|r| (r, Vec::new()));
        }
        let big = self.slabs.largest();
        let head_room = max - (fp - vlen) - LINK;
        let mut left = vlen - head_room.min(vlen);
        need(self, sh, big, &mut got, res)?;
        while left > 0 {
            let room = max - LINK;
            if left > room {
                need(self, sh, big, &mut got, res)?;
                left -= room;
            } else {
                let tc = self.slabs.class_for(left + LINK);
                if let Some(pos) = res.iter().position(|&r| self.slabs.class_of(r) == tc) {
                    got.push(res.swap_remove(pos));
                } else if let Some(r) = self.slabs.alloc(tc, true) {
                    got.push(r);
                } else {
                    need(self, sh, big, &mut got, res)?;
                }
                left = 0;
            }
        }
        let head = got.remove(0);
        Ok((head, got))
    }

    /// Whether an item of `fp` bytes (value `vlen`) is better stored as a
    /// head chunk of a smaller class plus a tail chunk: when its own class
    /// would waste at least 256 bytes and 5% of the chunk. memcached's
    /// classes grow by 25%, so an item just above a class boundary wastes
    /// up to a fifth of its chunk (a 4 KB value: 403 bytes of 4,544);
    /// split, it wastes far less. Returns (head class, tail class).
    fn split_plan(&self, fp: usize, vlen: usize) -> Option<(usize, usize)> {
        if fp < 1024 {
            return None;
        }
        let c = self.slabs.class_for(fp);
        if c == 0 {
            return None;
        }
        let whole = self.slabs.classes[c].size as usize;
        let before = fp - vlen + LINK;
        let mut best: Option<(usize, usize, usize)> = None;
        for h in (c.saturating_sub(3).max(1)..c).rev() {
            let hs = self.slabs.classes[h].size as usize;
            if hs <= before || fp + LINK <= hs {
                continue;
            }
            let rest = vlen - (hs - before);
            let t = self.slabs.class_for(rest + LINK);
            if t == 0 {
                continue;
            }
            let total = hs + self.slabs.classes[t].size as usize;
            if best.is_none_or(|(_, _, bt)| total < bt) {
                best = Some((h, t, total));
            }
        }
        let (h, t, total) = best?;
        let saved = whole.saturating_sub(total);
        (saved >= 256 && saved * 20 >= whole).then_some((h, t))
    }

    /// False when an item this size needs more chunks of the largest class
    /// than the whole page budget holds (nothing is evicted for it).
    pub(super) fn could_ever_fit(&self, klen: usize, vlen: usize, flags: u32) -> bool {
        let fp = footprint(klen, vlen, flags);
        let max = self.slabs.chunk_max();
        if fp <= max {
            return true;
        }
        let chunks = 1 + (fp - max + LINK).div_ceil(max - LINK) as u64;
        let per = self.slabs.classes[self.slabs.largest()].perslab.max(1) as u64;
        chunks.div_ceil(per) <= self.slabs.limit_pages()
    }

    /// Runs a write `step` under shard `si`'s lock until it is done. A step
    /// that needs a chunk of a class it could not get has room made for it
    /// (with the lock let go) and runs again; when no room can be made, or
    /// after `MAX_ROOM_TRIES`, the out-of-memory is counted in that class
    /// and `out_of_memory` gives the outcome. Chunks reserved and not used
    /// go back.
    pub(super) fn write_with_room<T>(
        &self,
        si: usize,
        now: u32,
        mut step: impl FnMut(&mut Shard, &Validity, &mut Vec<Ref>) -> Step<T>,
        out_of_memory: impl FnOnce() -> T,
    ) -> T {
        let mut res = Vec::new();
        let mut tries = 0;
        let outcome = loop {
            let v = self.validity(now);
            match self.with_shard(si, |sh| step(sh, &v, &mut res)) {
                Step::Done(o) => break o,
                Step::Need(c) => {
                    tries += 1;
                    if tries > MAX_ROOM_TRIES || !self.make_room(c, &mut res, now) {
                        self.count_oom(si, c);
                        break out_of_memory();
                    }
                }
            }
        };
        self.release_reserve(res);
        outcome
    }

    /// Makes room for a chunk of class `c` with no lock held: takes a page
    /// from a class with much older items (automove on), else evicts the
    /// oldest tail of the class (keeping the chunk in `res`), or moves a
    /// page from another class when no shard has an item of `c`.
    pub(super) fn make_room(&self, c: usize, res: &mut Vec<Ref>, now: u32) -> bool {
        if !self.cfg.evictions {
            return false;
        }
        if let Some(src) = self.donor_for(c, now) {
            // Chunks this request holds could sit in the page to move.
            self.release_reserve(std::mem::take(res));
            let moved = self.move_page_now(src, c, now);
            self.refresh_donor();
            if moved {
                return true;
            }
        }
        for _ in 0..4 {
            match self.oldest_tail(c) {
                Some((si, _)) => {
                    let v = self.validity(now);
                    if let Some(r) = self.with_shard(si, |sh| sh.evict_one(c, &v)) {
                        if self.slabs.class_of(r) == c {
                            res.push(r);
                        } else {
                            self.slabs.free(r);
                        }
                        return true;
                    }
                }
                None => {
                    self.release_reserve(std::mem::take(res));
                    return self.steal_page(c, now);
                }
            }
        }
        // Raced with others emptying the tails: let the caller retry.
        true
    }

    pub(super) fn release_reserve(&self, res: Vec<Ref>) {
        for r in res {
            self.slabs.free(r);
        }
    }

    pub(super) fn count_oom(&self, si: usize, c: usize) {
        self.with_shard(si, |sh| {
            if let Some(l) = sh.lru.get_mut(c) {
                l.c.outofmemory += 1;
            }
        });
    }
}
