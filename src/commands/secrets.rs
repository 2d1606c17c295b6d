//! `generate` and `rotate`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::git_ignored;
use crate::cli::{Format, GenerateArgs, RotateArgs};
use crate::envfile;
use crate::error::Exit;
use crate::output::Out;
use crate::rotate::{self, Target};
use crate::{names, secrets};

fn encoding(url_safe: bool) -> secrets::Encoding {
    if url_safe { secrets::Encoding::Base64Url } else { secrets::Encoding::Base64 }
}

/// The default secrets named by `--only`, or all of them.
fn select_defaults(only: &[String]) -> Result<Vec<Target>> {
    if only.is_empty() {
        return Ok(names::DEFAULT_SECRETS.iter().map(|s| Target { name: s.name.into(), bytes: s.bytes }).collect());
    }
    only.iter()
        .map(|n| {
            names::default_secret(n.trim())
                .map(|s| Target { name: s.name.into(), bytes: s.bytes })
                .with_context(|| format!("--only: unknown secret {n:?}; known: JWT_SECRET, JWT_REFRESH_SECRET, SESSION_SECRET (use --key for others)"))
        })
        .collect()
}

pub fn generate(out: &Out, args: GenerateArgs) -> Result<Exit> {
    let targets = match &args.name {
        Some(name) => {
            if !envfile::is_plain_key(name) {
                bail!(
                    "--name: {name:?} is not a valid variable name (letters, digits and _, not starting with a digit)"
                );
            }
            vec![Target {
                name: name.clone(),
                bytes: args.bytes.map_or(names::DEFAULT_CUSTOM_SECRET_BYTES, usize::from),
            }]
        }
        None => select_defaults(&args.only)?,
    };
    let enc = encoding(args.url_safe);
    let values: Vec<(String, String)> =
        targets.iter().map(|t| (t.name.clone(), secrets::generate_os(t.bytes, enc))).collect();
    let format = if out.json { Format::Json } else { args.format };
    match format {
        Format::Env | Format::Shell => {
            let prefix = if format == Format::Shell { "export " } else { "" };
            let lines: Vec<String> = values.iter().map(|(k, v)| format!("{prefix}{k}={v}")).collect();
            out.line(lines.join("\n"))?; // one write
        }
        Format::Json => {
            let map: serde_json::Map<String, serde_json::Value> =
                values.into_iter().map(|(k, v)| (k, v.into())).collect();
            out.json_document(&map)?;
        }
        Format::Yaml => {
            let lines: Vec<String> = values.iter().map(|(k, v)| format!("  {k}: \"{v}\"")).collect();
            out.line(format!("environment:\n{}", lines.join("\n")))?;
        }
    }
    Ok(Exit::Ok)
}

/// How long each default secret's previous value stays valid: the lifetime of what it
/// signed (see `check::signed_lifetime`, configured in the first env file or the
/// defaults), or `--window` capped at that lifetime plus `check::ROLLOVER_SLACK` (a
/// longer window would only widen what a leaked previous secret can forge). Notes say
/// where a window was capped.
fn rollover_windows(
    env_files: &[PathBuf],
    window: Option<&str>,
) -> Result<(BTreeMap<String, std::time::Duration>, Vec<String>)> {
    let asked = window.map(|w| crate::duration::parse(w).map_err(|e| anyhow::anyhow!("--window: {e}"))).transpose()?;
    let settings = match env_files.first().filter(|p| p.is_file()) {
        Some(p) => crate::config::Settings::from_env_file(p)?,
        None => crate::config::Settings::default(),
    };
    let mut windows = BTreeMap::new();
    let mut notes = Vec::new();
    for spec in names::DEFAULT_SECRETS {
        let lifetime = crate::check::signed_lifetime(&settings.values, spec.name).ok_or_else(|| {
            anyhow::anyhow!("{}: the token lifetimes in the env file do not parse; see `aspjwt check`", spec.name)
        })?;
        let most = lifetime + crate::check::ROLLOVER_SLACK;
        let w = match asked {
            None => lifetime,
            Some(w) if w > most => {
                notes.push(format!(
                    "{}: the window is capped at {}: what it signed lives {}",
                    spec.name,
                    crate::duration::human(most),
                    crate::duration::human(lifetime)
                ));
                most
            }
            Some(w) => w,
        };
        windows.insert(spec.name.to_string(), w);
    }
    Ok((windows, notes))
}

