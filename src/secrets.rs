//! Drawing secrets from the OS CSPRNG, and judging whether a secret is any good.
//! Pure apart from the RNG, which is a parameter.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::{CryptoRng, RngCore, TryRngCore};

/// How a secret's random bytes are written as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// Standard base64 with padding, as Node's `crypto.randomBytes(n).toString('base64')`.
    #[default]
    Base64,
    /// base64url without padding.
    Base64Url,
}

/// Draws `bytes` random bytes and encodes them.
pub fn generate<R: RngCore + CryptoRng>(rng: &mut R, bytes: usize, encoding: Encoding) -> String {
    let mut buf = vec![0u8; bytes];
    rng.fill_bytes(&mut buf);
    let out = match encoding {
        Encoding::Base64 => STANDARD.encode(&buf),
        Encoding::Base64Url => URL_SAFE_NO_PAD.encode(&buf),
    };
    zero(&mut buf);
    out
}

/// Draws from the operating system's CSPRNG.
pub fn generate_os(bytes: usize, encoding: Encoding) -> String {
    generate(&mut rand::rngs::OsRng.unwrap_err(), bytes, encoding)
}

fn zero(buf: &mut [u8]) {
    for b in buf.iter_mut() {
        // Volatile so the compiler cannot drop the wipe of a buffer it sees as dead.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
}

/// Why a secret value is unacceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Weakness {
    Empty,
    Placeholder,
    /// Holds control characters (a CR-only file read as one line, say).
    Control,
    /// Far fewer distinct characters than a random string of its length has: typed, not drawn.
    NotRandom {
        distinct: usize,
    },
    /// Too short: `have` against `need`, counted in `unit`.
    TooShort {
        have: usize,
        need: usize,
        unit: &'static str,
    },
}

impl std::fmt::Display for Weakness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Weakness::Empty => write!(f, "is empty"),
            Weakness::Placeholder => write!(f, "is a placeholder, not a secret"),
            Weakness::Control => {
                write!(f, "holds control characters (a file with CR-only line endings read as one line?)")
            }
            Weakness::NotRandom { distinct } => {
                write!(f, "has only {distinct} distinct characters: typed, not drawn at random (use `aspjwt generate`)")
            }
            Weakness::TooShort { have, need, unit } => {
                write!(f, "is too short: {have} {unit}, needs at least {need}")
            }
        }
    }
}

/// Placeholder words seen in example files; matched case-insensitively against the whole
/// value (after stripping brackets), or as a prefix where the entry ends in `*`.
const PLACEHOLDERS: &[&str] = &[
    "secure_*",
    "secure-*",
    "changeme",
    "change-me",
    "change_me",
    "change-this*",
    "changethis*",
    "your-secret*",
    "your_secret*",
    "yoursecret*",
    "your-jwt*",
    "your_jwt*",
    "replace-me*",
    "replace_me*",
    "replaceme*",
    "secret",
    "secret1*",
    "mysecret*",
    "my-secret*",
    "jwt-secret*",
    "jwt_secret*",
    "password",
    "example",
    "todo",
    "xxx*",
    "test",
    "default",
    "placeholder",
    "insert*",
    "generate*",
    "super-secret*",
    "supersecret*",
];

/// True when `value` is a known placeholder or one character repeated.
pub fn is_placeholder(value: &str) -> bool {
    // A template slot: `<your-secret>`, `[SECURE_TOKEN]`, `{{ jwt_secret }}` (base64 has no brackets).
    let v = value.trim();
    let wrapped =
        |open: &str, close: &str| v.len() > open.len() + close.len() && v.starts_with(open) && v.ends_with(close);
    if wrapped("<", ">") || wrapped("[", "]") || wrapped("{{", "}}") || wrapped("${{", "}}") {
        return true;
    }
    let trimmed = value.trim().trim_matches(|c| matches!(c, '[' | ']' | '<' | '>' | '{' | '}' | '*'));
    let lower = trimmed.to_ascii_lowercase();
    let mut chars = lower.chars();
    if let Some(first) = chars.next()
        && chars.all(|c| c == first)
    {
        return true;
    }
    // Instructions left in the value: "your-super-secret-jwt-key-change-this-in-production".
    const TELLS: [&str; 8] =
        ["change-this", "change_this", "changethis", "change-me", "changeme", "change_me", "replace-me", "replace_me"];
    if TELLS.iter().any(|t| lower.contains(t)) || lower.starts_with("your-") || lower.starts_with("your_") {
        return true;
    }
    PLACEHOLDERS.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => lower.starts_with(prefix),
        None => lower == *p,
    })
}

/// Decoded length when `value` is base64 (standard or url-safe, padded or not).
pub fn base64_len(value: &str) -> Option<usize> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE};
    [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(value).ok())
        .map(|v| v.len())
}

