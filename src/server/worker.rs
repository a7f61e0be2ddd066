//! A worker thread: its own `mio::Poll`, a `Slab` of connections, a queue
//! of connections that yielded (spent their `-R` budget with work left),
//! and the idle-timeout sweep.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::acceptor::NewConn;
use super::connection::{Connection, Env, Outcome, Pools};
use super::registry::{ConnInfo, ConnRegistry};
use super::{Control, WAKER};
use crate::config::BindingProtocol;
use crate::exec::{Ctx, Shared};
use crate::protocol::Limits;

/// How long a stopping worker keeps flushing replies before it closes
/// the connections that still have some.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

pub(crate) struct Worker {
    id: usize,
    poll: Poll,
    rx: Receiver<NewConn>,
    shared: Arc<Shared>,
    control: Arc<Control>,
    registry: Arc<ConnRegistry>,
}

/// The mutable state of a running worker.
struct Conns {
    id: usize,
    slab: Slab<Connection>,
    pools: Pools,
    ready: VecDeque<usize>,
}

impl Worker {
    pub(crate) fn new(
        id: usize,
        poll: Poll,
        rx: Receiver<NewConn>,
        shared: Arc<Shared>,
        control: Arc<Control>,
        registry: Arc<ConnRegistry>,
    ) -> Worker {
        Worker {
            id,
            poll,
            rx,
            shared,
            control,
            registry,
        }
    }

    pub(crate) fn run(self) {
        let Worker {
            id,
            mut poll,
            rx,
            shared,
            control,
            registry,
        } = self;
        let stats = Arc::clone(&shared.workers[id]);
        let cfg = &shared.config;
        let limits = Limits {
            item_size_max: cfg.item_size_max,
            cas_enabled: cfg.cas_enabled,
        };
        let reqs_per_event = cfg.reqs_per_event.max(1);
        let idle_timeout = cfg.idle_timeout;
        let mut conns = Conns {
            id,
            slab: Slab::new(),
            pools: Pools::new(),
            ready: VecDeque::new(),
        };
        let mut events = Events::with_capacity(1024);
        let mut drain_deadline: Option<Instant> = None;
        let mut last_sweep = 0u32;

        loop {
            let draining = drain_deadline.is_some();
            let timeout = if !conns.ready.is_empty() {
                Some(Duration::ZERO)
            } else if draining {
                Some(Duration::from_millis(50))
            } else if idle_timeout > 0 {
                Some(Duration::from_secs(1))
            } else {
                None
            };
            if let Err(e) = poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!("worker {id}: poll failed: {e}");
                    control.fail();
                    break;
                }
                continue;
            }
            let now = shared.clock.now();
            let verbose = shared.verbosity.load(Ordering::Relaxed) >= 2;
            let mut shutdown = false;
            let start_drain = !draining && control.is_stopping();
            let mut env = Env {
                ctx: Ctx {
                    shared: &shared,
                    stats: &stats,
                    now,
                    server: &*registry,
                },
                limits,
                reqs_per_event,
                verbose,
                draining: draining || start_drain,
                shutdown: &mut shutdown,
            };

            for ev in events.iter() {
                if ev.token() == WAKER {
                    conns.accept_new(&rx, &poll, &env, &registry, &control);
                    continue;
                }
                let k = ev.token().0;
                if let Some(c) = conns.slab.get_mut(k) {
                    c.readable = true;
                    if ev.is_read_closed() || ev.is_error() {
                        c.hup = true;
                    }
                    let out = c.drive(&mut env, &mut conns.pools);
                    conns.after(k, out, &env, &registry, &control);
                }
            }

            // Connections that yielded: once each, in order.
            for _ in 0..conns.ready.len() {
                let Some(k) = conns.ready.pop_front() else {
                    break;
                };
                if let Some(c) = conns.slab.get_mut(k) {
                    if !c.queued {
                        continue;
                    }
                    c.queued = false;
                    let out = c.drive(&mut env, &mut conns.pools);
                    conns.after(k, out, &env, &registry, &control);
                }
            }

            if start_drain {
                drain_deadline = Some(Instant::now() + DRAIN_TIMEOUT);
                // Connections may hold unread requests without a pending
                // event: give each one turn in draining mode.
                conns.accept_new(&rx, &poll, &env, &registry, &control);
                let keys: Vec<usize> = conns.slab.iter().map(|(k, _)| k).collect();
                for k in keys {
                    if let Some(c) = conns.slab.get_mut(k) {
                        let out = c.drive(&mut env, &mut conns.pools);
                        conns.after(k, out, &env, &registry, &control);
                    }
                }
            }

