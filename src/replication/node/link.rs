//! One peer connection's state (`Link`): its phase, buffers, what it
//! sent and what the peer acknowledged; queuing frames on it and writing
//! them out (`flush_tx`).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use mio::net::TcpStream;

use super::super::auth;
use super::super::frame::{self, Frame};
use super::super::outbox::PendingFlush;
use super::super::Inner;
use super::{ACK_DELAY, ACK_EVERY, TX_HIGH_WATER, WINDOW, WINDOW_KEY_BYTES};
use crate::exec::WalkCursor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Outgoing connect not finished yet.
    Connecting,
    Handshake,
    Linked,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct PeerHello {
    pub(super) node: u8,
    pub(super) run: u64,
    pub(super) nonce: [u8; 16],
    /// The peer's clock, observed only once the link is established (an
    /// unauthenticated Hello must not move our clock).
    pub(super) hlc: u64,
    pub(super) item_size_max: u32,
    /// The dialer only checks who answers (see `Frame::Hello`).
    pub(super) probe: bool,
}

impl PeerHello {
    /// The peer as its Hello introduced it, for the proofs.
    pub(super) fn party(&self) -> auth::Party {
        auth::Party {
            nonce: self.nonce,
            run: self.run,
            node: self.node,
        }
    }
}

/// What a sent record was, so an unacknowledged one can be sent again.
pub(super) enum Inflight {
    Key(Arc<[u8]>),
    Flush(PendingFlush),
    /// Part of a resync walk (a new walk covers it again).
    Walk,
    /// The end of a full sync to the peer run given.
    SyncEnd(u64),
    /// SyncBegin, a partial SyncEnd.
    Marker,
}

pub(super) struct Link {
    pub(super) sock: TcpStream,
    pub(super) addr: SocketAddr,
    pub(super) outgoing: bool,
    /// An outgoing connection that only checks which process answers at
    /// `-x` (while a link the peer offered is up): closed after the
    /// handshake, never a link.
    pub(super) probe: bool,
    pub(super) phase: Phase,
    pub(super) rx: Vec<u8>,
    pub(super) tx: Vec<u8>,
    tx_off: usize,
    pub(super) opened: Instant,
    pub(super) last_rx: Instant,
    pub(super) last_ping: Instant,
    pub(super) ping_seq: u64,
    pub(super) nonce: [u8; 16],
    pub(super) peer: Option<PeerHello>,
    /// Records sent / acknowledged by the peer.
    pub(super) sent: u64,
    pub(super) acked: u64,
    pub(super) inflight: VecDeque<(Inflight, u64)>,
    /// Bytes of the keys held in `inflight`.
    pub(super) inflight_bytes: usize,
    pub(super) walk: Option<WalkCursor>,
    /// Our sync on this link, decided (full or not) but held until then:
    /// see `SYNC_SETTLE`.
    pub(super) sync_due: Option<(Instant, bool)>,
    /// Records received and processed (what we acknowledge).
    pub(super) received: u64,
    pub(super) ack_sent: u64,
    last_ack: Instant,
    /// The peer is streaming its full sync to us.
    pub(super) peer_syncing: bool,
    /// A write hit WouldBlock: wait for WRITABLE.
    pub(super) blocked: bool,
    /// Reading stopped at its budget with bytes left in the socket: read
    /// again on the next turn of the loop (no new event will say so).
    pub(super) more: bool,
    /// Registered for WRITABLE too: only while connecting or while bytes
    /// wait to be written (otherwise every TCP ack of the peer would wake
    /// the thread).
    pub(super) writable_interest: bool,
}

impl Link {
    pub(super) fn new(sock: TcpStream, addr: SocketAddr, outgoing: bool, now: Instant) -> Link {
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
            sync_due: None,
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
    pub(super) fn ack_if_due(&mut self, now: Instant) {
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

    pub(super) fn window_full(&self) -> bool {
        self.inflight.len() >= WINDOW || self.inflight_bytes >= WINDOW_KEY_BYTES
    }

    pub(super) fn pending_tx(&self) -> usize {
        self.tx.len() - self.tx_off
    }

    pub(super) fn send(&mut self, f: &Frame<'_>) {
        frame::encode(f, &mut self.tx);
    }

    /// Node id of the side that dialled this connection.
    pub(super) fn dialer(&self, me: u8) -> u8 {
        if self.outgoing {
            me
        } else {
            self.peer.map_or(0, |p| p.node)
        }
    }
}

/// Writes what the link has pending until the socket would block.
pub(super) fn flush_tx(l: &mut Link, inner: &Inner) -> io::Result<()> {
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
