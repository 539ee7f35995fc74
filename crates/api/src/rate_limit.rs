//! Request-rate budgets (DESIGN.md "Transport security and keys"): each
//! API key may send `API_KEY_RATE` requests a second (or a minute, or an
//! hour) with a burst of `API_KEY_BURST`, by default as many as the rate,
//! so that no single client starves the others. Past it the request is
//! answered 429 `rate_limited` with `Retry-After` (InfluxDB's 429 on the
//! InfluxDB-compatible writes) and counted in
//! `stoker_api_rate_limited_requests_total`.
//!
//! A token bucket kept as GCRA (the generic cell rate algorithm): per key
//! one atomic integer, the theoretical arrival time of its next request
//! in nanoseconds since the limiter was made. A request moves it one
//! interval (the period over the rate) on from itself or from now,
//! whichever is later, and passes unless that puts it more than the
//! burst's worth of intervals ahead of now. That is one compare-and-swap
//! per request, no lock held while counting; the keys' cells sit in
//! shards of read-mostly maps, written only when a key is first seen.
//!
//! Only a verified key is counted (its secret matched): a request naming
//! another key's public id with a wrong secret cannot spend that key's
//! budget. There is a cell per key ever verified by the process (keys are
//! made by an administrator, so they are few). The budget is the
//! process's: several API processes behind one address let a key send
//! the rate to each.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

use crate::problem::ApiError;

/// Most requests a rate may name: one a nanosecond per second.
const MAX_REQUESTS: u32 = 1_000_000_000;

/// Maps the keys' cells are spread over, so that keys seen for the first
/// time (a write lock) hold up only a sixteenth of the others.
const SHARDS: usize = 16;

/// The period a rate is counted over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Per {
    Second,
    Minute,
    Hour,
}

impl Per {
    fn nanos(self) -> u64 {
        match self {
            Per::Second => 1_000_000_000,
            Per::Minute => 60_000_000_000,
            Per::Hour => 3_600_000_000_000,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Per::Second => "s",
            Per::Minute => "min",
            Per::Hour => "h",
        }
    }
}

/// A number of requests per second, minute or hour: `50000`, `50000/s`,
/// `600/min` (or `/m`), `3600/h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestRate {
    requests: u32,
    per: Per,
}

impl RequestRate {
    /// `requests` a second (at least 1, at most a billion).
    pub fn per_second(requests: u32) -> Result<Self, String> {
        Self::new(requests, Per::Second)
    }

    fn new(requests: u32, per: Per) -> Result<Self, String> {
        if requests == 0 || requests > MAX_REQUESTS {
            return Err(format!(
                "a rate must allow 1 to {MAX_REQUESTS} requests, not {requests}"
            ));
        }
        Ok(Self { requests, per })
    }

    /// The requests allowed in one period (the default burst).
    pub fn requests(self) -> u32 {
        self.requests
    }

    /// Nanoseconds between two requests at this rate (at least 1).
    fn interval_nanos(self) -> u64 {
        (self.per.nanos() / u64::from(self.requests)).max(1)
    }
}

impl FromStr for RequestRate {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (count, per) = match text.split_once('/') {
            None => (text, Per::Second),
            Some((count, unit)) => {
                let per = match unit.trim() {
                    "s" | "sec" | "second" => Per::Second,
                    "m" | "min" | "minute" => Per::Minute,
                    "h" | "hour" => Per::Hour,
                    other => {
                        return Err(format!(
                            "{other:?} is not a period: write the rate as 50000, 50000/s, 600/min or 3600/h"
                        ));
                    }
                };
                (count.trim(), per)
            }
        };
        let requests = count.parse::<u32>().map_err(|_| {
            format!("{text:?} is not a rate: write it as 50000, 50000/s, 600/min or 3600/h")
        })?;
        Self::new(requests, per)
    }
}

impl std::fmt::Display for RequestRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.requests, self.per.suffix())
    }
}

/// A burst: at least 1 request, at most a billion.
pub(crate) fn parse_burst(text: &str) -> Result<u32, String> {
    match text.trim().parse::<u32>() {
        Ok(burst) if (1..=MAX_REQUESTS).contains(&burst) => Ok(burst),
        _ => Err(format!(
            "{text:?} is not a burst: a whole number of requests from 1 to {MAX_REQUESTS}"
        )),
    }
}

