//! Offline validation of a configuration, as findings (data); printing is elsewhere.
//! `aspjwt check`, `aspjwt serve` (refuses to start on a failure) and
//! `aspjwt health` share these rules.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::compose::{EnvVar, Source};
use crate::{duration, names, secrets};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

/// One line of the checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What was checked; "name" in JSON, as in every other checklist.
    #[serde(rename = "name")]
    pub item: String,
    pub status: Status,
    pub detail: String,
}

impl Finding {
    pub fn new(item: impl Into<String>, status: Status, detail: impl Into<String>) -> Finding {
        Finding { item: item.into(), status, detail: detail.into() }
    }
}

/// A configuration value and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub value: String,
    pub origin: String,
}

/// Judges the three secrets: present, not placeholders, long enough, all different.
pub fn secrets(settings: &BTreeMap<String, Setting>) -> Vec<Finding> {
    let mut out = Vec::new();
    for spec in names::DEFAULT_SECRETS {
        out.push(match settings.get(spec.name) {
            None => Finding::new(spec.name, Status::Fail, "missing; run `aspjwt rotate --env-file .env --create`"),
            Some(s) => secret_finding(spec.name, &s.value, spec.bytes, &s.origin),
        });
    }
    let present: Vec<(&str, &Setting)> =
        names::DEFAULT_SECRETS.iter().filter_map(|s| settings.get(s.name).map(|v| (s.name, v))).collect();
    for (i, (a, va)) in present.iter().enumerate() {
        for (b, vb) in &present[i + 1..] {
            if va.value == vb.value && !va.value.is_empty() {
                out.push(Finding::new(
                    format!("{a} ≠ {b}"),
                    Status::Fail,
                    "the two secrets are equal; each must be unique",
                ));
            }
        }
    }
    if present.len() > 1 && !out.iter().any(|f| f.item.contains('≠')) {
        out.push(Finding::new("secrets distinct", Status::Pass, "no two secrets are equal"));
    }
    out
}

/// Judges one secret value against its minimum size.
pub fn secret_finding(name: &str, value: &str, min_bytes: usize, origin: &str) -> Finding {
    match secrets::weakness(value, min_bytes) {
        Some(w) => Finding::new(name, Status::Fail, format!("{w} ({origin})")),
        None => {
            let size = match secrets::strength(value) {
                (n, "characters") => format!("{n} chars"),
                (n, unit) => format!("{} chars, {n} {}", value.chars().count(), unit.trim_start_matches("decoded ")),
            };
            Finding::new(name, Status::Pass, format!("{size} ({origin})"))
        }
    }
}

/// Token lifetimes: both parse, and access is shorter than refresh.
pub fn expiries(settings: &BTreeMap<String, Setting>) -> Vec<Finding> {
    let read = |key: &str, default: &str| -> Result<(std::time::Duration, String), Finding> {
        match settings.get(key) {
            None => Ok((duration::parse(default).expect("defaults parse"), format!("{default} (default)"))),
            Some(s) => duration::parse(&s.value)
                .map(|d| (d, format!("{} ({})", s.value, s.origin)))
                .map_err(|e| Finding::new(key, Status::Fail, format!("{e} ({})", s.origin))),
        }
    };
    let access = read(names::JWT_ACCESS_TOKEN_EXPIRY, names::DEFAULT_ACCESS_EXPIRY);
    let refresh = read(names::JWT_REFRESH_TOKEN_EXPIRY, names::DEFAULT_REFRESH_EXPIRY);
    let mut out = Vec::new();
    for (key, r) in [(names::JWT_ACCESS_TOKEN_EXPIRY, &access), (names::JWT_REFRESH_TOKEN_EXPIRY, &refresh)] {
        out.push(match r {
            Ok((_, shown)) => Finding::new(key, Status::Pass, shown.clone()),
            Err(f) => f.clone(),
        });
    }
    if let (Ok((a, _)), Ok((r, _))) = (&access, &refresh) {
        out.push(if a < r {
            Finding::new("expiry order", Status::Pass, "access tokens expire before refresh tokens")
        } else {
            Finding::new(
                "expiry order",
                Status::Fail,
                format!(
                    "access expiry {} must be shorter than refresh expiry {}",
                    duration::human(*a),
                    duration::human(*r)
                ),
            )
        });
    }
    out
}

