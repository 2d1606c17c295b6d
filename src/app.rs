//! Turns parsed arguments into calls on the domain modules and prints the result.
//! No rules live here: those are in secrets, envfile, compose, rotate and check.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use anyhow::{Context, Result, bail};
use clap::CommandFactory;
use colored::Colorize;
use serde::Serialize;
use serde_json::json;

use crate::check::{self, Finding, Setting, Status};
use crate::cli::{CheckArgs, Cli, Command, Format, GenerateArgs, RotateArgs};
use crate::compose::ComposeFile;
use crate::envfile::{self, EnvFile};
use crate::error::Exit;
use crate::output::{self, Out};
use crate::rotate::{self, Target};
use crate::{names, secrets};

pub fn run(cli: Cli) -> Result<Exit> {
    let out = Out::new(cli.json, cli.quiet, cli.color);
    match cli.command {
        Command::Generate(args) => generate(&out, args),
        Command::Rotate(args) => rotate(&out, args),
        Command::Check(args) => check(&out, args),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "aspjwt", &mut std::io::stdout().lock());
            Ok(Exit::Ok)
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout().lock())?;
            Ok(Exit::Ok)
        }
    }
}

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

fn generate(out: &Out, args: GenerateArgs) -> Result<Exit> {
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
            for (k, v) in &values {
                out.line(format!("{prefix}{k}={v}"))?;
            }
        }
        Format::Json => {
            let map: serde_json::Map<String, serde_json::Value> =
                values.into_iter().map(|(k, v)| (k, v.into())).collect();
            out.json(&map)?;
        }
        Format::Yaml => {
            out.line("environment:")?;
            for (k, v) in &values {
                out.line(format!("  {k}: \"{v}\""))?;
            }
        }
    }
    Ok(Exit::Ok)
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

fn rotate(out: &Out, args: RotateArgs) -> Result<Exit> {
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
    let mut req = rotate::Request { env_files: args.env_files, compose_files: args.compose_files, create: args.create };
    if req.env_files.is_empty() && req.compose_files.is_empty() {
        req.env_files.push(PathBuf::from(".env"));
    }
    let values = rotate::draw(&targets, encoding(args.url_safe));
    let mut plans = rotate::plan(&req, &values)?;

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
            if let Some(b) = &p.report.backup
                && git_ignored(Path::new(b)) == Some(false)
            {
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
        for k in &r.appended {
            let what = if args.dry_run { "would be appended" } else { "has been appended" };
            out.note(format!("{}: {k} was missing and {what}", r.path));
        }
    }
    if args.dry_run {
        out.note("dry run: nothing was written");
    } else if reports.iter().any(|r| !r.rotated.is_empty() || !r.appended.is_empty()) {
        out.note("restart every service that reads these files; all sessions and tokens signed with the old secrets stop working");
    }
    Ok(Exit::Ok)
}

/// `Some(true)` when git ignores `path`, `Some(false)` when it does not, `None` outside a work tree.
fn git_ignored(path: &Path) -> Option<bool> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let status = Process::new("git")
        .arg("-C")
        .arg(dir)
        .args(["check-ignore", "-q", "--"])
        .arg(path.file_name()?)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    match status.code() {
        Some(0) => Some(true),
        Some(1) => Some(false),
        _ => None,
    }
}

