//! Two twincache nodes replicating through proxies the test controls.
//!
//! Node A listens for its peer on RA and dials `127.0.0.1:<to_b>`, a proxy to
//! RB; node B listens on RB and dials `127.0.0.1:<to_a>`, a proxy to RA. So
//! whichever side's connection survives as the link, it crosses a proxy, and
//! `cut()`/`pass()`/`blackhole()`/`throttle()` act on both.
//!
//! Each node's stderr goes to a log file; when a test panics while a Pair is
//! alive, the tail of both logs is printed (the test harness shows it).
#![allow(dead_code)]

use super::free_port;
use super::proxy::Proxy;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a starting pair may take to open both client ports.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

/// A scratch directory for logs and secret files, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "twincache-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `contents` to `name` with mode 0600 (as a secret file must be).
    pub fn secret(&self, name: &str, contents: &[u8]) -> PathBuf {
        use std::os::unix::fs::OpenOptionsExt;
        let p = self.0.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&p)
            .expect("create secret file");
        f.write_all(contents).expect("write secret");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// One twincache process (possibly not running: killed, or not yet started).
pub struct Node {
    pub name: &'static str,
    /// The `-l` address (127.0.0.1 unless spawned with `spawn_on`).
    pub host: [u8; 4],
    pub port: u16,
    pub repl_port: u16,
    pub args: Vec<String>,
    pub log: PathBuf,
    /// Run inside this network namespace (`ip netns exec NS`, which execs
    /// the server: the child's PID is the server's). None: the test's own.
    pub netns: Option<String>,
    /// The `-l` argument when it is not just `host` (e.g. two addresses).
    pub listen: Option<String>,
    child: Option<Child>,
    stopped: bool,
    pub started_at: Instant,
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The twincache binary of this build. Replication tests cannot run against
/// memcached, so TWINCACHE_TEST_BIN does not apply; TWINCACHE_REPL_TEST_BIN
/// may point at another twincache build (to try the tests against a branch).
pub fn binary() -> PathBuf {
    match std::env::var_os("TWINCACHE_REPL_TEST_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_twincache")),
    }
}

