//! twincache: a memcached-compatible cache server with repcached-style
//! dual-master replication.
//!
//! Layers (arrows point down only; `tests/layering.rs` guards the rule):
//!
//! ```text
//! main.rs      flags -> Config, logging, run; exit codes
//! server/      mio: acceptor, worker loops, Connection (client sockets)
//! replication/ peer link (own thread, own Poll), outbox, resync; via exec
//! exec/        the one entry point for every read and mutation
//! protocol/    bytes <-> Command / reply text; no I/O, no clock, no store
//! storage/     items, memory limit, LRU, hash index; no protocol
//! config, clock, stats, net   leaves (net: listener set-up for server/ and replication/)
//! ```

pub mod clock;
pub mod config;
pub mod exec;
pub mod net;
pub mod notify;
pub mod process;
pub mod protocol;
pub mod replication;
pub mod server;
pub mod stats;
pub mod storage;

/// The memcached protocol level twincache answers to `version` with.
pub const MEMCACHED_VERSION: &str = "1.6.18";
/// twincache's own version (the `twincache_version` stat, `-V`).
pub const TWINCACHE_VERSION: &str = env!("CARGO_PKG_VERSION");
