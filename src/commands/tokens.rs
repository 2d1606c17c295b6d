//! `decode`, `verify` and `mint`.

use std::io::IsTerminal;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow, bail};
use colored::Colorize;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::cli::{DecodeArgs, ExtraAlg, KeySource, MintArgs, TokenInput, TokenKind, VerifyArgs};
use crate::config::Settings;
use crate::error::Exit;
use crate::output::{self, Out};
use crate::token::{self, Check, Failure, Inspected, Kind, Secret, State, Subject, Summary};
use crate::{duration, names};

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn read_stdin(what: &str) -> Result<Vec<u8>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        bail!("no {what} given: pass it as an argument or pipe it on stdin");
    }
    crate::fsx::read_stdin().map_err(|e| anyhow!("stdin: {e}"))
}

/// The token text from the argument, `@FILE` or stdin (`-` or no argument).
fn token_text(input: &TokenInput) -> Result<String> {
    let raw = match input.token.as_deref() {
        None | Some("-") => read_stdin("token")?,
        Some(t) if t.starts_with('@') => {
            crate::fsx::read_path(std::path::Path::new(&t[1..])).map_err(|e| anyhow!(e))?
        }
        // A file name where a token belongs: say how to read a token from a file.
        Some(t) if t.matches('.').count() != 2 && std::path::Path::new(t).is_file() => {
            bail!("{t:?} is a file, not a token; to read the token from it, pass @{t}")
        }
        Some(t) => t.as_bytes().to_vec(),
    };
    Ok(token::extract(&raw, &input.cookie)?)
}

/// Parses a duration flag where 0 is allowed.
fn seconds(flag: &str, text: &str) -> Result<i64> {
    if text.trim() == "0" {
        return Ok(0);
    }
    Ok(duration::parse(text).map_err(|e| anyhow!("{flag}: {e}"))?.as_secs() as i64)
}

fn inspect(token: &str) -> Result<Inspected> {
    token::inspect(token).map_err(|e| anyhow!("not a JWT: {e}"))
}

fn kind_of(k: TokenKind) -> Kind {
    match k {
        TokenKind::Access => Kind::Access,
        TokenKind::Refresh => Kind::Refresh,
    }
}

/// The summary as label/value rows.
fn summary_rows(s: &Summary) -> Vec<(&'static str, String)> {
    // Values from the token: escaped, so a crafted claim cannot drive the terminal.
    let opt = |v: &Option<String>| v.as_deref().map_or_else(|| "-".into(), crate::audit::escape);
    let mut rows = vec![
        ("algorithm", opt(&s.algorithm)),
        ("kind", opt(&s.kind)),
        ("subject", opt(&s.subject)),
        ("email", opt(&s.email)),
        ("role", opt(&s.role)),
        ("session", opt(&s.session)),
        ("issued", s.issued_at.as_ref().map_or("-".into(), ToString::to_string)),
    ];
    if let Some(t) = &s.not_before {
        rows.push(("not before", t.to_string()));
    }
    rows.push(("expires", s.expires_at.as_ref().map_or("-".into(), ToString::to_string)));
    rows.push((
        "lifetime",
        s.lifetime_seconds.map_or("-".into(), |l| duration::compact(std::time::Duration::from_secs(l.max(0) as u64))),
    ));
    let state = match s.state {
        State::ValidLooking => s.state.to_string().green().to_string(),
        State::Expired => s.state.to_string().red().bold().to_string(),
        State::NotYetValid | State::NoExpiry => s.state.to_string().yellow().to_string(),
    };
    rows.push(("state", state));
    if s.should_refresh {
        rows.push(("refresh", "should refresh: it expires within the threshold".yellow().to_string()));
    }
    rows
}

/// The human summary, written in one piece: one write, not one per line (a short
/// command's time is mostly start-up and system calls).
fn print_token(out: &Out, t: &Inspected, s: &Summary, signature: String) -> Result<()> {
    let mut lines = vec![
        "Header".bold().to_string(),
        output::json_pretty(&Value::Object(t.header.clone())),
        "Claims".bold().to_string(),
        output::json_pretty(&Value::Object(t.claims.clone())),
        String::new(),
    ];
    let mut rows = summary_rows(s);
    rows.push(("signature", signature));
    lines.extend(output::fields(&rows));
    for w in &s.warnings {
        lines.push(format!("{} {}", "⚠".red().bold(), crate::audit::escape(w).red()));
    }
    out.line(lines.join("\n"))?;
    Ok(())
}

