//! Wall-clock time for the lease table: expiries there are Unix milliseconds, compared by every replica with its
//! own clock, so the clock is injected ([`Clock`]) and tests tie it to tokio's paused clock. How long this replica
//! may still write is measured on the monotonic clock (`tokio::time::Instant`) and never on this one.

/// The wall clock, in Unix milliseconds.
pub trait Clock: Send + Sync {
    /// Now, in Unix milliseconds.
    fn now_ms(&self) -> u64;
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A wall clock that moves with tokio's (paused) clock, off by a fixed skew: for tests.
#[cfg(test)]
pub(crate) struct TokioClock {
    start: tokio::time::Instant,
    base_ms: u64,
    skew_ms: i64,
}

#[cfg(test)]
impl TokioClock {
    /// A clock that read `base_ms + skew_ms` at `start` and moves with `tokio::time`.
    pub(crate) fn new(start: tokio::time::Instant, base_ms: u64, skew_ms: i64) -> TokioClock {
        TokioClock {
            start,
            base_ms,
            skew_ms,
        }
    }
}

#[cfg(test)]
impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        let elapsed = self.start.elapsed().as_millis() as i64;
        (self.base_ms as i64 + elapsed + self.skew_ms) as u64
    }
}