/// `true` when git tracks `path`; `false` outside a work tree or without git.
fn git_tracked(path: &Path) -> bool {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Some(name) = path.file_name() else { return false };
    Process::new("git")
        .arg("-C")
        .arg(dir)
        .args(["ls-files", "--error-unmatch", "--"])
        .arg(name)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Reads and parses a .env file, naming the file in any error.
pub fn read_env_file(path: &Path) -> Result<EnvFile> {
    let bytes =
        fs::read(path).map_err(|e| anyhow::anyhow!("{}: cannot read: {}", path.display(), rotate::plain_io(&e)))?;
    EnvFile::parse(&bytes).map_err(|e| anyhow::anyhow!(rotate::located(&path.display().to_string(), &e)))
}

/// Settings from .env files, later files winning, with file-level findings.
fn env_settings(files: &[PathBuf], findings: &mut Vec<Finding>) -> Result<BTreeMap<String, Setting>> {
    let mut settings = BTreeMap::new();
    for path in files {
        let doc = read_env_file(path)?;
        let shown = path.display().to_string();
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for e in doc.entries() {
            let line = doc.pos_of(e.key_at).line;
            if let Some(first) = seen.insert(&e.key, line) {
                findings.push(Finding::new(
                    format!("{} unique", e.key),
                    Status::Warn,
                    format!("{shown}: set on lines {first} and {line}; the last one wins"),
                ));
            }
            if let Some(v) = &e.value {
                settings.insert(e.key.clone(), Setting { value: v.text.clone(), origin: format!("{shown}:{line}") });
            }
        }
        let mode = fs::metadata(path)?.permissions().mode() & 0o777;
        findings.push(if mode & 0o077 != 0 {
            Finding::new(
                format!("{shown} permissions"),
                Status::Warn,
                format!("mode {mode:04o}: readable by group or others; run chmod 600 {shown}"),
            )
        } else {
            Finding::new(format!("{shown} permissions"), Status::Pass, format!("mode {mode:04o}"))
        });
        if git_tracked(path) {
            findings.push(Finding::new(format!("{shown} untracked"), Status::Warn, "tracked by git: its secrets are in the repository history; remove it with `git rm --cached` and rotate"));
        }
    }
    Ok(settings)
}

fn check(out: &Out, args: CheckArgs) -> Result<Exit> {
    let mut findings = Vec::new();
    let mut env_files = args.env_files.clone();
    if env_files.is_empty() {
        let dir = args.compose_files.first().and_then(|c| c.parent()).filter(|p| !p.as_os_str().is_empty());
        let implicit = dir.map_or_else(|| PathBuf::from(".env"), |d| d.join(".env"));
        if implicit.is_file() {
            env_files.push(implicit);
        }
    }
    let settings = if env_files.is_empty() && args.compose_files.is_empty() {
        let vars: BTreeMap<String, Setting> = std::env::vars()
            .filter(|(k, _)| k.starts_with("JWT_") || k == names::SESSION_SECRET)
            .map(|(k, v)| (k, Setting { value: v, origin: "environment".into() }))
            .collect();
        Some(vars)
    } else if env_files.is_empty() {
        None
    } else {
        Some(env_settings(&env_files, &mut findings)?)
    };
    if let Some(settings) = &settings {
        findings.extend(check::secrets(settings));
        findings.extend(check::expiries(settings));
    }
    for path in &args.compose_files {
        let bytes =
            fs::read(path).map_err(|e| anyhow::anyhow!("{}: cannot read: {}", path.display(), rotate::plain_io(&e)))?;
        let doc = ComposeFile::parse(&bytes)
            .map_err(|e| anyhow::anyhow!(rotate::located(&path.display().to_string(), &e)))?;
        findings.extend(check::compose(&path.display().to_string(), &doc.environment()));
    }
    let ok = check::passed(&findings, args.strict);
    if out.json {
        let count = |s| findings.iter().filter(|f| f.status == s).count();
        out.json(&json!({
            "ok": ok,
            "strict": args.strict,
            "checks": findings,
            "summary": {"pass": count(Status::Pass), "warn": count(Status::Warn), "fail": count(Status::Fail)},
        }))?;
    } else if !out.quiet {
        out.checklist(&findings)?;
        let verdict = if ok { "configuration OK".green().bold() } else { "configuration has problems".red().bold() };
        out.line(format!("{verdict}: {}", output::tally(&findings)))?;
    }
    Ok(if ok { Exit::Ok } else { Exit::Failed })
}
