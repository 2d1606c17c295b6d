//! `backup` and `restore`: the database to one portable file and back (the format is
//! `crate::backup`; the consistency is each store's).

use std::io::{IsTerminal, Write};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;

use super::operator::{open, open_existing};
use crate::backup::{self, Counts};
use crate::cli::{BackupArgs, RestoreArgs};
use crate::error::Exit;
use crate::output::Out;
use crate::store::{StoreError, Target};

fn source(t: &Target) -> &'static str {
    if t.is_postgres() { "postgres" } else { "sqlite" }
}

fn summary(c: &Counts) -> String {
    format!(
        "{} user(s), {} session(s), {} audit event(s), {} account throttle(s)",
        c.users, c.sessions, c.audit_events, c.throttles
    )
}

pub fn backup(out: &Out, args: BackupArgs) -> Result<Exit> {
    // `--out -` streams to stdout (to encrypt or ship it), as `restore -` reads stdin.
    let to_stdout = args.out.as_os_str() == "-";
    if to_stdout && std::io::stdout().is_terminal() {
        bail!("--out -: stdout is a terminal; pipe it somewhere (the backup holds password hashes)");
    }
    // Checked before the database is opened: `--out data/aspjwt.db` must not replace it.
    if !to_stdout {
        crate::fsx::check_output(&args.out, backup::looks_like_backup, "an aspjwt backup")
            .map_err(|e| anyhow!("--out {e}"))?;
    }
    let (store, target) = open_existing(&args.db)?;
    let rows = store.export().map_err(|e| anyhow!("{target}: {e}"))?;
    let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let bytes = backup::encode(&rows, source(&target), &created);
    let counts = Counts::of(&rows);
    if to_stdout {
        // A reader that stops early (`| head`) leaves a partial backup: a failure, not the
        // quiet end a closed pipe is for other commands.
        let mut w = std::io::stdout().lock();
        w.write_all(&bytes)
            .and_then(|()| w.flush())
            .map_err(|e| anyhow!("stdout: the backup was not written whole ({e}); do not keep what was received"))?;
        out.note(format!("backed up {} from {target} to stdout", summary(&counts)));
        record_backup(out, &*store, "stdout", &counts);
        return Ok(Exit::Ok);
    }
    // A killed earlier backup's temp file holds password hashes: removed first.
    for stale in crate::fsx::remove_stale_temps(&args.out) {
        out.note(format!("removed {}, left by an interrupted backup", stale.display()));
    }
    // Password hashes and session ids: owner-only, whatever a file there had.
    crate::fsx::write_private(&args.out, &bytes)
        .with_context(|| format!("{}: cannot write the backup", args.out.display()))?;
    record_backup(out, &*store, &args.out.display().to_string(), &counts);
    if out.json {
        out.json(&json!({"version": 1, "file": args.out, "database": target.to_string(), "counts": counts, "bytes": bytes.len()}))?;
    } else if !out.quiet {
        out.line(format!("backed up {} from {target} to {} (mode 0600)", summary(&counts), args.out.display()))?;
    }
    Ok(Exit::Ok)
}

/// A copy of every password hash left the database: on the record. A database that takes
/// no writes (a read-only replica) still backs up, with a warning.
fn record_backup(out: &Out, store: &dyn crate::store::Store, to: &str, counts: &Counts) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let mut r = crate::users::Actor::cli().record(crate::audit::Event::BackupTaken, None, now);
    r.reason = Some(format!("to {to}: {}", summary(counts)));
    if let Err(e) = store.audit(&r) {
        out.warn(format!("the backup is written, but its audit record was not: {e}"));
    }
}

pub fn restore(out: &Out, args: RestoreArgs) -> Result<Exit> {
    let shown = args.file.display().to_string();
    // A regular file (a FIFO or /dev/zero is refused at once) or stdin, of at most
    // MAX_BACKUP_SIZE: the whole backup is checked in memory before anything is written.
    let bytes = if shown == "-" {
        crate::fsx::read_stdin_max(backup::MAX_BACKUP_SIZE).map_err(|e| anyhow!("stdin: {e}; nothing was restored"))?
    } else {
        crate::fsx::read_input_max(&args.file, backup::MAX_BACKUP_SIZE)
            .map_err(|e| anyhow!("{shown}: {e}; nothing was restored"))?
    };
    // Everything is checked before the database is even opened.
    let (header, rows) = backup::decode(&bytes).map_err(|e| anyhow!("{shown}: {e}; nothing was restored"))?;
    let target = super::operator::target(&args.db)?;
    // A new SQLite file is made for the restore; a failed restore takes it away again.
    let created = match &target {
        Target::Sqlite(p) if !p.exists() => Some(p.clone()),
        _ => None,
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let result = open(&args.db).and_then(|store| {
        let opts = crate::store::Import { replace: args.force, revoke_sessions: args.revoke_sessions, now };
        store.import(&rows, &opts).map(|()| store).map_err(|e| match e {
            e @ StoreError::NotEmpty(_) => anyhow!("{target}: {e}; nothing was restored"),
            e => anyhow!("{target}: {e}; nothing was restored (the transaction was rolled back)"),
        })
    });
    if let (Err(_), Some(p)) = (&result, &created) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
        }
    }
    let store = result?;
    // The restore itself goes on the record, after the rows it brought back.
    let mut r = crate::users::Actor::cli().record(crate::audit::Event::BackupRestored, None, now);
    r.reason = Some(format!(
        "from {shown} (a {} backup taken {}): {}{}{}",
        header.source,
        header.created_at,
        summary(&header.counts),
        if args.force { "; --force replaced what was there" } else { "" },
        if args.revoke_sessions { "; sessions restored revoked" } else { "" }
    ));
    if let Err(e) = store.audit(&r) {
        out.warn(format!("the restore is done, but its audit record was not written: {e}"));
    }
    if out.json {
        out.json(&json!({"version": 1, "file": shown, "database": target.to_string(), "source": header.source, "created_at": header.created_at, "counts": header.counts}))?;
    } else if !out.quiet {
        out.line(format!(
            "restored {} into {target} (backup of a {} database taken {})",
            summary(&header.counts),
            crate::audit::escape(&header.source),
            crate::audit::escape(&header.created_at)
        ))?;
        if args.revoke_sessions {
            out.note("every restored session is revoked: users log in again");
        } else {
            out.note("sessions the backup holds are live again, including any ended since it was taken (pass --revoke-sessions to restore them revoked)");
        }
        out.note("a service running on this database drops the sessions the restore ended within a second; restart it to forget everything else it remembers");
    }
    Ok(Exit::Ok)
}
