//! Password hashing: argon2id with OWASP's parameters (m=19456 KiB, t=2, p=1).
//! Each hash works through ~19 MiB: callers bound how many run at once, and the
//! memory is taken from a small pool and reused, so a login flood neither
//! allocates 19 MiB per attempt nor leaves freed blocks stranded in allocator arenas.
//!
//! Users imported from the CRM's Node backend keep their bcrypt hashes until their next
//! login, which upgrades them to argon2id. While any remain, every login does the same
//! work whoever asks (see [`plan`]), so the time of an answer tells nothing about the
//! account.

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

/// Whether a stored hash (from a backup or an import) is one the service can verify at a
/// bounded cost: argon2id with a salt and a hash, memory 8–256 MiB, 1–10 passes, 1–8
/// lanes; or bcrypt of a cost in [`BCRYPT_COSTS`]. A hash asking for 2 GiB or 2^32
/// passes would make each login an outage; a weak one would make the password cheap to
/// guess.
pub fn check_stored(phc: &str) -> Result<(), String> {
    if phc.starts_with("$2") {
        let cost = bcrypt_cost(phc).ok_or("not a well-formed bcrypt hash ($2a$, $2b$ or $2y$, cost 4–31)")?;
        if !BCRYPT_COSTS.contains(&cost) {
            return Err(format!(
                "bcrypt cost {cost} is above {}: every login would pay it while it stays (2^{cost} rounds)",
                BCRYPT_COSTS.end()
            ));
        }
        return Ok(());
    }
    let parsed = PasswordHash::new(phc).map_err(|_| "not a PHC string ($argon2id$…) or a bcrypt hash".to_string())?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(format!("{} is not argon2id", parsed.algorithm.as_str()));
    }
    let params = Params::try_from(&parsed).map_err(|e| format!("bad argon2 parameters ({e})"))?;
    let (Some(salt), Some(output)) = (parsed.salt, parsed.hash) else {
        return Err("the salt or the hash part is missing".into());
    };
    // argon2 refuses a salt under 8 bytes at once: such a user could never log in, and
    // would answer faster than anyone else.
    let mut buf = [0u8; 64];
    if !salt.decode_b64(&mut buf).is_ok_and(|s| s.len() >= 8) || !(16..=64).contains(&output.len()) {
        return Err("the salt must be 8 to 64 bytes and the hash 16 to 64".into());
    }
    if parsed.version != Some(0x13) {
        return Err("only argon2id version 19 (v=19) is verified here".into());
    }
    let (m, t, p) = (params.m_cost(), params.t_cost(), params.p_cost());
    if !(8 * 1024..=256 * 1024).contains(&m) || !(1..=10).contains(&t) || !(1..=8).contains(&p) {
        return Err(format!("argon2 parameters m={m}, t={t}, p={p} are outside m=8192–262144, t=1–10, p=1–8"));
    }
    Ok(())
}

/// How a stored hash is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Argon2id,
    /// Imported from the CRM's Node backend (`$2a$`, `$2b$`, `$2y$`; `bcryptjs` and
    /// `bcrypt` write these); upgraded to argon2id at the user's next login.
    Bcrypt {
        cost: u32,
    },
}

/// bcrypt reads at most this many bytes of a password: a longer one is refused for a
/// bcrypt user, never silently truncated.
pub const BCRYPT_MAX_BYTES: usize = 72;
/// The costs a bcrypt hash may carry on import. The format allows 4–31, but every login
/// pays the highest legacy cost in the database (see [`plan`]): 2^14 rounds take about a
/// second here, 2^31 would take days, so a hash above 14 would make every login an outage.
pub const BCRYPT_COSTS: std::ops::RangeInclusive<u32> = 4..=14;

impl Scheme {
    /// The scheme of a stored hash, None when it is neither.
    pub fn of(stored: &str) -> Option<Scheme> {
        if stored.starts_with("$argon2id$") {
            return Some(Scheme::Argon2id);
        }
        bcrypt_cost(stored).map(|cost| Scheme::Bcrypt { cost })
    }

    pub fn name(self) -> &'static str {
        match self {
            Scheme::Argon2id => "argon2id",
            Scheme::Bcrypt { .. } => "bcrypt",
        }
    }

    /// Whether a login should replace it with argon2id.
    pub fn is_legacy(self) -> bool {
        matches!(self, Scheme::Bcrypt { .. })
    }
}

