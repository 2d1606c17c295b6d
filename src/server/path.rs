//! The request path, decided once before any auth decision: what the role matrix
//! checks is byte for byte what the router dispatches and the gateway forwards, so a
//! backend that normalises paths differently cannot be walked into an area the caller's
//! role does not open (`/api/leads/../jobs`, `/api/ai/%2E%2E/jobs`).

/// Why a path is refused (400 `bad_path`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadPath {
    #[error("the path must start with /")]
    Relative,
    #[error("the path holds a control character, a backslash or a non-ASCII byte")]
    Byte,
    #[error("the path holds a malformed percent escape")]
    Escape,
    #[error("the path holds an encoded /, \\, % or control character")]
    Encoded,
    #[error("the path still holds a . or .. segment")]
    DotSegment,
}

/// Decodes percent-encoded unreserved characters (RFC 3986 §2.3) and removes dot
/// segments (§5.2.4). Refuses raw control characters, backslashes and non-ASCII
/// bytes, and encoded `/`, `\`, `%` (double encoding) and control characters, which
/// backends disagree about. Other escapes are kept as they were sent.
pub fn normalize(raw: &str) -> Result<String, BadPath> {
    if raw == "*" {
        return Ok(raw.to_string()); // OPTIONS *
    }
    // The common case, cheaply: plain ASCII with no escape, backslash, control
    // character or segment starting with a dot is already what it normalises to.
    let plain = raw.starts_with('/')
        && raw.bytes().all(|b| b.is_ascii_graphic() && b != b'%' && b != b'\\')
        && !raw.contains("/.");
    if plain {
        return Ok(raw.to_string());
    }
    if !raw.starts_with('/') {
        return Err(BadPath::Relative);
    }
    let bytes = raw.as_bytes();
    let escape_at = |i: usize| -> Result<u8, BadPath> {
        let hex = bytes.get(i + 1..i + 3).ok_or(BadPath::Escape)?;
        std::str::from_utf8(hex).ok().and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or(BadPath::Escape)
    };
    let mut decoded = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_control() || b == b'\\' || !b.is_ascii() {
            return Err(BadPath::Byte);
        }
        if b != b'%' {
            decoded.push(b as char);
            i += 1;
            continue;
        }
        let value = escape_at(i)?;
        if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
            decoded.push(value as char);
        } else if matches!(value, b'/' | b'\\' | b'%') || value.is_ascii_control() {
            return Err(BadPath::Encoded);
        } else if value.is_ascii() {
            decoded.push_str(&raw[i..i + 3]);
        } else {
            // A run of escaped non-ASCII bytes: it must be UTF-8 (no overlong `%c0%ae`),
            // and hold no character some backends fold into a dot or a slash.
            let start = i;
            let mut utf8 = Vec::new();
            while i < bytes.len() && bytes[i] == b'%' && escape_at(i).is_ok_and(|v| !v.is_ascii()) {
                utf8.push(escape_at(i)?);
                i += 3;
            }
            let text = std::str::from_utf8(&utf8).map_err(|_| BadPath::Encoded)?;
            if folds_to_separator(text) {
                return Err(BadPath::Encoded);
            }
            decoded.push_str(&raw[start..i]);
            continue;
        }
        i += 3;
    }
    // Segments that are dot segments to some backend though not to RFC 3986: `..;x`
    // (path parameters), `...`, `.. ` (Windows trims dots and spaces), and any of those
    // under compatibility normalisation (`%EF%BC%8E%EF%BC%8E`, fullwidth `．．`).
    for seg in decoded[1..].split('/').filter(|s| *s != "." && *s != "..") {
        let seg = nfkc(&unescape(seg));
        let core = seg.split(';').next().unwrap_or("");
        if core.contains('.') && core.chars().all(|c| c == '.' || c == ' ') {
            return Err(BadPath::DotSegment);
        }
    }
    let path = remove_dot_segments(&decoded);
    if path.split('/').any(|s| s == "." || s == "..") {
        return Err(BadPath::DotSegment);
    }
    Ok(path)
}

/// Whether `text` turns into a `/` or `\` under compatibility normalisation (NFKC:
/// U+FF0F fullwidth solidus, U+2100 ℀ "a/c", U+2105 ℅ "c/o" …), which some backends
/// and filesystems apply: it would split a segment in two there, past the matrix. Also
/// slash look-alikes NFKC leaves alone (U+2215 division slash, U+2044 fraction slash,
/// U+29F5 reverse solidus operator), which lenient matchers fold anyway. Characters that
/// fold into dots (U+FF0E, U+2026 …) are refused only where the segment would become a
/// dot segment (see `normalize`): `Café…` or `１．２` are names, not steps up.
fn folds_to_separator(text: &str) -> bool {
    text.chars().any(|c| matches!(c, '\u{2215}' | '\u{2044}' | '\u{29F5}')) || nfkc(text).contains(['/', '\\'])
}

