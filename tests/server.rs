//! The network layer end to end, in-process: `server::bind` + `server::serve`
//! on a thread, real sockets, a free port per test.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::Client;
use twincache::config::Config;
use twincache::exec::Shared;
use twincache::server::{self, Exit};

/// A server running on threads of this test process.
struct InProc {
    /// The TCP address (unset for a Unix-socket server).
    addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    handle: Option<JoinHandle<std::io::Result<Exit>>>,
}

impl InProc {
    fn start(tune: impl FnOnce(&mut Config)) -> InProc {
        let mut cfg = Config {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            threads: 2,
            shutdown_enabled: true,
            ..Config::default()
        };
        tune(&mut cfg);
        let shared = Arc::new(Shared::new(cfg));
        let listeners = server::bind(&shared).expect("bind");
        let addr = listeners.local_addrs().first().copied();
        let s = Arc::clone(&shared);
        let handle = std::thread::spawn(move || server::serve(s, listeners));
        InProc {
            addr,
            shared,
            handle: Some(handle),
        }
    }

    fn port(&self) -> u16 {
        self.addr.expect("a TCP server").port()
    }

    fn client(&self) -> Client {
        Client::connect(self.port())
    }

    /// Waits (bounded) for `serve` to return.
    fn join(&mut self, timeout: Duration) -> Option<std::io::Result<Exit>> {
        let h = self.handle.take()?;
        let deadline = Instant::now() + timeout;
        while !h.is_finished() {
            if Instant::now() > deadline {
                self.handle = Some(h);
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(h.join().expect("serve panicked"))
    }

    fn shutdown(&mut self) -> std::io::Result<Exit> {
        if let (true, Some(addr)) = (self.handle.is_some(), self.addr) {
            // At the -c limit the request is refused until the server has
            // seen the test's own clients close: retry.
            for _ in 0..200 {
                let Ok(mut s) = TcpStream::connect(addr) else {
                    break;
                };
                let _ = s.write_all(b"shutdown\r\n");
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut reply = Vec::new();
                let _ = s.read_to_end(&mut reply);
                if reply.is_empty() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.join(Duration::from_secs(10))
            .expect("server did not stop within 10 s")
    }
}

impl Drop for InProc {
    fn drop(&mut self) {
        if self.handle.is_some() && !std::thread::panicking() {
            let _ = self.shutdown();
        }
    }
}

fn stat(c: &mut Client, name: &str) -> u64 {
    c.stat(name)
        .unwrap_or_else(|| panic!("no stat {name}"))
        .parse()
        .unwrap()
}

#[test]
fn set_and_get_through_sockets() {
    let srv = InProc::start(|_| {});
    let mut c = srv.client();
    assert_eq!(c.call_line(b"set foo 5 0 3\r\nbar\r\n"), "STORED\r\n");
    c.send(b"get foo\r\n");
    assert_eq!(
        c.read_until_any(&[b"END\r\n"]),
        b"VALUE foo 5 3\r\nbar\r\nEND\r\n"
    );
    c.send(b"version\r\n");
    assert!(c.read_line().starts_with(b"VERSION "));
    // Another connection (likely on the other worker) sees the same store.
    let mut d = srv.client();
    d.send(b"get foo nope foo\r\n");
    assert_eq!(
        d.read_until_any(&[b"END\r\n"]),
        b"VALUE foo 5 3\r\nbar\r\nVALUE foo 5 3\r\nbar\r\nEND\r\n"
    );
    assert!(stat(&mut d, "bytes_read") > 0);
    assert!(stat(&mut d, "bytes_written") > 0);
    assert_eq!(stat(&mut d, "curr_connections"), 2);
}

#[test]
fn unknown_command_and_quit() {
    let srv = InProc::start(|_| {});
    let mut c = srv.client();
    // Replies queued before `quit` are still delivered, then EOF.
    c.send(b"bogus\r\nset a 0 0 1\r\nx\r\nquit\r\nget a\r\n");
    let (out, closed) = c.read_for(Duration::from_secs(2));
    assert_eq!(out, b"ERROR\r\nSTORED\r\n");
    assert!(closed);
    let mut d = srv.client();
    assert!(common::eventually(Duration::from_secs(2), || stat(
        &mut d,
        "curr_connections"
    ) == 1));
}

/// 10,000 requests in one write: every reply arrives, in order.
#[test]
fn deep_pipeline_in_one_write() {
    let srv = InProc::start(|_| {});
    let mut req = Vec::new();
    let mut want = Vec::new();
    for i in 0..5000 {
        let v = format!("value-{i}");
        req.extend_from_slice(format!("set k{i} {i} 0 {}\r\n{v}\r\n", v.len()).as_bytes());
        want.extend_from_slice(b"STORED\r\n");
        req.extend_from_slice(format!("get k{i} k{}\r\n", i / 2).as_bytes());
        want.extend_from_slice(format!("VALUE k{i} {i} {}\r\n{v}\r\n", v.len()).as_bytes());
        let h = i / 2;
        let hv = format!("value-{h}");
        want.extend_from_slice(format!("VALUE k{h} {h} {}\r\n{hv}\r\n", hv.len()).as_bytes());
        want.extend_from_slice(b"END\r\n");
    }
    let mut c = srv.client();
    let mut w = c.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&req).unwrap());
    let mut got = Vec::with_capacity(want.len());
    let mut buf = vec![0u8; 65536];
    while got.len() < want.len() {
        let n = c.stream.read(&mut buf).expect("read");
        assert!(n > 0, "server closed after {} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
    }
    writer.join().unwrap();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "replies differ from the expected sequence");
    // Deep pipelines spend the -R budget.
    assert!(stat(&mut c, "conn_yields") > 0);
}

#[test]
fn byte_by_byte_requests() {
    let srv = InProc::start(|_| {});
    let mut c = srv.client();
    let req = b"set slow 1 0 5\r\nhello\r\nget slow\r\n";
    for b in req.iter() {
        c.send(&[*b]);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(c.read_line(), b"STORED\r\n");
    assert_eq!(
        c.read_until_any(&[b"END\r\n"]),
        b"VALUE slow 1 5\r\nhello\r\nEND\r\n"
    );
}

/// With one worker and -R 2, a client flooding pipelined gets does not keep
/// another client waiting until it is done.
#[test]
fn reqs_per_event_keeps_others_served() {
    let srv = InProc::start(|c| {
        c.threads = 1;
        c.reqs_per_event = 2;
    });
    const N: usize = 200_000;
    let flood: Vec<u8> = b"get nokey\r\n".repeat(N);
    let mut a = srv.client();
    let mut b = srv.client();
    assert!(b.call_line(b"version\r\n").starts_with("VERSION "));
    let mut aw = a.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || aw.write_all(&flood).unwrap());
    let reader = std::thread::spawn(move || {
        let want = N * 5; // "END\r\n" per get
        let mut got = 0;
        let mut buf = vec![0u8; 65536];
        while got < want {
            let n = a.stream.read(&mut buf).expect("read flood replies");
            assert!(n > 0);
            got += n;
        }
        assert_eq!(got, want);
        Instant::now()
    });
    // Once the whole flood is written, most of it waits in the server's
    // socket buffer; B's request comes in behind it.
    writer.join().unwrap();
    let t0 = Instant::now();
    assert!(b.call_line(b"version\r\n").starts_with("VERSION "));
    let b_done = Instant::now();
    let a_done = reader.join().unwrap();
    assert!(
        b_done < a_done,
        "the second client waited for the flood ({:?})",
        b_done - t0
    );
    assert!(stat(&mut b, "conn_yields") > 100);
}

#[test]
fn max_connections_refusal() {
    let srv = InProc::start(|c| c.max_connections = 2);
    let mut a = srv.client();
    let mut b = srv.client();
    assert!(a.call_line(b"version\r\n").starts_with("VERSION"));
    assert!(b.call_line(b"version\r\n").starts_with("VERSION"));
    let mut c = srv.client();
    let (out, closed) = c.read_for(Duration::from_secs(2));
    assert_eq!(out, b"ERROR Too many open connections\r\n");
    assert!(closed);
    assert_eq!(stat(&mut a, "rejected_connections"), 1);
    assert_eq!(stat(&mut a, "curr_connections"), 2);
    // Once one leaves, a new client gets in.
    drop(b);
    let mut a2 = a;
    assert!(common::eventually(Duration::from_secs(2), || stat(
        &mut a2,
        "curr_connections"
    ) == 1));
    let mut d = srv.client();
    assert!(d.call_line(b"version\r\n").starts_with("VERSION"));
}

#[test]
fn max_connections_without_maxconns_fast_waits() {
    let srv = InProc::start(|c| {
        c.max_connections = 1;
        c.maxconns_fast = false;
    });
    let mut a = srv.client();
    assert!(a.call_line(b"version\r\n").starts_with("VERSION"));
    // The second connection waits in the backlog, unanswered.
    let mut b = srv.client();
    b.send(b"version\r\n");
    let (out, closed) = b.read_for(Duration::from_millis(300));
    assert!(out.is_empty() && !closed);
    assert_eq!(stat(&mut a, "accepting_conns"), 0);
    drop(a);
    // ...and is served once the first one closed.
    assert!(b.read_line().starts_with(b"VERSION"));
    assert!(stat(&mut b, "listen_disabled_num") >= 1);
}

/// A too-large value sent in pieces is swallowed whole, never run.
#[test]
fn too_large_value_is_swallowed_across_reads() {
    let srv = InProc::start(|_| {});
    let mut c = srv.client();
    let len = 2 * 1024 * 1024;
    c.send(format!("set big 0 0 {len}\r\n").as_bytes());
    let piece = b"version\r\n".repeat(1000);
    let mut sent = 0;
    while sent < len {
        let n = piece.len().min(len - sent);
        c.send(&piece[..n]);
        sent += n;
        if sent % (256 * 1024) < piece.len() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    c.send(b"\r\nget big\r\n");
    assert_eq!(
        c.read_line(),
        b"SERVER_ERROR object too large for cache\r\n"
    );
    assert_eq!(c.read_line(), b"END\r\n");
    let (rest, _) = c.read_for(Duration::from_millis(200));
    assert!(
        rest.is_empty(),
        "unexpected: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

#[test]
fn long_line_without_newline_closes() {
    let srv = InProc::start(|_| {});
    let mut c = srv.client();
    c.send(&vec![b'x'; 3000]);
    let (out, closed) = c.read_for(Duration::from_secs(2));
    assert!(out.is_empty(), "got {:?}", String::from_utf8_lossy(&out));
    assert!(closed);
}

#[test]
fn idle_timeout_kicks_idle_connections() {
    let srv = InProc::start(|c| c.idle_timeout = 1);
    let mut idle = srv.client();
    assert!(idle.call_line(b"version\r\n").starts_with("VERSION"));
    let t0 = Instant::now();
    let (out, closed) = idle.read_for(Duration::from_secs(5));
    assert!(out.is_empty());
    assert!(closed, "idle connection was not closed");
    assert!(t0.elapsed() >= Duration::from_millis(900));
    let mut c = srv.client();
    assert!(stat(&mut c, "idle_kicks") >= 1);
}

#[test]
fn shutdown_command_stops_serve_after_flushing() {
    let mut srv = InProc::start(|_| {});
    let mut c = srv.client();
    c.send(b"set a 0 0 1\r\nz\r\nget a\r\nshutdown\r\nget a\r\n");
    let (out, closed) = c.read_for(Duration::from_secs(5));
    assert_eq!(out, b"STORED\r\nVALUE a 0 1\r\nz\r\nEND\r\n");
    assert!(closed);
    let r = srv
        .join(Duration::from_secs(10))
        .expect("serve did not return");
    assert_eq!(r.expect("serve failed"), Exit::Normal);
    // The listener is gone.
    assert!(TcpStream::connect(srv.addr.unwrap()).is_err());
}

#[test]
fn stats_conns_lists_listener_and_clients() {
    let srv = InProc::start(|_| {});
    let mut other = srv.client();
    assert!(other.call_line(b"version\r\n").starts_with("VERSION"));
    let mut c = srv.client();
    c.send(b"stats conns\r\n");
    let raw = String::from_utf8(c.read_until_any(&[b"END\r\n"])).unwrap();
    let port = srv.port();
    let lines: Vec<&str> = raw.lines().collect();
    let listener = lines
        .iter()
        .position(|l| l.ends_with(&format!(":addr tcp:127.0.0.1:{port}")))
        .expect("listener line");
    assert!(lines[listener + 1].ends_with(":state conn_listening"));
    assert!(lines[listener + 2].contains(":secs_since_last_cmd "));
    let me = c.stream.local_addr().unwrap().port();
    let mine = lines
        .iter()
        .position(|l| l.ends_with(&format!(":addr tcp:127.0.0.1:{me}")))
        .expect("own line");
    let fd = lines[mine]
        .strip_prefix("STAT ")
        .unwrap()
        .split(':')
        .next()
        .unwrap();
    assert_eq!(
        lines[mine + 1],
        format!("STAT {fd}:listen_addr tcp:127.0.0.1:{port}")
    );
    assert_eq!(lines[mine + 2], format!("STAT {fd}:state conn_parse_cmd"));
    assert_eq!(lines[mine + 3], format!("STAT {fd}:secs_since_last_cmd 0"));
    let other_port = other.stream.local_addr().unwrap().port();
    let o = lines
        .iter()
        .position(|l| l.ends_with(&format!(":addr tcp:127.0.0.1:{other_port}")))
        .expect("other client's line");
    assert!(
        lines[o + 2].ends_with(":state conn_read"),
        "{}",
        lines[o + 2]
    );
    assert_eq!(*lines.last().unwrap(), "END");
    // memcached's order: by file descriptor.
    let fds: Vec<i64> = lines
        .iter()
        .filter(|l| l.contains(":addr "))
        .map(|l| l[5..].split(':').next().unwrap().parse().unwrap())
        .collect();
    let mut sorted = fds.clone();
    sorted.sort();
    assert_eq!(fds, sorted);
    assert_eq!(fds.len(), 3);
}

#[test]
fn unix_socket_serves() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixStream;
    let path = std::env::temp_dir().join(format!("twincache-test-{}.sock", std::process::id()));
    // A stale socket file from an earlier run is replaced.
    let _stale = std::os::unix::net::UnixListener::bind(&path);
    let p = path.clone();
    let mut srv = InProc::start(move |c| {
        c.unix_socket = Some(p);
        c.unix_mask = 0o700;
    });
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let mut s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"set u 0 0 2\r\nok\r\nget u\r\nstats conns\r\nshutdown\r\n")
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.starts_with("STORED\r\nVALUE u 0 2\r\nok\r\nEND\r\n"),
        "{out}"
    );
    assert!(out.contains(&format!(":addr unix:{}\r\n", path.display())));
    assert!(out.contains(":state conn_listening\r\n"));
    assert!(out.contains(":addr ?:<AF 0>\r\n"));
    assert!(out.ends_with("END\r\n"));
    let r = srv
        .join(Duration::from_secs(10))
        .expect("serve did not return");
    assert_eq!(r.unwrap(), Exit::Normal);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn connection_counters() {
    let srv = InProc::start(|_| {});
    let mut c = srv.client();
    let total0 = stat(&mut c, "total_connections");
    {
        let mut d = srv.client();
        assert!(d.call_line(b"version\r\n").starts_with("VERSION"));
        assert_eq!(stat(&mut c, "curr_connections"), 2);
    }
    assert!(common::eventually(Duration::from_secs(2), || stat(
        &mut c,
        "curr_connections"
    ) == 1));
    assert_eq!(stat(&mut c, "total_connections"), total0 + 1);
    assert!(stat(&mut c, "connection_structures") >= 3);
    let _ = &srv.shared;
}

/// A stop (here `shutdown` from another client; SIGTERM takes the same
/// path) while a client is pipelining: the requests already read are
/// answered, their replies arrive whole, then a clean EOF (no reset).
#[test]
fn stop_flushes_replies_of_requests_already_read() {
    let mut srv = InProc::start(|c| c.threads = 1);
    let mut a = srv.client();
    assert_eq!(
        a.call_line(&[b"set k 0 0 100\r\n".as_slice(), &[b'x'; 100], b"\r\n"].concat()),
        "STORED\r\n"
    );
    let flood = b"get k\r\n".repeat(300_000);
    let mut aw = a.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = aw.write_all(&flood);
    });
    std::thread::sleep(Duration::from_millis(30));
    let mut b = srv.client();
    b.send(b"shutdown\r\n");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match a.stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read failed after {} bytes: {e}", got.len()),
        }
    }
    // "VALUE k 0 100\r\n" (15) + 100 + "\r\n" + "END\r\n" (5)
    let replies = got.len() / 122;
    assert!(replies > 0);
    assert_eq!(got.len() % 122, 0, "a reply was cut short");
    assert!(got.ends_with(b"END\r\n"));
    writer.join().unwrap();
    drop(a);
    // Our EOF lets the worker finish before its drain deadline.
    let r = srv
        .join(Duration::from_secs(2))
        .expect("serve did not return");
    assert_eq!(r.unwrap(), Exit::Normal);
}

