//! The acceptor thread: owns the listeners, enforces `-c`, and hands new
//! connections round-robin to the workers (crossbeam channel + Waker).

use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;
use mio::{Events, Interest, Poll, Token};

use super::listener::{Listener, Stream};
use super::Control;
use crate::config::BindingProtocol;
use crate::exec::Shared;
use crate::protocol::encode;

/// A connection on its way to a worker.
pub(crate) struct NewConn {
    pub stream: Stream,
    /// Peer address as `stats conns` prints it.
    pub addr: String,
    /// The listener's address as `stats conns` prints it.
    pub listen_addr: Arc<str>,
}

pub(crate) struct Acceptor {
    poll: Poll,
    listeners: Vec<Listener>,
    listen_addrs: Vec<Arc<str>>,
    workers: Vec<Sender<NewConn>>,
    next: usize,
    shared: Arc<Shared>,
    control: Arc<Control>,
    /// accept() failed for lack of file descriptors: retry shortly.
    backoff: bool,
    /// At `-c` without `maxconns_fast`: not accepting until one closes.
    paused: bool,
}

impl Acceptor {
    pub(crate) fn new(
        poll: Poll,
        listeners: Vec<Listener>,
        workers: Vec<Sender<NewConn>>,
        shared: Arc<Shared>,
        control: Arc<Control>,
    ) -> Acceptor {
        let listen_addrs = listeners.iter().map(|l| Arc::from(l.describe())).collect();
        Acceptor {
            poll,
            listeners,
            listen_addrs,
            workers,
            next: 0,
            shared,
            control,
            backoff: false,
            paused: false,
        }
    }

    pub(crate) fn run(mut self) {
        for (i, l) in self.listeners.iter_mut().enumerate() {
            if let Err(e) = self
                .poll
                .registry()
                .register(l, Token(i), Interest::READABLE)
            {
                tracing::error!("cannot watch listener: {e}");
                self.control.fail();
            }
        }
        if self.shared.verbosity.load(Ordering::Relaxed) >= 2 {
            // memcached names the protocol, not the address.
            let protocol = match self.shared.config.protocol {
                BindingProtocol::Auto => "auto-negotiate",
                BindingProtocol::Ascii => "ascii",
            };
            for l in &self.listeners {
                tracing::debug!("<{} server listening ({protocol})", l.fd());
            }
        }
        let mut events = Events::with_capacity(64);
        // Connections may have queued before the poll was set up.
        self.accept_all();
        while !self.control.is_stopping() {
            let timeout = self.backoff.then_some(Duration::from_millis(10));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!("acceptor poll failed: {e}");
                self.control.fail();
                break;
            }
            if self.control.is_stopping() {
                break;
            }
            // Edge-triggered: every wake (listener, waker or timeout)
            // drains every listener, which also covers resuming after a
            // pause or a backoff.
            self.backoff = false;
            self.accept_all();
        }
        self.shared.accepting.store(false, Ordering::Relaxed);
        // Dropping the listeners closes them: new clients are refused.
    }

    fn accept_all(&mut self) {
        let max = self.shared.config.max_connections as u64;
        let fast = self.shared.config.maxconns_fast;
        let shared = Arc::clone(&self.shared);
        let conns = &shared.conns;
        if self.paused {
            if conns.curr_connections.load(Ordering::SeqCst) >= max {
                return;
            }
            self.paused = false;
            self.control.accept_paused.store(false, Ordering::SeqCst);
            self.shared.accepting.store(true, Ordering::Relaxed);
        }
        for i in 0..self.listeners.len() {
            loop {
                let curr = conns.curr_connections.load(Ordering::SeqCst);
                if !fast && curr >= max {
                    if self.pause(max) {
                        return;
                    }
                    continue;
                }
                match self.listeners[i].accept() {
                    Ok((stream, addr)) => {
                        if curr >= max {
                            // Counted before the reply: a client that reads
                            // the refusal then asks `stats` must see it.
                            conns.rejected_connections.fetch_add(1, Ordering::Relaxed);
                            reject(stream);
                            continue;
                        }
                        self.hand_off(stream, addr, i);
                    }
                    Err(e) => match e.kind() {
                        io::ErrorKind::WouldBlock => break,
                        io::ErrorKind::Interrupted
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset => continue,
                        _ => {
                            let errno = e.raw_os_error();
                            if errno == Some(libc::EMFILE)
                                || errno == Some(libc::ENFILE)
                                || errno == Some(libc::ENOBUFS)
                                || errno == Some(libc::ENOMEM)
                            {
                                tracing::warn!("accept: {e}; retrying shortly");
                                conns.listen_disabled_num.fetch_add(1, Ordering::Relaxed);
                                self.backoff = true;
                                return;
                            }
                            tracing::warn!("accept failed: {e}");
                            break;
                        }
                    },
                }
            }
        }
    }

    /// Stops accepting until a connection closes. Returns false when one
    /// closed meanwhile (go on accepting).
    fn pause(&mut self, max: u64) -> bool {
        self.control.accept_paused.store(true, Ordering::SeqCst);
        // Re-check after publishing the flag: a worker that closed a
        // connection before seeing it has already lowered the count.
        if self.shared.conns.curr_connections.load(Ordering::SeqCst) < max {
            self.control.accept_paused.store(false, Ordering::SeqCst);
            return false;
        }
        self.paused = true;
        self.shared.accepting.store(false, Ordering::Relaxed);
        self.shared
            .conns
            .listen_disabled_num
            .fetch_add(1, Ordering::Relaxed);
        true
    }

    fn hand_off(&mut self, stream: Stream, addr: String, listener: usize) {
        let conns = &self.shared.conns;
        let curr = conns.curr_connections.fetch_add(1, Ordering::SeqCst) + 1;
        conns.total_connections.fetch_add(1, Ordering::Relaxed);
        let structures = curr + self.listeners.len() as u64;
        conns
            .connection_structures
            .fetch_max(structures, Ordering::Relaxed);
        let n = self.workers.len();
        let w = self.next % n;
        self.next = (w + 1) % n;
        let new = NewConn {
            stream,
            addr,
            listen_addr: Arc::clone(&self.listen_addrs[listener]),
        };
        if self.workers[w].send(new).is_err() {
            // The worker is gone (stopping): the stream was dropped.
            conns.curr_connections.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        let _ = self.control.workers[w].wake();
    }
}

/// memcached's answer beyond `-c` with `maxconns_fast`: one line, then close.
fn reject(mut stream: Stream) {
    let _ = stream.write(encode::Reply::TooManyConnections.text());
}
