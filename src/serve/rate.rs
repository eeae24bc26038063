//! Per-token request rates for `codeq serve`: a token bucket per token.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Seconds' worth of requests a token may make at once before its rate applies.
const BURST_SECONDS: f64 = 10.0;

/// Admits requests per key at a steady rate with a short burst.
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    available: f64,
    updated: Instant,
}

impl RateLimiter {
    /// `per_minute` requests a minute per key, up to [`BURST_SECONDS`] of them at once
    /// (at least one).
    pub fn per_minute(per_minute: u32) -> RateLimiter {
        let per_second = f64::from(per_minute) / 60.0;
        RateLimiter {
            per_second,
            burst: (per_second * BURST_SECONDS).max(1.0),
            buckets: Mutex::default(),
        }
    }

    /// Admits one request of `key` now, or says how long until one would be admitted.
    pub fn admit(&self, key: &str) -> Result<(), Duration> {
        self.admit_at(key, Instant::now())
    }

    fn admit_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket {
            available: self.burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.available = (bucket.available + elapsed * self.per_second).min(self.burst);
        bucket.updated = now;
        if bucket.available >= 1.0 {
            bucket.available -= 1.0;
            return Ok(());
        }
        if self.per_second <= 0.0 {
            return Err(Duration::from_secs(60));
        }
        Err(Duration::from_secs_f64(
            (1.0 - bucket.available) / self.per_second,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_token_gets_its_burst_then_its_rate() {
        let limiter = RateLimiter::per_minute(60);
        let start = Instant::now();
        for _ in 0..10 {
            assert!(limiter.admit_at("a", start).is_ok());
        }
        let wait = limiter.admit_at("a", start).unwrap_err();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        assert!(
            limiter.admit_at("b", start).is_ok(),
            "another token is not held back"
        );
        assert!(
            limiter
                .admit_at("a", start + Duration::from_millis(1100))
                .is_ok(),
            "one more a second later"
        );
        assert!(
            limiter
                .admit_at("a", start + Duration::from_millis(1200))
                .is_err()
        );
    }
}
