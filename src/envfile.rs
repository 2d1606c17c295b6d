//! A lossless `.env` document: parsed to spans, edited in place, rendered back to
//! the same bytes except where a value was set.
//!
//! Where dotenv dialects disagree this follows docker compose's own parser
//! (compose-go `dotenv`), since compose reads these files too: `export ` prefixes,
//! `KEY=value`, `KEY: value` and bare `KEY` (inherited) statements; single and double
//! quotes that may span lines, with `\` escaping the closing quote; unquoted values
//! run to the end of the line, and a `#` starts a comment only after a space.
//!
//! One addition from Node's `dotenv` (which the CRM's backend reads these files with):
//! a value in backticks, which may span lines, is read as Node reads it (the text
//! between them, untouched). compose has no backtick quotes, so `check` warns about them.

use std::fmt;

const BOM: &str = "\u{feff}";

/// Where in a file something is, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A .env file that can't be read as compose would read it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{0}")]
    Encoding(String),
    #[error("{pos}: {message}")]
    Syntax { pos: Pos, message: String },
}

impl ParseError {
    pub fn pos(&self) -> Option<Pos> {
        match self {
            ParseError::Syntax { pos, .. } => Some(*pos),
            ParseError::Encoding(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quote {
    None,
    Single,
    Double,
    /// Node's dotenv only.
    Backtick,
}

/// The literal value of one assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    /// Byte range of the value's text in the document, quotes included.
    pub span: std::ops::Range<usize>,
    pub quote: Quote,
    /// The value as compose reads it, before `${VAR}` interpolation (`$$` stands for `$`
    /// where `interpolates()`).
    pub text: String,
}

impl Value {
    /// Whether compose interpolates `${VAR}` in this value: unquoted and double-quoted
    /// ones only.
    pub fn interpolates(&self) -> bool {
        matches!(self.quote, Quote::None | Quote::Double)
    }
}

/// One `KEY=value` (or bare `KEY`) statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    /// Byte offset of the key's first character.
    pub key_at: usize,
    /// `None` for a bare `KEY` line, which compose fills from the environment.
    pub value: Option<Value>,
}

/// Line endings the file uses, so appended lines match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eol {
    Lf,
    CrLf,
}

impl Eol {
    pub fn as_str(self) -> &'static str {
        match self {
            Eol::Lf => "\n",
            Eol::CrLf => "\r\n",
        }
    }
}

/// A parsed .env document. `render()` of an unedited document returns the input bytes.
#[derive(Debug, Clone)]
pub struct EnvFile {
    /// The text after any UTF-8 byte-order mark.
    text: String,
    bom: bool,
    entries: Vec<Entry>,
    /// Built on the first `pos_of`; dropped by every edit.
    lines: std::cell::OnceCell<LineIndex>,
}

impl EnvFile {
    /// Parses raw file bytes. A file that is not UTF-8 is an error, never transcoded.
    pub fn parse(bytes: &[u8]) -> Result<EnvFile, ParseError> {
        let text = decode_utf8(bytes)?;
        let (bom, text) = match text.strip_prefix(BOM) {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let entries = Parser { src: text, at: 0 }.entries()?;
        Ok(EnvFile { text: text.to_string(), bom, entries, lines: Default::default() })
    }

    /// An empty document, for a file about to be created.
    pub fn empty() -> EnvFile {
        EnvFile { text: String::new(), bom: false, entries: Vec::new(), lines: Default::default() }
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The last value compose would see for `key` (later lines win).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().rev().find(|e| e.key == key).and_then(|e| e.value.as_ref().map(|v| v.text.as_str()))
    }

    /// The line-ending style: CRLF when the first line break is one.
    pub fn eol(&self) -> Eol {
        match self.text.find('\n') {
            Some(i) if i > 0 && self.text.as_bytes()[i - 1] == b'\r' => Eol::CrLf,
            _ => Eol::Lf,
        }
    }

    /// Renders the document to bytes, BOM included.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.text.len() + 3);
        if self.bom {
            out.extend_from_slice(BOM.as_bytes());
        }
        out.extend_from_slice(self.text.as_bytes());
        out
    }

