//! `check`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use anyhow::Result;
use colored::Colorize;
use serde_json::json;

use super::git_tracked;
use crate::check::{self, Finding, Status};
use crate::cli::CheckArgs;
use crate::compose::ComposeFile;
use crate::config::{self, Settings};
use crate::error::Exit;
use crate::output::{self, Out};
use crate::rotate;

/// Settings from .env files, later files winning, with file-level findings.
fn env_settings(files: &[PathBuf], findings: &mut Vec<Finding>) -> Result<Settings> {
    let mut settings = Settings::default();
    for path in files {
        let doc = config::read_env_doc(path)?;
        let shown = path.display().to_string();
        findings.extend(check::duplicates(&doc, &shown));
        findings.extend(check::backticks(&doc, &shown));
        findings.push(check::file_mode(&shown, fs::metadata(path)?.permissions().mode()));
        if git_tracked(path) {
            findings.push(Finding::new(
                format!("{shown} untracked"),
                Status::Warn,
                "tracked by git: its secrets are in the repository history; remove it with `git rm --cached` and rotate",
            ));
        }
        settings.merge(Settings::from_doc(&doc, &shown)?);
    }
    Ok(settings)
}

pub fn check(out: &Out, args: CheckArgs) -> Result<Exit> {
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
        Some(Settings::from_process_env())
    } else if env_files.is_empty() {
        None
    } else {
        Some(env_settings(&env_files, &mut findings)?)
    };
    if let Some(settings) = &settings {
        findings.extend(check::secrets(&settings.values));
        findings.extend(check::expiries(&settings.values));
        findings.extend(check::database(&settings.values));
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        findings.extend(check::rollover(&settings.values, now));
        findings.extend(check::tls(&settings.values, now, None).0);
        // Everything else `serve` would refuse, by the very validator it uses: check and
        // serve cannot disagree on a setting (ASPJWT_BODY_TIMEOUT=abc, TRUSTED_PROXIES=foo…).
        if let Err(problems) = config::ServiceConfig::from_settings(settings, None) {
            let said: Vec<String> = findings.iter().map(|f| format!("{}: {}", f.item, f.detail)).collect();
            for p in problems.into_iter().filter(|p| !said.contains(p)) {
                let (item, detail) = p.split_once(": ").unwrap_or(("service setting", p.as_str()));
                if !findings.iter().any(|f| f.status == Status::Fail && f.item == item) {
                    findings.push(Finding::new(item, Status::Fail, format!("{detail} (aspjwt serve refuses this)")));
                }
            }
        }
    }
    for path in &args.compose_files {
        let bytes = crate::fsx::read_path(path).map_err(|e| anyhow::anyhow!(e))?;
        let doc = ComposeFile::parse(&bytes)
            .map_err(|e| anyhow::anyhow!(rotate::located(&path.display().to_string(), &e)))?;
        let outline = crate::compose::outline(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        // Interpolation as compose resolves it: the process environment, then the env
        // files, then the compose file's folder's .env.
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        let folder_env = dir.join(".env");
        let folder = if folder_env.is_file() && !env_files.iter().any(|f| crate::fsx::same_file(f, &folder_env)) {
            Some(Settings::from_env_file(&folder_env)?)
        } else {
            None
        };
        let mut looked = vec!["the environment".to_string()];
        looked.extend(env_files.iter().map(|f| f.display().to_string()));
        looked.extend(folder.as_ref().map(|_| folder_env.display().to_string()));
        if !folder_env.is_file() {
            looked.push(format!("{} (no such file)", folder_env.display()));
        }
        let lookup = |name: &str| {
            std::env::var(name)
                .ok()
                .or_else(|| settings.as_ref().and_then(|s| s.get(name)).map(|s| s.value.clone()))
                .or_else(|| folder.as_ref().and_then(|s| s.get(name)).map(|s| s.value.clone()))
        };
        let looked = match looked.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
            _ => looked.join(""),
        };
        findings.extend(check::compose(&path.display().to_string(), &doc.environment(), &lookup, &looked));
        // Files the services read with `env_file:` (relative to the compose file's folder).
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let mut seen_files: Vec<std::path::PathBuf> = Vec::new();
        for (service, file) in outline.env_files {
            let p = dir.join(&file);
            if seen_files.contains(&p) || env_files.iter().any(|f| crate::fsx::same_file(f, &p)) {
                continue;
            }
            seen_files.push(p.clone());
            if !p.exists() {
                findings.push(Finding::new(
                    format!("env_file {file}"),
                    Status::Fail,
                    format!(
                        "service {service} reads {}, which is not there (compose refuses to start it)",
                        p.display()
                    ),
                ));
                continue;
            }
            let s = Settings::from_env_file(&p)?;
            findings.extend(check::env_file_secrets(&s.values, now));
        }
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
    } else if !ok {
        let failing = |f: &&check::Finding| f.status == Status::Fail || (args.strict && f.status == Status::Warn);
        for f in findings.iter().filter(failing) {
            out.reason(format!("check failed: {}: {}", f.item, f.detail));
        }
    }
    Ok(if ok { Exit::Ok } else { Exit::Failed })
}
