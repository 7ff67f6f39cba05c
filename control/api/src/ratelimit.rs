//! Per-token token buckets for write routes, held in memory.
//!
//! This module only counts; it must not sleep or queue requests (a spent bucket is answered with 429).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::RateLimitConfig;

/// One token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

/// Write budgets of every token seen since start, keyed by token id.
#[derive(Debug)]
pub struct WriteRateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<i64, Bucket>>,
}

impl WriteRateLimiter {
    /// A limiter allowing `cfg.writes_per_second` sustained and `cfg.write_burst` at once, per token.
    pub fn new(cfg: &RateLimitConfig) -> Self {
        Self {
            rate: cfg.writes_per_second.max(f64::MIN_POSITIVE),
            burst: f64::from(cfg.write_burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one write from `token_id`'s bucket at `now`, or says how long until one is available.
    pub fn check_at(&self, token_id: i64, now: Instant) -> Result<(), Duration> {
        let mut buckets = match self.buckets.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let b = buckets.entry(token_id).or_insert(Bucket {
            tokens: self.burst,
            refilled_at: now,
        });
        let elapsed = now.saturating_duration_since(b.refilled_at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.refilled_at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.rate))
        }
    }

    /// Takes one write from `token_id`'s bucket now.
    pub fn check(&self, token_id: i64) -> Result<(), Duration> {
        self.check_at(token_id, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_at_the_configured_rate() {
        let l = WriteRateLimiter::new(&RateLimitConfig {
            writes_per_second: 2.0,
            write_burst: 3,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            l.check_at(1, t0).unwrap();
        }
        let wait = l.check_at(1, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        // Another token has its own bucket.
        l.check_at(2, t0).unwrap();
        // Half a second later one write is available again, not two.
        let t1 = t0 + Duration::from_millis(500);
        l.check_at(1, t1).unwrap();
        assert!(l.check_at(1, t1).is_err());
    }
}
