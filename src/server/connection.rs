//! One client connection and the per-wake work on it.
//!
//! Buffers: an idle connection holds no buffer at all. When it has work,
//! it borrows a read buffer and a write buffer from its worker's [`Pools`]
//! and gives them back once everything read is processed and everything
//! written is flushed. The read buffer grows only while one request does
//! not fit (a value up to `-I` plus its line); a grown buffer goes back to
//! a per-worker pool of large buffers (bounded in bytes) once the large
//! request is done, never staying with an idle connection. The write
//! buffer is bounded by backpressure: above [`OUT_HIGH`] the connection
//! neither parses nor reads until the client has taken the replies.
//! Replies of a pipeline are batched into one write per wake.
//!
//! A long reply (`lru_crawler metadump`, `stats cachedump`, `stats
//! sizes`) comes from `exec` as a continuation: the connection produces
//! it a chunk at a time, only while fewer than [`STREAM_LOW`] reply bytes
//! wait to be sent, and parses no later request until it is complete, so
//! replies keep the order of the requests and a dump of millions of keys
//! never sits in memory at once. Each chunk counts against the `-R`
//! budget like a request.
//!
//! Readiness is edge-triggered and a connection is registered once for
//! both directions, so there is no `reregister` on the request path;
//! `readable` remembers whether the socket may still hold unread bytes. A
//! short read counts as "drained" (new bytes bring a new edge), except
//! after a hang-up event, when an EOF may be queued behind the data.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::config::BindingProtocol;
use crate::exec::{self, Continuation, Ctx, Flow};
use crate::protocol::{parse, Limits, Parsed, Recovery};

use super::listener::Stream;
use super::registry::{ConnInfo, State};

/// Size of a pooled read buffer.
pub(crate) const RBUF_SIZE: usize = 16 * 1024;
/// A read is attempted only with at least this much free room.
const MIN_READ: usize = 4 * 1024;
/// Initial capacity of a pooled write buffer.
const WBUF_SIZE: usize = 16 * 1024;
/// Write buffers above this capacity are not pooled.
const WBUF_POOL_MAX_CAP: usize = 256 * 1024;
/// Above this many unsent reply bytes a connection stops parsing and
/// reading. One request may overshoot it by its own reply.
pub(crate) const OUT_HIGH: usize = 1024 * 1024;
/// While a long reply is being produced, its next chunk is made only
/// when fewer than this many reply bytes wait to be sent.
pub(crate) const STREAM_LOW: usize = 256 * 1024;
/// When a connection yields (per-wake budget spent), its replies are sent
/// right away only once they reach this size; smaller ones ride along with
/// the next batch.
const YIELD_FLUSH: usize = 64 * 1024;

/// Read-buffer bytes beyond RBUF_SIZE held by connections for partial
/// requests, process-wide. A partial large value lives in its connection's
/// read buffer, outside the store's `-m` (memcached allocates it from `-m`
/// up front), so without a cap N slow clients could hold N x `-I`. The cap
/// is the memory limit (at least 4 x `-I`); a connection that needs to grow
/// past it gets `SERVER_ERROR out of memory reading request` and is closed.
static GROWN: AtomicUsize = AtomicUsize::new(0);

/// Per-worker free lists of buffers.
pub(crate) struct Pools {
    rbufs: Vec<Vec<u8>>,
    /// Read buffers grown for a large request, kept for the next one.
    big_rbufs: Vec<Vec<u8>>,
    wbufs: Vec<Vec<u8>>,
}

const POOL_KEEP: usize = 16;
/// At most this many bytes of grown read buffers are kept per worker.
const BIG_POOL_BYTES: usize = 4 * 1024 * 1024;

impl Pools {
    pub(crate) fn new() -> Pools {
        Pools {
            rbufs: Vec::new(),
            big_rbufs: Vec::new(),
            wbufs: Vec::new(),
        }
    }

    fn take_rbuf(&mut self) -> Vec<u8> {
        self.rbufs.pop().unwrap_or_else(|| vec![0u8; RBUF_SIZE])
    }

    /// A pooled grown read buffer of at least `len` bytes, if one is kept.
    fn take_big_rbuf(&mut self, len: usize) -> Option<Vec<u8>> {
        let i = self.big_rbufs.iter().position(|b| b.len() >= len)?;
        Some(self.big_rbufs.swap_remove(i))
    }

