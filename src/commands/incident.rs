//! `aspjwt incident`: the CRM playbook for a suspected token compromise as one
//! command. Everything is checked and planned before anything changes; then: 1. rotate
//! every secret (all files or none; if that fails nothing else happens), 2. end every
//! session, 3. record `incident_declared`, 4. SIGHUP the services and check that they
//! serve the new keys, 5. report who is affected and what looks suspicious.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow, bail};
use serde::Serialize;

use crate::audit::{Event, Record, escape};
use crate::check::{Finding, Status};
use crate::cli::IncidentArgs;
use crate::config::{self, Settings};
use crate::error::Exit;
use crate::incident::{self, Affected, Suspicious};
use crate::output::Out;
use crate::store::AuditQuery;
use crate::{names, rotate, secrets};

/// How long a service gets to show the new key ids after SIGHUP.
const RELOAD_WAIT: Duration = Duration::from_secs(10);
/// Entries of each suspicious-activity list the human report shows.
const SHOWN: usize = 10;
/// The longest `--since` (ten years).
const MAX_SINCE: Duration = Duration::from_secs(3650 * 86_400);
/// The revoke reason, in the sessions table and the feed.
const REASON: &str = "incident";

#[derive(Serialize)]
struct Step {
    step: &'static str,
    ok: bool,
    detail: String,
}

#[derive(Serialize)]
struct Report<'a> {
    version: u32,
    dry_run: bool,
    ok: bool,
    declared_by: &'a str,
    at: String,
    database: String,
    files: Vec<String>,
    new_key_ids: &'a BTreeMap<String, String>,
    steps: &'a [Step],
    affected_users: &'a [Affected],
    suspicious: &'a Suspicious,
}

/// Who runs this, for the audit log: the OS user and the host. The user is the real
/// uid's name (USER and LOGNAME are whatever the caller exported); sudo's SUDO_USER is
/// added, labelled as the environment's word, when the real user is root.
fn actor() -> String {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() }.to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2] == uid).then(|| f[0].to_string())
        })
        .unwrap_or(format!("uid {uid}"));
    let user = match std::env::var("SUDO_USER").ok().filter(|v| !v.is_empty()) {
        Some(sudo) if uid == "0" => format!("{name} (SUDO_USER={sudo})"),
        _ => name,
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".into());
    escape(&format!("{user}@{host}"))
}

/// The pid a pid file names, if that process is a running `aspjwt serve`: a stale pid
/// file must not send SIGHUP (which ends most programs) to whatever has the number now.
fn read_pid(path: &Path) -> Result<u32> {
    // A regular file of bounded size: /dev/zero or a FIFO must not hang or fill memory.
    let text = crate::fsx::read_text(path).map_err(|e| anyhow!("--pid-file {e}; nothing was changed"))?;
    let pid = text.trim().parse::<u32>().ok().filter(|p| *p >= 1).ok_or_else(|| {
        anyhow!("--pid-file {}: {:?} is not a process id; nothing was changed", path.display(), escape(text.trim()))
    })?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> =
        cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).filter(|a| !a.is_empty()).collect();
    let is_aspjwt = args.first().is_some_and(|a| Path::new(a).file_name().is_some_and(|n| n == "aspjwt"));
    if !is_aspjwt || !args.iter().any(|a| a == "serve") {
        let what = if args.is_empty() {
            "no running process".to_string()
        } else {
            format!("not `aspjwt serve` ({})", escape(&args.join(" ")))
        };
        bail!("--pid-file {}: pid {pid} is {what}; nothing was changed", path.display());
    }
    Ok(pid)
}

