//! A budget of bytes shared by concurrent requests: HTTP ingest reserves each
//! request body's bytes before holding them, so however many clients send at
//! once, the bodies in memory stay under `[http] max_inflight_bytes`. A request
//! that does not fit is refused at once (the caller answers `503` with
//! `Retry-After`) rather than queued, so a burst cannot pile up memory or
//! connections waiting for room.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes that requests may hold at once; cheap to clone (clones share the budget).
#[derive(Debug, Clone)]
pub struct ByteBudget {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    max: usize,
    used: AtomicUsize,
}

/// Bytes taken from a [`ByteBudget`]; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    shared: Arc<Shared>,
    bytes: usize,
}

impl ByteBudget {
    /// A budget of `max` bytes, none taken.
    pub fn new(max: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                max,
                used: AtomicUsize::new(0),
            }),
        }
    }

    /// The budget's size.
    pub fn max(&self) -> usize {
        self.shared.max
    }

    /// Bytes taken now, by every reservation together.
    pub fn used(&self) -> usize {
        self.shared.used.load(Ordering::Acquire)
    }

    /// An empty reservation, to be grown as bytes arrive.
    pub fn reservation(&self) -> Reservation {
        Reservation {
            shared: Arc::clone(&self.shared),
            bytes: 0,
        }
    }
}

impl Reservation {
    /// Takes `more` bytes; false (and nothing taken) when the budget has not
    /// that much left.
    #[must_use = "a refused reservation must be answered"]
    pub fn grow(&mut self, more: usize) -> bool {
        let s = &self.shared;
        let taken = s
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(more).filter(|&after| after <= s.max)
            });
        if taken.is_ok() {
            self.bytes += more;
        }
        taken.is_ok()
    }

    /// Bytes this reservation holds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.shared.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_the_budget_and_give_back_on_drop() {
        let budget = ByteBudget::new(100);
        let mut a = budget.reservation();
        assert!(a.grow(60));
        let mut b = budget.reservation();
        assert!(!b.grow(41), "60 + 41 is over 100");
        assert_eq!(b.bytes(), 0, "a refused grow takes nothing");
        assert!(b.grow(40));
        assert_eq!(budget.used(), 100);
        assert!(!a.grow(1));
        drop(a);
        assert_eq!(budget.used(), 40);
        assert!(b.grow(60));
        assert_eq!(b.bytes(), 100);
        drop(b);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn huge_requests_never_wrap() {
        let budget = ByteBudget::new(usize::MAX - 1);
        let mut a = budget.reservation();
        assert!(a.grow(10));
        let mut b = budget.reservation();
        assert!(!b.grow(usize::MAX), "would overflow: refused, not wrapped");
        assert_eq!(budget.used(), 10);
    }

    #[test]
    fn concurrent_reservations_never_exceed_the_budget() {
        let budget = ByteBudget::new(1000);
        let peak = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let budget = budget.clone();
                let peak = Arc::clone(&peak);
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        let mut r = budget.reservation();
                        if r.grow(100 + i % 200) {
                            peak.fetch_max(budget.used(), Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= 1000);
        assert_eq!(budget.used(), 0);
    }
}
