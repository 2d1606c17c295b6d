//! Atomic file replacement: a temp file in the same folder, fsync, rename, fsync of
//! the folder. The new file keeps the old one's mode and owner, and a symlink is
//! written through to its target rather than replaced by a regular file.

use std::fs::{self, File, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why an input file was not read. The caller names the file.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("no such file")]
    NotFound,
    #[error("is {0}, not a regular file; aspjwt reads only regular files (or links to them)")]
    NotRegular(&'static str),
    #[error("is larger than {max} bytes (ASPJWT_MAX_FILE_SIZE); raise it if this file is really that large")]
    TooLarge { max: u64 },
    #[error("{0}")]
    Limit(String),
    #[error("cannot read: {0}")]
    Io(String),
}

/// The input size limit: `ASPJWT_MAX_FILE_SIZE` (bytes, or with a K/M/G or KiB/MiB/GiB
/// suffix, all powers of 1024), else 16 MiB.
pub fn max_file_size() -> Result<u64, InputError> {
    let name = crate::names::ASPJWT_MAX_FILE_SIZE;
    match std::env::var(name) {
        Err(_) => Ok(crate::names::DEFAULT_MAX_FILE_SIZE),
        Ok(v) => parse_size(&v)
            .ok_or_else(|| InputError::Limit(format!("{name} {v:?} is not a size (e.g. 16777216, 16MiB, 512K)"))),
    }
}

fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..digits].parse().ok()?;
    let unit: u64 = match t[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(unit).filter(|&n| n > 0)
}

fn kind_of(t: fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Reads an input file whole: a regular file (or a link to one) of at most
/// `max_file_size()` bytes. Opened non-blocking and checked on the open descriptor, so a
/// FIFO or device (`/dev/zero`) is refused at once instead of hanging, and a file that
/// grows while it is read is cut off at the limit and refused.
pub fn read_input(path: &Path) -> Result<Vec<u8>, InputError> {
    read_input_max(path, max_file_size()?)
}

/// `read_input` with another limit (a backup may be far larger than any configuration).
pub fn read_input_max(path: &Path, max: u64) -> Result<Vec<u8>, InputError> {
    let file =
        fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => InputError::NotFound,
            _ => InputError::Io(crate::rotate::plain_io(&e)),
        })?;
    let meta = file.metadata().map_err(|e| InputError::Io(crate::rotate::plain_io(&e)))?;
    if !meta.file_type().is_file() {
        return Err(InputError::NotRegular(kind_of(meta.file_type())));
    }
    if meta.len() > max {
        return Err(InputError::TooLarge { max });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut bytes).map_err(|e| InputError::Io(crate::rotate::plain_io(&e)))?;
    if bytes.len() as u64 > max {
        return Err(InputError::TooLarge { max });
    }
    Ok(bytes)
}

/// `read_input`, with the path at the front of the error.
pub fn read_path(path: &Path) -> Result<Vec<u8>, String> {
    read_input(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// `read_path` for text: a file that is not UTF-8 is an error naming it.
pub fn read_text(path: &Path) -> Result<String, String> {
    String::from_utf8(read_path(path)?).map_err(|_| format!("{}: is not UTF-8 text", path.display()))
}

/// Reads standard input whole, up to `max_file_size()` bytes.
pub fn read_stdin() -> Result<Vec<u8>, InputError> {
    read_stdin_max(max_file_size()?)
}

/// `read_stdin` with another limit.
pub fn read_stdin_max(max: u64) -> Result<Vec<u8>, InputError> {
    let mut bytes = Vec::new();
    io::stdin()
        .lock()
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| InputError::Io(crate::rotate::plain_io(&e)))?;
    if bytes.len() as u64 > max {
        return Err(InputError::TooLarge { max });
    }
    Ok(bytes)
}

/// One line of standard input (a password, a confirmation), at most `max` bytes before
/// its newline: `cat /dev/zero | aspjwt user passwd --password-stdin` is refused, not
/// read into gigabytes.
pub fn read_stdin_line(max: usize) -> Result<String, String> {
    let mut line = Vec::new();
    let stdin = io::stdin();
    let mut limited = stdin.lock().take(max as u64 + 1);
    io::BufRead::read_until(&mut io::BufReader::new(&mut limited), b'\n', &mut line)
        .map_err(|e| format!("stdin: {}", crate::rotate::plain_io(&e)))?;
    if line.len() > max && !line.ends_with(b"\n") {
        return Err(format!("stdin: more than {max} bytes before the end of the line"));
    }
    String::from_utf8(line).map_err(|_| "stdin: is not UTF-8 text".into())
}

/// A file written in full next to its destination, not yet in place.
pub struct Staged {
    target: PathBuf,
    temp: tempfile::TempPath,
}

impl Staged {
    /// The file that `commit` will replace (symlinks resolved).
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The temp file holding the new content.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Renames the temp file over the target and syncs the folder.
    pub fn commit(self) -> io::Result<()> {
        let target = self.target;
        self.temp.persist(&target).map_err(|e| e.error)?;
        sync_dir(&target)
    }
}

/// Temp files an interrupted run (`kill -9`, a power cut) left beside `path`: they hold
/// the secrets that run drew. Removed by the next run that holds the lock on the folder;
/// returns what was removed.
pub fn remove_stale_temps(path: &Path) -> Vec<PathBuf> {
    let Ok(target) = resolve(path) else { return Vec::new() };
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else { return Vec::new() };
    let prefix = format!(".{name}.");
    let Ok(entries) = fs::read_dir(&dir) else { return Vec::new() };
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let ours = file.starts_with(&prefix) && file.ends_with(".aspjwt-tmp");
        if ours && e.file_type().is_ok_and(|t| t.is_file()) && fs::remove_file(e.path()).is_ok() {
            removed.push(e.path());
        }
    }
    removed
}

