//! A resumable walk over the live items for key dumps
//! (`lru_crawler metadump`, `stats cachedump`), one shard lock at a time.

use super::item;
use super::{DumpEntry, Store, SWEEP_CHUNK};

/// Where a resumable walk over the store (`Store::dump`) stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DumpCursor {
    shard: usize,
    slot: usize,
    done: bool,
}

impl DumpCursor {
    pub fn is_done(&self) -> bool {
        self.done
    }
}

impl Store {
    /// Walks the live items in resumable steps: calls `f` for each live
    /// item of the next `budget` hash buckets after `cursor`, holding one
    /// shard lock at a time, and advances the cursor. Items stored or
    /// deleted while a walk is under way may or may not be seen. Returns
    /// true when the walk has finished.
    pub fn dump(
        &self,
        cursor: &mut DumpCursor,
        budget: usize,
        now: u32,
        mut f: impl FnMut(DumpEntry<'_>),
    ) -> bool {
        let v = self.validity(now);
        let cas_enabled = self.cfg.cas_enabled;
        let mut left = budget.max(1);
        while !cursor.done && left > 0 {
            if cursor.shard >= self.shards.len() {
                cursor.done = true;
                break;
            }
            let step = left.min(SWEEP_CHUNK);
            let next = self
                .lock(cursor.shard)
                .dump_from(cursor.slot, step, &v, &mut |sh, r| {
                    f(DumpEntry {
                        key: sh.key(r),
                        exptime: sh.exptime(r),
                        last_access: sh.time(r),
                        cas: if cas_enabled { sh.seq(r) } else { 0 },
                        fetched: sh.bits(r) & item::FETCHED != 0,
                        class: sh.class_of(r) as u32,
                        value_len: sh.vlen(r),
                        size: sh.size(r) as usize,
                    })
                });
            left -= step;
            match next {
                Some(slot) => cursor.slot = slot,
                None => {
                    cursor.shard += 1;
                    cursor.slot = 0;
                }
            }
        }
        cursor.done
    }
}
