//! The replication thread: listens and dials, runs the handshake, streams
//! records both ways, and resyncs on every new link.
//!
//! One mio `Poll` owns the `-X` listeners and every peer connection (at
//! most one is *the* link; others are handshaking or about to be closed).
//! Each connection has bounded buffers: reading stops being a cost once
//! frames are applied, and sending produces records only while the send
//! buffer is below a high-water mark and the peer has not fallen more than
//! a window of records behind in its acknowledgements.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use super::auth::{self, Secret};
use super::frame::{self, Decoded, Frame};
use super::outbox::PendingFlush;
use super::{now_ms, Inner, LinkState};
use crate::config::ReplicationConfig;
use crate::exec::{self, ApplyOutcome, Exported, PeerRecord, WalkCursor};

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
/// First redial delay.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// A link up at least this long resets the redial backoff when it drops.
const STABLE_LINK: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Outgoing connect not finished yet.
    Connecting,
    Handshake,
    Linked,
}

#[derive(Debug, Clone, Copy)]
struct PeerHello {
    node: u8,
    run: u64,
    nonce: [u8; 16],
    /// The peer's clock, observed only once the link is established (an
    /// unauthenticated Hello must not move our clock).
    hlc: u64,
    item_size_max: u32,
    /// The dialer only checks who answers (see `Frame::Hello`).
    probe: bool,
}

/// What a sent record was, so an unacknowledged one can be sent again.
enum Inflight {
    Key(Box<[u8]>),
    Flush(PendingFlush),
    /// Part of a resync walk (a new walk covers it again).
    Walk,
    /// The end of a full sync to the peer run given.
    SyncEnd(u64),
    /// SyncBegin, a partial SyncEnd.
    Marker,
}

struct Link {
    sock: TcpStream,
    addr: SocketAddr,
    outgoing: bool,
    /// An outgoing connection that only checks which process answers at
    /// `-x` (while a link the peer offered is up): closed after the
    /// handshake, never a link.
    probe: bool,
    phase: Phase,
    rx: Vec<u8>,
    tx: Vec<u8>,
    tx_off: usize,
    opened: Instant,
    last_rx: Instant,
    last_ping: Instant,
    ping_seq: u64,
    nonce: [u8; 16],
    peer: Option<PeerHello>,
    /// Records sent / acknowledged by the peer.
    sent: u64,
    acked: u64,
    inflight: VecDeque<(Inflight, u64)>,
    /// Bytes of the keys held in `inflight`.
    inflight_bytes: usize,
    walk: Option<WalkCursor>,
    /// Records received and processed (what we acknowledge).
    received: u64,
    ack_sent: u64,
    last_ack: Instant,
    /// The peer is streaming its full sync to us.
    peer_syncing: bool,
    /// A write hit WouldBlock: wait for WRITABLE.
    blocked: bool,
    /// Reading stopped at its budget with bytes left in the socket: read
    /// again on the next turn of the loop (no new event will say so).
    more: bool,
    /// Registered for WRITABLE too: only while connecting or while bytes
    /// wait to be written (otherwise every TCP ack of the peer would wake
    /// the thread).
    writable_interest: bool,
}

impl Link {
    fn new(sock: TcpStream, addr: SocketAddr, outgoing: bool, now: Instant) -> Link {
        Link {
            sock,
            addr,
            outgoing,
            probe: false,
            phase: if outgoing {
                Phase::Connecting
            } else {
                Phase::Handshake
            },
            rx: Vec::new(),
            tx: Vec::new(),
            tx_off: 0,
            opened: now,
            last_rx: now,
            last_ping: now,
            ping_seq: 0,
            nonce: auth::nonce(),
            peer: None,
            sent: 0,
            acked: 0,
            inflight: VecDeque::new(),
            inflight_bytes: 0,
            walk: None,
            received: 0,
            ack_sent: 0,
            last_ack: now,
            peer_syncing: false,
            blocked: false,
            more: false,
            writable_interest: true,
        }
    }

    /// Sends the cumulative acknowledgement if records wait for one and
    /// either ACK_EVERY of them came in or the last ack went out ACK_DELAY
    /// ago (housekeeping sends a pending one later): each ack wakes the
    /// peer's replication thread, so they are spaced out.
    fn ack_if_due(&mut self, now: Instant) {
        if self.phase == Phase::Linked
            && self.received > self.ack_sent
            && (self.received >= self.ack_sent + ACK_EVERY
                || now.duration_since(self.last_ack) >= ACK_DELAY)
        {
            self.ack_sent = self.received;
            self.last_ack = now;
            let records = self.received;
            self.send(&Frame::Ack { records });
        }
    }

    fn window_full(&self) -> bool {
        self.inflight.len() >= WINDOW || self.inflight_bytes >= WINDOW_KEY_BYTES
    }

    fn pending_tx(&self) -> usize {
        self.tx.len() - self.tx_off
    }