/// The last of SIGINT, SIGTERM, SIGHUP or SIGQUIT that arrived while a `Held` was alive.
static HELD_SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn hold(sig: libc::c_int) {
    HELD_SIGNAL.store(sig, std::sync::atomic::Ordering::SeqCst);
}

/// While alive, Ctrl-C and `kill` wait: the renames that put a set of files in place are
/// not cut in half by them (only `kill -9` or a power cut can, and the next run removes
/// what that leaves). When dropped, the previous handlers come back and a signal that
/// arrived meanwhile is raised again, so the process ends as it was asked to, after.
pub struct Held {
    previous: Vec<(libc::c_int, libc::sigaction)>,
}

const HELD: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

impl Held {
    pub fn new() -> Held {
        let mut previous = Vec::new();
        for sig in HELD {
            // SAFETY: a plain handler that stores to an atomic; the old action is kept to restore.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = hold as extern "C" fn(libc::c_int) as libc::sighandler_t;
                libc::sigemptyset(&mut action.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &action, &mut old) == 0 {
                    previous.push((sig, old));
                }
            }
        }
        Held { previous }
    }

    /// The signal that arrived while held, if any.
    pub fn pending(&self) -> Option<i32> {
        Some(HELD_SIGNAL.load(std::sync::atomic::Ordering::SeqCst)).filter(|s| *s != 0)
    }
}

impl Default for Held {
    fn default() -> Self {
        Held::new()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        for (sig, old) in &self.previous {
            // SAFETY: restores the action saved in `new`.
            unsafe {
                libc::sigaction(*sig, old, std::ptr::null_mut());
            }
        }
        if let Some(sig) = self.pending() {
            HELD_SIGNAL.store(0, std::sync::atomic::Ordering::SeqCst);
            // SAFETY: re-delivers the signal to this process under its restored action.
            unsafe {
                libc::raise(sig);
            }
        }
    }
}

/// The path a write should land on: a symlink's final target, else the path itself.
pub fn resolve(path: &Path) -> io::Result<PathBuf> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(path),
        _ => Ok(path.to_path_buf()),
    }
}

/// Writes `bytes` to a temp file beside `path`, with `path`'s mode and owner when it
/// exists and `new_mode` otherwise, and syncs it to disk.
pub fn stage(path: &Path, bytes: &[u8], new_mode: u32) -> io::Result<Staged> {
    let target = resolve(path)?;
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let existing = fs::metadata(&target).ok();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".aspjwt-tmp")
        .permissions(Permissions::from_mode(0o600))
        .tempfile_in(&dir)?;
    tmp.write_all(bytes)?;
    let file: &File = tmp.as_file();
    match &existing {
        Some(m) => {
            file.set_permissions(Permissions::from_mode(m.mode() & 0o7777))?;
            // Keep the owner when we may (root rotating a service user's file).
            let _ = std::os::unix::fs::fchown(file, Some(m.uid()), Some(m.gid()));
        }
        None => file.set_permissions(Permissions::from_mode(new_mode))?,
    }
    file.sync_all()?;
    Ok(Staged { target, temp: tmp.into_temp_path() })
}

/// Stages and commits one file.
pub fn write_atomic(path: &Path, bytes: &[u8], new_mode: u32) -> io::Result<()> {
    stage(path, bytes, new_mode)?.commit()
}

/// Writes a file that holds secrets atomically, owner-only (0600) from its first byte
/// to its last, whatever mode a file there had before.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let staged = stage(path, bytes, 0o600)?;
    fs::set_permissions(staged.temp_path(), Permissions::from_mode(0o600))?;
    staged.commit()
}