/// What each key may send: a rate, and how many requests at once beyond it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyBudget {
    /// The sustained rate.
    pub rate: RequestRate,
    /// Requests a key that sent nothing for a while may send at once.
    pub burst: u32,
}

impl Default for KeyBudget {
    /// DESIGN.md's 50,000 requests a second with a burst of as many.
    fn default() -> Self {
        Self {
            rate: RequestRate {
                requests: 50_000,
                per: Per::Second,
            },
            burst: 50_000,
        }
    }
}

impl std::fmt::Display for KeyBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} with a burst of {}", self.rate, self.burst)
    }
}

/// Some of the keys: key id → theoretical arrival time of its next
/// request.
type Shard = RwLock<HashMap<Box<str>, AtomicU64>>;

/// The request-rate budget of every key, shared by the routes (cheap to
/// clone). Made from [`HttpOptions::key_budget`](crate::HttpOptions).
#[derive(Clone)]
pub struct KeyLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    budget: KeyBudget,
    /// Nanoseconds between two requests.
    interval: u64,
    /// How far ahead of now a key's next arrival may be: the burst's worth
    /// of intervals.
    tolerance: u64,
    epoch: Instant,
    hasher: RandomState,
    shards: Box<[Shard]>,
    limited: Counter,
}

impl KeyLimiter {
    /// A limiter giving every key `budget`.
    pub fn new(budget: KeyBudget) -> Self {
        let interval = budget.rate.interval_nanos();
        Self {
            inner: Arc::new(Inner {
                budget,
                interval,
                tolerance: interval.saturating_mul(u64::from(budget.burst)),
                epoch: Instant::now(),
                hasher: RandomState::new(),
                shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
                limited: Counter::default(),
            }),
        }
    }

    /// The budget each key has.
    pub fn budget(&self) -> KeyBudget {
        self.inner.budget
    }

    /// Adds `stoker_api_rate_limited_requests_total` to a registry.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "stoker_api_rate_limited_requests",
            "Requests answered 429 because their API key was past its API_KEY_RATE budget.",
            self.inner.limited.clone(),
        );
    }

    /// Spends one request of `key_id`'s budget; past it, the 429 to answer.
    pub(crate) fn check(&self, key_id: &str) -> Result<(), ApiError> {
        let now = u64::try_from(self.inner.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.admit(key_id, now).map_err(|wait| {
            self.inner.limited.inc();
            tracing::debug!(key_id, ?wait, "API key past its rate budget");
            ApiError::RateLimited {
                retry_after: retry_after_seconds(wait),
                budget: self.inner.budget.to_string(),
            }
        })
    }

    /// Spends one request of `key_id`'s budget at `now` (nanoseconds since
    /// the epoch); past it, how long until the next request would pass.
    fn admit(&self, key_id: &str, now: u64) -> Result<(), Duration> {
        let inner = &*self.inner;
        let shard = &inner.shards[shard_of(inner.hasher.hash_one(key_id))];
        {
            let cells = shard.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(cell) = cells.get(key_id) {
                return inner.spend(cell, now);
            }
        }
        let mut cells = shard.write().unwrap_or_else(PoisonError::into_inner);
        let cell = cells
            .entry(key_id.into())
            .or_insert_with(|| AtomicU64::new(0));
        inner.spend(cell, now)
    }
}

impl Inner {
    /// GCRA on one key's cell.
    fn spend(&self, cell: &AtomicU64, now: u64) -> Result<(), Duration> {
        let mut arrival = cell.load(Ordering::Relaxed);
        loop {
            let next = arrival.max(now).saturating_add(self.interval);
            let ahead = next - now;
            if ahead > self.tolerance {
                return Err(Duration::from_nanos(ahead - self.tolerance));
            }
            match cell.compare_exchange_weak(arrival, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Ok(()),
                Err(current) => arrival = current,
            }
        }
    }
}

