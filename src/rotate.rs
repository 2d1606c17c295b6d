//! `aspjwt rotate`: one fresh set of secrets written to every file named, all or
//! nothing. Planning is pure (file bytes in, new bytes and a report out); `execute`
//! reads, stages every file, and only then renames them into place.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::compose::ComposeFile;
use crate::envfile::{EnvFile, Quote};
use crate::fsx;
use crate::secrets;

/// A secret to rotate: its name and how many random bytes it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Env,
    Compose,
}

/// Why a rotation could not be planned or written. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("{}", located(path, err))]
    Env { path: String, err: crate::envfile::ParseError },
    #[error("{}", located(path, err))]
    Compose { path: String, err: crate::compose::ComposeError },
    #[error("{path}: {message}; nothing was written")]
    Verify { path: String, message: String },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    /// An env file that is not there: `rotate` offers `--create`, `incident` does not.
    #[error("{path}: no such file")]
    Missing { path: String },
}

/// `path:line:col: message` when the error has a position, else `path: message`.
pub fn located(path: &str, err: &impl std::fmt::Display) -> String {
    let text = err.to_string();
    let mut parts = text.splitn(3, ':');
    let is_num = |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if is_num(parts.next()) && is_num(parts.next()) { format!("{path}:{text}") } else { format!("{path}: {text}") }
}

fn io_err(path: &Path, what: &str, e: &io::Error) -> RotateError {
    RotateError::Io { path: path.display().to_string(), message: format!("{what}: {}", plain_io(e)) }
}

/// An io::Error without the "(os error N)" noise.
pub fn plain_io(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_lowercase(),
        None => s,
    }
}

/// What happened to one key in one file.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Skipped {
    pub key: String,
    pub reason: String,
}

/// Per-file summary.
#[derive(Debug, Clone, Serialize, Default)]
pub struct FileReport {
    pub path: String,
    pub kind: Option<Kind>,
    pub created: bool,
    pub rotated: Vec<String>,
    pub appended: Vec<String>,
    pub skipped: Vec<Skipped>,
    pub warnings: Vec<String>,
    /// What a graceful rotation keeps, and until when.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// `<KEY>_PREVIOUS` and `<KEY>_PREVIOUS_UNTIL` entries a plain rotation took out
    /// (emptied, in compose files): the rollover windows they held end at once.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
}

/// One file's planned change.
#[derive(Debug, Clone)]
pub struct FilePlan {
    pub path: PathBuf,
    pub old: Vec<u8>,
    pub new: Vec<u8>,
    /// Old and new text with every secret-looking value masked, for diffs.
    pub masked_old: String,
    pub masked_new: String,
    pub report: FileReport,
}

impl FilePlan {
    pub fn changed(&self) -> bool {
        self.old != self.new || self.report.created
    }
}

/// Replaces each byte range of `text` with the masked form of what it holds.
fn masked(text: &str, mut ranges: Vec<std::ops::Range<usize>>) -> String {
    ranges.sort_by_key(|r| r.start);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for r in ranges {
        if r.start < at || r.end > text.len() {
            continue;
        }
        out.push_str(&text[at..r.start]);
        out.push_str(&secrets::mask(&text[r.clone()]));
        at = r.end;
    }
    out.push_str(&text[at..]);
    out
}

fn env_value_ranges(f: &EnvFile) -> Vec<std::ops::Range<usize>> {
    f.entries()
        .iter()
        .filter_map(|e| e.value.as_ref())
        .map(|v| match v.quote {
            Quote::None => v.span.clone(),
            _ => v.span.start + 1..v.span.end - 1,
        })
        .collect()
}

/// How `rotate` treats the secrets it replaces.
#[derive(Debug, Clone, Default)]
pub enum Mode {
    /// The incident path: old secrets are gone at once.
    #[default]
    Plain,
    /// Routine rotation: each replaced secret stays as `<KEY>_PREVIOUS`, valid for
    /// verification until `<KEY>_PREVIOUS_UNTIL` (`now` + its window).
    Graceful { windows: BTreeMap<String, std::time::Duration>, now: i64 },
    /// Remove `*_PREVIOUS` entries whose window ended before `now`; draw nothing.
    Finish { now: i64 },
}

/// Plans the rotation of one .env file. `old` is `None` for a file to be created.
pub fn plan_env(path: &Path, old: Option<&[u8]>, values: &BTreeMap<String, String>) -> Result<FilePlan, RotateError> {
    plan_env_mode(path, old, values, &Mode::Plain)
}

