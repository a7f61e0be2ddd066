//! The replication thread: listens and dials, runs the handshake, streams
//! records both ways, and resyncs on every new link.
//!
//! One mio `Poll` owns the `-X` listeners and every peer connection (at
//! most one is *the* link; others are handshaking or about to be closed).
//! Each connection has bounded buffers: reading stops being a cost once
//! frames are applied, and sending produces records only while the send
//! buffer is below a high-water mark and the peer has not fallen more than
//! a window of records behind in its acknowledgements.
//!
//! The thread's work is split by job, each an `impl Node` block of its own:
//!
//! - this file: the [`Node`], its event loop ([`Node::run`]), the dispatch
//!   of a connection's readiness, the graceful stop, and the link state
//!   published to `stats`;
//! - `link`: one connection's state and its send buffer;
//! - `conn`: accepting, admitting, dialling and closing connections;
//! - `handshake`: hellos, proofs, probes, and a connection becoming the
//!   link;
//! - `receive`: reading and handling what the peer sends;
//! - `send`: syncs, the pump that produces records, acknowledgements;
//! - `housekeeping`: deadlines, timeouts, heartbeats and redials.

mod conn;
mod handshake;
mod housekeeping;
mod link;
mod receive;
mod send;

use std::io;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

use super::auth::Secret;
use super::frame::{self, Frame};
use super::{now_ms, Inner, LinkState};
use crate::config::ReplicationConfig;
use crate::exec;
use link::{flush_tx, Link, Phase};

const WAKER: Token = Token(usize::MAX);
const LISTENER_BASE: usize = usize::MAX - 64;
/// Event-loop tick: heartbeats, deadlines and redials are checked this often.
const TICK: Duration = Duration::from_millis(20);
/// A connection must finish its handshake within this time.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(2);
/// Incoming connections in their handshake at once, per class (from the
/// peer's address / from elsewhere).
const HANDSHAKE_SLOTS: usize = 8;
/// Records are produced while less than this is waiting to be written.
const TX_HIGH_WATER: usize = 1 << 20;
/// A peer that lets this much pile up unread is dropped.
const TX_HARD_LIMIT: usize = 64 << 20;
/// Records sent and not yet acknowledged before sending pauses, and the
/// bytes of keys they may hold (the in-flight list is part of the stated
/// overhead: at most 8 MiB of keys plus 32 bytes a record).
const WINDOW: usize = 256 * 1024;
const WINDOW_KEY_BYTES: usize = 8 << 20;
/// Keys taken from the outbox per step.
const OUTBOX_BATCH: usize = 256;
/// Hash buckets a resync walk step covers (one shard lock at a time).
const WALK_BUDGET: usize = 64;
/// Bytes read per `read` call.
const READ_CHUNK: usize = 256 * 1024;
/// Bytes handled per connection per turn of the loop, so that heartbeats,
/// acknowledgements and sending go on while a sync streams in.
const READ_BUDGET: usize = 4 << 20;
/// Records received between two acknowledgements while reading.
const ACK_EVERY: u64 = 4096;
/// Otherwise at most one acknowledgement per this delay.
const ACK_DELAY: Duration = Duration::from_millis(5);
/// While writes flow fast (a pump found at least BATCH_MIN_KEYS keys),
/// how long records may wait to be batched.
const BATCH_WAIT: Duration = Duration::from_millis(1);
const BATCH_MIN_KEYS: usize = 4;
/// A link dialled by the higher node id starts its sync this late: if the
/// other node's dial was in flight at the same instant, that link (the
/// one the duplicate rule keeps) replaces this one before any of a
/// second sync is spent on it.
const SYNC_SETTLE: Duration = Duration::from_millis(25);
/// First redial delay.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// A link up at least this long resets the redial backoff when it drops.
const STABLE_LINK: Duration = Duration::from_secs(1);

