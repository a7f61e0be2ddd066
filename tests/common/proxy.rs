//! A TCP proxy for the replication link, driven by a test: it forwards, cuts,
//! freezes (blackhole), throttles or delays the bytes between a node and its
//! peer. Threads and std::net only.
//!
//! Each accepted connection gets one reader and one writer thread per
//! direction. The reader applies the mode when it reads (blackhole drops,
//! throttle paces the reads, so a throttled link pushes back on the sender
//! like a slow network does); the writer applies the delay and counts what it
//! forwarded. A bounded queue between them keeps the proxy's own buffering
//! small (at most `QUEUE_CHUNKS` chunks per direction).
//!
//! Blackhole: bytes are read and thrown away in both directions and an end of
//! stream is not passed on, as on a frozen network. A connection that lost
//! bytes that way is closed when the mode leaves blackhole, so a healed link
//! never carries a stream with a hole in it.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const CHUNK: usize = 16 * 1024;
const QUEUE_CHUNKS: usize = 16;
const POLL: Duration = Duration::from_millis(10);

/// What the proxy does with the bytes it reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Pass,
    Cut,
    Blackhole,
    /// Bytes per second, for each direction separately.
    Throttle(u64),
    Delay(Duration),
}

/// One accepted connection: both sockets (to shut them down from outside)
/// and whether a blackhole dropped any of its bytes.
struct Conn {
    client: TcpStream,
    upstream: TcpStream,
    tainted: AtomicBool,
    closed: AtomicBool,
}

impl Conn {
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.upstream.shutdown(Shutdown::Both);
    }

    fn taint(&self) {
        self.tainted.store(true, Ordering::SeqCst);
    }
}

/// A token bucket shared by every connection for one direction.
struct Bucket {
    tokens: f64,
    last: Instant,
}

struct Shared {
    mode: Mutex<Mode>,
    stop: AtomicBool,
    conns: Mutex<Vec<Arc<Conn>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Bytes written to the upstream (client -> upstream).
    up_bytes: AtomicU64,
    /// Bytes written to the client (upstream -> client).
    down_bytes: AtomicU64,
    accepted: AtomicU64,
    buckets: [Mutex<Bucket>; 2],
}

