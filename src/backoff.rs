//! Exponential backoff between retries: one rule for every retry loop in
//! Strata (the compactor, the NATS source's station workers).

use std::time::Duration;

/// The pause before retry number `n` (1 for the first retry): `first`,
/// doubling each time, never above `max`.
pub fn nth(first: Duration, max: Duration, n: u32) -> Duration {
    let exp = n.saturating_sub(1).min(30);
    first.saturating_mul(1 << exp).min(max)
}

/// Exponential backoff that remembers how many retries it has given.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    retries: u32,
}

impl Backoff {
    /// Starts at `first`, doubling up to `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            retries: 0,
        }
    }

    /// The pause to take now; the next one is twice as long, up to the cap.
    pub fn delay(&mut self) -> Duration {
        self.retries = self.retries.saturating_add(1);
        nth(self.first, self.max, self.retries)
    }

    /// Back to the first pause (after a success).
    pub fn reset(&mut self) {
        self.retries = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let delays: Vec<_> = (0..4).map(|_| b.delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.delay().as_millis(), 100);
    }

    #[test]
    fn the_nth_pause_never_overflows() {
        let (first, max) = (Duration::from_millis(500), Duration::from_secs(30));
        assert_eq!(nth(first, max, 1), first);
        assert_eq!(nth(first, max, 3), Duration::from_secs(2));
        assert_eq!(nth(first, max, u32::MAX), max);
        assert_eq!(nth(first, max, 0), first);
    }
}
