//! Resource bounds under hostile clients, against the spawned binary
//! (issue 6; reliability.md T3, T4, T6, T7, T9 and the security defaults).
//!
//! Counts are CI-sized by default. `TWINCACHE_RESOURCE_FULL=1` runs the
//! full sizes of the issue (10x -m written, 2,000 refused connections,
//! 1,000 half-sent commands, 5,000 idle connections). Each test prints one
//! line with its figures, e.g.
//! `T3 memory: m=64MB written=640MB peak_hwm=... limit=... PASS`.
//!
//! Memory is read from /proc/<pid>/status of the server (VmRSS, VmHWM).
//! Everything runs on loopback; every server is stopped by its PID. The
//! tests of this binary run one at a time (latency figures would blur).

mod common;

use common::{free_port, Client, Server};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn full() -> bool {
    std::env::var("TWINCACHE_RESOURCE_FULL").is_ok_and(|v| v == "1")
}

/// CI count, or the full count under TWINCACHE_RESOURCE_FULL=1.
fn scaled(ci: usize, full_size: usize) -> usize {
    if full() {
        full_size
    } else {
        ci
    }
}

const MB: u64 = 1024;

/// A field of /proc/<pid>/status in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| {
            v.trim_start_matches(':')
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

fn rss(pid: u32) -> u64 {
    status_kb(pid, "VmRSS")
}

fn hwm(pid: u32) -> u64 {
    status_kb(pid, "VmHWM")
}

/// This process needs many sockets: raise its soft RLIMIT_NOFILE to the
/// hard limit.
fn raise_nofile(need: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft < need {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard.max(soft), hard);
    }
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    assert!(
        soft >= need,
        "RLIMIT_NOFILE {soft} < {need}: raise the hard limit to run this test"
    );
}

/// A small deterministic PRNG (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ---- latency probes ------------------------------------------------------

/// Clients doing `get` round trips on established connections until
/// stopped; they return every round-trip time.
struct Probes {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Vec<Duration>>>,
}

impl Probes {
    fn start(port: u16, clients: usize) -> Probes {
        let stop = Arc::new(AtomicBool::new(false));
        // Connect before returning, so the probes hold their slots.
        let conns: Vec<Client> = (0..clients).map(|_| Client::connect(port)).collect();
        let threads = conns
            .into_iter()
            .enumerate()
            .map(|(i, mut c)| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let key = format!("probe{i}");
                    assert_eq!(
                        c.call_line(format!("set {key} 0 0 5\r\nhello\r\n").as_bytes()),
                        "STORED\r\n"
                    );
                    let req = format!("get {key}\r\n");
                    let mut times = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        c.send(req.as_bytes());
                        let r = c.read_until_any(&[b"END\r\n"]);
                        times.push(t.elapsed());
                        assert!(r.starts_with(b"VALUE "), "probe got {r:?}");
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    times
                })
            })
            .collect();
        Probes { stop, threads }
    }

    /// Stops the probes; returns (samples, p99).
    fn finish(self) -> (usize, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let mut all: Vec<Duration> = self
            .threads
            .into_iter()
            .flat_map(|t| t.join().expect("probe thread"))
            .collect();
        all.sort();
        assert!(!all.is_empty(), "no probe samples");
        let i = ((all.len() as f64) * 0.99).ceil() as usize;
        (all.len(), all[i.min(all.len()) - 1])
    }
}

const P99_LIMIT: Duration = Duration::from_millis(5);

// ---- T3: 10x -m written at -m 64 -----------------------------------------

/// Mixed value sizes: mostly small, some medium, a few large.
fn value_size(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=49 => 50 + rng.below(450) as usize,
        50..=79 => 1000 + rng.below(3000) as usize,
        80..=94 => 10_000 + rng.below(40_000) as usize,
        _ => 100_000 + rng.below(400_000) as usize,
    }
}

