//! How fast the consumer goes back to the ring. The kernel wakes it when a record lands in an
//! empty ring; in a burst, a consumer that keeps up finds the ring empty after every drain,
//! so it is woken every few records, and every few records become a pipeline step and a Redis
//! round trip. While records arrive faster than [`BUSY_RATE`], the consumer waits [`PAUSE`]
//! after a drain, so that a burst is read in batches (no record is woken for meanwhile: the
//! ring is not empty). Below that rate it reads each record as soon as it lands: the latency
//! of steady traffic is unchanged. Nor does it pause when a drain finds the ring well filled:
//! then it is behind, and must not wait.

use std::time::{Duration, Instant};

/// Records per second above which the ring counts as busy ...
const BUSY_RATE: u64 = 40_000;
/// ... measured over windows this long ...
const WINDOW: Duration = Duration::from_millis(10);
/// ... and the pause between drains while it is ...
const PAUSE: Duration = Duration::from_millis(2);
/// ... unless a drain found this many records: the consumer is behind (the pipeline is the
/// bottleneck), and a pause would only idle the pipeline while the ring fills up.
const BEHIND: usize = 1024;

pub(super) struct Pace {
    window_start: Instant,
    in_window: u64,
    busy: bool,
}

impl Pace {
    pub(super) fn new(now: Instant) -> Pace {
        Pace {
            window_start: now,
            in_window: 0,
            busy: false,
        }
    }

    /// `n` records were drained at `now`: how long to wait before draining again (`None`:
    /// wait for the ring's wake-up, as usual).
    pub(super) fn after_drain(&mut self, n: usize, now: Instant) -> Option<Duration> {
        self.in_window += n as u64;
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= WINDOW {
            let rate = self.in_window as u128 * 1_000_000 / elapsed.as_micros().max(1);
            self.busy = rate >= u128::from(BUSY_RATE);
            self.window_start = now;
            self.in_window = 0;
        }
        (self.busy && n > 0 && n < BEHIND).then_some(PAUSE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steady traffic is read at once; a burst is read in batches; once it is over, at once
    /// again.
    #[test]
    fn pauses_only_while_records_arrive_faster_than_the_busy_rate() {
        let t0 = Instant::now();
        let mut p = Pace::new(t0);
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // 10k/s: one record every 0.1 ms, drained one by one, for 30 ms.
        for i in 1..=300u64 {
            let now = t0 + Duration::from_micros(i * 100);
            assert_eq!(p.after_drain(1, now), None, "at {i}");
        }
        // 30k/s (3 records every 0.1 ms) is still steady.
        for i in 301..=600u64 {
            let now = t0 + Duration::from_micros(i * 100);
            assert_eq!(p.after_drain(3, now), None, "at {i}");
        }
        let ms = |n: u64| ms(n + 30);
        // A burst: 100 records per ms (100k/s). Busy once a window has seen it.
        let mut paused = 0;
        for i in 31..=60 {
            if p.after_drain(100, ms(i)).is_some() {
                paused += 1;
            }
        }
        assert!(paused >= 15, "{paused}");
        assert_eq!(p.after_drain(100, ms(61)), Some(PAUSE));
        // Behind: a drain that found the ring well filled goes straight back to it.
        let mut behind = Pace { ..p };
        assert_eq!(behind.after_drain(BEHIND, ms(61)), None);
        // Over: an empty drain never waits, and the next window ends the pauses.
        assert_eq!(p.after_drain(0, ms(62)), None);
        assert_eq!(p.after_drain(1, ms(75)), None);
        assert_eq!(p.after_drain(1, ms(76)), None);
    }
}