/// Resident set size in KiB of process `pid` (VmRSS from
/// /proc/PID/status); None once it is gone.
pub fn rss_kb_of(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

impl Node {
    /// Spawns the binary with `-p port -l 127.0.0.1 -X repl_port` plus
    /// `args`, without waiting for anything. stderr is appended to `log`.
    pub fn spawn(
        name: &'static str,
        port: u16,
        repl_port: u16,
        args: Vec<String>,
        log: PathBuf,
    ) -> Node {
        Self::spawn_on(name, [127, 0, 0, 1], port, repl_port, args, log)
    }

    /// As `spawn`, listening on `host` (any 127/8 address works on Linux).
    pub fn spawn_on(
        name: &'static str,
        host: [u8; 4],
        port: u16,
        repl_port: u16,
        args: Vec<String>,
        log: PathBuf,
    ) -> Node {
        let mut n = Self::unstarted(name, host, port, repl_port, args, log);
        n.respawn();
        n
    }

    fn unstarted(
        name: &'static str,
        host: [u8; 4],
        port: u16,
        repl_port: u16,
        args: Vec<String>,
        log: PathBuf,
    ) -> Node {
        Node {
            name,
            host,
            port,
            repl_port,
            args,
            log,
            netns: None,
            listen: None,
            child: None,
            stopped: false,
            started_at: Instant::now(),
        }
    }

    /// Spawns the binary inside network namespace `netns` with
    /// `-p port -l listen -X repl_port` plus `args`; the test reaches its
    /// client port at `host` (one of the `listen` addresses).
    #[allow(clippy::too_many_arguments)]
    pub fn spawn_in_netns(
        name: &'static str,
        netns: &str,
        host: [u8; 4],
        listen: &str,
        port: u16,
        repl_port: u16,
        args: Vec<String>,
        log: PathBuf,
    ) -> Node {
        let mut n = Self::unstarted(name, host, port, repl_port, args, log);
        n.netns = Some(netns.to_string());
        n.listen = Some(listen.to_string());
        n.respawn();
        n
    }

    /// Starts the process again with the same ports and arguments.
    pub fn respawn(&mut self) {
        assert!(self.child.is_none(), "{} is still running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open log");
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(binary());
                c
            }
            None => Command::new(binary()),
        };
        let listen = match &self.listen {
            Some(l) => l.clone(),
            None => std::net::Ipv4Addr::from(self.host).to_string(),
        };
        cmd.arg("-p")
            .arg(self.port.to_string())
            .arg("-l")
            .arg(listen)
            .arg("-X")
            .arg(self.repl_port.to_string());
        if is_root() {
            cmd.arg("-u").arg("root");
        }
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        self.started_at = Instant::now();
        self.child = Some(cmd.spawn().expect("spawn twincache"));
        self.stopped = false;
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Exit status if the process has exited (and reaps it).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// True when the client port answers `version` (one probe).
    pub fn answers(&self) -> bool {
        probe_version_at(self.addr())
    }

    /// Probes `version` until it answers (true), the process exits or the
    /// timeout passes (false).
    pub fn wait_ready(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !self.running() {
                return false;
            }
            if self.answers() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    pub fn conn(&self) -> Conn {
        Conn::connect_to(self.addr())
    }

    /// The client address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((self.host, self.port))
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) -> bool {
        match self.pid() {
            Some(pid) => {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).is_ok()
            }
            None => false,
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            if self.stopped {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(c.id() as i32),
                    nix::sys::signal::Signal::SIGCONT,
                );
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.stopped = false;
    }

    pub fn sigstop(&mut self) {
        assert!(
            self.signal(nix::sys::signal::Signal::SIGSTOP),
            "SIGSTOP {}",
            self.name
        );
        self.stopped = true;
    }

    pub fn sigcont(&mut self) {
        if self.stopped {
            self.signal(nix::sys::signal::Signal::SIGCONT);
        }
        self.stopped = false;
    }

    /// Resident set size in KiB (VmRSS from /proc/PID/status).
    pub fn rss_kb(&self) -> Option<u64> {
        rss_kb_of(self.pid()?)
    }

    /// `stats replication` as a map (empty if the node does not answer).
    pub fn stats_repl(&self) -> HashMap<String, String> {
        self.stats("replication")
    }

    pub fn stats(&self, arg: &str) -> HashMap<String, String> {
        match Conn::try_connect_to(self.addr(), Duration::from_secs(1)) {
            Some(mut c) => c.stats(arg),
            None => HashMap::new(),
        }
    }

    /// The last `lines` lines of this node's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let v: Vec<&str> = s.lines().collect();
        v[v.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One `version` probe with short timeouts.
pub fn probe_version(port: u16) -> bool {
    probe_version_at(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// One `version` probe of `addr`.
pub fn probe_version_at(addr: SocketAddr) -> bool {
    let Ok(mut c) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = c.set_read_timeout(Some(Duration::from_millis(300)));
    if c.write_all(b"version\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(c.read(&mut buf), Ok(n) if buf[..n].starts_with(b"VERSION "))
}

/// An item as `gets` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub flags: u32,
    pub cas: u64,
    pub value: Vec<u8>,
}

/// A text-protocol client that parses replies (keys are ASCII here).
pub struct Conn {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Conn {
    pub fn connect(port: u16) -> Conn {
        Self::try_connect(port, Duration::from_secs(2))
            .unwrap_or_else(|| panic!("connect to 127.0.0.1:{port}"))
    }

    pub fn try_connect(port: u16, timeout: Duration) -> Option<Conn> {
        Self::try_connect_to(SocketAddr::from(([127, 0, 0, 1], port)), timeout)
    }

    pub fn connect_to(addr: SocketAddr) -> Conn {
        Self::try_connect_to(addr, Duration::from_secs(2))
            .unwrap_or_else(|| panic!("connect to {addr}"))
    }

    pub fn try_connect_to(addr: SocketAddr, timeout: Duration) -> Option<Conn> {
        let s = TcpStream::connect_timeout(&addr, timeout).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.set_nodelay(true).ok()?;
        let w = s.try_clone().ok()?;
        Some(Conn {
            r: BufReader::new(s),
            w,
        })
    }

    pub fn set_read_timeout(&self, d: Duration) {
        let _ = self.w.set_read_timeout(Some(d));
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).expect("write to server");
    }

    /// One reply line without its `\r\n`.
    pub fn line(&mut self) -> String {
        let mut v = Vec::new();
        match self.r.read_until(b'\n', &mut v) {
            Ok(_) => {}
            Err(e) => panic!(
                "read failed ({e}); got so far: {:?}",
                String::from_utf8_lossy(&v)
            ),
        }
        while v.last() == Some(&b'\n') || v.last() == Some(&b'\r') {
            v.pop();
        }
        String::from_utf8_lossy(&v).into_owned()
    }

    /// One reply line, or None on a read error or timeout (no panic).
    pub fn try_line(&mut self) -> Option<String> {
        let mut v = Vec::new();
        match self.r.read_until(b'\n', &mut v) {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                while v.last() == Some(&b'\n') || v.last() == Some(&b'\r') {
                    v.pop();
                }
                Some(String::from_utf8_lossy(&v).into_owned())
            }
        }
    }

    /// Sends `req` (which must end in `\r\n`) and returns the reply line.
    pub fn cmd(&mut self, req: &str) -> String {
        self.send(req.as_bytes());
        self.line()
    }

    fn store_req(verb: &str, key: &str, flags: u32, exptime: i64, value: &[u8]) -> Vec<u8> {
        let mut req = format!("{verb} {key} {flags} {exptime} {}\r\n", value.len()).into_bytes();
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\n");
        req
    }

    pub fn set(&mut self, key: &str, flags: u32, value: &[u8]) -> String {
        self.store("set", key, flags, 0, value)
    }

    pub fn store(
        &mut self,
        verb: &str,
        key: &str,
        flags: u32,
        exptime: i64,
        value: &[u8],
    ) -> String {
        let req = Self::store_req(verb, key, flags, exptime, value);
        self.send(&req);
        self.line()
    }

    pub fn cas(&mut self, key: &str, flags: u32, value: &[u8], unique: u64) -> String {
        let mut req = format!("cas {key} {flags} 0 {} {unique}\r\n", value.len()).into_bytes();
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\n");
        self.send(&req);
        self.line()
    }

    /// Sends many sets at once and returns every reply line, in order.
    pub fn set_pipelined(&mut self, items: &[(String, u32, Vec<u8>)]) -> Vec<String> {
        let mut req = Vec::new();
        for (k, f, v) in items {
            req.extend_from_slice(&Self::store_req("set", k, *f, 0, v));
        }
        self.send(&req);
        (0..items.len()).map(|_| self.line()).collect()
    }

    pub fn delete(&mut self, key: &str) -> String {
        self.cmd(&format!("delete {key}\r\n"))
    }

    /// Reads VALUE blocks until END.
    fn read_values(&mut self) -> Result<HashMap<String, Item>, String> {
        let mut out = HashMap::new();
        loop {
            let l = self.line();
            if l == "END" {
                return Ok(out);
            }
            let parts: Vec<&str> = l.split(' ').collect();
            if parts.len() < 4 || parts[0] != "VALUE" {
                return Err(l);
            }
            let flags: u32 = parts[2].parse().map_err(|_| l.clone())?;
            let len: usize = parts[3].parse().map_err(|_| l.clone())?;
            let cas: u64 = match parts.get(4) {
                Some(c) => c.parse().map_err(|_| l.clone())?,
                None => 0,
            };
            let mut value = vec![0u8; len + 2];
            self.r
                .read_exact(&mut value)
                .map_err(|e| format!("reading value of {}: {e}", parts[1]))?;
            value.truncate(len);
            out.insert(parts[1].to_string(), Item { flags, cas, value });
        }
    }

    /// `gets` of many keys (in batches); missing keys are absent from the map.
    pub fn gets_many(&mut self, keys: &[String]) -> HashMap<String, Item> {
        let mut out = HashMap::new();
        for batch in keys.chunks(100) {
            let req = format!("gets {}\r\n", batch.join(" "));
            self.send(req.as_bytes());
            match self.read_values() {
                Ok(m) => out.extend(m),
                Err(l) => panic!("unexpected reply to gets: {l:?}"),
            }
        }
        out
    }

    pub fn gets(&mut self, key: &str) -> Option<Item> {
        self.send(format!("gets {key}\r\n").as_bytes());
        match self.read_values() {
            Ok(mut m) => m.remove(key),
            Err(l) => panic!("unexpected reply to gets: {l:?}"),
        }
    }

    pub fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        self.send(format!("get {key}\r\n").as_bytes());
        match self.read_values() {
            Ok(mut m) => m.remove(key).map(|i| i.value),
            Err(l) => panic!("unexpected reply to get: {l:?}"),
        }
    }

    /// `stats [arg]` as a map; an error reply, a timeout or a closed
    /// connection gives what was read so far.
    pub fn stats(&mut self, arg: &str) -> HashMap<String, String> {
        let req = if arg.is_empty() {
            "stats\r\n".to_string()
        } else {
            format!("stats {arg}\r\n")
        };
        let mut out = HashMap::new();
        // never panics: this also runs from Drop while a test unwinds
        if self.w.write_all(req.as_bytes()).is_err() {
            return out;
        }
        loop {
            let Some(l) = self.try_line() else {
                return out;
            };
            if l == "END" || l.is_empty() || l.contains("ERROR") {
                return out;
            }
            let mut it = l.splitn(3, ' ');
            if let (Some("STAT"), Some(k), Some(v)) = (it.next(), it.next(), it.next()) {
                out.insert(k.to_string(), v.to_string());
            }
        }
    }
}

/// Keys whose state differs between two snapshots, described for a message.
pub fn diff(keys: &[String], a: &HashMap<String, Item>, b: &HashMap<String, Item>) -> Vec<String> {
    keys.iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: A={:?} B={:?}", show(a.get(k)), show(b.get(k))))
        .collect()
}

pub fn show(i: Option<&Item>) -> String {
    match i {
        None => "missing".into(),
        Some(i) => format!(
            "flags={} cas={} value={:?}",
            i.flags,
            i.cas,
            String::from_utf8_lossy(&i.value[..i.value.len().min(40)])
        ),
    }
}

/// Percentile (0..=100) of a list of durations.
pub fn percentile(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    let idx = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[idx.min(v.len() - 1)]
}

pub struct Pair {
    pub a: Node,
    pub b: Node,
    /// B dials this proxy to reach A's replication port.
    pub to_a: Proxy,
    /// A dials this proxy to reach B's replication port.
    pub to_b: Proxy,
    pub dir: TempDir,
}

fn distinct_ports(n: usize) -> Vec<u16> {
    let mut v: Vec<u16> = Vec::new();
    while v.len() < n {
        let p = free_port();
        if !v.contains(&p) {
            v.push(p);
        }
    }
    v
}

fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

impl Pair {
    /// Starts A and B (node ids 1 and 2) and waits until both answer
    /// `version` (which, with a peer configured, is after their initial sync).
    pub fn start(extra_a: &[&str], extra_b: &[&str]) -> Pair {
        let dir = TempDir::new("pair");
        Self::start_in(dir, extra_a, extra_b)
    }

    /// As `start`, with a scratch directory the caller already made (e.g. to
    /// hold secret files named in the extra arguments).
    pub fn start_in(dir: TempDir, extra_a: &[&str], extra_b: &[&str]) -> Pair {
        Self::start_wired(dir, extra_a, extra_b, false)
    }

    /// As `start`, but the nodes dial each other directly (the proxies exist
    /// and carry nothing): for measuring the link itself, without the
    /// proxy's two extra thread hops.
    pub fn start_direct(extra_a: &[&str], extra_b: &[&str]) -> Pair {
        Self::start_wired(TempDir::new("pair"), extra_a, extra_b, true)
    }

    fn start_wired(dir: TempDir, extra_a: &[&str], extra_b: &[&str], direct: bool) -> Pair {
        let mut dir = Some(dir);
        for attempt in 0..3 {
            let mut pair = Self::spawn_wired(dir.take().expect("dir"), extra_a, extra_b, direct);
            let (ra, rb) = std::thread::scope(|s| {
                let ta = s.spawn(|| pair.a.wait_ready(START_TIMEOUT));
                let rb = pair.b.wait_ready(START_TIMEOUT);
                (ta.join().unwrap_or(false), rb)
            });
            if ra && rb {
                return pair;
            }
            let died = !pair.a.running() || !pair.b.running();
            if died && attempt < 2 {
                // most likely a port taken between free_port() and bind
                eprintln!(
                    "pair start attempt {attempt} failed (a process exited); logs:\nA:\n{}\nB:\n{}",
                    pair.a.log_tail(20),
                    pair.b.log_tail(20)
                );
                pair.a.kill9();
                pair.b.kill9();
                dir = Some(std::mem::replace(&mut pair.dir, TempDir(PathBuf::new())));
                continue;
            }
            panic!(
                "pair did not start within {START_TIMEOUT:?} (A ready {ra}, B ready {rb})\nA log:\n{}\nB log:\n{}",
                pair.a.log_tail(40),
                pair.b.log_tail(40)
            );
        }
        unreachable!()
    }

    /// Spawns both processes without waiting for either.
    pub fn spawn_in(dir: TempDir, extra_a: &[&str], extra_b: &[&str]) -> Pair {
        Self::spawn_wired(dir, extra_a, extra_b, false)
    }

    fn spawn_wired(dir: TempDir, extra_a: &[&str], extra_b: &[&str], direct: bool) -> Pair {
        let p = distinct_ports(4);
        let (ca, cb, ra, rb) = (p[0], p[1], p[2], p[3]);
        let to_a = Proxy::start(SocketAddr::from(([127, 0, 0, 1], ra)));
        let to_b = Proxy::start(SocketAddr::from(([127, 0, 0, 1], rb)));
        let (peer_of_a, peer_of_b) = if direct {
            (rb, ra)
        } else {
            (to_b.port(), to_a.port())
        };
        let mut args_a = owned(&["-x", &format!("127.0.0.1:{peer_of_a}"), "--node-id", "1"]);
        args_a.extend(owned(extra_a));
        let mut args_b = owned(&["-x", &format!("127.0.0.1:{peer_of_b}"), "--node-id", "2"]);
        args_b.extend(owned(extra_b));
        let a = Node::spawn("A", ca, ra, args_a, dir.path().join("a.log"));
        let b = Node::spawn("B", cb, rb, args_b, dir.path().join("b.log"));
        Pair {
            a,
            b,
            to_a,
            to_b,
            dir,
        }
    }

    pub fn node(&self, side: Side) -> &Node {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    pub fn cut(&self) {
        self.to_a.cut();
        self.to_b.cut();
    }

    pub fn pass(&self) {
        self.to_a.pass();
        self.to_b.pass();
    }

    pub fn blackhole(&self) {
        self.to_a.blackhole();
        self.to_b.blackhole();
    }

    pub fn throttle(&self, bytes_per_sec: u64) {
        self.to_a.throttle(bytes_per_sec);
        self.to_b.throttle(bytes_per_sec);
    }

    pub fn delay(&self, d: Duration) {
        self.to_a.delay(d);
        self.to_b.delay(d);
    }

    pub fn kill9_a(&mut self) {
        self.a.kill9();
    }

    /// Starts A again (same ports and arguments) without waiting.
    pub fn restart_a(&mut self) {
        self.a.kill9();
        self.a.respawn();
    }

    pub fn sigstop_b(&mut self) {
        self.b.sigstop();
    }

    pub fn sigcont_b(&mut self) {
        self.b.sigcont();
    }

    pub fn stats_repl(&self, side: Side) -> HashMap<String, String> {
        self.node(side).stats_repl()
    }

    pub fn state(&self, side: Side) -> String {
        self.node(side).state()
    }

    /// Waits until both nodes say `repl_state linked`; returns how long it took.
    pub fn wait_linked(&self, timeout: Duration) -> Option<Duration> {
        wait_linked(&self.a, &self.b, timeout)
    }

    /// See [`wait_settled`].
    pub fn wait_settled(&self, timeout: Duration) -> Option<Duration> {
        wait_settled(&self.a, &self.b, timeout)
    }

    /// Both snapshots of `keys` (A, B).
    pub fn snapshot(&self, keys: &[String]) -> (HashMap<String, Item>, HashMap<String, Item>) {
        snapshot(&self.a, &self.b, keys)
    }

    /// See [`wait_converged`].
    pub fn wait_converged(&self, keys: &[String], timeout: Duration) -> Result<Duration, String> {
        wait_converged(&self.a, &self.b, keys, timeout)
    }

    /// The last lines of both logs plus both `stats replication`, for a
    /// failure message.
    pub fn report(&self) -> String {
        report(&self.a, &self.b)
    }
}

// What follows works on any two nodes of a pair, however they are wired
// (through proxies here, across network namespaces in tests/netns.rs).

impl Node {
    /// This node's `repl_state` (`<no answer>` if it does not answer).
    pub fn state(&self) -> String {
        self.stats_repl()
            .get("repl_state")
            .cloned()
            .unwrap_or_else(|| "<no answer>".into())
    }
}

/// Waits until both nodes say `repl_state linked`; returns how long it took.
pub fn wait_linked(a: &Node, b: &Node, timeout: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if a.state() == "linked" && b.state() == "linked" {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Waits until the pair is settled: both nodes linked, neither syncing,
/// nothing in flight or queued either way (so each node's sync end was
/// acknowledged and a later re-link can be partial), and no new link
/// formed for 100 ms (a fresh pair may form two links at once and drop
/// one). Returns how long it took.
pub fn wait_settled(node_a: &Node, node_b: &Node, timeout: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    let mut last: Option<(String, String)> = None;
    let mut stable_since = Instant::now();
    while t0.elapsed() < timeout {
        let (a, b) = (node_a.stats_repl(), node_b.stats_repl());
        let quiet = |s: &HashMap<String, String>| {
            s.get("repl_state").map(String::as_str) == Some("linked")
                && s.get("repl_sync_in_progress").map(String::as_str) == Some("0")
                && s.get("repl_lag_records").map(String::as_str) == Some("0")
        };
        let links = |s: &HashMap<String, String>| {
            s.get("repl_links_established").cloned().unwrap_or_default()
        };
        let now = (links(&a), links(&b));
        if quiet(&a) && quiet(&b) {
            if last.as_ref() != Some(&now) {
                last = Some(now);
                stable_since = Instant::now();
            } else if stable_since.elapsed() >= Duration::from_millis(100) {
                return Some(t0.elapsed());
            }
        } else {
            last = None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Both nodes' snapshots of `keys` (a, b).
pub fn snapshot(
    a: &Node,
    b: &Node,
    keys: &[String],
) -> (HashMap<String, Item>, HashMap<String, Item>) {
    (a.conn().gets_many(keys), b.conn().gets_many(keys))
}

/// Polls until every key is the same on both nodes (present on both with
/// equal flags, value and CAS unique, or absent on both). Ok(time taken),
/// or Err(the differences at the deadline, at most 10 shown).
pub fn wait_converged(
    node_a: &Node,
    node_b: &Node,
    keys: &[String],
    timeout: Duration,
) -> Result<Duration, String> {
    let t0 = Instant::now();
    loop {
        let (a, b) = snapshot(node_a, node_b, keys);
        let d = diff(keys, &a, &b);
        if d.is_empty() {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() >= timeout {
            return Err(format!(
                "{} of {} keys differ after {:?}; first: \n  {}",
                d.len(),
                keys.len(),
                timeout,
                d[..d.len().min(10)].join("\n  ")
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The last lines of both logs plus both `stats replication`, for a
/// failure message.
pub fn report(a: &Node, b: &Node) -> String {
    format!(
        "{} stats replication: {:?}\n{} stats replication: {:?}\n{} log:\n{}\n{} log:\n{}",
        a.name,
        sorted(&a.stats_repl()),
        b.name,
        sorted(&b.stats_repl()),
        a.name,
        a.log_tail(30),
        b.name,
        b.log_tail(30)
    )
}

pub fn sorted(m: &HashMap<String, String>) -> Vec<(String, String)> {
    let mut v: Vec<_> = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.sort();
    v
}

impl Drop for Pair {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // a stopped B cannot answer stats; wake it first
            self.b.sigcont();
            self.a.sigcont();
            eprintln!("--- pair state at failure ---\n{}", self.report());
        }
        // Node's drop stops the processes (SIGCONT first if stopped)
    }
}

/// A number from a stats map (0 if missing or not a number).
pub fn num(m: &HashMap<String, String>, k: &str) -> u64 {
    m.get(k).and_then(|v| v.parse().ok()).unwrap_or(0)
}
