//! The plain model of the store that the property tests
//! (tests/storage_props.rs) and the store fuzz target
//! (fuzz/fuzz_targets/store_model.rs, through `#[path]`) check the real
//! store against: what each key holds and when it stops being live.

use std::collections::HashMap;
use twincache::storage::Miss;

#[derive(Debug, Clone, PartialEq)]
pub struct MItem {
    pub value: Vec<u8>,
    pub flags: u32,
    pub exptime: u32,
    pub cas: u64,
    pub time: u32,
    /// Hit by an immediate flush (still in the store until looked at).
    pub flushed: bool,
}

/// The model. `items[k]` is what key `k` holds if it is present.
#[derive(Default)]
pub struct Model {
    pub items: HashMap<usize, MItem>,
    pub now: u32,
    pub pending_flush: u32,
    pub passed_flush: u32,
    pub last_cas: u64,
}

impl Model {
    pub fn flushed_before(&self) -> u32 {
        let due = if self.pending_flush != 0 && self.pending_flush <= self.now {
            self.pending_flush
        } else {
            0
        };
        due.max(self.passed_flush)
    }

    /// The live item of `k`, dropping a dead one (and saying why).
    pub fn live(&mut self, k: usize) -> Result<&mut MItem, Miss> {
        let fb = self.flushed_before();
        let now = self.now;
        let dead = match self.items.get(&k) {
            None => return Err(Miss::NotFound),
            Some(it) if it.flushed || (fb != 0 && it.time <= fb) => Some(Miss::Flushed),
            Some(it) if it.exptime != 0 && it.exptime <= now => Some(Miss::Expired),
            Some(_) => None,
        };
        if let Some(m) = dead {
            self.items.remove(&k);
            return Err(m);
        }
        self.items.get_mut(&k).ok_or(Miss::NotFound)
    }
}
