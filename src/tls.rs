//! The service's own TLS identity: a PEM certificate chain and its private key, read and
//! judged once for `check`, `serve` and a SIGHUP reload alike, and the rustls server
//! configuration that serves it (TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::names;

/// A certificate this close to its end is a warning in `check` and `health`.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// How long a client gets to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a certificate and key cannot be served. The key file's bytes never appear in a
/// message: only its path and what kind of problem it has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("{name}: {message}")]
    Read { name: &'static str, message: String },
    #[error("{}: {}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)", names::ASPJWT_TLS_CERT, .0.display())]
    NoCertificate(PathBuf),
    #[error("{}: {}: {detail}", names::ASPJWT_TLS_CERT, .path.display())]
    BadCertificate { path: PathBuf, detail: String },
    #[error("{}: {}: no PEM private key in it (PKCS#8, PKCS#1 or SEC1)", names::ASPJWT_TLS_KEY, .0.display())]
    NoKey(PathBuf),
    #[error(
        "{}: {}: the key is encrypted; aspjwt needs it unencrypted (openssl pkey -in KEY -out PLAIN), readable only by the service",
        names::ASPJWT_TLS_KEY,
        .0.display()
    )]
    EncryptedKey(PathBuf),
    #[error(
        "{}: {}: not a key rustls can sign with (RSA of 2048 bits or more, ECDSA P-256/P-384 or Ed25519)",
        names::ASPJWT_TLS_KEY,
        .0.display()
    )]
    UnsupportedKey(PathBuf),
    #[error("{}: the key in {} does not match the certificate in {}", names::ASPJWT_TLS_KEY, .key.display(), .cert.display())]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error(
        "{}: {}: the key belongs to certificate {position} of the chain; the leaf (the server's own certificate) must come first",
        names::ASPJWT_TLS_CERT,
        .cert.display()
    )]
    LeafNotFirst { cert: PathBuf, position: usize },
}

impl TlsError {
    /// The setting at fault, as a checklist names it.
    pub fn setting(&self) -> &'static str {
        match self {
            TlsError::Read { name, .. } => name,
            TlsError::NoCertificate(_) | TlsError::BadCertificate { .. } => names::ASPJWT_TLS_CERT,
            TlsError::LeafNotFirst { .. } => names::ASPJWT_TLS_CERT,
            TlsError::NoKey(_)
            | TlsError::EncryptedKey(_)
            | TlsError::UnsupportedKey(_)
            | TlsError::Mismatch { .. } => names::ASPJWT_TLS_KEY,
        }
    }

    /// The message without the setting's name in front (the checklist shows it apart).
    pub fn detail(&self) -> String {
        let text = self.to_string();
        text.strip_prefix(&format!("{}: ", self.setting())).map_or(text.clone(), str::to_string)
    }
}

/// What a certificate says about itself, for messages and expiry checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub subject: String,
    /// Seconds since the epoch.
    pub not_before: i64,
    pub not_after: i64,
    /// SHA-256 of the certificate's DER, lowercase hex (what `openssl x509 -fingerprint
    /// -sha256` shows, without the colons).
    pub fingerprint: String,
    /// Issued by itself (a root): clients judge their own copy, not the one served.
    pub self_signed: bool,
}

impl CertInfo {
    /// Reads an X.509 certificate (DER).
    pub fn parse(der: &[u8]) -> Result<CertInfo, String> {
        use sha2::Digest;
        use x509_cert::der::Decode;
        let cert = x509_cert::Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate ({e})"))?;
        let tbs = &cert.tbs_certificate;
        let v = &tbs.validity;
        let secs = |t: &x509_cert::time::Time| t.to_unix_duration().as_secs() as i64;
        Ok(CertInfo {
            subject: tbs.subject.to_string(),
            self_signed: tbs.subject == tbs.issuer,
            not_before: secs(&v.not_before),
            not_after: secs(&v.not_after),
            fingerprint: sha2::Sha256::digest(der).iter().map(|b| format!("{b:02x}")).collect(),
        })
    }

    /// Whether it can be served at `now`, and for how long.
    pub fn freshness(&self, now: i64) -> Freshness {
        if now < self.not_before {
            Freshness::NotYetValid
        } else if now >= self.not_after {
            Freshness::Expired
        } else if self.not_after - now <= EXPIRY_WARNING.as_secs() as i64 {
            Freshness::EndingSoon
        } else {
            Freshness::Valid
        }
    }

