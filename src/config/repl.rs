//! Replication flags (repcached-style pair): `-x`, `-X`, `-q` and the
//! `--repl-*` / `--node-id` long options, parsed and checked here; the
//! replication code only reads the resulting [`ReplicationConfig`].

use std::time::Duration;

use super::*;

/// Default `-X`.
pub const DEFAULT_REPL_PORT: u16 = 11212;

/// Replication (repcached-style pair). Active only when `peer` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationConfig {
    /// `-x HOST[:PORT]`: the peer (host name or IP literal; IPv6 as `[::1]:port`).
    /// Port defaults to our own -X.
    pub peer: Option<PeerAddr>,
    /// -X PORT: replication listener port (default 11212), bound on the same
    /// addresses as -l.
    pub port: u16,
    /// -q N: outbox bound in entries (repcached's -q; default 1_000_000).
    pub outbox_items: u64,
    /// --repl-outbox-bytes N: outbox bound in bytes (default 64 MiB; k/m/g
    /// suffixes accepted).
    pub outbox_bytes: u64,
    /// --repl-secret-file PATH: shared secret for the challenge-response
    /// handshake. Only checked to exist here; the file is read by replication.
    pub secret_file: Option<PathBuf>,
    /// --repl-sync-timeout SECS: how long a starting node waits for its
    /// initial sync before opening the client port anyway (default 30;
    /// 0 = do not wait).
    pub sync_timeout: Duration,
    /// --node-id N (1..=255): version tie-break id; None = derived at start.
    pub node_id: Option<u8>,
    /// --repl-heartbeat-ms (default 500): ping interval.
    pub heartbeat: Duration,
    /// --repl-timeout-ms (default 3000): silence after which the peer is
    /// declared dead; always greater than `heartbeat`.
    pub peer_timeout: Duration,
    /// --repl-backoff-max-ms (default 2000): cap of the exponential redial
    /// backoff (starts at 50 ms).
    pub backoff_max: Duration,
    /// --repl-drain-timeout SECS (default 5): how long a graceful stop waits
    /// for the outbox to drain.
    pub drain_timeout: Duration,
    /// --repl-tombstone-ttl SECS (default 3600): how long delete tombstones
    /// are kept.
    pub tombstone_ttl: u32,
    /// --repl-tombstone-bytes N (default 16 MiB; k/m/g suffixes accepted):
    /// memory bound of the delete tombstones.
    pub tombstone_bytes: u64,
}

/// `-x`: where the peer is. `host` is a host name or an IP literal (IPv6
/// without brackets), ready for `(host.as_str(), port).to_socket_addrs()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddr {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            peer: None,
            port: DEFAULT_REPL_PORT,
            outbox_items: 1_000_000,
            outbox_bytes: 64 * 1024 * 1024,
            secret_file: None,
            sync_timeout: Duration::from_secs(30),
            node_id: None,
            heartbeat: Duration::from_millis(500),
            peer_timeout: Duration::from_millis(3000),
            backoff_max: Duration::from_millis(2000),
            drain_timeout: Duration::from_secs(5),
            tombstone_ttl: 3600,
            tombstone_bytes: 16 * 1024 * 1024,
        }
    }
}

impl Config {
    /// True when a peer is configured (`-x`).
    pub fn replication_enabled(&self) -> bool {
        self.replication.peer.is_some()
    }

    /// Where the replication listener binds: the `-l` addresses (default
    /// 127.0.0.1) with the port `-X`. An `-l` entry's own port is replaced.
    /// With `-p 0` or `-s` (no client TCP listener) the `-l` list is still
    /// used for replication.
    pub fn replication_listen_addrs(&self) -> Vec<SocketAddr> {
        let port = self.replication.port;
        let base: Vec<SocketAddr> = if !self.listen.is_empty() {
            self.listen.clone()
        } else {
            match &self.listen_spec {
                // Checked by from_args when replication is on; a failure here
                // (a host name that stopped resolving) gives no address.
                Some(spec) => resolve_listen(spec, port).unwrap_or_default(),
                None => Vec::new(),
            }
        };
        let mut out: Vec<SocketAddr> = Vec::new();
        for mut a in base {
            a.set_port(port);
            if !out.contains(&a) {
                out.push(a);
            }
        }
        if out.is_empty() {
            out.push(SocketAddr::from(([127, 0, 0, 1], port)));
        }
        out
    }
}