/// Log lines captured from every thread of this test process.
fn captured_logs() -> &'static std::sync::Mutex<Vec<u8>> {
    use std::sync::{Mutex, OnceLock};
    static LOGS: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        struct W(&'static Mutex<Vec<u8>>);
        impl Write for W {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || W(logs))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        logs
    })
}

/// `-vv`: each request line and its reply, memcached style.
#[test]
fn vv_logs_requests_and_replies() {
    let logs = captured_logs();
    let srv = InProc::start(|c| c.verbosity = 2);
    let mut c = srv.client();
    c.send(b"set vvkey 0 0 3\r\nabc\r\nget vvkey\r\nvvbogus\r\n");
    assert_eq!(
        c.read_until_any(&[b"ERROR\r\n"]),
        b"STORED\r\nVALUE vvkey 0 3\r\nabc\r\nEND\r\nERROR\r\n"
    );
    c.send(b"stats conns\r\n");
    let conns = String::from_utf8(c.read_until_any(&[b"END\r\n"])).unwrap();
    let me = c.stream.local_addr().unwrap().port();
    let fd = conns
        .lines()
        .find(|l| l.ends_with(&format!(":addr tcp:127.0.0.1:{me}")))
        .and_then(|l| l.strip_prefix("STAT "))
        .and_then(|l| l.split(':').next())
        .unwrap()
        .to_string();
    drop(c);
    let want = [
        format!("<{fd} new auto-negotiating client connection"),
        format!("<{fd} set vvkey 0 0 3"),
        format!(">{fd} STORED"),
        format!("<{fd} get vvkey"),
        format!(">{fd} sending key vvkey"),
        format!(">{fd} END"),
        format!("<{fd} vvbogus"),
        format!(">{fd} ERROR"),
        format!("<{fd} connection closed."),
    ];
    let ok = common::eventually(Duration::from_secs(2), || {
        let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
        let mut pos = 0;
        want.iter().all(|w| match text[pos..].find(w.as_str()) {
            Some(i) => {
                pos += i + w.len();
                true
            }
            None => false,
        })
    });
    assert!(
        ok,
        "log lines missing or out of order:\n{}",
        String::from_utf8_lossy(&logs.lock().unwrap())
    );
}

