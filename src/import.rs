//! `aspjwt user import`: reading the CRM's users, with their password hashes, from a
//! JSON array or a CSV file, and judging each row before anything is written. Pure: the
//! store applies what this accepts (`Store::import_users`), in one transaction.

use serde_json::Value;

use crate::password::{self, Scheme};
use crate::store::ImportUser;
use crate::users;

/// The columns (or JSON fields) an import reads.
pub const COLUMNS: [&str; 6] = ["email", "name", "role", "password_hash", "disabled", "id"];
const REQUIRED: [&str; 4] = ["email", "name", "role", "password_hash"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

impl Format {
    /// `--format`, else the file's extension, else the first character (`[` is JSON).
    pub fn detect(path: &str, text: &str) -> Format {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".json") {
            Format::Json
        } else if lower.ends_with(".csv") {
            Format::Csv
        } else if text.trim_start_matches('\u{feff}').trim_start().starts_with('[') {
            Format::Json
        } else {
            Format::Csv
        }
    }
}

/// One user accepted for import (its email normalised, its role one of ours after
/// `--role-map`), with the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub line: usize,
    pub user: ImportUser,
}

impl Row {
    pub fn scheme(&self) -> Scheme {
        Scheme::of(&self.user.password_hash).unwrap_or(Scheme::Argon2id)
    }
}

/// A row refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Refused {
    pub line: usize,
    pub reason: String,
}

/// What a file held: the rows accepted and those refused, in file order.
#[derive(Debug, Default)]
pub struct Parsed {
    pub rows: Vec<Row>,
    pub refused: Vec<Refused>,
    /// Columns the file has that an import does not read (a note, not an error).
    pub ignored: Vec<String>,
}

/// `--role-map admin=admin,agent=sales_agent`: the old backend's role names to ours.
pub fn role_map(spec: &str) -> Result<Vec<(String, String)>, String> {
    spec.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            let (old, new) = pair.split_once('=').ok_or_else(|| format!("--role-map: {pair:?} is not OLD=NEW"))?;
            users::check_role(new.trim()).map_err(|e| format!("--role-map: {e}"))?;
            Ok((old.trim().to_string(), new.trim().to_string()))
        })
        .collect()
}

/// Reads and judges every row. An error is about the whole file (not JSON, not an
/// array, no header, a required column missing); a bad row is refused with its line.
pub fn parse(text: &str, format: Format, roles: &[(String, String)]) -> Result<Parsed, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let records = match format {
        Format::Json => json_records(text)?,
        Format::Csv => csv_records(text)?,
    };
    let mut out = Parsed::default();
    let mut seen = std::collections::HashMap::new();
    let mut ids = std::collections::HashMap::new();
    for (line, fields, ignored) in records {
        for name in ignored {
            if !out.ignored.contains(&name) {
                out.ignored.push(name);
            }
        }
        match fields.and_then(|fields| row(line, &fields, roles)) {
            Err(reason) => out.refused.push(Refused { line, reason }),
            Ok(r) => {
                let id_first = r.user.id.as_ref().and_then(|id| ids.get(id).copied());
                if let Some(first) = seen.get(&r.user.email) {
                    out.refused.push(Refused { line, reason: format!("{} is also on line {first}", r.user.email) });
                } else if let Some(first) = id_first {
                    let id = r.user.id.as_deref().unwrap_or_default();
                    out.refused.push(Refused { line, reason: format!("id {id:?} is also on line {first}") });
                } else {
                    seen.insert(r.user.email.clone(), line);
                    if let Some(id) = &r.user.id {
                        ids.insert(id.clone(), line);
                    }
                    out.rows.push(r);
                }
            }
        }
    }
    Ok(out)
}

/// A record's fields by column name (only the columns an import reads).
type Fields = Vec<(String, Value)>;

fn field<'a>(fields: &'a Fields, name: &str) -> Option<&'a Value> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v).filter(|v| !v.is_null())
}

/// A value quoted in a refusal: a password hash (a column mix-up) is never echoed, and a
/// long value is cut.
fn shown(value: &str) -> String {
    if looks_like_a_hash(value) {
        return "(a password hash)".into();
    }
    let cut: String = value.chars().take(40).collect();
    if cut.len() < value.len() { format!("{cut:?}…") } else { format!("{cut:?}") }
}

/// Whether a value holds something like a password hash anywhere (a nested JSON value
/// included).
fn looks_like_a_hash(value: &str) -> bool {
    value.contains("$argon2") || ["$2a$", "$2b$", "$2y$", "$2x$"].iter().any(|p| value.contains(p))
}