/// Whether the service at `url` shows `kids` within `RELOAD_WAIT`; what it shows last.
fn serves_new_keys(url: &str, kids: &BTreeMap<String, String>) -> (bool, String) {
    let client = match reqwest::blocking::Client::builder().timeout(Duration::from_secs(3)).build() {
        Ok(c) => c,
        Err(e) => return (false, e.to_string()),
    };
    let want =
        [("access", names::JWT_SECRET), ("refresh", names::JWT_REFRESH_SECRET), ("session", names::SESSION_SECRET)];
    let deadline = Instant::now() + RELOAD_WAIT;
    loop {
        let last = match health_document(&client, url) {
            Ok(j) => {
                let keys_new =
                    want.iter().all(|(k, name)| j["keys"][*k].as_str() == kids.get(*name).map(String::as_str));
                // An incident leaves no graceful window: a service that still lists one
                // still accepts a (possibly compromised) previous secret.
                let rollover = j["rollover"].as_array().filter(|r| !r.is_empty());
                match (keys_new, rollover) {
                    (true, None) => return (true, "serves the new key ids, no previous secret open".into()),
                    (true, Some(r)) => format!(
                        "serves the new key ids but still accepts previous secrets: {}",
                        serde_json::Value::from(r.clone())
                    ),
                    (false, _) => format!("still serves key ids {}", j["keys"]),
                }
            }
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return (false, format!("{last} (after waiting {}s)", RELOAD_WAIT.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The pid a process knows itself by: in a container (another PID namespace) that is
/// not the number it has here, and it records its own in its reload audit row. The
/// kernel lists both in `NSpid` (outermost first).
fn pid_as_seen_by(pid: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find_map(|l| l.strip_prefix("NSpid:"))?.to_string();
            line.split_whitespace().last()?.parse().ok()
        })
        .unwrap_or(pid)
}

/// Whether service `pid` recorded, after `since_ms`, a reload that serves `kids` with no
/// rollover window open; waits up to `RELOAD_WAIT` for its audit row.
fn reload_recorded(
    store: &dyn crate::store::Store,
    pid: u32,
    since_ms: i64,
    kids: &BTreeMap<String, String>,
) -> (bool, String) {
    let deadline = Instant::now() + RELOAD_WAIT;
    let tag = format!("pid {pid}; ");
    loop {
        for event in [Event::ConfigReloaded, Event::ConfigReloadRefused] {
            let rows = store
                .audit_query(&AuditQuery {
                    since_ms: Some(since_ms),
                    event: Some(event.as_str().into()),
                    user: None,
                    limit: 100,
                })
                .unwrap_or_default();
            let Some(reason) = rows.iter().find_map(|r| r.reason.as_deref()?.strip_prefix(&tag)) else { continue };
            if event == Event::ConfigReloadRefused {
                return (false, format!("SIGHUP sent; the service refused the new configuration: {reason}"));
            }
            let all_new = kids.values().all(|k| reason.contains(k.as_str()));
            // "pid N; keys {…}; rollover […]" and, over HTTPS, "; certificate …".
            let open = !reason.split("; ").any(|part| part == "rollover []");
            return match (all_new, open) {
                (true, false) => (true, "SIGHUP sent; reloaded with the new key ids (its audit record)".into()),
                (true, true) => {
                    (false, format!("SIGHUP sent; reloaded, but a previous secret is still open: {reason}"))
                }
                (false, _) => (
                    false,
                    format!(
                        "SIGHUP sent; reloaded, but not with these files' secrets (its environment or another file wins?): {reason}"
                    ),
                ),
            };
        }
        if Instant::now() >= deadline {
            return (
                false,
                format!(
                    "SIGHUP sent, but no reload was recorded within {}s (stopped, or on another database?)",
                    RELOAD_WAIT.as_secs()
                ),
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// GET /api/health as JSON, read as every check reads a body (bounded).
fn health_document(client: &reqwest::blocking::Client, url: &str) -> Result<serde_json::Value, String> {
    let resp = client
        .get(format!("{}/api/health", url.trim_end_matches('/')))
        .send()
        .map_err(|e| crate::health::describe(&e, Duration::from_secs(3)))?;
    crate::health::json_body(resp, Duration::from_secs(3)).map_err(|e| format!("/api/health {e}"))
}

fn confirm(out: &Out, what: &str) -> Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!(
            "stdin is not a terminal, so nothing can be confirmed: pass --yes to act, or --dry-run to look; nothing was changed"
        );
    }
    out.warn("this is the incident path: every user is logged out at once");
    eprint!("{what}\nType \"yes\" to go on: ");
    std::io::stderr().flush()?;
    let line = crate::fsx::read_stdin_line(64).map_err(|e| anyhow!(e))?;
    Ok(line.trim() == "yes")
}

pub fn incident(out: &Out, args: IncidentArgs) -> Result<Exit> {
    // 0. Everything checked and planned; nothing changed yet.
    let since = crate::duration::parse(&args.since)
        .ok()
        .filter(|d| *d <= MAX_SINCE)
        .ok_or_else(|| anyhow!("--since {:?}: give a duration up to 3650d, like 24h or 7d", args.since))?;
    let lock_timeout = crate::duration::parse(&args.lock_timeout).map_err(|e| anyhow!("--lock-timeout: {e}"))?;
    if let Some(r) = &args.report {
        let parent = r.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if r.is_dir() || !parent.is_dir() {
            bail!("--report {}: not a file in an existing folder; nothing was changed", r.display());
        }
        crate::fsx::check_output(r, |head| head.starts_with(incident::CSV_HEADER.as_bytes()), "an incident report")
            .map_err(|e| anyhow!("--report {e}; nothing was changed"))?;
        // The report is written as every file is (a temp file beside it, then a rename):
        // try exactly that now, so an unwritable folder or a dangling link stops the
        // incident before anything irreversible. The probe leaves nothing behind.
        if let Err(e) = crate::fsx::stage(r, b"", 0o600) {
            bail!("--report {}: cannot be written: {}; nothing was changed", r.display(), rotate::plain_io(&e));
        }
    }
    let mut env_files = args.env_files.clone();
    if env_files.is_empty() && args.compose_files.is_empty() {
        env_files.push(PathBuf::from(".env"));
    }
    let mut settings = Settings::default();
    for f in env_files.iter().filter(|f| f.is_file()) {
        settings.merge(Settings::from_env_file(f)?);
    }
    settings.merge(Settings::from_process_env());
    let target = config::db_target(args.db.as_deref(), &settings).map_err(|e| anyhow!("{e}"))?;
    let store = super::operator::existing(&target).map_err(|e| anyhow!("{e}; nothing was changed"))?;
    let pids: Vec<(PathBuf, u32)> =
        args.pid_files.iter().map(|p| read_pid(p).map(|pid| (p.clone(), pid))).collect::<Result<_>>()?;
    for u in &args.urls {
        let ok = reqwest::Url::parse(u).is_ok_and(|x| matches!(x.scheme(), "http" | "https") && x.host().is_some());
        if !ok {
            bail!("--url {u:?}: not an http:// or https:// URL; nothing was changed");
        }
    }
    let targets: Vec<rotate::Target> =
        names::DEFAULT_SECRETS.iter().map(|s| rotate::Target { name: s.name.into(), bytes: s.bytes }).collect();
    let values = rotate::draw(&targets, secrets::Encoding::Base64);
    let req = rotate::Request {
        env_files,
        compose_files: args.compose_files.clone(),
        create: false,
        mode: rotate::Mode::Plain,
    };
    // Held until the end: a second incident or rotate waits, then edits this one's result.
    let all_files: Vec<PathBuf> = req.env_files.iter().chain(&req.compose_files).cloned().collect();
    let _locks = rotate::lock(&all_files, lock_timeout)?;
    let mut plans = rotate::plan(&req, &values).map_err(|e| anyhow!("{e}; nothing was changed"))?;
    let files: Vec<String> = plans.iter().map(|p| p.path.display().to_string()).collect();
    // What rotate would warn about (a file others can read, literals outside services…).
    for p in &plans {
        for w in &p.report.warnings {
            out.warn(format!("{}: {w}", p.report.path));
        }
    }
    // Every secret must really be replaced somewhere: a compose file that takes them from
    // an .env it was not given would otherwise "rotate" nothing.
    let missing: Vec<String> = names::DEFAULT_SECRETS
        .iter()
        .filter(|s| !plans.iter().any(|p| p.report.rotated.iter().chain(&p.report.appended).any(|k| k == s.name)))
        .map(|s| {
            let why: Vec<String> = plans
                .iter()
                .flat_map(|p| {
                    p.report
                        .skipped
                        .iter()
                        .filter(|k| k.key == s.name)
                        .map(|k| format!("{}: {}", p.report.path, k.reason))
                })
                .collect();
            if why.is_empty() { s.name.to_string() } else { format!("{} ({})", s.name, why.join("; ")) }
        })
        .collect();
    if !missing.is_empty() {
        bail!(
            "no named file holds {}: name the .env the services read with --env-file; nothing was changed",
            missing.join(", ")
        );
    }
    // Every named file is accounted for: one that holds none of the secrets says so.
    let rotated_where: Vec<String> = plans
        .iter()
        .map(|p| {
            let keys: Vec<String> = p.report.rotated.iter().chain(&p.report.appended).cloned().collect();
            if keys.is_empty() {
                format!("{}: nothing to rotate (no service sets a secret there)", p.report.path)
            } else {
                format!("{}: {}", p.report.path, keys.join(", "))
            }
        })
        .collect();
    let kids: BTreeMap<String, String> =
        values.iter().map(|(k, v)| (k.clone(), crate::token::key_id(&crate::token::Secret::new(v.clone())))).collect();
    let clock = || {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        (now_ms, now_ms.div_euclid(1000))
    };
    let (now_ms, now) = clock();
    let since_ms = now_ms - since.as_millis() as i64;
    let audit = store.audit_query(&AuditQuery {
        since_ms: Some(since_ms - incident::SEEN_BEFORE_MS),
        limit: 0,
        ..Default::default()
    })?;
    let suspicious = incident::suspicious(&audit, since_ms);
    let users = store.list_users()?;
    let live = store.list_sessions(None, false, now)?;
    let who = actor();

    if !args.dry_run && !args.yes {
        let what = format!(
            "This rotates every secret in {}, ends all {} live session(s) and sends SIGHUP to {} service(s).",
            files.join(", "),
            live.len(),
            pids.len()
        );
        if !confirm(out, &what)? {
            bail!("not confirmed; nothing was changed");
        }
    }
    // The time of the incident is when it was confirmed, not when it was planned.
    let (now_ms, now) = clock();

    let mut steps: Vec<Step> = Vec::new();
    let affected;
    if args.dry_run {
        let all = store.list_sessions(None, true, now)?;
        affected = incident::affected(&live, &all, &users);
        steps.push(Step { step: "rotate", ok: true, detail: format!("would rotate {}", rotated_where.join("; ")) });
        steps.push(Step { step: "revoke", ok: true, detail: format!("would end {} live session(s)", live.len()) });
        steps.push(Step { step: "audit", ok: true, detail: "would record incident_declared".into() });
        for (file, pid) in &pids {
            steps.push(Step {
                step: "reload",
                ok: true,
                detail: format!("would send SIGHUP to pid {pid} ({})", file.display()),
            });
        }
        for u in &args.urls {
            steps.push(Step {
                step: "reload",
                ok: true,
                detail: format!("would check that {u} serves the new key ids with no previous secret open"),
            });
        }
        if let Some(r) = &args.report {
            steps.push(Step { step: "report", ok: true, detail: format!("would write {}", r.display()) });
        }
    } else {
        // Ctrl-C or a TERM waits until the secrets are rotated, the sessions ended and the
        // incident recorded: never new secrets with every old session still live.
        let held = crate::fsx::Held::new();
        // 1. Rotate: all files or none. If it fails, nothing else happens.
        rotate::write(&mut plans, None).map_err(|e| anyhow!("{e}; nothing else was done"))?;
        steps.push(Step {
            step: "rotate",
            ok: true,
            detail: format!(
                "rotated {}; previous secrets removed{}; new key ids {}",
                rotated_where.join("; "),
                // Compose keys are emptied in place, not deleted: an empty one verifies nothing.
                if plans.iter().any(|p| p.report.kind == Some(rotate::Kind::Compose) && !p.report.removed.is_empty()) {
                    " (emptied in compose files)"
                } else {
                    ""
                },
                kids_text(&kids)
            ),
        });
        // 2. End every session: exactly those this transaction ended are the affected.
        let ended = match store.revoke_all_sessions(REASON, now) {
            Ok(ids) => {
                let ids: std::collections::BTreeSet<String> = ids.into_iter().collect();
                steps.push(Step { step: "revoke", ok: true, detail: format!("{} live session(s) ended", ids.len()) });
                store
                    .list_sessions(None, true, now)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|s| ids.contains(&s.id))
                    .collect()
            }
            Err(e) => {
                steps.push(Step {
                    step: "revoke",
                    ok: false,
                    detail: format!("the {} live session(s) were NOT ended: {e}", live.len()),
                });
                live.clone() // still the users to notify, once the sessions are ended
            }
        };
        let all = store.list_sessions(None, true, now).unwrap_or_default();
        affected = incident::affected(&ended, &all, &users);
        // 3. Record it.
        let mut r = Record::new(Event::IncidentDeclared, true, now_ms);
        r.ip = Some("cli".into());
        r.user_agent = Some(format!("aspjwt-cli/{}", env!("CARGO_PKG_VERSION")));
        r.reason = Some(format!(
            "declared by {who}; files {}; new key ids {}; {} session(s) of {} user(s) ended",
            files.join(", "),
            kids_text(&kids),
            ended.len(),
            affected.len()
        ));
        steps.push(match store.audit(&r) {
            Ok(()) => Step { step: "audit", ok: true, detail: format!("incident_declared recorded (by {who})") },
            Err(e) => Step { step: "audit", ok: false, detail: format!("incident_declared NOT recorded: {e}") },
        });
        drop(held);
        // 4. Reload the services, and check the ones we can reach: each records its
        // reload (or refusal) with its pid in this database, so a signal delivered to a
        // service that read other files, or is stopped, is not taken for a reload.
        let signalled_ms = crate::server::now_ms();
        for (file, pid) in &pids {
            let sent = std::process::Command::new("kill")
                .args(["-HUP", &pid.to_string()])
                .stderr(std::process::Stdio::null())
                .status();
            steps.push(match sent {
                Ok(s) if s.success() => {
                    let (ok, detail) = reload_recorded(&*store, pid_as_seen_by(*pid), signalled_ms, &kids);
                    Step { step: "reload", ok, detail: format!("pid {pid} ({}): {detail}", file.display()) }
                }
                _ => Step {
                    step: "reload",
                    ok: false,
                    detail: format!("no process {pid} ({}) to signal", file.display()),
                },
            });
        }
        for u in &args.urls {
            let (ok, detail) = serves_new_keys(u, &kids);
            steps.push(Step { step: "reload", ok, detail: format!("{u}: {detail}") });
        }
        // 5. The affected users for a mail merge.
        if let Some(path) = &args.report {
            steps.push(match crate::fsx::write_private(path, incident::csv(&affected).as_bytes()) {
                Ok(()) => Step {
                    step: "report",
                    ok: true,
                    detail: format!("{} affected user(s) written to {} (mode 0600)", affected.len(), path.display()),
                },
                Err(e) => {
                    Step { step: "report", ok: false, detail: format!("{}: {}", path.display(), rotate::plain_io(&e)) }
                }
            });
        }
    }

    let ok = steps.iter().all(|s| s.ok);
    if out.json {
        out.json(&Report {
            version: 1,
            dry_run: args.dry_run,
            ok,
            declared_by: &who,
            at: crate::token::rfc3339(now).unwrap_or_default(),
            database: target.to_string(),
            files,
            new_key_ids: &kids,
            steps: &steps,
            affected_users: &affected,
            suspicious: &suspicious,
        })?;
    } else {
        print_report(out, &steps, &affected, &suspicious, args.dry_run, &who, &target.to_string())?;
    }
    Ok(if ok { Exit::Ok } else { Exit::Failed })
}

fn kids_text(kids: &BTreeMap<String, String>) -> String {
    names::DEFAULT_SECRETS
        .iter()
        .filter_map(|s| kids.get(s.name).map(|v| format!("{}={v}", s.name)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_report(
    out: &Out,
    steps: &[Step],
    affected: &[Affected],
    s: &Suspicious,
    dry_run: bool,
    who: &str,
    database: &str,
) -> Result<()> {
    let title = if dry_run { "dry run: nothing was changed" } else { "incident declared" };
    out.line(format!("{title} (by {who}, database {database})"))?;
    let findings: Vec<Finding> = steps
        .iter()
        .map(|st| Finding::new(st.step, if st.ok { Status::Pass } else { Status::Fail }, st.detail.clone()))
        .collect();
    out.checklist(&findings)?;
    out.line("")?;
    out.line(format!("Affected users ({}): notify them", affected.len()))?;
    if !affected.is_empty() {
        let rows: Vec<Vec<String>> = affected
            .iter()
            .map(|u| {
                vec![
                    escape(&u.email),
                    escape(&u.name),
                    u.role.clone(),
                    u.last_login.clone().unwrap_or_else(|| "-".into()),
                    u.sessions_ended.to_string(),
                ]
            })
            .collect();
        out.table(&["EMAIL", "NAME", "ROLE", "LAST LOGIN", "SESSIONS"], &rows)?;
    }
    out.line("")?;
    out.line(format!("Suspicious activity since {}: monitor it", s.since))?;
    let counts = |title: &str, v: &[incident::Count]| -> Result<()> {
        if v.is_empty() {
            out.line(format!("  {title}: none"))?;
        } else {
            let mut list: Vec<String> = v
                .iter()
                .take(SHOWN)
                .map(|c| format!("{} ({}{})", escape(&c.key), if c.at_least { "≥" } else { "" }, c.count))
                .collect();
            if v.len() > SHOWN {
                list.push(format!("and {} more (--json lists all)", v.len() - SHOWN));
            }
            out.line(format!("  {title}: {}", list.join(", ")))?;
            if v.iter().take(SHOWN).any(|c| c.at_least) {
                out.line("    (≥: includes rate-limited attempts, which the service audits at most 20 a second; /metrics counts them all)")?;
            }
        }
        Ok(())
    };
    counts("failed logins by address", &s.failed_logins_by_address)?;
    counts("failed logins by email", &s.failed_logins_by_email)?;
    let sightings = |title: &str, v: &[incident::Sighting]| -> Result<()> {
        out.line(format!("  {title}: {}", if v.is_empty() { "none".to_string() } else { v.len().to_string() }))?;
        for x in v.iter().take(SHOWN) {
            out.line(format!(
                "    {}  {}  {}",
                x.at,
                escape(x.email.as_deref().unwrap_or("-")),
                escape(x.ip.as_deref().unwrap_or("-"))
            ))?;
        }
        if v.len() > SHOWN {
            out.line(format!("    and {} more (--json lists all)", v.len() - SHOWN))?;
        }
        Ok(())
    };
    sightings("account locks", &s.account_locks)?;
    sightings("refresh-token reuse detections", &s.refresh_token_reuse)?;
    sightings("logins from addresses not seen in the 30 days before", &s.logins_from_new_addresses)?;
    Ok(())
}
