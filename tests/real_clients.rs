//! Published client libraries against the real binary: the Python scripts
//! in tests/python/ drive a freshly started server through pymemcache and
//! pylibmc (libmemcached) and exit non-zero on any reply that differs from
//! what those libraries get from memcached.
//!
//! Skipped when python3 or the library is missing; a failure instead under
//! TWINCACHE_REQUIRE_INTEROP=1 (CI, see .ci/run).

mod common;

use common::tools::{python_script, require_python_module, run_limited};
use common::Server;
use std::process::Command;
use std::time::Duration;

fn run_client_script(module: &str, script: &str) {
    let Some(python) = require_python_module(module) else {
        return;
    };
    let server = Server::start(&[]);
    let ran = run_limited(
        Command::new(python)
            .arg(python_script(script))
            .arg(server.port.to_string())
            .env("PYTHONDONTWRITEBYTECODE", "1"),
        Duration::from_secs(120),
    );
    assert!(
        ran.success(),
        "{script} against {} failed\n{}",
        common::binary().display(),
        ran.transcript()
    );
    assert!(
        ran.stdout.contains("checks ok"),
        "{script} exited 0 without its summary line\n{}",
        ran.transcript()
    );
    eprintln!("{}", ran.stdout.trim_end());
}

#[test]
fn pymemcache_base_client() {
    run_client_script("pymemcache", "pymemcache_client.py");
}

#[test]
fn pylibmc_client() {
    run_client_script("pylibmc", "pylibmc_client.py");
}