impl Shared {
    fn mode(&self) -> Mode {
        *self.mode.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn spawn(self: &Arc<Self>, f: impl FnOnce() + Send + 'static) {
        let h = std::thread::spawn(f);
        let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        threads.retain(|t| !t.is_finished());
        threads.push(h);
    }

    /// Waits until `n` bytes may pass in direction `dir` at `rate` bytes/s.
    /// Returns false if the proxy stopped or the mode changed meanwhile.
    fn take_tokens(&self, dir: usize, rate: u64, n: usize) -> bool {
        let rate_f = rate.max(1) as f64;
        // a small burst allowance: 1/20 s worth of bytes (at least one chunk
        // of what the reader reads, so a read always fits)
        let burst = (rate_f / 20.0).max(n as f64);
        loop {
            if self.stopped() || self.mode() != Mode::Throttle(rate) {
                return false;
            }
            let wait = {
                let mut b = self.buckets[dir].lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                let dt = now.duration_since(b.last).as_secs_f64();
                b.last = now;
                b.tokens = (b.tokens + dt * rate_f).min(burst);
                if b.tokens >= n as f64 {
                    b.tokens -= n as f64;
                    return true;
                }
                (n as f64 - b.tokens) / rate_f
            };
            std::thread::sleep(Duration::from_secs_f64(wait.min(0.05)));
        }
    }
}

/// What flows from a reader to its writer.
enum Msg {
    Data(Instant, Vec<u8>),
    Eof,
}

pub struct Proxy {
    shared: Arc<Shared>,
    port: u16,
    upstream: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on 127.0.0.1:<free port> and forwards every connection to
    /// `upstream`, in pass mode.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let port = listener.local_addr().expect("proxy addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let now = Instant::now();
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Pass),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
            up_bytes: AtomicU64::new(0),
            down_bytes: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            buckets: [
                Mutex::new(Bucket {
                    tokens: 0.0,
                    last: now,
                }),
                Mutex::new(Bucket {
                    tokens: 0.0,
                    last: now,
                }),
            ],
        });
        let sh = shared.clone();
        let acceptor = std::thread::spawn(move || accept_loop(sh, listener, upstream));
        Proxy {
            shared,
            port,
            upstream,
            acceptor: Some(acceptor),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    pub fn mode(&self) -> Mode {
        self.shared.mode()
    }

    fn set_mode(&self, mode: Mode) {
        let old = {
            let mut m = self.shared.mode.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *m, mode)
        };
        let mut conns = self.shared.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.retain(|c| !c.closed.load(Ordering::SeqCst));
        if mode == Mode::Cut {
            for c in conns.iter() {
                c.close();
            }
            conns.clear();
        } else if old == Mode::Blackhole && mode != Mode::Blackhole {
            conns.retain(|c| {
                if c.tainted.load(Ordering::SeqCst) {
                    c.close();
                    false
                } else {
                    true
                }
            });
        }
        if let Mode::Throttle(_) = mode {
            for b in &self.shared.buckets {
                let mut b = b.lock().unwrap_or_else(|e| e.into_inner());
                b.tokens = 0.0;
                b.last = Instant::now();
            }
        }
    }

    /// Forward everything.
    pub fn pass(&self) {
        self.set_mode(Mode::Pass);
    }

    /// Close every current connection; accept new ones and close them at once.
    pub fn cut(&self) {
        self.set_mode(Mode::Cut);
    }

    /// Keep connections open, drop every byte both ways.
    pub fn blackhole(&self) {
        self.set_mode(Mode::Blackhole);
    }

    /// At most `bytes_per_sec` in each direction (shared by all connections).
    pub fn throttle(&self, bytes_per_sec: u64) {
        self.set_mode(Mode::Throttle(bytes_per_sec));
    }

    /// Forward each chunk `d` after it was read.
    pub fn delay(&self, d: Duration) {
        self.set_mode(Mode::Delay(d));
    }

    /// Bytes forwarded client -> upstream so far.
    pub fn bytes_up(&self) -> u64 {
        self.shared.up_bytes.load(Ordering::SeqCst)
    }

    /// Bytes forwarded upstream -> client so far.
    pub fn bytes_down(&self) -> u64 {
        self.shared.down_bytes.load(Ordering::SeqCst)
    }

    /// Connections accepted so far (including those closed by a cut).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections currently open through the proxy.
    pub fn open_connections(&self) -> usize {
        self.shared
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|c| !c.closed.load(Ordering::SeqCst))
            .count()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        for c in self
            .shared
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            c.close();
        }
        let threads: Vec<_> = self
            .shared
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

