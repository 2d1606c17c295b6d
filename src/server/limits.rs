//! Per-IP token buckets (GoTrue's numbers: burst 30, 150 per 5 minutes), kept in a
//! map with a hard cap so that spraying addresses costs bounded memory without ever
//! freeing a client that is being limited.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::{Quota, RateLimiter};

/// Candidates looked at to make room for a new address (bounded work per request).
const EVICTION_TRIES: usize = 32;

/// A keyed GCRA state store with a hard cap on its size (`ASPJWT_RATE_LIMIT_CLIENTS`).
/// A new address past the cap takes the place of one whose bucket is full again
/// (idle), else of one partly used; a bucket that is limiting right now is never
/// forgotten. When every bucket looked at is limiting, new addresses share one overflow
/// bucket instead: under a spray, limits get stricter for newcomers, never laxer for
/// anyone being limited.
///
/// The state is governor's GCRA "theoretical arrival time" (`tat`) per key: the bucket
/// is full when `tat <= now`, and refuses requests when `tat > now + tau`.
pub struct BoundedStore<K> {
    inner: Mutex<Inner<K>>,
    cap: usize,
    /// Governor's emission interval `t` and burst tolerance `tau` for this quota.
    t: Nanos,
    tau: Nanos,
}

struct Inner<K> {
    map: HashMap<K, Nanos>,
    /// Keys in arrival order, the candidates for eviction (stale ones are skipped).
    order: VecDeque<K>,
    overflow: Option<Nanos>,
}

impl<K: Hash + Eq + Clone> BoundedStore<K> {
    pub fn new(cap: usize, t: Nanos, tau: Nanos) -> Self {
        BoundedStore {
            inner: Mutex::new(Inner { map: HashMap::new(), order: VecDeque::new(), overflow: None }),
            cap: cap.max(1),
            t,
            tau,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<K: Hash + Eq + Clone> Inner<K> {
    /// Makes room for one key at time `now`; false when every candidate is limiting.
    fn evict(&mut self, now: Nanos, tau: Nanos) -> bool {
        let mut partly_used = None;
        for _ in 0..EVICTION_TRIES.min(self.order.len()) {
            let Some(k) = self.order.pop_front() else { break };
            let Some(&tat) = self.map.get(&k) else { continue }; // already gone
            if tat <= now {
                self.map.remove(&k);
                return true;
            }
            if partly_used.is_none() && tat <= now + tau {
                partly_used = Some(k.clone());
            }
            self.order.push_back(k);
        }
        match partly_used {
            Some(k) => {
                self.map.remove(&k);
                true
            }
            None => false,
        }
    }
}

impl<K: Hash + Eq + Clone> StateStore for BoundedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut inner = self.lock();
        if let Some(tat) = inner.map.get(key).copied() {
            let (out, next) = f(Some(tat))?;
            inner.map.insert(key.clone(), next);
            return Ok(out);
        }
        // A new address: its first request is always allowed and tells the time.
        let (out, next) = f(None)?;
        if inner.map.len() < self.cap || inner.evict(next.saturating_sub(self.t), self.tau) {
            inner.map.insert(key.clone(), next);
            inner.order.push_back(key.clone());
            if inner.order.len() > 2 * self.cap {
                let keys: VecDeque<K> = inner.map.keys().cloned().collect();
                inner.order = keys;
            }
            return Ok(out);
        }
        // Every bucket looked at is limiting: newcomers share the overflow bucket.
        let (out, next) = f(inner.overflow)?;
        inner.overflow = Some(next);
        Ok(out)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for BoundedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        let mut inner = self.lock();
        inner.map.retain(|_, tat| *tat >= drop_below);
        let live: VecDeque<K> = inner.order.iter().filter(|k| inner.map.contains_key(*k)).cloned().collect();
        inner.order = live;
        if inner.overflow.is_some_and(|tat| tat < drop_below) {
            inner.overflow = None;
        }
    }

    fn shrink_to_fit(&self) {
        let mut inner = self.lock();
        inner.map.shrink_to_fit();
        inner.order.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.lock().map.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A token bucket per client IP (IPv6 by /64, the block one host usually holds).
pub struct IpLimiter {
    limiter: RateLimiter<IpAddr, BoundedStore<IpAddr>, DefaultClock>,
    clock: DefaultClock,
}

impl IpLimiter {
    /// `burst` requests at once, refilled at `per_5min` per five minutes.
    pub fn new(burst: u32, per_5min: u32, cap: usize) -> IpLimiter {
        let period = (Duration::from_secs(300) / per_5min.max(1)).max(Duration::from_nanos(1));
        let burst = NonZeroU32::new(burst.max(1)).expect("non-zero");
        let quota = Quota::with_period(period).expect("non-zero period").allow_burst(burst);
        // Governor's GCRA parameters for this quota: t = the period, tau = t × (burst − 1).
        let t = Nanos::from(period);
        let tau = Nanos::from(period * (burst.get() - 1));
        let clock = DefaultClock::default();
        IpLimiter { limiter: RateLimiter::new(quota, BoundedStore::new(cap, t, tau), clock.clone()), clock }
    }

    /// Ok, or how long to wait.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        self.limiter
            .check_key(&crate::net::client_key(ip))
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Drops clients whose bucket is full again (idle state).
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    pub fn tracked(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limited_buckets_are_never_evicted_and_newcomers_share_an_overflow() {
        let l = IpLimiter::new(2, 1, 100);
        let limited: IpAddr = "198.51.100.7".parse().unwrap();
        assert!(l.check(limited).is_ok() && l.check(limited).is_ok());
        assert!(l.check(limited).is_err());
        // 99 more addresses each spend their whole burst: every bucket now limits.
        for i in 0..99u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let _ = (l.check(ip), l.check(ip));
        }
        // Newcomers share one bucket: two get through, then they are limited too.
        let newcomers: Vec<bool> =
            (0..5u32).map(|i| l.check(IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + i))).is_ok()).collect();
        assert_eq!(newcomers, [true, true, false, false, false]);
        assert!(l.check(limited).is_err(), "still limited");
        assert_eq!(l.tracked(), 100);
    }

    #[test]
    fn buckets_limit_and_memory_stays_bounded_under_a_spray() {
        let l = IpLimiter::new(30, 150, 10_000);
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        for _ in 0..30 {
            assert!(l.check(ip).is_ok());
        }
        let wait = l.check(ip).unwrap_err();
        assert!(wait <= Duration::from_secs(2) && wait > Duration::ZERO, "{wait:?}");
        // A million distinct addresses: the map never outgrows its cap.
        for i in 0..1_000_000u32 {
            let _ = l.check(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
        }
        assert!(l.tracked() <= 10_000, "{}", l.tracked());
        // IPv6 hosts in one /64 share a bucket.
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff".parse().unwrap();
        assert_eq!(crate::net::client_key(a), crate::net::client_key(b));
    }
}
