//! Everything the CLI prints goes through here: the colour decision, JSON, tables,
//! checklists and stderr notices. Results go to stdout; notes and warnings to stderr.

use std::io::{self, IsTerminal, Write};

use colored::Colorize;
use serde::Serialize;

pub use crate::audit::escape;
use crate::check::{Finding, Status};
use crate::cli::ColorChoice;

/// The version of the JSON shapes: raised when a field changes meaning or goes away
/// (new fields may appear without it).
pub const JSON_VERSION: u64 = 1;

/// The JSON an error is with --json, on stdout as well as the line on stderr, so a
/// script reading stdout never parses an empty document. `code` is "usage" (bad flags
/// or arguments) or "input" (anything else that exits 2).
pub fn json_error(code: &str, message: &str) -> String {
    serde_json::json!({"version": JSON_VERSION, "error": {"code": code, "message": message}}).to_string()
}

pub struct Out {
    pub json: bool,
    pub quiet: bool,
    pub color: bool,
}

impl Out {
    /// Resolves `--color` once: auto means a terminal, NO_COLOR unset or empty, TERM not
    /// dumb; --json never colours.
    pub fn new(json: bool, quiet: bool, choice: ColorChoice) -> Out {
        let color = !json
            && match choice {
                ColorChoice::Always => true,
                ColorChoice::Never => false,
                ColorChoice::Auto => {
                    io::stdout().is_terminal()
                        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                        && std::env::var("TERM").map_or(true, |t| t != "dumb")
                }
            };
        colored::control::set_override(color);
        Out { json, quiet, color }
    }

    /// Writes one line to stdout.
    pub fn line(&self, text: impl AsRef<str>) -> io::Result<()> {
        let mut w = io::stdout().lock();
        writeln!(w, "{}", text.as_ref())?;
        w.flush()
    }

    /// Writes a command's JSON result to stdout; an object gets `"version"` (see
    /// [`JSON_VERSION`]) so a script can tell which shape it reads.
    pub fn json<T: Serialize>(&self, value: &T) -> io::Result<()> {
        let v = match serde_json::to_value(value)? {
            serde_json::Value::Object(m) if !m.contains_key("version") => {
                let mut first = serde_json::Map::from_iter([("version".to_string(), JSON_VERSION.into())]);
                first.extend(m);
                serde_json::Value::Object(first)
            }
            v => v,
        };
        self.json_document(&v)
    }

    /// Writes a JSON document as it is: for data a user asked for in JSON (generate
    /// --format json), where an added key would end up in their configuration.
    pub fn json_document<T: Serialize>(&self, value: &T) -> io::Result<()> {
        let mut w = io::stdout().lock();
        serde_json::to_writer_pretty(&mut w, value)?;
        writeln!(w)?;
        w.flush()
    }