#[test]
fn memory_stays_bounded_when_ten_times_m_is_written() {
    let _g = serial();
    let m_mb: u64 = 64;
    let factor = scaled(3, 10) as u64;
    let server = Server::start(&["-m", "64"]);
    let pid = server.pid();
    let mut c = server.connect();
    let target = factor * m_mb * 1024 * 1024;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut written: u64 = 0;
    let mut n: u64 = 0;
    let filler = vec![b'v'; 500_000];
    let started = Instant::now();
    while written < target {
        // a batch of 32 sets, then their 32 replies
        let mut batch = Vec::new();
        for _ in 0..32 {
            let size = value_size(&mut rng);
            batch.extend_from_slice(format!("set key:{n} 0 0 {size}\r\n").as_bytes());
            batch.extend_from_slice(&filler[..size]);
            batch.extend_from_slice(b"\r\n");
            written += size as u64;
            n += 1;
        }
        c.send(&batch);
        let mut got = 0;
        while got < 32 {
            let line = c.read_line();
            assert_eq!(line, b"STORED\r\n", "after {n} sets");
            got += 1;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let peak = hwm(pid);
    let now_rss = rss(pid);
    let evictions: u64 = c
        .stat("evictions")
        .and_then(|v| v.parse().ok())
        .expect("evictions");
    let bytes: u64 = c.stat("bytes").and_then(|v| v.parse().ok()).expect("bytes");
    // 1.10 x m + 24 MB, in kB
    let limit_kb = (m_mb * 1024) * 110 / 100 + 24 * MB;
    let pass = peak <= limit_kb;
    println!(
        "T3 memory: m=64MB written={}MB items={n} in {secs:.1}s bytes={}MB evictions={evictions} \
         peak_hwm={peak}kB rss_end={now_rss}kB limit={limit_kb}kB {}",
        written >> 20,
        bytes >> 20,
        if pass { "PASS" } else { "FAIL" }
    );
    assert!(
        evictions > 0,
        "nothing was evicted: the test did not fill -m"
    );
    assert!(
        pass,
        "peak RSS {peak} kB over 1.10 x 64 MB + 24 MB = {limit_kb} kB"
    );
}

// ---- T4: a 64 MB line without a newline ----------------------------------

/// Writes `total` bytes of `prefix` + filler without a newline; returns
/// the bytes the server took before it closed (or all of them).
fn send_unterminated(port: u16, prefix: &[u8], total: usize) -> (usize, bool, Duration) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_write_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let chunk = {
        let mut v = prefix.to_vec();
        // `a ` pairs look like a multi-get key list
        while v.len() < 64 * 1024 {
            v.extend_from_slice(b"a ");
        }
        v
    };
    let filler = vec![b'a'; 64 * 1024];
    let mut sent = 0;
    let mut first = true;
    let mut write_failed = false;
    while sent < total {
        let part: &[u8] = if first { &chunk } else { &filler };
        first = false;
        match s.write(part) {
            Ok(n) => sent += n,
            Err(_) => {
                write_failed = true;
                break;
            }
        }
    }
    // The server must have closed (or close now).
    let t = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    let closed = write_failed
        || match s.read(&mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        };
    (sent, closed, t.elapsed())
}

#[test]
fn unterminated_64mb_line_is_closed_without_growth() {
    let _g = serial();
    let server = Server::start(&["-m", "64"]);
    let pid = server.pid();
    let total = 64 * 1024 * 1024;
    for prefix in [&b"get "[..], b"gets ", b"set ", b"x"] {
        let before = rss(pid);
        let (sent, closed, wait) = send_unterminated(server.port, prefix, total);
        let after_hwm = hwm(pid);
        let after = rss(pid);
        let growth = after_hwm.max(after).saturating_sub(before);
        let pass = closed && growth <= 8 * MB;
        println!(
            "T4 unterminated {:?} line: sent={}kB closed={closed} (waited {wait:?}) \
             rss {before}kB -> {after}kB hwm={after_hwm}kB growth={growth}kB limit=8192kB {}",
            String::from_utf8_lossy(prefix),
            sent / 1024,
            if pass { "PASS" } else { "FAIL" }
        );
        assert!(closed, "{prefix:?}: connection not closed");
        assert!(growth <= 8 * MB, "{prefix:?}: RSS grew by {growth} kB");
        // the server still serves
        assert_eq!(
            server.connect().call_line(b"version\r\n"),
            "VERSION 1.6.18\r\n"
        );
    }
}

// ---- T6: connections beyond -c -------------------------------------------

const TOO_MANY: &[u8] = b"ERROR Too many open connections\r\n";

/// Reads a whole short reply until EOF (bounded by a deadline).
fn read_to_close(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    s.set_read_timeout(Some(limit)).expect("timeout");
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (out, false)
            }
            Err(_) => return (out, true),
        }
    }
}