/// The cost of a well-formed bcrypt hash (`$2a$10$` + 53 characters of bcrypt's base64),
/// whatever the cost (4–31 in the format); None for anything else.
fn bcrypt_cost(stored: &str) -> Option<u32> {
    let rest = ["$2a$", "$2b$", "$2y$"].iter().find_map(|p| stored.strip_prefix(p))?;
    let (cost, tail) = rest.split_once('$')?;
    let cost: u32 = (cost.len() == 2).then(|| cost.parse().ok()).flatten()?;
    // bcrypt's base64: 22 characters of salt (128 bits in 132) and 31 of hash (184 in
    // 186); the unused low bits of each part's last character must be zero, or no
    // implementation can verify the hash (a login would fail faster than any other).
    const ALPHABET: &str = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let index = |c: char| ALPHABET.find(c);
    if !(4..=31).contains(&cost) || tail.len() != 53 || !tail.chars().all(|c| index(c).is_some()) {
        return None;
    }
    let (salt_end, hash_end) = (tail.as_bytes()[21] as char, tail.as_bytes()[52] as char);
    (index(salt_end)? % 16 == 0 && index(hash_end)? % 4 == 0).then_some(cost)
}

/// One verification of a login's work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Against the user's own hash: its answer is the login's.
    Real,
    /// Against a dummy argon2id hash (OWASP's parameters).
    DummyArgon2,
    /// Against a dummy bcrypt hash of this cost.
    DummyBcrypt(u32),
}

/// What one login verifies: the same work whoever asks. Every login runs one argon2id
/// verification (the user's, or a dummy) and, while the database holds bcrypt hashes,
/// 2^`legacy_max` rounds of bcrypt: a dummy at that cost, or for a bcrypt user of cost
/// c its own hash plus 2^(max−c)−1 dummies of cost c. An unknown email, a wrong password
/// and a bcrypt user thus take the same time: one dummy per scheme would not do when
/// costs differ.
pub fn plan(scheme: Option<Scheme>, legacy_max: Option<u32>) -> Vec<Step> {
    let mut steps = vec![if scheme == Some(Scheme::Argon2id) { Step::Real } else { Step::DummyArgon2 }];
    let own = match scheme {
        Some(Scheme::Bcrypt { cost }) => Some(cost),
        _ => None,
    };
    let Some(max) = legacy_max.max(own) else { return steps };
    match own {
        // 2^max − 2^c = 2^c + 2^(c+1) + … + 2^(max−1): one dummy of each cost, so a low
        // cost costs a few calls, not thousands (each call has its own overhead).
        Some(c) => {
            steps.push(Step::Real);
            steps.extend((c..max).map(Step::DummyBcrypt));
        }
        None => steps.push(Step::DummyBcrypt(max)),
    }
    steps
}

/// Whether an imported hash may be stored: what [`check_stored`] allows, and for
/// argon2id only OWASP's parameters, which every login's dummy uses (a user with other
/// parameters would answer in another time, telling the account apart).
pub fn check_imported(stored: &str) -> Result<(), String> {
    check_stored(stored)?;
    let ours = format!("$argon2id$v=19$m={M_COST},t={T_COST},p={P_COST}$");
    if stored.starts_with("$argon2id$") && !stored.starts_with(&ours) {
        return Err(format!(
            "argon2id with other parameters than m={M_COST},t={T_COST},p={P_COST} (v=19): its logins would take \
             another time than everyone else's"
        ));
    }
    Ok(())
}

/// Makes the dummy bcrypt hashes of every cost a login may need (`costs` of the users'
/// hashes, up to the highest), so that no login is the first to pay for making one.
pub fn warm_dummies(costs: &[u32]) {
    if let (Some(lo), Some(hi)) = (costs.iter().min(), costs.iter().max()) {
        for cost in *lo..=*hi {
            dummy_bcrypt(cost);
        }
    }
}

/// A bcrypt hash of a random, discarded password at `cost`, made once per cost.
fn dummy_bcrypt(cost: u32) -> String {
    static DUMMIES: Mutex<Vec<(u32, String)>> = Mutex::new(Vec::new());
    let mut d = DUMMIES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, h)) = d.iter().find(|(c, _)| *c == cost) {
        return h.clone();
    }
    let h = bcrypt::hash(generate(), cost).unwrap_or_default();
    d.push((cost, h.clone()));
    h
}

