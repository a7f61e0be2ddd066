//! The network layer: one acceptor thread and `-t` worker threads, each
//! worker with its own `mio::Poll` and a `slab::Slab` of connections.
//!
//! - `bind` creates the listeners (before privileges are dropped).
//! - `serve` starts the acceptor (`acceptor.rs`), the workers
//!   (`worker.rs`), the store's maintenance thread (`maintenance.rs`) and a
//!   signal thread (`signals.rs`), then waits for them. A stop comes
//!   from SIGTERM/SIGINT or from the `shutdown` command; either way the
//!   acceptor closes the listeners and each worker finishes the requests it
//!   has already read, flushes the replies (for a bounded time) and exits.

mod acceptor;
mod connection;
mod listener;
mod maintenance;
mod registry;
mod signals;
mod worker;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mio::{Poll, Token, Waker};

use crate::exec::{Replicator, Shared};
use listener::Listener;

/// How the server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// SIGTERM/SIGINT or `shutdown`.
    Normal,
}

/// The bound listening sockets (TCP and/or Unix), created before privileges
/// are dropped.
pub struct Listeners {
    list: Vec<Listener>,
}

impl Listeners {
    /// The bound TCP addresses (with the real port when `0` was asked for).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.list.iter().filter_map(Listener::local_addr).collect()
    }

    /// Opens listeners bound by [`bind_closed`]: clients can connect from
    /// here on.
    pub fn open(&self, backlog: i32) -> io::Result<()> {
        for l in &self.list {
            l.listen(backlog)?;
        }
        Ok(())
    }
}

/// Token of the `Waker` in every poll of this module.
pub(crate) const WAKER: Token = Token(usize::MAX);

/// Stop and wake-up signalling between the server threads.
pub(crate) struct Control {
    stopping: AtomicBool,
    acceptor: Waker,
    workers: Vec<Arc<Waker>>,
    /// The acceptor stopped accepting at `-c` (without `maxconns_fast`)
    /// and waits for a connection to close.
    accept_paused: AtomicBool,
    /// A thread stopped the server because of an error (or a panic).
    failed: AtomicBool,
    /// Told when the stop begins, so its drain runs alongside ours.
    replicator: Option<Arc<dyn Replicator>>,
}

impl Control {
    /// Asks every thread to stop (idempotent).
    pub(crate) fn stop(&self) {
        if !self.stopping.swap(true, Ordering::SeqCst) {
            crate::notify::stopping("stopping: finishing in-flight requests");
            if let Some(r) = &self.replicator {
                r.stopping();
            }
            let _ = self.acceptor.wake();
            for w in &self.workers {
                let _ = w.wake();
            }
        }
    }

    /// Stops the server because of an error: `serve` then returns one.
    pub(crate) fn fail(&self) {
        self.failed.store(true, Ordering::SeqCst);
        self.stop();
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// A worker closed a connection: wake the acceptor if it waits for one.
    pub(crate) fn conn_closed(&self) {
        if self.accept_paused.load(Ordering::SeqCst) {
            let _ = self.acceptor.wake();
        }
    }
}

/// Stops the whole server if the thread it lives in panics, so that a bug
/// in one worker is noticed instead of leaving its clients hanging.
struct StopOnPanic(Arc<Control>);

impl Drop for StopOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.fail();
        }
    }
}

/// Binds every listener the config asks for (`-l`/`-p`, or `-s`).
pub fn bind(shared: &Shared) -> io::Result<Listeners> {
    bind_with(shared, Some(shared.config.backlog))
}

/// Binds the listeners without listening yet: connections are refused
/// until [`Listeners::open`] (a node waiting for its initial sync).
pub fn bind_closed(shared: &Shared) -> io::Result<Listeners> {
    bind_with(shared, None)
}

fn bind_with(shared: &Shared, backlog: Option<i32>) -> io::Result<Listeners> {
    let cfg = &shared.config;
    raise_fd_limit(cfg.max_connections);
    let mut list = Vec::new();
    if let Some(path) = &cfg.unix_socket {
        list.push(listener::bind_unix(path, cfg.unix_mask, backlog)?);
    } else {
        for addr in &cfg.listen {
            let l = listener::bind_tcp(*addr, backlog)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
            list.push(l);
        }
    }
    if list.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "nothing to listen on (no -l/-p address and no -s socket)",
        ));
    }
    Ok(Listeners { list })
}

/// memcached raises the open-file limit to fit `-c`; so do we, as far as
/// the hard limit allows (best effort: `-c` is enforced by counting).
fn raise_fd_limit(max_connections: usize) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let want = (max_connections as u64).saturating_add(64);
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < want {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, want.min(hard), hard);
        }
    }
}

/// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread and in every
/// thread it starts from now on, so that only `serve`'s signal thread
/// receives them.
/// `serve` does this itself; a program that starts other threads before
/// `serve` (they would otherwise take the default action, killing the
/// process) should call it first thing.
pub fn block_stop_signals() -> io::Result<()> {
    signals::block()
}

pub use signals::watch_stop_signals;

/// Starts the acceptor and worker threads, handles SIGTERM/SIGINT/SIGHUP, and
/// serves until shutdown.
pub fn serve(shared: Arc<Shared>, listeners: Listeners) -> io::Result<Exit> {
    signals::block()?;
    let nworkers = shared.workers.len();

    let acceptor_poll = Poll::new()?;
    let acceptor_waker = Waker::new(acceptor_poll.registry(), WAKER)?;
    let mut worker_polls = Vec::with_capacity(nworkers);
    let mut worker_wakers = Vec::with_capacity(nworkers);
    for _ in 0..nworkers {
        let p = Poll::new()?;
        worker_wakers.push(Arc::new(Waker::new(p.registry(), WAKER)?));
        worker_polls.push(p);
    }
    let control = Arc::new(Control {
        stopping: AtomicBool::new(false),
        acceptor: acceptor_waker,
        workers: worker_wakers,
        accept_paused: AtomicBool::new(false),
        failed: AtomicBool::new(false),
        replicator: shared.replicator.get().cloned(),
    });

    let now = shared.clock.now();
    let registry = Arc::new(registry::ConnRegistry::new(
        listeners
            .list
            .iter()
            .map(|l| (l.fd(), l.describe()))
            .collect(),
        nworkers,
        now,
    ));
    // memcached counts its listening connections in these two.
    let nlisteners = listeners.list.len() as u64;
    shared
        .conns
        .total_connections
        .fetch_add(nlisteners, Ordering::Relaxed);
    shared
        .conns
        .connection_structures
        .fetch_max(nlisteners, Ordering::Relaxed);
    shared.accepting.store(true, Ordering::Relaxed);

    let mut senders = Vec::with_capacity(nworkers);
    let mut threads = Vec::with_capacity(nworkers + 1);
    let mut spawn_error = None;
    for (i, poll) in worker_polls.into_iter().enumerate() {
        let (tx, rx) = crossbeam_channel::unbounded();
        senders.push(tx);
        let w = worker::Worker::new(
            i,
            poll,
            rx,
            Arc::clone(&shared),
            Arc::clone(&control),
            Arc::clone(&registry),
        );
        let c = Arc::clone(&control);
        match std::thread::Builder::new()
            .name(format!("tc-worker-{i}"))
            .spawn(move || {
                let _guard = StopOnPanic(Arc::clone(&c));
                w.run();
            }) {
            Ok(h) => threads.push(h),
            Err(e) => {
                spawn_error = Some(e);
                break;
            }
        }
    }
    if spawn_error.is_none() {
        let a = acceptor::Acceptor::new(
            acceptor_poll,
            listeners.list,
            senders,
            Arc::clone(&shared),
            Arc::clone(&control),
        );
        let c = Arc::clone(&control);
        match std::thread::Builder::new()
            .name("tc-acceptor".into())
            .spawn(move || {
                let _guard = StopOnPanic(Arc::clone(&c));
                a.run();
            }) {
            Ok(h) => threads.push(h),
            Err(e) => spawn_error = Some(e),
        }
    }
    let sig = match spawn_error {
        None => match signals::SignalThread::spawn(Arc::clone(&control)) {
            Ok(s) => Some(s),
            Err(e) => {
                spawn_error = Some(e);
                None
            }
        },
        Some(_) => None,
    };
    let maint = match spawn_error {
        // Always: besides the crawler (which `lru_crawler disable` and
        // `-o no_lru_crawler` turn off inside exec::maintain) it runs the
        // page mover and gives pages back after `cache_memlimit` shrinks.
        None => match maintenance::Maintenance::spawn(Arc::clone(&shared), Arc::clone(&control)) {
            Ok(m) => Some(m),
            Err(e) => {
                spawn_error = Some(e);
                None
            }
        },
        _ => None,
    };
    if spawn_error.is_some() {
        control.stop();
    }

    let mut panicked = false;
    for t in threads {
        panicked |= t.join().is_err();
    }
    control.stop();
    if let Some(m) = maint {
        panicked |= !m.finish();
    }
    if let Some(s) = sig {
        s.finish();
    }
    shared.accepting.store(false, Ordering::Relaxed);
    if let Some(e) = spawn_error {
        return Err(e);
    }
    if panicked || control.failed.load(Ordering::SeqCst) {
        return Err(io::Error::other(
            "a server thread failed (see the log); the server stopped",
        ));
    }
    Ok(Exit::Normal)
}
