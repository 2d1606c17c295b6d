//! Password hashing: argon2id with OWASP's parameters (m=19456 KiB, t=2, p=1).
//! Each hash costs ~19 MiB and tens of milliseconds: callers bound how many run at once.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::{RngCore, TryRngCore};

/// Longer passwords are refused without hashing (a cheap denial-of-service guard).
pub const MAX_BYTES: usize = 256;
/// Generated passwords: 20 characters from a 57-symbol alphabet (~116 bits).
pub const GENERATED_LEN: usize = 20;

fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(19_456, 2, 1, None).expect("valid parameters"))
}

/// Hashes a password to a PHC string.
pub fn hash(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.unwrap_err().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    argon2().hash_password(password.as_bytes(), &salt).expect("argon2 with valid parameters").to_string()
}

/// Checks a password against a PHC string; false for a malformed hash.
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
}

/// A fresh random password without look-alike characters (0/O, 1/l/I).
pub fn generate() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rngs::OsRng.unwrap_err();
    (0..GENERATED_LEN)
        .map(|_| {
            // Rejection sampling keeps every symbol equally likely.
            loop {
                let b = (rng.next_u32() & 0xff) as usize;
                if b < 256 - 256 % ALPHABET.len() {
                    return ALPHABET[b % ALPHABET.len()] as char;
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash("correct horse");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("correct horse", &h));
        assert!(!verify("correct horse ", &h));
        assert!(!verify("x", "not a hash"));
        let p = generate();
        assert_eq!(p.len(), GENERATED_LEN);
        assert_ne!(p, generate());
    }
}