fn rfc3339(epoch: i64) -> String {
    crate::token::Time::new(epoch, epoch).rfc3339.unwrap_or_default()
}

pub fn plan_env_mode(
    path: &Path,
    old: Option<&[u8]>,
    values: &BTreeMap<String, String>,
    mode: &Mode,
) -> Result<FilePlan, RotateError> {
    let name = path.display().to_string();
    let env_err = |err| RotateError::Env { path: name.clone(), err };
    let set_err = |e: crate::envfile::SetError| RotateError::Verify { path: name.clone(), message: e.to_string() };
    let before = match old {
        Some(b) => EnvFile::parse(b).map_err(env_err)?,
        None => EnvFile::empty(),
    };
    let mut doc = before.clone();
    let mut report =
        FileReport { path: name.clone(), kind: Some(Kind::Env), created: old.is_none(), ..Default::default() };
    // Every key this plan sets, with its final value, and every key it removes.
    let mut touched: BTreeMap<String, String> = BTreeMap::new();
    let mut removed: Vec<String> = Vec::new();
    if let Mode::Finish { now } = mode {
        let untils: Vec<(String, String)> = before
            .entries()
            .iter()
            .filter(|e| e.key.ends_with("_PREVIOUS_UNTIL"))
            .filter_map(|e| e.value.as_ref().map(|v| (e.key.clone(), v.text.clone())))
            .collect();
        for (until_key, until) in untils {
            let secret = until_key.trim_end_matches("_PREVIOUS_UNTIL").to_string();
            match crate::check::parse_time(&until) {
                Some(t) if t <= *now => {
                    for k in [crate::names::previous_of(&secret), until_key.clone()] {
                        if doc.remove(&k) > 0 {
                            removed.push(k);
                        }
                    }
                    report.rotated.push(format!("{secret} (window ended {until})"));
                }
                Some(_) => {
                    report.skipped.push(Skipped { key: secret, reason: format!("its window is open until {until}") })
                }
                None => report.warnings.push(format!("{until_key} {until:?} is not an RFC 3339 time; left alone")),
            }
        }
    }
    // The defaults in their usual order, then any others by name.
    let mut keys: Vec<&String> = values.keys().collect();
    keys.sort_by_key(|k| {
        (crate::names::DEFAULT_SECRETS.iter().position(|s| s.name == k.as_str()).unwrap_or(usize::MAX), k.as_str())
    });
    for key in keys {
        let value = &values[key];
        let entries: Vec<_> = before.entries().iter().filter(|e| &e.key == key).collect();
        if !entries.is_empty() && entries.iter().all(|e| e.value.is_none()) {
            report.skipped.push(Skipped {
                key: key.clone(),
                reason: format!(
                    "bare `{key}` line at {}: its value comes from the environment",
                    before.pos_of(entries[0].key_at)
                ),
            });
            continue;
        }
        let old_value = before.get(key).map(str::to_string);
        let n = doc.set(key, value).map_err(set_err)?;
        touched.insert(key.clone(), value.clone());
        match n {
            0 => report.appended.push(key.clone()),
            1 => report.rotated.push(key.clone()),
            n => {
                report.rotated.push(key.clone());
                let lines: Vec<String> = entries.iter().map(|e| before.pos_of(e.key_at).line.to_string()).collect();
                report
                    .warnings
                    .push(format!("{key} is set {n} times (lines {}); every one was rotated", lines.join(", ")));
            }
        }
        if let (Mode::Graceful { windows, now }, Some(old_value)) = (mode, old_value)
            && let Some(window) = windows.get(key)
            && !old_value.is_empty()
        {
            let (prev_key, until_key) = (crate::names::previous_of(key), crate::names::previous_until_of(key));
            if let Some(until) = before.get(&until_key).and_then(crate::check::parse_time)
                && until > *now
            {
                report.warnings.push(format!(
                    "{prev_key} was still valid until {}; it is replaced, and tokens signed with it stop working now",
                    rfc3339(until)
                ));
            }
            let until = rfc3339(now + window.as_secs() as i64);
            doc.set_after(&prev_key, &old_value, key).map_err(set_err)?;
            doc.set_after(&until_key, &until, &prev_key).map_err(set_err)?;
            touched.insert(prev_key.clone(), old_value);
            touched.insert(until_key, until.clone());
            report.notes.push(format!("{key}: the previous value verifies until {until}"));
        }
    }
    // The incident path: no previous value of a rotated secret may stay valid.
    if matches!(mode, Mode::Plain) {
        for key in values.keys() {
            for k in [crate::names::previous_of(key), crate::names::previous_until_of(key)] {
                if doc.remove(&k) > 0 {
                    report.removed.push(k.clone());
                    removed.push(k);
                }
            }
        }
    }
    let new = doc.render();
    verify_env(&name, &before, &new, &touched, &removed)?;
    let masked_old = masked(before.text(), env_value_ranges(&before));
    let masked_new = masked(doc.text(), env_value_ranges(&doc));
    Ok(FilePlan {
        path: path.to_path_buf(),
        old: old.unwrap_or_default().to_vec(),
        new,
        masked_old,
        masked_new,
        report,
    })
}

