//! Per-item memory cost of the store for 1M items of 100-byte values with
//! 11-byte keys, measured two ways: the heap bytes the store's structures
//! hold (`Store::heap_bytes`: item allocations, slot arenas, bucket arrays)
//! and the growth of the process's resident set (/proc/self/statm), which
//! adds the allocator's own per-chunk overhead.
//!
//! Run: `cargo test --release --test storage_mem -- --ignored --nocapture`.

use twincache::storage::{Store, StoreConfig, StoreMode, StoreOutcome};

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
    let rss0 = rss_bytes();
    let s = Store::new(StoreConfig {
        memory_limit: 1 << 34,
        ..Default::default()
    });
    let mut key = Vec::with_capacity(16);
    for i in 0..N {
        key.clear();
        key.extend_from_slice(format!("key:{i:07}").as_bytes());
        assert_eq!(key.len(), 11);
        let r = s.store(StoreMode::Set, &key, 0, 0, &value, 1000);
        assert!(matches!(r, StoreOutcome::Stored { .. }));
    }
    let heap = s.heap_bytes() as f64 / N as f64;
    let rss = (rss_bytes() - rss0) as f64 / N as f64;
    let st = s.stats();
    let accounted = st.bytes as f64 / N as f64;
    println!(
        "1M items, 11 B keys, 100 B values: store heap {heap:.1} B/item, \
         RSS growth {rss:.1} B/item, memcached-accounted {accounted:.1} B/item, \
         key+value {} B, overhead over key+value {:.1} B/item (RSS); hash_power_level {}",
        11 + 100,
        rss - 111.0,
        st.hash_power_level
    );
    assert_eq!(st.curr_items, N);
    s.check_invariants().unwrap();
    // memcached 1.6.18 holds these items in 192-byte chunks plus 8 bytes
    // of hash table each (measured: total_malloced 192.9 MB + hash 8 MB
    // for 1M items); the store must not cost more.
    assert!(rss < 200.0, "RSS {rss:.1} B/item");
    assert!(heap < rss + 1.0, "heap {heap:.1} above RSS {rss:.1}");
}
