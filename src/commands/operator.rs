//! `user`, `sessions` and `audit`: the operator commands. They work on the database
//! directly, with or without the service running (SQLite's locking and the
//! service's revocation feed keep both views consistent).

use std::io::IsTerminal;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow, bail};
use colored::Colorize;
use serde_json::json;

use crate::audit::{Event, escape};
use crate::cli::{AuditArgs, DbArgs, SessionsArgs, SessionsCommand, UserArgs, UserCommand};
use crate::config::{self, Settings};
use crate::duration;
use crate::error::Exit;
use crate::output::Out;
use crate::store::{AuditQuery, Store, User};
use crate::users::{self, Actor};

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Opens the database the service uses: --db, ASPJWT_DB (environment, then .env), default.
pub(crate) fn open(db: &DbArgs) -> Result<Box<dyn Store>> {
    let target = target(db)?;
    crate::store::open(&target).map_err(|e| anyhow!("{target}: {e}"))
}

/// Opens an existing database; a SQLite file that is not there is refused rather than
/// created (a typo must not answer "nothing to do").
pub(crate) fn open_existing(db: &DbArgs) -> Result<(Box<dyn Store>, crate::store::Target)> {
    let target = target(db)?;
    Ok((existing(&target)?, target))
}

/// Opens `target` only if it is an aspjwt database already (see `store::open_existing`).
pub(crate) fn existing(target: &crate::store::Target) -> Result<Box<dyn Store>> {
    match crate::store::open_existing(target) {
        Ok(s) => Ok(s),
        Err(crate::store::StoreError::NoDatabase) if !target.is_postgres() => {
            bail!("{target}: no such database file (give --db, or ASPJWT_DB in the environment or .env)")
        }
        Err(e) => bail!("{target}: {e}"),
    }
}

/// The database target: --db, ASPJWT_DB (environment, then .env), default.
pub(crate) fn target(db: &DbArgs) -> Result<crate::store::Target> {
    let settings = match &db.env_file {
        Some(p) => {
            let mut s = Settings::from_env_file(p)?;
            s.merge(Settings::from_process_env());
            s
        }
        None if std::path::Path::new(".env").is_file() => {
            let mut s = Settings::from_env_file(std::path::Path::new(".env")).unwrap_or_default();
            s.merge(Settings::from_process_env());
            s
        }
        None => Settings::from_process_env(),
    };
    config::db_target(db.db.as_deref(), &settings).map_err(|e| anyhow!("{e}"))
}

fn read_password() -> Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        bail!("--password-stdin: pipe the password in (it is never read from the command line)");
    }
    let line = crate::fsx::read_stdin_line(crate::password::MAX_BYTES + 2).map_err(|e| anyhow!(e))?;
    let pw = super::trim_newline(line);
    users::check_password(&pw)?;
    Ok(pw)
}

fn when(epoch: i64) -> String {
    duration::relative(epoch, now())
}