#[test]
fn connections_beyond_c_are_refused_and_others_stay_fast() {
    let _g = serial();
    let extra = scaled(500, 2000);
    raise_nofile(4096);
    let server = Server::start(&["-c", "64"]);
    // Fill the server up to -c with clients that answer `version`.
    let mut held = Vec::new();
    loop {
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(b"version\r\n").expect("write");
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).expect("read");
        if &buf[..n] == b"VERSION 1.6.18\r\n" {
            held.push(s);
            assert!(held.len() < 1000, "-c 64 not enforced");
            continue;
        }
        assert_eq!(&buf[..n], TOO_MANY);
        break;
    }
    let capacity = held.len();
    // Free four slots for the latency probes.
    held.truncate(capacity - 4);
    std::thread::sleep(Duration::from_millis(100));
    let probes = Probes::start(server.port, 4);
    std::thread::sleep(Duration::from_millis(100));
    // The flood: `extra` connections, 100 at a time.
    let t = Instant::now();
    let mut refused = 0;
    let mut wrong = Vec::new();
    let mut left = extra;
    while left > 0 {
        let n = left.min(100);
        left -= n;
        let mut batch: Vec<TcpStream> = (0..n)
            .map(|_| TcpStream::connect(("127.0.0.1", server.port)).expect("connect"))
            .collect();
        for s in &mut batch {
            let (got, closed) = read_to_close(s, Duration::from_secs(2));
            if got == TOO_MANY && closed {
                refused += 1;
            } else if wrong.len() < 5 {
                wrong.push(format!(
                    "{:?} closed={closed}",
                    String::from_utf8_lossy(&got)
                ));
            }
        }
    }
    let flood = t.elapsed();
    let (samples, p99) = probes.finish();
    // Right after: free slots are served at once.
    drop(held.drain(..10));
    let t = Instant::now();
    let accepted = common::eventually(Duration::from_secs(1), || {
        let mut s = match TcpStream::connect(("127.0.0.1", server.port)) {
            Ok(s) => s,
            Err(_) => return false,
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let _ = s.write_all(b"version\r\n");
        let mut buf = [0u8; 64];
        matches!(s.read(&mut buf), Ok(n) if &buf[..n] == b"VERSION 1.6.18\r\n")
    });
    let accept_after = t.elapsed();
    let rejected: u64 = server
        .connect_retry()
        .stat("rejected_connections")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let pass = refused == extra && p99 < P99_LIMIT && accepted;
    println!(
        "T6 beyond -c: capacity={capacity} extra={extra} refused={refused} in {flood:?} \
         rejected_connections={rejected} probe_samples={samples} p99={p99:?} \
         new_accepted_after={accept_after:?} {}",
        if pass { "PASS" } else { "FAIL" }
    );
    assert_eq!(refused, extra, "not refused as expected: {wrong:?}");
    assert!(
        accepted,
        "a new connection was not accepted after the flood"
    );
    assert!(p99 < P99_LIMIT, "existing clients' p99 {p99:?} >= 5 ms");
}

/// Connects, retrying while the server is still at its connection limit.
trait ConnectRetry {
    fn connect_retry(&self) -> Client;
}