/// Values around and far above the read-buffer size, whole and in uneven
/// pieces, pipelined with gets: the grown buffers come back intact.
#[test]
fn large_values_round_trip() {
    let srv = InProc::start(|c| c.threads = 1);
    let mut c = srv.client();
    let sizes = [
        0usize, 1, 4095, 16_383, 16_384, 16_385, 100_000, 500_000, 1_000_000,
    ];
    for (round, &len) in sizes.iter().cycle().take(sizes.len() * 3).enumerate() {
        let value: Vec<u8> = (0..len).map(|i| (i * 7 + round) as u8).collect();
        let mut req = format!("set big{round} {round} 0 {len}\r\n").into_bytes();
        req.extend_from_slice(&value);
        req.extend_from_slice(format!("\r\nget big{round}\r\n").as_bytes());
        if round % 2 == 0 {
            c.send(&req);
        } else {
            for piece in req.chunks(7_777 + round) {
                c.send(piece);
            }
        }
        assert_eq!(c.read_line(), b"STORED\r\n", "round {round}, {len} bytes");
        let mut want = format!("VALUE big{round} {round} {len}\r\n").into_bytes();
        want.extend_from_slice(&value);
        want.extend_from_slice(b"\r\nEND\r\n");
        let got = c.read_until_any(&[b"\r\nEND\r\n"]);
        assert!(got == want, "round {round}: {len}-byte value differs");
    }
}

