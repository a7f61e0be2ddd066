//! Operations: the systemd units and the sysconfig file, readiness over
//! `NOTIFY_SOCKET`, signals (SIGHUP harmless, SIGTERM under load), and the
//! deployment examples driven with the real programs (HAProxy, nutcracker,
//! the keepalived check script).
//!
//! Outside programs (`systemd-analyze`, `haproxy`, `nutcracker`) are looked
//! up with `common::require_tool`: a missing one skips its test with a
//! `SKIPPED:` line, or fails it when TWINCACHE_REQUIRE_INTEROP=1 (CI).
//!
//! The deployment tests here use standalone nodes (availability only).
//! tests/ops_pair.rs does the same with replicating pairs: every pre-kill
//! key read on the backup, the resync after a restart, two pairs behind
//! nutcracker, READY=1 after the initial sync, SIGTERM draining the
//! replication outbox.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::deploy::*;
use common::{binary, eventually, free_port, require_tool, Client, Server};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

// ---------------------------------------------------------------------------
// helpers

fn settings(port: u16) -> BTreeMap<String, String> {
    Client::connect(port)
        .stats("settings")
        .into_iter()
        .collect()
}

// ---------------------------------------------------------------------------
// systemd unit parsing and ExecStart expansion, as systemd does it

/// The values of `key=` lines in a unit (in order).
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    let prefix = format!("{key}=");
    unit.lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(str::to_string)
        .collect()
}

/// Splits on white space, honouring double and single quotes.
fn split_quoted(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// `Environment=A=1 B= C="x y"` assignments.
fn parse_environment_line(v: &str) -> Vec<(String, String)> {
    split_quoted(v)
        .into_iter()
        .filter_map(|a| {
            a.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// An `EnvironmentFile=`: `NAME=value` lines, `#`/`;` comments, a value in
/// double or single quotes loses them.
fn parse_env_file(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = if v.len() >= 2
            && ((v.starts_with('"') && v.ends_with('"'))
                || (v.starts_with('\'') && v.ends_with('\'')))
        {
            &v[1..v.len() - 1]
        } else {
            v
        };
        out.push((k.trim().to_string(), v.to_string()));
    }
    out
}

/// Expands an `ExecStart=` line: `%i` is the instance, a word that is
/// exactly `$NAME` becomes the value split on white space (nothing when
/// empty), `${NAME}` anywhere becomes the value as part of one argument
/// (an empty argument when empty or unset).
fn expand_exec(line: &str, env: &BTreeMap<String, String>, instance: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in split_quoted(line) {
        let word = word.replace("%i", instance).replace("%%", "%");
        if let Some(name) = word.strip_prefix('$') {
            if !name.starts_with('{')
                && !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                let v = env.get(name).map(String::as_str).unwrap_or("");
                out.extend(v.split_whitespace().map(str::to_string));
                continue;
            }
        }
        let mut arg = String::new();
        let mut rest = word.as_str();
        while let Some(start) = rest.find("${") {
            arg.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            match after.find('}') {
                Some(end) => {
                    let name = &after[..end];
                    arg.push_str(env.get(name).map(String::as_str).unwrap_or(""));
                    rest = &after[end + 1..];
                }
                None => {
                    arg.push_str(&rest[start..]);
                    rest = "";
                }
            }
        }
        arg.push_str(rest);
        out.push(arg);
    }
    out
}

/// The environment a unit's process gets: `Environment=` defaults, then
/// each `EnvironmentFile=` in order (later ones win). `file_root` stands in
/// for `/`: `/etc/sysconfig/twincache` is read from
/// `<file_root>/etc/sysconfig/twincache`. A path with `-` may be missing.
fn unit_env(unit: &str, instance: &str, file_root: &Path) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for v in unit_values(unit, "Environment") {
        env.extend(parse_environment_line(&v));
    }
    for v in unit_values(unit, "EnvironmentFile") {
        let (optional, p) = match v.strip_prefix('-') {
            Some(p) => (true, p),
            None => (false, v.as_str()),
        };
        let p = p.replace("%i", instance);
        let rel = p.trim_start_matches('/');
        match std::fs::read_to_string(file_root.join(rel)) {
            Ok(text) => env.extend(parse_env_file(&text)),
            Err(e) => assert!(optional, "EnvironmentFile={p} is required but: {e}"),
        }
    }
    env
}

#[test]
fn exec_expansion_follows_systemd() {
    let env: BTreeMap<String, String> = [("A", "one two"), ("EMPTY", ""), ("P", "11211")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        expand_exec("/bin/x -p ${P} -q ${EMPTY} $EMPTY $A ${A} -i %i", &env, "7"),
        vec!["/bin/x", "-p", "11211", "-q", "", "one", "two", "one two", "-i", "7"]
    );
    assert_eq!(expand_exec("x ${UNSET} $UNSET", &env, ""), vec!["x", ""]);
    assert_eq!(
        parse_env_file("# c\nA=\"x y\"\n; c\nB='z'\nC=plain\n\nD=\n"),
        vec![
            ("A".to_string(), "x y".to_string()),
            ("B".to_string(), "z".to_string()),
            ("C".to_string(), "plain".to_string()),
            ("D".to_string(), String::new()),
        ]
    );
}

// ---------------------------------------------------------------------------
// the unit files

const UNITS: [&str; 2] = ["twincache.service", "twincache@.service"];

#[test]
fn units_follow_the_memcached_conventions() {
    for name in UNITS {
        let unit = read_repo_file(&format!("systemd/{name}"));
        let exec = unit_values(&unit, "ExecStart");
        assert_eq!(exec.len(), 1, "{name}: one ExecStart");
        let port = if name.contains('@') { "%i" } else { "${PORT}" };
        assert_eq!(
            exec[0],
            format!(
                "/usr/bin/twincache -p {port} -u ${{USER}} -m ${{CACHESIZE}} \
                 -c ${{MAXCONN}} $REPLICATION $OPTIONS"
            ),
            "{name}"
        );
        let files = unit_values(&unit, "EnvironmentFile");
        assert!(
            files.contains(&"-/etc/sysconfig/twincache".to_string()),
            "{name}"
        );
        assert!(
            files.contains(&"-/etc/default/twincache".to_string()),
            "{name}"
        );
        if name.contains('@') {
            assert!(files.contains(&"-/etc/sysconfig/twincache.%i".to_string()));
        }
        for (k, v) in [
            ("Type", "notify"),
            ("Restart", "on-failure"),
            ("PrivateTmp", "true"),
            ("ProtectSystem", "full"),
            ("NoNewPrivileges", "true"),
            ("PrivateDevices", "true"),
            (
                "CapabilityBoundingSet",
                "CAP_SETGID CAP_SETUID CAP_SYS_RESOURCE",
            ),
            ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
            ("MemoryDenyWriteExecute", "true"),
        ] {
            assert_eq!(unit_values(&unit, k), vec![v.to_string()], "{name}: {k}");
        }
        // Every ${VAR} has a default, so none expands to an empty argument.
        let env = unit_env(&unit, "11211", Path::new("/nonexistent-root"));
        for var in ["USER", "MAXCONN", "CACHESIZE"] {
            assert!(env.get(var).is_some_and(|v| !v.is_empty()), "{name}: {var}");
        }
        assert_eq!(env.get("REPLICATION").map(String::as_str), Some(""));
        // LimitNOFILE covers the default MAXCONN plus the reserve.
        let nofile: u64 = unit_values(&unit, "LimitNOFILE")[0]
            .parse()
            .expect("number");
        let maxconn: u64 = env["MAXCONN"].parse().expect("number");
        assert!(nofile >= maxconn + twincache::process::RESERVED_FDS);
        let stop = unit_values(&unit, "TimeoutStopSec");
        assert_eq!(stop.len(), 1, "{name}: TimeoutStopSec for the drain");
    }
}

#[test]
fn sysconfig_documents_every_variable() {
    let text = read_repo_file("systemd/twincache.sysconfig");
    let vars: Vec<String> = parse_env_file(&text).into_iter().map(|(k, _)| k).collect();
    for v in [
        "PORT",
        "USER",
        "MAXCONN",
        "CACHESIZE",
        "OPTIONS",
        "REPLICATION",
    ] {
        assert!(vars.contains(&v.to_string()), "{v} missing");
    }
    // Each assignment sits right under a comment.
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if !l.trim().is_empty() && !l.starts_with('#') {
            assert!(
                i > 0 && lines[i - 1].starts_with('#'),
                "line {} ({l}) has no comment above it",
                i + 1
            );
        }
    }
}

