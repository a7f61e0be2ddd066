//! The binary's command line: exit codes and messages of memcached 1.6.18
//! for bad flags, help/version, and the start-up steps that run before the
//! server binds (root check, -u lookup, open-files limit).

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_twincache"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("spawn twincache")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Asserts exit code and that stderr contains `needle`.
fn expect(args: &[&str], code: i32, needle: &str) {
    let o = run(args);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
    assert!(
        stderr(&o).contains(needle),
        "{args:?}: stderr {:?} lacks {needle:?}",
        stderr(&o)
    );
}

#[test]
fn unknown_options_exit_1() {
    expect(&["-Q"], 1, "invalid option -- 'Q'");
    expect(&["-vQ"], 1, "invalid option -- 'Q'");
    expect(&["--bogus"], 1, "unrecognized option '--bogus'");
    expect(&["-p"], 1, "requires an argument");
    // The replication letters take a value (memcached's -X is
    // --disable-dumping here, and no longer hinted at).
    for f in ["x", "X", "q"] {
        let o = run(&[&format!("-{f}")]);
        assert_eq!(o.status.code(), Some(1), "-{f}");
        let err = stderr(&o);
        assert!(
            err.starts_with(&format!(
                "twincache: option requires an argument -- '{f}'\n"
            )),
            "-{f}: {err}"
        );
        assert!(!err.contains("--disable-dumping"), "-{f}: {err}");
    }
}

/// Asserts exit code 64 and that stderr is exactly `line` (one line).
fn expect_line(args: &[&str], line: &str) {
    let o = run(args);
    assert_eq!(o.status.code(), Some(64), "{args:?}: {}", stderr(&o));
    assert_eq!(stderr(&o), format!("{line}\n"), "{args:?}");
    assert!(stdout(&o).is_empty(), "{args:?}");
}

#[test]
fn replication_flag_errors() {
    expect_line(
        &["-X", "0"],
        "-X 0: invalid replication port (expected 1 to 65535)",
    );
    expect_line(
        &["-X", "65536"],
        "-X 65536: invalid replication port (expected 1 to 65535)",
    );
    expect_line(
        &["-Xabc"],
        "-X abc: invalid replication port (expected 1 to 65535)",
    );
    expect_line(
        &["-x", "10.0.0.2", "-X", "11311", "-p", "11311"],
        "-X 11311: the replication port must differ from the client port",
    );
    // The default -X against -p.
    expect_line(
        &["-p11212", "-x10.0.0.2"],
        "-X 11212: the replication port must differ from the client port",
    );
    expect_line(
        &["-C", "-x", "10.0.0.2"],
        "-x 10.0.0.2: replication needs CAS (versions); drop -C",
    );
    expect_line(
        &["--node-id", "0"],
        "--node-id 0: expected a number from 1 to 255",
    );
    expect_line(
        &["--node-id=256"],
        "--node-id 256: expected a number from 1 to 255",
    );
    expect_line(&["-x", ":11212"], "-x :11212: the peer host is empty");
    expect_line(
        &["-x", "10.0.0.2:0"],
        "-x 10.0.0.2:0: bad peer port \"0\" (expected 1 to 65535)",
    );
    expect_line(
        &["-x", "10.0.0.2:99999"],
        "-x 10.0.0.2:99999: bad peer port \"99999\" (expected 1 to 65535)",
    );
    expect_line(
        &["-q", "0"],
        "-q 0: the outbox bound must be at least 1 entry",
    );
    expect_line(
        &["--repl-heartbeat-ms", "3000"],
        "--repl-timeout-ms (3000) must be greater than --repl-heartbeat-ms (3000)",
    );
    expect_line(
        &["--repl-outbox-bytes", "12q"],
        "--repl-outbox-bytes 12q: not a size (bytes, or a number with a k, m or g suffix)",
    );
    expect(
        &["--repl-secret-file", "/nonexistent/twincache-secret"],
        64,
        "--repl-secret-file /nonexistent/twincache-secret: No such file",
    );
    // Checked before the root check, like every flag.
    expect(&["-x", "127.0.0.1"], 64, "own replication address");
}

#[test]
fn help_lists_replication_options() {
    let o = run(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    let help = stdout(&o);
    assert!(help.contains("Replication (twincache)"), "{help}");
    for o in [
        "-x <host>[:<port>]",
        "-X <port>",
        "-q <num>",
        "--repl-outbox-bytes=<size>",
        "--repl-secret-file=<file>",
        "--repl-sync-timeout=<sec>",
        "--node-id=<1..255>",
        "--repl-heartbeat-ms=<ms>",
        "--repl-timeout-ms=<ms>",
        "--repl-backoff-max-ms=<ms>",
        "--repl-drain-timeout=<sec>",
        "--repl-tombstone-ttl=<sec>",
        "--repl-tombstone-bytes=<size>",
    ] {
        assert!(help.contains(o), "{o} missing from --help");
    }
}

#[test]
fn bad_suboptions() {
    expect(&["-o", "foo"], 1, "Illegal suboption \"foo\"");
    expect(
        &["-o", "maxconns_fast,bar=1"],
        1,
        "Illegal suboption \"bar=1\"",
    );
    expect(
        &["-o", "hashpower=11"],
        1,
        "Initial hashtable multiplier of 11 is too low",
    );
    expect(&["-o", "hashpower=33"], 1, "is too high");
    expect(
        &["-o", "slab_automove=9"],
        1,
        "slab_automove must be between 0 and 2",
    );
    expect(&["-o", "ssl_chain_cert=/x"], 64, "no TLS support");
    expect(&["-o", "ext_path=/tmp/x:1G"], 64, "no external");
    expect(&["-o", "proxy_config=/x"], 64, "no built-in proxy");
}

#[test]
fn validation_errors() {
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["-c", "0"],
            1,
            "Maximum connections must be greater than 0",
        ),
        (&["-t", "0"], 1, "Number of threads must be greater than 0"),
        (
            &["-R", "0"],
            1,
            "Number of requests per event must be greater than 0",
        ),
        (&["-n", "0"], 1, "Chunk size must be greater than 0"),
        (&["-f", "1"], 1, "Factor must be greater than 1"),
        (&["-D", ""], 1, "No delimiter specified"),
        (
            &["-I", "512"],
            64,
            "Item max size cannot be less than 1024 bytes.",
        ),
        (
            &["-m", "64", "-I", "40m"],
            64,
            "Cannot set item size limit higher than 1/2 of memory max.",
        ),
        (
            &["-m", "4096", "-I", "1025m"],
            64,
            "Cannot set item size limit higher than a gigabyte.",
        ),
        (&["-p", "65536"], 64, "ERROR: Invalid port number 65536."),
        (
            &["-B", "junk"],
            64,
            "Invalid value for binding protocol: junk",
        ),
        (&["-B", "binary"], 64, "text protocol only"),
        (&["-S"], 64, "no SASL"),
        (&["-Z"], 64, "no TLS"),
        (&["-Y", "/etc/x"], 64, "no text-protocol authentication"),
        (&["-U", "1"], 64, "CVE-2018-1000115"),
        (&["-l", "127.0.0.1:notaport"], 71, "Invalid port number"),
    ];
    for (args, code, needle) in cases {
        expect(args, *code, needle);
    }
}