impl ConnectRetry for Server {
    fn connect_retry(&self) -> Client {
        for _ in 0..100 {
            let mut c = self.connect();
            let (got, _) = {
                c.send(b"version\r\n");
                c.read_for(Duration::from_millis(200))
            };
            if got.starts_with(b"VERSION ") {
                return c;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no connection slot came free");
    }
}

// ---- T7: half-sent commands ----------------------------------------------

#[test]
fn half_sent_commands_do_not_slow_other_clients() {
    let _g = serial();
    let n = scaled(300, 1000);
    raise_nofile(n as u64 + 512);
    let server = Server::start(&["-c", "4096"]);
    let pid = server.pid();
    let before = rss(pid);
    let halves: [&[u8]; 6] = [
        b"get k",
        b"set k 0 0 100\r\nabc",
        b"set k 0 0 10",
        b"gets a b c d e f g h i j k l m n o p",
        b"delete",
        b"incr k 1",
    ];
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        s.write_all(halves[i % halves.len()]).expect("write");
        held.push(s);
    }
    std::thread::sleep(Duration::from_millis(200));
    let probes = Probes::start(server.port, 4);
    std::thread::sleep(Duration::from_secs(2));
    let (samples, p99) = probes.finish();
    let after = rss(pid);
    let growth = after.saturating_sub(before);
    // The half-sent commands are still pending, not answered.
    let mut answered = 0;
    for s in held.iter_mut().take(50) {
        s.set_nonblocking(true).expect("nonblocking");
        let mut buf = [0u8; 16];
        if let Ok(n) = s.read(&mut buf) {
            if n > 0 {
                answered += 1;
            }
        }
    }
    let pass = p99 < P99_LIMIT && answered == 0;
    println!(
        "T7 half-sent: connections={n} probe_samples={samples} p99={p99:?} \
         rss {before}kB -> {after}kB ({growth}kB, {:.1} kB each) {}",
        growth as f64 / n as f64,
        if pass { "PASS" } else { "FAIL" }
    );
    assert_eq!(answered, 0, "half-sent commands were answered");
    assert!(p99 < P99_LIMIT, "other clients' p99 {p99:?} >= 5 ms");
    // Completing one of them works.
    let s = &mut held[0];
    s.set_nonblocking(false).expect("blocking");
    s.write_all(b"\r\n").expect("write");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).expect("read");
    assert_eq!(&buf, b"END\r\n");
}

// ---- a client that pipelines 200k gets and never reads -------------------

#[test]
fn pipelined_gets_never_read_stay_bounded() {
    let _g = serial();
    let server = Server::start(&["-m", "64"]);
    let pid = server.pid();
    let mut c = server.connect();
    let value = vec![b'v'; 4096];
    c.send(b"set big 0 0 4096\r\n");
    c.send(&value);
    assert_eq!(c.call_line(b"\r\n"), "STORED\r\n");
    let before = rss(pid);
    let gets = 200_000;
    let payload = b"get big\r\n".repeat(gets);
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    s.set_nonblocking(true).expect("nonblocking");
    let mut sent = 0;
    let mut stalled_since: Option<Instant> = None;
    while sent < payload.len() {
        match s.write(&payload[sent..]) {
            Ok(n) => {
                sent += n;
                stalled_since = None;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let since = *stalled_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(2) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let peak = hwm(pid);
    let after = rss(pid);
    let growth = peak.max(after).saturating_sub(before);
    // Another client is served meanwhile.
    let mut other = server.connect();
    let served = other.call_line(b"version\r\n") == "VERSION 1.6.18\r\n";
    let pass = growth <= 64 * MB && served;
    println!(
        "never-reading client: gets_sent={} of {gets} (replies would be {}MB) \
         rss {before}kB -> {after}kB hwm={peak}kB growth={growth}kB limit=65536kB {}",
        sent / 9,
        (sent / 9 * 4120) >> 20,
        if pass { "PASS" } else { "FAIL" }
    );
    assert!(served, "another client was not served");
    assert!(growth <= 64 * MB, "RSS grew by {growth} kB");
    drop(s);
}

// ---- T9: idle connections --------------------------------------------------

fn open_idle(port: u16, n: usize) -> Vec<TcpStream> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        // One request each, so the connection has been through a worker.
        s.write_all(b"version\r\n").expect("write");
        v.push(s);
    }
    for s in &mut v {
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 16];
        let mut got = 0;
        while got < 16 {
            match s.read(&mut buf[got..]) {
                Ok(0) => panic!("closed"),
                Ok(k) => got += k,
                Err(e) => panic!("read: {e}"),
            }
        }
        assert_eq!(&buf, b"VERSION 1.6.18\r\n");
    }
    v
}

