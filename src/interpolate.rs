//! Variable interpolation as docker compose does it (compose-go's `template`), for
//! compose values and `.env` values alike: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`,
//! `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`, `${VAR+alt}`, with
//! defaults that may themselves interpolate. Pure: the caller supplies the lookup.
//!
//! Besides the value, the result says which variables were unset and which defaults
//! were taken, so that `check` can say *why* a secret is empty or a placeholder.

/// A template compose itself would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolationError {
    #[error("invalid interpolation {template:?} at character {at}: expected $$, $NAME or ${{NAME...}}")]
    Invalid { template: String, at: usize },
    #[error("required variable {name} is missing a value{}", reason_suffix(.reason))]
    Required { name: String, reason: String },
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() { String::new() } else { format!(": {reason}") }
}

/// An interpolated value and how it came about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    pub value: String,
    /// Variables referenced without a default that were not set (they read as "").
    pub unset: Vec<String>,
    /// `(variable, default)` for each default taken because the variable was unset (or empty, for `:-`).
    pub defaulted: Vec<(String, String)>,
}

impl Resolved {
    /// True when the value came from nothing but the template's own text.
    pub fn is_literal(&self) -> bool {
        self.unset.is_empty() && self.defaulted.is_empty()
    }
}

/// Interpolates `template`, looking variables up with `lookup`.
pub fn resolve(template: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Resolved, InterpolationError> {
    let mut out = Resolved::default();
    out.value = expand(template, template, 0, lookup, &mut out, 0)?;
    Ok(out)
}

/// True when compose would substitute something into `value`: a `$` that is not `$$`
/// and is followed by a name or `{`.
pub fn has_references(value: &str) -> bool {
    let b = value.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            match b.get(i + 1) {
                Some(b'$') => {
                    i += 2;
                    continue;
                }
                Some(c) if *c == b'{' || c.is_ascii_alphabetic() || *c == b'_' => return true,
                _ => {}
            }
        }
        i += 1;
    }
    false
}

fn name_len(s: &str) -> usize {
    let b = s.as_bytes();
    if !matches!(b.first(), Some(c) if c.is_ascii_alphabetic() || *c == b'_') {
        return 0;
    }
    b.iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count()
}

/// The index in `s` of the `}` that closes a `${` whose body starts `s`, counting nested `{`.
fn closing_brace(s: &str) -> Option<usize> {
    let mut depth = 1usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn expand(
    s: &str,
    whole: &str,
    base: usize,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut Resolved,
    depth: usize,
) -> Result<String, InterpolationError> {
    let invalid = |at: usize| InterpolationError::Invalid { template: whole.to_string(), at: at + 1 };
    if depth > 32 {
        return Err(invalid(base));
    }
    let mut value = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        value.push_str(&rest[..i]);
        let at = base + (s.len() - rest.len()) + i;
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            value.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let n = name_len(body);
            if n == 0 {
                return Err(invalid(at));
            }
            let name = &body[..n];
            let spec = &body[n..];
            if let Some(tail) = spec.strip_prefix('}') {
                match lookup(name) {
                    Some(v) => value.push_str(&v),
                    None => out.unset.push(name.to_string()),
                }
                rest = tail;
                continue;
            }
            let (colon, op_at) = if spec.starts_with(':') { (true, 1) } else { (false, 0) };
            let op = spec[op_at..].chars().next().filter(|c| matches!(c, '-' | '?' | '+')).ok_or(invalid(at))?;
            let arg_start = op_at + 1;
            let close = closing_brace(&spec[arg_start..]).ok_or(invalid(at))?;
            let arg_text = &spec[arg_start..arg_start + close];
            let arg_base = at + 2 + n + arg_start;
            let current = lookup(name);
            let absent = match &current {
                None => true,
                Some(v) => colon && v.is_empty(),
            };
            match op {
                '-' => {
                    if absent {
                        let d = expand(arg_text, whole, arg_base, lookup, out, depth + 1)?;
                        out.defaulted.push((name.to_string(), d.clone()));
                        value.push_str(&d);
                    } else {
                        value.push_str(current.as_deref().unwrap_or(""));
                    }
                }
                '?' => {
                    let reason = expand(arg_text, whole, arg_base, lookup, out, depth + 1)?;
                    if absent {
                        return Err(InterpolationError::Required { name: name.to_string(), reason });
                    }
                    value.push_str(current.as_deref().unwrap_or(""));
                }
                _ => {
                    let alt = expand(arg_text, whole, arg_base, lookup, out, depth + 1)?;
                    if !absent {
                        value.push_str(&alt);
                    } else {
                        value.push_str(current.as_deref().unwrap_or(""));
                    }
                }
            }
            rest = &spec[arg_start + close + 1..];
        } else {
            let n = name_len(after);
            if n == 0 {
                // A `$` before anything else is itself.
                value.push('$');
                rest = after;
                continue;
            }
            let name = &after[..n];
            match lookup(name) {
                Some(v) => value.push_str(&v),
                None => out.unset.push(name.to_string()),
            }
            rest = &after[n..];
        }
    }
    value.push_str(rest);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SET" => Some("value".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn r(t: &str) -> Result<Resolved, InterpolationError> {
        resolve(t, &env)
    }

    fn v(t: &str) -> String {
        r(t).unwrap().value
    }

    #[test]
    fn every_form_compose_knows() {
        assert_eq!(v("plain"), "plain");
        assert_eq!(v("$$SET and $$"), "$SET and $");
        assert_eq!(v("a$SET-b"), "avalue-b");
        assert_eq!(v("${SET}x"), "valuex");
        assert_eq!(v("${UNSET:-d}|${EMPTY:-d}|${SET:-d}"), "d|d|value");
        assert_eq!(v("${UNSET-d}|${EMPTY-d}|${SET-d}"), "d||value");
        assert_eq!(v("${UNSET:+a}|${EMPTY:+a}|${SET:+a}"), "||a");
        assert_eq!(v("${UNSET+a}|${EMPTY+a}|${SET+a}"), "|a|a");
        assert_eq!(v("${UNSET:-${SET}}/${UNSET:-x${UNSET2:-y}z}"), "value/xyz");
        assert_eq!(v("price $5, 100$"), "price $5, 100$");
        assert_eq!(v("${SET?no}"), "value");
    }

    #[test]
    fn reports_what_was_unset_and_defaulted() {
        let x = r("${JWT_SECRET}").unwrap();
        assert_eq!((x.value.as_str(), x.unset.clone()), ("", vec!["JWT_SECRET".to_string()]));
        let x = r("${JWT_REFRESH_SECRET:-changeme}").unwrap();
        assert_eq!(x.defaulted, vec![("JWT_REFRESH_SECRET".to_string(), "changeme".to_string())]);
        assert!(r("$$literal").unwrap().is_literal());
    }

    #[test]
    fn errors_compose_raises() {
        assert_eq!(
            r("${UNSET:?set it}").unwrap_err().to_string(),
            "required variable UNSET is missing a value: set it"
        );
        assert!(matches!(r("${EMPTY:?}"), Err(InterpolationError::Required { .. })));
        assert_eq!(v("${EMPTY?}"), "");
        for bad in ["${N.VAR}", "${${X}}", "${", "${A", "${A:x}", "${}", "x ${SET:-unclosed"] {
            assert!(matches!(r(bad), Err(InterpolationError::Invalid { .. })), "{bad}");
        }
        assert!(has_references("${A}") && has_references("x$A") && !has_references("$$A") && !has_references("$5"));
    }
}