/// Re-reads the new bytes from scratch and checks that every other statement reads as
/// before, in order; that each `touched` key holds its new value everywhere it is set
/// (as many times as before, or once when it was added); and that the `removed` keys are
/// gone. An edit that would change how any other line reads is never written.
fn verify_env(
    path: &str,
    before: &EnvFile,
    new: &[u8],
    touched: &BTreeMap<String, String>,
    removed: &[String],
) -> Result<(), RotateError> {
    let fail = |message: String| RotateError::Verify {
        path: path.to_string(),
        message: format!("verification failed: {message}"),
    };
    let after = EnvFile::parse(new).map_err(|e| fail(format!("the rewritten file does not parse: {e}")))?;
    let edited = |k: &str| touched.contains_key(k) || removed.iter().any(|r| r == k);
    if let Some(k) = crate::envfile::first_difference(before, &after, &edited) {
        return Err(fail(format!("{k} does not read back as expected")));
    }
    let count = |d: &EnvFile, k: &str| d.entries().iter().filter(|e| e.key == k).count();
    for (k, v) in touched {
        let values: Vec<Option<&str>> =
            after.entries().iter().filter(|e| &e.key == k).map(|e| e.value.as_ref().map(|x| x.text.as_str())).collect();
        if values.len() != count(before, k).max(1) || values.iter().any(|x| *x != Some(v.as_str())) {
            return Err(fail(format!("{k} does not read back as expected")));
        }
    }
    if let Some(k) = removed.iter().find(|k| !touched.contains_key(*k) && count(&after, k) > 0) {
        return Err(fail(format!("{k} does not read back as expected")));
    }
    Ok(())
}

/// Plans the rotation of one compose file. A plain rotation also empties literal
/// `<KEY>_PREVIOUS`/`_PREVIOUS_UNTIL` values of the keys it rotates (an empty previous
/// secret verifies nothing).
pub fn plan_compose(
    path: &Path,
    old: &[u8],
    values: &BTreeMap<String, String>,
    mode: &Mode,
) -> Result<FilePlan, RotateError> {
    let name = path.display().to_string();
    let err = |err| RotateError::Compose { path: name.clone(), err };
    let doc = ComposeFile::parse(old).map_err(err)?;
    let mut edits = values.clone();
    let mut emptied = Vec::new();
    if matches!(mode, Mode::Plain) {
        for v in doc.environment() {
            let previous = values
                .keys()
                .any(|k| v.key == crate::names::previous_of(k) || v.key == crate::names::previous_until_of(k));
            if previous
                && matches!(&v.source, crate::compose::Source::Literal(x) if !x.is_empty())
                && !emptied.contains(&v.key)
            {
                edits.insert(v.key.clone(), String::new());
                emptied.push(v.key.clone());
            }
        }
    }
    let rw = doc.rotate(&edits).map_err(err)?;
    let mut report =
        FileReport { path: name.clone(), kind: Some(Kind::Compose), removed: emptied, ..Default::default() };
    for key in values.keys() {
        if rw.rotated.contains_key(key) {
            report.rotated.push(key.clone());
        } else if let Some(services) = rw.from_env.get(key) {
            report.skipped.push(Skipped {
                key: key.clone(),
                reason: format!("services {} take it from the environment/.env", services.join(", ")),
            });
        } else {
            report.skipped.push(Skipped { key: key.clone(), reason: "no service sets it".into() });
        }
        if let (Some(r), Some(e)) = (rw.rotated.get(key), rw.from_env.get(key)) {
            report.warnings.push(format!(
                "{key} is a literal in {} but comes from the environment in {}",
                r.join(", "),
                e.join(", ")
            ));
        }
    }
    for s in &rw.strays {
        report
            .warnings
            .push(format!("line {}: literal {} outside any service's environment left unchanged", s.pos.line, s.key));
    }
    let after = ComposeFile::parse(&rw.bytes).map_err(err)?;
    Ok(FilePlan {
        path: path.to_path_buf(),
        old: old.to_vec(),
        masked_old: masked(doc.text(), doc.secret_ranges()),
        masked_new: masked(after.text(), after.secret_ranges()),
        new: rw.bytes,
        report,
    })
}

