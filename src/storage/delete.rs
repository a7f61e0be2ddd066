//! Deletes: `delete`, the meta delete (`md`, which may invalidate
//! instead), and dropping the old value of a `set` that could not be
//! stored. In replicated mode each leaves a tombstone.

use super::item;
use super::shard::Shard;
use super::{MetaDeleteOutcome, Miss, Store};

impl Store {
    /// Records a local delete of `key` (replicated mode): a tombstone with
    /// a fresh version.
    fn tombstone_local(&self, sh: &mut Shard, key: &[u8], now: u32) {
        if self.replicated() {
            let s = self.versions.next();
            sh.tombs.raise(key, s, now);
        }
    }

    /// Drops the old value of a `set` that could not be stored (a delete
    /// the peer must hear of too).
    pub(super) fn unlink_key(&self, key: &[u8], h: u32, si: usize, now: u32) {
        self.with_shard(si, |sh| {
            if let Some(r) = sh.find(key, h) {
                sh.unlink(r);
                self.tombstone_local(sh, key, now);
            }
        });
    }

    /// Meta delete: with `compare`, only when the item's CAS equals it;
    /// with `invalidate`, the item is kept, marked stale with its win
    /// token free again, given a new CAS unique (a fresh store sequence,
    /// so flush ordering still holds) and, when given, a new expiry.
    pub fn meta_delete(
        &self,
        key: &[u8],
        now: u32,
        compare: Option<u64>,
        invalidate: Option<Option<u32>>,
    ) -> MetaDeleteOutcome {
        let Some((h, si)) = self.locate(key) else {
            return MetaDeleteOutcome::NotFound;
        };
        let v = self.validity(now);
        self.with_shard(si, |sh| {
            let Ok(r) = sh.lookup(key, h, &v) else {
                return MetaDeleteOutcome::NotFound;
            };
            if let Some(c) = compare {
                if !self.cfg.cas_enabled || sh.seq(r) != c {
                    return MetaDeleteOutcome::Exists;
                }
            }
            let c = sh.class_of(r);
            match invalidate {
                Some(exp) => {
                    if let Some(e) = exp {
                        sh.set_exptime(r, e);
                    }
                    let (seq, dead) = self.next_seq(v.now);
                    sh.set_seq(r, seq);
                    let mut b = (sh.bits(r) | item::INVALID) & !item::WIN_SENT;
                    if dead {
                        b |= item::STALE;
                    }
                    sh.set_bits(r, b);
                    MetaDeleteOutcome::Invalidated
                }
                None => {
                    sh.lru[c].c.delete_hits += 1;
                    sh.unlink(r);
                    self.tombstone_local(sh, key, now);
                    MetaDeleteOutcome::Deleted
                }
            }
        })
    }

    pub fn delete(&self, key: &[u8], now: u32) -> Result<(), Miss> {
        let (h, si) = self.locate(key).ok_or(Miss::NotFound)?;
        let v = self.validity(now);
        self.with_shard(si, |sh| {
            let r = sh.lookup(key, h, &v)?;
            let c = sh.class_of(r);
            sh.lru[c].c.delete_hits += 1;
            sh.unlink(r);
            self.tombstone_local(sh, key, now);
            Ok(())
        })
    }
}
