//! Password hashing: argon2id with OWASP's parameters (m=19456 KiB, t=2, p=1).
//! Each hash works through ~19 MiB: callers bound how many run at once, and the
//! memory is taken from a small pool and reused, so a login flood neither
//! allocates 19 MiB per attempt nor leaves freed blocks stranded in allocator arenas.

use std::sync::Mutex;

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use rand::{RngCore, TryRngCore};

/// Longer passwords are refused without hashing (a cheap denial-of-service guard).
pub const MAX_BYTES: usize = 256;
/// Generated passwords: 20 characters from a 57-symbol alphabet (~116 bits).
pub const GENERATED_LEN: usize = 20;

const M_COST: u32 = 19_456;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
const OUTPUT: usize = 32;

/// Work buffers kept for reuse (the service hashes at most two at once); more are freed.
const POOL_SIZE: usize = 2;
static POOL: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());
/// When a buffer was last used (seconds since the epoch).
static LAST_USE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn epoch_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Frees the pooled work buffers (~19 MiB each) when no hash ran for `idle`, so a
/// service that has stopped taking logins gives the memory back.
pub fn release_idle(idle: std::time::Duration) -> usize {
    if epoch_secs().saturating_sub(LAST_USE.load(std::sync::atomic::Ordering::Relaxed)) < idle.as_secs() {
        return 0;
    }
    let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
    let n = pool.len();
    pool.clear();
    pool.shrink_to_fit();
    n
}

/// Verified against when an email is unknown, so that it costs what a wrong password
/// costs. Its password was random and discarded; a match could not log anyone in anyway.
pub const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$pRDhwb8dNCmtmuJLSjK8yQ$QbGo4lgfXy4DxwCwlUWZ5ljuW8odL/gNhhuZDQPEc54";

/// Runs argon2id over `password` and `salt` with `params`, into `out`, in pooled memory.
fn argon2_into(params: &Params, password: &[u8], salt: &[u8], out: &mut [u8]) -> Result<(), argon2::Error> {
    let need = params.block_count();
    LAST_USE.store(epoch_secs(), std::sync::atomic::Ordering::Relaxed);
    let mut blocks = POOL.lock().unwrap_or_else(|p| p.into_inner()).pop().unwrap_or_default();
    if blocks.len() < need {
        blocks.resize(need, Block::default());
    }
    let result = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone()).hash_password_into_with_memory(
        password,
        salt,
        out,
        &mut blocks[..need],
    );
    let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
    if pool.len() < POOL_SIZE {
        pool.push(blocks);
    }
    result
}

fn params() -> Params {
    Params::new(M_COST, T_COST, P_COST, Some(OUTPUT)).expect("valid parameters")
}

/// Hashes a password to a PHC string.
pub fn hash(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.unwrap_err().fill_bytes(&mut salt);
    let mut out = [0u8; OUTPUT];
    argon2_into(&params(), password.as_bytes(), &salt, &mut out).expect("argon2 with valid parameters");
    format!(
        "$argon2id$v=19$m={M_COST},t={T_COST},p={P_COST}${}${}",
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(out)
    )
}

/// Whether a stored hash (from a backup, say) is one the service can verify at a bounded
/// cost: argon2id with a salt and a hash, memory 8–256 MiB, 1–10 passes, 1–8 lanes. A
/// hash asking for 2 GiB or 2^32 passes would make each login an outage; a weak one
/// would make the password cheap to guess.
pub fn check_stored(phc: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(phc).map_err(|_| "not a PHC string ($argon2id$…)".to_string())?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(format!("{} is not argon2id", parsed.algorithm.as_str()));
    }
    let params = Params::try_from(&parsed).map_err(|e| format!("bad argon2 parameters ({e})"))?;
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err("the salt or the hash part is missing".into());
    }
    let (m, t, p) = (params.m_cost(), params.t_cost(), params.p_cost());
    if !(8 * 1024..=256 * 1024).contains(&m) || !(1..=10).contains(&t) || !(1..=8).contains(&p) {
        return Err(format!("argon2 parameters m={m}, t={t}, p={p} are outside m=8192–262144, t=1–10, p=1–8"));
    }
    Ok(())
}

/// Checks a password against a PHC string (with the parameters it records);
/// false for a malformed hash. The comparison is constant-time.
pub fn verify(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    if parsed.algorithm.as_str() != "argon2id" {
        return false;
    }
    let (Ok(params), Some(salt), Some(expected)) = (Params::try_from(&parsed), parsed.salt, parsed.hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else { return false };
    let expected = expected.as_bytes();
    if expected.is_empty() || expected.len() > 64 {
        return false;
    }
    let mut out = vec![0u8; expected.len()];
    if argon2_into(&params, password.as_bytes(), salt, &mut out).is_err() {
        return false;
    }
    out.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
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
    use argon2::password_hash::{PasswordHasher, SaltString};

    #[test]
    fn stored_hashes_must_be_argon2id_at_a_bounded_cost() {
        assert_eq!(check_stored(&hash("a long enough password")), Ok(()));
        assert_eq!(check_stored(DUMMY_HASH), Ok(()));
        for bad in [
            "hunter2",
            "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0",
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
            "$argon2id$v=19$m=2097152,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
            "$argon2id$v=19$m=19456,t=4294967295,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        ] {
            assert!(check_stored(bad).is_err(), "{bad}");
        }
    }

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

    #[test]
    fn interoperates_with_the_reference_phc_encoder() {
        // A hash made by the argon2 crate's own PasswordHasher verifies here, and ours there.
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
            .hash_password(b"pw-123456", &salt)
            .unwrap()
            .to_string();
        assert!(verify("pw-123456", &theirs));
        let ours = hash("pw-123456");
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            argon2::password_hash::PasswordVerifier::verify_password(&Argon2::default(), b"pw-123456", &parsed).is_ok()
        );
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
        assert!(!verify("", DUMMY_HASH));
        // Just used: kept; asked to free anything idle for zero seconds: freed.
        assert_eq!(release_idle(std::time::Duration::from_secs(3600)), 0);
        assert!(release_idle(std::time::Duration::ZERO) <= POOL_SIZE);
        assert!(verify("pw-123456", &ours), "hashing works after the pool was emptied");
    }
}