    /// Notes and warnings often quote file names, keys or server answers: escaped here,
    /// once, so none of them can move the cursor or retitle the terminal.
    pub fn note(&self, text: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{} {}", "note:".cyan().bold(), escape(text.as_ref()));
        }
    }

    pub fn warn(&self, text: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{} {}", "warning:".yellow().bold(), escape(text.as_ref()));
        }
    }

    /// Why a command exits non-zero: printed to stderr even with -q, which drops only
    /// summaries and notes, so a quiet CI step that fails still says why.
    pub fn reason(&self, text: impl AsRef<str>) {
        eprintln!("aspjwt: {}", escape(text.as_ref()));
    }

    /// Prints aligned columns; the header row is dimmed.
    pub fn table(&self, header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
        let cols = header.len();
        let width = |i: usize| {
            rows.iter().map(|r| r.get(i).map_or(0, |c| c.chars().count())).chain([header[i].len()]).max().unwrap_or(0)
        };
        let widths: Vec<usize> = (0..cols).map(width).collect();
        let render = |cells: Vec<String>| {
            cells
                .iter()
                .enumerate()
                .map(|(i, c)| if i + 1 == cols { c.clone() } else { format!("{c:<w$}", w = widths[i]) })
                .collect::<Vec<_>>()
                .join("  ")
        };
        self.line(render(header.iter().map(|h| h.to_string()).collect()).dimmed().to_string())?;
        for r in rows {
            self.line(render(r.clone()).trim_end())?;
        }
        Ok(())
    }

    /// Prints ✔/⚠/✖ lines with aligned items.
    pub fn checklist(&self, findings: &[Finding]) -> io::Result<()> {
        let w = findings.iter().map(|f| escape(&f.item).chars().count()).max().unwrap_or(0);
        for f in findings {
            let (item, detail) = (escape(&f.item), escape(&f.detail));
            self.line(format!("{} {item:<w$}  {detail}", mark(f.status)))?;
        }
        Ok(())
    }

    /// A unified diff with + and - lines coloured.
    pub fn diff(&self, old: &str, new: &str, path: &str) -> io::Result<()> {
        let diff = similar::TextDiff::from_lines(old, new);
        let text = diff.unified_diff().context_radius(2).header(&format!("a/{path}"), &format!("b/{path}")).to_string();
        for line in text.lines() {
            let line = escape(line);
            let line = line.as_str();
            let shown = if line.starts_with("+++") || line.starts_with("---") {
                line.bold().to_string()
            } else if line.starts_with('+') {
                line.green().to_string()
            } else if line.starts_with('-') {
                line.red().to_string()
            } else if line.starts_with("@@") {
                line.cyan().to_string()
            } else {
                line.to_string()
            };
            self.line(shown)?;
        }
        Ok(())
    }
}

/// The checklist mark for a status.
pub fn mark(s: Status) -> String {
    match s {
        Status::Pass => "✔".green().to_string(),
        Status::Warn => "⚠".yellow().to_string(),
        Status::Fail => "✖".red().bold().to_string(),
    }
}

/// "3 passed, 1 warning, 0 failed".
pub fn tally(findings: &[Finding]) -> String {
    let n = |s| findings.iter().filter(|f| f.status == s).count();
    let warns = n(Status::Warn);
    format!(
        "{} passed, {} warning{}, {} failed",
        n(Status::Pass),
        warns,
        if warns == 1 { "" } else { "s" },
        n(Status::Fail)
    )
}

/// Pretty JSON with keys, strings, numbers and literals coloured (when colour is on).
pub fn json_pretty(value: &serde_json::Value) -> String {
    fn walk(v: &serde_json::Value, indent: usize, out: &mut String) {
        use serde_json::Value;
        let pad = "  ".repeat(indent + 1);
        match v {
            Value::Object(map) if !map.is_empty() => {
                out.push_str("{\n");
                for (i, (k, val)) in map.iter().enumerate() {
                    let key = crate::audit::escape(&serde_json::to_string(k).unwrap_or_default());
                    out.push_str(&format!("{pad}{}: ", key.blue().bold()));
                    walk(val, indent + 1, out);
                    out.push_str(if i + 1 < map.len() { ",\n" } else { "\n" });
                }
                out.push_str(&format!("{}}}", "  ".repeat(indent)));
            }
            Value::Array(items) if !items.is_empty() => {
                out.push_str("[\n");
                for (i, val) in items.iter().enumerate() {
                    out.push_str(&pad);
                    walk(val, indent + 1, out);
                    out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
                }
                out.push_str(&format!("{}]", "  ".repeat(indent)));
            }
            // JSON escapes C0 controls; DEL, C1 and bidi overrides still need it for a terminal.
            Value::String(_) => out.push_str(&crate::audit::escape(&v.to_string()).green().to_string()),
            Value::Number(_) => out.push_str(&v.to_string().yellow().to_string()),
            Value::Bool(_) | Value::Null => out.push_str(&v.to_string().magenta().to_string()),
            _ => out.push_str(&v.to_string()),
        }
    }
    let mut out = String::new();
    walk(value, 0, &mut out);
    out
}

/// `label  value` lines with the labels aligned and dimmed.
pub fn fields(rows: &[(&str, String)]) -> Vec<String> {
    let w = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    rows.iter().map(|(l, v)| format!("{}  {v}", format!("{l:<w$}").dimmed())).collect()
}