            if idle_timeout > 0 && now != last_sweep && !env.draining {
                last_sweep = now;
                conns.kick_idle(now, idle_timeout, &env, &registry, &control);
            }

            if shutdown {
                tracing::info!("shutdown requested by a client");
                control.stop();
            }
            if let Some(deadline) = drain_deadline {
                if conns.slab.is_empty() || Instant::now() >= deadline {
                    break;
                }
            }
        }

        // Whatever is left (drain timeout or poll failure) is closed now.
        let verbose = shared.verbosity.load(Ordering::Relaxed) >= 2;
        let keys: Vec<usize> = conns.slab.iter().map(|(k, _)| k).collect();
        for k in keys {
            conns.close(k, verbose, &shared, &registry, &control);
        }
        while let Ok(nc) = rx.try_recv() {
            drop(nc);
            shared.conns.curr_connections.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Conns {
    /// Takes the connections the acceptor handed over.
    fn accept_new(
        &mut self,
        rx: &Receiver<NewConn>,
        poll: &Poll,
        env: &Env<'_>,
        registry: &ConnRegistry,
        control: &Control,
    ) {
        let shared = env.ctx.shared;
        while let Ok(nc) = rx.try_recv() {
            if env.draining {
                drop(nc);
                shared.conns.curr_connections.fetch_sub(1, Ordering::SeqCst);
                control.conn_closed();
                continue;
            }
            let NewConn {
                mut stream,
                addr,
                listen_addr,
            } = nc;
            let fd = stream.fd();
            let entry = self.slab.vacant_entry();
            let key = entry.key();
            if let Err(e) = poll.registry().register(
                &mut stream,
                Token(key),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                tracing::warn!("cannot watch connection {fd}: {e}");
                shared.conns.curr_connections.fetch_sub(1, Ordering::SeqCst);
                control.conn_closed();
                continue;
            }
            let info = Arc::new(ConnInfo::new(fd, addr, listen_addr, env.ctx.now));
            let info_key = registry.insert(self.id, Arc::clone(&info));
            entry.insert(Connection::new(stream, info, info_key));
            if env.verbose {
                match env.ctx.shared.config.protocol {
                    BindingProtocol::Auto => {
                        tracing::debug!("<{fd} new auto-negotiating client connection")
                    }
                    BindingProtocol::Ascii => tracing::debug!("<{fd} new ascii client connection."),
                }
            }
        }
    }

    /// Acts on what a drive returned.
    fn after(
        &mut self,
        k: usize,
        out: Outcome,
        env: &Env<'_>,
        registry: &ConnRegistry,
        control: &Control,
    ) {
        match out {
            Outcome::Idle => {}
            Outcome::Yield => {
                if let Some(c) = self.slab.get_mut(k) {
                    if !c.queued {
                        c.queued = true;
                        self.ready.push_back(k);
                    }
                }
            }
            Outcome::Close => self.close(k, env.verbose, env.ctx.shared, registry, control),
        }
    }

    fn close(
        &mut self,
        k: usize,
        verbose: bool,
        shared: &Shared,
        registry: &ConnRegistry,
        control: &Control,
    ) {
        let Some(c) = self.slab.try_remove(k) else {
            return;
        };
        registry.remove(self.id, c.info_key);
        if verbose {
            tracing::debug!("<{} connection closed.", c.fd());
        }
        drop(c);
        shared.conns.curr_connections.fetch_sub(1, Ordering::SeqCst);
        control.conn_closed();
    }

    /// `-o idle_timeout`: closes connections with no command for longer
    /// than the timeout and no reply waiting to be sent.
    fn kick_idle(
        &mut self,
        now: u32,
        timeout: u32,
        env: &Env<'_>,
        registry: &ConnRegistry,
        control: &Control,
    ) {
        let idle: Vec<usize> = self
            .slab
            .iter()
            .filter(|(_, c)| now.saturating_sub(c.info.last_cmd()) > timeout && c.nothing_to_send())
            .map(|(k, _)| k)
            .collect();
        for k in idle {
            env.ctx.stats.idle_kicks.incr();
            self.close(k, env.verbose, env.ctx.shared, registry, control);
        }
    }
}
