//! Command-line flags (memcached 1.6 compatible) turned into a [`Config`].
//!
//! clap lives here and in main.rs only; the rest of the crate sees the
//! plain [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;

/// `-B`: which protocols a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingProtocol {
    Ascii,
    Auto,
}

/// The whole server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `-p` (0 = no TCP listener).
    pub port: u16,
    /// `-U` (only 0 is accepted).
    pub udp_port: u16,
    /// `-l` as given (for `stats settings inter`), None when not given.
    pub listen_spec: Option<String>,
    /// TCP addresses to listen on, resolved from `-l` and `-p`.
    pub listen: Vec<SocketAddr>,
    /// `-s`: a Unix socket instead of TCP.
    pub unix_socket: Option<PathBuf>,
    /// `-a`: mode of the Unix socket file.
    pub unix_mask: u32,
    /// `-c`
    pub max_connections: usize,
    /// `-t`
    pub threads: usize,
    /// `-m` in megabytes.
    pub memory_limit_mb: u64,
    /// false with `-M`.
    pub evictions: bool,
    /// `-I` in bytes.
    pub item_size_max: usize,
    /// `-f`
    pub growth_factor: f64,
    /// `-n`
    pub chunk_size: usize,
    /// `-R`
    pub reqs_per_event: usize,
    /// false with `-C`.
    pub cas_enabled: bool,
    /// `-b`
    pub backlog: i32,
    /// `-B`
    pub protocol: BindingProtocol,
    /// `-v` count.
    pub verbosity: u8,
    /// `-P`
    pub pidfile: Option<PathBuf>,
    /// `-d`
    pub daemonize: bool,
    /// `-u`
    pub user: Option<String>,
    /// `-r`
    pub enable_coredumps: bool,
    /// `-k`
    pub lock_memory: bool,
    /// `-L`
    pub large_pages: bool,
    /// `-F` clears it.
    pub flush_enabled: bool,
    /// `-A`
    pub shutdown_enabled: bool,
    /// `-D`
    pub detail_delimiter: Option<char>,
    /// false with `--disable-dumping` (memcached's `-X`).
    pub dumping_enabled: bool,
    /// false with `-W`.
    pub watch_enabled: bool,
    /// `-o maxconns_fast` (default on).
    pub maxconns_fast: bool,
    /// `-o idle_timeout=N` seconds, 0 = off.
    pub idle_timeout: u32,
    /// `-o hashpower=N`, 0 = default.
    pub hashpower_init: u32,
    /// Every `-o` sub-option as given, in order (name, value).
    pub extended: Vec<(String, Option<String>)>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 11211,
            udp_port: 0,
            listen_spec: None,
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 11211))],
            unix_socket: None,
            unix_mask: 0o700,
            max_connections: 1024,
            threads: 4,
            memory_limit_mb: 64,
            evictions: true,
            item_size_max: 1024 * 1024,
            growth_factor: 1.25,
            chunk_size: 48,
            reqs_per_event: 20,
            cas_enabled: true,
            backlog: 1024,
            protocol: BindingProtocol::Auto,
            verbosity: 0,
            pidfile: None,
            daemonize: false,
            user: None,
            enable_coredumps: false,
            lock_memory: false,
            large_pages: false,
            flush_enabled: true,
            shutdown_enabled: false,
            detail_delimiter: None,
            dumping_enabled: true,
            watch_enabled: true,
            maxconns_fast: true,
            idle_timeout: 0,
            hashpower_init: 0,
            extended: Vec::new(),
        }
    }
}

impl Config {
    /// `-m` in bytes.
    pub fn memory_limit_bytes(&self) -> u64 {
        self.memory_limit_mb.saturating_mul(1024 * 1024)
    }
}

impl Config {
    /// `stats settings` lines in memcached 1.6.18's order: (name, value).
    /// Values are single tokens where memcached's are.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let yn = |b: bool| if b { "yes" } else { "no" }.to_string();
        vec![
            ("maxbytes", self.memory_limit_bytes().to_string()),
            ("maxconns", self.max_connections.to_string()),
            ("tcpport", self.port.to_string()),
            ("udpport", self.udp_port.to_string()),
            (
                "inter",
                self.listen_spec.clone().unwrap_or_else(|| "NULL".into()),
            ),
            ("verbosity", self.verbosity.to_string()),
            ("oldest", "0".into()),
            (
                "evictions",
                if self.evictions { "on" } else { "off" }.into(),
            ),
            (
                "domain_socket",
                self.unix_socket
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "NULL".into()),
            ),
            ("umask", format!("{:o}", self.unix_mask)),
            ("shutdown_command", yn(self.shutdown_enabled)),
            ("growth_factor", format!("{:.2}", self.growth_factor)),
            ("chunk_size", self.chunk_size.to_string()),
            ("num_threads", self.threads.to_string()),
            ("num_threads_per_udp", self.threads.to_string()),
            (
                "stat_key_prefix",
                self.detail_delimiter.unwrap_or(':').to_string(),
            ),
            ("detail_enabled", yn(self.detail_delimiter.is_some())),
            ("reqs_per_event", self.reqs_per_event.to_string()),
            ("cas_enabled", yn(self.cas_enabled)),
            ("tcp_backlog", self.backlog.to_string()),
            (
                "binding_protocol",
                match self.protocol {
                    BindingProtocol::Ascii => "ascii",
                    BindingProtocol::Auto => "auto-negotiate",
                }
                .into(),
            ),
            ("auth_enabled_sasl", "no".into()),
            ("auth_enabled_ascii", "no".into()),
            ("item_size_max", self.item_size_max.to_string()),
            ("maxconns_fast", yn(self.maxconns_fast)),
            ("hashpower_init", self.hashpower_init.to_string()),
            ("flush_enabled", yn(self.flush_enabled)),
            ("dump_enabled", yn(self.dumping_enabled)),
            ("idle_timeout", self.idle_timeout.to_string()),
        ]
    }
}
