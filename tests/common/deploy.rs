//! Helpers shared by the deployment tests (tests/ops.rs, tests/ops_pair.rs):
//! repository files, temporary directories, logged child processes stopped
//! by PID, config rewriting, and HAProxy's check timing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
