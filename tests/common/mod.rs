//! Shared helpers for integration tests: spawn the real binary on a free
//! port, wait until it answers `version`, talk raw bytes to it, stop it by
//! PID.
#![allow(dead_code)]

pub mod deploy;
pub mod pair;
pub mod proxy;
pub mod tools;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test. `TWINCACHE_TEST_BIN` overrides it (e.g. with
/// /usr/bin/memcached to check that a test's expectations are memcached's).
pub fn binary() -> PathBuf {
    match std::env::var_os("TWINCACHE_TEST_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_twincache")),
    }
}

/// True when the interop tier is required (CI): a missing outside tool is
/// then a failure instead of a skip.
pub fn interop_required() -> bool {
    std::env::var("TWINCACHE_REQUIRE_INTEROP").is_ok_and(|v| v == "1")
}

/// Finds an outside program, or skips (returns None, printing why) — or
/// panics when the interop tier is required.
pub fn require_tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => Some(p),
        None if interop_required() => {
            panic!("{name} is required (TWINCACHE_REQUIRE_INTEROP=1) but not installed")
        }
        None => {
            eprintln!("SKIPPED: {name} is not installed");
            None
        }
    }
}

/// The (name, value) pairs of the `STAT name value` lines in a reply.
pub fn stat_lines(reply: &str) -> Vec<(String, String)> {
    reply
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ' ');
            match (it.next(), it.next(), it.next()) {
                (Some("STAT"), Some(k), Some(v)) => Some((k.to_string(), v.to_string())),
                _ => None,
            }
        })
        .collect()
}

/// A free TCP port on 127.0.0.1 (see [`free_port_on`]).
pub fn free_port() -> u16 {
    free_port_on("127.0.0.1")
}

/// A TCP port free on `ip` when asked, never handed out twice by this
/// process, and below the kernel's ephemeral range (32768-60999 by
/// default): a port taken with `bind(0)` and released can come back from
/// the next `bind(0)` or as some connection's local port before the
/// server under test binds it. Each process starts at its own offset
/// (nextest runs tests as separate processes).
pub fn free_port_on(ip: &str) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(2_654_435_761) % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + (start + n) % SPAN) as u16;
        if TcpListener::bind((ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on {ip} in {FIRST}..{}", FIRST + SPAN)
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A running server process, stopped (by PID) when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Server {
    /// Starts `binary()` with `-p <free port> -l 127.0.0.1` plus `args`, and
    /// waits until it answers `version`.
    pub fn start(args: &[&str]) -> Server {
        Self::start_bin(&binary(), args)
    }

    /// Starts Debian's memcached (the reference) with the same conventions.
    pub fn start_memcached(args: &[&str]) -> Server {
        Self::start_bin(std::path::Path::new("/usr/bin/memcached"), args)
    }

    pub fn start_bin(bin: &std::path::Path, args: &[&str]) -> Server {
        for _attempt in 0..5 {
            let port = free_port();
            let mut cmd = Command::new(bin);
            cmd.arg("-p")
                .arg(port.to_string())
                .arg("-l")
                .arg("127.0.0.1");
            if bin.ends_with("memcached") {
                cmd.arg("-U").arg("0");
            }
            if is_root() {
                cmd.arg("-u").arg("root");
            }
            cmd.args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit());
            let child = cmd.spawn().expect("spawn server");
            let mut server = Server { child, port };
            if server.wait_ready(Duration::from_secs(10)) {
                return server;
            }
            // port taken by someone else, or the server died: retry
            server.stop();
        }
        panic!("server {} did not start", bin.display());
    }

    /// Probes `version` until it answers or the deadline passes.
    pub fn wait_ready(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(mut c) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = c.set_read_timeout(Some(Duration::from_millis(500)));
                if c.write_all(b"version\r\n").is_ok() {
                    let mut buf = [0u8; 64];
                    if let Ok(n) = c.read(&mut buf) {
                        if buf[..n].starts_with(b"VERSION ") {
                            return true;
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.port)
    }

    /// Sends SIGKILL to the server's PID and reaps it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A raw protocol client with read timeouts.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Reads until the buffered reply ends with one of `terminators` (e.g.
    /// `END\r\n`) and returns everything read.
    pub fn read_until_any(&mut self, terminators: &[&[u8]]) -> Vec<u8> {
        let mut chunk = [0u8; 65536];
        loop {
            if terminators.iter().any(|t| self.buf.ends_with(t)) {
                return std::mem::take(&mut self.buf);
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return std::mem::take(&mut self.buf),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => panic!(
                    "read failed ({e}); got so far: {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
            }
        }
    }

    /// Reads exactly one `\r\n`-terminated line.
    pub fn read_line(&mut self) -> Vec<u8> {
        let mut chunk = [0u8; 1];
        let mut line = Vec::new();
        if !self.buf.is_empty() {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let rest = self.buf.split_off(i + 2);
                return std::mem::replace(&mut self.buf, rest);
            }
            line = std::mem::take(&mut self.buf);
        }
        while !line.ends_with(b"\r\n") {
            match self.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(_) => line.push(chunk[0]),
                Err(e) => panic!(
                    "read failed ({e}); got so far: {:?}",
                    String::from_utf8_lossy(&line)
                ),
            }
        }
        line
    }

    /// Sends `req` and reads one line.
    pub fn call_line(&mut self, req: &[u8]) -> String {
        self.send(req);
        String::from_utf8_lossy(&self.read_line()).into_owned()
    }

    /// Reads whatever arrives until the peer closes or `idle` passes with
    /// nothing new.
    pub fn read_for(&mut self, idle: Duration) -> (Vec<u8>, bool) {
        let _ = self.stream.set_read_timeout(Some(idle));
        let mut out = std::mem::take(&mut self.buf);
        let mut chunk = [0u8; 65536];
        let closed = loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => break true,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    break false
                }
                Err(_) => break true,
            }
        };
        let _ = self.stream.set_read_timeout(Some(Duration::from_secs(5)));
        (out, closed)
    }

    /// `stats` as (name, value) pairs.
    pub fn stats(&mut self, arg: &str) -> Vec<(String, String)> {
        let req = if arg.is_empty() {
            "stats\r\n".to_string()
        } else {
            format!("stats {arg}\r\n")
        };
        self.send(req.as_bytes());
        let raw = self.read_until_any(&[b"END\r\n"]);
        stat_lines(&String::from_utf8_lossy(&raw))
    }

    pub fn stat(&mut self, name: &str) -> Option<String> {
        self.stats("")
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// Polls `pred` until it holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if pred() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
