//! Finding the token in what an operator pastes: a bare JWT, `Bearer <jwt>`, an
//! `Authorization:` header line, a cookie header (`access_token=…; refresh_token=…`),
//! or `Set-Cookie:` response lines (one cookie each, then its attributes).

/// Input that holds no token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("no token given (pass it as an argument or on stdin)")]
    Empty,
    #[error("input is not valid UTF-8 at byte {0}")]
    Utf8(usize),
    #[error("the cookie header has no {0:?} cookie")]
    NoCookie(String),
    #[error("the Set-Cookie lines set no {0:?} cookie")]
    NoSetCookie(String),
}

/// Strips `prefix` from the start of `s`, ignoring ASCII case.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    s.get(..prefix.len()).filter(|p| p.eq_ignore_ascii_case(prefix)).map(|_| &s[prefix.len()..])
}

/// The cookie a set of `Set-Cookie:` lines sets: the one named `cookie`, or the only one.
fn from_set_cookie(text: &str, cookie: &str) -> Option<Result<String, InputError>> {
    let set: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| strip_prefix_ci(l.trim(), "set-cookie:"))
        .filter_map(|rest| rest.split(';').next()?.split_once('='))
        .map(|(n, v)| (n.trim(), v.trim().trim_matches('"')))
        .collect();
    if set.is_empty() {
        return None;
    }
    Some(match set.iter().find(|(n, _)| *n == cookie) {
        Some((_, v)) => Ok(v.to_string()),
        None if set.len() == 1 => Ok(set[0].1.to_string()),
        None => Err(InputError::NoSetCookie(cookie.to_string())),
    })
}

/// Extracts the token; `cookie` names the cookie to pick from a cookie header.
pub fn extract(input: &[u8], cookie: &str) -> Result<String, InputError> {
    let text = std::str::from_utf8(input).map_err(|e| InputError::Utf8(e.valid_up_to()))?;
    if let Some(found) = from_set_cookie(text, cookie) {
        return found;
    }
    let mut t = text.trim();
    for prefix in ["authorization:", "cookie:"] {
        if let Some(rest) = strip_prefix_ci(t, prefix) {
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
        assert_eq!(extract(b"COOKIE: access_token=a.b.c", "access_token").unwrap(), "a.b.c");
    }

    #[test]
    fn set_cookie_lines() {
        let one = b"Set-Cookie: access_token=a.b.c; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=900";
        assert_eq!(extract(one, "access_token").unwrap(), "a.b.c");
        // The only cookie set, whatever --cookie says.
        assert_eq!(extract(b"set-cookie: refresh_token=\"d.e.f\"; Path=/api/auth", "access_token").unwrap(), "d.e.f");
        let curl = b"HTTP/1.1 200 OK\r\nset-cookie: access_token=a.b.c; Path=/\r\nset-cookie: refresh_token=d.e.f; Path=/api/auth\r\n";
        assert_eq!(extract(curl, "refresh_token").unwrap(), "d.e.f");
        assert_eq!(extract(curl, "csrf"), Err(InputError::NoSetCookie("csrf".into())));
    }
}