    /// "expires in 3d 4h (2026-12-03T10:00:00Z)" or "expired 2d ago (…)".
    pub fn expiry_text(&self, now: i64) -> String {
        let t = crate::token::Time::new(self.not_after, now);
        let when = t.rfc3339.unwrap_or_else(|| self.not_after.to_string());
        let verb = if self.not_after > now { "expires" } else { "expired" };
        format!("{verb} {} ({when})", t.relative)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    NotYetValid,
    Expired,
    /// Within `EXPIRY_WARNING` of its end.
    EndingSoon,
    Valid,
}

/// A certificate chain and its key, ready to serve.
#[derive(Clone)]
pub struct Identity {
    pub certified: Arc<CertifiedKey>,
    /// The leaf certificate's facts.
    pub leaf: CertInfo,
    /// Every certificate of the chain, leaf first.
    pub chain: Vec<CertInfo>,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl Identity {
    /// The certificate that limits the chain: the first not yet valid, else the first
    /// expired, else the one that ends first; with its position (1 is the leaf). Roots
    /// sent along are skipped: clients trust their own copy, not the one served.
    pub fn limit(&self, now: i64) -> (usize, &CertInfo, Freshness) {
        let judged =
            || self.chain.iter().enumerate().filter(|(i, c)| *i == 0 || !c.self_signed).map(|(i, c)| (i + 1, c));
        let worst = |f: Freshness| judged().find(|(_, c)| c.freshness(now) == f);
        let (i, c) = worst(Freshness::NotYetValid)
            .or_else(|| worst(Freshness::Expired))
            .or_else(|| judged().min_by_key(|(_, c)| c.not_after))
            .expect("the chain has its leaf");
        (i, c, c.freshness(now))
    }

    /// Whether this is the very chain `other` serves (a reload of unchanged files).
    pub fn same_chain(&self, other: &Identity) -> bool {
        self.chain.iter().map(|c| &c.fingerprint).eq(other.chain.iter().map(|c| &c.fingerprint))
    }
}

impl std::fmt::Debug for Identity {
    // Never the key: the paths and the public certificate's fingerprint only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .field("fingerprint", &self.leaf.fingerprint)
            .finish()
    }
}

/// Reads a PEM chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or SEC1), and
/// checks that the key belongs to the leaf. Dates are judged by the caller
/// (`CertInfo::freshness`), so `check` can warn where `serve` refuses.
pub fn load(cert_path: &Path, key_path: &Path) -> Result<Identity, TlsError> {
    let read = |name, path: &Path| crate::fsx::read_path(path).map_err(|message| TlsError::Read { name, message });
    let cert_pem = read(names::ASPJWT_TLS_CERT, cert_path)?;
    let key_pem = read(names::ASPJWT_TLS_KEY, key_path)?;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&cert_pem).collect::<Result<_, _>>().map_err(|e| TlsError::BadCertificate {
            path: cert_path.into(),
            detail: format!("not a readable PEM file ({e})"),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert_path.into()));
    }
    let infos = chain
        .iter()
        .enumerate()
        .map(|(i, der)| {
            CertInfo::parse(der).map_err(|e| TlsError::BadCertificate {
                path: cert_path.into(),
                detail: if i == 0 { e } else { format!("certificate {} of the chain: {e}", i + 1) },
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    // The PEM parser's own error could quote a line of the key file: not shown.
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        let encrypted = key_pem.windows(9).any(|w| w == b"ENCRYPTED");
        if encrypted { TlsError::EncryptedKey(key_path.into()) } else { TlsError::NoKey(key_path.into()) }
    })?;
    let signer =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(|_| TlsError::UnsupportedKey(key_path.into()))?;
    let certified = CertifiedKey::new(chain.clone(), signer.clone());
    if certified.keys_match().is_err() {
        // The key may belong to another certificate of the file: a chain out of order.
        let position = (1..chain.len())
            .find(|&i| CertifiedKey::new(vec![chain[i].clone()], signer.clone()).keys_match().is_ok())
            .map(|i| i + 1);
        return Err(match position {
            Some(position) => TlsError::LeafNotFirst { cert: cert_path.into(), position },
            None => TlsError::Mismatch { cert: cert_path.into(), key: key_path.into() },
        });
    }
    Ok(Identity {
        certified: Arc::new(certified),
        leaf: infos[0].clone(),
        chain: infos,
        cert_path: cert_path.into(),
        key_path: key_path.into(),
    })
}

/// The identity in service; a SIGHUP reload swaps it. Connections already open keep the
/// certificate they were handed; new handshakes get the new one.
#[derive(Debug)]
pub struct Served(RwLock<Arc<CertifiedKey>>);

impl Served {
    pub fn new(identity: &Identity) -> Arc<Served> {
        Arc::new(Served(RwLock::new(identity.certified.clone())))
    }

    pub fn replace(&self, identity: &Identity) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = identity.certified.clone();
    }
}

impl ResolvesServerCert for Served {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// The server side: TLS 1.2 and 1.3 with the ring provider, no client certificates,
/// ALPN `h2` then `http/1.1`.
pub fn server_config(served: Arc<Served>) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(served);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(not_before: i64, not_after: i64) -> CertInfo {
        CertInfo { subject: "CN=x".into(), not_before, not_after, fingerprint: String::new(), self_signed: false }
    }

    #[test]
    fn freshness_by_date() {
        let day = 86_400;
        assert_eq!(info(100, 100 + 90 * day).freshness(50), Freshness::NotYetValid);
        assert_eq!(info(0, 1000).freshness(1000), Freshness::Expired);
        assert_eq!(info(0, 14 * day).freshness(0), Freshness::EndingSoon);
        assert_eq!(info(0, 14 * day + 1).freshness(0), Freshness::Valid);
    }

    #[test]
    fn errors_name_the_setting_and_path() {
        let e = TlsError::Mismatch { cert: "c.pem".into(), key: "k.pem".into() };
        assert_eq!(e.setting(), names::ASPJWT_TLS_KEY);
        assert_eq!(e.detail(), "the key in k.pem does not match the certificate in c.pem");
        let e = TlsError::NoCertificate("c.pem".into());
        assert_eq!(
            e.to_string(),
            "ASPJWT_TLS_CERT: c.pem: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)"
        );
    }

    #[test]
    fn missing_files_and_garbage_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        let e = load(&c, &k).unwrap_err();
        assert_eq!(e.setting(), names::ASPJWT_TLS_CERT);
        assert!(e.to_string().contains("c.pem"), "{e}");
        std::fs::write(&c, "hello\n").unwrap();
        std::fs::write(&k, "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n")
            .unwrap();
        assert_eq!(load(&c, &k).unwrap_err(), TlsError::NoCertificate(c.clone()));
        // A directory where a file is expected.
        let e = load(dir.path(), &k).unwrap_err();
        assert_eq!(e.setting(), names::ASPJWT_TLS_CERT);
    }
}
