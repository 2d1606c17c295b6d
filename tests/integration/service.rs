//! A real `aspjwt serve` on an ephemeral loopback port with a temp database, and a
//! small HTTP client that handles cookies by hand (tests replay old tokens on purpose).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::util::{Dir, run};

pub const PASSWORD: &str = "correct horse battery staple";

pub struct Service {
    pub dir: Dir,
    child: Option<Child>,
    pub base: String,
    pub log: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    pub extra_env: Vec<(String, String)>,
}

/// A folder with a fresh .env (plus `extra` lines) and one user per `(email, role)`,
/// on SQLite in the folder.
pub fn setup(extra: &str, users: &[(&str, &str)]) -> Dir {
    setup_on(None, extra, users)
}

/// As `setup`, on the PostgreSQL database at `url` when given: the .env names it as
/// ASPJWT_DB, so the service and every command run in the folder use it.
pub fn setup_on(url: Option<&str>, extra: &str, users: &[(&str, &str)]) -> Dir {
    let d = Dir::new();
    d.run(&["rotate", "--env-file", ".env", "--create", "-q"]).code(0);
    let db = url.map(|u| format!("ASPJWT_DB={u}\n")).unwrap_or_default();
    if !extra.is_empty() || !db.is_empty() {
        d.write(".env", format!("{}{extra}{db}", d.read_str(".env")));
    }
    for (email, role) in users {
        let mut args = vec!["user", "add", "--email", email, "--name", "Test User", "--role", role, "--password-stdin"];
        args.extend(db_flag(&d));
        d.run_stdin(&args, format!("{PASSWORD}\n").as_bytes()).code(0);
    }
    d
}

/// `--db aspjwt.db`, unless the folder's .env names the database.
fn db_flag(d: &Dir) -> Vec<&'static str> {
    let named = std::fs::read_to_string(d.path(".env")).is_ok_and(|e| e.lines().any(|l| l.starts_with("ASPJWT_DB=")));
    if named { vec![] } else { vec!["--db", "aspjwt.db"] }
}

impl Service {
    pub fn start(dir: Dir) -> Service {
        Service::start_with(dir, &[])
    }

    pub fn start_with(dir: Dir, env: &[(&str, &str)]) -> Service {
        let mut s = Service {
            dir,
            child: None,
            base: String::new(),
            log: Arc::default(),
            stderr: Arc::default(),
            extra_env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        s.spawn();
        s
    }

    /// Starts the binary and waits (bounded) for its "listening" line.
    pub fn spawn(&mut self) {
        let mut cmd = self.dir.cmd();
        cmd.args(["serve", "--bind", "127.0.0.1:0", "--env-file", ".env"]);
        if !self.extra_env.iter().any(|(k, _)| k == "ASPJWT_DB") {
            cmd.args(db_flag(&self.dir));
        }
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn aspjwt serve");
        let (tx, rx) = std::sync::mpsc::channel();
        let log = self.log.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let listening = line.contains("\"event\":\"listening\"").then(|| {
                    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                    v["url"].as_str().unwrap().to_string()
                });
                // Logged before announced, so the log holds the line once start() returns.
                log.lock().unwrap().push(line);
                if let Some(addr) = listening {
                    let _ = tx.send(addr);
                }
            }
        });
        let err = self.stderr.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                err.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => self.base = url,
            Err(_) => {
                let _ = child.kill();
                panic!("the service did not announce its address:\n{}", self.stderr.lock().unwrap());
            }
        }
        self.child = Some(child);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap(); // SIGKILL
            c.wait().unwrap();
        }
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        unsafe_kill(c.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "the service did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn logs(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The first JSON log line of `event` (`listening`, `metrics_listening`, …).
    pub fn log_event(&self, event: &str) -> serde_json::Value {
        let tag = format!("\"event\":\"{event}\"");
        let line = self.log.lock().unwrap().iter().find(|l| l.contains(&tag)).cloned();
        serde_json::from_str(&line.unwrap_or_else(|| panic!("no {event} line in the log:\n{}", self.logs()))).unwrap()
    }

    /// The service's process id, as it announced it.
    pub fn pid(&self) -> u32 {
        self.log_event("listening")["pid"].as_u64().unwrap() as u32
    }

    /// SIGHUP: reload the configuration.
    pub fn hup(&self) {
        unsafe_kill(self.pid(), "HUP");
    }

    /// The METRICS_BIND listener's address (the test's .env must set METRICS_BIND).
    pub fn metrics_addr(&self) -> std::net::SocketAddr {
        self.log_event("metrics_listening")["addr"].as_str().unwrap().parse().unwrap()
    }

    /// Runs an `aspjwt` subcommand against the same folder and database.
    pub fn cli(&self, args: &[&str]) -> crate::util::Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(db_flag(&self.dir));
        self.dir.run(&all)
    }

    /// POST /api/auth/refresh as a browser sends it: the refresh and CSRF cookies and the CSRF header.
    pub fn refresh(&self, refresh: &str, csrf: &str) -> Resp {
        refresh_at(&self.base, refresh, csrf)
    }

    pub fn logout(&self, refresh: &str, csrf: &str) -> Resp {
        post(
            &self.url("/api/auth/logout"),
            &[("refresh_token", refresh), ("csrf_token", csrf)],
            &[("x-csrf-token", csrf)],
        )
    }

    pub fn login(&self, email: &str, password: &str) -> Resp {
        post_json(&self.url("/api/auth/login"), &serde_json::json!({"email": email, "password": password}), &[])
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn unsafe_kill(pid: u32, sig: &str) {
    Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().unwrap();
}

pub fn refresh_at(base: &str, refresh: &str, csrf: &str) -> Resp {
    post(
        &format!("{base}/api/auth/refresh"),
        &[("refresh_token", refresh), ("csrf_token", csrf)],
        &[("x-csrf-token", csrf)],
    )
}

/// The CSRF token a response set.
pub fn csrf(r: &Resp) -> String {
    r.cookie("csrf_token").expect("csrf cookie")
}

/// A response with what the tests look at.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The raw Set-Cookie line for `name`.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_string)
    }

    /// The value a Set-Cookie gives `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookie(name).map(|c| c.split(';').next().unwrap()[name.len() + 1..].to_string())
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_string())
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).user_agent("aspjwt-tests").build().unwrap()
}

