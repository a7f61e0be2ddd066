//! The server as a process: SIGTERM / SIGINT stop it cleanly (exit 0)
//! after answering what it has read.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

fn wait_exit(server: &mut Server, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = server.child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn stops_on(sig: Signal) {
    let mut server = Server::start(&["-t", "2"]);
    let mut c = server.connect();
    assert_eq!(c.call_line(b"set k 0 0 2\r\nhi\r\n"), "STORED\r\n");
    let mut idle = server.connect();
    assert!(idle.call_line(b"version\r\n").starts_with("VERSION"));
    // A pipeline in flight when the signal comes is answered in full.
    c.send(&b"get k\r\n".repeat(2000));
    std::thread::sleep(Duration::from_millis(50));
    kill(Pid::from_raw(server.pid() as i32), sig).expect("kill");
    let status = wait_exit(&mut server, Duration::from_secs(5)).expect("server still running");
    assert!(status.success(), "exit status {status:?}");
    let (out, closed) = c.read_for(Duration::from_secs(2));
    assert!(closed);
    assert_eq!(out, b"VALUE k 0 2\r\nhi\r\nEND\r\n".repeat(2000));
    let (out, closed) = idle.read_for(Duration::from_secs(2));
    assert!(out.is_empty() && closed);
}

#[test]
fn sigterm_stops_cleanly() {
    stops_on(Signal::SIGTERM);
}

#[test]
fn sigint_stops_cleanly() {
    stops_on(Signal::SIGINT);
}
