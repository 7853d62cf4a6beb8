//! Delays between reconnection attempts, for the client and for a cluster
//! node's bus connections: the reference's fixed `retry_delay`, or
//! exponential backoff up to a maximum, with optional full jitter (each
//! delay drawn uniformly from zero to its value), so those cut off
//! together do not return together.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How the waits between attempts grow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    /// The wait (the first one, with backoff).
    pub base: Duration,
    /// With backoff, the longest wait; `None` keeps every wait at `base`.
    pub max: Option<Duration>,
    /// Whether each wait is drawn from zero to its value.
    pub jitter: bool,
}

/// The wait before reconnection attempt `attempt` (1 or more) of a loop;
/// `random` is a uniformly random 64-bit number (used only with jitter).
///
/// The reference's fixed delay (no `max`, no jitter) makes the first
/// attempt at once and the next ones `base` apart. Backoff waits `base`
/// before the first and doubles the wait each time up to `max`; jitter
/// draws each wait, the first included, from zero to that value.
pub(crate) fn retry_delay(policy: &RetryPolicy, attempt: u32, random: u64) -> Duration {
    let base = policy.base;
    if policy.max.is_none() && !policy.jitter {
        return if attempt <= 1 { Duration::ZERO } else { base };
    }
    let ceiling = match policy.max {
        Some(max) => {
            let doublings = attempt.saturating_sub(1).min(32);
            base.saturating_mul(1u32 << doublings.min(31)).min(max)
        }
        None => base,
    };
    if !policy.jitter {
        return ceiling;
    }
    let micros = ceiling.as_micros().min(u128::from(u64::MAX)) as u64;
    Duration::from_micros(random % micros.saturating_add(1))
}

/// A small random source for jitter (xorshift64*), seeded from the clock
/// and a salt (such as the owner's address) so sources in one process
/// differ.
pub(crate) struct Jitter(AtomicU64);

impl Jitter {
    pub fn new(salt: usize) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let seed = nanos ^ (salt as u64).rotate_left(32) ^ 0x9E37_79B9_7F4A_7C15;
        Jitter(AtomicU64::new(seed | 1))
    }

    /// The next random number.
    pub fn next(&self) -> u64 {
        let step = |mut x: u64| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x
        };
        let previous = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| Some(step(x)))
            .unwrap_or(1);
        step(previous).wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(base: u64, max: Option<u64>, jitter: bool) -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_millis(base),
            max: max.map(Duration::from_millis),
            jitter,
        }
    }

    #[test]
    fn fixed_by_default_doubling_up_to_the_maximum_with_backoff() {
        let ms = |d: Duration| d.as_millis();
        let fixed = config(100, None, false);
        assert_eq!(
            ms(retry_delay(&fixed, 1, 0)),
            0,
            "the reference: first retry at once"
        );
        assert_eq!(ms(retry_delay(&fixed, 2, 0)), 100);
        assert_eq!(ms(retry_delay(&fixed, 9, 0)), 100);
        let backoff = config(100, Some(1000), false);
        let delays: Vec<u128> = (1..=6).map(|n| ms(retry_delay(&backoff, n, 0))).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(ms(retry_delay(&backoff, u32::MAX, 0)), 1000, "no overflow");
    }

    #[test]
    fn full_jitter_stays_within_zero_and_the_ceiling_and_spreads() {
        let jittered = config(100, Some(1000), true);
        let jitter = Jitter::new(1);
        let delays: Vec<Duration> = (0..1000)
            .map(|_| retry_delay(&jittered, 3, jitter.next()))
            .collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(400)));
        let below_half = delays
            .iter()
            .filter(|d| **d < Duration::from_millis(200))
            .count();
        assert!(
            (350..650).contains(&below_half),
            "uniform: {below_half} of 1000 below half"
        );
        let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
        assert!(distinct.len() > 900);
    }

    #[test]
    fn two_sources_differ() {
        let (a, b) = (Jitter::new(1), Jitter::new(2));
        assert_ne!(
            (0..4).map(|_| a.next()).collect::<Vec<_>>(),
            (0..4).map(|_| b.next()).collect::<Vec<_>>()
        );
    }
}