pub fn user(out: &Out, args: UserArgs) -> Result<Exit> {
    // Only adding the first user may create the database: every other command on a
    // mistyped path must say so, not answer from an empty database it just made.
    // An import opens its database itself: a dry run never creates one.
    if let UserCommand::Import { file, format, role_map, dry_run, on_conflict, skip_invalid } = args.command {
        return import(out, &args.db, ImportOpts { file, format, role_map, dry_run, on_conflict, skip_invalid });
    }
    let store =
        if matches!(args.command, UserCommand::Add { .. }) { open(&args.db)? } else { open_existing(&args.db)?.0 };
    let actor = Actor::cli();
    match args.command {
        UserCommand::Add { email, name, role, password_stdin } => {
            let pw = if password_stdin { Some(read_password()?) } else { None };
            let (user, generated) = users::create(&*store, &email, &name, &role, pw, &actor, now())?;
            if out.json {
                let mut j = users::public(&user);
                if let Some(pw) = &generated {
                    j["password"] = pw.clone().into();
                }
                out.json(&j)?;
            } else {
                out.line(format!("created {} ({}, {})", user.email, user.role, user.id))?;
                if let Some(pw) = generated {
                    out.line(format!("password: {pw}"))?;
                    out.note("the password is shown once; hand it over securely");
                }
            }
        }
        UserCommand::List => {
            let list = store.list_users()?;
            if out.json {
                out.json(&json!({"users": list.iter().map(users::public).collect::<Vec<_>>()}))?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|u| {
                        let status =
                            if u.disabled { "disabled".red().to_string() } else { "active".green().to_string() };
                        let hash = match crate::password::Scheme::of(&u.password_hash) {
                            Some(s) if s.is_legacy() => format!("{} (legacy)", s.name()).yellow().to_string(),
                            Some(s) => s.name().to_string(),
                            None => "unknown".red().to_string(),
                        };
                        vec![
                            escape(&u.email),
                            escape(&u.name),
                            u.role.clone(),
                            status,
                            hash,
                            when(u.created_at),
                            u.id.clone(),
                        ]
                    })
                    .collect();
                out.table(&["EMAIL", "NAME", "ROLE", "STATUS", "HASH", "CREATED", "ID"], &rows)?;
                let legacy = list
                    .iter()
                    .filter(|u| {
                        crate::password::Scheme::of(&u.password_hash).is_some_and(crate::password::Scheme::is_legacy)
                    })
                    .count();
                if legacy > 0 {
                    out.note(format!(
                        "{legacy} user(s) still have a bcrypt hash from the old backend; each becomes argon2id at its next login"
                    ));
                }
            }
        }
        UserCommand::Disable { email } => {
            let (user, n) = users::set_disabled(&*store, &email, true, &actor, now())?;
            report(out, &user, &format!("disabled {}; {n} session(s) ended", user.email))?;
        }
        UserCommand::Enable { email } => {
            let (user, _) = users::set_disabled(&*store, &email, false, &actor, now())?;
            report(out, &user, &format!("enabled {}", user.email))?;
        }
        UserCommand::Passwd { email, .. } => {
            let pw = read_password()?;
            let (user, n) = users::set_password(&*store, &email, &pw, &actor, now())?;
            report(out, &user, &format!("password changed for {}; {n} session(s) ended", user.email))?;
        }
        UserCommand::Role { email, role } => {
            let (user, n) = users::set_role(&*store, &email, &role, &actor, now())?;
            report(out, &user, &format!("{} is now {}; {n} session(s) ended", user.email, user.role))?;
        }
        UserCommand::Import { .. } => {} // returned above
    }
    Ok(Exit::Ok)
}

/// `user import`'s arguments.
struct ImportOpts {
    file: String,
    format: Option<crate::cli::ImportFormat>,
    role_map: Option<String>,
    dry_run: bool,
    on_conflict: crate::cli::ImportConflict,
    skip_invalid: bool,
}

