//! Dual-master replication with one peer (repcached's pair, made correct).
//!
//! - Every client mutation marks its key in the [`outbox::Outbox`] (through
//!   [`exec::Replicator`]); the replication thread ([`node`]) reads the
//!   key's resulting state from the store when it sends it (value, flags,
//!   absolute expiry, version — or a delete tombstone), so records carry
//!   state, not commands.
//! - Every item's version is a hybrid logical clock with the node id in its
//!   low byte, and is its CAS unique; the receiver applies a record only if
//!   it is newer (last writer wins), so both nodes converge whatever the
//!   order records cross in. Deletes leave tombstones; `flush_all` is a
//!   versioned barrier. Evictions and expiry stay local.
//! - The link ([`frame`]): length-prefixed binary frames on the `-X` port,
//!   never the client port; a handshake with node and run ids, and with a
//!   shared secret a challenge-response ([`auth`]) before any data. Both
//!   nodes listen and dial (capped exponential backoff, forever); when both
//!   links form, the one dialled by the lower node id stays.
//! - Sync on every link: a full walk of the store (resumable, one shard
//!   lock at a time, interleaved with live records) when the peer is a new
//!   process or the outbox overflowed, else only the backlog the outbox kept
//!   while the link was down. Records not yet acknowledged when a link
//!   drops go back to the outbox.
//!
//! Layering: this module reaches the store only through `exec`.

pub mod auth;
pub mod frame;
pub mod node;
pub mod outbox;

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::exec::{self, Replicator, Shared};
use outbox::{Outbox, PendingFlush};

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Link states as `repl_state` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LinkState {
    Disconnected = 0,
    Connecting = 1,
    Syncing = 2,
    Linked = 3,
}

impl LinkState {
    fn name(self) -> &'static str {
        match self {
            LinkState::Disconnected => "disconnected",
            LinkState::Connecting => "connecting",
            LinkState::Syncing => "syncing",
            LinkState::Linked => "linked",
        }
    }
    fn from_u8(v: u8) -> LinkState {
        match v {
            1 => LinkState::Connecting,
            2 => LinkState::Syncing,
            3 => LinkState::Linked,
            _ => LinkState::Disconnected,
        }
    }
}

/// Where the initial sync of a starting node stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialSync {
    Waiting,
    Done,
    TimedOut,
}

/// Counters of the link, summed over its life (`stats replication`).
#[derive(Default)]
pub struct Counters {
    pub links_established: AtomicU64,
    pub records_sent: AtomicU64,
    pub records_received: AtomicU64,
    pub records_applied: AtomicU64,
    pub records_older: AtomicU64,
    pub conflicts: AtomicU64,
    pub records_refused: AtomicU64,
    pub refused_by_peer: AtomicU64,
    pub too_large_for_peer: AtomicU64,
    pub resyncs_full: AtomicU64,
    pub resyncs_partial: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    pub malformed_frames: AtomicU64,
    pub auth_failures: AtomicU64,
    pub strangers_refused: AtomicU64,
}

/// Link facts the thread publishes for `stats`.
#[derive(Default)]
pub struct Published {
    pub state: AtomicU8,
    pub peer_node: AtomicU64,
    pub peer_run: AtomicU64,
    pub inflight: AtomicU64,
    pub oldest_inflight_ms: AtomicU64,
    pub sync_in_progress: AtomicBool,
}

/// What the replication thread and the rest of the server share.
pub struct Inner {
    pub shared: Arc<Shared>,
    pub outbox: Outbox,
    pub counters: Counters,
    pub published: Published,
    pub run_id: u64,
    pub peer_desc: String,
    last_error: Mutex<Option<(&'static str, u32)>>,
    gate: Mutex<InitialSync>,
    gate_cv: Condvar,
    pub stop: AtomicBool,
    /// When a graceful stop gives up draining (ms since the epoch).
    pub drain_deadline_ms: AtomicU64,
}

impl Inner {
    /// This node's id in versions.
    pub fn node_id(&self) -> u8 {
        exec::node_id(&self.shared)
    }

    pub fn set_error(&self, code: &'static str) {
        let now = self.shared.clock.now();
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some((code, now));
    }

    pub fn set_state(&self, s: LinkState) {
        self.published.state.store(s as u8, Ordering::Relaxed);
    }

    /// The peer's sync stream ended: a starting node may open its port.
    pub fn initial_sync_done(&self) {
        let mut g = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        if *g != InitialSync::Done {
            *g = InitialSync::Done;
            self.gate_cv.notify_all();
        }
    }