    fn put_rbuf(&mut self, b: Vec<u8>) {
        if b.len() == RBUF_SIZE {
            if self.rbufs.len() < POOL_KEEP {
                self.rbufs.push(b);
            }
        } else if b.len() > RBUF_SIZE {
            let kept: usize = self.big_rbufs.iter().map(Vec::len).sum();
            if kept + b.len() <= BIG_POOL_BYTES {
                self.big_rbufs.push(b);
            }
        }
    }

    fn take_wbuf(&mut self) -> Vec<u8> {
        self.wbufs
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(WBUF_SIZE))
    }

    fn put_wbuf(&mut self, mut b: Vec<u8>) {
        if b.capacity() <= WBUF_POOL_MAX_CAP && self.wbufs.len() < POOL_KEEP {
            b.clear();
            self.wbufs.push(b);
        }
    }
}

/// What the worker does with a connection after [`Connection::drive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Nothing to do until the next readiness event.
    Idle,
    /// The per-wake budget ran out with work left: come back after the
    /// other connections, without waiting for an event.
    Yield,
    /// Close now.
    Close,
}

/// Result of one read.
enum Got {
    Data,
    /// WouldBlock.
    Nothing,
    Eof,
}

/// Why processing stopped.
enum Stop {
    /// No complete request buffered.
    NeedInput,
    /// `-R` requests done this wake.
    Budget,
    /// Too many unsent reply bytes.
    Backpressure,
    /// The connection is to be closed once its replies are flushed.
    Closing,
}

/// What one wake of a worker shares with every connection it drives.
pub(crate) struct Env<'a> {
    pub ctx: Ctx<'a>,
    pub limits: Limits,
    pub reqs_per_event: usize,
    /// Log requests and replies (`-vv`).
    pub verbose: bool,
    /// The server is stopping: finish buffered requests, read no more.
    pub draining: bool,
    /// Set when a request asked the server to shut down.
    pub shutdown: &'a mut bool,
}

pub(crate) struct Connection {
    stream: Stream,
    pub(crate) info: Arc<ConnInfo>,
    /// This connection's key in the registry of its worker.
    pub(crate) info_key: usize,
    /// Read buffer; all of it is initialized, the data is `rstart..rend`.
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    /// Replies; `wpos..` is not yet sent.
    wbuf: Vec<u8>,
    wpos: usize,
    /// Bytes still to discard (a refused value block).
    swallow: usize,
    /// A long reply still being produced.
    cont: Option<Continuation>,
    /// The socket may hold unread bytes (no short read since the last
    /// readiness event).
    pub(crate) readable: bool,
    /// The peer sent EOF.
    eof: bool,
    /// An event reported a hang-up or error: EOF may sit behind the data.
    pub(crate) hup: bool,
    /// Close once the queued replies are flushed.
    closing: bool,
    /// FIN sent (server stopping).
    write_shut: bool,
    /// Input arrived after the FIN.
    lingered: bool,
    /// In the worker's queue of yielded connections.
    pub(crate) queued: bool,
    /// The first bytes arrived (memcached's protocol negotiation, logged
    /// once at `-vv`).
    negotiated: bool,
    /// This connection's share of [`GROWN`].
    charged: usize,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.uncharge();
    }
}

impl Connection {
    pub(crate) fn new(stream: Stream, info: Arc<ConnInfo>, info_key: usize) -> Connection {
        Connection {
            stream,
            info,
            info_key,
            rbuf: Vec::new(),
            rstart: 0,
            rend: 0,
            wbuf: Vec::new(),
            wpos: 0,
            swallow: 0,
            cont: None,
            readable: true,
            eof: false,
            hup: false,
            closing: false,
            write_shut: false,
            lingered: false,
            queued: false,
            negotiated: false,
            charged: 0,
        }
    }

    /// Accounts a read buffer of `len` bytes in [`GROWN`]; false (nothing
    /// charged) when that would pass the cap.
    fn charge(&mut self, len: usize, env: &Env<'_>) -> bool {
        let want = len.saturating_sub(RBUF_SIZE);
        if want <= self.charged {
            return true;
        }
        let delta = want - self.charged;
        let limit = env.ctx.shared.memory_limit.load(Ordering::Relaxed);
        let cap = usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .max(env.limits.item_size_max.saturating_mul(4));
        let before = GROWN.fetch_add(delta, Ordering::AcqRel);
        if before.saturating_add(delta) > cap {
            GROWN.fetch_sub(delta, Ordering::AcqRel);
            return false;
        }
        self.charged = want;
        true
    }

