//! Helpers shared by the deployment tests (tests/ops.rs, tests/ops_pair.rs):
//! repository files, temporary directories, logged child processes stopped
//! by PID, config rewriting, and HAProxy's check timing.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::unistd::Pid;

pub fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub fn read_repo_file(rel: &str) -> String {
    std::fs::read_to_string(repo_file(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// A fresh directory for one test, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("twincache-ops-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed (SIGKILL, by its PID) and reaped when dropped.
pub struct Proc(pub Child);

impl Proc {
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.0.id() as i32)
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.0.try_wait() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `version` through `port` answers `VERSION ...`.
pub fn answers_version(port: u16) -> bool {
    let Ok(mut c) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = c.set_read_timeout(Some(Duration::from_millis(500)));
    if c.write_all(b"version\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(c.read(&mut buf), Ok(n) if buf[..n].starts_with(b"VERSION "))
}

/// One request on a fresh connection; the first reply line, or None when
/// the connection fails or closes first.
pub fn one_shot(port: u16, req: &[u8], timeout: Duration) -> Option<String> {
    let mut c = TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(timeout)).ok()?;
    c.write_all(req).ok()?;
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        match c.read(&mut b) {
            Ok(1) => line.push(b[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&line).into_owned())
}

/// Replaces each `(from, to)` in `text`, insisting that `from` is there
/// (so the example cannot drift away from what the test drives).
pub fn rewrite(text: &str, subst: &[(&str, String)]) -> String {
    let mut out = text.to_string();
    for (from, to) in subst {
        assert!(
            out.contains(from),
            "the example no longer contains {from:?}"
        );
        out = out.replace(from, to);
    }
    out
}

pub fn spawn_logged(cmd: &mut Command, log: &Path) -> Proc {
    let f = std::fs::File::create(log).expect("log file");
    let f2 = f.try_clone().expect("clone");
    Proc(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(f))
            .stderr(Stdio::from(f2))
            .spawn()
            .expect("spawn"),
    )
}

pub fn log_text(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// `inter 1s` / `fastinter 250ms` / `fall 2` from the example's
/// default-server line.
pub fn haproxy_timing(cfg: &str) -> (Duration, Duration, u32) {
    let line = cfg
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("default-server"))
        .expect("default-server line");
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |k: &str| {
        words
            .iter()
            .position(|w| *w == k)
            .and_then(|i| words.get(i + 1))
            .copied()
            .unwrap_or_else(|| panic!("no {k} in {line}"))
    };
    let dur = |v: &str| {
        if let Some(ms) = v.strip_suffix("ms") {
            Duration::from_millis(ms.parse().expect("ms"))
        } else if let Some(s) = v.strip_suffix('s') {
            Duration::from_secs(s.parse().expect("s"))
        } else {
            Duration::from_millis(v.parse().expect("ms"))
        }
    };
    (
        dur(after("inter")),
        dur(after("fastinter")),
        after("fall").parse().expect("fall"),
    )
}

/// Length of the complete reply at the head of `buf`: `STORED\r\n` for a
/// set, `VALUE k 0 LEN\r\n<LEN bytes>\r\nEND\r\n` for a one-key get hit
/// of `value_len` bytes; None when incomplete, Err when it is not that.
pub fn reply_len(buf: &[u8], is_get: bool, value_len: usize) -> Result<Option<usize>, String> {
    if !is_get {
        let want = b"STORED\r\n";
        let n = buf.len().min(want.len());
        if buf[..n] != want[..n] {
            return Err(format!(
                "bad set reply {:?}",
                String::from_utf8_lossy(&buf[..n])
            ));
        }
        return Ok((n == want.len()).then_some(n));
    }
    let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buf[..eol]);
    if !head.starts_with("VALUE ") || !head.ends_with(&format!(" 0 {value_len}")) {
        return Err(format!("bad get reply head {head:?}"));
    }
    let total = eol + 2 + value_len + 2 + b"END\r\n".len();
    if buf.len() < total {
        return Ok(None);
    }
    if &buf[eol + 2 + value_len..total] != b"\r\nEND\r\n" {
        return Err("bad get reply tail".to_string());
    }
    Ok(Some(total))
}

/// One client of a SIGTERM-under-load test, until the server closes its
/// connection. Each round writes `batch()` in one write (the request, and
/// per reply `None` for a get hit of `value_len` bytes or `Some(key)` for
/// a set), reads every reply whole, pausing `read_pause` after each read
/// (so a reply is still in the server's hands when the stop comes), and
/// counts a batch in `batches`. Ok(the keys of the sets answered STORED,
/// the replies read) when the server closed at a reply boundary after
/// `stop_sent`; Err on a broken reply or a close before the stop.
pub fn load_client(
    port: u16,
    value_len: usize,
    read_pause: Duration,
    stop_sent: &AtomicBool,
    batches: &AtomicUsize,
    mut batch: impl FnMut() -> (Vec<u8>, Vec<Option<String>>),
) -> Result<(Vec<String>, usize), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.set_write_timeout(Some(Duration::from_secs(10))).ok();
    let mut acked = Vec::new();
    let mut replies = 0usize;
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 65536];
    'conn: loop {
        let (req, mut kinds) = batch();
        // Every reply of the previous batch was read: a failed write
        // after the stop is a clean end.
        if s.write_all(&req).is_err() {
            if stop_sent.load(Ordering::SeqCst) {
                break 'conn;
            }
            return Err("write failed before the stop".to_string());
        }
        let mut done = 0;
        while done < kinds.len() {
            if let Some(len) = reply_len(&buf, kinds[done].is_none(), value_len)? {
                buf.drain(..len);
                if let Some(k) = kinds[done].take() {
                    acked.push(k);
                }
                done += 1;
                replies += 1;
                continue;
            }
            match s.read(&mut chunk) {
                Ok(0) => break 'conn,
                Ok(r) => {
                    buf.extend_from_slice(&chunk[..r]);
                    std::thread::sleep(read_pause);
                }
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break 'conn,
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        batches.fetch_add(1, Ordering::Relaxed);
    }
    // The server closed the connection: only at a reply boundary, and
    // only because of the stop.
    if !buf.is_empty() {
        return Err(format!(
            "connection closed inside a reply ({} bytes of it)",
            buf.len()
        ));
    }
    if !stop_sent.load(Ordering::SeqCst) {
        return Err("connection closed before the stop".to_string());
    }
    Ok((acked, replies))
}
