//! Finding the token in what an operator pastes: a bare JWT, `Bearer <jwt>`, an
//! `Authorization:` header line, or a cookie header (`access_token=…; refresh_token=…`).

/// Input that holds no token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("no token given (pass it as an argument or on stdin)")]
    Empty,
    #[error("input is not valid UTF-8 at byte {0}")]
    Utf8(usize),
    #[error("the cookie header has no {0:?} cookie")]
    NoCookie(String),
}

/// Extracts the token; `cookie` names the cookie to pick from a cookie header.
pub fn extract(input: &[u8], cookie: &str) -> Result<String, InputError> {
    let text = std::str::from_utf8(input).map_err(|e| InputError::Utf8(e.valid_up_to()))?;
    let mut t = text.trim();
    for prefix in ["Authorization:", "authorization:", "Cookie:", "cookie:"] {
        if let Some(rest) = t.strip_prefix(prefix) {
            t = rest.trim();
        }
    }
    if t.is_empty() {
        return Err(InputError::Empty);
    }
    if t.len() > 7 && t.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("bearer ")) {
        return Ok(t[7..].trim().to_string());
    }
    // A cookie header: name=value pairs separated by ';'.
    if t.contains('=') && (t.contains(';') || t.split('=').next().is_some_and(|n| !n.contains('.'))) {
        let found = t.split(';').map(str::trim).find_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            (name.trim() == cookie).then(|| value.trim().trim_matches('"').to_string())
        });
        return found.ok_or_else(|| InputError::NoCookie(cookie.to_string()));
    }
    Ok(t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(extract(b"  a.b.c\n", "access_token").unwrap(), "a.b.c");
        assert_eq!(extract(b"Bearer a.b.c", "access_token").unwrap(), "a.b.c");
        assert_eq!(extract(b"Authorization: bearer a.b.c", "access_token").unwrap(), "a.b.c");
        assert_eq!(extract(b"access_token=a.b.c; refresh_token=d.e.f", "refresh_token").unwrap(), "d.e.f");
        assert_eq!(extract(b"Cookie: access_token=a.b.c", "access_token").unwrap(), "a.b.c");
        assert_eq!(extract(b"csrf_token=x; other=y", "access_token"), Err(InputError::NoCookie("access_token".into())));
        assert_eq!(extract(b"", "access_token"), Err(InputError::Empty));
        assert_eq!(extract(b"ab\xff", "access_token"), Err(InputError::Utf8(2)));
        // Found by the token fuzz target: a multi-byte character across byte 7.
        assert!(extract(")\x03\u{74b}=\n\u{743}=".as_bytes(), "access_token").is_err());
    }
}