/// Checks a login's password with [`plan`]'s work: `stored` is the user's hash (None for
/// an unknown email), `legacy_max` the highest bcrypt cost in the database. A password
/// longer than bcrypt reads is refused for a bcrypt user, after the same work.
pub fn verify_login(password: &str, stored: Option<&str>, legacy_max: Option<u32>) -> bool {
    let scheme = stored.and_then(Scheme::of);
    let mut ok = false;
    for step in plan(scheme, legacy_max) {
        match (step, scheme) {
            (Step::Real, Some(Scheme::Argon2id)) => ok = verify(password, stored.unwrap_or_default()),
            (Step::Real, Some(Scheme::Bcrypt { .. })) => {
                let real = bcrypt::verify(password, stored.unwrap_or_default()).unwrap_or(false);
                ok = real && password.len() <= BCRYPT_MAX_BYTES;
            }
            (Step::DummyArgon2, _) => {
                verify(password, DUMMY_HASH);
            }
            (Step::DummyBcrypt(cost), _) => {
                let _ = bcrypt::verify(password, &dummy_bcrypt(cost));
            }
            (Step::Real, None) => {}
        }
    }
    ok
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
    fn every_login_does_the_same_work() {
        use Step::*;
        let argon = Some(Scheme::Argon2id);
        let b = |cost| Some(Scheme::Bcrypt { cost });
        // No legacy hashes: argon2id alone, real or dummy.
        assert_eq!(plan(argon, None), [Real]);
        assert_eq!(plan(None, None), [DummyArgon2]);
        // With bcrypt users of cost up to 12: 2^12 rounds of bcrypt for everyone.
        assert_eq!(plan(argon, Some(12)), [Real, DummyBcrypt(12)]);
        assert_eq!(plan(None, Some(12)), [DummyArgon2, DummyBcrypt(12)]);
        assert_eq!(plan(b(12), Some(12)), [DummyArgon2, Real]);
        assert_eq!(plan(b(10), Some(12)), [DummyArgon2, Real, DummyBcrypt(10), DummyBcrypt(11)]);
        // A cost-4 user next to cost-12 ones: nine calls, not 256 (review of issue 24).
        assert_eq!(plan(b(4), Some(12)).len(), 10);
        // A user above the known maximum (imported since it was read) raises it.
        assert_eq!(plan(b(11), Some(10)), [DummyArgon2, Real]);
        let rounds = |steps: &[Step], own: u32| -> u64 {
            steps
                .iter()
                .map(|s| match s {
                    Real if own > 0 => 1 << own,
                    DummyBcrypt(c) => 1 << c,
                    _ => 0,
                })
                .sum()
        };
        for own in 4..=12 {
            assert_eq!(rounds(&plan(b(own), Some(12)), own), 1 << 12, "cost {own}");
        }
    }

    #[test]
    fn bcrypt_hashes_are_read_and_bounded() {
        // Made by Node's bcryptjs 3 ("secret", cost 4), and the same hash as $2a$ and $2y$.
        let h = "$2b$04$OHTjwuLaNUDBow/2jziyf.UOICE4/OBrHEmT7IwNC0zMYQkyc5rkK";
        for prefix in ["$2a$", "$2b$", "$2y$"] {
            let h = h.replacen("$2b$", prefix, 1);
            assert_eq!(Scheme::of(&h), Some(Scheme::Bcrypt { cost: 4 }), "{h}");
            assert_eq!(check_stored(&h), Ok(()));
            assert!(verify_login("secret", Some(&h), None), "{h}");
            assert!(!verify_login("secret!", Some(&h), None), "{h}");
        }
        assert_eq!(Scheme::of(&hash("x")), Some(Scheme::Argon2id));
        for bad in ["$2a$04$short", "$2x$04$OHTjwuLaNUDBow/2jziyf.UOICE4/OBrHEmT7IwNC0zMYQkyc5rkK", "$2a$4$x"] {
            assert_eq!(Scheme::of(bad), None, "{bad}");
            assert!(check_stored(bad).is_err(), "{bad}");
        }
        // A salt or hash whose last character carries bits bcrypt does not have.
        let salt_bits = format!("{}P{}", &h[..28], &h[29..]);
        assert_eq!(Scheme::of(&salt_bits), None, "{salt_bits}");
        let hash_bits = format!("{}L", &h[..h.len() - 1]);
        assert_eq!(Scheme::of(&hash_bits), None, "{hash_bits}");
        // argon2id: version 19 only; an import takes OWASP's parameters only.
        assert!(check_stored(&hash("x").replace("v=19", "v=16")).is_err());
        // A 6-byte salt: argon2 would refuse it at every login.
        let short = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNh$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        assert!(check_imported(short).unwrap_err().contains("salt"), "{short}");
        assert_eq!(check_imported(&hash("x")), Ok(()));
        let other = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        assert_eq!(check_stored(other), Ok(()));
        assert!(check_imported(other).unwrap_err().contains("other parameters"));
        let costly = h.replacen("$04$", "$15$", 1);
        assert_eq!(Scheme::of(&costly), Some(Scheme::Bcrypt { cost: 15 }));
        assert!(check_stored(&costly).unwrap_err().contains("above 14"));
        // bcrypt reads 72 bytes: a longer password is refused, not truncated.
        let long = "a".repeat(72);
        let h72 = bcrypt::hash(&long, 4).unwrap();
        assert!(verify_login(&long, Some(&h72), None));
        assert!(!verify_login(&format!("{long}b"), Some(&h72), None));
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