/// IPv4 and IPv6 listeners side by side (IPV6_V6ONLY lets both use one
/// port); `stats conns` prints IPv6 the way memcached does.
#[test]
fn ipv4_and_ipv6_listeners() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("SKIPPED: no IPv6 loopback here");
        return;
    }
    let port = common::free_port();
    let srv = InProc::start(move |c| {
        c.listen = vec![
            format!("127.0.0.1:{port}").parse().unwrap(),
            format!("[::1]:{port}").parse().unwrap(),
        ];
    });
    let mut s6 = TcpStream::connect(("::1", port)).unwrap();
    s6.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let me = s6.local_addr().unwrap().port();
    s6.write_all(b"stats conns\r\n").unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.ends_with(b"END\r\n") {
        let n = s6.read(&mut buf).unwrap();
        assert!(n > 0);
        out.extend_from_slice(&buf[..n]);
    }
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains(&format!(":addr tcp:127.0.0.1:{port}\r\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!(":addr tcp6:[::1]:{port}\r\n")),
        "{out}"
    );
    assert!(out.contains(&format!(":addr tcp6:[::1]:{me}\r\n")), "{out}");
    assert!(
        out.contains(&format!(":listen_addr tcp6:[::1]:{port}\r\n")),
        "{out}"
    );
    let mut c4 = srv.client();
    assert!(c4.call_line(b"version\r\n").starts_with("VERSION"));
}

