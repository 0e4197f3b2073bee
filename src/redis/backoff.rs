//! Reconnect delays as pure data.

use std::time::Duration;

/// Capped exponential backoff with jitter, for reconnecting to Redis.
///
/// Each failed try doubles the base delay from `initial` up to `max`; the
/// delay handed out is drawn from the upper half of it ("equal jitter"),
/// so many instances that lost the same Redis do not all knock at once,
/// and no delay ever exceeds `max`. A success calls
/// [`reset`](Backoff::reset). No clock and no randomness from outside:
/// the caller passes a seed and arms its own timer with the delay.
///
/// ```
/// use mio_selectors::redis::Backoff;
/// use std::time::Duration;
///
/// let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5), 42);
/// let first = b.next_delay();
/// assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
/// for _ in 0..20 {
///     assert!(b.next_delay() <= Duration::from_secs(5));
/// }
/// assert_eq!(b.failures(), 21);
/// b.reset();
/// assert!(b.next_delay() <= Duration::from_millis(100));
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
    rng: u64,
}

impl Backoff {
    /// Delays start near `initial` and never pass `max`.
    pub fn new(initial: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            initial: initial.min(max),
            max,
            failures: 0,
            // Spread nearby seeds apart (splitmix64's finaliser); xorshift
            // must not start at zero.
            rng: mix(seed) | 1,
        }
    }

    /// The delay before the next try; counts a failure.
    pub fn next_delay(&mut self) -> Duration {
        let doubling = 2u32.saturating_pow(self.failures.min(20));
        let base = self.initial.saturating_mul(doubling).min(self.max);
        self.failures = self.failures.saturating_add(1);
        let half = base / 2;
        let spread = u64::try_from((base - half).as_micros()).unwrap_or(u64::MAX);
        let jitter = if spread == 0 {
            0
        } else {
            self.next_random() % (spread + 1)
        };
        half + Duration::from_micros(jitter)
    }

    /// Back to the first delay, after a successful connect.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failed tries since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Default for Backoff {
    /// 100 ms doubling to at most 5 s, a fixed seed.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(5), 0x5eed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_and_stays_in_the_upper_half() {
        let max = Duration::from_secs(5);
        let mut b = Backoff::new(Duration::from_millis(100), max, 7);
        let mut base = Duration::from_millis(100);
        for _ in 0..30 {
            let d = b.next_delay();
            assert!(d >= base / 2 && d <= base, "{d:?} for base {base:?}");
            base = (base * 2).min(max);
        }
    }

    #[test]
    fn different_seeds_spread() {
        let delays: std::collections::HashSet<_> = (0..20)
            .map(|s| Backoff::new(Duration::from_secs(1), Duration::from_secs(5), s).next_delay())
            .collect();
        assert!(delays.len() > 10);
    }
}