#[test]
fn validation_happens_before_the_root_check() {
    // As memcached: a bad flag is reported even when -u is missing.
    expect(&["-c", "0"], 1, "Maximum connections");
}

#[test]
fn help_and_version_exit_0_on_stdout() {
    let o = run(&["-h"]);
    assert_eq!(o.status.code(), Some(0));
    let help = stdout(&o);
    assert!(help.contains("--disable-dumping"));
    assert!(help.contains("127.0.0.1 only"));
    assert!(stderr(&o).is_empty());
    let o = run(&["-V"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        stdout(&o),
        format!(
            "twincache {} (memcached 1.6.18 compatible)\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    let o = run(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn root_without_user_exits_64() {
    if !is_root() {
        eprintln!("SKIPPED: not running as root");
        return;
    }
    let o = run(&["-p", "0"]);
    assert_eq!(o.status.code(), Some(64));
    assert_eq!(stderr(&o), "can't run as root without the -u switch\n");
}

#[test]
fn unknown_user_exits_67() {
    if !is_root() {
        eprintln!("SKIPPED: not running as root");
        return;
    }
    let o = run(&["-p", "0", "-u", "no-such-user-twincache"]);
    assert_eq!(o.status.code(), Some(67));
    assert_eq!(
        stderr(&o),
        "can't find the user no-such-user-twincache to switch to\n"
    );
}

#[test]
fn open_files_limit_failure_exits_71() {
    if !is_root() {
        eprintln!("SKIPPED: not running as root");
        return;
    }
    // More than the kernel's nr_open allows, even for root.
    let o = run(&["-p", "0", "-u", "nobody", "-c", "2000000000"]);
    assert_eq!(o.status.code(), Some(71));
    assert!(stderr(&o).contains("failed to set rlimit for open files."));
}

#[test]
fn warnings_are_logged_and_stray_arguments_ignored() {
    if !is_root() {
        eprintln!("SKIPPED: not running as root");
        return;
    }
    // The run goes past parsing (stray words and knobs accepted) to the
    // server; whatever the server does, the warnings come first.
    let o = Command::new(env!("CARGO_BIN_EXE_twincache"))
        .args([
            "-p",
            "0",
            "-u",
            "nobody",
            "foo",
            "-o",
            "slab_reassign",
            "-e",
            "/tmp/m",
        ])
        .env_remove("RUST_LOG")
        .env("JOURNAL_STREAM", "8:1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|child| {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            std::thread::sleep(std::time::Duration::from_millis(500));
            // Stop it if it is serving (it listens on nothing with -p 0).
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            child.wait_with_output()
        })
        .expect("run twincache");
    let err = stderr(&o);
    assert!(
        err.contains("ignoring stray command-line argument(s): foo"),
        "{err}"
    );
    assert!(err.contains("-o slab_reassign"), "{err}");
    assert!(err.contains("-e /tmp/m"), "{err}");
    // JOURNAL_STREAM: no timestamps, the line starts with the level.
    let first = err.lines().next().unwrap_or("");
    assert!(first.trim_start().starts_with("WARN"), "{first}");
}

#[test]
fn daemon_parent_returns_at_once() {
    if !is_root() {
        eprintln!("SKIPPED: not running as root");
        return;
    }
    let dir = std::env::temp_dir().join(format!("twincache-cli-d-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The pidfile is written after the switch to nobody: the directory must
    // be writable for it.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let pidfile = dir.join("t.pid");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let started = std::time::Instant::now();
    let o = run(&[
        "-d",
        "-u",
        "nobody",
        "-l",
        "127.0.0.1",
        "-p",
        &port,
        "-P",
        pidfile.to_str().unwrap(),
    ]);
    // The foreground process is the parent of the daemon: it exits 0 at
    // once, whatever happens to the daemon afterwards.
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // With a working server the daemon writes the pidfile as nobody; stop it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(&pidfile) {
            if let Ok(pid) = text.trim().parse::<i32>() {
                use std::os::unix::fs::MetadataExt;
                let owner = std::fs::metadata(&pidfile).unwrap().uid();
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
                assert_ne!(owner, 0, "pidfile written before dropping root");
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