/// ASPJWT_DB, when set: a path, `sqlite:` or `postgres://` URL (shown with any
/// password masked). Nothing is connected to: `check` stays offline.
pub fn database(settings: &BTreeMap<String, Setting>) -> Option<Finding> {
    let s = settings.get(names::ASPJWT_DB)?;
    Some(match crate::store::Target::parse(&s.value) {
        Ok(t) => {
            let kind = if t.is_postgres() { "PostgreSQL" } else { "SQLite" };
            Finding::new(names::ASPJWT_DB, Status::Pass, format!("{kind} {t} ({})", s.origin))
        }
        Err(e) => Finding::new(names::ASPJWT_DB, Status::Fail, format!("{e} ({})", s.origin)),
    })
}

/// What a compose service's secret resolves to, as docker compose would compute it:
/// a failure when it is not a string, or resolves to nothing, a placeholder or too
/// little. `lookup` finds variables as compose does (process environment, then the env
/// files); `looked` says where, for the message.
fn compose_secret(
    v: &EnvVar,
    min: usize,
    origin: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    looked: &str,
) -> Option<Finding> {
    let fail = |detail: String| Some(Finding::new(v.key.clone(), Status::Fail, format!("{detail} ({origin})")));
    let template = match &v.source {
        Source::NotScalar { kind, .. } => {
            return fail(format!(
                "a YAML {kind}, not a string: docker compose refuses it (a placeholder? `aspjwt rotate --compose` writes a secret there)"
            ));
        }
        Source::PassThrough => {
            return match lookup(&v.key) {
                None => {
                    fail(format!("passed through from the environment, but {} is not set (looked in {looked})", v.key))
                }
                Some(value) => secret_finding(&v.key, &value, min, &format!("{origin}, from the environment"))
                    .filter_status(Status::Fail),
            };
        }
        Source::Literal(t) | Source::Interpolated(t) => t,
    };
    let r = match crate::interpolate::resolve(template, lookup) {
        Ok(r) => r,
        Err(e) => return fail(format!("{template:?}: {e}")),
    };
    if let Some(var) = r.unset.first() {
        return fail(format!("{template:?}: {var} is not set (looked in {looked}), so {} would be empty", v.key));
    }
    let vars = referenced(template);
    let how = match r.defaulted.first() {
        Some((var, default)) => format!("{origin}; {var} is not set, so the default {default:?} is used"),
        None if !vars.is_empty() => format!("{origin}; the value of {} from {looked}", vars.join(", ")),
        None => origin.to_string(),
    };
    secret_finding(&v.key, &r.value, min, &how).filter_status(Status::Fail)
}

/// The variables a compose value interpolates (`${NAME…}`, `$NAME`; `$$` is no variable).
fn referenced(template: &str) -> Vec<String> {
    let b = template.as_bytes();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        if b.get(i + 1) == Some(&b'$') {
            i += 2;
            continue;
        }
        let start = i + 1 + usize::from(b.get(i + 1) == Some(&b'{'));
        let len = b[start..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
        if len > 0 {
            let name = template[start..start + len].to_string();
            if !out.contains(&name) {
                out.push(name);
            }
        }
        i = start + len.max(1);
    }
    out
}

trait FilterStatus: Sized {
    fn filter_status(self, status: Status) -> Option<Self>;
}

impl FilterStatus for Finding {
    fn filter_status(self, status: Status) -> Option<Finding> {
        (self.status == status).then_some(self)
    }
}

/// Compose services whose secrets resolve to nothing usable (see `compose_secret`), and
/// services that give one key different literal values. `lookup` and `looked` as there.
pub fn compose(path: &str, env: &[EnvVar], lookup: &dyn Fn(&str) -> Option<String>, looked: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut literals: BTreeMap<&str, Vec<(&str, &str, usize)>> = BTreeMap::new();
    for v in env {
        if let Source::Literal(value) = &v.source {
            literals.entry(&v.key).or_default().push((&v.service, value, v.pos.line));
        }
    }
    for spec in names::DEFAULT_SECRETS {
        // Each place a value is written once, whichever services reach it.
        let mut seen: Vec<crate::envfile::Pos> = Vec::new();
        for v in env.iter().filter(|v| v.key == spec.name) {
            if seen.contains(&v.pos) {
                continue;
            }
            seen.push(v.pos);
            let origin = format!("{path}:{}, service {}", v.pos.line, v.service);
            out.extend(compose_secret(v, spec.bytes, &origin, lookup, looked));
        }
    }
    out.extend(compose_rollovers(path, env, lookup));
    for (key, uses) in &literals {
        let first = uses[0].1;
        if let Some((service, _, line)) = uses.iter().find(|u| u.1 != first) {
            out.push(Finding::new(
                format!("{key} consistent"),
                Status::Fail,
                format!("services {} and {service} ({path}:{line}) set different literal values", uses[0].0),
            ));
        }
    }
    if out.is_empty() {
        out.push(Finding::new(format!("compose {path}"), Status::Pass, {
            let n = env.iter().map(|v| &v.service).collect::<std::collections::BTreeSet<_>>().len();
            if n == 1 {
                "1 service's environment agrees".to_string()
            } else {
                format!("{n} services' environments agree")
            }
        }));
    }
    out
}

