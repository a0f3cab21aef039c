//! Failed-authentication limits per source.
//!
//! A source that presents more than the allowed number of bad credentials
//! within [`WINDOW`] gets 429 for further bad credentials until the window
//! has passed; a valid token from it is still served, so one client behind
//! a shared proxy or NAT cannot lock out the others. The source is the TCP
//! peer (an IPv6 peer counts by its /64, which one host usually holds
//! whole); forwarded-for headers are deliberately not trusted.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const WINDOW: Duration = Duration::from_secs(60);
/// Sources tracked at most. When that many failed within the window, the
/// table is emptied rather than grown: a flood from that many addresses is
/// not slowed by a per-source limit anyway.
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

    /// Counts a failed attempt from `source`, and returns the seconds until
    /// its window ends when it is now over the limit.
    pub fn failed(&self, source: IpAddr) -> Option<u64> {
        if self.max_failures == 0 {
            return None;
        }
        let source = key(source);
        let now = Instant::now();
        let mut failures = self.failures.lock().expect("lock poisoned");
        if failures.len() >= MAX_SOURCES && !failures.contains_key(&source) {
            failures.retain(|_, (_, since)| now.duration_since(*since) < WINDOW);
            if failures.len() >= MAX_SOURCES {
                failures.clear();
            }
        }
        let entry = failures.entry(source).or_insert((0, now));
        if now.duration_since(entry.1) >= WINDOW {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
        let elapsed = now.duration_since(entry.1);
        (entry.0 > self.max_failures).then(|| (WINDOW - elapsed).as_secs().max(1))
    }

    /// The seconds until `source`'s window ends when it is already over the
    /// limit; counts nothing. For callers whose every check costs a call
    /// elsewhere (the exec listener's TokenReviews), asked before checking.
    pub fn over_limit(&self, source: IpAddr) -> Option<u64> {
        if self.max_failures == 0 {
            return None;
        }
        let failures = self.failures.lock().expect("lock poisoned");
        let (count, since) = *failures.get(&key(source))?;
        let elapsed = Instant::now().duration_since(since);
        (count > self.max_failures && elapsed < WINDOW).then(|| (WINDOW - elapsed).as_secs().max(1))
    }

    /// How many sources the table holds.
    pub fn tracked(&self) -> usize {
        self.failures.lock().expect("lock poisoned").len()
    }
}

/// The key a source counts under: the address, or an IPv6 address's /64.
fn key(source: IpAddr) -> IpAddr {
    match source {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        IpAddr::V6(v6) => IpAddr::V4(v6.to_ipv4_mapped().expect("checked above")),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_failures_of_one_source_only() {
        let limiter = AuthLimiter::new(10);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..10 {
            assert!(limiter.failed(a).is_none());
        }
        assert!(limiter.over_limit(a).is_none(), "ten failures are allowed");
        assert!(limiter.failed(a).is_some_and(|s| (1..=60).contains(&s)));
        assert!(limiter.over_limit(a).is_some_and(|s| (1..=60).contains(&s)));
        assert!(limiter.failed(b).is_none());
        assert!(limiter.over_limit(b).is_none());
        let off = AuthLimiter::new(0);
        for _ in 0..100 {
            assert!(off.failed(a).is_none());
        }
    }

    #[test]
    fn an_ipv6_host_counts_by_its_64() {
        let limiter = AuthLimiter::new(1);
        limiter.failed("2001:db8::1".parse().unwrap());
        assert!(
            limiter
                .failed("2001:db8::ffff:2".parse().unwrap())
                .is_some()
        );
        assert!(limiter.failed("2001:db8:0:1::1".parse().unwrap()).is_none());
    }

    #[test]
    fn the_table_stays_bounded() {
        let limiter = AuthLimiter::new(10);
        for i in 0..(MAX_SOURCES as u32 + 5_000) {
            limiter.failed(IpAddr::from(i.to_be_bytes()));
        }
        assert!(limiter.tracked() <= MAX_SOURCES);
    }
}
