//! Failed-authentication limits per source address.
//!
//! A source that presents more than the allowed number of bad credentials
//! within [`WINDOW`] gets 429 until the window has passed; other sources are
//! not affected. The source is the TCP peer: behind a proxy, that is the proxy,
//! and forwarded-for headers are deliberately not trusted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const WINDOW: Duration = Duration::from_secs(60);
/// Sources tracked at most; older windows are dropped first.
const MAX_SOURCES: usize = 100_000;

pub struct AuthLimiter {
    max_failures: u32,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl AuthLimiter {
    /// Allows `max_failures` failed attempts per source and minute; 0 turns
    /// the limit off.
    pub fn new(max_failures: u32) -> Self {
        Self {
            max_failures,
            failures: Mutex::default(),
        }
    }

    /// Seconds until `source` may try again, while it is limited.
    pub fn retry_after(&self, source: IpAddr) -> Option<u64> {
        if self.max_failures == 0 {
            return None;
        }
        let failures = self.failures.lock().expect("lock poisoned");
        let (count, since) = failures.get(&source)?;
        let elapsed = since.elapsed();
        (*count >= self.max_failures && elapsed < WINDOW)
            .then(|| (WINDOW - elapsed).as_secs().max(1))
    }

    /// Counts a failed attempt from `source`.
    pub fn failed(&self, source: IpAddr) {
        let now = Instant::now();
        let mut failures = self.failures.lock().expect("lock poisoned");
        if failures.len() >= MAX_SOURCES {
            failures.retain(|_, (_, since)| now.duration_since(*since) < WINDOW);
        }
        let entry = failures.entry(source).or_insert((0, now));
        if now.duration_since(entry.1) >= WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_one_source_only() {
        let limiter = AuthLimiter::new(10);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..9 {
            limiter.failed(a);
        }
        assert!(limiter.retry_after(a).is_none());
        limiter.failed(a);
        assert!(
            limiter
                .retry_after(a)
                .is_some_and(|s| (1..=60).contains(&s))
        );
        assert!(limiter.retry_after(b).is_none());
        let off = AuthLimiter::new(0);
        for _ in 0..100 {
            off.failed(a);
        }
        assert!(off.retry_after(a).is_none());
    }
}