    /// Converts a byte offset in the text to a line and column.
    pub fn pos_of(&self, offset: usize) -> Pos {
        self.lines.get_or_init(|| LineIndex::new(&self.text)).pos(&self.text, offset)
    }

    /// Sets every assignment of `key` to `value`, keeping each one's quote style,
    /// or appends `KEY=value` when there is none. Returns how many assignments
    /// were rewritten (0 means appended).
    ///
    /// Only values that read back identically in every quote style and in every
    /// dotenv dialect are accepted: the characters of base64 and base64url.
    pub fn set(&mut self, key: &str, value: &str) -> Result<usize, SetError> {
        let before = self.render();
        let n = self.set_unchecked(key, value)?;
        self.confirm(before, key, value)?;
        Ok(n)
    }

    /// Re-reads the edited text: every other entry must read as before (the edit touched
    /// only `key`'s entries, so as it does in `self`) and `key` as `value`; otherwise the
    /// edit is undone by reading `before`, the bytes it was made on, again. (compose's
    /// dialect has corners, such as a trailing bare `export`, where a new line would
    /// change how its neighbours read.)
    fn confirm(&mut self, before: Vec<u8>, key: &str, value: &str) -> Result<(), SetError> {
        let ok = match EnvFile::parse(&self.render()) {
            Ok(again) => {
                first_difference(self, &again, &|k| k == key).is_none()
                    && again
                        .entries
                        .iter()
                        .filter(|e| e.key == key)
                        .all(|e| e.value.as_ref().is_some_and(|v| v.text == value))
                    && again.entries.iter().any(|e| e.key == key)
            }
            Err(_) => false,
        };
        if ok {
            Ok(())
        } else {
            *self = EnvFile::parse(&before).expect("the bytes parsed before the edit");
            Err(SetError::Ambiguous(key.to_string()))
        }
    }

    fn set_unchecked(&mut self, key: &str, value: &str) -> Result<usize, SetError> {
        if !is_plain_value(value) {
            return Err(SetError::UnsafeValue);
        }
        if !is_plain_key(key) {
            return Err(SetError::BadKey(key.to_string()));
        }
        // Edit from the end so earlier spans stay valid.
        let mut targets: Vec<usize> = (0..self.entries.len()).filter(|&i| self.entries[i].key == key).collect();
        targets.reverse();
        let count = targets.len();
        for i in targets {
            match self.entries[i].value.clone() {
                Some(v) => {
                    let new_raw = match v.quote {
                        Quote::None => value.to_string(),
                        Quote::Single => format!("'{value}'"),
                        Quote::Double => format!("\"{value}\""),
                        Quote::Backtick => format!("`{value}`"),
                    };
                    self.replace(v.span.clone(), &new_raw);
                    let entry = &mut self.entries[i];
                    let val = entry.value.as_mut().expect("checked above");
                    val.span = v.span.start..v.span.start + new_raw.len();
                    val.text = value.to_string();
                }
                None => {
                    // A bare `KEY` line: give it a value right after the key.
                    let key_end = self.entries[i].key_at + key.len();
                    let insert = format!("={value}");
                    self.replace(key_end..key_end, &insert);
                    self.entries[i].value = Some(Value {
                        span: key_end + 1..key_end + insert.len(),
                        quote: Quote::None,
                        text: value.to_string(),
                    });
                }
            }
        }
        // A bare `export` can only be the last statement: compose reads `export` followed by
        // any whitespace, newlines included, as a prefix. A new line goes before it.
        let trailing_export = self.entries.last().filter(|e| e.key == "export" && e.value.is_none()).map(|e| e.key_at);
        if count == 0
            && let Some(at) = trailing_export
        {
            let line_start = self.text[..at].rfind('\n').map_or(0, |i| i + 1);
            let text = format!("{key}={value}{}", self.eol().as_str());
            self.replace(line_start..line_start, &text);
            let vstart = line_start + key.len() + 1;
            self.entries.push(Entry {
                key: key.to_string(),
                key_at: line_start,
                value: Some(Value { span: vstart..vstart + value.len(), quote: Quote::None, text: value.to_string() }),
            });
            self.entries.sort_by_key(|e| e.key_at);
        } else if count == 0 {
            let eol = self.eol().as_str();
            let mut line = String::new();
            if !self.text.is_empty() && !self.text.ends_with('\n') {
                line.push_str(eol);
            }
            let start = self.text.len() + line.len();
            line.push_str(key);
            line.push('=');
            let vstart = self.text.len() + line.len();
            line.push_str(value);
            line.push_str(eol);
            self.text.push_str(&line);
            self.lines.take();
            self.entries.push(Entry {
                key: key.to_string(),
                key_at: start,
                value: Some(Value { span: vstart..vstart + value.len(), quote: Quote::None, text: value.to_string() }),
            });
        }
        Ok(count)
    }