#[test]
fn idle_connections_are_cheap_and_idle_timeout_closes_them() {
    let _g = serial();
    let n = scaled(1000, 5000);
    raise_nofile(n as u64 + 512);
    let server = Server::start(&["-c", "10000"]);
    let pid = server.pid();
    // warm the workers up
    drop(open_idle(server.port, 16));
    std::thread::sleep(Duration::from_millis(200));
    let before = rss(pid);
    let conns = open_idle(server.port, n);
    std::thread::sleep(Duration::from_millis(300));
    let after = rss(pid);
    let per_conn = (after.saturating_sub(before) as f64 * 1024.0) / n as f64;
    let pass = per_conn <= 8192.0;
    println!(
        "T9 idle: connections={n} rss {before}kB -> {after}kB = {per_conn:.0} bytes each \
         limit=8192 {}",
        if pass { "PASS" } else { "FAIL" }
    );
    assert!(pass, "{per_conn:.0} bytes of RSS per idle connection");
    drop(conns);
    drop(server);

    // -o idle_timeout: idle connections are closed, an active one is not.
    let n2 = n.min(1000);
    let server = Server::start(&["-c", "10000", "-o", "idle_timeout=2"]);
    let mut idle = open_idle(server.port, n2);
    let mut active = server.connect();
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(4500) {
        assert_eq!(active.call_line(b"version\r\n"), "VERSION 1.6.18\r\n");
        std::thread::sleep(Duration::from_millis(250));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut closed = 0;
    for s in &mut idle {
        let left = deadline.saturating_duration_since(Instant::now());
        let (_, c) = read_to_close(s, left.max(Duration::from_millis(1)));
        if c {
            closed += 1;
        }
    }
    let kicks: u64 = active
        .stat("idle_kicks")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let pass = closed == n2;
    println!(
        "T9 idle_timeout=2: idle={n2} closed={closed} idle_kicks={kicks} active client kept {}",
        if pass { "PASS" } else { "FAIL" }
    );
    assert_eq!(closed, n2, "idle connections not closed by idle_timeout");
    assert!(kicks >= n2 as u64, "idle_kicks {kicks}");
}

// ---- security defaults -----------------------------------------------------

/// Socket inodes held by `pid`.
fn socket_inodes(pid: u32) -> Vec<String> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in rd.flatten() {
            if let Ok(target) = std::fs::read_link(e.path()) {
                let t = target.to_string_lossy().into_owned();
                if let Some(inode) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                    v.push(inode.to_string());
                }
            }
        }
    }
    v
}

/// Rows of /proc/net/<table> as (local address hex, state hex, inode).
fn net_rows(table: &str) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(format!("/proc/net/{table}")).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 9).then(|| (f[1].to_string(), f[3].to_string(), f[9].to_string()))
        })
        .collect()
}

#[test]
fn udp_is_refused_and_never_listened_on() {
    let _g = serial();
    // -U 1 is refused at start-up with a message.
    let port = free_port();
    let mut cmd = Command::new(common::binary());
    cmd.args(["-p", &port.to_string(), "-l", "127.0.0.1", "-U", "1"]);
    if nix::unistd::geteuid().is_root() {
        cmd.args(["-u", "root"]);
    }
    let ran = common::tools::run_limited(&mut cmd, Duration::from_secs(10));
    println!("-U 1: {}", ran.transcript().replace('\n', " | "));
    assert!(
        ran.status.is_some_and(|s| !s.success()),
        "-U 1 was not refused"
    );
    assert!(
        ran.stderr.contains("UDP"),
        "no reason given: {}",
        ran.stderr
    );
    // A normal start holds no UDP socket at all.
    let server = Server::start(&[]);
    let inodes = socket_inodes(server.pid());
    assert!(!inodes.is_empty(), "no sockets seen for the server");
    let udp: Vec<_> = net_rows("udp")
        .into_iter()
        .chain(net_rows("udp6"))
        .filter(|(_, _, inode)| inodes.contains(inode))
        .collect();
    println!("server sockets {inodes:?}; UDP among them: {udp:?}");
    assert!(udp.is_empty(), "the server holds UDP sockets: {udp:?}");
}