/// `user import`: reads and judges every row first; any refused row stops it (exit 2,
/// nothing written) unless --skip-invalid; then one transaction.
fn import(out: &Out, db: &DbArgs, o: ImportOpts) -> Result<Exit> {
    use crate::import::{self, Format};
    use crate::password::Scheme;
    use crate::store::{Imported, OnConflict};
    let bytes = if o.file == "-" {
        crate::fsx::read_stdin().map_err(|e| anyhow!("stdin: {e}"))?
    } else {
        crate::fsx::read_path(std::path::Path::new(&o.file)).map_err(|e| anyhow!(e))?
    };
    let text = String::from_utf8(bytes).map_err(|_| anyhow!("{}: not UTF-8 text", o.file))?;
    let format = match o.format {
        Some(crate::cli::ImportFormat::Json) => Format::Json,
        Some(crate::cli::ImportFormat::Csv) => Format::Csv,
        None => Format::detect(&o.file, &text),
    };
    let roles = match &o.role_map {
        Some(spec) => import::role_map(spec).map_err(|e| anyhow!(e))?,
        None => Vec::new(),
    };
    let parsed = import::parse(&text, format, &roles).map_err(|e| anyhow!("{}:{e}", o.file))?;
    for name in &parsed.ignored {
        out.note(format!("{}: column {name:?} is not imported", o.file));
    }
    if !parsed.refused.is_empty() && !o.skip_invalid {
        for r in &parsed.refused {
            out.reason(format!("{}:{}: {}", o.file, r.line, escape(&r.reason)));
        }
        bail!(
            "{} row(s) refused; nothing imported (fix them, or --skip-invalid to import the rest)",
            parsed.refused.len()
        );
    }
    let on_conflict = match o.on_conflict {
        crate::cli::ImportConflict::Skip => OnConflict::Skip,
        crate::cli::ImportConflict::Update => OnConflict::Update,
        crate::cli::ImportConflict::Fail => OnConflict::Fail,
    };
    let target = target(db)?;
    // Another program's SQLite file (the CRM's own, say) is never made an aspjwt database.
    if crate::store::foreign_sqlite(&target) {
        bail!("{target}: a file that is not an aspjwt database; give --db a new or an aspjwt database");
    }
    // The import itself, rolled back for a dry run: the dry run meets every rule the
    // import would. A dry run on a database that does not exist yet creates every row.
    let store = if o.dry_run {
        match crate::store::open_existing(&target) {
            Ok(s) => Some(s),
            Err(crate::store::StoreError::NoDatabase) => None,
            Err(e) => bail!("{target}: {e}"),
        }
    } else {
        Some(crate::store::open(&target).map_err(|e| anyhow!("{target}: {e}"))?)
    };
    let (outcomes, ended): (Vec<(Imported, Option<Scheme>)>, usize) = match store {
        None => (parsed.rows.iter().map(|r| (Imported::Created, Some(r.scheme()))).collect(), 0),
        Some(store) => {
            // A store refusal names the row it is about.
            let line_of = |found: &dyn Fn(&crate::import::Row) -> bool| {
                parsed.rows.iter().find(|r| found(r)).map_or(0, |r| r.line)
            };
            let (done, ended) = users::import(&*store, &parsed.rows, on_conflict, &Actor::cli(), now(), o.dry_run)
                .map_err(|e| match e {
                    users::UserError::Store(crate::store::StoreError::DuplicateEmail(email)) => {
                        let line = line_of(&|r| r.user.email == email);
                        anyhow!(
                            "{}:{line}: {email} already exists (--on-conflict skip or update); nothing imported",
                            o.file
                        )
                    }
                    users::UserError::Store(crate::store::StoreError::DuplicateId(id)) => {
                        let line = line_of(&|r| r.user.id.as_deref() == Some(id.as_str()));
                        anyhow!("{}:{line}: id {id:?} already belongs to another user; nothing imported", o.file)
                    }
                    users::UserError::Store(crate::store::StoreError::LastAdmin(email)) => {
                        let line = line_of(&|r| r.user.email == email);
                        anyhow!("{}:{line}: {email} is the last enabled admin; nothing imported", o.file)
                    }
                    e @ users::UserError::Invalid(_) => anyhow!("{e}"),
                    e => anyhow!("{e}; nothing imported"),
                })?;
            (done.into_iter().map(|(what, _, user)| (what, Scheme::of(&user.password_hash))).collect(), ended)
        }
    };
    let count = |w: Imported| outcomes.iter().filter(|(o, _)| *o == w).count();
    let (created, updated, skipped) = (count(Imported::Created), count(Imported::Updated), count(Imported::Skipped));
    let legacy = outcomes.iter().filter(|(o, s)| *o != Imported::Skipped && s.is_some_and(Scheme::is_legacy)).count();
    let name = |s: &Option<Scheme>| s.map_or("unknown", Scheme::name);
    if out.json {
        let rows: Vec<_> = parsed
            .rows
            .iter()
            .zip(&outcomes)
            .map(|(r, (what, s))| json!({"line": r.line, "email": r.user.email, "outcome": what, "password_scheme": name(s)}))
            .collect();
        out.json(&json!({
            "dry_run": o.dry_run, "database": target.to_string(),
            "created": created, "updated": updated, "skipped": skipped, "sessions_ended": ended,
            "refused": parsed.refused, "users": rows,
        }))?;
    } else {
        for r in &parsed.refused {
            out.warn(format!("{}:{}: refused: {}", o.file, r.line, r.reason));
        }
        let verb = if o.dry_run { "would import" } else { "imported" };
        out.line(format!(
            "{verb} into {target}: {created} created, {updated} updated, {skipped} skipped, {} refused{}",
            parsed.refused.len(),
            if o.dry_run { " (dry run: nothing written)" } else { "" }
        ))?;
        if ended > 0 {
            out.note(format!("{ended} session(s) of updated users ended"));
        }
        if legacy > 0 {
            out.note(format!(
                "{legacy} user(s) keep their bcrypt hash until their next login, which upgrades it to argon2id"
            ));
        }
    }
    Ok(Exit::Ok)
}

fn report(out: &Out, user: &User, text: &str) -> Result<()> {
    if out.json {
        out.json(&users::public(user))?;
    } else if !out.quiet {
        out.line(text)?;
    }
    Ok(())
}

