//! Running outside programs (memccapable, python3 client scripts) from
//! tests: with a wall-clock limit, output captured, and the
//! skip-or-fail rule of the interop tier.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What a finished (or killed) outside program left behind.
pub struct Ran {
    /// None when it was killed at the time limit.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// Everything it printed, for a failure message.
    pub fn transcript(&self) -> String {
        let status = match self.status {
            Some(s) => format!("{s}"),
            None => "killed at the time limit".to_string(),
        };
        format!(
            "status: {status}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` to completion, killing it (by its PID) if it outlives
/// `limit`. Stdin is closed; stdout and stderr are captured.
pub fn run_limited(cmd: &mut Command, limit: Duration) -> Ran {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            String::from_utf8_lossy(&v).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    Ran {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// python3 if it can import `module`; otherwise skips (None, saying why) or,
/// under TWINCACHE_REQUIRE_INTEROP=1, panics.
pub fn require_python_module(module: &str) -> Option<PathBuf> {
    let python = super::require_tool("python3")?;
    let ran = run_limited(
        Command::new(&python)
            .arg("-c")
            .arg(format!("import {module}")),
        Duration::from_secs(60),
    );
    if ran.success() {
        return Some(python);
    }
    if super::interop_required() {
        panic!(
            "python module {module} is required (TWINCACHE_REQUIRE_INTEROP=1) but cannot be imported:\n{}",
            ran.transcript()
        );
    }
    eprintln!("SKIPPED: python module {module} is not installed");
    None
}

/// The path of a helper script under tests/python/.
pub fn python_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("python")
        .join(name)
}