/// The rollover rules (`rollover`) for each service's environment as compose would
/// resolve it: a `JWT_SECRET_PREVIOUS: changeme` in a compose file is as weak as in a
/// `.env` (review of issue 14).
fn compose_rollovers(path: &str, env: &[EnvVar], lookup: &dyn Fn(&str) -> Option<String>) -> Vec<Finding> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let relevant = |k: &str| {
        names::SERVICE_VARS.contains(&k)
            || names::DEFAULT_SECRETS
                .iter()
                .any(|d| k == d.name || k == names::previous_of(d.name) || k == names::previous_until_of(d.name))
    };
    let mut services: BTreeMap<&str, BTreeMap<String, Setting>> = BTreeMap::new();
    for v in env.iter().filter(|v| relevant(&v.key)) {
        let value = match &v.source {
            Source::Literal(t) | Source::Interpolated(t) => {
                crate::interpolate::resolve(t, lookup).ok().map(|r| r.value)
            }
            Source::PassThrough => lookup(&v.key),
            Source::NotScalar { .. } => None,
        };
        if let Some(value) = value {
            let origin = format!("{path}:{}, service {}", v.pos.line, v.service);
            services.entry(&v.service).or_default().insert(v.key.clone(), Setting { value, origin });
        }
    }
    let mut out: Vec<Finding> = Vec::new();
    let mut push = |f: Finding| {
        if !out.contains(&f) {
            out.push(f);
        }
    };
    for values in services.values() {
        let has_rollover = values.keys().any(|k| k.ends_with("_PREVIOUS") || k.ends_with("_PREVIOUS_UNTIL"));
        if has_rollover {
            rollover(values, now).into_iter().filter(|f| f.status != Status::Pass).for_each(&mut push);
        }
        // The service's other settings, by the validator `serve` runs (its secrets and
        // expiries are judged above): a service that sets JWT_SECRET is aspjwt's.
        if values.contains_key(names::JWT_SECRET)
            && let Err(problems) = crate::config::ServiceConfig::from_settings(
                &crate::config::Settings { values: values.clone(), source: path.to_string() },
                None,
            )
        {
            for p in problems {
                let Some((item, detail)) = p.split_once(": ") else { continue };
                let judged_above = names::DEFAULT_SECRETS.iter().any(|d| item.starts_with(d.name))
                    || item.starts_with("JWT_ACCESS_TOKEN_EXPIRY")
                    || item.starts_with("JWT_REFRESH_TOKEN_EXPIRY")
                    || item == "expiry order"
                    || item == "secrets distinct"
                    || item == names::ASPJWT_DB
                    // Paths inside the container: this machine cannot read them.
                    || item == names::ASPJWT_TLS_CERT
                    || item == names::ASPJWT_TLS_KEY;
                if !judged_above && names::SERVICE_VARS.contains(&item) {
                    push(Finding::new(item, Status::Fail, format!("{detail} (aspjwt serve refuses this)")));
                }
            }
        }
    }
    out
}