/// A whole decimal number (surrounding blanks allowed), no sign, no junk.
fn whole(s: &str) -> Option<u64> {
    let t = s.trim();
    if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

fn number(flag: &str, v: &str) -> Result<u64, ConfigError> {
    whole(v).ok_or_else(|| refuse(format!("{flag} {v}: not a whole number")))
}

/// A byte count with an optional binary `k`, `m` or `g` suffix (either case).
pub(super) fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let (body, mult) = match t.as_bytes().last() {
        Some(b'k' | b'K') => (&t[..t.len() - 1], 1u64 << 10),
        Some(b'm' | b'M') => (&t[..t.len() - 1], 1 << 20),
        Some(b'g' | b'G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    whole(body)?.checked_mul(mult)
}

fn size(flag: &str, v: &str) -> Result<u64, ConfigError> {
    parse_size(v).ok_or_else(|| {
        refuse(format!(
            "{flag} {v}: not a size (bytes, or a number with a k, m or g suffix)"
        ))
    })
}

/// `-X`: 1..=65535.
fn repl_port(v: &str) -> Result<u16, ConfigError> {
    match whole(v) {
        Some(n) if (1..=65535).contains(&n) => Ok(n as u16),
        _ => Err(refuse(format!(
            "-X {v}: invalid replication port (expected 1 to 65535)"
        ))),
    }
}

/// `-x HOST[:PORT]`: `host`, `host:port`, `[v6]`, `[v6]:port`, or a bare
/// IPv6 address (two or more colons, no port). `default_port` is our `-X`.
pub fn parse_peer(v: &str, default_port: u16) -> Result<PeerAddr, ConfigError> {
    let entry = v.trim();
    let fail = |why: &str| refuse(format!("-x {v}: {why}"));
    let (host, port_text): (&str, Option<&str>) = if let Some(rest) = entry.strip_prefix('[') {
        let (h, tail) = rest
            .split_once(']')
            .ok_or_else(|| fail("bad IPv6 address (write it as [addr] or [addr]:port)"))?;
        if h.parse::<Ipv6Addr>().is_err() {
            return Err(fail("bad IPv6 address (write it as [addr] or [addr]:port)"));
        }
        if tail.is_empty() {
            (h, None)
        } else if let Some(p) = tail.strip_prefix(':') {
            (h, Some(p))
        } else {
            return Err(fail("bad IPv6 address (write it as [addr] or [addr]:port)"));
        }
    } else if entry.matches(':').count() >= 2 {
        if entry.parse::<Ipv6Addr>().is_err() {
            return Err(fail("bad IPv6 address (write it as [addr] or [addr]:port)"));
        }
        (entry, None)
    } else if let Some((h, p)) = entry.split_once(':') {
        (h, Some(p))
    } else {
        (entry, None)
    };
    if host.is_empty() {
        return Err(fail("the peer host is empty"));
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '[' | ']' | ','))
    {
        return Err(fail("bad peer host"));
    }
    let port = match port_text {
        None => default_port,
        Some(p) => match whole(p) {
            Some(n) if (1..=65535).contains(&n) => n as u16,
            _ => {
                return Err(fail(&format!(
                    "bad peer port \"{p}\" (expected 1 to 65535)"
                )))
            }
        },
    };
    Ok(PeerAddr {
        host: host.to_string(),
        port,
    })
}

fn millis(flag: &str, v: &str) -> Result<Duration, ConfigError> {
    number(flag, v).map(Duration::from_millis)
}

fn secs(flag: &str, v: &str) -> Result<Duration, ConfigError> {
    number(flag, v).map(Duration::from_secs)
}

/// Reads the replication flags into `cfg.replication`. Runs after the
/// client listeners (`cfg.listen`, `cfg.port`) and `-C` are known.
pub(super) fn apply_replication(cfg: &mut Config, m: &ArgMatches) -> Result<(), ConfigError> {
    let mut r = ReplicationConfig::default();
    if let Some(v) = value(m, "repl-port") {
        r.port = repl_port(v)?;
    }
    if let Some(v) = value(m, "repl-outbox-items") {
        r.outbox_items = number("-q", v)?;
        if r.outbox_items == 0 {
            return Err(refuse(format!(
                "-q {v}: the outbox bound must be at least 1 entry"
            )));
        }
    }
    if let Some(v) = value(m, "repl-outbox-bytes") {
        r.outbox_bytes = size("--repl-outbox-bytes", v)?;
        if r.outbox_bytes == 0 {
            return Err(refuse(format!(
                "--repl-outbox-bytes {v}: the outbox bound must be greater than 0"
            )));
        }
    }
    if let Some(v) = value(m, "repl-secret-file") {
        let path = PathBuf::from(v);
        match std::fs::metadata(&path) {
            Ok(md) if md.is_dir() => {
                return Err(refuse(format!(
                    "--repl-secret-file {v}: is a directory, not a file"
                )))
            }
            Ok(_) => {}
            Err(e) => {
                return Err(refuse(format!("--repl-secret-file {v}: {e}")));
            }
        }
        r.secret_file = Some(path);
    }
    if let Some(v) = value(m, "repl-sync-timeout") {
        r.sync_timeout = secs("--repl-sync-timeout", v)?;
    }
    if let Some(v) = value(m, "node-id") {
        match whole(v) {
            Some(n) if (1..=255).contains(&n) => r.node_id = Some(n as u8),
            _ => {
                return Err(refuse(format!(
                    "--node-id {v}: expected a number from 1 to 255"
                )))
            }
        }
    }
    if let Some(v) = value(m, "repl-heartbeat-ms") {
        r.heartbeat = millis("--repl-heartbeat-ms", v)?;
        if r.heartbeat.is_zero() {
            return Err(refuse(format!(
                "--repl-heartbeat-ms {v}: the heartbeat interval must be at least 1 ms"
            )));
        }
    }
    if let Some(v) = value(m, "repl-timeout-ms") {
        r.peer_timeout = millis("--repl-timeout-ms", v)?;
    }
    if r.peer_timeout <= r.heartbeat {
        return Err(refuse(format!(
            "--repl-timeout-ms ({}) must be greater than --repl-heartbeat-ms ({})",
            r.peer_timeout.as_millis(),
            r.heartbeat.as_millis()
        )));
    }
    if let Some(v) = value(m, "repl-backoff-max-ms") {
        r.backoff_max = millis("--repl-backoff-max-ms", v)?;
        if r.backoff_max.is_zero() {
            return Err(refuse(format!(
                "--repl-backoff-max-ms {v}: the redial backoff cap must be at least 1 ms"
            )));
        }
    }
    if let Some(v) = value(m, "repl-drain-timeout") {
        r.drain_timeout = secs("--repl-drain-timeout", v)?;
    }
    if let Some(v) = value(m, "repl-tombstone-ttl") {
        match whole(v).and_then(|n| u32::try_from(n).ok()) {
            Some(n) if n > 0 => r.tombstone_ttl = n,
            _ => {
                return Err(refuse(format!(
                    "--repl-tombstone-ttl {v}: expected seconds from 1 to 4294967295 \
                     (tombstones keep deletes from being undone)"
                )))
            }
        }
    }
    if let Some(v) = value(m, "repl-tombstone-bytes") {
        r.tombstone_bytes = size("--repl-tombstone-bytes", v)?;
        if r.tombstone_bytes == 0 {
            return Err(refuse(format!(
                "--repl-tombstone-bytes {v}: the tombstone bound must be greater than 0"
            )));
        }
    }

    // The peer, and the checks that matter only when replication is on.
    if let Some(v) = value(m, "repl-peer") {
        let peer = parse_peer(v, r.port)?;
        if !cfg.cas_enabled {
            return Err(refuse(format!(
                "-x {v}: replication needs CAS (versions); drop -C"
            )));
        }
        let client_tcp = !cfg.listen.is_empty();
        if client_tcp && (cfg.port == r.port || cfg.listen.iter().any(|a| a.port() == r.port)) {
            return Err(refuse(format!(
                "-X {}: the replication port must differ from the client port",
                r.port
            )));
        }
        cfg.replication = r;
        let own = cfg.replication_listen_addrs();
        if cfg.unix_socket.is_some() && cfg.listen_spec.is_some() {
            // The -l list is still used by the replication listener.
            if let Some(w) = cfg.warnings.iter_mut().find(|w| w.starts_with("-s given")) {
                *w = "-s given: -l is used only for the replication listener, no client \
                      TCP listener is opened"
                    .into();
            }
        }
        if let Some(spec) = &cfg.listen_spec {
            if cfg.listen.is_empty() {
                // Not resolved for clients (-p 0 or -s): check it here.
                resolve_listen(spec, cfg.replication.port)?;
            }
        }
        if let Ok(ip) = peer.host.parse::<IpAddr>() {
            let target = SocketAddr::new(ip, peer.port);
            if own.contains(&target) {
                return Err(refuse(format!(
                    "-x {v}: the peer is this node's own replication address {target}; \
                     give the other node's address"
                )));
            }
        }
        if cfg.replication.outbox_bytes < cfg.item_size_max as u64 {
            cfg.warnings.push(format!(
                "--repl-outbox-bytes {}: smaller than the largest item (-I {}); such \
                 items always overflow the outbox and force a resync",
                cfg.replication.outbox_bytes, cfg.item_size_max
            ));
        }
        if cfg.replication.secret_file.is_none() {
            cfg.warnings.push(format!(
                "-x {v}: no --repl-secret-file: the replication link is not \
                 authenticated; only connections from the peer's address are accepted"
            ));
        }
        cfg.replication.peer = Some(peer);
    } else {
        cfg.replication = r;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        Config::from_args(args.iter().map(OsString::from))
    }

    fn ok(args: &[&str]) -> Config {
        match parse(args) {
            Ok(c) => c,
            Err(e) => panic!("{args:?} refused: {e:?}"),
        }
    }

    fn err(args: &[&str]) -> (i32, String) {
        match parse(args) {
            Ok(_) => panic!("{args:?} accepted"),
            Err(e) => (e.exit_code(), e.message().to_string()),
        }
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn peer(host: &str, port: u16) -> Option<PeerAddr> {
        Some(PeerAddr {
            host: host.into(),
            port,
        })
    }

    /// A file that exists for --repl-secret-file.
    fn secret_file() -> PathBuf {
        let p = std::env::temp_dir().join(format!("twincache-cfg-secret-{}", std::process::id()));
        std::fs::write(&p, b"s3cret\n").unwrap();
        p
    }

    #[test]
    fn defaults() {
        let c = ok(&[]);
        let r = &c.replication;
        assert!(!c.replication_enabled());
        assert_eq!(r.peer, None);
        assert_eq!(r.port, 11212);
        assert_eq!(r.outbox_items, 1_000_000);
        assert_eq!(r.outbox_bytes, 64 * 1024 * 1024);
        assert_eq!(r.secret_file, None);
        assert_eq!(r.sync_timeout, Duration::from_secs(30));
        assert_eq!(r.node_id, None);
        assert_eq!(r.heartbeat, Duration::from_millis(500));
        assert_eq!(r.peer_timeout, Duration::from_millis(3000));
        assert_eq!(r.backoff_max, Duration::from_millis(2000));
        assert_eq!(r.drain_timeout, Duration::from_secs(5));
        assert_eq!(r.tombstone_ttl, 3600);
        assert_eq!(r.tombstone_bytes, 16 * 1024 * 1024);
        assert_eq!(*r, ReplicationConfig::default());
        assert_eq!(c.replication_listen_addrs(), vec![sa("127.0.0.1:11212")]);
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn every_flag_is_recorded() {
        let secret = secret_file();
        let c = ok(&[
            "-x",
            "10.0.0.2:12000",
            "-X",
            "12001",
            "-q",
            "500",
            "--repl-outbox-bytes",
            "8m",
            "--repl-secret-file",
            secret.to_str().unwrap(),
            "--repl-sync-timeout=0",
            "--node-id",
            "255",
            "--repl-heartbeat-ms=100",
            "--repl-timeout-ms=250",
            "--repl-backoff-max-ms=750",
            "--repl-drain-timeout=9",
            "--repl-tombstone-ttl=60",
            "--repl-tombstone-bytes=1g",
        ]);
        let _ = std::fs::remove_file(&secret);
        assert!(c.replication_enabled());
        let want = ReplicationConfig {
            peer: peer("10.0.0.2", 12000),
            port: 12001,
            outbox_items: 500,
            outbox_bytes: 8 << 20,
            secret_file: Some(secret.clone()),
            sync_timeout: Duration::ZERO,
            node_id: Some(255),
            heartbeat: Duration::from_millis(100),
            peer_timeout: Duration::from_millis(250),
            backoff_max: Duration::from_millis(750),
            drain_timeout: Duration::from_secs(9),
            tombstone_ttl: 60,
            tombstone_bytes: 1 << 30,
        };
        assert_eq!(c.replication, want);
        // With a secret there is no "not authenticated" warning.
        assert!(!c.warnings.iter().any(|w| w.contains("not authenticated")));
        assert_eq!(c.replication_listen_addrs(), vec![sa("127.0.0.1:12001")]);
    }

    #[test]
    fn short_options_bundle_and_attach() {
        let c = ok(&["-vX11300", "-xpeer.example:11400", "-q7"]);
        assert_eq!(c.verbosity, 1);
        assert_eq!(c.replication.port, 11300);
        assert_eq!(c.replication.peer, peer("peer.example", 11400));
        assert_eq!(c.replication.outbox_items, 7);
        let c = ok(&["-vx", "10.1.1.1", "-X", "11213"]);
        assert_eq!(c.replication.peer, peer("10.1.1.1", 11213));
        // Last one wins, like every other option.
        let c = ok(&["-x", "10.1.1.1", "-x", "10.1.1.2", "-q", "1", "-q", "2"]);
        assert_eq!(c.replication.peer, peer("10.1.1.2", 11212));
        assert_eq!(c.replication.outbox_items, 2);
    }

    #[test]
    fn peer_address_forms() {
        assert_eq!(
            parse_peer("10.0.0.1", 7).unwrap(),
            peer("10.0.0.1", 7).unwrap()
        );
        assert_eq!(
            parse_peer("10.0.0.1:9", 7).unwrap(),
            peer("10.0.0.1", 9).unwrap()
        );
        assert_eq!(parse_peer("node-b", 7).unwrap(), peer("node-b", 7).unwrap());
        assert_eq!(
            parse_peer("node-b:65535", 7).unwrap(),
            peer("node-b", 65535).unwrap()
        );
        assert_eq!(parse_peer("[::1]:9", 7).unwrap(), peer("::1", 9).unwrap());
        assert_eq!(parse_peer("[::1]", 7).unwrap(), peer("::1", 7).unwrap());
        assert_eq!(
            parse_peer("fe80::2", 7).unwrap(),
            peer("fe80::2", 7).unwrap()
        );
        assert_eq!(parse_peer("[::1]:9", 7).unwrap().to_string(), "[::1]:9");
        assert_eq!(parse_peer("h", 7).unwrap().to_string(), "h:7");
        // The peer's port defaults to our own -X wherever -X appears.
        assert_eq!(
            ok(&["-x", "::1", "-X", "5000"]).replication.peer,
            peer("::1", 5000)
        );
        assert_eq!(
            ok(&["-X", "5000", "-x", "h"]).replication.peer,
            peer("h", 5000)
        );
        for (bad, why) in [
            ("", "the peer host is empty"),
            (":1234", "the peer host is empty"),
            ("h:", "bad peer port \"\" (expected 1 to 65535)"),
            ("h:0", "bad peer port \"0\" (expected 1 to 65535)"),
            ("h:65536", "bad peer port \"65536\" (expected 1 to 65535)"),
            ("h:12ab", "bad peer port \"12ab\" (expected 1 to 65535)"),
            ("h:-1", "bad peer port \"-1\" (expected 1 to 65535)"),
            (
                "[::1",
                "bad IPv6 address (write it as [addr] or [addr]:port)",
            ),
            (
                "[::1]x",
                "bad IPv6 address (write it as [addr] or [addr]:port)",
            ),
            (
                "[nohost]:1",
                "bad IPv6 address (write it as [addr] or [addr]:port)",
            ),
            (
                "[]:1",
                "bad IPv6 address (write it as [addr] or [addr]:port)",
            ),
            (
                "a:b:c",
                "bad IPv6 address (write it as [addr] or [addr]:port)",
            ),
            ("a b", "bad peer host"),
            ("a,b", "bad peer host"),
        ] {
            assert_eq!(
                err(&["-x", bad]),
                (EX_USAGE, format!("-x {bad}: {why}")),
                "-x {bad:?}"
            );
        }
    }

    #[test]
    fn replication_port_range() {
        assert_eq!(ok(&["-X", "1"]).replication.port, 1);
        assert_eq!(ok(&["-X", "65535"]).replication.port, 65535);
        for bad in [
            "0",
            "65536",
            "-1",
            "abc",
            "12x",
            "",
            "99999999999999999999999",
        ] {
            assert_eq!(
                err(&["-X", bad]),
                (
                    EX_USAGE,
                    format!("-X {bad}: invalid replication port (expected 1 to 65535)")
                ),
                "-X {bad:?}"
            );
        }
    }

    #[test]
    fn replication_port_must_differ_from_client_port() {
        let msg = "-X 11211: the replication port must differ from the client port";
        assert_eq!(
            err(&["-x", "10.0.0.2", "-X", "11211"]),
            (EX_USAGE, msg.into())
        );
        assert_eq!(
            err(&["-x", "10.0.0.2", "-p", "11212"]),
            (
                EX_USAGE,
                "-X 11212: the replication port must differ from the client port".into()
            )
        );
        // An -l entry's own port is a client port too.
        assert_eq!(
            err(&["-x", "10.0.0.2", "-l", "127.0.0.1:11212"]).1,
            "-X 11212: the replication port must differ from the client port"
        );
        // Without a peer nothing binds -X: harmless, accepted.
        let c = ok(&["-p", "11212"]);
        assert!(!c.replication_enabled());
        assert_eq!(c.replication.port, 11212);
        let c = ok(&["-X", "11211", "-q", "9"]);
        assert!(!c.replication_enabled());
        assert_eq!(c.replication.outbox_items, 9);
        // No client TCP listener (-p 0, -s): no clash possible.
        assert!(ok(&["-p", "0", "-x", "10.0.0.2", "-X", "11211"]).replication_enabled());
        assert!(ok(&["-s", "/tmp/x.sock", "-x", "10.0.0.2", "-X", "11211"]).replication_enabled());
    }

    #[test]
    fn peer_needs_cas() {
        let msg = "-x 10.0.0.2: replication needs CAS (versions); drop -C";
        assert_eq!(err(&["-C", "-x", "10.0.0.2"]), (EX_USAGE, msg.into()));
        assert_eq!(err(&["-x", "10.0.0.2", "--disable-cas"]).1, msg);
        // -C alone is fine.
        assert!(!ok(&["-C"]).cas_enabled);
    }

    #[test]
    fn node_id_range() {
        assert_eq!(ok(&["--node-id", "1"]).replication.node_id, Some(1));
        assert_eq!(ok(&["--node-id=255"]).replication.node_id, Some(255));
        for bad in ["0", "256", "-1", "x", "", "1.5"] {
            assert_eq!(
                err(&["--node-id", bad]),
                (
                    EX_USAGE,
                    format!("--node-id {bad}: expected a number from 1 to 255")
                ),
                "--node-id {bad:?}"
            );
        }
    }

    #[test]
    fn outbox_bounds() {
        assert_eq!(
            err(&["-q", "0"]),
            (
                EX_USAGE,
                "-q 0: the outbox bound must be at least 1 entry".into()
            )
        );
        assert_eq!(
            err(&["-q", "x"]),
            (EX_USAGE, "-q x: not a whole number".into())
        );
        assert_eq!(
            ok(&["-q", "18446744073709551615"]).replication.outbox_items,
            u64::MAX
        );
        for (text, bytes) in [
            ("1", 1u64),
            ("1024", 1024),
            ("4k", 4096),
            ("4K", 4096),
            ("2m", 2 << 20),
            ("2M", 2 << 20),
            ("3g", 3 << 30),
            ("3G", 3 << 30),
        ] {
            assert_eq!(
                ok(&["--repl-outbox-bytes", text]).replication.outbox_bytes,
                bytes,
                "{text}"
            );
            assert_eq!(
                ok(&["--repl-tombstone-bytes", text])
                    .replication
                    .tombstone_bytes,
                bytes,
                "{text}"
            );
        }
        for bad in ["", "k", "1t", "-1", "1.5m", "99999999999g"] {
            assert_eq!(
                err(&["--repl-outbox-bytes", bad]),
                (
                    EX_USAGE,
                    format!(
                        "--repl-outbox-bytes {bad}: not a size (bytes, or a number with a \
                         k, m or g suffix)"
                    )
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            err(&["--repl-outbox-bytes", "0"]).1,
            "--repl-outbox-bytes 0: the outbox bound must be greater than 0"
        );
        assert_eq!(
            err(&["--repl-tombstone-bytes", "0k"]).1,
            "--repl-tombstone-bytes 0k: the tombstone bound must be greater than 0"
        );
        // An outbox smaller than the largest item works, with a warning.
        let c = ok(&["-x", "10.0.0.2", "--repl-outbox-bytes", "512k"]);
        assert!(
            c.warnings
                .iter()
                .any(|w| w.starts_with("--repl-outbox-bytes 524288: smaller than the largest item")),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn timers() {
        let c = ok(&["--repl-heartbeat-ms", "1", "--repl-timeout-ms", "2"]);
        assert_eq!(c.replication.heartbeat, Duration::from_millis(1));
        assert_eq!(c.replication.peer_timeout, Duration::from_millis(2));
        assert_eq!(
            err(&["--repl-timeout-ms", "500"]),
            (
                EX_USAGE,
                "--repl-timeout-ms (500) must be greater than --repl-heartbeat-ms (500)".into()
            )
        );
        assert_eq!(
            err(&["--repl-heartbeat-ms", "5000"]).1,
            "--repl-timeout-ms (3000) must be greater than --repl-heartbeat-ms (5000)"
        );
        assert_eq!(
            err(&["--repl-heartbeat-ms", "0"]).1,
            "--repl-heartbeat-ms 0: the heartbeat interval must be at least 1 ms"
        );
        assert_eq!(
            err(&["--repl-backoff-max-ms", "0"]).1,
            "--repl-backoff-max-ms 0: the redial backoff cap must be at least 1 ms"
        );
        assert_eq!(
            err(&["--repl-timeout-ms", "3s"]).1,
            "--repl-timeout-ms 3s: not a whole number"
        );
        assert_eq!(
            err(&["--repl-sync-timeout", "-1"]).1,
            "--repl-sync-timeout -1: not a whole number"
        );
        assert_eq!(
            err(&["--repl-drain-timeout", "x"]).1,
            "--repl-drain-timeout x: not a whole number"
        );
        assert_eq!(
            ok(&["--repl-drain-timeout", "0"]).replication.drain_timeout,
            Duration::ZERO
        );
        assert_eq!(
            ok(&["--repl-tombstone-ttl", "4294967295"])
                .replication
                .tombstone_ttl,
            u32::MAX
        );
        for bad in ["0", "4294967296", "x"] {
            assert!(
                err(&["--repl-tombstone-ttl", bad])
                    .1
                    .starts_with(&format!("--repl-tombstone-ttl {bad}: expected seconds")),
                "{bad}"
            );
        }
    }

    #[test]
    fn secret_file_must_exist() {
        let (code, msg) = err(&["--repl-secret-file", "/nonexistent/twincache-secret"]);
        assert_eq!(code, EX_USAGE);
        assert!(
            msg.starts_with("--repl-secret-file /nonexistent/twincache-secret: No such file"),
            "{msg}"
        );
        let dir = std::env::temp_dir();
        let (_, msg) = err(&["--repl-secret-file", dir.to_str().unwrap()]);
        assert!(msg.ends_with("is a directory, not a file"), "{msg}");
        // Without one, a peer is accepted with a warning.
        let c = ok(&["-x", "10.0.0.2"]);
        assert!(c
            .warnings
            .iter()
            .any(|w| w.starts_with("-x 10.0.0.2: no --repl-secret-file")));
    }

    #[test]
    fn listen_addresses_follow_l_with_port_x() {
        let c = ok(&["-l", "127.0.0.1,::1", "-x", "10.0.0.2", "-X", "12000"]);
        assert_eq!(
            c.replication_listen_addrs(),
            vec![sa("127.0.0.1:12000"), sa("[::1]:12000")]
        );
        // An -l entry's own port is replaced; duplicates collapse.
        let c = ok(&[
            "-l",
            "127.0.0.1:5000,127.0.0.1",
            "-p",
            "5001",
            "-x",
            "10.0.0.2",
        ]);
        assert_eq!(c.replication_listen_addrs(), vec![sa("127.0.0.1:11212")]);
        let c = ok(&["-l", "*", "-x", "10.0.0.2"]);
        assert_eq!(
            c.replication_listen_addrs(),
            vec![sa("0.0.0.0:11212"), sa("[::]:11212")]
        );
        // No client TCP listener: -l is still where replication listens.
        let c = ok(&["-p", "0", "-l", "127.0.0.2", "-x", "10.0.0.2"]);
        assert!(c.listen.is_empty());
        assert_eq!(c.replication_listen_addrs(), vec![sa("127.0.0.2:11212")]);
        let c = ok(&["-s", "/tmp/x.sock", "-l", "127.0.0.3", "-x", "10.0.0.2"]);
        assert_eq!(c.replication_listen_addrs(), vec![sa("127.0.0.3:11212")]);
        assert!(c
            .warnings
            .iter()
            .any(|w| w.contains("-l is used only for the replication listener")));
        assert_eq!(
            ok(&["-p", "0", "-x", "10.0.0.2"]).replication_listen_addrs(),
            vec![sa("127.0.0.1:11212")]
        );
        // A bad -l is still an error when only replication uses it.
        assert_eq!(
            err(&["-p", "0", "-l", "127.0.0.1:x", "-x", "10.0.0.2"]).0,
            EX_OSERR
        );
        // The pair of the issue, on one host.
        let a = ok(&["-l", "127.0.0.1", "-X", "11212", "-x", "127.0.0.2"]);
        let b = ok(&["-l", "127.0.0.2", "-X", "11212", "-x", "127.0.0.1"]);
        assert_eq!(a.replication_listen_addrs(), vec![sa("127.0.0.1:11212")]);
        assert_eq!(b.replication.peer, peer("127.0.0.1", 11212));
    }

    #[test]
    fn peer_cannot_be_ourselves() {
        assert_eq!(
            err(&["-x", "127.0.0.1"]),
            (
                EX_USAGE,
                "-x 127.0.0.1: the peer is this node's own replication address \
                 127.0.0.1:11212; give the other node's address"
                    .into()
            )
        );
        // Same address, other port: a second node on this host.
        assert!(ok(&["-x", "127.0.0.1:11213"]).replication_enabled());
    }

    #[test]
    fn help_lists_every_replication_option() {
        let help = help_text();
        assert!(help.contains("Replication (twincache)"));
        for o in [
            "-x <host>",
            "-X <port>",
            "-q <num>",
            "--repl-outbox-bytes=",
            "--repl-secret-file=",
            "--repl-sync-timeout=",
            "--node-id=",
            "--repl-heartbeat-ms=",
            "--repl-timeout-ms=",
            "--repl-backoff-max-ms=",
            "--repl-drain-timeout=",
            "--repl-tombstone-ttl=",
            "--repl-tombstone-bytes=",
        ] {
            let line = help
                .lines()
                .position(|l| l.trim_start().starts_with(o))
                .unwrap_or_else(|| panic!("{o} missing from help"));
            // Its default is stated in its own entry (up to the next option).
            let lines: Vec<&str> = help.lines().collect();
            let mut text = lines[line].to_string();
            for l in &lines[line + 1..] {
                if l.trim_start().starts_with('-') || l.trim().is_empty() {
                    break;
                }
                text.push_str(l);
            }
            assert!(text.contains("default"), "{o}: no default in help");
        }
    }

    #[test]
    fn stats_settings_unchanged() {
        let c = ok(&["-x", "10.0.0.2", "-X", "12000", "-q", "5"]);
        assert_eq!(c.settings(), ok(&[]).settings());
    }
}
