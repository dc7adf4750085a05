//! `--rate`: spacing messages so that the n-th goes out no earlier than
//! `n / rate` seconds after the first. Deadlines are absolute, so timer
//! granularity makes sending bursty at high rates but never slower on average.
//!
//! `--rate` is checked against [`MIN_RATE`] by `Request::validate`; below it the
//! gap between two messages would be longer than a day's work is worth and, for
//! tiny values, longer than a [`Duration`] can hold.

use std::time::Duration;

use tokio::time::Instant;

/// The lowest `--rate` accepted: one message every 1000 seconds.
pub const MIN_RATE: f64 = 0.001;

/// When message `n` (0-based) is due, relative to the first, at `rate` per
/// second; [`Duration::MAX`] when that is further than a `Duration` reaches
/// (a rate that is not a positive number never reaches here: see [`MIN_RATE`]).
pub fn due_after(n: u64, rate: f64) -> Duration {
    Duration::try_from_secs_f64(n as f64 / rate).unwrap_or(Duration::MAX)
}

/// Paces calls to [`Pacer::wait`] to at most `rate` per second.
#[derive(Debug, Clone)]
pub struct Pacer {
    rate: Option<f64>,
    start: Option<Instant>,
    sent: u64,
}

impl Pacer {
    /// A pacer for `rate` messages per second; `None` never waits.
    pub fn new(rate: Option<f64>) -> Self {
        Self {
            rate: rate.filter(|r| r.is_finite() && *r > 0.0),
            start: None,
            sent: 0,
        }
    }

    /// Waits until the next message is due.
    pub async fn wait(&mut self) {
        let Some(rate) = self.rate else { return };
        let start = *self.start.get_or_insert_with(Instant::now);
        let due = start.checked_add(due_after(self.sent, rate));
        self.sent += 1;
        match due {
            Some(due) => tokio::time::sleep_until(due).await,
            // Due after the end of representable time: never.
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_follow_the_rate() {
        assert_eq!(due_after(0, 100.0), Duration::ZERO);
        assert_eq!(due_after(50, 100.0), Duration::from_millis(500));
        assert_eq!(due_after(3, 2.0), Duration::from_millis(1500));
    }

    #[test]
    fn extreme_rates_saturate_instead_of_panicking() {
        assert_eq!(due_after(1, 1e-300), Duration::MAX);
        assert_eq!(due_after(u64::MAX, MIN_RATE), Duration::MAX);
        assert_eq!(due_after(1, 0.0), Duration::MAX);
        assert_eq!(due_after(0, 1e300), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn waits_between_messages() {
        let mut p = Pacer::new(Some(10.0));
        let t0 = Instant::now();
        for _ in 0..21 {
            p.wait().await;
        }
        assert_eq!(t0.elapsed(), Duration::from_secs(2));
        let mut unpaced = Pacer::new(None);
        let t1 = Instant::now();
        for _ in 0..1000 {
            unpaced.wait().await;
        }
        assert_eq!(t1.elapsed(), Duration::ZERO);
    }
}
