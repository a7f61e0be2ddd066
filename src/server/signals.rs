//! SIGTERM / SIGINT / SIGUSR1 / SIGHUP: a dedicated thread waits for them
//! with `sigwait`. SIGTERM and SIGINT ask the server to stop, and so does
//! SIGUSR1 (memcached's "graceful stop"; every stop here is graceful:
//! requests already read are answered first); SIGHUP is logged
//! and otherwise ignored (memcached uses it only to reload TLS
//! certificates, which we do not have; its default action, ending the
//! process, is never what an operator sending it wants). The signals are
//! blocked in the thread that calls `serve` before any server thread
//! starts, so every server thread inherits the mask and only the waiting
//! thread ever sees them.

use std::io;
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use nix::sys::signal::{SigSet, Signal};

use super::Control;

fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.add(Signal::SIGHUP);
    set.add(Signal::SIGUSR1);
    set
}

/// Blocks SIGTERM, SIGINT, SIGUSR1 and SIGHUP in the calling thread (and so in every
/// thread it starts afterwards).
pub(crate) fn block() -> io::Result<()> {
    handled_signals().thread_block().map_err(io::Error::from)
}

/// The signal thread.
pub(crate) struct SignalThread {
    handle: JoinHandle<()>,
}

impl SignalThread {
    pub(crate) fn spawn(control: Arc<Control>) -> io::Result<SignalThread> {
        let handle = std::thread::Builder::new()
            .name("tc-signals".into())
            .spawn(move || {
                let set = handled_signals();
                loop {
                    match set.wait() {
                        Ok(Signal::SIGHUP) => {
                            tracing::info!("received SIGHUP: nothing to reload, carrying on");
                        }
                        Ok(sig) => {
                            if !control.is_stopping() {
                                if sig == Signal::SIGUSR1 {
                                    tracing::info!("Gracefully stopping");
                                }
                                tracing::info!("received {sig}, shutting down");
                                control.stop();
                            }
                            return;
                        }
                        Err(nix::errno::Errno::EINTR) => continue,
                        Err(e) => {
                            tracing::warn!("sigwait failed: {e}");
                            return;
                        }
                    }
                }
            })?;
        Ok(SignalThread { handle })
    }

    /// Ends the thread once the server has stopped for another reason: a
    /// SIGTERM aimed at this thread alone wakes its `sigwait`, and it then
    /// sees that the server is already stopping.
    pub(crate) fn finish(self) {
        if !self.handle.is_finished() {
            // The thread is not joined yet, so its id is still valid.
            let _ = nix::sys::pthread::pthread_kill(self.handle.as_pthread_t(), Signal::SIGTERM);
        }
        let _ = self.handle.join();
    }
}

/// Runs `work` while another thread waits for a stop signal (SIGTERM,
/// SIGINT, SIGUSR1), before `serve` has its own signal thread: `work` sees
/// the flag turn true when one arrives (e.g. to stop waiting for the
/// initial sync). Returns `work`'s result and whether a stop signal came.
pub fn watch_stop_signals<R>(work: impl FnOnce(&AtomicBool) -> R) -> io::Result<(R, bool)> {
    block()?;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let (s, d) = (Arc::clone(&stop), Arc::clone(&done));
    let handle = std::thread::Builder::new()
        .name("tc-signals-start".into())
        .spawn(move || {
            let set = handled_signals();
            loop {
                match set.wait() {
                    // SIGHUP is ignored, and is how the caller ends us.
                    Ok(Signal::SIGHUP) if d.load(Ordering::Acquire) => return,
                    Ok(Signal::SIGHUP) => continue,
                    Ok(sig) => {
                        tracing::info!("received {sig} while starting, shutting down");
                        s.store(true, Ordering::Release);
                        return;
                    }
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => return,
                }
            }
        })?;
    let result = work(&stop);
    done.store(true, Ordering::Release);
    if !handle.is_finished() {
        let _ = nix::sys::pthread::pthread_kill(handle.as_pthread_t(), Signal::SIGHUP);
    }
    let _ = handle.join();
    Ok((result, stop.load(Ordering::Acquire)))
}