/// The service's TLS certificate and key (`ASPJWT_TLS_CERT`, `ASPJWT_TLS_KEY`): both or
/// neither, readable, matching, in date (a warning within 14 days of the end). The
/// identity is returned when it can be served: `serve` and a reload use these very rules.
pub fn tls(
    settings: &BTreeMap<String, Setting>,
    now: i64,
    in_service: Option<&crate::tls::Identity>,
) -> (Vec<Finding>, Option<crate::tls::Identity>) {
    use crate::tls::Freshness;
    let set = |name| settings.get(name).filter(|s| !s.value.trim().is_empty());
    let (cert, key) = match (set(names::ASPJWT_TLS_CERT), set(names::ASPJWT_TLS_KEY)) {
        (None, None) => return (Vec::new(), None),
        (Some(c), Some(k)) => (c, k),
        (Some(c), None) => {
            return (vec![one_of_the_pair(names::ASPJWT_TLS_KEY, names::ASPJWT_TLS_CERT, &c.origin)], None);
        }
        (None, Some(k)) => {
            return (vec![one_of_the_pair(names::ASPJWT_TLS_CERT, names::ASPJWT_TLS_KEY, &k.origin)], None);
        }
    };
    let (cert_path, key_path) = (std::path::Path::new(cert.value.trim()), std::path::Path::new(key.value.trim()));
    let identity = match crate::tls::load(cert_path, key_path) {
        Ok(id) => id,
        Err(e) => return (vec![Finding::new(e.setting(), Status::Fail, e.detail())], None),
    };
    let (position, limit, freshness) = identity.limit(now);
    let which = if position == 1 {
        format!("{}:", cert_path.display())
    } else {
        format!("{}: certificate {position} of the chain ({})", cert_path.display(), limit.subject)
    };
    // The pair in service, unchanged, stays in service whatever its dates: refusing it
    // would refuse the reload that rotates the secrets.
    let serving = in_service.is_some_and(|s| s.same_chain(&identity));
    let (status, detail) = match freshness {
        Freshness::NotYetValid if !serving => {
            let from = crate::token::Time::new(limit.not_before, now).rfc3339.unwrap_or_default();
            (Status::Fail, format!("{which} not valid before {from}; clients refuse it until then"))
        }
        Freshness::Expired if !serving => {
            (Status::Fail, format!("{which} {}; clients refuse it", limit.expiry_text(now)))
        }
        Freshness::NotYetValid | Freshness::Expired => (
            Status::Warn,
            format!("{which} {}; still the certificate in service: renew it, then send SIGHUP", limit.expiry_text(now)),
        ),
        Freshness::EndingSoon => {
            (Status::Warn, format!("{which} {}: renew it, then send SIGHUP", limit.expiry_text(now)))
        }
        Freshness::Valid => {
            let ends = if position == 1 { String::new() } else { format!(" (certificate {position} of the chain)") };
            (
                Status::Pass,
                format!("{}: {}, {}{ends}", cert_path.display(), identity.leaf.subject, limit.expiry_text(now)),
            )
        }
    };
    let mut out = vec![Finding::new(names::ASPJWT_TLS_CERT, status, detail)];
    if let Ok(meta) = std::fs::metadata(key_path)
        && std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o004 != 0
    {
        out.push(Finding::new(
            names::ASPJWT_TLS_KEY,
            Status::Warn,
            format!(
                "{}: readable by every user of this machine; chmod 600 (or 640 for the service's group)",
                key_path.display()
            ),
        ));
    }
    (out, (status != Status::Fail).then_some(identity))
}

fn one_of_the_pair(missing: &str, given: &str, origin: &str) -> Finding {
    Finding::new(
        missing,
        Status::Fail,
        format!("not set, while {given} is ({origin}): set both for HTTPS, or neither for plain HTTP"),
    )
}

/// The secrets an `env_file:` of a compose service holds, judged as a `.env`'s are
/// (those it holds; the others may come from elsewhere), with their rollovers.
pub fn env_file_secrets(settings: &BTreeMap<String, Setting>, now: i64) -> Vec<Finding> {
    let mut out: Vec<Finding> = names::DEFAULT_SECRETS
        .iter()
        .filter_map(|spec| settings.get(spec.name).map(|s| secret_finding(spec.name, &s.value, spec.bytes, &s.origin)))
        .collect();
    out.extend(rollover(settings, now));
    out
}

/// Parses an RFC 3339 time to epoch seconds.
pub fn parse_time(text: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339_weak(text.trim()).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64)
}

/// How long a previous secret can still matter: the lifetime of what it signed (access
/// tokens for JWT_SECRET; refresh tokens for JWT_REFRESH_SECRET; CSRF tokens, which
/// live as long as refresh tokens, for SESSION_SECRET). A rollover window may end at
/// most `ROLLOVER_SLACK` after that from now: beyond it the previous secret signs
/// nothing still valid, and only widens what a leaked one can forge.
pub fn signed_lifetime(settings: &BTreeMap<String, Setting>, secret: &str) -> Option<std::time::Duration> {
    let (key, default) = match secret {
        names::JWT_SECRET => (names::JWT_ACCESS_TOKEN_EXPIRY, names::DEFAULT_ACCESS_EXPIRY),
        names::JWT_REFRESH_SECRET | names::SESSION_SECRET => {
            (names::JWT_REFRESH_TOKEN_EXPIRY, names::DEFAULT_REFRESH_EXPIRY)
        }
        _ => return None,
    };
    match settings.get(key) {
        None => duration::parse(default).ok(),
        Some(s) => duration::parse(&s.value).ok(),
    }
}

