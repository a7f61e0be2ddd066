//! What `stats conns` reports, kept apart from the connections themselves.
//!
//! Each connection shares a small [`ConnInfo`] with this registry. The
//! worker updates its state and last-command time with relaxed atomic
//! stores (no lock on the request path); the per-worker lists are locked
//! only when a connection opens or closes and when `stats conns` runs.

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use slab::Slab;

use crate::exec::ServerInfo;
use crate::protocol::encode;

/// memcached's connection states, as `stats conns` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum State {
    Listening = 0,
    Read,
    ParseCmd,
    Nread,
    Swallow,
    Mwrite,
    Closing,
}

impl State {
    fn name(code: u8) -> &'static str {
        match code {
            0 => "conn_listening",
            1 => "conn_read",
            2 => "conn_parse_cmd",
            3 => "conn_nread",
            4 => "conn_swallow",
            5 => "conn_mwrite",
            _ => "conn_closing",
        }
    }
}

/// The part of a connection other threads may look at.
#[derive(Debug)]
pub(crate) struct ConnInfo {
    pub fd: i32,
    /// `tcp:ip:port`, as `stats conns` prints it.
    pub addr: String,
    /// The listener it came through.
    pub listen_addr: Arc<str>,
    state: AtomicU8,
    last_cmd: AtomicU32,
}

impl ConnInfo {
    pub(crate) fn new(fd: i32, addr: String, listen_addr: Arc<str>, now: u32) -> ConnInfo {
        ConnInfo {
            fd,
            addr,
            listen_addr,
            state: AtomicU8::new(State::Read as u8),
            last_cmd: AtomicU32::new(now),
        }
    }

    #[inline]
    pub(crate) fn set_state(&self, s: State) {
        let old = self.state.swap(s as u8, Ordering::Relaxed);
        // -vvv: state changes, in memcached's words.
        if old != s as u8 {
            tracing::trace!(
                "{}: going from {} to {}",
                self.fd,
                State::name(old),
                State::name(s as u8)
            );
        }
    }

    #[inline]
    pub(crate) fn set_last_cmd(&self, now: u32) {
        self.last_cmd.store(now, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn last_cmd(&self) -> u32 {
        self.last_cmd.load(Ordering::Relaxed)
    }
}

struct ListenerEntry {
    fd: i32,
    addr: String,
}

/// Every listener and connection of the server, for `stats conns`.
pub(crate) struct ConnRegistry {
    listeners: Vec<ListenerEntry>,
    /// When the listeners started (their "last command").
    started: u32,
    workers: Vec<Mutex<Slab<Arc<ConnInfo>>>>,
}

impl ConnRegistry {
    pub(crate) fn new(listeners: Vec<(i32, String)>, workers: usize, now: u32) -> ConnRegistry {
        ConnRegistry {
            listeners: listeners
                .into_iter()
                .map(|(fd, addr)| ListenerEntry { fd, addr })
                .collect(),
            started: now,
            workers: (0..workers).map(|_| Mutex::new(Slab::new())).collect(),
        }
    }

    pub(crate) fn insert(&self, worker: usize, info: Arc<ConnInfo>) -> usize {
        match self.workers[worker].lock() {
            Ok(mut s) => s.insert(info),
            Err(poisoned) => poisoned.into_inner().insert(info),
        }
    }

    pub(crate) fn remove(&self, worker: usize, key: usize) {
        let mut s = match self.workers[worker].lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if s.contains(key) {
            s.remove(key);
        }
    }
}

enum Entry {
    Listener { fd: i32, addr: String },
    Conn(Arc<ConnInfo>),
}

impl Entry {
    fn fd(&self) -> i32 {
        match self {
            Entry::Listener { fd, .. } => *fd,
            Entry::Conn(c) => c.fd,
        }
    }
}

impl ServerInfo for ConnRegistry {
    fn write_conns(&self, out: &mut Vec<u8>, now: u32) {
        let mut all: Vec<Entry> = self
            .listeners
            .iter()
            .map(|l| Entry::Listener {
                fd: l.fd,
                addr: l.addr.clone(),
            })
            .collect();
        for w in &self.workers {
            let s = match w.lock() {
                Ok(s) => s,
                Err(poisoned) => poisoned.into_inner(),
            };
            all.extend(s.iter().map(|(_, c)| Entry::Conn(Arc::clone(c))));
        }
        // memcached walks its connection table by file descriptor.
        all.sort_by_key(Entry::fd);
        for e in &all {
            match e {
                Entry::Listener { fd, addr } => {
                    encode::stat(out, &format!("{fd}:addr"), addr);
                    encode::stat(
                        out,
                        &format!("{fd}:state"),
                        State::name(State::Listening as u8),
                    );
                    encode::stat(
                        out,
                        &format!("{fd}:secs_since_last_cmd"),
                        now.saturating_sub(self.started),
                    );
                }
                Entry::Conn(c) => {
                    let fd = c.fd;
                    encode::stat(out, &format!("{fd}:addr"), &c.addr);
                    encode::stat(out, &format!("{fd}:listen_addr"), &c.listen_addr);
                    encode::stat(
                        out,
                        &format!("{fd}:state"),
                        State::name(c.state.load(Ordering::Relaxed)),
                    );
                    encode::stat(
                        out,
                        &format!("{fd}:secs_since_last_cmd"),
                        now.saturating_sub(c.last_cmd()),
                    );
                }
            }
        }
    }
}
