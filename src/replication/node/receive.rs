//! What comes in from the peer: reading a socket within its budget,
//! decoding frames and handling each one (handshake frames go to
//! handshake.rs; records applied through `exec` with a Refused sent back
//! when one cannot be stored, acknowledgements, heartbeats, goodbyes).

use std::io::{self, Read};
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::super::frame::{self, Decoded, Frame};
use super::link::Phase;
use super::{CloseReason, Node, READ_BUDGET, READ_CHUNK, TX_HARD_LIMIT};
use crate::exec::{self, ApplyOutcome, PeerRecord};

impl Node {
    /// Reads until the socket is empty, handling every complete frame.
    pub(super) fn read(&mut self, t: usize) -> Result<(), CloseReason> {
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
        let phase = match self.conns.get(t) {
            Some(l) => l.phase,
            None => return Ok(()),
        };
        match f {
            Frame::Hello { .. } => self.on_hello(t, phase, &f),
            Frame::Auth { mac } => self.on_auth(t, phase, &mac),
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

    pub(super) fn malformed(&self, what: &str) -> CloseReason {
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
}
