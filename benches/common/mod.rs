//! What the load and soak benchmarks share: the binary, a service on loopback, a
//! keep-alive HTTP client, login, cookies and the server's resident memory.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The binary under test: this build's, or `LOAD_BIN` (another build, to measure two
/// versions side by side on the same machine).
pub fn bin() -> String {
    std::env::var("LOAD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_aspjwt").to_string())
}
pub const PASSWORD: &str = "correct horse battery staple";

/// A keep-alive client for `http://` and `https://` alike.
pub type Http = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

pub fn cli(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> String {
    let mut c = Command::new(bin());
    c.current_dir(dir).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "aspjwt {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

pub fn start(dir: &std::path::Path) -> (Child, String, Duration) {
    let t = Instant::now();
    let mut child = Command::new(bin())
        .current_dir(dir)
        .args(["serve", "--bind", "127.0.0.1:0", "--env-file", ".env"])
        .args(db_flag(dir))
        .env("ASPJWT_LOG", "warn,aspjwt::server=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the service exited").unwrap();
        if let Some(i) = line.find("\"addr\":\"") {
            break line[i + 8..].split('"').next().unwrap().to_string();
        }
    };
    let https = std::fs::read_to_string(dir.join(".env")).unwrap_or_default().contains("ASPJWT_TLS_CERT=");
    // First accepted connection.
    loop {
        if std::net::TcpStream::connect(&addr).is_ok() {
            break;
        }
    }
    let took = t.elapsed();
    std::thread::spawn(move || for _ in lines {});
    (child, format!("{}://{addr}", if https { "https" } else { "http" }), took)
}

pub fn client() -> Http {
    client_trusting(&[])
}

/// `client()`, trusting these CA certificates (DER) for `https://`.
pub fn client_trusting(roots: &[rustls_pki_types::CertificateDer<'static>]) -> Http {
    let mut c = HttpConnector::new();
    c.set_nodelay(true);
    c.enforce_http(false);
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).unwrap();
    }
    let tls =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(store)
            .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(c);
    Client::builder(TokioExecutor::new()).pool_max_idle_per_host(1024).build(https)
}

/// Writes a CA-issued certificate for 127.0.0.1 and its key into `dir` and names them in
/// its .env, so the service started there serves HTTPS; returns the CA certificate.
pub fn enable_tls(dir: &std::path::Path) -> rustls_pki_types::CertificateDer<'static> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    let mut env = std::fs::read_to_string(dir.join(".env")).unwrap();
    env.push_str("ASPJWT_TLS_CERT=cert.pem\nASPJWT_TLS_KEY=key.pem\n");
    std::fs::write(dir.join(".env"), env).unwrap();
    ca_cert.der().clone()
}

pub fn set_cookie(resp: &hyper::Response<hyper::body::Incoming>, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")).map(|r| r.split(';').next().unwrap().to_string()))
}

pub async fn login(c: &Http, base: &str, email: &str, password: &str) -> Option<(String, String, String)> {
    let body = format!(r#"{{"email":"{email}","password":"{password}"}}"#);
    let req = Request::post(format!("{base}/api/auth/login"))
        .header("content-type", "application/json")
        .body(Full::from(body))
        .unwrap();
    let resp = c.request(req).await.ok()?;
    let out =
        (set_cookie(&resp, "access_token")?, set_cookie(&resp, "refresh_token")?, set_cookie(&resp, "csrf_token")?);
    let _ = resp.into_body().collect().await;
    Some(out)
}

/// CPU time (user + system) a process has used, in milliseconds.
pub fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // SAFETY: sysconf with a valid name has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks * 1000.0 / hz
}

pub fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap()))
        .unwrap()
}

/// `--db aspjwt.db`, unless the folder's .env names the database.
fn db_flag(dir: &std::path::Path) -> Vec<&'static str> {
    let env = std::fs::read_to_string(dir.join(".env")).unwrap_or_default();
    if env.lines().any(|l| l.starts_with("ASPJWT_DB=")) { vec![] } else { vec!["--db", "aspjwt.db"] }
}

/// A temp folder with a fresh .env (limits raised: measure the service, not the
/// limiter) and `users` users `u{i}@load.test`, on SQLite in the folder.
pub fn prepare(users: usize) -> tempfile::TempDir {
    prepare_on(users, None)
}

/// As `prepare`, on the PostgreSQL database at `url` when given.
pub fn prepare_on(users: usize, url: Option<&str>) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    cli(dir, &["rotate", "--env-file", ".env", "--create", "-q"], None);
    let mut env = std::fs::read_to_string(dir.join(".env")).unwrap();
    env.push_str("AUTH_RATE_BURST=1000000\nAUTH_RATE_PER_5MIN=100000000\nASPJWT_MAX_CONNECTIONS_PER_IP=100000\n");
    if let Some(u) = url {
        env.push_str(&format!("ASPJWT_DB={u}\n"));
    }
    std::fs::write(dir.join(".env"), &env).unwrap();
    for i in 0..users {
        let email = format!("u{i}@load.test");
        let mut args =
            vec!["user", "add", "--email", &email, "--name", "Load", "--role", "operator", "--password-stdin"];
        args.extend(db_flag(dir));
        cli(dir, &args, Some(&format!("{PASSWORD}\n")));
    }
    tmp
}

/// Runs SQL on a PostgreSQL server's admin database.
pub fn pg_admin(url: &str, sql: &str) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        client.batch_execute(sql).await.map_err(|e| e.to_string())
    })
}
