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

/// The bound listening sockets (TCP and/or Unix), created before privileges
/// are dropped.
pub struct Listeners {
    _private: (),
}

/// Binds every listener the config asks for (`-l`/`-p`, or `-s`).
pub fn bind(shared: &Shared) -> std::io::Result<Listeners> {
    let _ = shared;
    Err(std::io::Error::other("server not built yet"))
}

/// Starts the acceptor and worker threads, handles SIGTERM/SIGINT, and
/// serves until shutdown.
pub fn serve(shared: Arc<Shared>, listeners: Listeners) -> std::io::Result<Exit> {
    let _ = (shared, listeners);
    Err(std::io::Error::other("server not built yet"))
}
