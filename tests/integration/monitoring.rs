//! Monitoring, checked by Prometheus's own tool: the alert rules and their unit tests,
//! a live scrape linted by `promtool check metrics`, and the Grafana dashboard's and the
//! rules' queries naming only metrics the service exports. Also that the new series
//! move when the things they count happen.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::service::{PASSWORD, Service, csrf, get, post, setup, within};

fn deploy(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(rel)
}

/// `promtool ARGS` with `stdin`; (exit code, stdout + stderr). A missing promtool fails.
fn promtool(args: &[&str], dir: &Path, stdin: &str) -> (i32, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool is required ({e}); `make test` installs Debian's prometheus package"));
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn metrics_url(s: &Service) -> String {
    format!("http://{}/metrics", s.metrics_addr())
}

fn scrape(s: &Service) -> String {
    reqwest::blocking::get(metrics_url(s)).unwrap().text().unwrap()
}

/// The value of one series line (`name{labels} value`).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no series {series}"))
}

/// Metric names in PromQL text: every `aspjwt_…` word, histogram suffixes dropped.
fn names_in(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("aspjwt_") {
        let start = i + at;
        let end = start + bytes[start..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
        let name = &expr[start..end];
        let base = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        out.insert(base.to_string());
        i = end;
    }
    out
}

/// The metric families a scrape declares.
fn exported(text: &str) -> BTreeSet<String> {
    text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).map(|l| l.split(' ').next().unwrap().to_string()).collect()
}

/// A service that has seen one of everything the new series count.
fn busy_service() -> Service {
    let s = Service::start(setup(
        "METRICS_BIND=127.0.0.1:0\nREFRESH_REUSE_GRACE=1s\nAUTH_RATE_BURST=1000\n",
        &[("a@example.com", "admin"), ("b@example.com", "support")],
    ));
    let l = s.login("a@example.com", PASSWORD);
    let (r, c) = (l.cookie("refresh_token").unwrap(), csrf(&l));
    let next = s.refresh(&r, &c);
    assert_eq!(next.status, 200);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(s.refresh(&r, &c).status, 401, "reuse");
    let l2 = s.login("a@example.com", PASSWORD);
    assert_eq!(s.logout(&l2.cookie("refresh_token").unwrap(), &csrf(&l2)).status, 204);
    for _ in 0..10 {
        s.login("a@example.com", "wrong password");
    }
    assert_eq!(get(&s.url("/api/nothing"), &[], &[]).status, 404);
    s
}