impl Default for KeyLimiter {
    /// The default budget ([`KeyBudget::default`]).
    fn default() -> Self {
        Self::new(KeyBudget::default())
    }
}

impl std::fmt::Debug for KeyLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyLimiter")
            .field("budget", &self.inner.budget)
            .finish_non_exhaustive()
    }
}

fn shard_of(hash: u64) -> usize {
    // The remainder is below SHARDS, so the cast cannot truncate.
    (hash % SHARDS as u64) as usize
}

/// `Retry-After` in whole seconds, at least 1 (a client told 0 would retry
/// at once).
fn retry_after_seconds(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn budgeted(rate: &str, burst: u32) -> KeyLimiter {
        KeyLimiter::new(KeyBudget {
            rate: rate.parse().unwrap(),
            burst,
        })
    }

    #[test]
    fn rates_are_read_with_or_without_a_period() {
        for (text, requests, shown) in [
            ("50000", 50_000, "50000/s"),
            ("50000/s", 50_000, "50000/s"),
            (" 600 / min ", 600, "600/min"),
            ("600/m", 600, "600/min"),
            ("3600/h", 3600, "3600/h"),
        ] {
            let rate: RequestRate = text.parse().unwrap();
            assert_eq!(rate.requests(), requests, "{text}");
            assert_eq!(rate.to_string(), shown);
        }
        for bad in ["", "0", "-5", "5/d", "fast", "1.5/s", "2000000000"] {
            assert!(bad.parse::<RequestRate>().is_err(), "{bad:?}");
        }
        assert_eq!(parse_burst("10"), Ok(10));
        assert!(parse_burst("0").is_err() && parse_burst("x").is_err());
    }

    #[test]
    fn a_key_gets_its_burst_at_once_then_the_rate() {
        let limiter = budgeted("10/s", 10);
        let start = 5 * SECOND;
        for request in 0..10 {
            assert!(limiter.admit("a", start).is_ok(), "request {request}");
        }
        // The eleventh waits for one interval (a tenth of a second).
        let wait = limiter.admit("a", start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert_eq!(retry_after_seconds(wait), 1);
        // Refused requests spend nothing: after the interval, one passes.
        assert!(limiter.admit("a", start + SECOND / 10).is_ok());
        assert!(limiter.admit("a", start + SECOND / 10).is_err());
        // After a full period the whole burst is back, and no more.
        let later = start + 2 * SECOND;
        for _ in 0..10 {
            assert!(limiter.admit("a", later).is_ok());
        }
        assert!(limiter.admit("a", later).is_err());
    }

    #[test]
    fn keys_have_budgets_of_their_own() {
        let limiter = budgeted("2/s", 2);
        assert!(limiter.admit("a", 0).is_ok() && limiter.admit("a", 0).is_ok());
        assert!(limiter.admit("a", 0).is_err());
        assert!(limiter.admit("b", 0).is_ok() && limiter.admit("b", 0).is_ok());
    }

    #[test]
    fn a_burst_may_differ_from_the_rate() {
        let limiter = budgeted("60/min", 3);
        for _ in 0..3 {
            assert!(limiter.admit("a", 0).is_ok());
        }
        let wait = limiter.admit("a", 0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1));
        let one_burst = budgeted("1/h", 1);
        assert!(one_burst.admit("a", 0).is_ok());
        assert_eq!(
            retry_after_seconds(one_burst.admit("a", 0).unwrap_err()),
            3600
        );
    }

    #[test]
    fn the_check_counts_each_refusal_and_names_the_budget() {
        let limiter = budgeted("1/s", 1);
        assert!(limiter.check("a").is_ok());
        match limiter.check("a") {
            Err(ApiError::RateLimited {
                retry_after,
                budget,
            }) => {
                assert_eq!(retry_after, 1);
                assert_eq!(budget, "1/s with a burst of 1");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(limiter.inner.limited.get(), 1);
    }

    #[test]
    fn many_threads_spend_exactly_the_burst() {
        let limiter = budgeted("1/h", 1000);
        let passed = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..500 {
                        if limiter.admit("shared", 0).is_ok() {
                            passed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(passed.into_inner(), 1000);
    }
}
