//! What the replication layer calls: applying a peer's records, exporting
//! and walking the store for the peer, and this node's version clock and id.

use super::Shared;
use crate::config::Config;
use crate::storage::{ApplyOutcome, Exported, WalkCursor};

/// What exec tells the replication layer (implemented in `replication/`,
/// which sits above exec and reaches the store only through it).
pub trait Replicator: Send + Sync {
    /// A client changed `key` (stored, deleted, touched, counted): its
    /// resulting state must reach the peer.
    fn mutated(&self, key: &[u8]);
    /// A client ran `flush_all`: `version` is the barrier of an immediate
    /// flush (0 for a delayed one), `at` the time of a delayed one.
    fn flushed(&self, version: u64, at: u32);
    /// The `stats replication` lines, or (summary) the few `repl_*` lines
    /// plain `stats` carries.
    fn stat_lines(&self, summary: bool) -> Vec<(&'static str, String)>;
    /// The server began a graceful stop (SIGTERM, SIGINT, `shutdown`):
    /// the replication drain time starts now, while the workers still
    /// finish the requests already read, so the whole stop stays within
    /// the drain limit.
    fn stopping(&self) {}
}

/// A record from the peer, applied through [`apply_peer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRecord<'a> {
    Item {
        key: &'a [u8],
        value: &'a [u8],
        flags: u32,
        exptime: u32,
        version: u64,
        stale: bool,
    },
    Delete {
        key: &'a [u8],
        version: u64,
    },
    /// `flush_all`: an immediate one is a barrier version; a delayed one
    /// (version 0) runs at `at` on this node's clock.
    Flush {
        version: u64,
        at: u32,
    },
}

/// Applies a peer's record, last writer wins by version. Never reported
/// back to the replicator (no echo).
pub fn apply_peer(shared: &Shared, rec: &PeerRecord<'_>) -> ApplyOutcome {
    let now = shared.clock.now();
    let store = &shared.store;
    match *rec {
        PeerRecord::Item {
            key,
            value,
            flags,
            exptime,
            version,
            stale,
        } => store.apply_item(key, flags, exptime, value, version, stale, now),
        PeerRecord::Delete { key, version } => store.apply_delete(key, version, now),
        PeerRecord::Flush { version, at } => {
            if at != 0 {
                store.flush_all(at, now);
            } else {
                store.apply_flush(version);
            }
            ApplyOutcome::Applied
        }
    }
}

/// The state of `key` to send to the peer (a peek: no counters move).
pub fn export<R>(shared: &Shared, key: &[u8], f: impl FnOnce(Exported<'_>) -> R) -> Option<R> {
    shared.store.export(key, shared.clock.now(), f)
}

/// One step of a resumable walk over every item and tombstone (resync).
pub fn walk(
    shared: &Shared,
    cursor: &mut WalkCursor,
    budget: usize,
    f: impl FnMut(Exported<'_>),
) -> bool {
    shared.store.walk(cursor, budget, shared.clock.now(), f)
}

/// Moves this node's version clock past a version seen from the peer.
pub fn observe_version(shared: &Shared, version: u64) {
    shared.store.observe(version)
}

/// The last version this node handed out or saw.
pub fn current_version(shared: &Shared) -> u64 {
    shared.store.current_version()
}

/// The wall-clock milliseconds inside a (replicated) version.
pub fn version_millis(version: u64) -> u64 {
    crate::storage::version::millis_of(version)
}

/// This node's id in versions (0 when not replicating).
pub fn node_id(shared: &Shared) -> u8 {
    shared.store.node_id().unwrap_or(0)
}

/// Gives this node another id (a derived id equal to the peer's).
pub fn set_node_id(shared: &Shared, n: u8) {
    shared.store.set_node_id(n)
}

/// A node id for a node started without `--node-id`: a hash of where it
/// serves (`-l` addresses, `-p`, `-X`), so the two nodes of a pair differ
/// unless they share addresses and ports (the handshake refuses a clash).
pub fn derived_node_id(config: &Config) -> u8 {
    let mut h: u32 = 0x811c_9dc5;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h = (h ^ x as u32).wrapping_mul(0x0100_0193);
        }
    };
    for a in &config.listen {
        eat(a.to_string().as_bytes());
    }
    eat(&config.port.to_be_bytes());
    eat(&config.replication.port.to_be_bytes());
    1 + ((h ^ (h >> 16)) % 255) as u8
}

/// Delete tombstones kept for replication: (count, bytes, dropped early).
pub fn tombstone_stats(shared: &Shared) -> (u64, u64, u64) {
    shared.store.tombstone_stats()
}