#[test]
fn a_live_scrape_passes_promtool_and_counts_what_happened() {
    let s = busy_service();
    let text = scrape(&s);
    let (code, out) = promtool(&["check", "metrics"], Path::new("."), &text);
    assert_eq!((code, out.trim()), (0, ""), "promtool check metrics");
    assert_eq!(value(&text, "aspjwt_session_age_seconds_count{reason=\"reuse\"}"), 1.0);
    assert_eq!(value(&text, "aspjwt_session_refreshes_count{reason=\"reuse\"}"), 1.0);
    assert_eq!(
        value(&text, "aspjwt_session_refreshes_bucket{reason=\"reuse\",le=\"0\"}"),
        0.0,
        "it had refreshed once"
    );
    assert_eq!(value(&text, "aspjwt_session_refreshes_bucket{reason=\"reuse\",le=\"1\"}"), 1.0);
    assert_eq!(value(&text, "aspjwt_session_age_seconds_count{reason=\"logout\"}"), 1.0);
    assert_eq!(value(&text, "aspjwt_account_locks_total"), 1.0);
    assert!(value(&text, "aspjwt_responses_total{class=\"4xx\"}") >= 12.0);
    assert!(value(&text, "aspjwt_responses_total{class=\"2xx\"}") >= 3.0);
    assert_eq!(value(&text, "aspjwt_database_up"), 1.0);
    assert_eq!(value(&text, "aspjwt_rollover_window_end_timestamp_seconds{secret=\"JWT_SECRET\"}"), 0.0);
    assert!(value(&text, "aspjwt_request_duration_seconds_count{class=\"refresh\"}") >= 2.0);

    // A sign-in page asking for a refresh without any cookie is no failed refresh.
    let ratio = value(&text, "aspjwt_refresh_success_ratio");
    assert_eq!(post(&s.url("/api/auth/refresh"), &[], &[]).status, 401);
    let text = scrape(&s);
    assert_eq!(value(&text, "aspjwt_refreshes_total{outcome=\"missing\"}"), 1.0);
    assert_eq!(value(&text, "aspjwt_refresh_success_ratio"), ratio);

    // A rollover: its end is exported, and tokens verified by the previous secret counted.
    let token = s.login("b@example.com", PASSWORD).cookie("access_token").unwrap(); // a@ is locked now
    s.dir.run(&["rotate", "--graceful", "--window", "10m"]).code(0);
    Command::new("kill").args(["-HUP", &s.pid().to_string()]).status().unwrap();
    let rolled = within(Duration::from_secs(3), || {
        value(&scrape(&s), "aspjwt_rollover_window_end_timestamp_seconds{secret=\"JWT_SECRET\"}") > 0.0
    });
    assert!(rolled.is_some(), "no rollover window end exported after SIGHUP");
    assert_eq!(get(&s.url("/api/auth/token-info"), &[("access_token", &token)], &[]).status, 200);
    let after = scrape(&s);
    assert_eq!(value(&after, "aspjwt_previous_key_verifications_total{secret=\"JWT_SECRET\"}"), 1.0);
    // A 10-minute window under 15-minute access tokens: this one outlives it.
    assert_eq!(value(&after, "aspjwt_previous_key_outliving_window_total{secret=\"JWT_SECRET\"}"), 1.0);
}

#[test]
fn the_alert_rules_pass_their_unit_tests_and_every_alert_has_one() {
    let dir = deploy("prometheus");
    let (code, out) = promtool(&["check", "rules", "aspjwt.rules.yml"], &dir, "");
    assert_eq!(code, 0, "{out}");
    let (code, out) = promtool(&["test", "rules", "aspjwt.rules.test.yml"], &dir, "");
    assert_eq!(code, 0, "{out}");
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("aspjwt.rules.yml")).unwrap()).unwrap();
    let alerts: BTreeSet<String> = rules["groups"][0]["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r["alert"].as_str().unwrap().to_string())
        .collect();
    let tests: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("aspjwt.rules.test.yml")).unwrap()).unwrap();
    let tested: BTreeSet<String> = tests["tests"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_sequence().unwrap().iter())
        .map(|a| a["alertname"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(alerts, tested, "every alert has a unit test");
    for required in [
        "AspjwtFailedLoginSurge",
        "AspjwtRefreshSuccessLow",
        "AspjwtRefreshTokenReuse",
        "AspjwtAccountLockSurge",
        "AspjwtServerErrors",
        "AspjwtNotReady",
        "AspjwtRolloverEndingInUse",
    ] {
        assert!(alerts.contains(required), "{required}");
    }
    for r in rules["groups"][0]["rules"].as_sequence().unwrap() {
        let runbook = r["annotations"]["runbook"].as_str().unwrap_or("");
        assert!(runbook.contains("`aspjwt "), "{}: the runbook names no aspjwt command", r["alert"].as_str().unwrap());
        assert!(r["annotations"]["summary"].as_str().is_some_and(|s| !s.is_empty()));
    }
}

#[test]
fn the_dashboard_and_the_rules_name_only_exported_metrics() {
    let s = busy_service();
    let exported = exported(&scrape(&s));
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(deploy("grafana/aspjwt-dashboard.json")).unwrap()).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    let mut exprs: Vec<(String, String)> = Vec::new();
    for p in panels {
        for t in p["targets"].as_array().unwrap() {
            exprs.push((p["title"].as_str().unwrap().to_string(), t["expr"].as_str().unwrap().to_string()));
        }
    }
    let rules = std::fs::read_to_string(deploy("prometheus/aspjwt.rules.yml")).unwrap();
    let rule_exprs: Vec<(String, String)> =
        serde_yaml::from_str::<serde_yaml::Value>(&rules).unwrap()["groups"][0]["rules"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|r| (r["alert"].as_str().unwrap().to_string(), r["expr"].as_str().unwrap().to_string()))
            .collect();
    for (where_, expr) in exprs.iter().chain(&rule_exprs) {
        let names = names_in(expr);
        assert!(!names.is_empty() || expr.contains("up{"), "{where_}: no aspjwt metric in {expr}");
        for n in names {
            // Exported only by a service that serves HTTPS itself (tls.rs scrapes one).
            let with_tls = n == "aspjwt_tls_certificate_expiry_timestamp_seconds";
            assert!(exported.contains(&n) || with_tls, "{where_}: {n} is not exported by the service");
        }
    }
    // Every dashboard query is valid PromQL: promtool checks them as recording rules.
    let mut as_rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, e)) in exprs.iter().enumerate() {
        as_rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(e).unwrap()
        ));
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("dashboard.rules.yml"), as_rules).unwrap();
    let (code, out) = promtool(&["check", "rules", "dashboard.rules.yml"], tmp.path(), "");
    assert_eq!(code, 0, "a dashboard query does not parse: {out}");
    // The panels the seed asks for.
    let titles: Vec<String> = panels.iter().map(|p| p["title"].as_str().unwrap().to_lowercase()).collect();
    for want in [
        "refresh success",
        "failed authentication",
        "active sessions",
        "latency",
        "rate-limited",
        "account locks",
        "token expiry",
        "session behaviour",
    ] {
        assert!(titles.iter().any(|t| t.contains(want)), "no panel for {want}: {titles:?}");
    }
}