    /// Gives this connection's share of [`GROWN`] back (its grown read
    /// buffer is gone).
    fn uncharge(&mut self) {
        if self.charged > 0 {
            GROWN.fetch_sub(self.charged, Ordering::AcqRel);
            self.charged = 0;
        }
    }

    pub(crate) fn fd(&self) -> i32 {
        self.info.fd
    }

    #[inline]
    fn pending_out(&self) -> usize {
        self.wbuf.len() - self.wpos
    }

    /// True when no reply waits to be sent (idle-timeout candidates).
    pub(crate) fn nothing_to_send(&self) -> bool {
        self.pending_out() == 0 && self.cont.is_none()
    }

    /// Unsent reply bytes above which the connection stops producing
    /// replies until the client takes some.
    #[inline]
    fn out_limit(&self) -> usize {
        if self.cont.is_some() {
            STREAM_LOW
        } else {
            OUT_HIGH
        }
    }

    /// Runs the connection as far as it can go this wake.
    pub(crate) fn drive(&mut self, env: &mut Env<'_>, pools: &mut Pools) -> Outcome {
        let mut budget = env.reqs_per_event;
        let mut served = false;
        loop {
            let stop = self.process(env, pools, &mut budget, &mut served);
            match stop {
                Stop::Budget => {
                    if self.pending_out() >= YIELD_FLUSH && self.flush(env).is_err() {
                        return Outcome::Close;
                    }
                    env.ctx.stats.conn_yields.incr();
                    self.finish_wake(env, served, pools);
                    return Outcome::Yield;
                }
                Stop::Backpressure => {
                    if self.flush(env).is_err() {
                        return Outcome::Close;
                    }
                    if self.pending_out() >= self.out_limit() {
                        // The client is not reading: wait for writability.
                        self.finish_wake(env, served, pools);
                        return Outcome::Idle;
                    }
                }
                Stop::Closing => {
                    if self.flush(env).is_err() || self.pending_out() == 0 {
                        return Outcome::Close;
                    }
                    self.finish_wake(env, served, pools);
                    return Outcome::Idle;
                }
                Stop::NeedInput => {
                    if self.eof || env.draining || !self.readable {
                        if self.flush(env).is_err() {
                            return Outcome::Close;
                        }
                        if self.pending_out() == 0 {
                            if self.eof {
                                return Outcome::Close;
                            }
                            if env.draining {
                                return self.linger(env, pools);
                            }
                        }
                        self.finish_wake(env, served, pools);
                        return Outcome::Idle;
                    }
                    match self.read(env, pools) {
                        Ok(Got::Eof) => self.eof = true,
                        Ok(Got::Data | Got::Nothing) => {}
                        Err(_) => return Outcome::Close,
                    }
                }
            }
        }
    }