/// Whether two paths name one file (through links, `./`, …); paths that do not resolve
/// are compared as written.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Checks that `path` may receive an output this tool produces (a backup, a report):
/// not a symbolic link (writing through one replaced its target), not something other
/// than a regular file, and, when a file is there, one that `ours` recognises as an
/// earlier output of the same kind (or empty). A mistyped `--out .env` or `--report
/// data/aspjwt.db` is refused instead of replacing the file it names.
pub fn check_output(path: &Path, ours: impl Fn(&[u8]) -> bool, kind: &str) -> Result<(), String> {
    let shown = path.display();
    // A SQLite database's companions are part of it even when empty or absent (after a
    // checkpoint): writing there corrupts the database beside it.
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    for suffix in ["-wal", "-shm", "-journal"] {
        if let Some(db) = name.strip_suffix(suffix)
            && !db.is_empty()
            && path.with_file_name(db).is_file()
        {
            return Err(format!("{shown}: is part of the SQLite database {db}; refusing to write there"));
        }
    }
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{shown}: {e}")),
        Ok(m) if m.file_type().is_symlink() => {
            Err(format!("{shown}: is a symbolic link; name the file itself (it would be written through)"))
        }
        Ok(m) if !m.is_file() => Err(format!("{shown}: exists and is not a regular file")),
        Ok(_) => {
            let mut head = [0u8; 256];
            let n = File::open(path).and_then(|mut f| f.read(&mut head)).map_err(|e| format!("{shown}: {e}"))?;
            if n == 0 || ours(&head[..n]) {
                Ok(())
            } else {
                Err(format!(
                    "{shown}: exists and is not {kind}; refusing to replace it (remove it or choose another name)"
                ))
            }
        }
    }
}

/// Writes a new owner-only file at `path`, or at `path-2`, `path-3`… when that name is
/// taken: never replaces a file (two backups in one second both survive). Returns the
/// path written.
pub fn write_private_new(path: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    let staged = stage(path, bytes, 0o600)?;
    fs::set_permissions(staged.temp_path(), Permissions::from_mode(0o600))?;
    let mut temp = staged.temp;
    for n in 1..=1000 {
        let candidate = if n == 1 { path.to_path_buf() } else { PathBuf::from(format!("{}-{n}", path.display())) };
        match temp.persist_noclobber(&candidate) {
            Ok(()) => {
                sync_dir(&candidate)?;
                return Ok(candidate);
            }
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => temp = e.path,
            Err(e) => return Err(e.error),
        }
    }
    Err(io::Error::new(io::ErrorKind::AlreadyExists, "1000 files of that name exist already"))
}

fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_wait_while_held() {
        // SIGQUIT's previous action here is a no-op handler, so re-raising it on drop is harmless.
        extern "C" fn nothing(_: libc::c_int) {}
        unsafe {
            libc::signal(libc::SIGQUIT, nothing as extern "C" fn(libc::c_int) as libc::sighandler_t);
        }
        let held = Held::new();
        unsafe {
            libc::raise(libc::SIGQUIT);
        }
        assert_eq!(held.pending(), Some(libc::SIGQUIT), "the signal was held, and the process lives");
        drop(held);
        assert_eq!(HELD_SIGNAL.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[test]
    fn stale_temps_beside_a_file_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join(".env");
        fs::write(&env, "A=1\n").unwrap();
        let stale = dir.path().join("..env.Xy12ab.aspjwt-tmp");
        fs::write(&stale, "JWT_SECRET=drawn-by-a-killed-run\n").unwrap();
        let other = dir.path().join(".other.env.Xy12ab.aspjwt-tmp");
        fs::write(&other, "x").unwrap();
        assert_eq!(remove_stale_temps(&env), vec![stale.clone()]);
        assert!(!stale.exists() && other.exists() && env.exists());
    }

    #[test]
    fn sizes_parse_in_powers_of_1024() {
        assert_eq!(parse_size("16MiB"), Some(16 << 20));
        assert_eq!(parse_size("512k"), Some(512 << 10));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size(" 2 G "), Some(2 << 30));
        for bad in ["", "0", "-1", "1.5M", "12 parsecs", "99999999999999999999"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(read_input(dir.path()), Err(InputError::NotRegular("a directory"))));
        assert!(matches!(read_input(Path::new("/dev/zero")), Err(InputError::NotRegular("a character device"))));
        assert!(matches!(read_input(&dir.path().join("none")), Err(InputError::NotFound)));
        let f = dir.path().join("f");
        fs::write(&f, "A=1\n").unwrap();
        assert_eq!(read_input(&f).unwrap(), b"A=1\n");
        // A path through a regular file.
        assert!(matches!(read_input(&f.join("x")), Err(InputError::Io(_))));
    }

    #[test]
    fn keeps_mode_and_writes_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.env");
        fs::write(&real, "A=1\n").unwrap();
        fs::set_permissions(&real, Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("link.env");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_atomic(&link, b"A=2\n", 0o600).unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(fs::read_to_string(&real).unwrap(), "A=2\n");
        assert_eq!(fs::metadata(&real).unwrap().mode() & 0o777, 0o640);
        let created = dir.path().join("new.env");
        write_atomic(&created, b"x", 0o600).unwrap();
        assert_eq!(fs::metadata(&created).unwrap().mode() & 0o777, 0o600);
        // No temp files left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    #[test]
    fn staging_under_a_regular_file_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        fs::write(&file, "x").unwrap();
        assert!(stage(&file.join("child.env"), b"A=1\n", 0o600).is_err());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