    fn send(&mut self, f: &Frame<'_>) {
        frame::encode(f, &mut self.tx);
    }

    /// Node id of the side that dialled this connection.
    fn dialer(&self, me: u8) -> u8 {
        if self.outgoing {
            me
        } else {
            self.peer.map_or(0, |p| p.node)
        }
    }
}

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
    /// The last run refused as not the peer (its warning is logged once).
    refused_run: Option<u64>,
    pop_cursor: usize,
    scratch: Vec<Box<[u8]>>,
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

    fn resolve_peer(&mut self) -> Vec<SocketAddr> {
        let Some(p) = &self.cfg.peer else {
            return Vec::new();
        };
        let addrs: Vec<SocketAddr> = (p.host.as_str(), p.port)
            .to_socket_addrs()
            .map(|a| a.collect())
            .unwrap_or_default();
        if !addrs.is_empty() {
            self.peer_ips = addrs.iter().map(|a| a.ip()).collect();
        }
        addrs
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

    /// A link is up with the process our own dial to `-x` reached.
    fn active_is_the_peer(&self) -> bool {
        self.active
            .and_then(|a| self.conns.get(a))
            .and_then(|l| l.peer)
            .is_some_and(|p| self.peer_run_at_x == Some(p.run))
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
            && l.pending_tx() == 0
    }

    // ----- connections -----

    fn accept(&mut self, i: usize) {
        loop {
            let Some(listener) = self.listeners.get(i) else {
                return;
            };
            match listener.accept() {
                Ok((sock, addr)) => self.admit(sock, addr),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!("replication accept failed: {e}");
                    return;
                }
            }
        }
    }

    fn admit(&mut self, sock: TcpStream, addr: SocketAddr) {
        let c = &self.inner.counters;
        // Without a secret the peer's address is the only check: anyone
        // else is dropped before a byte is sent.
        if self.secret.is_none() && !self.peer_ips.contains(&addr.ip()) {
            let n = c.strangers_refused.fetch_add(1, Ordering::Relaxed);
            if n == 0 {
                tracing::warn!(
                    "replication: refused a connection from {addr} (not the peer {})",
                    self.inner.peer_desc
                );
            } else {
                tracing::debug!("replication: refused a connection from {addr}");
            }
            return;
        }
        // At most a handful of incoming handshakes at once: a flood is
        // dropped. Connections from the peer's address have slots of their
        // own, so (with a secret, when any address is admitted) strangers
        // holding every slot cannot keep the peer from linking.
        let from_peer = self.peer_ips.contains(&addr.ip());
        let pending = self
            .conns
            .iter()
            .filter(|(_, l)| {
                !l.outgoing
                    && l.phase == Phase::Handshake
                    && self.peer_ips.contains(&l.addr.ip()) == from_peer
            })
            .count();
        if pending >= HANDSHAKE_SLOTS {
            c.strangers_refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Some(t) = self.add_conn(sock, addr, false) else {
            return;
        };
        tracing::debug!("replication: connection from {addr}");
        self.send_hello(t);
    }

    /// Registers a new peer connection (readable, and writable until its
    /// first flush says otherwise); its token, or None if it could not be.
    fn add_conn(&mut self, sock: TcpStream, addr: SocketAddr, outgoing: bool) -> Option<usize> {
        let _ = sock.set_nodelay(true);
        let entry = self.conns.vacant_entry();
        let t = entry.key();
        let mut link = Link::new(sock, addr, outgoing, Instant::now());
        self.poll
            .registry()
            .register(
                &mut link.sock,
                Token(t),
                Interest::READABLE | Interest::WRITABLE,
            )
            .ok()?;
        entry.insert(link);
        Some(t)
    }

    fn dial(&mut self) {
        let addrs = self.resolve_peer();
        let Some(&addr) = addrs.first() else {
            if self.active.is_none() {
                self.inner.set_error("resolve_failed");
            }
            tracing::warn!(
                "replication: cannot resolve the peer {}",
                self.inner.peer_desc
            );
            self.retry_later();
            return;
        };
        match connect_from(self.source_ip(addr), addr) {
            Ok(sock) => {
                if let Some(t) = self.add_conn(sock, addr, true) {
                    self.dialing = Some(t);
                    // With a link up, the dial only checks who answers.
                    self.conns[t].probe = self.active.is_some();
                    if self.active.is_none() {
                        self.inner.set_state(LinkState::Connecting);
                    }
                } else {
                    self.retry_later();
                }
            }
            Err(e) => {
                tracing::debug!("replication: connect to {addr} failed: {e}");
                if self.active.is_none() {
                    self.inner.set_error("connect_failed");
                }
                self.retry_later();
            }
        }
    }

    /// The address our peer connections come from: the node's own `-l`
    /// address when it names one of the peer's family, so that the peer
    /// (which accepts only our address) recognises us. None: the system's
    /// choice (listening on every address).
    fn source_ip(&self, peer: SocketAddr) -> Option<IpAddr> {
        self.inner
            .shared
            .config
            .replication_listen_addrs()
            .iter()
            .map(|a| a.ip())
            .find(|ip| !ip.is_unspecified() && ip.is_ipv4() == peer.is_ipv4())
    }

    fn retry_later(&mut self) {
        // Jitter keeps two nodes that failed together from redialling in
        // lock step.
        let jitter = (auth::random_u64() % 1000) as f64 / 4000.0;
        self.next_dial = Instant::now() + self.backoff.mul_f64(1.0 + jitter);
        self.backoff = (self.backoff * 2).min(self.cfg.backoff_max.max(BACKOFF_MIN));
    }

    fn send_hello(&mut self, t: usize) {
        let hlc = exec::current_version(self.shared());
        let item_size_max = self.shared().config.item_size_max as u32;
        let memory_limit = self.shared().config.memory_limit_bytes();
        let (node, run, wants_auth) = (
            self.inner.node_id(),
            self.inner.run_id,
            self.secret.is_some(),
        );
        if let Some(l) = self.conns.get_mut(t) {
            let nonce = l.nonce;
            let probe = l.outgoing && l.probe;
            l.send(&Frame::Hello {
                probe,
                protocol: frame::PROTOCOL_VERSION,
                node_id: node,
                run_id: run,
                nonce,
                hlc,
                item_size_max,
                memory_limit,
                wants_auth,
            });
        }
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

    /// Reads until the socket is empty, handling every complete frame.
    fn read(&mut self, t: usize) -> Result<(), CloseReason> {
        let mut budget = READ_BUDGET;
        if let Some(l) = self.conns.get_mut(t) {
            l.more = false;
        }
        loop {
            let Some(l) = self.conns.get_mut(t) else {
                return Ok(());
            };
            if budget == 0 {
                l.more = true;
                break;
            }
            let start = l.rx.len();
            l.rx.resize(start + READ_CHUNK, 0);
            let n = match l.sock.read(&mut l.rx[start..]) {
                Ok(0) => {
                    l.rx.truncate(start);
                    return Err(("closed_by_peer", "the peer closed the link".into()));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    l.rx.truncate(start);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    l.rx.truncate(start);
                    continue;
                }
                Err(e) => {
                    l.rx.truncate(start);
                    return Err(("io_error", format!("read: {e}")));
                }
            };
            l.rx.truncate(start + n);
            budget = budget.saturating_sub(n);
            l.last_rx = Instant::now();
            self.inner
                .counters
                .bytes_received
                .fetch_add(n as u64, Ordering::Relaxed);
            self.process(t)?;
            if let Some(l) = self.conns.get_mut(t) {
                l.ack_if_due(Instant::now());
            }
        }
        if let Some(l) = self.conns.get_mut(t) {
            if l.pending_tx() > TX_HARD_LIMIT {
                return Err(("peer_not_reading", "the peer stopped reading".into()));
            }
        }
        Ok(())
    }

    /// Handles the complete frames in the receive buffer.
    fn process(&mut self, t: usize) -> Result<(), CloseReason> {
        let mut rx = match self.conns.get_mut(t) {
            Some(l) => std::mem::take(&mut l.rx),
            None => return Ok(()),
        };
        let mut off = 0;
        // Before the handshake only small frames: a stranger cannot make
        // us buffer an item-sized frame.
        let max_frame = match self.conns.get(t) {
            Some(l) if l.phase == Phase::Linked => self.max_frame,
            _ => frame::HANDSHAKE_MAX_FRAME,
        };
        let result = loop {
            match frame::decode(&rx[off..], max_frame) {
                Decoded::Incomplete => break Ok(()),
                Decoded::Malformed(why) => {
                    self.inner
                        .counters
                        .malformed_frames
                        .fetch_add(1, Ordering::Relaxed);
                    break Err(("malformed_frame", format!("malformed frame: {why}")));
                }
                Decoded::Frame(f, used) => {
                    off += used;
                    if let Err(e) = self.handle(t, f) {
                        break Err(e);
                    }
                    if !self.conns.contains(t) {
                        break Ok(());
                    }
                }
            }
        };
        rx.drain(..off);
        if let Some(l) = self.conns.get_mut(t) {
            l.rx = rx;
        }
        result
    }

    fn handle(&mut self, t: usize, f: Frame<'_>) -> Result<(), CloseReason> {
        let me = self.inner.node_id();
        let phase = match self.conns.get(t) {
            Some(l) => l.phase,
            None => return Ok(()),
        };
        match f {
            Frame::Hello {
                protocol,
                node_id,
                run_id,
                nonce,
                hlc,
                item_size_max,
                wants_auth,
                probe,
                ..
            } => {
                let l = &mut self.conns[t];
                if l.peer.is_some() || phase != Phase::Handshake {
                    return Err(self.malformed("a second hello"));
                }
                if protocol != frame::PROTOCOL_VERSION {
                    l.send(&Frame::Goodbye {
                        reason: b"protocol version",
                    });
                    return Err((
                        "protocol_mismatch",
                        format!("the peer speaks protocol {protocol}"),
                    ));
                }
                if node_id == me {
                    l.send(&Frame::Goodbye {
                        reason: b"node id clash",
                    });
                    self.id_clashes += 1;
                    // A derived id gives way: at once when ours is the
                    // later run, else at the next clash (the peer's id may
                    // be set by --node-id and cannot move).
                    let derived = self.cfg.node_id.is_none();
                    if derived && (self.inner.run_id > run_id || self.id_clashes > 1) {
                        // Random, so that two nodes giving way at once part.
                        let mut new = 1 + (auth::random_u64() % 255) as u8;
                        if new == node_id {
                            new = node_id % 255 + 1;
                        }
                        exec::set_node_id(&self.inner.shared, new);
                        tracing::warn!(
                            "replication: the peer has our derived node id {me}; this node \
                             takes {new} (set --node-id on both to choose)"
                        );
                        self.next_dial = Instant::now();
                    } else if !derived {
                        tracing::error!(
                            "replication: the peer has our node id {me}; give the nodes \
                             different --node-id values"
                        );
                    }
                    return Err(("node_id_clash", "same node id".into()));
                }
                if wants_auth != self.secret.is_some() {
                    l.send(&Frame::Goodbye {
                        reason: b"secret on one side only",
                    });
                    self.inner
                        .counters
                        .auth_failures
                        .fetch_add(1, Ordering::Relaxed);
                    return Err((
                        "secret_mismatch",
                        "one node has --repl-secret-file, the other not".into(),
                    ));
                }
                l.peer = Some(PeerHello {
                    node: node_id,
                    run: run_id,
                    nonce,
                    hlc,
                    item_size_max,
                    probe: probe && !l.outgoing,
                });
                match &self.secret {
                    // The dialer proves first; the acceptor answers only
                    // a valid proof, so a stranger who connects never gets
                    // a proof to attack offline.
                    Some(_) if l.outgoing => {
                        self.send_proof(t);
                        Ok(())
                    }
                    Some(_) => Ok(()),
                    None => self.handshake_done(t),
                }
            }
            Frame::Auth { mac } => {
                let l = &self.conns[t];
                let (Some(secret), Some(peer), Phase::Handshake) = (&self.secret, l.peer, phase)
                else {
                    return Err(self.malformed("an unexpected auth"));
                };
                let sender_role = if l.outgoing { b'A' } else { b'D' };
                if !auth::verify(
                    secret,
                    sender_role,
                    &peer.nonce,
                    &l.nonce,
                    peer.run,
                    self.inner.run_id,
                    peer.node,
                    me,
                    &mac,
                ) {
                    self.inner
                        .counters
                        .auth_failures
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("replication: {} failed authentication", l.addr);
                    return Err(("auth_failed", "authentication failed".into()));
                }
                if !l.outgoing {
                    self.send_proof(t);
                }
                self.handshake_done(t)
            }
            _ if phase != Phase::Linked => Err(self.malformed("data before the handshake")),
            Frame::SyncBegin { full } => {
                let l = &mut self.conns[t];
                l.received += 1;
                l.peer_syncing = full;
                Ok(())
            }
            Frame::SyncEnd => {
                let l = &mut self.conns[t];
                l.received += 1;
                l.peer_syncing = false;
                self.inner.initial_sync_done();
                self.publish_state();
                Ok(())
            }
            Frame::Item {
                version,
                flags,
                exptime,
                stale,
                key,
                value,
            } => {
                let rec = PeerRecord::Item {
                    key,
                    value,
                    flags,
                    exptime,
                    version,
                    stale,
                };
                self.apply(t, &rec, version, key);
                Ok(())
            }
            Frame::Delete { version, key } => {
                self.apply(t, &PeerRecord::Delete { key, version }, version, key);
                Ok(())
            }
            Frame::Flush { version, at } => {
                self.apply(t, &PeerRecord::Flush { version, at }, version, b"");
                Ok(())
            }
            Frame::Ack { records } => {
                self.acked(t, records);
                Ok(())
            }
            Frame::Ping { nonce, hlc } => {
                exec::observe_version(&self.inner.shared, hlc);
                let hlc = exec::current_version(self.shared());
                self.conns[t].send(&Frame::Pong { nonce, hlc });
                Ok(())
            }
            Frame::Pong { hlc, .. } => {
                exec::observe_version(&self.inner.shared, hlc);
                Ok(())
            }
            Frame::Refused {
                version,
                reason,
                key,
            } => {
                self.inner
                    .counters
                    .refused_by_peer
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "replication: the peer could not store {:?} (version {version}, reason {reason})",
                    String::from_utf8_lossy(key)
                );
                Ok(())
            }
            Frame::Goodbye { reason } => Err((
                "closed_by_peer",
                format!("the peer closed: {}", String::from_utf8_lossy(reason)),
            )),
        }
    }

    /// Sends this side's HMAC proof over both hellos.
    fn send_proof(&mut self, t: usize) {
        let (Some(secret), Some(l)) = (&self.secret, self.conns.get_mut(t)) else {
            return;
        };
        let Some(peer) = l.peer else {
            return;
        };
        let role = if l.outgoing { b'D' } else { b'A' };
        let mac = auth::proof(
            secret,
            role,
            &l.nonce,
            &peer.nonce,
            self.inner.run_id,
            peer.run,
            self.inner.node_id(),
            peer.node,
        );
        l.send(&Frame::Auth { mac });
    }

    fn malformed(&self, what: &str) -> CloseReason {
        self.inner
            .counters
            .malformed_frames
            .fetch_add(1, Ordering::Relaxed);
        ("malformed_frame", format!("protocol violation: {what}"))
    }

    fn apply(&mut self, t: usize, rec: &PeerRecord<'_>, version: u64, key: &[u8]) {
        let c = &self.inner.counters;
        c.records_received.fetch_add(1, Ordering::Relaxed);
        let outcome = exec::apply_peer(&self.inner.shared, rec);
        let l = &mut self.conns[t];
        l.received += 1;
        match outcome {
            ApplyOutcome::Applied => {
                c.records_applied.fetch_add(1, Ordering::Relaxed);
            }
            ApplyOutcome::Older => {
                c.records_older.fetch_add(1, Ordering::Relaxed);
                // Outside a sync stream an older record lost to a write
                // made here meanwhile: a concurrent write on both nodes.
                if !l.peer_syncing {
                    c.conflicts.fetch_add(1, Ordering::Relaxed);
                }
            }
            ApplyOutcome::TooLarge | ApplyOutcome::OutOfMemory => {
                c.records_refused.fetch_add(1, Ordering::Relaxed);
                let reason = if outcome == ApplyOutcome::TooLarge {
                    1
                } else {
                    2
                };
                l.send(&Frame::Refused {
                    version,
                    reason,
                    key,
                });
                tracing::warn!(
                    "replication: could not store {:?} from the peer ({})",
                    String::from_utf8_lossy(key),
                    if reason == 1 {
                        "larger than -I"
                    } else {
                        "out of memory"
                    }
                );
            }
        }
    }

    fn acked(&mut self, t: usize, records: u64) {
        let Some(l) = self.conns.get_mut(t) else {
            return;
        };
        let records = records.min(l.sent);
        while l.acked < records {
            l.acked += 1;
            match l.inflight.pop_front() {
                Some((Inflight::SyncEnd(run), _)) => self.synced_run = Some(run),
                Some((Inflight::Key(k), _)) => l.inflight_bytes -= k.len(),
                _ => {}
            }
        }
        self.publish_state();
    }

    /// A connection finished its handshake: a link, or a probe answered.
    fn handshake_done(&mut self, t: usize) -> Result<(), CloseReason> {
        let l = &self.conns[t];
        let peer = l.peer.expect("handshake done after hello");
        if l.outgoing && l.probe {
            return Err(self.probe_answered(peer));
        }
        if peer.probe {
            return Err(("probe", "answered a probe".into()));
        }
        self.linked(t)
    }

    /// Our probe of `-x` was answered by run `peer.run`: that is the peer.
    /// A link the peer offered from another run was not the peer: it goes
    /// (and the node dials -x for a real link). The probe connection
    /// closes with the reason returned.
    fn probe_answered(&mut self, peer: PeerHello) -> CloseReason {
        self.peer_run_at_x = Some(peer.run);
        let active = self.active.and_then(|a| {
            self.conns
                .get(a)
                .map(|l| (a, l.peer.map(|p| p.run), l.addr))
        });
        if let Some((a, run, addr)) = active {
            if run != Some(peer.run) {
                tracing::warn!(
                    "replication: the link from {addr} was not the peer (the process at {} is \
                     another): dropping it",
                    self.inner.peer_desc
                );
                self.close(
                    a,
                    ("not_the_peer", "not the process at the peer address".into()),
                );
                self.backoff = BACKOFF_MIN;
            }
        }
        ("probe", "checked who answers at the peer address".into())
    }

    /// A connection finished its handshake as a link.
    fn linked(&mut self, t: usize) -> Result<(), CloseReason> {
        let me = self.inner.node_id();
        let (peer, dialer_new, outgoing, addr) = {
            let l = &self.conns[t];
            (
                l.peer.expect("linked after hello"),
                l.dialer(me),
                l.outgoing,
                l.addr,
            )
        };
        if outgoing {
            self.peer_run_at_x = Some(peer.run);
        } else if self.peer_run_at_x.is_some_and(|r| r != peer.run) {
            self.inner
                .counters
                .strangers_refused
                .fetch_add(1, Ordering::Relaxed);
            if self.refused_run != Some(peer.run) {
                self.refused_run = Some(peer.run);
                tracing::warn!(
                    "replication: refused node {} (run {:016x}) connecting from {addr}: it is \
                     not the process at the peer address {} (check that node's -x)",
                    peer.node,
                    peer.run,
                    self.inner.peer_desc
                );
            }
            // The peer may have restarted (a new run): look at -x again.
            if !self.active_is_the_peer() {
                self.next_dial = Instant::now();
            }
            return Err(("not_the_peer", "not the process at the peer address".into()));
        }
        if let Some(a) = self.active.filter(|&a| a != t) {
            let (old_run, dialer_old) = {
                let o = &self.conns[a];
                (o.peer.map_or(0, |p| p.run), o.dialer(me))
            };
            // Deterministic on both nodes: the link dialled by the lower
            // node id stays; a link to an earlier run of the peer is dead.
            let keep_new = old_run != peer.run || dialer_new <= dialer_old;
            if keep_new {
                self.close(a, ("replaced", "replaced by a newer link".into()));
            } else {
                return Err(("duplicate_link", "the peer is already linked".into()));
            }
        }
        if self.dialing == Some(t) {
            self.dialing = None;
        }
        exec::observe_version(&self.inner.shared, peer.hlc);
        let ahead = exec::version_millis(peer.hlc).saturating_sub(now_ms());
        if ahead > 1000 {
            tracing::warn!(
                "replication: the peer's clock is at least {ahead} ms ahead of ours; keep \
                 both clocks in sync (NTP): versions follow a peer at most an hour ahead"
            );
        }
        self.active = Some(t);
        let c = &self.inner.counters;
        c.links_established.fetch_add(1, Ordering::Relaxed);
        let p = &self.inner.published;
        p.peer_node.store(peer.node as u64, Ordering::Relaxed);
        p.peer_run.store(peer.run, Ordering::Relaxed);
        if (peer.item_size_max as usize) < self.shared().config.item_size_max {
            tracing::warn!(
                "replication: the peer's item size limit ({} bytes) is below ours; \
                 larger items stay on this node only",
                peer.item_size_max
            );
        }
        // Full walk unless the peer is the same process we last fully
        // synced and nothing was dropped from the outbox since.
        let overflowed = self.inner.outbox.take_overflow();
        let full = overflowed || self.synced_run != Some(peer.run);
        let l = &mut self.conns[t];
        l.phase = Phase::Linked;
        l.last_rx = Instant::now();
        tracing::info!(
            "replication: linked with node {} at {} ({} sync)",
            peer.node,
            l.addr,
            if full { "full" } else { "partial" }
        );
        self.start_sync(t, full);
        self.publish_state();
        Ok(())
    }

    fn start_sync(&mut self, t: usize, full: bool) {
        let Some(l) = self.conns.get_mut(t) else {
            return;
        };
        let c = &self.inner.counters;
        let ms = now_ms();
        l.send(&Frame::SyncBegin { full });
        l.sent += 1;
        l.inflight.push_back((Inflight::Marker, ms));
        if full {
            c.resyncs_full.fetch_add(1, Ordering::Relaxed);
            self.synced_run = None;
            // The walk covers every key the outbox holds.
            self.inner.outbox.clear();
            l.walk = Some(WalkCursor::default());
        } else {
            c.resyncs_partial.fetch_add(1, Ordering::Relaxed);
            l.send(&Frame::SyncEnd);
            l.sent += 1;
            l.inflight.push_back((Inflight::Marker, ms));
        }
    }

    fn close(&mut self, t: usize, (code, detail): CloseReason) {
        if !self.conns.contains(t) {
            return;
        }
        let mut l = self.conns.remove(t);
        // Best effort: a Goodbye queued for the peer goes out first.
        if l.phase != Phase::Connecting {
            let _ = flush_tx(&mut l, &self.inner);
        }
        let _ = self.poll.registry().deregister(&mut l.sock);
        let was_active = self.active == Some(t);
        if self.dialing == Some(t) {
            self.dialing = None;
            if !was_active {
                self.retry_later();
            }
        }
        if !matches!(code, "shutdown" | "replaced" | "duplicate_link" | "probe") {
            self.inner.set_error(code);
        }
        if was_active {
            self.active = None;
            // Stop counting them as in flight before they are counted in
            // the outbox again (`repl_lag_records` must not count twice).
            self.publish_state();
            // What the peer did not acknowledge goes back to the outbox.
            for (what, _) in l.inflight.drain(..) {
                match what {
                    Inflight::Key(k) => self.inner.outbox.push(&k, now_ms()),
                    Inflight::Flush(f) => self.inner.outbox.push_flush(f),
                    Inflight::Walk | Inflight::SyncEnd(_) | Inflight::Marker => {}
                }
            }
            if code != "shutdown" && code != "replaced" {
                tracing::warn!("replication: link to {} lost: {detail}", l.addr);
            }
            if code != "replaced" {
                // Redial fast after a link that held; one dropped at once
                // (refused by a node that is not our peer's, or a flapping
                // network) keeps backing off.
                if l.opened.elapsed() >= STABLE_LINK {
                    self.backoff = BACKOFF_MIN;
                }
                self.retry_later();
            }
            self.inner.outbox.pause();
            self.publish_state();
        } else {
            tracing::debug!("replication: connection {} closed: {detail}", l.addr);
        }
    }

    // ----- time -----

    fn housekeeping(&mut self) {
        let now = Instant::now();
        let mut to_close = Vec::new();
        let hb = self.cfg.heartbeat;
        let timeout = self.cfg.peer_timeout;
        let hlc = exec::current_version(self.shared());
        for (t, l) in self.conns.iter_mut() {
            match l.phase {
                Phase::Connecting | Phase::Handshake => {
                    if now.duration_since(l.opened) > HANDSHAKE_DEADLINE {
                        to_close.push((t, ("handshake_timeout", "handshake timed out".into())));
                    }
                }
                Phase::Linked => {
                    if now.duration_since(l.last_rx) > timeout {
                        to_close.push((
                            t,
                            (
                                "peer_timeout",
                                format!("no frame from the peer for {} ms", timeout.as_millis()),
                            ),
                        ));
                    }
                    l.ack_if_due(now);
                    if now.duration_since(l.last_ping) >= hb {
                        l.last_ping = now;
                        l.ping_seq += 1;
                        let nonce = l.ping_seq;
                        l.send(&Frame::Ping { nonce, hlc });
                    }
                }
            }
        }
        for (t, r) in to_close {
            if r.0 == "handshake_timeout" {
                if let Some(l) = self.conns.get(t) {
                    if !l.outgoing && l.peer.is_none() {
                        // A connector that never said hello.
                        self.inner
                            .counters
                            .strangers_refused
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            self.close(t, r);
        }
        // Dial while there is no link (also while stopping: pending
        // records still want one), and while the link is one the peer
        // offered before our own dial ever reached -x: the dial tells
        // whether that link really is the peer.
        if !self.active_is_the_peer() && self.dialing.is_none() && now >= self.next_dial {
            self.dial();
        }
        if self.active.is_none() {
            self.inner.set_state(if self.dialing.is_some() {
                LinkState::Connecting
            } else {
                LinkState::Disconnected
            });
        }
    }

    fn publish_state(&self) {
        let p = &self.inner.published;
        match self.active.and_then(|a| self.conns.get(a)) {
            Some(l) => {
                let syncing = l.walk.is_some() || l.peer_syncing;
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

    // ----- sending -----

    /// Produces records for the link while it has room, then writes.
    fn pump(&mut self) {
        let Some(t) = self.active else {
            self.inner.outbox.pause();
            return;
        };
        let inner = Arc::clone(&self.inner);
        let outbox = &inner.outbox;
        let shared = &inner.shared;
        let counters = &inner.counters;
        let peer_max = self.conns[t]
            .peer
            .map_or(usize::MAX, |p| p.item_size_max as usize);
        if self.conns[t].phase != Phase::Linked {
            return;
        }
        if outbox.take_overflow() {
            tracing::warn!(
                "replication: the outbox overflowed (-q / --repl-outbox-bytes); \
                 resyncing the whole store"
            );
            self.start_sync(t, true);
        }
        let l = &mut self.conns[t];
        let ms = now_ms();
        for f in outbox.take_flushes() {
            l.send(&Frame::Flush {
                version: f.version,
                at: f.at,
            });
            l.sent += 1;
            l.inflight.push_back((Inflight::Flush(f), ms));
            counters.records_sent.fetch_add(1, Ordering::Relaxed);
        }
        let mut keys = std::mem::take(&mut self.scratch);
        let mut walk_done = false;
        let mut armed = false;
        let mut sent_keys = 0usize;
        self.poll_soon = false;
        let mut rounds = 0;
        self.send_more = false;
        loop {
            if l.pending_tx() >= TX_HIGH_WATER {
                // Write what is there and go on while the socket takes it
                // (no event comes for a socket that never stopped being
                // writable), a few rounds per turn of the loop.
                if let Err(e) = flush_tx(l, &self.inner) {
                    self.scratch = keys;
                    self.close(t, ("io_error", format!("write: {e}")));
                    return;
                }
                rounds += 1;
                if l.blocked || rounds >= 8 {
                    self.send_more = !l.blocked;
                    break;
                }
            }
            if l.window_full() || l.blocked {
                break;
            }
            let mut progressed = false;
            keys.clear();
            if outbox.pop_batch(&mut self.pop_cursor, OUTBOX_BATCH, &mut keys) > 0 {
                progressed = true;
                sent_keys += keys.len();
                for key in keys.drain(..) {
                    let sent = exec::export(shared, &key, |e| {
                        encode_exported(&mut l.tx, e, peer_max, counters)
                    });
                    if sent.is_some() {
                        l.sent += 1;
                        l.inflight_bytes += key.len();
                        l.inflight.push_back((Inflight::Key(key), ms));
                        counters.records_sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            if let Some(cur) = l.walk.as_mut() {
                progressed = true;
                let mut n = 0u64;
                let tx = &mut l.tx;
                let done = exec::walk(shared, cur, WALK_BUDGET, |e| {
                    encode_exported(tx, e, peer_max, counters);
                    n += 1;
                });
                for _ in 0..n {
                    l.inflight.push_back((Inflight::Walk, ms));
                }
                l.sent += n;
                counters.records_sent.fetch_add(n, Ordering::Relaxed);
                if done {
                    l.walk = None;
                    walk_done = true;
                    l.send(&Frame::SyncEnd);
                    l.sent += 1;
                    let run = l.peer.map_or(0, |p| p.run);
                    l.inflight.push_back((Inflight::SyncEnd(run), ms));
                }
            }
            if !progressed {
                if armed {
                    break;
                }
                if sent_keys >= BATCH_MIN_KEYS {
                    // Writes are flowing fast: look again in a
                    // millisecond rather than have every write wake this
                    // thread (a wake-up costs the writer a syscall and
                    // both a context switch). At lower rates each write
                    // wakes us at once (lowest lag).
                    self.poll_soon = true;
                    break;
                }
                // Arm before the last look so a key pushed right now
                // wakes us instead of waiting for the next tick.
                outbox.arm();
                armed = true;
                if outbox.is_empty() {
                    break;
                }
            }
        }
        self.scratch = keys;
        if l.pending_tx() >= TX_HIGH_WATER || l.window_full() || l.blocked {
            outbox.pause();
        }
        if let Err(e) = flush_tx(l, &self.inner) {
            self.close(t, ("io_error", format!("write: {e}")));
            return;
        }
        self.sync_interest(t);
        if walk_done {
            tracing::info!("replication: full sync sent to the peer");
        }
        self.publish_state();
    }
}

/// A non-blocking connect to `addr`, from `source` when given.
fn connect_from(source: Option<IpAddr>, addr: SocketAddr) -> io::Result<TcpStream> {
    let Some(ip) = source else {
        return TcpStream::connect(addr);
    };
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    sock.set_nonblocking(true)?;
    sock.bind(&SocketAddr::new(ip, 0).into())?;
    match sock.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(sock.into()))
}

/// Appends the record for an exported state. Returns false when nothing
/// was sent.
fn encode_exported(
    tx: &mut Vec<u8>,
    e: Exported<'_>,
    peer_item_max: usize,
    counters: &super::Counters,
) {
    match e {
        Exported::Item {
            key,
            value,
            flags,
            exptime,
            version,
            stale,
        } => {
            if exec::item_size(key.len(), value.len(), flags, true) as usize > peer_item_max {
                // The peer would refuse it: make it drop its older copy
                // instead of serving it, and say so.
                counters.too_large_for_peer.fetch_add(1, Ordering::Relaxed);
                frame::encode(&Frame::Delete { version, key }, tx);
            } else {
                frame::encode(
                    &Frame::Item {
                        version,
                        flags,
                        exptime,
                        stale,
                        key,
                        value,
                    },
                    tx,
                );
            }
        }
        Exported::Tombstone { key, version } => {
            frame::encode(&Frame::Delete { version, key }, tx);
        }
    }
}

/// Writes what the link has pending until the socket would block.
fn flush_tx(l: &mut Link, inner: &Inner) -> io::Result<()> {
    if l.phase == Phase::Connecting {
        return Ok(());
    }
    // Blocked only if this attempt meets WouldBlock again.
    l.blocked = false;
    while l.tx_off < l.tx.len() {
        match l.sock.write(&l.tx[l.tx_off..]) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "wrote 0")),
            Ok(n) => {
                l.tx_off += n;
                inner
                    .counters
                    .bytes_sent
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                l.blocked = true;
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    if l.tx_off == l.tx.len() {
        l.tx.clear();
        l.tx_off = 0;
        if l.tx.capacity() > 4 * TX_HIGH_WATER {
            l.tx.shrink_to(TX_HIGH_WATER);
        }
    } else if l.tx_off > TX_HIGH_WATER {
        l.tx.drain(..l.tx_off);
        l.tx_off = 0;
    }
    Ok(())
}