fn nfkc(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    text.nfkc().collect()
}

/// Every `%XX` of a segment decoded (the escapes were checked to be UTF-8 already).
fn unescape(seg: &str) -> String {
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |x: u8| (x as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (b.get(i + 1).and_then(|x| hex(*x)), b.get(i + 2).and_then(|x| hex(*x)))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 3986 §5.2.4 for an absolute path: `.` goes, `..` takes the segment before it
/// (never above the root), and a path ending in a dot segment keeps its final `/`.
fn remove_dot_segments(path: &str) -> String {
    let segments: Vec<&str> = path[1..].split('/').collect();
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *seg {
            "." => {}
            ".." => {
                out.pop();
            }
            s => {
                out.push(s);
                continue;
            }
        }
        if last {
            out.push("");
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_3986_examples_and_the_reviews_attacks() {
        // RFC 3986 §5.2.4's own examples, as absolute paths.
        assert_eq!(normalize("/a/b/c/./../../g").unwrap(), "/a/g");
        assert_eq!(normalize("/mid/content=5/../6").unwrap(), "/mid/6");
        assert_eq!(normalize("/a/b/..").unwrap(), "/a/");
        assert_eq!(normalize("/a/b/.").unwrap(), "/a/b/");
        assert_eq!(normalize("/..").unwrap(), "/");
        assert_eq!(normalize("/../../x").unwrap(), "/x");
        assert_eq!(normalize("/api/leads/../jobs/42/cancel").unwrap(), "/api/jobs/42/cancel");
        assert_eq!(normalize("/api/ai/%2E%2E/jobs/1").unwrap(), "/api/jobs/1");
        assert_eq!(normalize("/api/ai/.%2e/jobs/1").unwrap(), "/api/jobs/1");
        assert_eq!(normalize("/api/leads/%41%7e%2D").unwrap(), "/api/leads/A~-");
        assert_eq!(normalize("/api/leads/a%20b%3F").unwrap(), "/api/leads/a%20b%3F");
        assert_eq!(normalize("/api//leads").unwrap(), "/api//leads");
        assert_eq!(normalize("*").unwrap(), "*");
        for bad in ["/a%2Fb", "/a%2fb", "/a%5Cb", "/a%25", "/a%252E%252E", "/a%00", "/a%0a", "/a%7F"] {
            assert_eq!(normalize(bad), Err(BadPath::Encoded), "{bad}");
        }
        for bad in ["/a\\b", "/a\u{1}", "/a\u{7f}", "/é"] {
            assert_eq!(normalize(bad), Err(BadPath::Byte), "{bad:?}");
        }
        for bad in ["/a%", "/a%4", "/a%zz"] {
            assert_eq!(normalize(bad), Err(BadPath::Escape), "{bad}");
        }
        assert_eq!(normalize("api/leads"), Err(BadPath::Relative));
        for bad in ["/a/..;/b", "/a/%2e%2e;/b", "/a/..%3b/b", "/a/.;x/../b", "/a/.../b", "/a/..%20/b", "/a/.%20./b"] {
            assert_eq!(normalize(bad), Err(BadPath::DotSegment), "{bad}");
        }
        for bad in ["/a/%c0%ae%c0%ae/b", "/a/%ff", "/a/%e2%88%95", "/a/%ef%bc%8f", "/a/%E2%84%85", "/a/x%e2%81%84y"] {
            assert_eq!(normalize(bad), Err(BadPath::Encoded), "{bad}");
        }
        // Look-alike dots are refused where they make a dot segment ．． ‥ ︰ … ︙ ...
        for bad in [
            "/a/%ef%bc%8e%ef%bc%8e/b",
            "/a/%e2%80%a5/b",
            "/a/%ef%b8%b0/b",
            "/a/%e2%80%a6",
            "/a/%ef%b8%99",
            "/a/.%ef%bc%8e;x/b",
        ] {
            assert_eq!(normalize(bad), Err(BadPath::DotSegment), "{bad}");
        }
        // ... and nowhere else: Café…, １．２ are names.
        for name in ["/api/leads/Caf%C3%A9%E2%80%A6", "/api/leads/%EF%BC%91%EF%BC%8E%EF%BC%92", "/a/x%E2%80%A6y"] {
            assert_eq!(normalize(name).unwrap(), name, "{name}");
        }
        assert_eq!(normalize("/a/%C3%A9t%C3%A9/v1.2;rev=3").unwrap(), "/a/%C3%A9t%C3%A9/v1.2;rev=3");
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for p in ["/api/leads/../jobs", "/a/./b/../../c/", "/x/%41/%2E%2E/y", "/a%20b/./c"] {
            let once = normalize(p).unwrap();
            assert_eq!(normalize(&once).unwrap(), once, "{p}");
        }
    }
}
