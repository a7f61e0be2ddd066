//! Changing the memory limit at run time (`cache_memlimit`) and giving
//! pages back until the store is within it.

use std::sync::atomic::Ordering;

use super::{crate_now, Store};

impl Store {
    /// Changes the memory limit at run time (`cache_memlimit`); a smaller
    /// limit gives pages back at once, evicting their items.
    pub fn set_memory_limit(&self, bytes: u64) {
        self.limit.store(bytes, Ordering::Release);
        self.slabs.set_limit(bytes);
        self.shrink_to_limit(crate_now());
    }

    pub(super) fn shrink_to_limit(&self, now: u32) {
        let mut guard = 0;
        while self.slabs.pages_over_limit() > 0 && guard < 1_000_000 {
            guard += 1;
            // The class with the most pages gives one back.
            let src =
                (1..self.slabs.classes.len()).max_by_key(|&c| self.slabs.lock_class(c).pages.len());
            let Some(src) = src else { return };
            if self.slabs.lock_class(src).pages.is_empty() {
                return;
            }
            if !self.move_page_now(src, 0, now) {
                return;
            }
        }
    }
}