    /// Sets `key` like `set`, but a missing key goes on a new line right after the
    /// last assignment of `anchor` (or at the end when there is none).
    pub fn set_after(&mut self, key: &str, value: &str, anchor: &str) -> Result<usize, SetError> {
        if self.entries.iter().any(|e| e.key == key) {
            return self.set(key, value);
        }
        let before = self.render();
        let n = self.insert_after(key, value, anchor)?;
        self.confirm(before, key, value)?;
        Ok(n)
    }

    fn insert_after(&mut self, key: &str, value: &str, anchor: &str) -> Result<usize, SetError> {
        if !is_plain_value(value) {
            return Err(SetError::UnsafeValue);
        }
        if !is_plain_key(key) {
            return Err(SetError::BadKey(key.to_string()));
        }
        let Some(at) = self.entries.iter().rposition(|e| e.key == anchor) else {
            return self.set_unchecked(key, value);
        };
        let a = &self.entries[at];
        let end = a.value.as_ref().map_or(a.key_at + a.key.len(), |v| v.span.end);
        let eol = self.eol().as_str();
        let (insert_at, text) = match self.text[end..].find('\n') {
            Some(i) => (end + i + 1, format!("{key}={value}{eol}")),
            None => (self.text.len(), format!("{eol}{key}={value}")),
        };
        let key_at = insert_at + text.find(key).expect("just written");
        self.replace(insert_at..insert_at, &text);
        let vstart = key_at + key.len() + 1;
        self.entries.push(Entry {
            key: key.to_string(),
            key_at,
            value: Some(Value { span: vstart..vstart + value.len(), quote: Quote::None, text: value.to_string() }),
        });
        self.entries.sort_by_key(|e| e.key_at);
        Ok(0)
    }

    /// Removes every line that assigns `key`; returns how many.
    pub fn remove(&mut self, key: &str) -> usize {
        let mut n = 0;
        while let Some(i) = self.entries.iter().rposition(|e| e.key == key) {
            let e = self.entries.remove(i);
            let end = e.value.as_ref().map_or(e.key_at + e.key.len(), |v| v.span.end);
            let start = self.text[..e.key_at].rfind('\n').map_or(0, |j| j + 1);
            let stop = self.text[end..].find('\n').map_or(self.text.len(), |j| end + j + 1);
            // The last line without a final newline takes the line break before it along.
            let start = if stop == self.text.len() && !self.text.ends_with('\n') && start > 0 {
                start - if self.text[..start].ends_with("\r\n") { 2 } else { 1 }
            } else {
                start
            };
            self.replace(start..stop, "");
            n += 1;
        }
        n
    }

    /// Replaces a byte range and shifts the spans after it.
    fn replace(&mut self, range: std::ops::Range<usize>, with: &str) {
        let at = range.start;
        // A pure insertion moves what starts at `at`; a replacement keeps the span it replaces.
        let moves = |x: usize| if range.is_empty() { x >= at } else { x > at };
        let delta = with.len() as isize - (range.end - range.start) as isize;
        self.text.replace_range(range.clone(), with);
        self.lines.take();
        for e in &mut self.entries {
            if moves(e.key_at) {
                e.key_at = shift(e.key_at, delta);
            }
            if let Some(v) = &mut e.value
                && moves(v.span.start)
            {
                v.span = shift(v.span.start, delta)..shift(v.span.end, delta);
            }
        }
    }
}