/// A `*_PREVIOUS` or `*_PREVIOUS_UNTIL` entry, when it holds anything: a blank one (what
/// compose passes for an emptied literal, or spaces) is no entry. One rule for `check` and
/// the service alike.
pub fn rollover_entry<'a>(settings: &'a BTreeMap<String, Setting>, name: &str) -> Option<&'a Setting> {
    settings.get(name).filter(|v| !v.value.trim().is_empty())
}

/// See `signed_lifetime`.
pub const ROLLOVER_SLACK: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// Rollover pairs: `<KEY>_PREVIOUS` obeys every rule of a current secret (present, no
/// placeholder, long enough, different from every other secret, current or previous),
/// has a parseable `<KEY>_PREVIOUS_UNTIL`, and a window that ends no later than the
/// lifetime of what it signed plus `ROLLOVER_SLACK` from now. An ended window is a warning.
pub fn rollover(settings: &BTreeMap<String, Setting>, now: i64) -> Vec<Finding> {
    let mut out = Vec::new();
    // Every secret value, current and previous, by the name it is set under.
    let all: Vec<(String, &Setting)> = names::DEFAULT_SECRETS
        .iter()
        .flat_map(|s| [s.name.to_string(), names::previous_of(s.name)])
        .filter_map(|n| settings.get(&n).map(|v| (n, v)))
        .filter(|(_, v)| !v.value.is_empty())
        .collect();
    for spec in names::DEFAULT_SECRETS {
        let (prev_name, until_name) = (names::previous_of(spec.name), names::previous_until_of(spec.name));
        let item = format!("{} rollover", spec.name);
        let fail = |detail: String| Finding::new(item.clone(), Status::Fail, detail);
        match (rollover_entry(settings, &prev_name), rollover_entry(settings, &until_name)) {
            (None, None) => {}
            (Some(p), None) => out.push(fail(format!("{prev_name} has no {until_name} ({})", p.origin))),
            (None, Some(u)) => out.push(Finding::new(
                item,
                Status::Warn,
                format!("{until_name} without {prev_name} ({}); run `aspjwt rotate --finish`", u.origin),
            )),
            (Some(p), Some(u)) => {
                let until = parse_time(&u.value);
                let limit = signed_lifetime(settings, spec.name).map(|l| now + (l + ROLLOVER_SLACK).as_secs() as i64);
                let twin = all.iter().find(|(n, v)| *n != prev_name && v.value == p.value).map(|(n, _)| n);
                out.push(match (until, secrets::weakness(&p.value, spec.bytes)) {
                    (None, _) => fail(format!("{until_name} {:?} is not an RFC 3339 time ({})", u.value, u.origin)),
                    (_, Some(w)) => fail(format!("{prev_name}: {w} ({})", p.origin)),
                    _ if twin.is_some() => fail(format!(
                        "{prev_name} equals {}; each secret must be unique ({})",
                        twin.expect("checked"),
                        p.origin
                    )),
                    (Some(until), None) if until <= now => Finding::new(
                        item,
                        Status::Warn,
                        format!(
                            "the window ended {}; run `aspjwt rotate --finish` ({})",
                            crate::duration::relative(until, now),
                            u.origin
                        ),
                    ),
                    (Some(until), None) if limit.is_some_and(|l| until > l) => fail(format!(
                        "{until_name} {} is too late: what {} signed lives {}, so the window may end at most {} from now ({})",
                        u.value.trim(),
                        spec.name,
                        signed_lifetime(settings, spec.name).map(duration::human).unwrap_or_default(),
                        duration::human(signed_lifetime(settings, spec.name).unwrap_or_default() + ROLLOVER_SLACK),
                        u.origin
                    )),
                    (Some(until), None) => Finding::new(
                        item,
                        Status::Pass,
                        format!(
                            "the previous secret verifies until {} ({})",
                            u.value.trim(),
                            crate::duration::relative(until, now)
                        ),
                    ),
                });
            }
        }
    }
    out
}

