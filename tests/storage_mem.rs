//! Per-item memory overhead of the store, measured two ways:
//! heap bytes requested (a counting global allocator) and resident set
//! growth (/proc/self/statm), for 1M items of 100-byte values and 11-byte
//! keys. Run: `cargo test --release --test storage_mem -- --ignored --nocapture`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use twincache::storage::{Store, StoreConfig, StoreMode, StoreOutcome};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[test]
#[ignore = "measurement; run in release with --ignored --nocapture"]
fn per_item_overhead_1m_items() {
    const N: u64 = 1_000_000;
    let value = [b'v'; 100];
    let heap0 = LIVE.load(Ordering::Relaxed);
    let rss0 = rss_bytes();
    let s = Store::new(StoreConfig {
        memory_limit: 1 << 34,
        ..Default::default()
    });
    for i in 0..N {
        let key = format!("key:{i:07}");
        assert_eq!(key.len(), 11);
        let r = s.store(StoreMode::Set, key.as_bytes(), 0, 0, &value, 1000);
        assert!(matches!(r, StoreOutcome::Stored { .. }));
    }
    let heap = (LIVE.load(Ordering::Relaxed) - heap0) as f64 / N as f64;
    let rss = (rss_bytes() - rss0) as f64 / N as f64;
    let st = s.stats();
    let accounted = st.bytes as f64 / N as f64;
    println!(
        "1M items, 11 B keys, 100 B values: heap requested {heap:.1} B/item, \
         RSS growth {rss:.1} B/item, memcached-accounted {accounted:.1} B/item, \
         key+value {} B; hash_power_level {}",
        11 + 100,
        st.hash_power_level
    );
    assert_eq!(st.curr_items, N);
    // The store must not cost more than memcached's own accounting
    // (170 B per item here) plus a modest margin.
    assert!(rss < 220.0, "RSS {rss:.1} B/item");
}
