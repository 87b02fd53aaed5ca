//! Capped exponential backoff with full jitter for reconnection attempts.
//!
//! Several gateway nodes (or one node restarting quickly) must not hammer a
//! server that just came back, so each delay is drawn uniformly from
//! `[base/2, base]` where `base` doubles per failed attempt up to the cap.

use std::time::Duration;

use rand::Rng;

/// Reconnection delay generator; [`Backoff::reset`] after a successful
/// connection.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Delays start at `initial` and never exceed `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// The upper bound of the next delay, before jitter.
    pub fn ceiling(&self) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(20));
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The delay to wait before the next attempt; advances the attempt count.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let jitter_nanos = rng.random_range(0..=u64::try_from(half.as_nanos()).unwrap_or(u64::MAX));
        half + Duration::from_nanos(jitter_nanos)
    }

    /// Back to the initial delay.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_up_to_the_cap_with_jitter() {
        let mut rng = rand::rng();
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let expected_ceilings = [100, 200, 400, 800, 1000, 1000];
        for ceiling in expected_ceilings {
            assert_eq!(b.ceiling(), Duration::from_millis(ceiling));
            let d = b.next_delay(&mut rng);
            assert!(d >= Duration::from_millis(ceiling / 2) && d <= Duration::from_millis(ceiling));
        }
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(100));
    }

    #[test]
    fn never_overflows() {
        let mut rng = rand::rng();
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..200 {
            assert!(b.next_delay(&mut rng) <= Duration::from_secs(60));
        }
    }
}