/// Keys a .env file sets more than once (compose takes the last): one warning a key,
/// however often it repeats (a million repeats are one line, not a million).
pub fn duplicates(doc: &crate::envfile::EnvFile, shown: &str) -> Vec<Finding> {
    let mut lines: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for e in doc.entries() {
        lines.entry(&e.key).or_default().push(doc.pos_of(e.key_at).line);
    }
    lines
        .into_iter()
        .filter(|(_, at)| at.len() > 1)
        .map(|(key, at)| {
            let shown_lines = match at.as_slice() {
                [a, b] => format!("lines {a} and {b}"),
                [first, .., last] => format!("{} lines ({first} … {last})", at.len()),
                _ => unreachable!("two or more"),
            };
            Finding::new(
                format!("{key} unique"),
                Status::Warn,
                format!("{shown}: set on {shown_lines}; the last one wins"),
            )
        })
        .collect()
}

/// Backtick-quoted values: Node's dotenv (and aspjwt) read them; docker compose does not
/// (it keeps the backticks as part of the value, and refuses one that spans lines).
pub fn backticks(doc: &crate::envfile::EnvFile, shown: &str) -> Option<Finding> {
    let lines: Vec<String> = doc
        .entries()
        .iter()
        .filter(|e| e.value.as_ref().is_some_and(|v| v.quote == crate::envfile::Quote::Backtick))
        .map(|e| format!("{} (line {})", e.key, doc.pos_of(e.key_at).line))
        .collect();
    (!lines.is_empty()).then(|| {
        Finding::new(
            format!("{shown} backticks"),
            Status::Warn,
            format!(
                "{} backtick-quoted: Node's dotenv reads {}, docker compose does not (it keeps the backticks, and refuses a value that spans lines)",
                lines.join(", "),
                if lines.len() == 1 { "it" } else { "them" }
            ),
        )
    })
}

/// A secrets file must be readable by its owner only.
pub fn file_mode(shown: &str, mode: u32) -> Finding {
    let mode = mode & 0o777;
    if mode & 0o077 != 0 {
        Finding::new(
            format!("{shown} permissions"),
            Status::Warn,
            format!("mode {mode:04o}: readable by group or others; run chmod 600 {shown}"),
        )
    } else {
        Finding::new(format!("{shown} permissions"), Status::Pass, format!("mode {mode:04o}"))
    }
}

/// The verdict: exit status 1 on any failure, and on warnings when `strict`.
pub fn passed(findings: &[Finding], strict: bool) -> bool {
    findings.iter().all(|f| f.status == Status::Pass || (f.status == Status::Warn && !strict))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, Setting> {
        pairs.iter().map(|(k, v)| (k.to_string(), Setting { value: v.to_string(), origin: "test".into() })).collect()
    }

    fn statuses(f: &[Finding]) -> Vec<(String, Status)> {
        f.iter().map(|f| (f.item.clone(), f.status)).collect()
    }

    #[test]
    fn good_secrets_pass_and_equal_ones_fail() {
        let j = secrets::generate_os(64, secrets::Encoding::Base64);
        let r = secrets::generate_os(64, secrets::Encoding::Base64);
        let s = secrets::generate_os(32, secrets::Encoding::Base64);
        let ok = secrets(&settings(&[("JWT_SECRET", &j), ("JWT_REFRESH_SECRET", &r), ("SESSION_SECRET", &s)]));
        assert!(passed(&ok, true), "{ok:?}");
        let same = secrets(&settings(&[("JWT_SECRET", &j), ("JWT_REFRESH_SECRET", &j), ("SESSION_SECRET", &s)]));
        assert!(statuses(&same).contains(&("JWT_SECRET ≠ JWT_REFRESH_SECRET".into(), Status::Fail)));
        let missing = secrets(&settings(&[("JWT_SECRET", "changeme")]));
        assert_eq!(missing.iter().filter(|f| f.status == Status::Fail).count(), 3);
    }

    #[test]
    fn expiry_rules() {
        assert!(passed(&expiries(&settings(&[])), true));
        let bad = expiries(&settings(&[("JWT_ACCESS_TOKEN_EXPIRY", "7d"), ("JWT_REFRESH_TOKEN_EXPIRY", "15m")]));
        assert_eq!(bad.last().unwrap().status, Status::Fail);
        let unparsable = expiries(&settings(&[("JWT_ACCESS_TOKEN_EXPIRY", "soon")]));
        assert_eq!(unparsable[0].status, Status::Fail);
        assert_eq!(unparsable.len(), 2);
    }
}
