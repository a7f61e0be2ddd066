//! systemd readiness protocol (`sd_notify`) without libsystemd.
//!
//! When the service manager starts us with `Type=notify` it sets
//! `NOTIFY_SOCKET` to the path of a unix datagram socket (a filesystem path,
//! or an abstract name written with a leading `@`). Each notification is one
//! datagram of newline-separated `NAME=value` assignments:
//!
//! - `READY=1` once the client listeners are open (and, with a replication
//!   peer, once the initial sync is done or has failed: see
//!   [`Readiness`]);
//! - `STATUS=...` a one-line human status shown by `systemctl status`;
//! - `STOPPING=1` when a stop begins (SIGTERM/SIGINT or `shutdown`).
//!
//! Without `NOTIFY_SOCKET` every call does nothing. Sending is best effort:
//! a failure is logged at debug level and otherwise ignored, as a lost
//! notification must never stop the cache.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::OnceLock;

/// One field of a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State<'a> {
    /// `READY=1`: start-up is finished.
    Ready,
    /// `STOPPING=1`: a stop has begun.
    Stopping,
    /// `STATUS=<text>`: free text, one line.
    Status(&'a str),
    /// `MAINPID=<pid>`: the service's main process (after `-d`).
    MainPid(u32),
}

/// The datagram for `states`: one `NAME=value` line each, newline-ended.
/// A status text is kept to one line (control characters become spaces),
/// since a newline would start a new assignment.
pub fn message(states: &[State<'_>]) -> String {
    let mut out = String::new();
    for s in states {
        match s {
            State::Ready => out.push_str("READY=1"),
            State::Stopping => out.push_str("STOPPING=1"),
            State::Status(text) => {
                out.push_str("STATUS=");
                out.extend(text.chars().map(|c| if c.is_control() { ' ' } else { c }));
            }
            State::MainPid(pid) => {
                out.push_str("MAINPID=");
                out.push_str(&pid.to_string());
            }
        }
        out.push('\n');
    }
    out
}

/// Where `NOTIFY_SOCKET` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A socket file (`/run/systemd/notify`).
    Path(std::path::PathBuf),
    /// An abstract socket name (`@name` in the variable, without the `@`).
    Abstract(Vec<u8>),
}

/// Reads a `NOTIFY_SOCKET` value. Empty or unsupported forms (systemd also
/// knows `vsock:`) give None: we then behave as if it were unset.
pub fn parse_target(value: &std::ffi::OsStr) -> Option<Target> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = value.as_bytes();
    match bytes.first()? {
        b'/' => Some(Target::Path(std::path::PathBuf::from(value))),
        b'@' if bytes.len() > 1 => Some(Target::Abstract(bytes[1..].to_vec())),
        _ => None,
    }
}

fn socket_addr(target: &Target) -> io::Result<SocketAddr> {
    match target {
        Target::Path(p) => SocketAddr::from_pathname(p),
        Target::Abstract(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)
        }
    }
}

/// Sends one notification to `target`.
pub fn send_to(target: &Target, states: &[State<'_>]) -> io::Result<()> {
    let addr = socket_addr(target)?;
    let sock = UnixDatagram::unbound()?;
    let msg = message(states);
    sock.send_to_addr(msg.as_bytes(), &addr)?;
    Ok(())
}

/// `NOTIFY_SOCKET` as read at the first notification.
fn target() -> Option<&'static Target> {
    static TARGET: OnceLock<Option<Target>> = OnceLock::new();
    TARGET
        .get_or_init(|| std::env::var_os("NOTIFY_SOCKET").and_then(|v| parse_target(&v)))
        .as_ref()
}

/// True when a service manager listens for notifications.
pub fn enabled() -> bool {
    target().is_some()
}

