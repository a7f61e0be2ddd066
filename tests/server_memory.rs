//! Memory bounds of the network layer, measured as this process's VmRSS.
//! A separate test binary (process) so that other tests' allocations do
//! not blur the numbers; the tests here run one after another.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Client;
use twincache::config::Config;
use twincache::exec::Shared;
use twincache::server;

static SERIAL: Mutex<()> = Mutex::new(());

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn start(max_connections: usize) -> (u16, std::thread::JoinHandle<std::io::Result<server::Exit>>) {
    let cfg = Config {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        threads: 2,
        shutdown_enabled: true,
        max_connections,
        ..Config::default()
    };
    let shared = Arc::new(Shared::new(cfg));
    let listeners = server::bind(&shared).expect("bind");
    let port = listeners.local_addrs()[0].port();
    let h = std::thread::spawn(move || server::serve(shared, listeners));
    (port, h)
}

fn stop(port: u16, h: std::thread::JoinHandle<std::io::Result<server::Exit>>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"shutdown\r\n").unwrap();
    h.join().unwrap().unwrap();
}

/// A client that pipelines 200,000 gets of a 4 KB value and never reads
/// would need 800 MB of replies; the server must hold only about its
/// output high-water mark.
#[test]
fn never_reading_client_does_not_grow_memory() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (port, h) = start(1024);
    let mut c = Client::connect(port);
    let value = vec![b'v'; 4096];
    let mut set = b"set big 0 0 4096\r\n".to_vec();
    set.extend_from_slice(&value);
    set.extend_from_slice(b"\r\n");
    assert_eq!(c.call_line(&set), "STORED\r\n");
    let flood = b"get big\r\n".repeat(200_000);
    let before = rss_kb();

    let flooder = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut w = flooder.try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&flood);
    });
    // Give the server time to fill every buffer it is willing to fill.
    std::thread::sleep(Duration::from_secs(2));
    let during = rss_kb();
    // Others are still served meanwhile, and the flood was served until
    // the client's windows filled (over 1,000 gets, i.e. more than 4 MB of
    // replies sit in the kernel's socket buffers).
    assert!(c.call_line(b"version\r\n").starts_with("VERSION"));
    let gets: u64 = c.stat("cmd_get").unwrap().parse().unwrap();
    eprintln!("gets served while the client does not read: {gets}");
    assert!(gets > 1000, "{gets}");
    let grown_mb = during.saturating_sub(before) / 1024;
    eprintln!("RSS before {before} kB, with the flood {during} kB");
    assert!(
        grown_mb < 24,
        "server memory grew by {grown_mb} MB for a client that never reads"
    );
    let _ = flooder.shutdown(std::net::Shutdown::Both);
    drop(flooder);
    writer.join().unwrap();
    assert!(common::eventually(Duration::from_secs(5), || c
        .stat("curr_connections")
        .as_deref()
        == Some("1")));
    drop(c);
    stop(port, h);
}

/// 1,000 idle connections (each checked with `version`) cost a few KB each.
#[test]
fn idle_connections_are_cheap() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (port, h) = start(2000);
    // Warm up the worker pools and allocator first.
    {
        let mut warm: Vec<Client> = (0..50).map(|_| Client::connect(port)).collect();
        for w in &mut warm {
            assert!(w.call_line(b"version\r\n").starts_with("VERSION"));
        }
    }
    let before = rss_kb();
    let mut idle = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let mut c = Client::connect(port);
        assert!(c.call_line(b"version\r\n").starts_with("VERSION"));
        idle.push(c);
    }
    let after = rss_kb();
    let per_conn = (after.saturating_sub(before)) * 1024 / 1000;
    eprintln!("RSS {before} kB -> {after} kB: {per_conn} bytes per idle connection (client side included)");
    assert!(per_conn <= 8 * 1024, "{per_conn} bytes per idle connection");
    let mut c = Client::connect(port);
    assert_eq!(c.stat("curr_connections").as_deref(), Some("1001"));
    drop(c);
    drop(idle);
    stop(port, h);
}