/// One record judged.
fn row(line: usize, fields: &Fields, roles: &[(String, String)]) -> Result<Row, String> {
    let text = |name: &str| -> Result<String, String> {
        match field(fields, name) {
            None => Err(format!("{name} is missing")),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            Some(Value::String(_)) => Err(format!("{name} is empty")),
            Some(other) => Err(format!("{name} must be a string, not {}", shown(&other.to_string()))),
        }
    };
    let email = text("email")?;
    if looks_like_a_hash(&email) {
        return Err("email holds a password hash: are the columns in the right order?".into());
    }
    users::check_email(&email).map_err(|e| format!("email: {e}"))?;
    let name = text("name")?;
    if looks_like_a_hash(&name) {
        return Err("name holds a password hash: are the columns in the right order?".into());
    }
    if name.chars().count() > 200 || users::has_control(&name) {
        return Err("name must be 1 to 200 printable characters".into());
    }
    let old_role = text("role")?;
    let role = roles.iter().find(|(old, _)| *old == old_role).map_or(old_role.clone(), |(_, new)| new.clone());
    if users::check_role(&role).is_err() {
        let old_role = shown(&old_role);
        return Err(format!(
            "role {old_role} is not one of ours ({}); map it with --role-map OLD=NEW",
            crate::names::ROLES.join(", ")
        ));
    }
    let password_hash = text("password_hash")?;
    password::check_imported(&password_hash).map_err(|e| format!("password_hash: {e}"))?;
    // Absent (or empty): a new user is enabled, an updated one keeps its status.
    let disabled = match field(fields, "disabled") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::Number(n)) if n.as_u64() == Some(0) || n.as_u64() == Some(1) => Some(n.as_u64() == Some(1)),
        // psql's CSV writes booleans as t and f.
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "" => None,
            "false" | "f" | "0" | "no" => Some(false),
            "true" | "t" | "1" | "yes" => Some(true),
            other => return Err(format!("disabled must be true or false, not {}", shown(other))),
        },
        Some(other) => return Err(format!("disabled must be true or false, not {}", shown(&other.to_string()))),
    };
    let id = match field(fields, "id") {
        None => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(v) => {
            let id = v.as_str().map(str::to_string).or_else(|| v.as_u64().map(|n| n.to_string()));
            let ok =
                |id: &String| id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            Some(
                id.filter(ok).ok_or_else(|| {
                    format!("id must be 1 to 64 letters, digits, - or _, not {}", shown(&v.to_string()))
                })?,
            )
        }
    };
    let email = crate::store::normalize_email(&email);
    Ok(Row { line, user: ImportUser { id, email, name, role, password_hash, disabled } })
}

/// A file's records: the line each starts on, its fields (or why it is not a record),
/// and the columns it has that an import does not read.
type Records = Vec<(usize, Result<Fields, String>, Vec<String>)>;

/// The elements of a JSON array, each with the line it starts on.
fn json_records(text: &str) -> Result<Records, String> {
    // Lines counted from the last offset asked for: offsets only grow, so the whole
    // file is scanned once (a rescan per element made 20,000 users take a minute).
    let counted = std::cell::Cell::new((0usize, 1usize));
    let line_of = |offset: usize| {
        let (from, line) = counted.get();
        let line = line + text[from..offset].matches('\n').count();
        counted.set((offset, line));
        line
    };
    let column_of = |offset: usize| offset - text[..offset].rfind('\n').map_or(0, |n| n + 1) + 1;
    let skip_ws = |mut i: usize| {
        while text[i..].starts_with(|c: char| c.is_whitespace()) {
            i += text[i..].chars().next().map_or(1, char::len_utf8);
        }
        i
    };
    let mut i = skip_ws(0);
    if !text[i..].starts_with('[') {
        return Err(format!("{}: a JSON import is an array of users ([{{\"email\": …}}, …])", line_of(i)));
    }
    i = skip_ws(i + 1);
    let mut out = Vec::new();
    if text[i..].starts_with(']') {
        return Ok(out);
    }
    loop {
        let start = i;
        let mut values = serde_json::Deserializer::from_str(&text[i..]).into_iter::<Value>();
        let value = match values.next() {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                // serde_json counts from the element's start; said from the file's.
                let (line, column) = match e.line() {
                    1 => (line_of(start), column_of(start) + e.column() - 1),
                    n => (line_of(start) + n - 1, e.column()),
                };
                let msg = e.to_string();
                let msg = msg.rsplit_once(" at line ").map_or(msg.as_str(), |(m, _)| m).to_string();
                return Err(format!("{line}:{column}: {msg}"));
            }
            None => return Err(format!("{}: the array is not closed", line_of(start))),
        };
        i = skip_ws(i + values.byte_offset());
        let line = line_of(start);
        match value {
            Value::Object(map) => {
                let ignored = map.keys().filter(|k| !COLUMNS.contains(&k.as_str())).cloned().collect();
                let fields = map.into_iter().filter(|(k, _)| COLUMNS.contains(&k.as_str())).collect();
                out.push((line, Ok(fields), ignored));
            }
            other => {
                let kind = match other {
                    Value::Array(_) => "an array",
                    Value::String(_) => "a string",
                    Value::Number(_) => "a number",
                    _ => "null or a boolean",
                };
                out.push((line, Err(format!("a user is an object {{\"email\": …}}, not {kind}")), vec![]));
            }
        }
        match text[i..].chars().next() {
            Some(',') => i = skip_ws(i + 1),
            Some(']') => {
                let rest = skip_ws(i + 1);
                if rest < text.len() {
                    return Err(format!("{}: text after the array", line_of(rest)));
                }
                return Ok(out);
            }
            _ => return Err(format!("{}: expected , or ] after the user that starts on line {line}", line_of(i))),
        }
    }
}