fn send(req: reqwest::blocking::RequestBuilder) -> Resp {
    let r = req.send().expect("request");
    Resp { status: r.status().as_u16(), headers: r.headers().clone(), body: r.text().unwrap_or_default() }
}

pub fn cookie_header(cookies: &[(&str, &str)]) -> String {
    cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
}

pub fn post_json(url: &str, body: &serde_json::Value, cookies: &[(&str, &str)]) -> Resp {
    let mut req = client().post(url).json(body);
    if !cookies.is_empty() {
        req = req.header("cookie", cookie_header(cookies));
    }
    send(req)
}

pub fn post(url: &str, cookies: &[(&str, &str)], headers: &[(&str, &str)]) -> Resp {
    let mut req = client().post(url);
    if !cookies.is_empty() {
        req = req.header("cookie", cookie_header(cookies));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(req)
}

pub fn get(url: &str, cookies: &[(&str, &str)], headers: &[(&str, &str)]) -> Resp {
    let mut req = client().get(url);
    if !cookies.is_empty() {
        req = req.header("cookie", cookie_header(cookies));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(req)
}

/// Polls `f` every 50 ms until it is true or `limit` passes; returns how long it took.
pub fn within(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Runs the binary in `dir` with extra environment.
pub fn run_env(dir: &Dir, args: &[&str], env: &[(&str, &str)]) -> crate::util::Output {
    let mut cmd = dir.cmd();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd, None)
}

/// One client's view of its session: the newest refresh token it holds and the older ones.
#[derive(Clone, Default)]
pub struct Chain {
    pub csrf: String,
    pub current: String,
    pub older: Vec<String>,
}

impl Chain {
    /// After a refresh answered with `next`: the current token becomes an older one.
    pub fn advance(&mut self, next: String) {
        let old = std::mem::replace(&mut self.current, next);
        self.older.push(old);
    }
}

pub fn login_chain(s: &Service, email: &str) -> Chain {
    let l = s.login(email, PASSWORD);
    assert_eq!(l.status, 200, "{}", l.body);
    Chain { csrf: csrf(&l), current: l.cookie("refresh_token").unwrap(), older: Vec::new() }
}

/// A client refreshing its session at `base` in a loop until `stop`, each time with the
/// token the previous refresh returned. Any answer but 200 fails the test; the thread
/// ends when the server goes away mid-request (a kill).
pub fn refresher(
    chain: Arc<Mutex<Chain>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    base: String,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let (token, csrf) = {
                let g = chain.lock().unwrap();
                (g.current.clone(), g.csrf.clone())
            };
            let sent = client
                .post(format!("{base}/api/auth/refresh"))
                .header("cookie", format!("refresh_token={token}; csrf_token={csrf}"))
                .header("x-csrf-token", &csrf)
                .send();
            match sent {
                Ok(r) if r.status() == 200 => {
                    let next = r
                        .headers()
                        .get_all("set-cookie")
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .find_map(|v| v.strip_prefix("refresh_token="))
                        .map(|v| v.split(';').next().unwrap().to_string())
                        .unwrap();
                    chain.lock().unwrap().advance(next);
                }
                Ok(r) => panic!("a refresh under load failed: {}", r.status()),
                Err(_) => return, // the server went away mid-request
            }
        }
    })
}
