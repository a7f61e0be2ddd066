//! A dropped `Store` gives its memory back: 200 stores, each holding about
//! 1.5 MB of values, are built and dropped in turn, and the process's
//! resident memory grows by far less than one leaked store per round would
//! add (200 x 1.5 MB). The allocator may keep some freed pages for reuse
//! (glibc keeps a few MB on its heap once its mmap threshold has risen),
//! hence a bound rather than zero.
//!
//! The page count itself is checked exactly by the unit test
//! `storage::slabs::tests::dropped_stores_free_every_page`.

use twincache::storage::{Store, StoreConfig, StoreMode, StoreOptions, StoreOutcome};

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

fn fill_and_drop(round: usize) {
    let now = 1_700_000_000;
    let s = Store::with_options(
        StoreConfig {
            memory_limit: 64 << 20,
            item_size_max: 1024,
            ..StoreConfig::default()
        },
        StoreOptions {
            shards: if round.is_multiple_of(2) { 1 } else { 4 },
            initial_buckets: 2,
            seed: Some((3, 4)),
            ..StoreOptions::default()
        },
    );
    let value = [b'v'; 900];
    for k in 0..1600u32 {
        let key = k.to_be_bytes();
        let got = s.store(StoreMode::Set, &key, 0, 0, &value, now);
        assert!(matches!(got, StoreOutcome::Stored { .. }), "{k}: {got:?}");
    }
    assert!(
        s.used_bytes() >= 2 << 20,
        "{} bytes of pages",
        s.used_bytes()
    );
}

#[test]
fn dropped_stores_do_not_grow_rss() {
    // Warm up: the first rounds set the allocator's steady state.
    for round in 0..10 {
        fill_and_drop(round);
    }
    let start = rss_kb();
    for round in 0..200 {
        fill_and_drop(round);
    }
    let grown = rss_kb().saturating_sub(start);
    eprintln!("VmRSS grew by {grown} KB over 200 stores");
    // One leaked store per round would be about 300 MB.
    assert!(
        grown < 48 * 1024,
        "VmRSS grew by {grown} KB over 200 stores"
    );
}