/// Sends `states` to `$NOTIFY_SOCKET`; does nothing when it is unset.
pub fn notify(states: &[State<'_>]) {
    if let Some(t) = target() {
        if let Err(e) = send_to(t, states) {
            tracing::debug!("sd_notify to {t:?} failed: {e}");
        }
    }
}

/// `READY=1` with a status line.
pub fn ready(status: &str) {
    notify(&[State::Ready, State::Status(status)]);
}

/// `STATUS=` alone.
pub fn status(status: &str) {
    notify(&[State::Status(status)]);
}

/// `STOPPING=1` with a status line.
pub fn stopping(status: &str) {
    notify(&[State::Stopping, State::Status(status)]);
}

/// What start-up still waits for before `READY=1`.
///
/// Today the only condition is open listeners. The replication issue adds
/// the second one: with a peer (`-x`), READY comes after the initial sync
/// from the peer has finished or failed (the repcached listener rule), so
/// a load balancer or `systemctl start` waiting on us never sees a node
/// with an empty cache as ready. That code calls [`Readiness::sync_done`].
#[derive(Debug, Default)]
pub struct Readiness {
    listening: bool,
    waits_for_sync: bool,
    synced: bool,
    sent: bool,
}

impl Readiness {
    /// `waits_for_sync`: a replication peer is configured.
    pub fn new(waits_for_sync: bool) -> Readiness {
        Readiness {
            waits_for_sync,
            ..Readiness::default()
        }
    }

    /// The listeners are bound and listening. Returns true when this made
    /// the service ready (READY=1 was sent).
    pub fn listeners_open(&mut self, status: &str) -> bool {
        self.listening = true;
        self.maybe_ready(status)
    }

    /// The initial sync with the peer finished (or failed: we then serve
    /// alone). Returns true when this made the service ready.
    pub fn sync_done(&mut self, status: &str) -> bool {
        self.synced = true;
        self.maybe_ready(status)
    }

    /// True once READY=1 has been sent.
    pub fn is_ready(&self) -> bool {
        self.sent
    }

    fn maybe_ready(&mut self, status: &str) -> bool {
        if self.sent || !self.listening || (self.waits_for_sync && !self.synced) {
            if !self.sent {
                self.status_waiting();
            }
            return false;
        }
        self.sent = true;
        ready(status);
        true
    }

    fn status_waiting(&self) {
        if self.listening && self.waits_for_sync && !self.synced {
            status("listening; waiting for the initial sync from the replication peer");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::time::Duration;

    #[test]
    fn formats() {
        assert_eq!(message(&[State::Ready]), "READY=1\n");
        assert_eq!(message(&[State::Stopping]), "STOPPING=1\n");
        assert_eq!(
            message(&[State::Ready, State::Status("listening on 127.0.0.1:11211")]),
            "READY=1\nSTATUS=listening on 127.0.0.1:11211\n"
        );
        assert_eq!(message(&[State::MainPid(42)]), "MAINPID=42\n");
        assert_eq!(message(&[]), "");
    }

    #[test]
    fn status_stays_on_one_line() {
        assert_eq!(
            message(&[State::Status("a\nREADY=1\rb\tc")]),
            "STATUS=a READY=1 b c\n"
        );
    }

    #[test]
    fn targets() {
        assert_eq!(
            parse_target(OsStr::new("/run/systemd/notify")),
            Some(Target::Path("/run/systemd/notify".into()))
        );
        assert_eq!(
            parse_target(OsStr::new("@/org/systemd/x")),
            Some(Target::Abstract(b"/org/systemd/x".to_vec()))
        );
        assert_eq!(parse_target(OsStr::new("")), None);
        assert_eq!(parse_target(OsStr::new("@")), None);
        assert_eq!(parse_target(OsStr::new("relative/path")), None);
        assert_eq!(parse_target(OsStr::new("vsock:2:1234")), None);
    }

    fn recv(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn sends_to_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("tc-notify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).unwrap();
        send_to(&Target::Path(path.clone()), &[State::Stopping]).unwrap();
        assert_eq!(recv(&sock), "STOPPING=1\n");
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_dir(&dir);
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("twincache-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        let target = parse_target(OsStr::new(&format!("@{name}"))).unwrap();
        send_to(&target, &[State::Ready, State::Status("up")]).unwrap();
        assert_eq!(recv(&sock), "READY=1\nSTATUS=up\n");
    }

    #[test]
    fn readiness_waits_for_sync_when_a_peer_is_set() {
        let mut r = Readiness::new(true);
        assert!(!r.listeners_open("x"));
        assert!(!r.is_ready());
        assert!(r.sync_done("x"));
        assert!(r.is_ready());
        assert!(!r.sync_done("x"), "READY=1 is sent once");

        let mut alone = Readiness::new(false);
        assert!(alone.listeners_open("x"));
        assert!(alone.is_ready());

        // Sync reported before the listeners open: still waits for them.
        let mut early = Readiness::new(true);
        assert!(!early.sync_done("x"));
        assert!(early.listeners_open("x"));
    }
}
