//! Durations as operators write them in .env files (`15m`, `7d`, `3600`, `1h30m`)
//! and as humans read them back ("12m 3s").

use std::time::Duration;

/// A duration that does not parse; the message says which forms do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration (use forms like 15m, 7d, 3600, 1h30m or 500ms)")]
pub struct BadDuration(pub String);

/// Parses `3600` (seconds) or a sequence of `<number><unit>` with units
/// ms, s, m, h, d, w (`1h30m`, `1500ms`). Zero and overflow are errors.
pub fn parse(text: &str) -> Result<Duration, BadDuration> {
    let bad = || BadDuration(text.to_string());
    let t = text.trim();
    if t.is_empty() {
        return Err(bad());
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = t.parse().map_err(|_| bad())?;
        return (secs > 0).then(|| Duration::from_secs(secs)).ok_or_else(bad);
    }
    let mut total: u64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit_ms = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = n.checked_mul(unit_ms).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
    }
    (total > 0).then(|| Duration::from_millis(total)).ok_or_else(bad)
}

/// "1d 2h", "12m 3s", "45s": the two largest non-zero units.
pub fn human(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut parts = Vec::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            parts.push(format!("{}{unit}", secs / size));
            secs %= size;
        }
        if parts.len() == 2 {
            break;
        }
    }
    parts.join(" ")
}

/// "in 12m 3s" for the future, "3h 2m ago" for the past, relative to `now` (epoch seconds).
pub fn relative(at: i64, now: i64) -> String {
    if at == now {
        "just now".into()
    } else if at > now {
        format!("in {}", human(Duration::from_secs((at - now) as u64)))
    } else {
        format!("{} ago", human(Duration::from_secs(now.saturating_sub(at) as u64)))
    }
}

/// The compact form written back to config files: "15m", "7d", "1h30m".
pub fn compact(d: Duration) -> String {
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    if out.is_empty() { "0s".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse("3600"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("1s250ms"), Ok(Duration::from_millis(1250)));
        for bad in ["", "0", "15x", "m", "1.5h", "-1m", "99999999999999999999s", "0m"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn human_forms() {
        assert_eq!(human(Duration::from_secs(723)), "12m 3s");
        assert_eq!(human(Duration::from_secs(86_400 + 5)), "1d 5s");
        assert_eq!(relative(100, 0), "in 1m 40s");
        assert_eq!(relative(0, 11_000), "3h 3m ago");
        assert_eq!(relative(5, 5), "just now");
        assert_eq!(compact(Duration::from_secs(5400)), "1h30m");
    }
}
