//! Storage commands: set, add, replace, append, prepend and cas. Each
//! attempt runs under the key's shard lock; one that needs a chunk it
//! cannot get there lets the lock go, makes room (alloc.rs) and retries.

use super::alloc::Step;
use super::item::{self, footprint, item_size};
use super::shard::{Shard, Validity};
use super::slabs::Ref;
use super::{Store, StoreMode, StoreOutcome};

impl Store {
    pub fn store(
        &self,
        mode: StoreMode,
        key: &[u8],
        flags: u32,
        exptime: u32,
        data: &[u8],
        now: u32,
    ) -> StoreOutcome {
        let Some((h, si)) = self.locate(key) else {
            return StoreOutcome::NotStored;
        };
        if item_size(key.len(), data.len(), flags, self.cfg.cas_enabled)
            > self.cfg.item_size_max as u64
        {
            if mode == StoreMode::Set {
                self.unlink_key(key, h, si, now);
            }
            return StoreOutcome::TooLarge;
        }
        if !self.could_ever_fit(key.len(), data.len(), flags) {
            let c = self.slabs.largest();
            self.count_oom(si, c);
            if mode == StoreMode::Set {
                self.unlink_key(key, h, si, now);
            }
            return StoreOutcome::OutOfMemory;
        }
        let req = Req {
            mode,
            key,
            h,
            flags,
            exptime,
            data,
        };
        self.write_with_room(
            si,
            now,
            |sh, v, res| self.store_locked(sh, si, &req, v, res),
            || match mode {
                // memcached drops the old value of a `set` it could not
                // store.
                StoreMode::Set => {
                    self.unlink_key(key, h, si, now);
                    StoreOutcome::OutOfMemory
                }
                // memcached allocates the appended data first (small, it
                // usually fits) and answers NOT_STORED when the combined
                // item does not.
                StoreMode::Append | StoreMode::Prepend => StoreOutcome::NotStored,
                _ => StoreOutcome::OutOfMemory,
            },
        )
    }

    fn store_locked(
        &self,
        sh: &mut Shard,
        si: usize,
        r: &Req<'_>,
        v: &Validity,
        res: &mut Vec<Ref>,
    ) -> Step<StoreOutcome> {
        let found = sh.lookup(r.key, r.h, v).ok();
        match (r.mode, found) {
            (StoreMode::Add, Some(idx)) => {
                // memcached refreshes the LRU position of the item an `add`
                // ran into.
                sh.bump(idx);
                return Step::Done(StoreOutcome::NotStored);
            }
            (StoreMode::Replace | StoreMode::Append | StoreMode::Prepend, None) => {
                return Step::Done(StoreOutcome::NotStored)
            }
            (StoreMode::Cas(_), None) => return Step::Done(StoreOutcome::NotFound),
            (StoreMode::Cas(unique), Some(idx))
                if !self.cfg.cas_enabled || sh.seq(idx) != unique =>
            {
                let c = sh.class_of(idx);
                sh.lru[c].c.cas_badval += 1;
                return Step::Done(StoreOutcome::Exists);
            }
            _ => {}
        }
        let (flags, exptime, vlen) = match (r.mode, found) {
            (StoreMode::Append | StoreMode::Prepend, Some(idx)) => {
                (sh.flags(idx), sh.exptime(idx), sh.vlen(idx) + r.data.len())
            }
            _ => (r.flags, r.exptime, r.data.len()),
        };
        let new_size = item_size(r.key.len(), vlen, flags, self.cfg.cas_enabled);
        if new_size > self.cfg.item_size_max as u64 {
            // Only append/prepend get here; memcached answers NOT_STORED
            // when the combined item is too large.
            return Step::Done(StoreOutcome::NotStored);
        }
        // A set over an item of the same class reuses its chunk (no trip
        // to the allocator; under -M a same-size overwrite always fits).
        if let (StoreMode::Set | StoreMode::Replace | StoreMode::Cas(_), Some(idx)) =
            (r.mode, found)
        {
            let fp = footprint(r.key.len(), vlen, flags);
            if !sh.is_chained(idx)
                && fp <= self.slabs.chunk_max()
                && self.slabs.class_for(fp) == sh.class_of(idx)
            {
                let head = sh.unlink_keep_head(idx);
                let (seq, stale) = self.next_seq(v.now);
                sh.write_item(head, &[], seq, exptime, v.now, flags, r.key, &[r.data]);
                if stale {
                    let b = sh.bits(head);
                    sh.set_bits(head, b | item::STALE);
                }
                sh.link(head);
                sh.tombs.remove(r.key);
                let c = sh.class_of(head);
                sh.lru[c].c.cmd_set += 1;
                if let StoreMode::Cas(_) = r.mode {
                    sh.lru[c].c.cas_hits += 1;
                }
                return Step::Done(StoreOutcome::Stored {
                    cas: self.cas_of(seq),
                });
            }
        }
        let (head, conts) = match self.get_chunks(sh, si, (r.key.len(), vlen, flags), v, res) {
            Ok(x) => x,
            Err(c) => return Step::Need(c),
        };
        // The old item may have been evicted to make room.
        let found = match found {
            Some(idx) if sh.find(r.key, r.h) == Some(idx) => Some(idx),
            Some(_) => {
                if r.mode != StoreMode::Set {
                    // It went while we made room; say what a later look
                    // would have said.
                    res.push(head);
                    res.extend(conts);
                    return Step::Done(match r.mode {
                        StoreMode::Cas(_) => StoreOutcome::NotFound,
                        _ => StoreOutcome::NotStored,
                    });
                }
                None
            }
            None => None,
        };
        let (seq, stale) = self.next_seq(v.now);
        let old = match (r.mode, found) {
            (StoreMode::Append | StoreMode::Prepend, Some(idx)) => sh.value_vec(idx),
            _ => Vec::new(),
        };
        let parts: [&[u8]; 2] = match r.mode {
            StoreMode::Prepend => [r.data, &old],
            _ => [&old, r.data],
        };
        sh.write_item(head, &conts, seq, exptime, v.now, flags, r.key, &parts);
        if stale {
            let b = sh.bits(head);
            sh.set_bits(head, b | item::STALE);
        }
        match found {
            Some(idx) => sh.replace(idx, head),
            None => sh.link(head),
        }
        sh.tombs.remove(r.key);
        let c = sh.class_of(head);
        sh.lru[c].c.cmd_set += 1;
        if let StoreMode::Cas(_) = r.mode {
            sh.lru[c].c.cas_hits += 1;
        }
        Step::Done(StoreOutcome::Stored {
            cas: self.cas_of(seq),
        })
    }
}

/// A store request's fixed part.
struct Req<'a> {
    mode: StoreMode,
    key: &'a [u8],
    h: u32,
    flags: u32,
    exptime: u32,
    data: &'a [u8],
}