    pub fn initial_sync(&self) -> InitialSync {
        *self.gate.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Replicator for Inner {
    fn mutated(&self, key: &[u8]) {
        self.outbox.push(key, now_ms());
    }

    fn stopping(&self) {
        let limit = self.shared.config.replication.drain_timeout;
        let deadline = now_ms().saturating_add(limit.as_millis() as u64).max(1);
        let _ = self.drain_deadline_ms.compare_exchange(
            0,
            deadline,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    fn flushed(&self, version: u64, at: u32) {
        self.outbox.push_flush(PendingFlush { version, at });
    }

    fn stat_lines(&self, summary: bool) -> Vec<(&'static str, String)> {
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        let p = &self.published;
        let c = &self.counters;
        let state = LinkState::from_u8(p.state.load(Ordering::Relaxed)).name();
        let now = now_ms();
        let inflight = p.inflight.load(Ordering::Relaxed);
        let mut oldest = self.outbox.oldest_ms();
        let oi = p.oldest_inflight_ms.load(Ordering::Relaxed);
        if inflight > 0 && oi != 0 {
            oldest = Some(oldest.map_or(oi, |o| o.min(oi)));
        }
        let lag_ms = oldest.map_or(0, |o| now.saturating_sub(o));
        let lag_records = self.outbox.len() + inflight;
        if summary {
            return vec![
                ("repl_state", state.to_string()),
                ("repl_lag_ms", lag_ms.to_string()),
                ("repl_outbox_items", self.outbox.len().to_string()),
                ("repl_outbox_bytes", self.outbox.bytes().to_string()),
            ];
        }
        let peer_node = p.peer_node.load(Ordering::Relaxed);
        let peer_run = p.peer_run.load(Ordering::Relaxed);
        let (tomb_n, tomb_b, tomb_dropped) = exec::tombstone_stats(&self.shared);
        let (err, err_time) = self
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map_or(("none", 0), |(e, t)| (e, t));
        vec![
            ("repl_state", state.to_string()),
            ("repl_peer", self.peer_desc.clone()),
            ("repl_node_id", self.node_id().to_string()),
            ("repl_peer_node_id", peer_node.to_string()),
            ("repl_run_id", format!("{:016x}", self.run_id)),
            ("repl_peer_run_id", format!("{peer_run:016x}")),
            ("repl_links_established", ld(&c.links_established)),
            (
                "repl_initial_sync",
                match self.initial_sync() {
                    InitialSync::Waiting => "waiting",
                    InitialSync::Done => "done",
                    InitialSync::TimedOut => "timed_out",
                }
                .to_string(),
            ),
            ("repl_outbox_items", self.outbox.len().to_string()),
            ("repl_outbox_bytes", self.outbox.bytes().to_string()),
            ("repl_outbox_overflows", self.outbox.overflows().to_string()),
            ("repl_lag_records", lag_records.to_string()),
            ("repl_lag_ms", lag_ms.to_string()),
            ("repl_records_sent", ld(&c.records_sent)),
            ("repl_records_received", ld(&c.records_received)),
            ("repl_records_applied", ld(&c.records_applied)),
            ("repl_records_older", ld(&c.records_older)),
            ("repl_conflicts", ld(&c.conflicts)),
            ("repl_records_refused", ld(&c.records_refused)),
            ("repl_records_refused_by_peer", ld(&c.refused_by_peer)),
            ("repl_too_large_for_peer", ld(&c.too_large_for_peer)),
            ("repl_resyncs_full", ld(&c.resyncs_full)),
            ("repl_resyncs_partial", ld(&c.resyncs_partial)),
            (
                "repl_sync_in_progress",
                (p.sync_in_progress.load(Ordering::Relaxed) as u8).to_string(),
            ),
            ("repl_bytes_sent", ld(&c.bytes_sent)),
            ("repl_bytes_received", ld(&c.bytes_received)),
            ("repl_malformed_frames", ld(&c.malformed_frames)),
            ("repl_auth_failures", ld(&c.auth_failures)),
            ("repl_strangers_refused", ld(&c.strangers_refused)),
            ("repl_tombstones", tomb_n.to_string()),
            ("repl_tombstone_bytes", tomb_b.to_string()),
            ("repl_tombstones_dropped", tomb_dropped.to_string()),
            ("repl_hlc", exec::current_version(&self.shared).to_string()),
            ("repl_last_error", err.to_string()),
            ("repl_last_error_time", err_time.to_string()),
        ]
    }
}

/// The running replication thread.
pub struct Replication {
    inner: Arc<Inner>,
    waker: Arc<mio::Waker>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How waiting for the initial sync ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncWait {
    Done,
    TimedOut,
    Aborted,
}

/// Binds the replication listeners (`-X` on every `-l` address). Done
/// early, with the client listeners, so a busy port fails the start.
pub fn bind(shared: &Shared) -> std::io::Result<Vec<TcpListener>> {
    let mut out = Vec::new();
    for addr in shared.config.replication_listen_addrs() {
        let l = crate::net::bind_tcp(addr, Some(128)).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot listen for the peer on {addr}: {e}"),
            )
        })?;
        out.push(l);
    }
    Ok(out)
}

impl Replication {
    /// Starts the replication thread and hooks it into exec.
    pub fn start(shared: Arc<Shared>, listeners: Vec<TcpListener>) -> Result<Replication, String> {
        let cfg = shared.config.replication.clone();
        let peer = cfg
            .peer
            .clone()
            .ok_or_else(|| "replication needs a peer (-x)".to_string())?;
        let secret = match &cfg.secret_file {
            Some(p) => Some(auth::load_secret(p)?),
            None => None,
        };
        // (Without a secret, config has already warned that only the
        // peer's address is checked.)
        let node_id = exec::node_id(&shared);
        let inner = Arc::new(Inner {
            outbox: Outbox::new(cfg.outbox_items, cfg.outbox_bytes),
            counters: Counters::default(),
            published: Published::default(),
            run_id: auth::random_u64() | 1,
            peer_desc: peer.to_string(),
            last_error: Mutex::new(None),
            gate: Mutex::new(if cfg.sync_timeout.is_zero() {
                InitialSync::TimedOut
            } else {
                InitialSync::Waiting
            }),
            gate_cv: Condvar::new(),
            stop: AtomicBool::new(false),
            drain_deadline_ms: AtomicU64::new(0),
            shared: Arc::clone(&shared),
        });
        let node = node::Node::new(Arc::clone(&inner), listeners, secret)
            .map_err(|e| format!("replication: {e}"))?;
        let waker = node.waker();
        let w = Arc::clone(&waker);
        inner.outbox.set_waker(Box::new(move || {
            let _ = w.wake();
        }));
        let thread = std::thread::Builder::new()
            .name("tc-replication".into())
            .spawn(move || node.run())
            .map_err(|e| format!("replication thread: {e}"))?;
        let hook: Arc<dyn Replicator> = inner.clone();
        let _ = shared.replicator.set(hook);
        tracing::info!(
            "replication: node id {node_id}, peer {}, listening on port {}",
            inner.peer_desc,
            cfg.port
        );
        Ok(Replication {
            inner,
            waker,
            thread: Some(thread),
        })
    }

    /// Waits until the peer's sync stream has ended, `timeout` passed, or
    /// `abort()` says to stop waiting (checked every 100 ms).
    pub fn wait_initial_sync(&self, timeout: Duration, abort: impl Fn() -> bool) -> SyncWait {
        let deadline = Instant::now() + timeout;
        let mut g = self.inner.gate.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match *g {
                InitialSync::Done => return SyncWait::Done,
                InitialSync::TimedOut => return SyncWait::TimedOut,
                InitialSync::Waiting => {}
            }
            if abort() {
                return SyncWait::Aborted;
            }
            let now = Instant::now();
            if now >= deadline {
                *g = InitialSync::TimedOut;
                return SyncWait::TimedOut;
            }
            let step = (deadline - now).min(Duration::from_millis(100));
            g = self
                .inner
                .gate_cv
                .wait_timeout(g, step)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Records not yet acknowledged by the peer (outbox + in flight).
    pub fn pending(&self) -> u64 {
        self.inner.outbox.len() + self.inner.published.inflight.load(Ordering::Relaxed)
    }

    /// Stops the thread after it has sent and had acknowledged everything
    /// pending, or after `drain` at most. Returns what was left.
    pub fn shutdown(mut self, drain: Duration) -> u64 {
        // The drain time runs from the start of the stop (see `stopping`),
        // never later than `drain` from now.
        let by = now_ms().saturating_add(drain.as_millis() as u64).max(1);
        let _ =
            self.inner
                .drain_deadline_ms
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| {
                    Some(if d == 0 { by } else { d.min(by) })
                });
        self.inner.stop.store(true, Ordering::Release);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.pending()
    }
}
