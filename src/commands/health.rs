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
use crate::health::{self, Options, Outcome, Probe, Report};
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

/// "850 µs" below a millisecond, "12 ms" above: a local check is never "0 ms". A check
/// that only reads an earlier answer (headers, clock) was not timed: "-".
fn took(micros: u64) -> String {
    match micros {
        0 => "-".into(),
        1..1000 => format!("{micros} µs"),
        _ => format!("{} ms", micros / 1000),
    }
}

/// "2 of 9 checks failed; first: NAME: DETAIL" (warnings count under --strict), or None
/// when the report is healthy.
fn failures(report: &Report, strict: bool) -> Option<String> {
    if report.checks.is_empty() {
        return Some("no checks ran".into());
    }
    let counts = |o: &&Outcome| o.status == Status::Fail || (strict && o.status == Status::Warn);
    let failed: Vec<&Outcome> = report.checks.iter().filter(counts).collect();
    let first = failed.first()?;
    let what = if strict && failed.iter().any(|o| o.status == Status::Warn) {
        "failed or warned (--strict)"
    } else {
        "failed"
    };
    Some(format!(
        "{} of {} checks {what}; first: {}: {}",
        failed.len(),
        report.checks.len(),
        output::escape(&first.name),
        output::escape(&first.detail)
    ))
}

fn verdict(report: &Report, strict: bool) -> String {
    let backend = report.backend.as_deref().map(|b| format!(" ({})", output::escape(b))).unwrap_or_default();
    if let Some(f) = failures(report, strict) {
        return format!("{}{backend}: {f}", "unhealthy".red().bold());
    }
    let warned = report.checks.iter().filter(|o| o.status == Status::Warn).count();
    let passed = report.checks.len() - warned;
    let warnings = match warned {
        0 => String::new(),
        1 => format!(", {}", "1 warning".yellow()),
        n => format!(", {}", format!("{n} warnings").yellow()),
    };
    format!(
        "{}{backend}: {passed} checks passed{warnings} in {}",
        "healthy".green().bold(),
        took(report.checks.iter().map(|o| o.micros).sum())
    )
}

fn document(report: &Report, url: &str, strict: bool) -> serde_json::Value {
    json!({
        "ok": report.healthy(strict),
        "strict": strict,
        "url": url,
        "backend": report.backend,
        "warnings": report.checks.iter().filter(|o| o.status == Status::Warn).count(),
        "checks": report.checks,
    })
}

pub fn health(out: &Out, args: HealthArgs) -> Result<Exit> {
    let opts = options(&args)?;
    let strict = args.strict;
    let interval = match &args.watch {
        Some(w) => Some(duration::parse(w).map_err(|e| anyhow!("--watch: {e}"))?),
        None => None,
    };
    let Some(interval) = interval else {
        let report = health::run(&opts);
        let healthy = report.healthy(strict);
        if out.json {
            out.json(&document(&report, &opts.url, strict))?;
        } else if !out.quiet {
            let w = report.checks.iter().map(|o| o.name.chars().count()).max().unwrap_or(0);
            let tw = report.checks.iter().map(|o| took(o.micros).chars().count()).max().unwrap_or(0);
            for o in &report.checks {
                out.line(format!(
                    "{} {:<w$}  {}  {}",
                    output::mark(o.status),
                    o.name,
                    format!("{:>tw$}", took(o.micros)).dimmed(),
                    output::escape(&o.detail)
                ))?;
            }
            out.line(verdict(&report, strict))?;
        } else if !healthy {
            out.reason(format!("unhealthy: {}", failures(&report, strict).unwrap_or_default()));
        }
        return Ok(if healthy { Exit::Ok } else { Exit::Failed });
    };
    loop {
        let report = health::run(&opts);
        let at = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        if out.json {
            let mut doc = document(&report, &opts.url, strict);
            doc["version"] = output::JSON_VERSION.into();
            doc["at"] = at.to_string().into();
            out.line(serde_json::to_string(&doc)?)?;
        } else if !out.quiet {
            out.line(format!("{at}  {}", verdict(&report, strict)))?;
        } else if let Some(why) = failures(&report, strict) {
            // -q: a healthy run says nothing; an unhealthy one only why.
            out.reason(format!("{at}  unhealthy: {why}"));
        }
        std::thread::sleep(interval.max(Duration::from_millis(100)));
    }
}