/// Draws one fresh value per target.
pub fn draw(targets: &[Target], encoding: secrets::Encoding) -> BTreeMap<String, String> {
    targets.iter().map(|t| (t.name.clone(), secrets::generate_os(t.bytes, encoding))).collect()
}

/// Where the files are and how to treat them.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub env_files: Vec<PathBuf>,
    pub compose_files: Vec<PathBuf>,
    pub create: bool,
    pub mode: Mode,
}

fn read(path: &Path) -> Result<Option<Vec<u8>>, RotateError> {
    match fsx::read_input(path) {
        Ok(b) => Ok(Some(b)),
        Err(fsx::InputError::NotFound) => Ok(None),
        Err(e) => Err(RotateError::Io { path: path.display().to_string(), message: e.to_string() }),
    }
}

/// Advisory locks held on the folders of the files a rotation writes (see `lock`).
#[derive(Debug)]
pub struct Locks(#[allow(dead_code)] Vec<fs::File>);

/// Takes an exclusive advisory lock (`flock`) for every file `paths` names: on the folder
/// that holds it (the file itself is replaced by a rename, so a lock on it would be on the
/// old inode), each folder once, in one fixed order (sorted canonical paths) so that two
/// runs never deadlock. A run that cannot have them all within `timeout` gets "another
/// aspjwt is rotating FILE". Held until the `Locks` are dropped: from before the first
/// read to after the last rename, so that a second run edits the first one's result.
pub fn lock(paths: &[PathBuf], timeout: std::time::Duration) -> Result<Locks, RotateError> {
    let mut folders: Vec<(PathBuf, PathBuf)> = Vec::new();
    for p in paths {
        let target = fsx::resolve(p).unwrap_or_else(|_| p.clone());
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let dir = fs::canonicalize(&dir).map_err(|e| io_err(p, "cannot reach its folder", &e))?;
        if !folders.iter().any(|(d, _)| *d == dir) {
            folders.push((dir, p.clone()));
        }
    }
    folders.sort();
    let deadline = std::time::Instant::now() + timeout;
    let mut held = Vec::new();
    for (dir, shown) in folders {
        let f = fs::File::open(&dir).map_err(|e| io_err(&dir, "cannot open the folder to lock it", &e))?;
        loop {
            match f.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(RotateError::Io {
                        path: shown.display().to_string(),
                        message: format!(
                            "another aspjwt is rotating {} (waited {}); nothing was written",
                            shown.display(),
                            crate::duration::human(timeout)
                        ),
                    });
                }
                Err(fs::TryLockError::Error(e)) => return Err(io_err(&dir, "cannot lock the folder", &e)),
            }
        }
        held.push(f);
    }
    Ok(Locks(held))
}