/// Judges a secret against its minimum: `min` decoded bytes for base64 input,
/// or `min` characters otherwise.
pub fn weakness(value: &str, min: usize) -> Option<Weakness> {
    if value.is_empty() {
        return Some(Weakness::Empty);
    }
    if is_placeholder(value) {
        return Some(Weakness::Placeholder);
    }
    if value.chars().any(char::is_control) {
        return Some(Weakness::Control);
    }
    // A handful of characters repeated ("abab…", "0101…"): typed, not drawn. Random text
    // over even the smallest alphabet in use (hex) shows far more: 32 random hex digits
    // use fewer than 8 of the 16 once in ~25 million.
    let distinct = value.chars().collect::<std::collections::BTreeSet<_>>().len();
    if value.chars().count() >= 32 && distinct < 8 {
        return Some(Weakness::NotRandom { distinct });
    }
    let (have, unit) = strength(value);
    (have < min).then_some(Weakness::TooShort { have, need: min, unit })
}

/// How much a secret holds, by the alphabet it is written in: hex (`openssl rand -hex`)
/// carries a byte per two digits, decimal digits 3.3 bits each, base64 its decoded
/// bytes; anything else is counted in characters. Hex and digits are also valid base64,
/// which would overstate them by half.
pub fn strength(value: &str) -> (usize, &'static str) {
    let n = value.chars().count();
    if n >= 2 && value.bytes().all(|b| b.is_ascii_digit()) {
        return (n * 332 / 800, "bytes (decimal digits)");
    }
    if n >= 2 && n.is_multiple_of(2) && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return (n / 2, "bytes (hex)");
    }
    match base64_len(value) {
        Some(b) => (b, "decoded bytes"),
        None => (n, "characters"),
    }
}

/// What may be shown of a secret: its first four characters, and only when that
/// leaves most of it hidden.
pub fn mask(value: &str) -> String {
    let n = value.chars().count();
    if n >= 16 {
        let head: String = value.chars().take(4).collect();
        format!("{head}…")
    } else {
        "…".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn generated_lengths_match_node_random_bytes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        assert_eq!(generate(&mut rng, 64, Encoding::Base64).len(), 88);
        assert_eq!(generate(&mut rng, 32, Encoding::Base64).len(), 44);
        let url = generate(&mut rng, 64, Encoding::Base64Url);
        assert_eq!(url.len(), 86);
        assert!(!url.contains(['+', '/', '=']));
    }

    #[test]
    fn os_secrets_differ() {
        assert_ne!(generate_os(32, Encoding::Base64), generate_os(32, Encoding::Base64));
    }

    #[test]
    fn typed_and_broken_values_are_weak() {
        let long = "your-super-secret-jwt-key-change-this-in-production-please-0123456789";
        assert_eq!(weakness(long, 64), Some(Weakness::Placeholder));
        // 70 decimal digits hold 29 bytes: short of 32 (and no longer read as 52 base64 bytes).
        assert_eq!(
            weakness(&"0123456789".repeat(7), 32),
            Some(Weakness::TooShort { have: 29, need: 32, unit: "bytes (decimal digits)" })
        );
        assert_eq!(weakness(&"ab".repeat(40), 32), Some(Weakness::NotRandom { distinct: 2 }));
        // Random hex (openssl rand -hex 32) passes, always, and counts as 32 bytes.
        for _ in 0..500 {
            let mut b = [0u8; 32];
            rand::rngs::OsRng.try_fill_bytes(&mut b).unwrap();
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            assert_eq!(weakness(&hex, 32), None, "{hex}");
            assert_eq!(strength(&hex), (32, "bytes (hex)"));
        }
        assert_eq!(weakness("abc\rJWT_REFRESH_SECRET=xyz", 8), Some(Weakness::Control));
        // Drawn secrets pass, however many times.
        for _ in 0..200 {
            assert_eq!(weakness(&generate_os(32, Encoding::Base64), 32), None);
            assert_eq!(weakness(&generate_os(64, Encoding::Base64Url), 64), None);
        }
    }

    #[test]
    fn placeholders() {
        for p in [
            "[SECURE_TOKEN]",
            "changeme",
            "your-secret-key-here",
            "secret",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "CHANGE-THIS! VERY IMPORTANT!",
            "secret1233",
            "[SECURE_REFRESH_TOKEN]",
            "SECURE_SESSION_TOKEN",
            "<your-secret>",
            "<paste the secret here>",
            "{{ jwt_secret }}",
            "CHANGE_ME",
            "xxx",
        ] {
            assert!(is_placeholder(p), "{p}");
        }
        assert!(!is_placeholder(&generate_os(32, Encoding::Base64)));
    }

    #[test]
    fn length_rules() {
        let good = generate_os(64, Encoding::Base64);
        assert_eq!(weakness(&good, 64), None);
        let short = generate_os(63, Encoding::Base64);
        assert_eq!(weakness(&short, 64), Some(Weakness::TooShort { have: 63, need: 64, unit: "decoded bytes" }));
        assert_eq!(
            weakness("not base64! but long enough?", 64),
            Some(Weakness::TooShort { have: 28, need: 64, unit: "characters" })
        );
        assert_eq!(weakness("", 32), Some(Weakness::Empty));
    }

    #[test]
    fn mask_hides_short_values_entirely() {
        assert_eq!(mask("abcdefghijklmnopqrstuvwxyz"), "abcd…");
        assert_eq!(mask("hunter2"), "…");
    }
}
