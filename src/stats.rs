//! Counters. Each worker thread owns a [`WorkerStats`] and is its only
//! writer; `stats` sums them. Connection gauges shared by the acceptor and
//! the workers live in [`ConnStats`].

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! worker_counters {
    ($($name:ident),* $(,)?) => {
        /// Per-worker counters (single writer, relaxed atomics so `stats`
        /// can read them from another thread).
        #[derive(Debug, Default)]
        pub struct WorkerStats {
            $(pub $name: Counter,)*
        }

        /// A plain snapshot/sum of [`WorkerStats`].
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct WorkerTotals {
            $(pub $name: u64,)*
        }

        impl WorkerStats {
            pub fn add_to(&self, t: &mut WorkerTotals) {
                $(t.$name += self.$name.get();)*
            }
            pub fn reset(&self) {
                $(self.$name.reset();)*
            }
        }
    };
}

worker_counters!(
    cmd_get,
    get_hits,
    get_misses,
    get_expired,
    get_flushed,
    cmd_set,
    cmd_flush,
    cmd_touch,
    cmd_meta,
    touch_hits,
    touch_misses,
    delete_hits,
    delete_misses,
    incr_hits,
    incr_misses,
    decr_hits,
    decr_misses,
    cas_hits,
    cas_misses,
    cas_badval,
    store_too_large,
    store_no_memory,
    auth_cmds,
    auth_errors,
    bytes_read,
    bytes_written,
    conn_yields,
    idle_kicks,
);

/// A counter with one writing thread.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        // Single writer: a load and a store avoid a locked instruction.
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }
    #[inline]
    pub fn incr(&self) {
        self.add(1)
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    pub fn reset(&self) {
        self.0.store(0, Ordering::Relaxed)
    }
}

/// Connection counters shared by the acceptor and the workers.
#[derive(Debug, Default)]
pub struct ConnStats {
    pub curr_connections: AtomicU64,
    pub total_connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub connection_structures: AtomicU64,
    pub listen_disabled_num: AtomicU64,
}

impl ConnStats {
    pub fn reset(&self) {
        self.total_connections.store(0, Ordering::Relaxed);
        self.rejected_connections.store(0, Ordering::Relaxed);
        self.listen_disabled_num.store(0, Ordering::Relaxed);
    }
}

/// CPU time of this process as ((user sec, usec), (system sec, usec)),
/// for `rusage_user` / `rusage_system`.
pub fn cpu_times() -> ((i64, i64), (i64, i64)) {
    use nix::sys::resource::{getrusage, UsageWho};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(ru) => {
            let (u, s) = (ru.user_time(), ru.system_time());
            ((u.tv_sec(), u.tv_usec()), (s.tv_sec(), s.tv_usec()))
        }
        Err(_) => ((0, 0), (0, 0)),
    }
}