/// Clients that vanish mid-conversation (reset with replies queued, EOF in
/// the middle of a value) are cleaned up; the server goes on.
#[test]
fn abrupt_disconnects_are_cleaned_up() {
    let srv = InProc::start(|_| {});
    let mut c = srv.client();
    let mut set = b"set v 0 0 4096\r\n".to_vec();
    set.extend_from_slice(&[b'v'; 4096]);
    set.extend_from_slice(b"\r\n");
    assert_eq!(c.call_line(&set), "STORED\r\n");
    for i in 0..20 {
        let mut s = TcpStream::connect(srv.addr.unwrap()).unwrap();
        if i % 2 == 0 {
            // Lots of replies queued, then a reset.
            s.write_all(&b"get v\r\n".repeat(5000)).unwrap();
            std::thread::sleep(Duration::from_millis(5));
            socket2::SockRef::from(&s)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
        } else {
            // Half a value, then EOF.
            s.write_all(b"set half 0 0 100\r\nabc").unwrap();
        }
        drop(s);
    }
    let closed = common::eventually(Duration::from_secs(5), || {
        stat(&mut c, "curr_connections") == 1
    });
    if !closed {
        c.send(b"stats conns\r\n");
        let conns = String::from_utf8(c.read_until_any(&[b"END\r\n"])).unwrap();
        panic!("connections left open:\n{conns}");
    }
    c.send(b"get half\r\n");
    assert_eq!(c.read_until_any(&[b"END\r\n"]), b"END\r\n");
}

