//! Work done on every turn of the loop: handshake deadlines, peer
//! timeouts, heartbeats, acknowledgements left waiting, redials.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::super::frame::Frame;
use super::super::LinkState;
use super::link::Phase;
use super::{Node, HANDSHAKE_DEADLINE};
use crate::exec;

impl Node {
    pub(super) fn housekeeping(&mut self) {
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
        // offered before our own dial ever reached -x: the dial (a probe)
        // tells whether that link really is the peer. Not while the peer
        // is dialling us: its connection woke this loop, and dialling back
        // at that instant made two links at once (one then dropped).
        let peer_dialling = self.conns.iter().any(|(_, l)| {
            !l.outgoing && l.phase == Phase::Handshake && self.peer_ips.contains(&l.addr.ip())
        });
        if !self.active_is_the_peer()
            && self.dialing.is_none()
            && !peer_dialling
            && now >= self.next_dial
        {
            self.dial();
        }
        // A held sync (SYNC_SETTLE) starts once no other link replaced
        // this one.
        if let Some(a) = self.active {
            if let Some((due, full)) = self.conns.get(a).and_then(|l| l.sync_due) {
                if now >= due {
                    self.conns[a].sync_due = None;
                    self.start_sync(a, full);
                    self.publish_state();
                }
            }
        }
        if self.active.is_none() {
            self.inner.set_state(if self.dialing.is_some() {
                LinkState::Connecting
            } else {
                LinkState::Disconnected
            });
        }
    }
}