/// Copies the units with ExecStart pointing at the built binary
/// (`systemd-analyze verify` checks that the program exists).
fn units_for_verify(dir: &Path) {
    let bin = binary();
    for name in UNITS {
        let text = read_repo_file(&format!("systemd/{name}"));
        assert!(text.contains("ExecStart=/usr/bin/twincache "));
        let text = text.replace(
            "ExecStart=/usr/bin/twincache ",
            &format!("ExecStart={} ", bin.display()),
        );
        std::fs::write(dir.join(name), text).expect("write unit");
    }
}

fn verify(tool: &Path, dir: &Path, unit: &str) -> (bool, String) {
    let out = Command::new(tool)
        .arg("verify")
        .arg(unit)
        .current_dir(dir)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("run systemd-analyze");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn units_verify() {
    let Some(tool) = require_tool("systemd-analyze") else {
        return;
    };
    let dir = TempDir::new("verify");
    units_for_verify(dir.path());
    // The template is verified through an instance (port 11211).
    for unit in ["./twincache.service", "./twincache@11211.service"] {
        let (ok, out) = verify(&tool, dir.path(), unit);
        assert!(ok, "systemd-analyze verify {unit} failed:\n{out}");
        // verify only warns about unknown keys: any line naming our files
        // is a defect too.
        let ours: Vec<&str> = out.lines().filter(|l| l.contains("twincache")).collect();
        assert!(ours.is_empty(), "systemd-analyze verify {unit}:\n{out}");
    }
    // The check can fail: a misspelt key is reported.
    let path = dir.path().join("twincache.service");
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(
        &path,
        text.replace("Restart=on-failure", "Restart=on-failure\nRestartt=1"),
    )
    .expect("write");
    let (_, out) = verify(&tool, dir.path(), "./twincache.service");
    assert!(out.contains("Restartt"), "verify missed a bad key:\n{out}");
}

/// Writes `/etc/sysconfig/twincache` (the shipped file with the operator's
/// edits) under `root`, plus optional per-instance files.
fn edited_sysconfig(edits: &[(&str, String)]) -> String {
    let shipped = read_repo_file("systemd/twincache.sysconfig");
    let mut seen = Vec::new();
    let mut out = String::new();
    for line in shipped.lines() {
        let edit = edits
            .iter()
            .find(|(k, _)| line.starts_with(&format!("{k}=")));
        match edit {
            Some((k, v)) => {
                out.push_str(&format!("{k}=\"{v}\"\n"));
                seen.push(*k);
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    for (k, _) in edits {
        assert!(seen.contains(k), "the shipped sysconfig has no {k}= line");
    }
    out
}

/// The unprivileged user the started process should switch to.
fn run_user() -> (String, Option<u32>) {
    if is_root() {
        ("nobody".to_string(), Some(65534))
    } else {
        // Not root: -u is ignored, any name will do.
        ("nobody".to_string(), None)
    }
}

fn uid_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Starts the binary with the argv the unit's ExecStart expands to.
fn start_from_unit(
    unit_name: &str,
    instance: &str,
    root: &Path,
    port: u16,
) -> (Server, Vec<String>) {
    let unit = read_repo_file(&format!("systemd/{unit_name}"));
    let env = unit_env(&unit, instance, root);
    let exec = &unit_values(&unit, "ExecStart")[0];
    let argv = expand_exec(exec, &env, instance);
    assert_eq!(argv[0], "/usr/bin/twincache");
    let child = Command::new(binary())
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn");
    let mut server = Server { child, port };
    assert!(
        server.wait_ready(Duration::from_secs(10)),
        "the server started as {argv:?} did not answer"
    );
    (server, argv)
}

#[test]
fn sysconfig_reaches_the_process() {
    let root = TempDir::new("sysconfig");
    let etc = root.path().join("etc/sysconfig");
    std::fs::create_dir_all(&etc).expect("mkdir");
    let port = free_port();
    let (user, uid) = run_user();
    let text = edited_sysconfig(&[
        ("PORT", port.to_string()),
        ("USER", user.clone()),
        ("MAXCONN", "300".to_string()),
        ("CACHESIZE", "12".to_string()),
        ("OPTIONS", "-l 127.0.0.1 -U 0 -t 3 -R 7".to_string()),
    ]);
    std::fs::write(etc.join("twincache"), text).expect("write");

    let (server, argv) = start_from_unit("twincache.service", "", root.path(), port);
    // $REPLICATION (empty) vanished, $OPTIONS was split.
    assert!(!argv.iter().any(String::is_empty), "{argv:?}");
    assert!(argv.contains(&"-R".to_string()), "{argv:?}");
    let s = settings(port);
    assert_eq!(s["maxconns"], "300");
    assert_eq!(s["maxbytes"], (12u64 << 20).to_string());
    assert_eq!(s["tcpport"], port.to_string());
    assert_eq!(s["num_threads"], "3");
    assert_eq!(s["reqs_per_event"], "7");
    if let Some(uid) = uid {
        assert_eq!(uid_of(server.pid()), Some(uid), "-u {user} was not applied");
    }
}

#[test]
fn instance_unit_takes_port_from_its_name_and_its_own_file_wins() {
    let root = TempDir::new("instance");
    let etc = root.path().join("etc/sysconfig");
    std::fs::create_dir_all(&etc).expect("mkdir");
    let port = free_port();
    let (user, _) = run_user();
    // PORT in the shared file is ignored by the template.
    let shared = edited_sysconfig(&[
        ("PORT", "1".to_string()),
        ("USER", user),
        ("MAXCONN", "200".to_string()),
        ("CACHESIZE", "10".to_string()),
        ("OPTIONS", "-l 127.0.0.1 -U 0".to_string()),
    ]);
    std::fs::write(etc.join("twincache"), shared).expect("write");
    std::fs::write(
        etc.join(format!("twincache.{port}")),
        "# this instance only\nCACHESIZE=\"20\"\n",
    )
    .expect("write");

    let (_server, _) = start_from_unit("twincache@.service", &port.to_string(), root.path(), port);
    let s = settings(port);
    assert_eq!(s["tcpport"], port.to_string());
    assert_eq!(s["maxconns"], "200");
    assert_eq!(s["maxbytes"], (20u64 << 20).to_string());
}

/// The template's example: a replicated pair on one host, each instance's
/// REPLICATION in its own file. Both processes start from the expanded
/// ExecStart (at once: each waits for its initial sync with the other)
/// and replicate.
#[test]
fn instance_files_with_replication_start_a_pair() {
    let root = TempDir::new("instance-pair");
    let etc = root.path().join("etc/sysconfig");
    std::fs::create_dir_all(&etc).expect("mkdir");
    let (user, _) = run_user();
    let shared = edited_sysconfig(&[("USER", user), ("OPTIONS", "-l 127.0.0.1 -U 0".to_string())]);
    std::fs::write(etc.join("twincache"), shared).expect("write");
    let (p1, p2, r1, r2) = (free_port(), free_port(), free_port(), free_port());
    for (port, repl, peer) in [(p1, r1, r2), (p2, r2, r1)] {
        std::fs::write(
            etc.join(format!("twincache.{port}")),
            format!("# one node of the pair\nREPLICATION=\"-x 127.0.0.1:{peer} -X {repl}\"\n"),
        )
        .expect("write");
    }
    let unit = read_repo_file("systemd/twincache@.service");
    let exec = &unit_values(&unit, "ExecStart")[0];
    let mut servers = Vec::new();
    for port in [p1, p2] {
        let env = unit_env(&unit, &port.to_string(), root.path());
        let argv = expand_exec(exec, &env, &port.to_string());
        assert!(argv.contains(&"-x".to_string()), "{argv:?}");
        let child = Command::new(binary())
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn");
        servers.push(Server { child, port });
    }
    for s in &mut servers {
        assert!(
            s.wait_ready(Duration::from_secs(20)),
            "instance {} did not start",
            s.port
        );
    }
    let repl: BTreeMap<String, String> = Client::connect(p1)
        .stats("replication")
        .into_iter()
        .collect();
    assert_eq!(repl["repl_peer"], format!("127.0.0.1:{r2}"));
    assert_eq!(
        Client::connect(p1).call_line(b"set via-unit 0 0 2\r\nok\r\n"),
        "STORED\r\n"
    );
    assert!(
        eventually(Duration::from_secs(10), || {
            let mut c = Client::connect(p2);
            c.send(b"get via-unit\r\n");
            c.read_until_any(&[b"END\r\n"]) == b"VALUE via-unit 0 2\r\nok\r\nEND\r\n"
        }),
        "the pair started from the unit does not replicate"
    );
}

// ---------------------------------------------------------------------------
// readiness

/// Starts the binary with NOTIFY_SOCKET=`notify_socket` and checks the
/// notification sequence: READY=1 arrives when a connection made right then
/// is answered, STOPPING=1 follows SIGTERM, exit 0.
fn notify_sequence(sock: &UnixDatagram, notify_socket: &str, by_command: bool) {
    let port = free_port();
    let mut cmd = Command::new(binary());
    cmd.args(["-p", &port.to_string(), "-l", "127.0.0.1", "-U", "0", "-A"]);
    if is_root() {
        cmd.args(["-u", "root"]);
    }
    let mut proc = Proc(
        cmd.env("NOTIFY_SOCKET", notify_socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn"),
    );
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    let mut before_ready = Vec::new();
    let ready = loop {
        let n = sock.recv(&mut buf).expect("no READY=1 within 10 s");
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if msg.lines().any(|l| l == "READY=1") {
            break msg;
        }
        before_ready.push(msg);
    };
    // Right now, the listener must take a connection and answer on it.
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("READY=1 before the listener");
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    c.write_all(b"version\r\n").expect("write");
    let mut reply = [0u8; 64];
    let n = c.read(&mut reply).expect("read");
    assert!(reply[..n].starts_with(b"VERSION "), "{:?}", &reply[..n]);
    assert!(
        before_ready.iter().all(|m| !m.contains("STOPPING")),
        "{before_ready:?}"
    );
    let status = ready
        .lines()
        .find_map(|l| l.strip_prefix("STATUS="))
        .unwrap_or_else(|| panic!("no STATUS= with READY=1: {ready:?}"));
    assert!(status.contains(&port.to_string()), "{status}");

    if by_command {
        // `shutdown` (-A) stops the server the same way.
        c.write_all(b"shutdown\r\n").expect("write");
    } else {
        kill(proc.pid(), Signal::SIGTERM).expect("kill");
    }
    let stopping = loop {
        let n = sock.recv(&mut buf).expect("no STOPPING=1 after SIGTERM");
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if msg.lines().any(|l| l == "STOPPING=1") {
            break msg;
        }
    };
    assert!(stopping.contains("STATUS="), "{stopping:?}");
    let st = proc
        .wait_exit(Duration::from_secs(10))
        .expect("still running after SIGTERM");
    assert!(st.success(), "{st:?}");
}

#[test]
fn notify_socket_path() {
    let dir = TempDir::new("notify");
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind");
    notify_sequence(&sock, path.to_str().expect("utf-8 path"), false);
}

#[test]
fn notify_socket_abstract() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("twincache-ops-notify-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
    let sock = UnixDatagram::bind_addr(&addr).expect("bind");
    notify_sequence(&sock, &format!("@{name}"), false);
}

#[test]
fn notify_stopping_on_shutdown_command() {
    let dir = TempDir::new("notify-shutdown");
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind");
    notify_sequence(&sock, path.to_str().expect("utf-8 path"), true);
}

// ---------------------------------------------------------------------------
// process limits: -c, -r, -k

/// A line of /proc/PID/limits: (soft, hard), "unlimited" as u64::MAX.
fn proc_limit(pid: u32, name: &str) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = text
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"));
    let num = |v: &str| -> u64 {
        if v == "unlimited" {
            u64::MAX
        } else {
            v.parse().expect("limit")
        }
    };
    let f: Vec<&str> = line[name.len()..].split_whitespace().collect();
    (num(f[0]), num(f[1]))
}

/// As memcached: `-c` raises the open-file limit to fit the connections
/// (as far as the hard limit allows), `-r` raises the core-file limit, and
/// `-k` locks the process's memory or says why it cannot.
#[test]
fn c_r_and_k_set_the_process_limits() {
    let dir = TempDir::new("limits");
    let log = dir.path().join("stderr.log");
    let port = free_port();
    // Low soft limits to start from (the shell execs the server: its PID
    // is the server's).
    let user = if nix::unistd::geteuid().is_root() {
        "-u root"
    } else {
        ""
    };
    let script = format!(
        "ulimit -S -n 1024 && ulimit -S -c 0 && exec '{}' -p {port} -l 127.0.0.1 -c 5000 -r -k {user}",
        binary().display()
    );
    let child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).expect("log")))
        .spawn()
        .expect("spawn");
    let mut server = Server { child, port };
    assert!(
        server.wait_ready(Duration::from_secs(10)),
        "did not start:\n{}",
        log_text(&log)
    );
    let pid = server.pid();
    let (nofile, nofile_hard) = proc_limit(pid, "Max open files");
    assert!(
        nofile >= 5000 || (nofile_hard < 5000 && nofile == nofile_hard),
        "-c 5000 from a soft limit of 1024: open files {nofile} (hard {nofile_hard})"
    );
    let (core, core_hard) = proc_limit(pid, "Max core file size");
    assert!(
        core > 0 && (core == u64::MAX || core == core_hard),
        "-r from a soft limit of 0: core file size {core} (hard {core_hard})"
    );
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let locked: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmLck");
    let said_why = log_text(&log).contains("-k: mlockall() failed");
    eprintln!("limits: open files {nofile}/{nofile_hard}, core {core}/{core_hard}, locked {locked} kB, mlockall refused: {said_why}");
    assert!(
        locked > 0 || said_why,
        "-k: nothing locked and no reason given:\n{}",
        log_text(&log)
    );
    server.stop();
}

// signals

#[test]
fn sighup_is_logged_and_harmless() {
    let port = free_port();
    let mut cmd = Command::new(binary());
    cmd.args(["-p", &port.to_string(), "-l", "127.0.0.1", "-U", "0", "-v"]);
    if is_root() {
        cmd.args(["-u", "root"]);
    }
    let mut proc = Proc(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    assert!(eventually(Duration::from_secs(10), || answers_version(
        port
    )));
    let mut c = Client::connect(port);
    assert_eq!(c.call_line(b"set k 0 0 1\r\nv\r\n"), "STORED\r\n");
    for _ in 0..3 {
        kill(proc.pid(), Signal::SIGHUP).expect("kill");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Still running, same connection, same data.
    assert_eq!(
        proc.0.try_wait().expect("try_wait"),
        None,
        "SIGHUP ended it"
    );
    c.send(b"get k\r\n");
    assert_eq!(
        c.read_until_any(&[b"END\r\n"]),
        b"VALUE k 0 1\r\nv\r\nEND\r\n"
    );
    kill(proc.pid(), Signal::SIGTERM).expect("kill");
    let st = proc.wait_exit(Duration::from_secs(10)).expect("exit");
    assert!(st.success(), "{st:?}");
    let mut log = String::new();
    if let Some(mut e) = proc.0.stderr.take() {
        let _ = e.read_to_string(&mut log);
    }
    assert!(log.contains("SIGHUP"), "SIGHUP not logged at -v:\n{log}");
    assert!(log.contains("Exiting normally"), "{log}");
}

/// SIGUSR1 is memcached's graceful stop: the pipeline already sent is
/// answered, then the process exits 0 (its default action would kill it).
#[test]
fn sigusr1_stops_gracefully() {
    let port = free_port();
    let mut cmd = Command::new(binary());
    cmd.args(["-p", &port.to_string(), "-l", "127.0.0.1", "-U", "0", "-v"]);
    if is_root() {
        cmd.args(["-u", "root"]);
    }
    let mut proc = Proc(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    assert!(eventually(Duration::from_secs(10), || answers_version(
        port
    )));
    let mut c = Client::connect(port);
    assert_eq!(c.call_line(b"set k 0 0 1\r\nv\r\n"), "STORED\r\n");
    kill(proc.pid(), Signal::SIGUSR1).expect("kill");
    let st = proc.wait_exit(Duration::from_secs(10)).expect("exit");
    assert!(
        st.success(),
        "SIGUSR1 did not end the server cleanly: {st:?}"
    );
    let mut log = String::new();
    if let Some(mut e) = proc.0.stderr.take() {
        let _ = e.read_to_string(&mut log);
    }
    assert!(log.contains("Gracefully stopping"), "{log}");
    assert!(log.contains("Exiting normally"), "{log}");
}

/// Runs a short session against the binary at `verbosity` and returns its
/// stderr (the client's fd as the server numbers it is not known: lines
/// are matched by their ending).
fn session_log(args: &[&str]) -> String {
    let port = free_port();
    let mut cmd = Command::new(binary());
    cmd.args(["-p", &port.to_string(), "-l", "127.0.0.1", "-U", "0"]);
    cmd.args(args);
    let verbosity = args.first().copied().unwrap_or("");
    if is_root() {
        cmd.args(["-u", "root"]);
    }
    let dir = TempDir::new(&format!("log{}", args.join("")));
    let log = dir.path().join("stderr");
    let mut proc = spawn_logged(cmd.env("JOURNAL_STREAM", "8:1234"), &log);
    assert!(eventually(Duration::from_secs(10), || answers_version(
        port
    )));
    {
        let mut c = Client::connect(port);
        assert_eq!(c.call_line(b"set a 0 0 1\r\nx\r\n"), "STORED\r\n");
        c.send(b"get a\r\n");
        assert_eq!(
            c.read_until_any(&[b"END\r\n"]),
            b"VALUE a 0 1\r\nx\r\nEND\r\n"
        );
    }
    // The close is logged by the worker once it sees EOF.
    assert!(eventually(Duration::from_secs(5), || {
        log_text(&log).matches("connection closed.").count() >= 2 || verbosity != "-vv"
    }));
    kill(proc.pid(), Signal::SIGTERM).expect("kill");
    let st = proc.wait_exit(Duration::from_secs(10)).expect("exit");
    assert!(st.success(), "{st:?}");
    log_text(&log)
}

/// Lines of `log` ending with `<FD{suffix}` / `>FD{suffix}` / `FD{suffix}`
/// for some number FD.
fn has_fd_line(log: &str, prefix: &str, suffix: &str) -> bool {
    log.lines().any(|l| {
        let Some(head) = l.strip_suffix(suffix) else {
            return false;
        };
        let token = head.rsplit(' ').next().unwrap_or(head);
        token
            .strip_prefix(prefix)
            .is_some_and(|fd| !fd.is_empty() && fd.chars().all(|c| c.is_ascii_digit()))
    })
}

#[test]
fn verbosity_levels_log_like_memcached() {
    let vv = session_log(&["-vv"]);
    for (prefix, suffix) in [
        ("<", " server listening (auto-negotiate)"),
        ("<", " new auto-negotiating client connection"),
        ("", ": Client using the ascii protocol"),
        ("<", " set a 0 0 1"),
        (">", " STORED"),
        ("<", " get a"),
        (">", " sending key a"),
        (">", " END"),
        ("<", " connection closed."),
    ] {
        assert!(
            has_fd_line(&vv, prefix, suffix),
            "-vv log has no {prefix}FD{suffix}:\n{vv}"
        );
    }
    assert!(vv.contains("Exiting normally"), "{vv}");
    // journald adds its own timestamps: none of ours under JOURNAL_STREAM.
    assert!(!vv.contains("Z "), "timestamps under JOURNAL_STREAM:\n{vv}");

    assert!(
        !vv.contains(": going from conn_"),
        "-vv shows -vvv detail:\n{vv}"
    );
    let vvv = session_log(&["-vvv"]);
    assert!(
        has_fd_line(&vvv, "<", " set a 0 0 1"),
        "-vvv lacks the -vv lines:\n{vvv}"
    );
    assert!(
        vvv.lines()
            .any(|l| l.contains(": going from conn_") && l.contains(" to conn_")),
        "-vvv shows no state changes:\n{vvv}"
    );

    let v = session_log(&["-v"]);
    assert!(v.contains("Exiting normally"), "{v}");
    assert!(
        !has_fd_line(&v, "<", " set a 0 0 1"),
        "-v logs commands:\n{v}"
    );
    assert!(!v.contains("connection closed."), "{v}");

    let quiet = session_log(&[]);
    assert!(!quiet.contains("Exiting normally"), "{quiet}");
    assert!(!quiet.contains("new auto-negotiating"), "{quiet}");

    // -B ascii: memcached's wording for a listener that does not negotiate.
    let ascii = session_log(&["-vv", "-B", "ascii"]);
    assert!(
        has_fd_line(&ascii, "<", " server listening (ascii)"),
        "{ascii}"
    );
    assert!(
        has_fd_line(&ascii, "<", " new ascii client connection."),
        "{ascii}"
    );
    assert!(!ascii.contains("Client using"), "{ascii}");
}

#[test]
fn verbosity_command_changes_the_log_level() {
    let port = free_port();
    let mut cmd = Command::new(binary());
    cmd.args(["-p", &port.to_string(), "-l", "127.0.0.1", "-U", "0"]);
    if is_root() {
        cmd.args(["-u", "root"]);
    }
    let dir = TempDir::new("verbosity-cmd");
    let log = dir.path().join("stderr");
    let mut proc = spawn_logged(cmd.env_remove("RUST_LOG"), &log);
    assert!(eventually(Duration::from_secs(10), || answers_version(
        port
    )));
    let mut admin = Client::connect(port);
    let mut c = Client::connect(port);
    assert_eq!(c.call_line(b"set quiet 0 0 1\r\nx\r\n"), "STORED\r\n");
    assert_eq!(admin.call_line(b"verbosity 2\r\n"), "OK\r\n");
    // The filter follows within a moment: retry until a command shows.
    assert!(
        eventually(Duration::from_secs(5), || {
            c.call_line(b"set loud 0 0 1\r\nx\r\n");
            has_fd_line(&log_text(&log), "<", " set loud 0 0 1")
        }),
        "verbosity 2 did not turn on command logging:\n{}",
        log_text(&log)
    );
    assert_eq!(admin.call_line(b"verbosity 0\r\n"), "OK\r\n");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(c.call_line(b"set hushed 0 0 1\r\nx\r\n"), "STORED\r\n");
    kill(proc.pid(), Signal::SIGTERM).expect("kill");
    assert!(proc
        .wait_exit(Duration::from_secs(10))
        .is_some_and(|s| s.success()));
    let text = log_text(&log);
    assert!(!text.contains("set quiet"), "{text}");
    assert!(!text.contains("set hushed"), "{text}");
}

#[test]
fn sigterm_under_load_exits_zero_with_whole_replies() {
    // Replies larger than the socket buffers, read a little slowly: when
    // the signal comes, part of a reply is still in the server's hands, so
    // a server that just exits cuts it (Debian's memcached does).
    const VALUE: usize = 900 * 1024;
    const KEYS: usize = 8;
    const CLIENTS: usize = 4;
    const BATCH: usize = 7;
    let mut server = Server::start(&["-t", "2", "-U", "0"]);
    let port = server.port;
    let value = vec![b'x'; VALUE];
    {
        let mut c = server.connect();
        for k in 0..KEYS {
            let mut req = format!("set key{k} 0 0 {VALUE}\r\n").into_bytes();
            req.extend_from_slice(&value);
            req.extend_from_slice(b"\r\n");
            assert_eq!(c.call_line(&req), "STORED\r\n");
        }
    }
    let stop_sent = Arc::new(AtomicBool::new(false));
    let batches = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for t in 0..CLIENTS {
        let stop_sent = Arc::clone(&stop_sent);
        let batches = Arc::clone(&batches);
        let value = value.clone();
        threads.push(std::thread::spawn(move || -> Result<usize, String> {
            // One batch: 1 set, 6 gets, pipelined in one write.
            let mut kinds = Vec::new();
            let mut req = Vec::new();
            for i in 0..BATCH {
                let k = (t * 3 + i) % KEYS;
                if i < 1 {
                    req.extend_from_slice(format!("set key{k} 0 0 {VALUE}\r\n").as_bytes());
                    req.extend_from_slice(&value);
                    req.extend_from_slice(b"\r\n");
                    kinds.push(Some(format!("key{k}")));
                } else {
                    req.extend_from_slice(format!("get key{k}\r\n").as_bytes());
                    kinds.push(None);
                }
            }
            let pause = Duration::from_micros(500);
            load_client(port, VALUE, pause, &stop_sent, &batches, || {
                (req.clone(), kinds.clone())
            })
            .map(|(_, replies)| replies)
        }));
    }
    // Let the load run, then stop the server in the middle of it.
    assert!(eventually(Duration::from_secs(20), || {
        batches.load(Ordering::Relaxed) >= CLIENTS * 3
    }));
    stop_sent.store(true, Ordering::SeqCst);
    let at_stop = batches.load(Ordering::Relaxed);
    let t0 = Instant::now();
    kill(Pid::from_raw(server.pid() as i32), Signal::SIGTERM).expect("kill");
    let status = loop {
        if let Some(s) = server.child.try_wait().expect("try_wait") {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(6),
            "still running 6 s after SIGTERM (drain limit 3 s)"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "exit status {status:?}");
    let mut total = 0;
    for t in threads {
        total += t.join().expect("client thread panicked").expect("client");
    }
    assert!(at_stop >= CLIENTS * 3 && total >= at_stop * BATCH);
}

// ---------------------------------------------------------------------------
// deployment examples with the real programs

#[test]
fn haproxy_active_backup_fails_over() {
    let Some(haproxy) = require_tool("haproxy") else {
        return;
    };
    let dir = TempDir::new("haproxy");
    let mut mc1 = Server::start(&["-U", "0"]);
    let mc2 = Server::start(&["-U", "0"]);
    let fe = free_port();
    let example = read_repo_file("examples/haproxy.cfg");
    let cfg = rewrite(
        &example,
        &[
            ("10.0.0.10:11211", format!("127.0.0.1:{fe}")),
            ("10.0.0.11:11211", mc1.addr()),
            ("10.0.0.12:11211", mc2.addr()),
        ],
    );
    let cfg_path = dir.path().join("haproxy.cfg");
    std::fs::write(&cfg_path, &cfg).expect("write cfg");
    let check = Command::new(&haproxy)
        .arg("-c")
        .arg("-f")
        .arg(&cfg_path)
        .output()
        .expect("haproxy -c");
    assert!(
        check.status.success(),
        "haproxy -c: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let log = dir.path().join("haproxy.log");
    let _haproxy = spawn_logged(
        Command::new(&haproxy).arg("-db").arg("-f").arg(&cfg_path),
        &log,
    );
    assert!(
        eventually(Duration::from_secs(10), || answers_version(fe)),
        "HAProxy does not answer on {fe}:\n{}",
        log_text(&log)
    );

    // Writes through HAProxy land on the active node only.
    let mut c = Client::connect(fe);
    for i in 0..20 {
        assert_eq!(
            c.call_line(format!("set k{i} 0 0 2\r\nv{}\r\n", i % 10).as_bytes()),
            "STORED\r\n"
        );
    }
    assert_eq!(mc1.connect().stat("curr_items").as_deref(), Some("20"));
    assert_eq!(mc2.connect().stat("curr_items").as_deref(), Some("0"));
    drop(c);

    // kill -9 the active node: new client connections reach the backup
    // within the check timing (first failed check + fall-1 fast checks),
    // plus a margin for the check timeout and scheduling.
    let (inter, fastinter, fall) = haproxy_timing(&cfg);
    let bound = inter + fastinter * fall + Duration::from_secs(2);
    mc1.stop();
    let t0 = Instant::now();
    let mut served = false;
    while t0.elapsed() < bound + Duration::from_secs(5) {
        if one_shot(fe, b"set after 0 0 2\r\nok\r\n", Duration::from_millis(500)).as_deref()
            == Some("STORED\r\n")
        {
            served = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = t0.elapsed();
    eprintln!("failover through HAProxy took {took:?} (bound {bound:?})");
    assert!(
        served,
        "no client served through HAProxy after the kill:\n{}",
        log_text(&log)
    );
    assert!(
        took <= bound,
        "failover took {took:?}, more than {bound:?}:\n{}",
        log_text(&log)
    );
    let mut direct = mc2.connect();
    direct.send(b"get after\r\n");
    assert_eq!(
        direct.read_until_any(&[b"END\r\n"]),
        b"VALUE after 0 2\r\nok\r\nEND\r\n"
    );
    // Every later request goes to the backup too.
    for i in 0..5 {
        assert_eq!(
            one_shot(
                fe,
                format!("set b{i} 0 0 1\r\nx\r\n").as_bytes(),
                Duration::from_secs(2)
            )
            .as_deref(),
            Some("STORED\r\n")
        );
    }
    // Keys written before the kill are on the backup only with replication
    // (tests/ops_pair.rs); here: availability.

    // A client that stays connected through the backup.
    let mut held = Client::connect(fe);
    assert_eq!(held.call_line(b"set held 0 0 1\r\nh\r\n"), "STORED\r\n");

    // The active node comes back on its port: after `rise` good checks new
    // connections go to it again, and on-marked-up
    // shutdown-backup-sessions cuts the client still on the backup so that
    // it reconnects to the active node.
    let port1 = mc1.port;
    let mut cmd = Command::new(binary());
    cmd.args(["-p", &port1.to_string(), "-l", "127.0.0.1", "-U", "0"]);
    if is_root() {
        cmd.args(["-u", "root"]);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("restart mc1");
    let mut mc1 = Server { child, port: port1 };
    assert!(
        mc1.wait_ready(Duration::from_secs(10)),
        "mc1 did not restart"
    );
    let t1 = Instant::now();
    let back = eventually(Duration::from_secs(10), || {
        one_shot(fe, b"set back 0 0 1\r\nb\r\n", Duration::from_millis(500)).as_deref()
            == Some("STORED\r\n")
            && mc1.connect().stat("curr_items").as_deref() == Some("1")
    });
    assert!(back, "traffic did not return to mc1:\n{}", log_text(&log));
    eprintln!("traffic back on mc1 after {:?}", t1.elapsed());
    let (_, closed) = held.read_for(Duration::from_secs(5));
    assert!(
        closed,
        "the connection on the backup was not cut when mc1 came back"
    );
}

#[test]
fn nutcracker_spreads_keys_over_two_nodes() {
    let Some(nutcracker) = require_tool("nutcracker") else {
        return;
    };
    let dir = TempDir::new("nutcracker");
    let a = Server::start(&["-U", "0"]);
    let b = Server::start(&["-U", "0"]);
    let listen = free_port();
    let stats = free_port();
    let example = read_repo_file("examples/nutcracker.yml");
    let cfg = rewrite(
        &example,
        &[
            ("127.0.0.1:22121", format!("127.0.0.1:{listen}")),
            ("10.0.1.10:11211", a.addr()),
            ("10.0.2.10:11211", b.addr()),
        ],
    );
    let cfg_path = dir.path().join("nutcracker.yml");
    std::fs::write(&cfg_path, &cfg).expect("write cfg");
    let check = Command::new(&nutcracker)
        .arg("-t")
        .arg("-c")
        .arg(&cfg_path)
        .output()
        .expect("nutcracker -t");
    assert!(
        check.status.success(),
        "nutcracker -t: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let log = dir.path().join("nutcracker.log");
    let _proxy = spawn_logged(
        Command::new(&nutcracker)
            .arg("-c")
            .arg(&cfg_path)
            .arg("-s")
            .arg(stats.to_string())
            .arg("-a")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(dir.path().join("nutcracker.pid"))
            .arg("-o")
            .arg(dir.path().join("nutcracker.out")),
        &log,
    );
    assert!(
        eventually(Duration::from_secs(10), || {
            one_shot(
                listen,
                b"set probe 0 0 1\r\np\r\n",
                Duration::from_millis(500),
            )
            .as_deref()
                == Some("STORED\r\n")
        }),
        "nutcracker does not forward:\n{}{}",
        log_text(&log),
        log_text(&dir.path().join("nutcracker.out"))
    );

    const N: usize = 200;
    let mut c = Client::connect(listen);
    for i in 0..N {
        assert_eq!(
            c.call_line(
                format!(
                    "set key:{i} {i} 0 {}\r\nvalue-{i}\r\n",
                    format!("value-{i}").len()
                )
                .as_bytes()
            ),
            "STORED\r\n",
            "set key:{i}"
        );
    }
    // The client sees one cache: every key comes back through the proxy,
    // alone and in multi-key gets (which nutcracker splits by server).
    for i in 0..N {
        c.send(format!("get key:{i}\r\n").as_bytes());
        let v = format!("value-{i}");
        assert_eq!(
            c.read_until_any(&[b"END\r\n"]),
            format!("VALUE key:{i} {i} {}\r\n{v}\r\nEND\r\n", v.len()).into_bytes()
        );
    }
    for chunk in (0..N).collect::<Vec<_>>().chunks(25) {
        let keys: Vec<String> = chunk.iter().map(|i| format!("key:{i}")).collect();
        c.send(format!("get {}\r\n", keys.join(" ")).as_bytes());
        let mut expect = Vec::new();
        for i in chunk {
            let v = format!("value-{i}");
            expect
                .extend_from_slice(format!("VALUE key:{i} {i} {}\r\n{v}\r\n", v.len()).as_bytes());
        }
        expect.extend_from_slice(b"END\r\n");
        assert_eq!(
            String::from_utf8_lossy(&c.read_until_any(&[b"END\r\n"])),
            String::from_utf8_lossy(&expect)
        );
    }
    assert_eq!(c.call_line(b"delete key:7\r\n"), "DELETED\r\n");
    c.send(b"get key:7\r\n");
    assert_eq!(c.read_until_any(&[b"END\r\n"]), b"END\r\n");

    // The keys are spread over both nodes, each key on exactly one.
    let items = |s: &Server| -> usize {
        s.connect()
            .stat("curr_items")
            .and_then(|v| v.parse().ok())
            .expect("curr_items")
    };
    let (na, nb) = (items(&a), items(&b));
    // N keys, minus the deleted one, plus the probe.
    assert_eq!(na + nb, N, "a={na} b={nb}");
    assert!(na >= N / 5 && nb >= N / 5, "uneven spread: a={na} b={nb}");
}

#[test]
fn keepalived_check_script() {
    let script = repo_file("examples/check-version");
    let server = Server::start(&["-U", "0"]);
    let ok = Command::new(&script)
        .args(["127.0.0.1", &server.port.to_string(), "2"])
        .status()
        .expect("run check-version");
    assert!(ok.success(), "check failed against a live server");
    let dead = free_port();
    let bad = Command::new(&script)
        .args(["127.0.0.1", &dead.to_string(), "2"])
        .status()
        .expect("run check-version");
    assert!(!bad.success(), "check passed against a closed port");
    // Something that answers, but not `VERSION `: fails too.
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let t = std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            let mut b = [0u8; 64];
            let _ = s.read(&mut b);
            let _ = s.write_all(b"ERROR\r\n");
        }
    });
    let wrong = Command::new(&script)
        .args(["127.0.0.1", &port.to_string(), "2"])
        .status()
        .expect("run check-version");
    assert!(!wrong.success(), "check passed on an ERROR reply");
    let _ = t.join();
    // The keepalived example runs this script against the local server.
    let conf = read_repo_file("examples/keepalived.conf");
    assert!(conf.contains("check-version 127.0.0.1 11211"));
}