/// The maintenance thread reclaims expired items nobody reads again.
#[test]
fn expired_items_are_reclaimed_in_the_background() {
    let srv = InProc::start(|_| {});
    let mut c = srv.client();
    let mut req = Vec::new();
    for i in 0..200 {
        req.extend_from_slice(format!("set ttl{i} 0 2 3 noreply\r\nabc\r\n").as_bytes());
    }
    c.send(&req);
    assert!(common::eventually(Duration::from_secs(2), || stat(
        &mut c,
        "curr_items"
    ) == 200));
    assert!(
        common::eventually(Duration::from_secs(7), || stat(&mut c, "curr_items") == 0),
        "expired items still counted: {}",
        stat(&mut c, "curr_items")
    );
}

/// `conn_yields` counts like memcached 1.6.18 (observed with one thread and
/// -R 20: pipelines of 20, 21, 40 and 100 gets yield 0, 1, 1 and 4 times).
#[test]
fn conn_yields_count_like_memcached() {
    let srv = InProc::start(|c| {
        c.threads = 1;
        c.reqs_per_event = 20;
    });
    let mut c = srv.client();
    let mut total = 0;
    for (n, yields) in [(20, 0), (21, 1), (40, 1), (100, 4)] {
        c.send(&b"get x\r\n".repeat(n));
        let want = b"END\r\n".repeat(n);
        let mut got = Vec::new();
        while got.len() < want.len() {
            got.extend_from_slice(&c.read_line());
        }
        assert_eq!(got, want);
        total += yields;
        assert_eq!(stat(&mut c, "conn_yields"), total, "after {n} gets");
    }
}
