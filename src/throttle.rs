//! Per-account failed-login throttling: the lock schedule, as pure state transitions.
//! The store persists the state (so every instance shares it); the service applies it.

/// Per-account failed-login state, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Throttle {
    /// Failures since the last success.
    pub consecutive: i64,
    /// Until when (epoch seconds) logins are refused.
    pub locked_until: i64,
    /// Start of the current one-hour window and the failures in it.
    pub window_start: i64,
    pub window_failures: i64,
}

/// Failures allowed before locking.
pub const LOCK_AFTER: i64 = 10;
/// Longest single lock.
pub const MAX_LOCK_SECS: i64 = 15 * 60;
/// Failed attempts allowed per account per hour, however they are spaced.
pub const MAX_FAILURES_PER_HOUR: i64 = 100;

impl Throttle {
    pub fn locked(&self, now: i64) -> bool {
        now < self.locked_until
    }

    /// The state after one more failure at `now`: an exponential lock from the
    /// tenth consecutive failure (1 s, doubling, capped at 15 min), and a lock to the
    /// end of the hour at 100 failures in it.
    pub fn after_failure(mut self, now: i64) -> Throttle {
        if now - self.window_start >= 3600 {
            self.window_start = now;
            self.window_failures = 0;
        }
        self.consecutive += 1;
        self.window_failures += 1;
        if self.consecutive >= LOCK_AFTER {
            let exp = (self.consecutive - LOCK_AFTER).min(20) as u32;
            let secs = (1i64 << exp).min(MAX_LOCK_SECS);
            self.locked_until = self.locked_until.max(now + secs);
        }
        if self.window_failures >= MAX_FAILURES_PER_HOUR {
            self.locked_until = self.locked_until.max(self.window_start + 3600);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_schedule() {
        let mut t = Throttle::default();
        let now = 1_000_000;
        for i in 0..9 {
            t = t.after_failure(now + i);
            assert!(!t.locked(now + i), "locked after {} failures", i + 1);
        }
        t = t.after_failure(now + 9);
        assert_eq!(t.locked_until, now + 9 + 1);
        t = t.after_failure(now + 20);
        assert_eq!(t.locked_until, now + 20 + 2);
        for i in 0..30 {
            t = t.after_failure(now + 100 + i);
        }
        assert!(t.locked_until - (now + 129) <= MAX_LOCK_SECS);
        // 100 failures in an hour lock to the end of the hour, however spaced.
        let mut h = Throttle::default();
        for i in 0..100 {
            h = Throttle { consecutive: 0, ..h }.after_failure(now + i * 30);
        }
        assert_eq!(h.locked_until, now + 3600);
    }
}