fn summary_json(t: &Inspected, s: &Summary) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("header".into(), Value::Object(t.header.clone()));
    m.insert("claims".into(), Value::Object(t.claims.clone()));
    if let Value::Object(fields) = serde_json::to_value(s).expect("summary serialises") {
        m.extend(fields);
    }
    m
}

pub fn decode(out: &Out, args: DecodeArgs) -> Result<Exit> {
    let token = token_text(&args.input)?;
    let threshold = seconds("--threshold", &args.threshold)?;
    let t = inspect(&token)?;
    let s = t.summary(now(), threshold);
    if out.json {
        let mut m = summary_json(&t, &s);
        m.insert("signature_verified".into(), false.into());
        out.json(&m)?;
    } else {
        print_token(out, &t, &s, "NOT verified: decode never checks it; use `aspjwt verify`".yellow().to_string())?;
    }
    Ok(Exit::Ok)
}

/// The secret to use for a token of `kind`, with a description of where it came from
/// and the settings (issuer, audience, lifetimes) that go with it when read from a file.
fn resolve_key(key: &KeySource, kind: Kind) -> Result<(Secret, String, Option<Settings>)> {
    if let Some(var) = &key.secret_env {
        let v = std::env::var(var).map_err(|_| anyhow!("--secret-env: environment variable {var} is not set"))?;
        if v.is_empty() {
            bail!("--secret-env: environment variable {var} is empty");
        }
        return Ok((Secret::new(v), format!("${var}"), None));
    }
    if let Some(path) = &key.secret_file {
        let v = crate::fsx::read_text(path).map_err(|e| anyhow!(e))?;
        let v = super::trim_newline(v);
        if v.is_empty() {
            bail!("{}: the secret file is empty", path.display());
        }
        return Ok((Secret::new(v), path.display().to_string(), None));
    }
    if key.secret_stdin {
        let raw = read_stdin("secret")?;
        let v = String::from_utf8(raw).map_err(|_| anyhow!("--secret-stdin: the secret is not valid UTF-8"))?;
        let v = super::trim_newline(v);
        if v.is_empty() {
            bail!("--secret-stdin: no secret on stdin");
        }
        return Ok((Secret::new(v), "stdin".into(), None));
    }
    let settings = match &key.env_file {
        Some(p) => Settings::from_env_file(p)?,
        None if std::path::Path::new(".env").is_file() => Settings::from_env_file(std::path::Path::new(".env"))?,
        None => Settings::from_process_env(),
    };
    let secret = settings.secret(kind)?;
    let origin = settings.get(kind.secret_var()).map_or_else(|| settings.source.clone(), |s| s.origin.clone());
    Ok((secret, format!("{} from {origin}", kind.secret_var()), Some(settings)))
}

