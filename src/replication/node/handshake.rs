//! The handshake: our hello and HMAC proof, the peer's (checked), and
//! what follows once a connection is through it (the peer's identity
//! pinned, the duplicate-link rule, the start of a sync).

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::super::frame::{self, Frame};
use super::super::{auth, now_ms, Inner};
use super::link::{PeerHello, Phase};
use super::{CloseReason, Node, BACKOFF_MIN, SYNC_SETTLE};
use crate::exec;

impl Node {
    /// The peer's `Hello`: protocol, node id and secret checked, the peer
    /// recorded; without a secret that ends the handshake.
    pub(super) fn on_hello(
        &mut self,
        t: usize,
        phase: Phase,
        hello: &Frame<'_>,
    ) -> Result<(), CloseReason> {
        let me = self.inner.node_id();
        let &Frame::Hello {
            protocol,
            node_id,
            run_id,
            nonce,
            hlc,
            item_size_max,
            wants_auth,
            probe,
            ..
        } = hello
        else {
            return Err(self.malformed("not a hello"));
        };
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

    /// The peer's proof of the secret: checked (the acceptor answers with
    /// its own only then), and the handshake is done.
    pub(super) fn on_auth(
        &mut self,
        t: usize,
        phase: Phase,
        mac: &[u8; 32],
    ) -> Result<(), CloseReason> {
        let l = &self.conns[t];
        let (Some(secret), Some(peer), Phase::Handshake) = (&self.secret, l.peer, phase) else {
            return Err(self.malformed("an unexpected auth"));
        };
        let sender_role = if l.outgoing { b'A' } else { b'D' };
        let own = own_party(&self.inner, l.nonce);
        if !auth::verify(secret, sender_role, &peer.party(), &own, mac) {
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

    /// A link is up with the process our own dial to `-x` reached.
    pub(super) fn active_is_the_peer(&self) -> bool {
        self.active
            .and_then(|a| self.conns.get(a))
            .and_then(|l| l.peer)
            .is_some_and(|p| self.peer_run_at_x == Some(p.run))
    }

    pub(super) fn send_hello(&mut self, t: usize) {
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

    /// Sends this side's HMAC proof over both hellos.
    pub(super) fn send_proof(&mut self, t: usize) {
        let (Some(secret), Some(l)) = (&self.secret, self.conns.get_mut(t)) else {
            return;
        };
        let Some(peer) = l.peer else {
            return;
        };
        let role = if l.outgoing { b'D' } else { b'A' };
        let own = own_party(&self.inner, l.nonce);
        let mac = auth::proof(secret, role, &own, &peer.party());
        l.send(&Frame::Auth { mac });
    }

    /// A connection finished its handshake: a link, or a probe answered.
    pub(super) fn handshake_done(&mut self, t: usize) -> Result<(), CloseReason> {
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
        self.reached_x(peer.run);
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

    /// Our dial to `-x` reached process `run`: that is the peer from now
    /// on. A refused offer we could not judge then gets its warning if it
    /// was another process.
    fn reached_x(&mut self, run: u64) {
        self.peer_run_at_x = Some(run);
        if let Some((node, refused, addr)) = self.suspect.take() {
            if refused != run {
                tracing::warn!(
                    "replication: node {node} (run {refused:016x}) at {addr} offered a link but \
                     is not the process at the peer address {} (check that node's -x)",
                    self.inner.peer_desc
                );
            }
        }
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
            self.reached_x(peer.run);
        } else if self.peer_run_at_x.is_some_and(|r| r != peer.run) {
            self.inner
                .counters
                .strangers_refused
                .fetch_add(1, Ordering::Relaxed);
            let first = self.refused_run != Some(peer.run);
            self.refused_run = Some(peer.run);
            if self.active_is_the_peer() {
                if first {
                    tracing::warn!(
                        "replication: refused node {} (run {:016x}) connecting from {addr}: it \
                         is not the process at the peer address {} (check that node's -x)",
                        peer.node,
                        peer.run,
                        self.inner.peer_desc
                    );
                }
            } else {
                // Most likely the peer restarted (a new run): look at -x
                // again; the link then comes from our dial.
                if first {
                    tracing::info!(
                        "replication: node {} (run {:016x}) at {addr} is not the process last \
                         reached at the peer address; dialling it to check (a restarted peer \
                         links that way)",
                        peer.node,
                        peer.run
                    );
                }
                self.suspect = Some((peer.node, peer.run, addr));
                self.next_dial = Instant::now();
            }
            return Err(("not_the_peer", "not the process at the peer address".into()));
        } else if self.peer_run_at_x.is_none() && self.dialing.is_none() {
            // An offered link before our dial ever reached -x: probe -x
            // now rather than at the next backoff step, so that a link
            // from another process does not stand for long.
            self.next_dial = Instant::now();
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
        if dialer_new == me.max(peer.node) {
            l.sync_due = Some((Instant::now() + SYNC_SETTLE, full));
        } else {
            self.start_sync(t, full);
        }
        self.publish_state();
        Ok(())
    }
}

/// This node as its Hello on a connection (with that connection's nonce)
/// introduced it, for the proofs.
fn own_party(inner: &Inner, nonce: [u8; 16]) -> auth::Party {
    auth::Party {
        nonce,
        run: inner.run_id,
        node: inner.node_id(),
    }
}