/// The first key whose statements read differently in `a` and `b` (in order, values
/// included), ignoring keys `skip` names; `None` when they read alike. One pass, no copies.
pub fn first_difference<'a>(a: &'a EnvFile, b: &'a EnvFile, skip: &dyn Fn(&str) -> bool) -> Option<&'a str> {
    let view = |e: &'a Entry| (e.key.as_str(), e.value.as_ref().map(|v| v.text.as_str()));
    let mut xs = a.entries.iter().filter(|e| !skip(&e.key)).map(view);
    let mut ys = b.entries.iter().filter(|e| !skip(&e.key)).map(view);
    loop {
        match (xs.next(), ys.next()) {
            (None, None) => return None,
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) => return Some(if x.0 == y.0 { x.0 } else { x.0.min(y.0) }),
            (Some(x), None) => return Some(x.0),
            (None, Some(y)) => return Some(y.0),
        }
    }
}

fn shift(x: usize, delta: isize) -> usize {
    (x as isize + delta) as usize
}

/// Why a value could not be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    #[error("refusing to write a value that would need quoting or escaping")]
    UnsafeValue,
    #[error("{0:?} is not a valid variable name")]
    BadKey(String),
    #[error(
        "writing {0} here would change how the lines around it read (a bare `export` at the end of the file?); edit it by hand"
    )]
    Ambiguous(String),
}

/// Characters that read back unchanged unquoted, single- or double-quoted, by
/// compose, dotenvy and Node's dotenv alike: base64, base64url and RFC 3339 times.
pub fn is_plain_value(value: &str) -> bool {
    value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_' | b'.' | b':'))
}

/// `[A-Za-z_][A-Za-z0-9_]*`: a name every shell and dotenv dialect accepts.
pub fn is_plain_key(key: &str) -> bool {
    let mut b = key.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn decode_utf8(bytes: &[u8]) -> Result<&str, ParseError> {
    if bytes.starts_with(&[0xFF, 0xFE]) {
        return Err(ParseError::Encoding(
            "file is UTF-16 (little-endian, with a byte-order mark), not UTF-8; convert it with `iconv -f UTF-16 -t UTF-8`".into(),
        ));
    }
    if bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(ParseError::Encoding(
            "file is UTF-16 (big-endian, with a byte-order mark), not UTF-8; convert it with `iconv -f UTF-16 -t UTF-8`".into(),
        ));
    }
    std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let prefix = std::str::from_utf8(&bytes[..at]).unwrap_or("");
        let pos = pos_at(prefix, at);
        ParseError::Encoding(format!(
            "{pos}: file is not valid UTF-8 (invalid byte 0x{:02x}); it will not be transcoded",
            bytes[at]
        ))
    })
}

/// The byte offset of every line's start, so that positions cost a binary search
/// instead of a scan from the top (which made checking a long file quadratic).
#[derive(Debug, Clone, Default)]
pub struct LineIndex(Vec<usize>);

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.bytes().enumerate().filter(|(_, b)| *b == b'\n').map(|(i, _)| i + 1));
        LineIndex(starts)
    }

    /// Line and column of byte `offset` in `text`, the text this index was built from.
    pub fn pos(&self, text: &str, offset: usize) -> Pos {
        let offset = offset.min(text.len());
        let line = self.0.partition_point(|&s| s <= offset);
        let start = self.0[line - 1];
        Pos { line, col: text.get(start..offset).map_or(offset - start, |s| s.chars().count()) + 1 }
    }
}

/// Line and column (1-based, columns in characters) of byte `offset` in `text`.
/// Scans from the top: for one-off positions (errors); use `LineIndex` for many.
pub fn pos_at(text: &str, offset: usize) -> Pos {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Pos { line, col: before[line_start..].chars().count() + 1 }
}

/// compose-go's `isSpace`: blanks that are not line breaks.
fn is_space(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}')
}

