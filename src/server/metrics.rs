//! Prometheus counters and latency histograms, kept as atomics and rendered in the
//! text exposition format. A handful of fixed series does not need a metrics crate.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

pub const LOGIN_OUTCOMES: [&str; 4] = ["success", "invalid_credentials", "locked", "rate_limited"];
pub const REFRESH_OUTCOMES: [&str; 5] = ["rotated", "grace", "reuse_revoked", "invalid", "rate_limited"];
pub const ROUTE_CLASSES: [&str; 5] = ["auth", "protected", "health", "metrics", "other"];
pub const REJECTIONS: [&str; 4] = ["missing", "invalid", "revoked", "no_session"];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

#[derive(Default)]
pub struct Metrics {
    logins: [AtomicU64; 4],
    refreshes: [AtomicU64; 5],
    access_rejections: [AtomicU64; 4],
    session_lookups: AtomicU64,
    rate_limited: AtomicU64,
    csrf_rejected: AtomicU64,
    connections_refused: AtomicU64,
    latency: [Histogram; 5],
}

fn index(list: &[&str], name: &str) -> usize {
    list.iter().position(|x| *x == name).unwrap_or_else(|| panic!("unknown metric label {name}"))
}

impl Metrics {
    pub fn login(&self, outcome: &str) {
        self.logins[index(&LOGIN_OUTCOMES, outcome)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn refresh(&self, outcome: &str) {
        self.refreshes[index(&REFRESH_OUTCOMES, outcome)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn access_rejected(&self, why: &str) {
        self.access_rejections[index(&REJECTIONS, why)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// An access token whose session was not in memory, looked up in the store.
    pub fn session_lookup(&self) {
        self.session_lookups.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn csrf_rejected(&self) {
        self.csrf_rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub fn observe(&self, class: &str, took: Duration) {
        let h = &self.latency[index(&ROUTE_CLASSES, class)];
        let secs = took.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        h.count.fetch_add(1, Ordering::Relaxed);
        h.sum_micros.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// The exposition text; `active_sessions` is read from the store at scrape time.
    pub fn render(&self, active_sessions: Option<i64>, tracked_clients: usize) -> String {
        let mut o = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ =
            writeln!(o, "# HELP aspjwt_logins_total Login attempts by outcome.\n# TYPE aspjwt_logins_total counter");
        for (i, name) in LOGIN_OUTCOMES.iter().enumerate() {
            let _ = writeln!(o, "aspjwt_logins_total{{outcome=\"{name}\"}} {}", get(&self.logins[i]));
        }
        let _ = writeln!(
            o,
            "# HELP aspjwt_refreshes_total Refresh attempts by outcome.\n# TYPE aspjwt_refreshes_total counter"
        );
        for (i, name) in REFRESH_OUTCOMES.iter().enumerate() {
            let _ = writeln!(o, "aspjwt_refreshes_total{{outcome=\"{name}\"}} {}", get(&self.refreshes[i]));
        }
        let ok = get(&self.refreshes[0]) + get(&self.refreshes[1]);
        let all: u64 = self.refreshes.iter().map(get).sum();
        let ratio = if all == 0 { 1.0 } else { ok as f64 / all as f64 };
        let _ = writeln!(
            o,
            "# HELP aspjwt_refresh_success_ratio Share of refreshes that succeeded (rotated or grace).\n# TYPE aspjwt_refresh_success_ratio gauge\naspjwt_refresh_success_ratio {ratio}"
        );
        let _ = writeln!(
            o,
            "# HELP aspjwt_access_token_rejections_total Access tokens refused, by reason.\n# TYPE aspjwt_access_token_rejections_total counter"
        );
        for (i, name) in REJECTIONS.iter().enumerate() {
            let _ = writeln!(
                o,
                "aspjwt_access_token_rejections_total{{reason=\"{name}\"}} {}",
                get(&self.access_rejections[i])
            );
        }
        let _ = writeln!(
            o,
            "# HELP aspjwt_rate_limited_total Requests refused by the per-IP limits.\n# TYPE aspjwt_rate_limited_total counter\naspjwt_rate_limited_total {}",
            get(&self.rate_limited)
        );
        let _ = writeln!(
            o,
            "# HELP aspjwt_csrf_rejected_total Requests refused by the CSRF defence.\n# TYPE aspjwt_csrf_rejected_total counter\naspjwt_csrf_rejected_total {}",
            get(&self.csrf_rejected)
        );
        let _ = writeln!(
            o,
            "# HELP aspjwt_session_lookups_total Access tokens whose session was not in memory and was looked up in the database.\n# TYPE aspjwt_session_lookups_total counter\naspjwt_session_lookups_total {}",
            get(&self.session_lookups)
        );
        let _ = writeln!(
            o,
            "# HELP aspjwt_connections_refused_total Connections turned away because their address held ASPJWT_MAX_CONNECTIONS_PER_IP.\n# TYPE aspjwt_connections_refused_total counter\naspjwt_connections_refused_total {}",
            get(&self.connections_refused)
        );
        if let Some(n) = active_sessions {
            let _ = writeln!(
                o,
                "# HELP aspjwt_active_sessions Sessions neither revoked nor expired.\n# TYPE aspjwt_active_sessions gauge\naspjwt_active_sessions {n}"
            );
        }
        let _ = writeln!(
            o,
            "# HELP aspjwt_rate_limit_clients Client addresses the per-IP limits hold state for (bounded).\n# TYPE aspjwt_rate_limit_clients gauge\naspjwt_rate_limit_clients {tracked_clients}"
        );
        let _ = writeln!(
            o,
            "# HELP aspjwt_request_duration_seconds Request latency by route class.\n# TYPE aspjwt_request_duration_seconds histogram"
        );
        for (c, class) in ROUTE_CLASSES.iter().enumerate() {
            let h = &self.latency[c];
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "aspjwt_request_duration_seconds_bucket{{class=\"{class}\",le=\"{le}\"}} {}",
                    get(&h.buckets[i])
                );
            }
            let count = get(&h.count);
            let _ = writeln!(o, "aspjwt_request_duration_seconds_bucket{{class=\"{class}\",le=\"+Inf\"}} {count}");
            let _ = writeln!(
                o,
                "aspjwt_request_duration_seconds_sum{{class=\"{class}\"}} {}",
                get(&h.sum_micros) as f64 / 1e6
            );
            let _ = writeln!(o, "aspjwt_request_duration_seconds_count{{class=\"{class}\"}} {count}");
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.login("success");
        m.refresh("rotated");
        m.refresh("invalid");
        m.observe("auth", Duration::from_millis(3));
        let text = m.render(Some(7), 3);
        assert!(text.contains("aspjwt_logins_total{outcome=\"success\"} 1"));
        assert!(text.contains("aspjwt_refresh_success_ratio 0.5"));
        assert!(text.contains("aspjwt_active_sessions 7"));
        assert!(text.contains("aspjwt_request_duration_seconds_bucket{class=\"auth\",le=\"0.0025\"} 0"));
        assert!(text.contains("aspjwt_request_duration_seconds_bucket{class=\"auth\",le=\"0.005\"} 1"));
        assert!(text.contains("aspjwt_request_duration_seconds_bucket{class=\"auth\",le=\"+Inf\"} 1"));
    }
}