/// Sessions ended by an operator (the CLI, here a separate process) and sessions whose
/// refresh token lapsed reach the session-age histogram too, once each (review of issue 19).
#[test]
fn revoked_and_expired_sessions_are_observed() {
    let s = Service::start(setup(
        "METRICS_BIND=127.0.0.1:0\nJWT_ACCESS_TOKEN_EXPIRY=1s\nJWT_REFRESH_TOKEN_EXPIRY=2s\nJWT_REFRESH_THRESHOLD=500ms\nAUTH_RATE_BURST=1000\n",
        &[("a@example.com", "admin"), ("b@example.com", "support")],
    ));
    let count = |reason: &str| value(&scrape(&s), &format!("aspjwt_session_age_seconds_count{{reason=\"{reason}\"}}"));
    // Two sessions of b ended by the CLI.
    s.login("b@example.com", PASSWORD);
    s.login("b@example.com", PASSWORD);
    s.cli(&["sessions", "revoke", "--user", "b@example.com"]).code(0);
    assert!(within(Duration::from_secs(5), || count("revoked") == 2.0).is_some(), "revoked: {}", count("revoked"));
    // a's refresh token lapses (2 s, plus the service's 5 s leeway for refresh tokens);
    // presented afterwards, its session ends as expired, once.
    let l = s.login("a@example.com", PASSWORD);
    let (r, c) = (l.cookie("refresh_token").unwrap(), csrf(&l));
    std::thread::sleep(Duration::from_millis(7500));
    assert_eq!(s.refresh(&r, &c).status, 401);
    assert_eq!(count("expired"), 1.0);
    assert_eq!(s.refresh(&r, &c).status, 401);
    let live = s.cli(&["--json", "sessions", "list", "--user", "a@example.com"]).code(0).rows();
    assert_eq!(live.as_array().unwrap().len(), 0, "{live}");
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!((count("expired"), count("revoked")), (1.0, 2.0), "counted twice");
    // b logs in and never comes back: the session lapses with nobody to end it, and
    // the service's sweep (every 30 s) ends and counts it, once.
    s.login("b@example.com", PASSWORD);
    assert!(within(Duration::from_secs(45), || count("expired") == 2.0).is_some(), "expired: {}", count("expired"));
    let live = s.cli(&["--json", "sessions", "list", "--all", "--user", "b@example.com"]).code(0).rows();
    let lapsed = live.as_array().unwrap().iter().filter(|x| x["revoke_reason"] == "expired").count();
    assert_eq!(lapsed, 1, "{live}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(count("expired"), 2.0);
}
