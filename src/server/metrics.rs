//! Prometheus counters, gauges and histograms, kept as atomics and rendered in the
//! text exposition format. A handful of fixed series does not need a metrics crate.
//! `deploy/prometheus/aspjwt.rules.yml` and `deploy/grafana/aspjwt-dashboard.json` are
//! written against these names (a test checks them against a live scrape).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const LATENCY: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];
/// Upper bounds of the session-age buckets, in seconds: a minute to a month.
const SESSION_AGE: &[f64] =
    &[60.0, 300.0, 900.0, 3600.0, 14_400.0, 43_200.0, 86_400.0, 259_200.0, 604_800.0, 1_209_600.0, 2_592_000.0];
/// Upper bounds of the refreshes-per-session buckets.
const REFRESH_COUNTS: &[f64] = &[0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 250.0, 500.0, 1000.0];

pub const LOGIN_OUTCOMES: [&str; 4] = ["success", "invalid_credentials", "locked", "rate_limited"];
/// `missing`: no refresh cookie at all (a sign-in page asking whether a session exists),
/// which is not a failed refresh and stays out of the success ratio.
pub const REFRESH_OUTCOMES: [&str; 6] = ["rotated", "grace", "reuse_revoked", "invalid", "rate_limited", "missing"];
pub const ROUTE_CLASSES: [&str; 8] =
    ["login", "refresh", "logout", "token_info", "protected", "health", "metrics", "other"];
pub const REJECTIONS: [&str; 4] = ["missing", "invalid", "revoked", "no_session"];
pub const STATUS_CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];
/// How a session this instance ended came to its end.
pub const SESSION_ENDS: [&str; 5] = ["logout", "new_login", "reuse", "expired", "revoked"];
/// The secrets whose previous value can verify tokens during a rollover.
pub const ROLLOVER_SECRETS: [&str; 2] = [crate::names::JWT_SECRET, crate::names::JWT_REFRESH_SECRET];