#[test]
fn listens_on_loopback_only_by_default() {
    let _g = serial();
    // Server::start always passes -l, so start this one by hand.
    let mut started = None;
    for _ in 0..5 {
        let port = free_port();
        let mut cmd = Command::new(common::binary());
        cmd.args(["-p", &port.to_string()]);
        if nix::unistd::geteuid().is_root() {
            cmd.args(["-u", "root"]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn");
        let mut s = Server { child, port };
        if s.wait_ready(Duration::from_secs(10)) {
            started = Some(s);
            break;
        }
        s.stop();
    }
    let server = started.expect("server did not start");
    let inodes = socket_inodes(server.pid());
    let port_hex = format!("{:04X}", server.port);
    // state 0A = LISTEN
    let listeners: Vec<(String, String)> = ["tcp", "tcp6"]
        .iter()
        .flat_map(|t| net_rows(t).into_iter().map(move |r| (t.to_string(), r)))
        .filter(|(_, (addr, state, inode))| {
            state == "0A" && inodes.contains(inode) && addr.ends_with(&format!(":{port_hex}"))
        })
        .map(|(t, (addr, _, _))| (t, addr))
        .collect();
    println!(
        "listeners of the server on port {}: {listeners:?}",
        server.port
    );
    assert!(!listeners.is_empty(), "no listener found");
    for (table, addr) in &listeners {
        assert_eq!(
            (table.as_str(), addr.as_str()),
            ("tcp", format!("0100007F:{port_hex}").as_str()),
            "a listener not on 127.0.0.1"
        );
    }
    // And it answers there.
    assert_eq!(
        server.connect().call_line(b"version\r\n"),
        "VERSION 1.6.18\r\n"
    );
}

// ---- T7 variant: half-sent large values ------------------------------------

/// 500 clients each announce a 1,000,000-byte value and send half of it.
/// A partial request lives in its connection's read buffer, outside the
/// store's `-m`; before the cap on grown read buffers (connection.rs,
/// `GROWN`) this held ~0.5 MB per client: +258 MB at -m 64 for 500 clients,
/// ~1 GB possible at the default -c. memcached allocates the item up front
/// from its `-m` memory (measured here: +75 MB at -m 64 for the same 500).
/// The bound asserted is the one memcached meets: growth <= m + 20 MB; the
/// clients past the cap get `SERVER_ERROR out of memory reading request`
/// and are closed, and the server keeps serving.
#[test]
fn half_sent_large_values_stay_within_m() {
    let _g = serial();
    let n = 500;
    raise_nofile(n as u64 + 512);
    let server = Server::start(&["-m", "64", "-c", "4096"]);
    let pid = server.pid();
    let before = rss(pid);
    let half = vec![b'x'; 500_000];
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        s.write_all(format!("set big{i} 0 0 1000000\r\n").as_bytes())
            .expect("write");
        s.write_all(&half).expect("write");
        held.push(s);
    }
    // Let the server read what it will: wait until its RSS settles.
    let mut after = rss(pid);
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let now = rss(pid);
        if now == after {
            break;
        }
        after = now;
    }
    let growth = after.saturating_sub(before);
    let limit = 64 * MB + 20 * MB;
    // Who was refused: the reply, then the close.
    let mut refused = 0;
    for s in &mut held {
        s.set_nonblocking(true).expect("nonblocking");
        let mut buf = [0u8; 64];
        if let Ok(k) = s.read(&mut buf) {
            if k > 0 {
                assert_eq!(
                    &buf[..k],
                    b"SERVER_ERROR out of memory reading request\r\n".as_slice()
                );
                refused += 1;
            }
        }
    }
    let served = server.connect().call_line(b"version\r\n") == "VERSION 1.6.18\r\n";
    println!(
        "T7 half-sent 1 MB values: connections={n} refused={refused} rss {before}kB -> {after}kB \
         growth={growth}kB limit={limit}kB {}",
        if growth <= limit && served {
            "PASS"
        } else {
            "FAIL"
        }
    );
    assert!(growth <= limit, "RSS grew by {growth} kB");
    assert!(served, "the server stopped serving");
    // Once the partial requests are gone, a large value is accepted again.
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let mut c = server.connect();
    c.send(b"set big 0 0 1000000\r\n");
    c.send(&[b'y'; 1_000_000]);
    assert_eq!(c.call_line(b"\r\n"), "STORED\r\n");
}
