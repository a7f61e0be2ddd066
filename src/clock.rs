//! Time: wall-clock Unix seconds for expiry, and the process start for
//! `uptime`. Read once per event-loop wake, not per item.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// memcached treats expiry times above this many seconds (30 days) as
/// absolute Unix times.
pub const REALTIME_MAXDELTA: i64 = 60 * 60 * 24 * 30;

#[derive(Debug)]
pub struct Clock {
    started: Instant,
    started_unix: u64,
    /// Seconds added to the wall clock (test hook, `debugtime`-like).
    offset_secs: AtomicI64,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            started: Instant::now(),
            started_unix: wall_secs(),
            offset_secs: AtomicI64::new(0),
        }
    }

    /// Current Unix time in seconds.
    pub fn now(&self) -> u32 {
        let t = wall_secs() as i64 + self.offset_secs.load(Ordering::Relaxed);
        t.clamp(1, u32::MAX as i64) as u32
    }

    /// Shifts this clock (tests only).
    pub fn shift(&self, secs: i64) {
        self.offset_secs.fetch_add(secs, Ordering::Relaxed);
    }

    /// Seconds since start, never 0 (monitoring tools divide by it).
    pub fn uptime(&self) -> u64 {
        self.started.elapsed().as_secs().max(1)
    }

    pub fn started_unix(&self) -> u64 {
        self.started_unix
    }
}

fn wall_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Converts a client expiry (0 never; up to 30 days relative; above that an
/// absolute Unix time; negative already expired) to an absolute Unix time,
/// 0 meaning never. An already expired time is returned as 1.
pub fn absolute_expiry(exptime: i64, now: u32) -> u32 {
    if exptime == 0 {
        0
    } else if exptime < 0 {
        1
    } else if exptime > REALTIME_MAXDELTA {
        if exptime <= now as i64 {
            1
        } else {
            exptime.min(u32::MAX as i64) as u32
        }
    } else {
        (now as i64 + exptime).min(u32::MAX as i64) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_rules() {
        let now = 1_700_000_000;
        assert_eq!(absolute_expiry(0, now), 0);
        assert_eq!(absolute_expiry(-1, now), 1);
        assert_eq!(absolute_expiry(10, now), now + 10);
        assert_eq!(
            absolute_expiry(REALTIME_MAXDELTA, now),
            now + REALTIME_MAXDELTA as u32
        );
        // just over 30 days is an absolute time in 1970: already expired
        assert_eq!(absolute_expiry(REALTIME_MAXDELTA + 1, now), 1);
        assert_eq!(absolute_expiry(now as i64 + 5, now), now + 5);
    }
}
