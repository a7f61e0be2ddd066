//! Opening and closing peer connections: accepting (with the admission
//! checks), dialling `-x` with backoff, and what closing a connection
//! undoes.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Token};

use super::super::{auth, now_ms, LinkState};
use super::link::{flush_tx, Inflight, Link, Phase};
use super::{CloseReason, Node, BACKOFF_MIN, HANDSHAKE_SLOTS, STABLE_LINK};

impl Node {
    pub(super) fn resolve_peer(&mut self) -> Vec<SocketAddr> {
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

    pub(super) fn accept(&mut self, i: usize) {
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

    pub(super) fn dial(&mut self) {
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
        // lock step, and the node with the higher id (once it knows the
        // peer's) waits half as long again: after a link both saw die at
        // once, the lower one's dial lands first and the other finds the
        // link up instead of dialling too (two links at once cost a drop
        // and a second sync).
        let jitter = (auth::random_u64() % 1000) as f64 / 4000.0;
        let peer_node = self.inner.published.peer_node.load(Ordering::Relaxed);
        let bias = if peer_node != 0 && u64::from(self.inner.node_id()) > peer_node {
            1.5
        } else {
            1.0
        };
        self.next_dial = Instant::now() + self.backoff.mul_f64(bias + jitter);
        self.backoff = (self.backoff * 2).min(self.cfg.backoff_max.max(BACKOFF_MIN));
    }

    pub(super) fn close(&mut self, t: usize, (code, detail): CloseReason) {
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
