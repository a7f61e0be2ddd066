//! A consistency check of the whole store (for tests and the fuzz model):
//! shard structures, chunk accounting per class, the page budget.

use super::Store;

impl Store {
    /// Checks every shard's structure, every class's chunk accounting and
    /// the page budget (call when no operation is in flight): each LRU
    /// holds exactly the live items of its class in that shard, used
    /// chunks = chunks held by items, free + used = pages x chunks per page,
    /// pages <= limit.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        self.slabs.check()?;
        let n = self.slabs.classes.len();
        let mut held = vec![0u64; n];
        for si in 0..self.shards.len() {
            let g = self.lock(si);
            g.check(si, &|k| self.shard_of(k))
                .map_err(|e| format!("shard {si}: {e}"))?;
            for (c, x) in g.chunk_counts().into_iter().enumerate() {
                held[c] += x;
            }
        }
        let m = self.lock_mover();
        let idle = m.active.is_none() && m.unfinished.is_empty();
        drop(m);
        for (c, &h) in held.iter().enumerate().skip(1) {
            let used = self.slabs.lock_class(c).used;
            if used != h && idle {
                return Err(format!("class {c}: {used} chunks used, items hold {h}"));
            }
        }
        Ok(())
    }
}