struct Parser<'a> {
    src: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.src[self.at..]
    }

    fn error(&self, at: usize, message: impl Into<String>) -> ParseError {
        ParseError::Syntax { pos: pos_at(self.src, at), message: message.into() }
    }

    fn entries(mut self) -> Result<Vec<Entry>, ParseError> {
        let mut out = Vec::new();
        while self.statement_start() {
            out.push(self.statement()?);
        }
        Ok(out)
    }

    /// Skips blanks and comment lines; false at the end of input.
    fn statement_start(&mut self) -> bool {
        loop {
            let Some(i) = self.rest().find(|c: char| !c.is_whitespace()) else {
                self.at = self.src.len();
                return false;
            };
            self.at += i;
            if !self.rest().starts_with('#') {
                return true;
            }
            match self.rest().find('\n') {
                Some(nl) => self.at += nl,
                None => {
                    self.at = self.src.len();
                    return false;
                }
            }
        }
    }

    fn statement(&mut self) -> Result<Entry, ParseError> {
        // `export` followed by whitespace is a prefix, not a key.
        if let Some(after) = self.rest().strip_prefix("export")
            && after.starts_with(['\t', '\n', '\u{c}', '\r', ' '])
        {
            self.at += "export".len();
            self.at += self.rest().len() - self.rest().trim_start_matches([' ', '\t', '\n', '\u{c}', '\r']).len();
            self.at += self.rest().len() - self.rest().trim_start_matches(is_space).len();
        }
        let key_start = self.at;
        let mut end = None;
        for (i, c) in self.rest().char_indices() {
            if is_space(c) {
                continue;
            }
            match c {
                '=' | ':' | '\n' => {
                    end = Some((i, c));
                    break;
                }
                '_' | '.' | '-' | '[' | ']' => {}
                c if c.is_alphanumeric() => {}
                c => {
                    return Err(self.error(self.at + i, format!("unexpected character {c:?} in variable name")));
                }
            }
        }
        let (key_len, sep) = end.unwrap_or((self.rest().len(), '\n'));
        let key = self.rest()[..key_len].trim_end_matches(char::is_whitespace).to_string();
        if key.is_empty() {
            return Err(self.error(key_start, "missing variable name before '='"));
        }
        if key.contains(char::is_whitespace) {
            return Err(self.error(key_start, format!("variable name {key:?} contains a space")));
        }
        self.at += key_len;
        if sep == '\n' {
            // Bare `KEY`: inherited from the environment.
            return Ok(Entry { key, key_at: key_start, value: None });
        }
        self.at += 1; // the separator
        let after_sep = self.at;
        self.at += self.rest().len() - self.rest().trim_start_matches(is_space).len();
        let value = match self.rest().chars().next() {
            Some(q @ ('\'' | '"')) => self.quoted(q)?,
            Some('`') => match self.backticked() {
                Some(v) => v,
                None => self.unquoted(after_sep),
            },
            _ => self.unquoted(after_sep),
        };
        Ok(Entry { key, key_at: key_start, value: Some(value) })
    }

    fn unquoted(&mut self, after_sep: usize) -> Value {
        let line_end = self.rest().find('\n').map_or(self.src.len(), |i| self.at + i);
        // A comment starts at a '#' after a space, counting the blanks after the separator.
        let mut end = line_end;
        if let Some(i) = self.src[after_sep..line_end].find(" #") {
            end = end.min(after_sep + i);
        }
        if self.src[after_sep..line_end].starts_with('#') && after_sep < self.at {
            end = after_sep;
        }
        let start = self.at.min(end);
        let text = self.src[start..end].trim_end_matches(char::is_whitespace);
        let span = start..start + text.len();
        self.at = line_end;
        Value { span, quote: Quote::None, text: text.to_string() }
    }

    /// A backtick-quoted value as Node's dotenv reads it. Its pattern, `(?:\\`|[^`])*`
    /// followed by only blanks or a comment to the end of the line, closes at the first
    /// backtick without a `\` before it, or, when what follows that one is not blank,
    /// at the last escaped backtick before it that is followed by nothing else. No
    /// close: Node reads the line unquoted, and so does this.
    fn backticked(&mut self) -> Option<Value> {
        let start = self.at;
        let body = &self.rest()[1..];
        let mut candidates = Vec::new();
        let mut prev = '`';
        for (i, c) in body.char_indices() {
            if c == '`' {
                candidates.push(i);
                if prev != '\\' || i == 0 {
                    break;
                }
            }
            prev = c;
        }
        let close = candidates.into_iter().rev().find(|&i| {
            let after = &body[i + 1..];
            let line = after.split('\n').next().unwrap_or("");
            let line = line.trim_start_matches(char::is_whitespace);
            line.is_empty() || line.starts_with('#')
        })?;
        let end = start + 1 + close + 1;
        // Node reads the file with CRLF turned into LF.
        let text = body[..close].replace("\r\n", "\n");
        self.at = end;
        Some(Value { span: start..end, quote: Quote::Backtick, text })
    }

    fn quoted(&mut self, q: char) -> Result<Value, ParseError> {
        let start = self.at;
        let mut out = String::new();
        let mut escaped = false;
        for (i, c) in self.rest().char_indices().skip(1) {
            if c == q && !escaped {
                let end = start + i + 1;
                self.at = end;
                let text = if q == '"' { unescape_double(&out) } else { out };
                let quote = if q == '"' { Quote::Double } else { Quote::Single };
                return Ok(Value { span: start..end, quote, text });
            }
            if c == q {
                // An escaped quote stands for itself.
                escaped = false;
                out.push(c);
            } else if escaped {
                escaped = false;
                out.push('\\');
                out.push(c);
            } else if c == '\\' {
                escaped = true;
            } else {
                out.push(c);
            }
        }
        Err(self.error(start, format!("unterminated {} quote", if q == '"' { "double" } else { "single" })))
    }
}