/// Parses `--key NAME[:BYTES]`.
fn parse_key(spec: &str) -> Result<Target> {
    let (name, bytes) = match spec.split_once(':') {
        Some((n, b)) => {
            let bytes: usize = b
                .parse()
                .ok()
                .filter(|n| (16..=4096).contains(n))
                .with_context(|| format!("--key {spec}: BYTES must be a number from 16 to 4096"))?;
            (n, bytes)
        }
        None => (spec, names::DEFAULT_CUSTOM_SECRET_BYTES),
    };
    if !envfile::is_plain_key(name) {
        bail!("--key {spec}: {name:?} is not a valid variable name");
    }
    if let Some(known) = names::default_secret(name)
        && bytes < known.bytes
        && spec.contains(':')
    {
        bail!(
            "--key {spec}: {name} needs at least {} random bytes (check would fail a shorter one); nothing was written",
            known.bytes
        );
    }
    Ok(Target {
        name: name.into(),
        bytes: names::default_secret(name).map_or(bytes, |s| if spec.contains(':') { bytes } else { s.bytes }),
    })
}

#[derive(Serialize)]
struct RotateJson<'a> {
    dry_run: bool,
    files: Vec<&'a rotate::FileReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secrets: Option<&'a BTreeMap<String, String>>,
}

