//! libmemcached's conformance checker against the real binary:
//! `memccapable -a` runs its ASCII protocol tests (it flushes the server
//! it is pointed at, so each run gets its own server) and every one of them
//! must pass.

mod common;

use common::tools::run_limited;
use common::Server;
use std::process::Command;
use std::time::Duration;

/// The ASCII tests memccapable 1.1 (Debian 12's libmemcached-tools) runs,
/// in order. A run that silently does fewer is a failure too.
const ASCII_TESTS: &[&str] = &[
    "version",
    "quit",
    "verbosity",
    "set",
    "set noreply",
    "get",
    "gets",
    "mget",
    "flush",
    "flush noreply",
    "add",
    "add noreply",
    "replace",
    "replace noreply",
    "cas",
    "cas noreply",
    "delete",
    "delete noreply",
    "incr",
    "incr noreply",
    "decr",
    "decr noreply",
    "append",
    "append noreply",
    "prepend",
    "prepend noreply",
    "stat",
];

/// Parses lines like `ascii set noreply                       [pass]` into
/// (test name, verdict).
fn verdicts(output: &str) -> Vec<(String, String)> {
    output
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("ascii ")?;
            let open = rest.rfind('[')?;
            let verdict = rest[open..].trim().trim_matches(|c| c == '[' || c == ']');
            Some((rest[..open].trim().to_string(), verdict.to_string()))
        })
        .collect()
}

#[test]
fn verdict_parser_reads_memccapable_lines() {
    let sample = "ascii version                           [pass]\n\
                  ascii set noreply                       [FAIL]\n\
                  All tests passed\n";
    assert_eq!(
        verdicts(sample),
        vec![
            ("version".to_string(), "pass".to_string()),
            ("set noreply".to_string(), "FAIL".to_string()),
        ]
    );
}

#[test]
fn memccapable_ascii_passes_every_test() {
    let Some(tool) = common::require_tool("memccapable") else {
        return;
    };
    let server = Server::start(&[]);
    let ran = run_limited(
        Command::new(tool)
            .args(["-h", "127.0.0.1", "-p"])
            .arg(server.port.to_string())
            .args(["-a", "-t", "5"]),
        Duration::from_secs(120),
    );
    let output = format!("{}{}", ran.stdout, ran.stderr);
    let got = verdicts(&output);
    let failed: Vec<&(String, String)> = got.iter().filter(|(_, v)| v != "pass").collect();
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        ran.success()
            && failed.is_empty()
            && names == ASCII_TESTS
            && output.contains("All tests passed"),
        "memccapable -a did not pass every ASCII test (failed: {failed:?}; ran: {names:?})\n{}",
        ran.transcript()
    );
}
