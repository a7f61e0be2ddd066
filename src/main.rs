//! The twincache binary: flags, logging, process set-up, run, exit codes.

use std::io::{IsTerminal, Write};
use std::process::exit;
use std::sync::Arc;

use std::time::Duration;

use twincache::config::{Config, ConfigError, EX_OSERR, EX_USAGE};
use twincache::process::{self, Fatal};
use twincache::replication::SyncWait;

fn main() {
    let mut config = match Config::from_args(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => exit(report_config_error(&e)),
    };
    let set_level = init_logging(config.verbosity);
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    match run(&mut config, set_level) {
        Ok(()) => exit(0),
        Err(f) => {
            eprintln!("{}", f.message);
            exit(f.code)
        }
    }
}

/// Prints a parse outcome where memcached prints it; returns the exit code.
fn report_config_error(e: &ConfigError) -> i32 {
    if e.to_stdout() {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", e.message());
        let _ = out.flush();
    } else {
        eprintln!("{}", e.message());
    }
    e.exit_code()
}

/// Changes the log level at run time (the `verbosity` command).
type SetLevel = twincache::exec::VerbosityHook;

/// The tracing level for a `-v` count: warnings and errors by default,
/// `-v` info, `-vv` debug (every connection, command and reply), `-vvv`
/// trace.
fn level_for(verbosity: u8) -> &'static str {
    match verbosity {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    }
}

/// Log lines go to stderr. Under journald (JOURNAL_STREAM set) no
/// timestamps: the journal adds its own. RUST_LOG, when set, overrides the
/// level, and `verbosity N` then leaves it alone (None is returned).
fn init_logging(verbosity: u8) -> Option<SetLevel> {
    use tracing_subscriber::EnvFilter;
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok());
    let fixed = from_env.is_some();
    let filter = from_env.unwrap_or_else(|| EnvFilter::new(level_for(verbosity)));
    let ansi = std::io::stderr().is_terminal();
    let (result, set_level): (_, SetLevel) = if std::env::var_os("JOURNAL_STREAM").is_some() {
        let builder = tracing_subscriber::fmt()
            .without_time()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_ansi(ansi)
            .with_filter_reloading();
        let handle = builder.reload_handle();
        (
            builder.try_init(),
            Box::new(move |v| {
                let _ = handle.reload(EnvFilter::new(level_for(v)));
            }),
        )
    } else {
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_ansi(ansi)
            .with_filter_reloading();
        let handle = builder.reload_handle();
        (
            builder.try_init(),
            Box::new(move |v| {
                let _ = handle.reload(EnvFilter::new(level_for(v)));
            }),
        )
    };
    if let Err(e) = result {
        eprintln!("logging could not be set up: {e}");
        return None;
    }
    (!fixed).then_some(set_level)
}

/// Makes `verbosity N` change the log filter, as memcached's output
/// follows its `settings.verbose`.
fn follow_verbosity(shared: &twincache::exec::Shared, set_level: Option<SetLevel>) {
    if let Some(set_level) = set_level {
        let _ = shared.on_verbosity.set(set_level);
    }
}

