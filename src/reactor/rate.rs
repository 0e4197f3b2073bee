//! [`TokenBucket`]: a rate limit with bursts.

use std::time::{Duration, Instant};

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
///
/// ```
/// use mio_selectors::reactor::TokenBucket;
/// use std::time::{Duration, Instant};
///
/// let start = Instant::now();
/// let mut bucket = TokenBucket::new(100.0, 2.0, start);
/// assert!(bucket.take(start).is_ok());
/// assert!(bucket.take(start).is_ok());
/// // Empty: the next token comes in 10 ms.
/// assert_eq!(bucket.take(start), Err(Duration::from_millis(10)));
/// assert!(bucket.take(start + Duration::from_millis(10)).is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket. `rate` must be positive.
    ///
    /// ```
    /// let bucket = mio_selectors::reactor::TokenBucket::new(100.0, 200.0, std::time::Instant::now());
    /// ```
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        TokenBucket {
            rate: rate.max(f64::MIN_POSITIVE),
            burst: burst.max(1.0),
            tokens: burst.max(1.0),
            last: now,
        }
    }

    /// Takes one token, or says how long until one is there.
    ///
    /// # Errors
    ///
    /// The wait until the next token, when the bucket is empty.
    ///
    /// ```
    /// # use std::time::Instant;
    /// let mut bucket = mio_selectors::reactor::TokenBucket::new(1.0, 1.0, Instant::now());
    /// assert!(bucket.take(Instant::now()).is_ok());
    /// assert!(bucket.take(Instant::now()).is_err());
    /// ```
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now.max(self.last);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / self.rate;
            // A rate too small for a `Duration` waits a day and asks again.
            let day = Duration::from_secs(24 * 3600);
            let wait = Duration::try_from_secs_f64(wait).unwrap_or(day);
            Err(wait.clamp(Duration::from_millis(1), day))
        }
    }
}