fn accept_loop(shared: Arc<Shared>, listener: TcpListener, upstream: SocketAddr) {
    while !shared.stopped() {
        match listener.accept() {
            Ok((client, _)) => {
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                if shared.mode() == Mode::Cut {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let _ = client.set_nonblocking(false);
                let up = match TcpStream::connect_timeout(&upstream, Duration::from_secs(2)) {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    }
                };
                start_conn(&shared, client, up);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

fn start_conn(shared: &Arc<Shared>, client: TcpStream, up: TcpStream) {
    let _ = client.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let clones = (
        client.try_clone(),
        client.try_clone(),
        up.try_clone(),
        up.try_clone(),
    );
    let (Ok(c_read), Ok(c_write), Ok(u_read), Ok(u_write)) = clones else {
        let _ = client.shutdown(Shutdown::Both);
        let _ = up.shutdown(Shutdown::Both);
        return;
    };
    let conn = Arc::new(Conn {
        client,
        upstream: up,
        tainted: AtomicBool::new(false),
        closed: AtomicBool::new(false),
    });
    {
        let mut conns = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.retain(|c| !c.closed.load(Ordering::SeqCst));
        conns.push(conn.clone());
    }
    // client -> upstream is direction 0, upstream -> client direction 1
    for (dir, src, dst) in [(0usize, c_read, u_write), (1usize, u_read, c_write)] {
        let (tx, rx) = sync_channel::<Msg>(QUEUE_CHUNKS);
        let sh = shared.clone();
        let c = conn.clone();
        shared.spawn(move || reader(sh, dir, src, tx, c));
        let sh = shared.clone();
        let c = conn.clone();
        shared.spawn(move || writer(sh, dir, dst, rx, c));
    }
}

fn reader(
    shared: Arc<Shared>,
    dir: usize,
    mut src: TcpStream,
    tx: SyncSender<Msg>,
    conn: Arc<Conn>,
) {
    let _ = src.set_read_timeout(Some(POLL));
    let mut buf = vec![0u8; CHUNK];
    let mut eof_swallowed = false;
    while !shared.stopped() {
        let mode = shared.mode();
        if eof_swallowed {
            // the source closed while blackholed: nothing more to read; a
            // change of mode closes this connection (it is tainted)
            std::thread::sleep(POLL);
            if conn.closed.load(Ordering::SeqCst) {
                break;
            }
            continue;
        }
        let want = match mode {
            // read small pieces so the pacing is smooth
            Mode::Throttle(rate) => ((rate / 50) as usize).clamp(1, CHUNK),
            _ => CHUNK,
        };
        let n = match src.read(&mut buf[..want]) {
            Ok(0) => {
                if shared.mode() == Mode::Blackhole {
                    conn.taint();
                    eof_swallowed = true;
                    continue;
                }
                let _ = tx.send(Msg::Eof);
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                continue
            }
            Err(_) => {
                conn.close();
                return;
            }
        };
        let read_at = Instant::now();
        // the mode at the time the bytes arrived decides their fate
        match shared.mode() {
            Mode::Blackhole => {
                conn.taint();
                continue;
            }
            Mode::Cut => {
                conn.close();
                return;
            }
            Mode::Throttle(rate) => {
                if !shared.take_tokens(dir, rate, n) && shared.stopped() {
                    return;
                }
                if shared.mode() == Mode::Blackhole {
                    conn.taint();
                    continue;
                }
            }
            Mode::Pass | Mode::Delay(_) => {}
        }
        let mut msg = Msg::Data(read_at, buf[..n].to_vec());
        // a full queue: wait, but keep watching for stop
        loop {
            match tx.try_send(msg) {
                Ok(()) => break,
                Err(std::sync::mpsc::TrySendError::Full(m)) => {
                    if shared.stopped() {
                        return;
                    }
                    msg = m;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                    conn.close();
                    return;
                }
            }
        }
    }
}

fn writer(shared: Arc<Shared>, dir: usize, mut dst: TcpStream, rx: Receiver<Msg>, conn: Arc<Conn>) {
    let counter = if dir == 0 {
        &shared.up_bytes
    } else {
        &shared.down_bytes
    };
    let _ = dst.set_write_timeout(Some(Duration::from_millis(100)));
    while !shared.stopped() {
        let msg = match rx.recv_timeout(POLL) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        match msg {
            Msg::Eof => {
                // the source is gone: close both ways (the replication link
                // has no use for half-closed connections)
                conn.close();
                break;
            }
            Msg::Data(read_at, bytes) => {
                if let Mode::Delay(d) = shared.mode() {
                    let due = read_at + d;
                    while Instant::now() < due {
                        if shared.stopped() {
                            return;
                        }
                        std::thread::sleep((due - Instant::now()).min(POLL));
                    }
                }
                if shared.mode() == Mode::Blackhole {
                    conn.taint();
                    continue;
                }
                let mut off = 0;
                while off < bytes.len() {
                    if shared.stopped() {
                        return;
                    }
                    match dst.write(&bytes[off..]) {
                        Ok(0) => {
                            conn.close();
                            return;
                        }
                        Ok(n) => {
                            off += n;
                            counter.fetch_add(n as u64, Ordering::SeqCst);
                        }
                        Err(e)
                            if e.kind() == ErrorKind::WouldBlock
                                || e.kind() == ErrorKind::TimedOut
                                || e.kind() == ErrorKind::Interrupted =>
                        {
                            continue
                        }
                        Err(_) => {
                            conn.close();
                            return;
                        }
                    }
                }
            }
        }
    }
}