/// memcached's start-up order, then the server.
fn run(config: &mut Config, set_level: Option<SetLevel>) -> Result<(), Fatal> {
    // SIGTERM/SIGINT/SIGHUP wait (pending) for serve()'s signal thread
    // instead of killing the process half-way through start-up.
    if let Err(e) = twincache::server::block_stop_signals() {
        tracing::warn!("could not block signals: {e}");
    }
    // Root needs -u, and the user must exist.
    let identity = process::check_user(config)?;
    if let Some(id) = &identity {
        if id.uid.is_root() {
            tracing::warn!(
                "running as root (-u {}): consider an unprivileged user",
                id.name
            );
        }
    }

    // The pidfile is written after -d may have changed directory to /.
    if let Some(p) = config.pidfile.take() {
        config.pidfile = Some(process::absolute(&p));
    }
    if config.daemonize {
        process::daemonize(config)?;
    }

    let limit = process::raise_nofile(config)?;
    tracing::debug!("open files limit: {limit}");
    if config.enable_coredumps {
        process::raise_core_limit()?;
    }
    if config.lock_memory {
        if let Err(w) = process::lock_memory() {
            tracing::warn!("{w}");
        }
    }

    let shared = Arc::new(twincache::exec::Shared::new(config.clone()));
    follow_verbosity(&shared, set_level);
    // Listeners are bound while still root (ports below 1024). A node
    // with a peer binds its client port closed: it opens once the initial
    // sync is done, so a client never sees it empty.
    let repl_cfg = &config.replication;
    let waits_for_sync = config.replication_enabled() && !repl_cfg.sync_timeout.is_zero();
    let listeners = if waits_for_sync {
        twincache::server::bind_closed(&shared)
    } else {
        twincache::server::bind(&shared)
    }
    .map_err(|e| Fatal::new(EX_OSERR, format!("failed to listen: {e}")))?;
    let repl_listeners = if config.replication_enabled() {
        twincache::replication::bind(&shared)
            .map_err(|e| Fatal::new(EX_OSERR, format!("failed to listen: {e}")))?
    } else {
        Vec::new()
    };

    if let Some(id) = &identity {
        process::drop_privileges(id)?;
        if config.enable_coredumps {
            // setuid() clears the dumpable flag; -r wants core files.
            if let Err(e) = nix::sys::prctl::set_dumpable(true) {
                tracing::warn!("-r: could not keep core dumps enabled after setuid: {e}");
            }
        }
    }

    if let Some(p) = &config.pidfile {
        if let Err(e) = process::write_pidfile(p) {
            tracing::error!("could not write pid file {}: {e}", p.display());
        }
    }

    let mut readiness = twincache::notify::Readiness::new(config.replication_enabled());
    let replication = if config.replication_enabled() {
        let r = twincache::replication::Replication::start(Arc::clone(&shared), repl_listeners)
            .map_err(|e| Fatal::new(EX_USAGE, e))?;
        if waits_for_sync {
            let secs = repl_cfg.sync_timeout.as_secs_f64();
            twincache::notify::status(&format!(
                "waiting up to {secs}s for the initial sync with the peer"
            ));
            tracing::info!("waiting up to {secs}s for the initial sync with the peer");
            let (outcome, stopped) = twincache::server::watch_stop_signals(|stop| {
                r.wait_initial_sync(repl_cfg.sync_timeout, || {
                    stop.load(std::sync::atomic::Ordering::Acquire)
                })
            })
            .map_err(|e| Fatal::new(EX_OSERR, format!("signals: {e}")))?;
            match outcome {
                SyncWait::Done => tracing::info!("initial sync with the peer done"),
                SyncWait::TimedOut => tracing::warn!(
                    "no initial sync with the peer within {secs}s: serving without it"
                ),
                SyncWait::Aborted => {}
            }
            if stopped {
                r.shutdown(Duration::ZERO);
                return Ok(());
            }
        }
        Some(r)
    } else {
        None
    };
    listeners
        .open(config.backlog)
        .map_err(|e| Fatal::new(EX_OSERR, format!("failed to listen: {e}")))?;
    // The listening sockets accept connections into their backlog from
    // here on, and serve() starts answering them at once: tell systemd
    // (Type=notify) we are ready (with a peer: and synced, or given up).
    readiness.sync_done(&ready_status(config, &listeners));
    readiness.listeners_open(&ready_status(config, &listeners));

    let outcome = twincache::server::serve(shared, listeners);
    if let Some(r) = replication {
        let limit = config.replication.drain_timeout;
        let left = r.shutdown(limit);
        if left > 0 {
            tracing::warn!(
                "stopped with {left} replication records not acknowledged by the peer \
                 (drain limit {}s)",
                limit.as_secs()
            );
        }
    }
    if config.daemonize {
        if let Some(p) = &config.pidfile {
            process::remove_pidfile(p);
        }
    }
    match outcome {
        Ok(_) => {
            // memcached's last line at -v.
            tracing::info!("Exiting normally");
            Ok(())
        }
        Err(e) => Err(Fatal::new(EX_OSERR, format!("server error: {e}"))),
    }
}

/// The `STATUS=` line sent with `READY=1`.
fn ready_status(config: &Config, listeners: &twincache::server::Listeners) -> String {
    let mut places: Vec<String> = listeners
        .local_addrs()
        .iter()
        .map(|a| a.to_string())
        .collect();
    if let Some(path) = &config.unix_socket {
        places.push(path.display().to_string());
    }
    format!(
        "serving on {} ({}), up to {} connections",
        places.join(" "),
        match &config.replication.peer {
            Some(p) => format!("replicating with {}:{}", p.host, p.port),
            None => "standalone".to_string(),
        },
        config.max_connections
    )
}
