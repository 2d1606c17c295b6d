//! One module per group of subcommands: each turns parsed arguments into calls on
//! the domain modules and prints the result through `Out`.

pub mod backup;
pub mod check;
pub mod health;
pub mod incident;
pub mod operator;
pub mod secrets;
pub mod serve;
pub mod tokens;

use std::path::Path;
use std::process::{Command as Process, Stdio};

/// Drops one trailing line break (`\n` or `\r\n`) from a secret or password read
/// from a file or stdin.
pub fn trim_newline(mut s: String) -> String {
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    s
}

/// `Some(true)` when git ignores `path`, `Some(false)` when it does not, `None` outside a work tree.
pub fn git_ignored(path: &Path) -> Option<bool> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let status = Process::new("git")
        .arg("-C")
        .arg(dir)
        .args(["check-ignore", "-q", "--"])
        .arg(path.file_name()?)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    match status.code() {
        Some(0) => Some(true),
        Some(1) => Some(false),
        _ => None,
    }
}

/// `true` when git tracks `path`; `false` outside a work tree or without git.
pub fn git_tracked(path: &Path) -> bool {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Some(name) = path.file_name() else { return false };
    Process::new("git")
        .arg("-C")
        .arg(dir)
        .args(["ls-files", "--error-unmatch", "--"])
        .arg(name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
