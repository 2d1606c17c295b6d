//! `health`: reads the probe password and configuration, runs the checks, prints.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use colored::Colorize;
use serde_json::json;

use super::trim_newline;
use crate::check::Status;
use crate::cli::HealthArgs;
use crate::config::Settings;
use crate::error::Exit;
use crate::health::{self, Options, Outcome, Probe};
use crate::output::{self, Out};
use crate::{duration, names};

fn password(args: &HealthArgs) -> Result<Option<String>> {
    let pw = if let Some(var) = &args.password_env {
        Some(std::env::var(var).map_err(|_| anyhow!("--password-env: environment variable {var} is not set"))?)
    } else if let Some(path) = &args.password_file {
        Some(trim_newline(crate::fsx::read_text(path).map_err(|e| anyhow!(e))?))
    } else if args.password_stdin {
        if std::io::stdin().is_terminal() {
            bail!("--password-stdin: pipe the password in");
        }
        let line = crate::fsx::read_stdin_line(crate::password::MAX_BYTES + 2).map_err(|e| anyhow!(e))?;
        Some(trim_newline(line))
    } else {
        None
    };
    if args.email.is_some() && pw.as_deref().is_none_or(str::is_empty) {
        bail!(
            "--email needs the probe password from --password-env, --password-file or --password-stdin (never the command line)"
        );
    }
    Ok(pw)
}

fn options(args: &HealthArgs) -> Result<Options> {
    let url = args.url.trim_end_matches('/').to_string();
    if !(url.starts_with("http://") || url.starts_with("https://")) || reqwest::Url::parse(&url).is_err() {
        bail!("--url: {:?} is not an http:// or https:// URL", args.url);
    }
    let timeout = duration::parse(&args.timeout).map_err(|e| anyhow!("--timeout: {e}"))?;
    let settings = match &args.env_file {
        Some(p) => Some(Settings::from_env_file(p)?),
        None if std::env::var_os(names::JWT_SECRET).is_some() => Some(Settings::from_process_env()),
        None => None,
    };
    let cacert = match &args.cacert {
        Some(p) => {
            let pem = crate::fsx::read_path(p).map_err(|e| anyhow!(e))?;
            health::ca_certificates(&pem).map_err(|e| anyhow!("--cacert {}: {e}", p.display()))?;
            Some(pem)
        }
        None => None,
    };
    let probe = match (&args.email, password(args)?) {
        (Some(email), Some(password)) => Some(Probe { email: email.clone(), password }),
        _ => None,
    };
    Ok(Options { url, timeout, quick: args.quick, probe, settings, cacert })
}

fn healthy(outcomes: &[Outcome]) -> bool {
    !outcomes.is_empty() && outcomes.iter().all(|o| o.status != Status::Fail)
}

/// "850 µs" below a millisecond, "12 ms" above: a local check is never "0 ms". A check
/// that only reads an earlier answer (headers, clock) was not timed: "-".
fn took(micros: u64) -> String {
    match micros {
        0 => "-".into(),
        1..1000 => format!("{micros} µs"),
        _ => format!("{} ms", micros / 1000),
    }
}

/// "2 of 9 checks failed; first: NAME: DETAIL", or None when all pass.
fn failures(outcomes: &[Outcome]) -> Option<String> {
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.status == Status::Fail).collect();
    let first = failed.first()?;
    Some(format!(
        "{} of {} checks failed; first: {}: {}",
        failed.len(),
        outcomes.len(),
        output::escape(&first.name),
        output::escape(&first.detail)
    ))
}

fn verdict(outcomes: &[Outcome]) -> String {
    match failures(outcomes) {
        Some(f) => format!("{}: {f}", "unhealthy".red().bold()),
        None if outcomes.is_empty() => format!("{}: no checks ran", "unhealthy".red().bold()),
        None => format!(
            "{}: {} checks passed in {}",
            "healthy".green().bold(),
            outcomes.len(),
            took(outcomes.iter().map(|o| o.micros).sum())
        ),
    }
}

pub fn health(out: &Out, args: HealthArgs) -> Result<Exit> {
    let opts = options(&args)?;
    let interval = match &args.watch {
        Some(w) => Some(duration::parse(w).map_err(|e| anyhow!("--watch: {e}"))?),
        None => None,
    };
    let Some(interval) = interval else {
        let outcomes = health::run(&opts);
        if out.json {
            out.json(&json!({"ok": healthy(&outcomes), "url": opts.url, "checks": outcomes}))?;
        } else if !out.quiet {
            let w = outcomes.iter().map(|o| o.name.chars().count()).max().unwrap_or(0);
            let tw = outcomes.iter().map(|o| took(o.micros).chars().count()).max().unwrap_or(0);
            for o in &outcomes {
                out.line(format!(
                    "{} {:<w$}  {}  {}",
                    output::mark(o.status),
                    o.name,
                    format!("{:>tw$}", took(o.micros)).dimmed(),
                    output::escape(&o.detail)
                ))?;
            }
            out.line(verdict(&outcomes))?;
        } else if !healthy(&outcomes) {
            out.reason(format!("unhealthy: {}", failures(&outcomes).unwrap_or_else(|| "no checks ran".into())));
        }
        return Ok(if healthy(&outcomes) { Exit::Ok } else { Exit::Failed });
    };
    loop {
        let outcomes = health::run(&opts);
        let at = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        if out.json {
            let line = serde_json::to_string(
                &json!({"version": output::JSON_VERSION, "at": at.to_string(), "ok": healthy(&outcomes), "url": opts.url, "checks": outcomes}),
            )?;
            out.line(line)?;
        } else {
            out.line(format!("{at}  {}", verdict(&outcomes)))?;
        }
        std::thread::sleep(interval.max(Duration::from_millis(100)));
    }
}
