//! What goes out to the peer: starting a sync, the pump that turns
//! flushes, outbox keys and resync walk steps into records while the
//! window and the send buffer have room, and the acknowledgements that
//! retire them.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::super::frame::{self, Frame};
use super::super::now_ms;
use super::link::{flush_tx, Inflight, Phase};
use super::{Node, BATCH_MIN_KEYS, OUTBOX_BATCH, TX_HIGH_WATER, WALK_BUDGET};
use crate::exec::{self, Exported, WalkCursor};

impl Node {
    pub(super) fn acked(&mut self, t: usize, records: u64) {
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

    pub(super) fn start_sync(&mut self, t: usize, full: bool) {
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

    /// Produces records for the link while it has room, then writes.
    pub(super) fn pump(&mut self) {
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
        if self.conns[t].phase != Phase::Linked || self.conns[t].sync_due.is_some() {
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

/// Appends the record for an exported state (for an item larger than the
/// peer's `-I`, the delete that drops the peer's older copy, counted).
fn encode_exported(
    tx: &mut Vec<u8>,
    e: Exported<'_>,
    peer_item_max: usize,
    counters: &super::super::Counters,
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