/// Why a connection is being closed: (error code for stats, log detail).
type CloseReason = (&'static str, String);

pub struct Node {
    inner: Arc<Inner>,
    cfg: ReplicationConfig,
    poll: Poll,
    waker: Arc<Waker>,
    listeners: Vec<TcpListener>,
    conns: slab::Slab<Link>,
    active: Option<usize>,
    dialing: Option<usize>,
    next_dial: Instant,
    backoff: Duration,
    secret: Option<Secret>,
    peer_ips: Vec<IpAddr>,
    /// The peer run our last acknowledged full sync went to.
    synced_run: Option<u64>,
    /// The run of the process our own dial to `-x` last reached: the
    /// peer's identity. Once known, a link offered by any other process
    /// (a node of another pair sharing the secret, a second instance on
    /// the peer's host) is refused instead of replacing the peer.
    peer_run_at_x: Option<u64>,
    /// The last run refused as not the peer (its message is logged once).
    refused_run: Option<u64>,
    /// A run refused while we were not linked with the peer (node, run,
    /// address): perhaps the peer restarted. Warned about only if the next
    /// process reached at `-x` turns out to be another run.
    suspect: Option<(u8, u64, std::net::SocketAddr)>,
    pop_cursor: usize,
    scratch: Vec<Arc<[u8]>>,
    /// The last pump stopped with records left to send and a writable
    /// socket: turn the loop again without waiting.
    send_more: bool,
    /// The last pump sent live records: poll again after `BATCH_WAIT`
    /// instead of arming the outbox's wake-up.
    poll_soon: bool,
    /// Handshakes that met our own node id.
    id_clashes: u32,
    /// Largest frame accepted from the peer (our -I plus headers).
    max_frame: usize,
}

impl Node {
    pub fn new(
        inner: Arc<Inner>,
        listeners: Vec<std::net::TcpListener>,
        secret: Option<Secret>,
    ) -> io::Result<Node> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let mut ls = Vec::new();
        for (i, l) in listeners.into_iter().enumerate() {
            l.set_nonblocking(true)?;
            let mut l = TcpListener::from_std(l);
            poll.registry()
                .register(&mut l, Token(LISTENER_BASE + i), Interest::READABLE)?;
            ls.push(l);
        }
        let cfg = inner.shared.config.replication.clone();
        let max_frame = inner.shared.config.item_size_max + frame::MAX_RECORD_OVERHEAD;
        let mut node = Node {
            inner,
            cfg,
            poll,
            waker,
            listeners: ls,
            conns: slab::Slab::new(),
            active: None,
            dialing: None,
            next_dial: Instant::now(),
            backoff: BACKOFF_MIN,
            secret,
            peer_ips: Vec::new(),
            synced_run: None,
            peer_run_at_x: None,
            refused_run: None,
            suspect: None,
            pop_cursor: 0,
            scratch: Vec::new(),
            send_more: false,
            id_clashes: 0,
            poll_soon: false,
            max_frame,
        };
        node.resolve_peer();
        Ok(node)
    }

    pub fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
    }

    fn shared(&self) -> &exec::Shared {
        &self.inner.shared
    }

    pub fn run(mut self) {
        let mut events = Events::with_capacity(256);
        self.inner.set_state(LinkState::Disconnected);
        loop {
            let busy = self.send_more || self.conns.iter().any(|(_, l)| l.more);
            let ack_pending = self
                .conns
                .iter()
                .any(|(_, l)| l.phase == Phase::Linked && l.received > l.ack_sent);
            let wait = if busy {
                Duration::ZERO
            } else if self.poll_soon {
                BATCH_WAIT
            } else if ack_pending {
                ACK_DELAY
            } else {
                TICK
            };
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!("replication poll failed: {e}");
                    break;
                }
            }
            let tokens: Vec<(Token, bool, bool)> = events
                .iter()
                .map(|e| {
                    (
                        e.token(),
                        e.is_readable() || e.is_read_closed() || e.is_error(),
                        e.is_writable(),
                    )
                })
                .collect();
            for (token, readable, writable) in tokens {
                match token {
                    WAKER => {}
                    Token(t) if t >= LISTENER_BASE => self.accept(t - LISTENER_BASE),
                    Token(t) => self.conn_event(t, readable, writable),
                }
            }
            let unfinished: Vec<usize> = self
                .conns
                .iter()
                .filter(|(_, l)| l.more)
                .map(|(k, _)| k)
                .collect();
            for t in unfinished {
                self.conn_event(t, true, false);
            }
            self.housekeeping();
            self.pump();
            if self.inner.stop.load(Ordering::Acquire) && self.drained_or_late() {
                break;
            }
        }
        // Leave cleanly: the peer sees the link end at once.
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for k in keys {
            if let Some(l) = self.conns.get_mut(k) {
                if l.phase == Phase::Linked {
                    l.send(&Frame::Goodbye {
                        reason: b"shutting down",
                    });
                    let _ = flush_tx(l, &self.inner);
                }
            }
            self.close(k, ("shutdown", "shutting down".into()));
        }
        self.inner.set_state(LinkState::Disconnected);
    }

    /// During a graceful stop: true once everything was sent and
    /// acknowledged, or the drain time is up. With records pending and no
    /// link, the node keeps dialling the peer until then.
    fn drained_or_late(&self) -> bool {
        if now_ms() >= self.inner.drain_deadline_ms.load(Ordering::Acquire) {
            return true;
        }
        let Some(l) = self.active.and_then(|a| self.conns.get(a)) else {
            return self.inner.outbox.is_empty() && !self.inner.outbox.overflowed();
        };
        l.phase == Phase::Linked
            && self.inner.outbox.is_empty()
            && l.inflight.is_empty()
            && l.walk.is_none()
            && l.sync_due.is_none()
            && l.pending_tx() == 0
    }

    fn conn_event(&mut self, t: usize, readable: bool, writable: bool) {
        let Some(l) = self.conns.get_mut(t) else {
            return;
        };
        if l.phase == Phase::Connecting && (writable || readable) {
            match l.sock.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => {
                    self.close(t, ("connect_failed", format!("connect: {e}")));
                    return;
                }
            }
            match l.sock.peer_addr() {
                Ok(_) => {
                    l.phase = Phase::Handshake;
                    self.send_hello(t);
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => {
                    self.close(t, ("connect_failed", format!("connect: {e}")));
                    return;
                }
            }
        }
        if writable {
            if let Some(l) = self.conns.get_mut(t) {
                l.blocked = false;
            }
        }
        if readable {
            if let Err(reason) = self.read(t) {
                self.close(t, reason);
                return;
            }
        }
        if let Some(l) = self.conns.get_mut(t) {
            if let Err(e) = flush_tx(l, &self.inner) {
                self.close(t, ("io_error", format!("write: {e}")));
                return;
            }
        }
        self.sync_interest(t);
    }

    /// Asks for WRITABLE events only while they mean something.
    fn sync_interest(&mut self, t: usize) {
        let Some(l) = self.conns.get_mut(t) else {
            return;
        };
        let want = l.phase == Phase::Connecting || l.pending_tx() > 0;
        if want != l.writable_interest {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .poll
                .registry()
                .reregister(&mut l.sock, Token(t), interest)
                .is_ok()
            {
                l.writable_interest = want;
            }
        }
    }

    fn publish_state(&self) {
        let p = &self.inner.published;
        match self.active.and_then(|a| self.conns.get(a)) {
            Some(l) => {
                let syncing = l.walk.is_some() || l.peer_syncing || l.sync_due.is_some();
                p.sync_in_progress.store(syncing, Ordering::Relaxed);
                self.inner.set_state(if syncing {
                    LinkState::Syncing
                } else {
                    LinkState::Linked
                });
                p.inflight.store(l.inflight.len() as u64, Ordering::Relaxed);
                p.oldest_inflight_ms
                    .store(l.inflight.front().map_or(0, |e| e.1), Ordering::Relaxed);
            }
            None => {
                p.sync_in_progress.store(false, Ordering::Relaxed);
                p.inflight.store(0, Ordering::Relaxed);
            }
        }
    }
}