    /// Parses and executes buffered requests until one of the [`Stop`]
    /// conditions.
    fn process(
        &mut self,
        env: &mut Env<'_>,
        pools: &mut Pools,
        budget: &mut usize,
        served: &mut bool,
    ) -> Stop {
        loop {
            if self.closing {
                return Stop::Closing;
            }
            if self.pending_out() >= self.out_limit() {
                return Stop::Backpressure;
            }
            if let Some(cont) = self.cont.as_mut() {
                if *budget == 0 {
                    return Stop::Budget;
                }
                *budget -= 1;
                if self.wbuf.capacity() == 0 {
                    self.wbuf = pools.take_wbuf();
                }
                if exec::resume(&env.ctx, cont, &mut self.wbuf) {
                    self.cont = None;
                }
                continue;
            }
            if self.swallow > 0 {
                let n = self.swallow.min(self.rend - self.rstart);
                self.rstart += n;
                self.swallow -= n;
                if self.swallow > 0 {
                    return Stop::NeedInput;
                }
            }
            if self.rstart == self.rend {
                return Stop::NeedInput;
            }
            if !self.negotiated {
                self.negotiated = true;
                // Only a negotiating listener (-B auto) says which
                // protocol it settled on.
                if env.verbose && env.ctx.shared.config.protocol == BindingProtocol::Auto {
                    tracing::debug!("{}: Client using the ascii protocol", self.info.fd);
                }
            }
            if *budget == 0 {
                return Stop::Budget;
            }
            if !*served {
                *served = true;
                self.info.set_state(State::ParseCmd);
                if self.wbuf.capacity() == 0 {
                    self.wbuf = pools.take_wbuf();
                }
            }
            let before = self.wbuf.len();
            let input = &self.rbuf[self.rstart..self.rend];
            match parse(input, &env.limits) {
                Parsed::Complete { cmd, consumed } => {
                    *budget -= 1;
                    // The parser always consumes what it parsed; guard the
                    // loop and the slices against a contract slip anyway.
                    let consumed = consumed.min(input.len());
                    if consumed == 0 {
                        tracing::error!("parser completed a request of 0 bytes");
                        self.closing = true;
                        continue;
                    }
                    let flow = exec::execute(&env.ctx, &cmd, &mut self.wbuf);
                    if env.verbose {
                        log_exchange(self.info.fd, &input[..consumed], &self.wbuf[before..]);
                    }
                    self.rstart += consumed;
                    match flow {
                        Flow::Continue => {}
                        Flow::Stream(cont) => self.cont = Some(cont),
                        Flow::Close => self.closing = true,
                        Flow::Shutdown { .. } => {
                            self.closing = true;
                            *env.shutdown = true;
                        }
                    }
                }
                Parsed::Incomplete => return Stop::NeedInput,
                Parsed::Invalid {
                    error,
                    consumed,
                    recovery,
                    silent,
                    unlink,
                } => {
                    *budget -= 1;
                    exec::refused(&env.ctx, error, unlink, silent, &mut self.wbuf);
                    if env.verbose {
                        log_exchange(
                            self.info.fd,
                            &input[..consumed.min(input.len())],
                            &self.wbuf[before..],
                        );
                    }
                    self.rstart = (self.rstart + consumed).min(self.rend);
                    match recovery {
                        Recovery::Continue if consumed == 0 => {
                            tracing::error!("parser refused a request of 0 bytes");
                            self.closing = true;
                        }
                        Recovery::Continue => {}
                        Recovery::Swallow(n) => self.swallow = n,
                        Recovery::Close => self.closing = true,
                    }
                }
            }
        }
    }