/// The line of the record that starts at byte `offset` (after a CRLF the reader's position
/// is the LF it has not consumed yet).
fn line_at(text: &str, mut offset: usize) -> usize {
    while matches!(text.as_bytes().get(offset), Some(b'\r' | b'\n')) {
        offset += 1;
    }
    text.as_bytes()[..offset.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
}

/// The records of a CSV file with a header, each with its line (quoted fields may hold
/// commas and line breaks).
fn csv_records(text: &str) -> Result<Records, String> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(text.as_bytes());
    let header: Vec<String> =
        reader.headers().map_err(|e| format!("1: {e}"))?.iter().map(|h| h.trim().to_ascii_lowercase()).collect();
    if let Some(missing) = REQUIRED.iter().find(|c| !header.iter().any(|h| h == *c)) {
        return Err(format!(
            "1: the header has no {missing} column (it needs {}; optional: disabled, id)",
            REQUIRED.join(", ")
        ));
    }
    let ignored: Vec<String> = header.iter().filter(|h| !COLUMNS.contains(&h.as_str())).cloned().collect();
    let mut out = Vec::new();
    let mut lines = (0usize, 1usize);
    for record in reader.records() {
        let record = record.map_err(|e| match e.position() {
            Some(p) => format!("{}: {e}", line_at(text, p.byte() as usize)),
            None => e.to_string(),
        })?;
        // From the byte offset, not the reader's line count (which CRLF files throw off).
        let mut offset = record.position().map_or(0, |p| p.byte() as usize);
        while matches!(text.as_bytes().get(offset), Some(b'\r' | b'\n')) {
            offset += 1;
        }
        let (from, counted) = lines;
        let line = counted + text.as_bytes()[from..offset].iter().filter(|b| **b == b'\n').count();
        lines = (offset, line);
        let fields = header
            .iter()
            .zip(record.iter())
            .filter(|(h, _)| COLUMNS.contains(&h.as_str()))
            .map(|(h, v)| (h.clone(), Value::String(v.to_string())))
            .collect();
        out.push((line, Ok(fields), ignored.clone()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2b$04$OHTjwuLaNUDBow/2jziyf.UOICE4/OBrHEmT7IwNC0zMYQkyc5rkK";

    #[test]
    fn json_rows_carry_their_lines() {
        let text = format!(
            "[\n  {{\"email\": \"A@Example.com\", \"name\": \"A\", \"role\": \"agent\", \"password_hash\": \"{HASH}\"}},\n  \
             {{\"email\": \"b@example.com\",\n   \"name\": \"B\", \"role\": \"boss\", \"password_hash\": \"{HASH}\"}},\n  \
             {{\"email\": \"c@example.com\", \"name\": \"C\", \"role\": \"admin\", \"password_hash\": \"nope\", \"created_at\": 1}}\n]\n"
        );
        let roles = role_map("agent=sales_agent").unwrap();
        let p = parse(&text, Format::Json, &roles).unwrap();
        assert_eq!(p.rows.len(), 1);
        assert_eq!(
            (p.rows[0].line, p.rows[0].user.email.as_str(), p.rows[0].user.role.as_str()),
            (2, "a@example.com", "sales_agent")
        );
        assert_eq!(p.refused.iter().map(|r| r.line).collect::<Vec<_>>(), [3, 5]);
        assert!(p.refused[0].reason.contains("role \"boss\""), "{:?}", p.refused);
        assert!(p.refused[1].reason.starts_with("password_hash: "), "{:?}", p.refused);
        assert_eq!(p.ignored, ["created_at"]);
        assert!(parse("{}", Format::Json, &[]).unwrap_err().contains("array"));
        assert_eq!(parse("[\n {\"email\": }]", Format::Json, &[]).unwrap_err(), "2:12: expected value");
        assert!(parse("[1]", Format::Json, &[]).unwrap().refused[0].reason.starts_with("a user is an object"));
    }

    #[test]
    fn csv_rows_with_quoted_commas_and_duplicates() {
        // A quoted name with a comma and a quote; a note over two lines (a column not read).
        let text = format!(
            "email,name,role,password_hash,disabled,notes\n\
             a@example.com,\"Smith, \"\"Ann\"\"\",admin,{HASH},false,\n\
             b@example.com,B,support,{HASH},true,\"two\nlines\"\n\
             A@example.com,Again,support,{HASH},,\n\
             c@example.com,\"Line\nbreak\",support,{HASH},,\n"
        );
        let p = parse(&text, Format::Csv, &[]).unwrap();
        assert_eq!(p.rows.len(), 2);
        assert_eq!(p.rows[0].user.name, "Smith, \"Ann\"");
        assert_eq!(p.rows[1].user.disabled, Some(true));
        assert_eq!(p.ignored, ["notes"]);
        assert_eq!(
            p.refused,
            [
                Refused { line: 5, reason: "a@example.com is also on line 2".into() },
                Refused { line: 6, reason: "name must be 1 to 200 printable characters".into() },
            ]
        );
        assert!(parse("email,name\n", Format::Csv, &[]).unwrap_err().contains("no role column"));
        // psql's booleans, CRLF line ends, an id twice, a hash in the wrong column.
        let text = format!(
            "email,name,role,password_hash,disabled,id\r\n\
             a@example.com,A,admin,{HASH},t,7\r\n\
             b@example.com,B,admin,{HASH},f,7\r\n\
             {HASH},C,admin,c@example.com,f,8\r\n"
        );
        let p = parse(&text, Format::Csv, &[]).unwrap();
        assert_eq!(p.rows.len(), 1);
        assert_eq!(p.rows[0].user.disabled, Some(true));
        assert_eq!(
            p.refused,
            [
                Refused { line: 3, reason: "id \"7\" is also on line 2".into() },
                Refused { line: 4, reason: "email holds a password hash: are the columns in the right order?".into() },
            ]
        );
        assert!(!format!("{:?}", p.refused).contains("$2b$"));
        // A short row on line 4 of a CRLF file; an array instead of an object, holding a hash.
        let text =
            format!("email,name,role,password_hash\r\na@x.io,A,admin,{HASH}\r\nb@x.io,B,admin,{HASH}\r\nc@x.io,C\r\n");
        assert!(parse(&text, Format::Csv, &[]).unwrap_err().starts_with("4: "), "{:?}", parse(&text, Format::Csv, &[]));
        let p = parse(&format!("[[\"a@x.io\", \"A\", \"admin\", \"{HASH}\"]]"), Format::Json, &[]).unwrap();
        assert_eq!(p.refused[0].reason, "a user is an object {\"email\": …}, not an array");
        let p = parse(
            &format!(
                "[{{\"email\": \"a@x.io\", \"name\": \"A\", \"role\": [\"{HASH}\"], \"password_hash\": \"{HASH}\"}}]"
            ),
            Format::Json,
            &[],
        )
        .unwrap();
        assert!(!p.refused[0].reason.contains("$2b$"), "{:?}", p.refused);
    }

    #[test]
    fn formats_and_role_maps() {
        assert_eq!(Format::detect("users.json", ""), Format::Json);
        assert_eq!(Format::detect("-", "  [ {}"), Format::Json);
        assert_eq!(Format::detect("-", "email,name"), Format::Csv);
        assert!(role_map("a=nope").unwrap_err().contains("not a role"));
        assert!(role_map("a").unwrap_err().contains("OLD=NEW"));
    }
}
