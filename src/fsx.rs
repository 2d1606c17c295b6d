//! Atomic file replacement: a temp file in the same folder, fsync, rename, fsync of
//! the folder. The new file keeps the old one's mode and owner, and a symlink is
//! written through to its target rather than replaced by a regular file.

use std::fs::{self, File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

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