    /// One read into the free end of the read buffer.
    fn read(&mut self, env: &Env<'_>, pools: &mut Pools) -> io::Result<Got> {
        if self.rbuf.is_empty() {
            self.rbuf = pools.take_rbuf();
            self.rstart = 0;
            self.rend = 0;
        }
        if self.rstart == self.rend {
            self.rstart = 0;
            self.rend = 0;
        }
        if self.rbuf.len() - self.rend < MIN_READ {
            // Only an incomplete request is left (we read only when no
            // complete one is buffered): move it to the front, and grow if
            // it alone fills the buffer.
            if self.rstart > 0 {
                self.rbuf.copy_within(self.rstart..self.rend, 0);
                self.rend -= self.rstart;
                self.rstart = 0;
            }
            if self.rbuf.len() - self.rend < MIN_READ {
                let grown = (self.rbuf.len() * 2).max(RBUF_SIZE);
                if !self.charge(grown, env) {
                    if self.wbuf.capacity() == 0 {
                        self.wbuf = pools.take_wbuf();
                    }
                    self.wbuf.extend_from_slice(
                        crate::protocol::encode::Reply::OutOfMemoryReading.text(),
                    );
                    self.closing = true;
                    return Ok(Got::Nothing);
                }
                match pools.take_big_rbuf(grown) {
                    Some(mut big) => {
                        big[..self.rend].copy_from_slice(&self.rbuf[..self.rend]);
                        pools.put_rbuf(std::mem::replace(&mut self.rbuf, big));
                    }
                    None => self.rbuf.resize(grown, 0),
                }
            }
        }
        loop {
            match self.stream.read(&mut self.rbuf[self.rend..]) {
                Ok(0) => return Ok(Got::Eof),
                Ok(n) => {
                    if n < self.rbuf.len() - self.rend && !self.hup {
                        // A short read drained the socket; the next bytes
                        // will come with a new edge. Not so for an EOF that
                        // came in with the data: after a hang-up event we
                        // read on until EOF (or WouldBlock).
                        self.readable = false;
                    }
                    self.rend += n;
                    env.ctx.stats.bytes_read.add(n as u64);
                    return Ok(Got::Data);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    // Nothing new; NeedInput will now end the wake.
                    return Ok(Got::Nothing);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The server is stopping and every reply is written: send FIN, then
    /// read and drop whatever the client still sends. Closing with unread
    /// input would make the kernel answer with a reset and drop replies
    /// not yet delivered, so a client that keeps sending is waited for
    /// until its EOF (or the worker's drain deadline); a quiet one is
    /// closed at once.
    fn linger(&mut self, env: &Env<'_>, pools: &mut Pools) -> Outcome {
        if !self.write_shut {
            self.write_shut = true;
            if self.stream.shutdown_write().is_err() {
                return Outcome::Close;
            }
        }
        self.rstart = 0;
        self.rend = 0;
        loop {
            match self.read(env, pools) {
                Ok(Got::Data) => {
                    self.rstart = 0;
                    self.rend = 0;
                    self.lingered = true;
                }
                Ok(Got::Nothing) if !self.lingered => return Outcome::Close,
                Ok(Got::Nothing) => {
                    self.info.set_state(State::Closing);
                    self.release(pools);
                    return Outcome::Idle;
                }
                Ok(Got::Eof) | Err(_) => return Outcome::Close,
            }
        }
    }

    /// Writes queued replies until done or the socket is full.
    fn flush(&mut self, env: &Env<'_>) -> io::Result<()> {
        while self.wpos < self.wbuf.len() {
            match self.stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.wpos += n;
                    env.ctx.stats.bytes_written.add(n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
        } else if self.wpos >= self.wbuf.len() - self.wpos {
            // More sent than left: moving the rest costs less than what
            // was already written (amortized linear).
            self.wbuf.drain(..self.wpos);
            self.wpos = 0;
        }
        Ok(())
    }

    /// End of a wake that keeps the connection: publish state and give
    /// unused buffers back.
    fn finish_wake(&mut self, env: &Env<'_>, served: bool, pools: &mut Pools) {
        if served {
            self.info.set_last_cmd(env.ctx.now);
        }
        let state = if self.closing {
            State::Closing
        } else if self.pending_out() > 0 || self.cont.is_some() {
            State::Mwrite
        } else if self.swallow > 0 {
            State::Swallow
        } else if self.rstart < self.rend && self.rbuf[self.rstart..self.rend].contains(&b'\n') {
            State::Nread
        } else {
            State::Read
        };
        self.info.set_state(state);
        self.release(pools);
    }

    /// Gives back buffers that hold nothing; swaps a grown read buffer for
    /// a standard one once its contents fit.
    pub(crate) fn release(&mut self, pools: &mut Pools) {
        if self.rstart == self.rend {
            if !self.rbuf.is_empty() {
                pools.put_rbuf(std::mem::take(&mut self.rbuf));
            }
            self.uncharge();
            self.rstart = 0;
            self.rend = 0;
        } else if self.rbuf.len() > RBUF_SIZE && self.rend - self.rstart <= RBUF_SIZE / 2 {
            let mut small = pools.take_rbuf();
            let len = self.rend - self.rstart;
            small[..len].copy_from_slice(&self.rbuf[self.rstart..self.rend]);
            pools.put_rbuf(std::mem::replace(&mut self.rbuf, small));
            self.uncharge();
            self.rstart = 0;
            self.rend = len;
        }
        if self.pending_out() == 0 && self.wbuf.capacity() > 0 {
            self.wpos = 0;
            pools.put_wbuf(std::mem::take(&mut self.wbuf));
        }
    }
}

/// `-vv`: the request line and the reply, the way memcached logs them.
fn log_exchange(fd: i32, request: &[u8], reply: &[u8]) {
    let line_end = request
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(request.len());
    let line = request[..line_end]
        .strip_suffix(b"\r")
        .unwrap_or(&request[..line_end]);
    tracing::debug!("<{fd} {}", String::from_utf8_lossy(line));
    let mut rest = reply;
    while !rest.is_empty() {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap_or(rest.len());
        let line = &rest[..end];
        let mut next = (end + 2).min(rest.len());
        if let Some(header) = line.strip_prefix(b"VALUE ") {
            let mut parts = header.split(|&b| b == b' ');
            let key = parts.next().unwrap_or(b"");
            let len = parts
                .nth(1)
                .and_then(|l| std::str::from_utf8(l).ok())
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(0);
            tracing::debug!(">{fd} sending key {}", String::from_utf8_lossy(key));
            next = next.saturating_add(len).saturating_add(2).min(rest.len());
        } else {
            tracing::debug!(">{fd} {}", String::from_utf8_lossy(line));
        }
        rest = &rest[next..];
    }
}