pub fn sessions(out: &Out, args: SessionsArgs) -> Result<Exit> {
    let store = open_existing(&args.db)?.0;
    let user_id = |email: &str| -> Result<String> {
        store.user_by_email(email)?.map(|u| u.id).ok_or_else(|| anyhow!("no user with email {:?}", escape(email)))
    };
    match args.command {
        SessionsCommand::List { user, all } => {
            let uid = user.as_deref().map(user_id).transpose()?;
            let now = now();
            let list = store.list_sessions(uid.as_deref(), all, now)?;
            if out.json {
                let rows: Vec<_> = list
                    .iter()
                    .map(|s| {
                        json!({
                            "id": s.id, "user_id": s.user_id, "email": s.email, "role": s.role,
                            "created_at": s.created_at, "last_seen_at": s.last_seen_at,
                            "refresh_expires_at": s.current.refresh_exp, "expires_at": s.expires_at,
                            "rotations": s.rotations, "revoked_at": s.revoked_at, "revoke_reason": s.revoke_reason,
                            "ip": s.ip, "user_agent": s.user_agent,
                        })
                    })
                    .collect();
                out.json(&json!({"sessions": rows}))?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|s| {
                        let state = match (&s.revoked_at, &s.revoke_reason) {
                            (Some(_), reason) => {
                                format!("revoked ({})", reason.as_deref().unwrap_or("-")).red().to_string()
                            }
                            _ if s.current.refresh_exp <= now || s.expires_at <= now => "expired".yellow().to_string(),
                            _ => "live".green().to_string(),
                        };
                        vec![
                            s.id.clone(),
                            escape(&s.email),
                            s.role.clone(),
                            when(s.created_at),
                            when(s.last_seen_at),
                            s.rotations.to_string(),
                            escape(s.ip.as_deref().unwrap_or("-")),
                            state,
                        ]
                    })
                    .collect();
                out.table(&["SESSION", "USER", "ROLE", "CREATED", "LAST SEEN", "ROTATIONS", "IP", "STATE"], &rows)?;
            }
        }
        SessionsCommand::Revoke { all, user, id } => {
            let now = now();
            let (n, scope) = match (all, user, id) {
                (true, _, _) => (store.revoke_all_sessions("revoked_by_operator", now)?.len(), "all users".to_string()),
                (_, Some(email), _) => {
                    (store.revoke_user_sessions(&user_id(&email)?, "revoked_by_operator", now)?, escape(&email))
                }
                (_, _, Some(id)) => (
                    store.revoke_session(&id, "revoked_by_operator", now)? as usize,
                    format!("session {}", escape(&id)),
                ),
                _ => bail!("say which sessions: --all, --user EMAIL or --id SESSION"),
            };
            let mut r = Actor::cli().record(Event::SessionRevoked, None, now);
            r.reason = Some(format!("operator revoked {n} session(s): {scope}"));
            store.audit(&r)?;
            if out.json {
                out.json(&json!({"revoked": n}))?;
            } else if !out.quiet {
                out.line(format!("revoked {n} session(s) ({scope}); their access tokens stop within 2 s"))?;
            }
        }
    }
    Ok(Exit::Ok)
}

pub fn audit(out: &Out, args: AuditArgs) -> Result<Exit> {
    let store = open_existing(&args.db)?.0;
    if let Some(e) = &args.event
        && Event::parse(e).is_none()
    {
        let known: Vec<&str> = Event::ALL.iter().map(|e| e.as_str()).collect();
        bail!("--event: unknown event {e:?}; events are {}", known.join(", "));
    }
    let since_ms = match &args.since {
        Some(s) => Some((now() - duration::parse(s).map_err(|e| anyhow!("--since: {e}"))?.as_secs() as i64) * 1000),
        None => None,
    };
    let records = store.audit_query(&AuditQuery {
        since_ms,
        event: args.event.clone(),
        user: args.user.clone(),
        limit: args.limit,
    })?;
    if out.json {
        // Each row also carries `at`, the RFC 3339 time every other command shows.
        let rows: Vec<serde_json::Value> = records
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                if let serde_json::Value::Object(m) = &mut v {
                    let at = crate::token::Time::new(r.at_ms / 1000, r.at_ms / 1000).rfc3339.unwrap_or_default();
                    m.insert("at".into(), at.into());
                }
                v
            })
            .collect();
        out.json(&json!({"events": rows}))?;
        return Ok(Exit::Ok);
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let time = crate::token::Time::new(r.at_ms / 1000, r.at_ms / 1000).rfc3339.unwrap_or_default();
            let outcome =
                if r.outcome == "success" { r.outcome.green().to_string() } else { r.outcome.red().to_string() };
            let opt = |v: &Option<String>| escape(v.as_deref().unwrap_or("-"));
            vec![
                format!("{time} ({})", when(r.at_ms / 1000)),
                r.event.clone(),
                outcome,
                opt(&r.email),
                opt(&r.ip),
                opt(&r.reason),
            ]
        })
        .collect();
    out.table(&["TIME", "EVENT", "OUTCOME", "EMAIL", "IP", "REASON"], &rows)?;
    // A full page may not be everything: say so, or a reviewer reads 100 rows as all of them.
    if records.len() as u64 >= args.limit as u64 {
        out.note(format!(
            "showing the newest {}; there may be more (--limit N, or narrow with --since/--event/--user)",
            records.len()
        ));
    }
    Ok(Exit::Ok)
}
