//! The maintenance thread: background upkeep of the store
//! ([`exec::maintain`]: crawler and expiry sweep, page mover, limit shrink) a few times a second, faster
//! while it finds work. It sleeps with `park_timeout`, so a stop wakes it
//! at once.

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::Control;
use crate::exec::{self, Shared};

/// Pause between passes that reclaimed something.
const BUSY_PAUSE: Duration = Duration::from_millis(20);
/// Pause after a pass that found nothing.
const IDLE_PAUSE: Duration = Duration::from_millis(250);

pub(crate) struct Maintenance {
    handle: JoinHandle<()>,
}

impl Maintenance {
    pub(crate) fn spawn(shared: Arc<Shared>, control: Arc<Control>) -> io::Result<Maintenance> {
        let handle = std::thread::Builder::new()
            .name("tc-maint".into())
            .spawn(move || {
                let _guard = super::StopOnPanic(Arc::clone(&control));
                while !control.is_stopping() {
                    let reclaimed = exec::maintain(&shared);
                    let pause = if reclaimed > 0 {
                        BUSY_PAUSE
                    } else {
                        IDLE_PAUSE
                    };
                    std::thread::park_timeout(pause);
                }
            })?;
        Ok(Maintenance { handle })
    }

    /// Wakes the thread (the server is stopping) and waits for it.
    pub(crate) fn finish(self) -> bool {
        self.handle.thread().unpark();
        self.handle.join().is_ok()
    }
}