/// Reads every file and plans every change; touches nothing on disk.
pub fn plan(req: &Request, values: &BTreeMap<String, String>) -> Result<Vec<FilePlan>, RotateError> {
    let mut plans = Vec::new();
    for path in &req.env_files {
        let old = read(path)?;
        if old.is_none() && !req.create {
            return Err(RotateError::Missing { path: path.display().to_string() });
        }
        plans.push(plan_env_mode(path, old.as_deref(), values, &req.mode)?);
    }
    for path in &req.compose_files {
        let old = read(path)?
            .ok_or_else(|| RotateError::Io { path: path.display().to_string(), message: "no such file".into() })?;
        let mut plan = plan_compose(path, &old, values, &req.mode)?;
        // Services that read env_file: the secrets may live there instead.
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        for (service, file) in crate::compose::outline(&old).map(|o| o.env_files).unwrap_or_default() {
            let p = dir.join(&file);
            if !req.env_files.iter().any(|f| fsx::same_file(f, &p)) {
                plan.report.notes.push(format!(
                    "service {service} reads env_file {file}; pass --env-file {} to rotate what it holds",
                    p.display()
                ));
            }
        }
        if matches!(req.mode, Mode::Graceful { .. }) && !plan.report.rotated.is_empty() {
            plan.report.warnings.push(format!(
                "{} holds literal secrets ({}); a rollover keeps previous values in .env files only, so services reading these literals lose the old secret at once",
                path.display(),
                plan.report.rotated.join(", ")
            ));
        }
        plans.push(plan);
    }
    // New secrets into a file others can read: said, as `check` says it.
    for p in plans.iter_mut().filter(|p| p.changed() && !p.report.created) {
        use std::os::unix::fs::PermissionsExt;
        let mode = fsx::resolve(&p.path).and_then(fs::metadata).map(|m| m.permissions().mode() & 0o777);
        if let Ok(mode) = mode
            && mode & 0o077 != 0
        {
            p.report.warnings.push(format!(
                "readable by group or others (mode {mode:04o}) and now holds new secrets; run chmod 600 {}",
                p.path.display()
            ));
        }
    }
    let mut seen = Vec::new();
    for p in &plans {
        let real = fsx::resolve(&p.path).ok().and_then(|r| fs::canonicalize(r).ok()).unwrap_or_else(|| p.path.clone());
        if seen.contains(&real) {
            return Err(RotateError::Io {
                path: p.path.display().to_string(),
                message: "named twice (directly or through a link)".into(),
            });
        }
        seen.push(real);
    }
    Ok(plans)
}

/// Writes the planned files: backups first (when asked), then every new file staged
/// beside its target, then all renamed into place. A failure before the renames
/// leaves every file as it was; a failed rename puts back the files already renamed.
pub fn write(plans: &mut [FilePlan], backup_suffix: Option<&str>) -> Result<(), RotateError> {
    // Called under the folder locks: temp files beside a target are a killed run's.
    for p in plans.iter_mut() {
        let stale = fsx::remove_stale_temps(&p.path);
        if !stale.is_empty() {
            p.report.warnings.push(format!(
                "removed {} temp file(s) an interrupted run left beside it (they held that run's new secrets)",
                stale.len()
            ));
        }
    }
    // Ctrl-C or a TERM from here on waits until every file is in place (or put back).
    let _held = fsx::Held::new();
    let changed: Vec<usize> = (0..plans.len()).filter(|&i| plans[i].changed()).collect();
    if let Some(suffix) = backup_suffix {
        for &i in &changed {
            let p = &mut plans[i];
            if p.report.created {
                continue;
            }
            let target = fsx::resolve(&p.path).map_err(|e| io_err(&p.path, "cannot resolve", &e))?;
            let backup = PathBuf::from(format!("{}{suffix}", target.display()));
            // A backup holds the old secrets: owner-only, whatever the original's mode.
            let written =
                fsx::write_private_new(&backup, &p.old).map_err(|e| io_err(&backup, "cannot write backup", &e))?;
            p.report.backup = Some(written.display().to_string());
        }
    }
    let mut staged = Vec::new();
    for &i in &changed {
        let p = &plans[i];
        staged.push((
            i,
            fsx::stage(&p.path, &p.new, 0o600).map_err(|e| io_err(&p.path, "cannot stage the new file", &e))?,
        ));
    }
    commit_all(plans, staged)
}