pub fn verify(out: &Out, args: VerifyArgs) -> Result<Exit> {
    if args.key.secret_stdin && matches!(args.input.token.as_deref(), None | Some("-")) {
        bail!("--secret-stdin reads the secret from stdin, so give the token as an argument");
    }
    let token = token_text(&args.input)?;
    let threshold = seconds("--threshold", &args.threshold)?;
    let leeway = seconds("--leeway", &args.leeway)?;
    let t = inspect(&token)?;
    // The type picks the secret: --typ, else the token's own claim, else access.
    let claimed = t.claims.get(names::claim::TYP).and_then(Value::as_str).and_then(Kind::parse);
    let kind = args.typ.map(kind_of).or(claimed).unwrap_or(Kind::Access);
    let (secret, key_desc, settings) = resolve_key(&args.key, kind)?;
    let mut algorithms = vec![Algorithm::HS256];
    match args.alg {
        Some(ExtraAlg::Hs384) => algorithms.push(Algorithm::HS384),
        Some(ExtraAlg::Hs512) => algorithms.push(Algorithm::HS512),
        None => {}
    }
    let check = Check {
        algorithms,
        leeway,
        issuer: args.iss.clone().or_else(|| settings.as_ref().map(Settings::issuer)),
        audience: args.aud.clone().or_else(|| settings.as_ref().map(Settings::audience)),
        typ: args.typ.map(kind_of).or(settings.as_ref().map(|_| kind)),
    };
    let now = now();
    // A key `check` fails proves little: said, so "valid" is not taken at face value.
    if let Some(settings) = &settings {
        let name = kind.secret_var();
        let problems = crate::check::secrets(&settings.values)
            .into_iter()
            .chain(crate::check::rollover(&settings.values, now))
            .filter(|f| f.status == crate::check::Status::Fail && f.item.starts_with(name))
            .filter(|f| f.item == name || f.item == format!("{name} rollover"));
        for f in problems {
            let what = if f.item == name { "serve refuses it" } else { "its previous secret is not used" };
            out.warn(format!("{}: {} ({what})", f.item, f.detail));
        }
    }
    // With a .env file, a rollover's previous secret verifies too, inside its window.
    let ring = crate::token::KeyRing {
        current: secret,
        previous: settings.as_ref().and_then(|s| s.previous(kind.secret_var())),
    };
    let (failures, by_previous) = t.verify_ring_by(&ring, &check, now);
    // Say which secret verified it: a rollover's previous one is not the current one.
    let key_desc = match (&settings, by_previous) {
        (Some(s), true) => {
            let name = crate::names::previous_of(kind.secret_var());
            let origin = s.get(&name).map_or_else(|| s.source.clone(), |v| v.origin.clone());
            format!("{name} from {origin} (a rollover window still open)")
        }
        _ => key_desc,
    };
    let signature_ok = !failures
        .iter()
        .any(|f| matches!(f, Failure::BadSignature | Failure::AlgNone | Failure::WrongAlgorithm { .. }));
    let s = t.summary(now, threshold);
    if out.json {
        let mut m = summary_json(&t, &s);
        m.insert("signature_verified".into(), signature_ok.into());
        m.insert("key".into(), key_desc.clone().into());
        m.insert("valid".into(), failures.is_empty().into());
        m.insert(
            "failures".into(),
            failures.iter().map(|f| json!({"code": f.code(), "message": f.to_string()})).collect::<Vec<_>>().into(),
        );
        out.json(&m)?;
    } else if !out.quiet {
        let sig = if signature_ok {
            format!("{} with {key_desc}", "verified".green())
        } else {
            format!("{} with {key_desc}", "NOT verified".red().bold())
        };
        print_token(out, &t, &s, sig)?;
        out.line("")?;
        if failures.is_empty() {
            out.line(format!("{} {}", output::mark(crate::check::Status::Pass), "valid".green().bold()))?;
        }
        for f in &failures {
            out.line(format!("{} {}", output::mark(crate::check::Status::Fail), output::escape(&f.to_string())))?;
        }
    }
    if failures.is_empty() {
        return Ok(Exit::Ok);
    }
    let reasons: Vec<String> = failures.iter().map(ToString::to_string).collect();
    out.reason(format!("token rejected: {}", reasons.join("; ")));
    Ok(Exit::Failed)
}

pub fn mint(out: &Out, args: MintArgs) -> Result<Exit> {
    if !names::ROLES.contains(&args.role.as_str()) {
        bail!("--role: {:?} is not a role; roles are {}", args.role, names::ROLES.join(", "));
    }
    let kind = kind_of(args.typ);
    let (secret, _, settings) = resolve_key(&args.key, kind)?;
    let settings = settings.unwrap_or_else(Settings::from_process_env);
    let ttl = match &args.ttl {
        Some(t) => duration::parse(t).map_err(|e| anyhow!("--ttl: {e}"))?,
        None => settings.ttl(kind)?,
    };
    let cfg = token::TokenConfig {
        access_secret: secret.clone(),
        refresh_secret: secret.clone(),
        access_previous: None,
        refresh_previous: None,
        issuer: settings.issuer(),
        audience: settings.audience(),
        access_ttl: ttl,
        refresh_ttl: ttl,
    };
    let who =
        Subject { sub: args.sub, email: args.email, role: args.role, sid: args.sid.unwrap_or_else(token::random_id) };
    let mut claims = cfg.claims(kind, &who, now(), Some(ttl));
    let standard = [
        names::claim::SUB,
        names::claim::EMAIL,
        names::claim::ROLE,
        names::claim::TYP,
        names::claim::SID,
        names::claim::JTI,
        names::claim::IAT,
        names::claim::NBF,
        names::claim::EXP,
        names::claim::ISS,
        names::claim::AUD,
    ];
    for c in &args.claims {
        let (k, v) = c.split_once('=').ok_or_else(|| anyhow!("--claim {c}: expected KEY=VALUE"))?;
        if k.is_empty() || standard.contains(&k) {
            bail!("--claim {c}: {k:?} is set by mint itself; use the matching flag");
        }
        claims.extra.insert(k.to_string(), serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string())));
    }
    let token = token::sign(&claims, &secret);
    if out.json {
        out.json(&json!({"token": token, "claims": claims}))?;
    } else {
        out.line(&token)?;
    }
    Ok(Exit::Ok)
}
