//! Per-IP token buckets (GoTrue's numbers: burst 30, 150 per 5 minutes), kept in a
//! map with a hard cap so that spraying addresses costs bounded memory.

use std::collections::HashMap;
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

/// A keyed state store with a hard cap on its size (`ASPJWT_RATE_LIMIT_CLIENTS`):
/// past it an arbitrary entry is evicted, so an attacker spraying addresses costs
/// bounded memory and can only make limits laxer for the evicted (a fresh bucket),
/// never lock anyone out.
pub struct BoundedStore<K> {
    map: Mutex<HashMap<K, Nanos>>,
    cap: usize,
}

impl<K: Hash + Eq + Clone> BoundedStore<K> {
    pub fn new(cap: usize) -> Self {
        BoundedStore { map: Mutex::new(HashMap::new()), cap }
    }
}

impl<K: Hash + Eq + Clone> StateStore for BoundedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let (out, next) = f(map.get(key).copied())?;
        if !map.contains_key(key)
            && map.len() >= self.cap
            && let Some(victim) = map.keys().next().cloned()
        {
            map.remove(&victim);
        }
        map.insert(key.clone(), next);
        Ok(out)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for BoundedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, tat| *tat >= drop_below);
    }

    fn shrink_to_fit(&self) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
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
        let period = Duration::from_secs(300) / per_5min.max(1);
        let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
            .expect("non-zero period")
            .allow_burst(NonZeroU32::new(burst.max(1)).expect("non-zero"));
        let clock = DefaultClock::default();
        IpLimiter { limiter: RateLimiter::new(quota, BoundedStore::new(cap), clock.clone()), clock }
    }

    /// Ok, or how long to wait.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        self.limiter.check_key(&bucket_key(ip)).map_err(|not_until| not_until.wait_time_from(self.clock.now()))
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

fn bucket_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(bucket_key(a), bucket_key(b));
    }
}