fn commit_all(plans: &[FilePlan], staged: Vec<(usize, fsx::Staged)>) -> Result<(), RotateError> {
    let mut done: Vec<usize> = Vec::new();
    for (i, s) in staged {
        if let Err(e) = s.commit() {
            let mut message = format!("cannot replace the file: {}", plain_io(&e));
            for &j in done.iter().rev() {
                let p = &plans[j];
                let restored =
                    if p.report.created { fs::remove_file(&p.path) } else { fsx::write_atomic(&p.path, &p.old, 0o600) };
                if let Err(e) = restored {
                    message.push_str(&format!("; and {} could not be restored: {}", p.path.display(), plain_io(&e)));
                }
            }
            if !done.is_empty() {
                message.push_str("; the files already replaced were restored");
            }
            return Err(RotateError::Io { path: plans[i].path.display().to_string(), message });
        }
        done.push(i);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> BTreeMap<String, String> {
        [("JWT_SECRET", "J2"), ("SESSION_SECRET", "S2")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn env_plan_reports_rotated_appended_duplicates() {
        let p = plan_env(Path::new(".env"), Some(b"JWT_SECRET=a\nX=1\nJWT_SECRET='b'\n"), &values()).unwrap();
        assert_eq!(
            String::from_utf8(p.new.clone()).unwrap(),
            "JWT_SECRET=J2\nX=1\nJWT_SECRET='J2'\nSESSION_SECRET=S2\n"
        );
        assert_eq!(p.report.rotated, vec!["JWT_SECRET"]);
        assert_eq!(p.report.appended, vec!["SESSION_SECRET"]);
        assert!(p.report.warnings[0].contains("set 2 times (lines 1, 3)"));
    }

    #[test]
    fn masks_every_value_in_diffs() {
        let p = plan_env(
            Path::new(".env"),
            Some(b"JWT_SECRET=aaaabbbbccccddddeeee\nPOSTGRES_PASSWORD=\"hunter2hunter2hunter2\"\n"),
            &values(),
        )
        .unwrap();
        assert_eq!(p.masked_old, "JWT_SECRET=aaaa…\nPOSTGRES_PASSWORD=\"hunt…\"\n");
        assert!(!p.masked_new.contains("hunter2hunter2"));
    }

    #[test]
    fn bare_lines_are_skipped() {
        let p = plan_env(Path::new(".env"), Some(b"JWT_SECRET\n"), &values()).unwrap();
        assert_eq!(p.report.skipped[0].key, "JWT_SECRET");
        assert_eq!(p.report.appended, vec!["SESSION_SECRET"]);
    }

    #[test]
    fn a_plain_rotation_takes_out_previous_secrets() {
        let env = b"JWT_SECRET=a\nJWT_SECRET_PREVIOUS=p\nJWT_SECRET_PREVIOUS_UNTIL=2030-01-01T00:00:00Z\nX=1\n";
        let p = plan_env(Path::new(".env"), Some(env), &values()).unwrap();
        assert_eq!(String::from_utf8(p.new).unwrap(), "JWT_SECRET=J2\nX=1\nSESSION_SECRET=S2\n");
        assert_eq!(p.report.removed, ["JWT_SECRET_PREVIOUS", "JWT_SECRET_PREVIOUS_UNTIL"]);
        let graceful = Mode::Graceful { windows: BTreeMap::new(), now: 0 };
        let g = plan_env_mode(Path::new(".env"), Some(env), &values(), &graceful).unwrap();
        assert!(g.report.removed.is_empty());
        let compose = b"services:\n  a:\n    environment:\n      JWT_SECRET: \"a\"\n      JWT_SECRET_PREVIOUS: \"p\"\n      OTHER_PREVIOUS: \"o\"\n";
        let c = plan_compose(Path::new("dc.yml"), compose, &values(), &Mode::Plain).unwrap();
        let text = String::from_utf8(c.new).unwrap();
        assert!(text.contains("JWT_SECRET: \"J2\"") && text.contains("JWT_SECRET_PREVIOUS: \"\""), "{text}");
        assert!(text.contains("OTHER_PREVIOUS: \"o\""), "{text}");
        assert_eq!(c.report.removed, ["JWT_SECRET_PREVIOUS"]);
        assert!(!c.report.rotated.contains(&"JWT_SECRET_PREVIOUS".to_string()));
    }

    #[test]
    fn failed_rename_restores_files_already_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.env");
        let b = dir.path().join("b.env");
        fs::write(&a, "JWT_SECRET=old\n").unwrap();
        fs::write(&b, "JWT_SECRET=old\n").unwrap();
        let req = Request { env_files: vec![a.clone(), b.clone()], ..Default::default() };
        let plans = plan(&req, &values()).unwrap();
        let staged: Vec<_> =
            plans.iter().enumerate().map(|(i, p)| (i, fsx::stage(&p.path, &p.new, 0o600).unwrap())).collect();
        // The second rename fails: its temp file vanished.
        fs::remove_file(staged[1].1.temp_path()).unwrap();
        let e = commit_all(&plans, staged).unwrap_err();
        assert!(e.to_string().contains("restored"), "{e}");
        assert_eq!(fs::read_to_string(&a).unwrap(), "JWT_SECRET=old\n");
        assert_eq!(fs::read_to_string(&b).unwrap(), "JWT_SECRET=old\n");
    }
}