pub fn rotate(out: &Out, args: RotateArgs) -> Result<Exit> {
    // Defaults plus every --key; --only then narrows that set.
    let mut targets = select_defaults(&[])?;
    for spec in &args.keys {
        let t = parse_key(spec)?;
        targets.retain(|x| x.name != t.name);
        targets.push(t);
    }
    if !args.only.is_empty() {
        for name in &args.only {
            if !targets.iter().any(|t| t.name == name.trim()) {
                bail!(
                    "--only: unknown secret {name:?}; known: JWT_SECRET, JWT_REFRESH_SECRET, SESSION_SECRET and those given with --key"
                );
            }
        }
        targets.retain(|t| args.only.iter().any(|n| n.trim() == t.name));
    }
    let mut req = rotate::Request {
        env_files: args.env_files,
        compose_files: args.compose_files,
        create: args.create,
        mode: rotate::Mode::Plain,
    };
    if req.env_files.is_empty() && req.compose_files.is_empty() {
        req.env_files.push(PathBuf::from(".env"));
    }
    // Held from the first read to the last rename: a second run edits this one's result.
    let lock_timeout =
        crate::duration::parse(&args.lock_timeout).map_err(|e| anyhow::anyhow!("--lock-timeout: {e}"))?;
    let all: Vec<PathBuf> = req.env_files.iter().chain(&req.compose_files).cloned().collect();
    let _locks = rotate::lock(&all, lock_timeout)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    if args.finish {
        req.mode = rotate::Mode::Finish { now };
        targets.clear();
    } else if args.graceful {
        let (windows, notes) = rollover_windows(&req.env_files, args.window.as_deref())?;
        for n in notes {
            out.note(n);
        }
        req.mode = rotate::Mode::Graceful { windows, now };
    }
    let values = rotate::draw(&targets, encoding(args.url_safe));
    let mut plans = rotate::plan(&req, &values).map_err(|e| match e {
        rotate::RotateError::Missing { .. } => anyhow::anyhow!("{e} (pass --create to create it)"),
        e => e.into(),
    })?;

    if args.dry_run {
        if !out.json && !out.quiet {
            for p in plans.iter().filter(|p| p.changed()) {
                out.diff(&p.masked_old, &p.masked_new, &p.path.display().to_string())?;
            }
        }
    } else {
        let suffix = args.backup.then(|| {
            let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
            format!(".bak-{}", now.replace(['-', ':'], ""))
        });
        rotate::write(&mut plans, suffix.as_deref())?;
        for p in &plans {
            let Some(b) = &p.report.backup else { continue };
            if !out.json {
                out.note(format!(
                    "{}: the old file is kept in {b} (owner-only; delete it once the new secrets are live)",
                    p.report.path
                ));
            }
            if git_ignored(Path::new(b)) == Some(false) {
                out.warn(format!(
                    "backup {b} holds the old secrets and is not ignored by git; add `*.bak-*` to .gitignore"
                ));
            }
        }
    }

    let reports: Vec<&rotate::FileReport> = plans.iter().map(|p| &p.report).collect();
    if out.json {
        out.json(&RotateJson {
            dry_run: args.dry_run,
            files: reports.clone(),
            secrets: args.show_secrets.then_some(&values),
        })?;
    } else {
        if !out.quiet {
            let list = |v: &[String]| if v.is_empty() { "-".to_string() } else { v.join(", ") };
            let rows: Vec<Vec<String>> = reports
                .iter()
                .map(|r| {
                    let skipped: Vec<String> = r.skipped.iter().map(|s| format!("{} ({})", s.key, s.reason)).collect();
                    let path = if r.created { format!("{} (created)", r.path) } else { r.path.clone() };
                    vec![path, list(&r.rotated), list(&r.appended), list(&skipped)]
                })
                .collect();
            out.table(&["FILE", "ROTATED", "APPENDED", "SKIPPED"], &rows)?;
        }
        if args.show_secrets {
            for (k, v) in &values {
                out.line(format!("{k}={v}"))?;
            }
        }
    }
    for r in &reports {
        for w in &r.warnings {
            out.warn(format!("{}: {w}", r.path));
        }
        // A file just created holds nothing but what was appended: the table says so.
        for k in r.appended.iter().filter(|_| !r.created) {
            let what = if args.dry_run { "would be appended" } else { "has been appended" };
            out.note(format!("{}: {k} was missing and {what}", r.path));
        }
    }
    for r in &reports {
        for n in &r.notes {
            out.note(format!("{}: {n}", r.path));
        }
        if !r.removed.is_empty() {
            // Compose keys are emptied in place (the file's layout untouched), not deleted.
            let what = match (args.dry_run, r.kind == Some(rotate::Kind::Compose)) {
                (true, false) => "would remove",
                (false, false) => "removed",
                (true, true) => "would empty",
                (false, true) => "emptied",
            };
            out.note(format!(
                "{}: {what} {}: tokens signed with the previous secrets stop working at once",
                r.path,
                r.removed.join(", ")
            ));
        }
    }
    let changed = reports.iter().any(|r| !r.rotated.is_empty() || !r.appended.is_empty());
    // Only the signing secrets end sessions; a database password does not.
    let signing_changed = reports
        .iter()
        .flat_map(|r| r.rotated.iter().chain(&r.appended))
        .any(|k| crate::names::DEFAULT_SECRETS.iter().any(|d| d.name == k));
    if args.dry_run {
        out.note("dry run: nothing was written");
    } else if args.finish {
        if changed {
            out.note("ended rollover windows removed; send SIGHUP to the service (or restart it) to forget them");
        }
    } else if args.graceful && changed {
        out.note("routine rollover: send SIGHUP to the service (or restart it); tokens signed with the previous secrets keep working until their windows end; then run `aspjwt rotate --finish`");
    } else if changed && signing_changed {
        out.note("restart every service that reads these files (or send it SIGHUP); every session ends and every token signed with the old secrets stops working");
    } else if changed {
        out.note("restart every service that reads these files so that it uses the new values");
    }
    Ok(Exit::Ok)
}
