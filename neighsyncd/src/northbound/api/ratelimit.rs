//! A token bucket for the whole API: a client cannot exhaust the daemon by request volume.

use std::sync::Mutex;
use std::time::Instant;

pub struct RateLimiter {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

/// Requests per second sustained, and the burst allowed on top.
pub const RATE: f64 = 200.0;
pub const BURST: f64 = 400.0;

impl RateLimiter {
    pub fn new(rate: f64, burst: f64) -> RateLimiter {
        RateLimiter {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Takes a token if there is one.
    pub fn try_acquire(&self) -> bool {
        self.try_acquire_at(Instant::now())
    }

    fn try_acquire_at(&self, now: Instant) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return true;
        };
        let elapsed = now.saturating_duration_since(s.1).as_secs_f64();
        s.0 = (s.0 + elapsed * self.rate).min(self.burst);
        s.1 = now;
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn refuses_past_the_burst_and_refills_at_the_rate() {
        let r = RateLimiter::new(10.0, 3.0);
        let t0 = Instant::now();
        assert!(r.try_acquire_at(t0) && r.try_acquire_at(t0) && r.try_acquire_at(t0));
        assert!(!r.try_acquire_at(t0));
        assert!(r.try_acquire_at(t0 + Duration::from_millis(100)));
        assert!(!r.try_acquire_at(t0 + Duration::from_millis(100)));
    }
}
