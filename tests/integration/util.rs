//! Runs the real binary in a temp folder with a scrubbed environment.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_aspjwt");

/// A temp folder and a way to run `aspjwt` in it.
pub struct Dir {
    pub tmp: tempfile::TempDir,
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    #[track_caller]
    pub fn code(&self, want: i32) -> &Self {
        assert_eq!(self.code, want, "exit status\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// The rows of a `--json` list (`user list`, `sessions list`, `audit`): a versioned
    /// object with one array (`users`, `sessions`, `events`), returned as that array.
    #[track_caller]
    pub fn rows(&self) -> serde_json::Value {
        let doc = self.json();
        assert_eq!(doc["version"], 1, "a list carries its version:\n{}", self.stdout);
        let lists: Vec<_> = doc.as_object().into_iter().flatten().filter(|(_, v)| v.is_array()).collect();
        assert_eq!(lists.len(), 1, "one list per document:\n{}", self.stdout);
        lists[0].1.clone()
    }
}

impl Dir {
    pub fn new() -> Dir {
        Dir { tmp: tempfile::tempdir().unwrap() }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&p, bytes).unwrap();
        p
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        fs::read(self.path(name)).unwrap()
    }

    pub fn read_str(&self, name: &str) -> String {
        String::from_utf8(self.read(name)).unwrap()
    }

    pub fn run_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        run(self.cmd().args(args), Some(stdin))
    }

    pub fn cmd(&self) -> Command {
        command(self.tmp.path())
    }

    pub fn run(&self, args: &[&str]) -> Output {
        run(self.cmd().args(args), None)
    }
}

/// `aspjwt` in `dir` with none of the variables it reads inherited from the test runner.
pub fn command(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("JWT_")
            || k.starts_with("ASPJWT_")
            || k == "SESSION_SECRET"
            || k == "PGPASSWORD"
            || k == "PGSSLROOTCERT"
            || k == "NO_COLOR"
            || k.starts_with("GIT_")
        {
            c.env_remove(k);
        }
    }
    c.env("TERM", "dumb");
    c
}

pub fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn aspjwt");
    if let Some(input) = stdin {
        // A command that refuses its arguments exits without reading stdin: a broken pipe is its answer.
        if let Err(e) = child.stdin.take().unwrap().write_all(input) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "writing stdin: {e}");
        }
    }
    let out = child.wait_with_output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// How many files each corpus folder holds (a file dropped with its row still fails).
const CORPUS_FILES: [(&str, usize); 2] = [("env", 21), ("compose", 19)];

/// The vendored corpus (`tests/corpus/KIND/`), as `tests/corpus/SOURCES.md` lists it.
/// A listed file that is missing, changed (its size or SHA-256 differs from its row) or
/// a file that is not listed fails the test: the corpus is never skipped, never edited,
/// and never grows without its source and licence on record.
pub fn corpus(kind: &str) -> Vec<PathBuf> {
    use sha2::Digest;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let sources = fs::read_to_string(root.join("SOURCES.md"))
        .unwrap_or_else(|e| panic!("{}: {e}", root.join("SOURCES.md").display()));
    let rows: Vec<(PathBuf, usize, String)> = sources
        .split(&format!("\n## {kind}/"))
        .nth(1)
        .unwrap_or_else(|| panic!("SOURCES.md has no {kind}/ section"))
        .split("\n## ")
        .next()
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            // | file | repository | path | commit | licence | how | bytes | sha256 (first 16) | features |
            let cols: Vec<&str> = l.split('|').map(str::trim).collect();
            let bytes = cols[7].parse().unwrap_or_else(|_| panic!("SOURCES.md: no byte count in {l}"));
            (root.join(kind).join(cols[1].trim_matches('`')), bytes, cols[8].trim_matches('`').to_string())
        })
        .collect();
    let mut listed: Vec<PathBuf> = Vec::new();
    for (file, size, sha) in &rows {
        let bytes = fs::read(file).unwrap_or_else(|e| panic!("{} is listed in SOURCES.md but: {e}", file.display()));
        assert_eq!(bytes.len(), *size, "{}: not the bytes SOURCES.md records", file.display());
        let digest: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        assert!(digest.starts_with(sha.as_str()), "{}: its SHA-256 differs from SOURCES.md", file.display());
        listed.push(file.clone());
    }
    listed.sort();
    let mut present: Vec<PathBuf> = fs::read_dir(root.join(kind))
        .unwrap_or_else(|e| panic!("the corpus folder {} is required: {e}", root.join(kind).display()))
        .map(|e| e.unwrap().path())
        .collect();
    present.sort();
    assert_eq!(present, listed, "tests/corpus/{kind}/ and SOURCES.md disagree");
    let want = CORPUS_FILES.iter().find(|(k, _)| *k == kind).map(|(_, n)| *n);
    assert_eq!(Some(listed.len()), want, "tests/corpus/{kind}/ holds {} files", listed.len());
    listed
}

/// Base64 secrets of at least 40 characters found in `text`: a leak detector.
pub fn long_base64_runs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '-' | '_') {
            cur.push(c);
        } else {
            if cur.len() >= 40 {
                out.push(cur.clone());
            }
            cur.clear();
        }
    }
    out
}

/// What Node's dotenv (the CRM backend's loader) reads from each file: file name -> {KEY: value}.
pub fn node_dotenv(files: &[PathBuf]) -> serde_json::Value {
    let node_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node");
    assert!(
        Path::new(node_dir).join("node_modules/dotenv").is_dir(),
        "Node's dotenv is missing: run `npm ci --prefix tests/node` (make test does)"
    );
    let mut node = Command::new("node");
    node.arg(format!("{node_dir}/dotenv-parse.js")).args(files);
    let out = run(&mut node, None);
    serde_json::from_str(out.code(0).stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", out.stderr))
}

/// One HTTP/1.1 request as a test backend reads it: the head (up to the blank line) and
/// a `Content-Length` body (as much of it as arrives).
pub fn read_request(reader: &mut impl std::io::BufRead) -> (String, Vec<u8>) {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let len = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = Vec::with_capacity(len);
    let _ = std::io::Read::read_to_end(&mut std::io::Read::take(reader, len as u64), &mut body);
    (head, body)
}
