//! The network layer: one acceptor thread and `-t` worker threads, each
//! worker with its own `mio::Poll` and a `slab::Slab` of connections.

use std::sync::Arc;

use crate::exec::Shared;

/// How the server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// SIGTERM/SIGINT or `shutdown`.
    Normal,
}

/// Binds the listeners, starts the threads and serves until shutdown.
pub fn run(shared: Arc<Shared>) -> std::io::Result<Exit> {
    let _ = shared;
    Err(std::io::Error::other("server not built yet"))
}
