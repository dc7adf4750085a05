//! `--rate`: spacing messages so that the n-th goes out no earlier than
//! `n / rate` seconds after the first. Deadlines are absolute, so timer
//! granularity makes sending bursty at high rates but never slower on average.

use std::time::Duration;

use tokio::time::Instant;

/// When message `n` (0-based) is due, relative to the first, at `rate` per second.
pub fn due_after(n: u64, rate: f64) -> Duration {
    Duration::from_secs_f64(n as f64 / rate)
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
        let due = start + due_after(self.sent, rate);
        self.sent += 1;
        tokio::time::sleep_until(due).await;
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