struct Histogram {
    bounds: &'static [f64],
    /// Cumulative: bucket i counts observations <= bounds[i].
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// The sum, in millionths of the unit.
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    fn observe(&self, v: f64) {
        for (i, le) in self.bounds.iter().enumerate() {
            if v <= *le {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add((v * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, o: &mut String, name: &str, label: &str, value: &str) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        for (i, le) in self.bounds.iter().enumerate() {
            let _ = writeln!(o, "{name}_bucket{{{label}=\"{value}\",le=\"{le}\"}} {}", get(&self.buckets[i]));
        }
        let count = get(&self.count);
        let _ = writeln!(o, "{name}_bucket{{{label}=\"{value}\",le=\"+Inf\"}} {count}");
        let _ = writeln!(o, "{name}_sum{{{label}=\"{value}\"}} {}", get(&self.sum_micros) as f64 / 1e6);
        let _ = writeln!(o, "{name}_count{{{label}=\"{value}\"}} {count}");
    }
}

fn histograms<const N: usize>(bounds: &'static [f64]) -> [Histogram; N] {
    std::array::from_fn(|_| Histogram::new(bounds))
}

pub struct Metrics {
    logins: [AtomicU64; 4],
    refreshes: [AtomicU64; 6],
    access_rejections: [AtomicU64; 4],
    responses: [AtomicU64; 4],
    session_lookups: AtomicU64,
    rate_limited: AtomicU64,
    csrf_rejected: AtomicU64,
    connections_refused: AtomicU64,
    tls_handshake_failures: AtomicU64,
    account_locks: AtomicU64,
    previous_key: [AtomicU64; 2],
    previous_key_outliving: [AtomicU64; 2],
    /// 1 while the last database round trip (the revocation poll) succeeded.
    database_up: AtomicU64,
    latency: [Histogram; 8],
    session_age: [Histogram; 5],
    session_refreshes: [Histogram; 5],
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            logins: Default::default(),
            refreshes: Default::default(),
            access_rejections: Default::default(),
            responses: Default::default(),
            session_lookups: Default::default(),
            rate_limited: Default::default(),
            csrf_rejected: Default::default(),
            connections_refused: Default::default(),
            tls_handshake_failures: Default::default(),
            account_locks: Default::default(),
            previous_key: Default::default(),
            previous_key_outliving: Default::default(),
            database_up: AtomicU64::new(1),
            latency: histograms(LATENCY),
            session_age: histograms(SESSION_AGE),
            session_refreshes: histograms(REFRESH_COUNTS),
        }
    }
}

fn index(list: &[&str], name: &str) -> usize {
    list.iter().position(|x| *x == name).unwrap_or_else(|| panic!("unknown metric label {name}"))
}

/// What a scrape reads from outside the counters.
pub struct Gauges<'a> {
    /// Sessions neither revoked nor expired (from the store; none when it is down).
    pub active_sessions: Option<i64>,
    /// Client addresses the per-IP limiters hold state for.
    pub tracked_clients: usize,
    /// For each secret, when its rollover window ends (epoch seconds; 0 when none is open).
    pub rollover_ends: &'a [(&'a str, i64)],
    /// Users whose password hash is still bcrypt (from the store; none when it is down).
    pub legacy_hashes: Option<usize>,
    /// When the served TLS certificate expires (epoch seconds; None without TLS).
    pub certificate_expiry: Option<i64>,
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

    /// A TLS handshake that failed or timed out (scanners, plain HTTP to the TLS port,
    /// clients that distrust the certificate).
    pub fn tls_handshake_failed(&self) {
        self.tls_handshake_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn csrf_rejected(&self) {
        self.csrf_rejected.fetch_add(1, Ordering::Relaxed);
    }

    pub fn account_locked(&self) {
        self.account_locks.fetch_add(1, Ordering::Relaxed);
    }

    /// A token that verified with a rollover's previous secret; `outlives` when it would
    /// still be valid after the window ends (a window shorter than what the secret signed).
    pub fn previous_key_used(&self, secret: &str, outlives: bool) {
        let i = index(&ROLLOVER_SECRETS, secret);
        self.previous_key[i].fetch_add(1, Ordering::Relaxed);
        if outlives {
            self.previous_key_outliving[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn database_up(&self, up: bool) {
        self.database_up.store(up as u64, Ordering::Relaxed);
    }

    /// Every answer, by status class.
    pub fn response(&self, status: u16) {
        let class = match status {
            0..=299 => 0,
            300..=399 => 1,
            400..=499 => 2,
            _ => 3,
        };
        self.responses[class].fetch_add(1, Ordering::Relaxed);
    }

    /// A session this instance ended: how old it was and how often it had refreshed.
    pub fn session_ended(&self, how: &str, age_secs: i64, refreshes: i64) {
        let i = index(&SESSION_ENDS, how);
        self.session_age[i].observe(age_secs.max(0) as f64);
        self.session_refreshes[i].observe(refreshes.max(0) as f64);
    }

    pub fn observe(&self, class: &str, took: Duration) {
        self.latency[index(&ROUTE_CLASSES, class)].observe(took.as_secs_f64());
    }

    /// The exposition text.
    pub fn render(&self, g: &Gauges<'_>) -> String {
        let mut o = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let family = |o: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(&mut o, "aspjwt_logins_total", "counter", "Login attempts by outcome.");
        for (i, name) in LOGIN_OUTCOMES.iter().enumerate() {
            let _ = writeln!(o, "aspjwt_logins_total{{outcome=\"{name}\"}} {}", get(&self.logins[i]));
        }
        family(&mut o, "aspjwt_refreshes_total", "counter", "Refresh attempts by outcome.");
        for (i, name) in REFRESH_OUTCOMES.iter().enumerate() {
            let _ = writeln!(o, "aspjwt_refreshes_total{{outcome=\"{name}\"}} {}", get(&self.refreshes[i]));
        }
        let ok = get(&self.refreshes[0]) + get(&self.refreshes[1]);
        let missing = get(&self.refreshes[index(&REFRESH_OUTCOMES, "missing")]);
        let all: u64 = self.refreshes.iter().map(get).sum::<u64>() - missing;
        let ratio = if all == 0 { 1.0 } else { ok as f64 / all as f64 };
        family(
            &mut o,
            "aspjwt_refresh_success_ratio",
            "gauge",
            "Share of refreshes that succeeded (rotated or grace) since start; requests without a refresh cookie (outcome missing) are not counted.",
        );
        let _ = writeln!(o, "aspjwt_refresh_success_ratio {ratio}");
        family(&mut o, "aspjwt_access_token_rejections_total", "counter", "Access tokens refused, by reason.");
        for (i, name) in REJECTIONS.iter().enumerate() {
            let _ = writeln!(
                o,
                "aspjwt_access_token_rejections_total{{reason=\"{name}\"}} {}",
                get(&self.access_rejections[i])
            );
        }
        family(&mut o, "aspjwt_responses_total", "counter", "Answers by status class.");
        for (i, name) in STATUS_CLASSES.iter().enumerate() {
            let _ = writeln!(o, "aspjwt_responses_total{{class=\"{name}\"}} {}", get(&self.responses[i]));
        }
        for (name, help, v) in [
            ("aspjwt_rate_limited_total", "Requests refused by the per-IP limits.", &self.rate_limited),
            ("aspjwt_csrf_rejected_total", "Requests refused by the CSRF defence.", &self.csrf_rejected),
            (
                "aspjwt_session_lookups_total",
                "Access tokens whose session was not in memory and was looked up in the database.",
                &self.session_lookups,
            ),
            (
                "aspjwt_connections_refused_total",
                "Connections turned away because their address held ASPJWT_MAX_CONNECTIONS_PER_IP.",
                &self.connections_refused,
            ),
            ("aspjwt_account_locks_total", "Accounts locked after repeated failed logins.", &self.account_locks),
            (
                "aspjwt_tls_handshake_failures_total",
                "TLS handshakes that failed or timed out (0 without TLS).",
                &self.tls_handshake_failures,
            ),
        ] {
            family(&mut o, name, "counter", help);
            let _ = writeln!(o, "{name} {}", get(v));
        }
        family(
            &mut o,
            "aspjwt_previous_key_verifications_total",
            "counter",
            "Tokens that verified with a rollover's previous secret, by secret.",
        );
        for (i, name) in ROLLOVER_SECRETS.iter().enumerate() {
            let _ = writeln!(
                o,
                "aspjwt_previous_key_verifications_total{{secret=\"{name}\"}} {}",
                get(&self.previous_key[i])
            );
        }
        family(
            &mut o,
            "aspjwt_previous_key_outliving_window_total",
            "counter",
            "Tokens that verified with a rollover's previous secret and expire after its window ends: their sessions are logged out at the window's end unless they refresh first.",
        );
        for (i, name) in ROLLOVER_SECRETS.iter().enumerate() {
            let _ = writeln!(
                o,
                "aspjwt_previous_key_outliving_window_total{{secret=\"{name}\"}} {}",
                get(&self.previous_key_outliving[i])
            );
        }
        family(
            &mut o,
            "aspjwt_rollover_window_end_timestamp_seconds",
            "gauge",
            "When each secret's rollover window ends (Unix time; 0 when none is open).",
        );
        for (name, end) in g.rollover_ends {
            let _ = writeln!(o, "aspjwt_rollover_window_end_timestamp_seconds{{secret=\"{name}\"}} {end}");
        }
        family(
            &mut o,
            "aspjwt_database_up",
            "gauge",
            "1 while the database answers: reads (the revocation poll, every 500 ms) and writes (probed every 5 s and by every readiness check), else 0.",
        );
        let _ = writeln!(o, "aspjwt_database_up {}", get(&self.database_up));
        if let Some(n) = g.legacy_hashes {
            family(
                &mut o,
                "aspjwt_legacy_password_hashes",
                "gauge",
                "Users whose password hash is still bcrypt (imported from the Node backend): each is upgraded to argon2id at its next login.",
            );
            let _ = writeln!(o, "aspjwt_legacy_password_hashes {n}");
        }
        if let Some(end) = g.certificate_expiry {
            family(
                &mut o,
                "aspjwt_tls_certificate_expiry_timestamp_seconds",
                "gauge",
                "When the TLS certificate in service expires (Unix time).",
            );
            let _ = writeln!(o, "aspjwt_tls_certificate_expiry_timestamp_seconds {end}");
        }
        if let Some(n) = g.active_sessions {
            family(&mut o, "aspjwt_active_sessions", "gauge", "Sessions neither revoked nor expired.");
            let _ = writeln!(o, "aspjwt_active_sessions {n}");
        }
        family(
            &mut o,
            "aspjwt_rate_limit_clients",
            "gauge",
            "Client addresses the per-IP limits hold state for (bounded).",
        );
        let _ = writeln!(o, "aspjwt_rate_limit_clients {}", g.tracked_clients);
        family(&mut o, "aspjwt_request_duration_seconds", "histogram", "Request latency by route class.");
        for (c, class) in ROUTE_CLASSES.iter().enumerate() {
            self.latency[c].render(&mut o, "aspjwt_request_duration_seconds", "class", class);
        }
        family(
            &mut o,
            "aspjwt_session_age_seconds",
            "histogram",
            "Age of ended sessions, by how they ended: those this instance ended, and (revoked) those an operator ended, seen by every instance (aggregate revoked with max).",
        );
        for (i, how) in SESSION_ENDS.iter().enumerate() {
            self.session_age[i].render(&mut o, "aspjwt_session_age_seconds", "reason", how);
        }
        family(
            &mut o,
            "aspjwt_session_refreshes",
            "histogram",
            "Refreshes of ended sessions, by how they ended: those this instance ended, and (revoked) those an operator ended, seen by every instance (aggregate revoked with max).",
        );
        for (i, how) in SESSION_ENDS.iter().enumerate() {
            self.session_refreshes[i].render(&mut o, "aspjwt_session_refreshes", "reason", how);
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
        m.observe("token_info", Duration::from_millis(3));
        m.session_ended("logout", 400, 3);
        m.response(503);
        let text = m.render(&Gauges {
            active_sessions: Some(7),
            tracked_clients: 3,
            rollover_ends: &[("JWT_SECRET", 1_800_000_000)],
            legacy_hashes: Some(3),
            certificate_expiry: Some(1_900_000_000),
        });
        assert!(text.contains("aspjwt_tls_certificate_expiry_timestamp_seconds 1900000000"));
        assert!(text.contains("aspjwt_logins_total{outcome=\"success\"} 1"));
        assert!(text.contains("aspjwt_refresh_success_ratio 0.5"));
        assert!(text.contains("aspjwt_active_sessions 7"));
        assert!(text.contains("aspjwt_request_duration_seconds_bucket{class=\"token_info\",le=\"0.0025\"} 0"));
        assert!(text.contains("aspjwt_request_duration_seconds_bucket{class=\"token_info\",le=\"0.005\"} 1"));
        assert!(text.contains("aspjwt_request_duration_seconds_bucket{class=\"token_info\",le=\"+Inf\"} 1"));
        assert!(text.contains("aspjwt_session_age_seconds_bucket{reason=\"logout\",le=\"300\"} 0"));
        assert!(text.contains("aspjwt_session_age_seconds_bucket{reason=\"logout\",le=\"900\"} 1"));
        assert!(text.contains("aspjwt_session_refreshes_bucket{reason=\"logout\",le=\"5\"} 1"));
        assert!(text.contains("aspjwt_responses_total{class=\"5xx\"} 1"));
        assert!(text.contains("aspjwt_rollover_window_end_timestamp_seconds{secret=\"JWT_SECRET\"} 1800000000"));
        assert!(text.contains("aspjwt_database_up 1"));
    }
}