/// compose-go's `expandEscapes`: `\n` and `\r` become line breaks, `\x` becomes `x`,
/// and `\$` becomes `$$`, which interpolation reads as a literal `$`.
fn unescape_double(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('$') => out.push_str("$$"),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> EnvFile {
        EnvFile::parse(s.as_bytes()).unwrap()
    }

    fn kv(s: &str) -> Vec<(String, Option<String>)> {
        parse(s).entries.iter().map(|e| (e.key.clone(), e.value.as_ref().map(|v| v.text.clone()))).collect()
    }

    #[test]
    fn compose_dialect() {
        let src = "# c\nexport A=1\nB = two words # note\nC=x#y\nD='a \\' b'\nE=\"a\\nb\" # c\nF\nG: yaml\nH=\nI= # only comment\n  J=`tick`\n";
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            kv(src),
            vec![
                ("A".into(), some("1")),
                ("B".into(), some("two words")),
                ("C".into(), some("x#y")),
                ("D".into(), some("a ' b")),
                ("E".into(), some("a\nb")),
                ("F".into(), None),
                ("G".into(), some("yaml")),
                ("H".into(), some("")),
                ("I".into(), some("")),
                ("J".into(), some("tick")),
            ]
        );
        let f = parse(src);
        assert_eq!(f.pos_of(f.entries()[9].key_at), Pos { line: 11, col: 3 });
    }

    #[test]
    fn backticks_read_as_node_reads_them() {
        let src = "A=`multi\r\nline \"q\" 'q'`\r\nB=`x` # c\nC=`open\nD=`a\\`b` \nE=`a\\`\nF=``\nG= `  sp  `\n";
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            kv(src),
            vec![
                ("A".into(), some("multi\nline \"q\" 'q'")),
                ("B".into(), some("x")),
                ("C".into(), some("`open")),
                ("D".into(), some("a\\`b")),
                ("E".into(), some("a\\")),
                ("F".into(), some("")),
                ("G".into(), some("  sp  ")),
            ]
        );
        // Kept byte for byte, and rotated in place with its quotes.
        let mut f = parse(src);
        assert_eq!(f.render(), src.as_bytes());
        f.set("A", "NEW").unwrap();
        assert!(String::from_utf8(f.render()).unwrap().starts_with("A=`NEW`\r\nB=`x` # c\n"));
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = EnvFile::parse(b"A=1\nB=\"open\nC=2\n").unwrap_err();
        assert_eq!(e.to_string(), "2:3: unterminated double quote");
        let e = EnvFile::parse(b"A=1\n  B$C=1\n").unwrap_err();
        assert_eq!(e.to_string(), "2:4: unexpected character '$' in variable name");
        let e = EnvFile::parse(b"\xff\xfeA\x00").unwrap_err();
        assert!(e.to_string().contains("UTF-16"));
    }

    #[test]
    fn set_keeps_quote_style_and_everything_else() {
        let src = "\u{feff}export A='old' # keep\r\nB=\"old\"\r\nC=old\r\nA=dup";
        let mut f = parse(src);
        assert_eq!(f.set("A", "NEW").unwrap(), 2);
        assert_eq!(f.set("B", "NEW").unwrap(), 1);
        assert_eq!(
            String::from_utf8(f.render()).unwrap(),
            "\u{feff}export A='NEW' # keep\r\nB=\"NEW\"\r\nC=old\r\nA=NEW"
        );
        assert_eq!(f.set("D", "x").unwrap(), 0);
        assert_eq!(
            String::from_utf8(f.render()).unwrap(),
            "\u{feff}export A='NEW' # keep\r\nB=\"NEW\"\r\nC=old\r\nA=NEW\r\nD=x\r\n"
        );
        assert_eq!(f.set("B", "has space"), Err(SetError::UnsafeValue));
    }

    #[test]
    fn insert_after_and_remove_keep_the_rest() {
        let src = "# s\r\nA=1 # one\r\nB='2'\r\n";
        let mut f = parse(src);
        f.set_after("A_PREVIOUS", "old", "A").unwrap();
        f.set_after("A_PREVIOUS_UNTIL", "2026-01-01T00:00:00Z", "A_PREVIOUS").unwrap();
        let text = String::from_utf8(f.render()).unwrap();
        assert_eq!(text, "# s\r\nA=1 # one\r\nA_PREVIOUS=old\r\nA_PREVIOUS_UNTIL=2026-01-01T00:00:00Z\r\nB='2'\r\n");
        assert_eq!(parse(&text).get("A_PREVIOUS_UNTIL"), Some("2026-01-01T00:00:00Z"));
        assert_eq!(f.get("B"), Some("2"));
        assert_eq!(f.remove("A_PREVIOUS"), 1);
        assert_eq!(f.remove("A_PREVIOUS_UNTIL"), 1);
        assert_eq!(String::from_utf8(f.render()).unwrap(), src);
        // At the end of a file without a final newline.
        let mut g = parse("A=1");
        g.set_after("A_PREVIOUS", "0", "A").unwrap();
        assert_eq!(String::from_utf8(g.render()).unwrap(), "A=1\nA_PREVIOUS=0");
        g.remove("A_PREVIOUS");
        assert_eq!(String::from_utf8(g.render()).unwrap(), "A=1");
    }

    #[test]
    fn appending_keeps_a_trailing_bare_export() {
        // Found by the envfile fuzz target: appending after a last `export` line made it a prefix.
        for src in ["export", "T=\"to4=\"\nexport"] {
            let mut f = parse(src);
            let before: Vec<String> = f.entries().iter().map(|e| e.key.clone()).collect();
            f.set("JWT_SECRET", "x").unwrap();
            let again = parse(&String::from_utf8(f.render()).unwrap());
            let keys: Vec<String> = again.entries().iter().map(|e| e.key.clone()).collect();
            assert_eq!(keys.iter().filter(|k| *k != "JWT_SECRET").cloned().collect::<Vec<_>>(), before, "{src:?}");
            assert_eq!(again.get("JWT_SECRET"), Some("x"));
        }
    }

    #[test]
    fn refuses_edits_that_would_change_other_lines() {
        // Found by the envfile fuzz target: a prefixed statement whose key is `export`.
        let src = "DwUG=x\nexport   \nexport\t";
        let mut f = parse(src);
        assert_eq!(f.set("JWT_SECRET", "x"), Err(SetError::Ambiguous("JWT_SECRET".into())));
        assert_eq!(f.render(), src.as_bytes(), "undone");
    }

    #[test]
    fn set_bare_key_and_empty_value() {
        let mut f = parse("A\nB=\nC= # c\n");
        f.set("A", "1").unwrap();
        f.set("B", "2").unwrap();
        f.set("C", "3").unwrap();
        assert_eq!(String::from_utf8(f.render()).unwrap(), "A=1\nB=2\nC=3 # c\n");
        let again = parse(&String::from_utf8(f.render()).unwrap());
        assert_eq!((again.get("A"), again.get("B"), again.get("C")), (Some("1"), Some("2"), Some("3")));
    }
}
