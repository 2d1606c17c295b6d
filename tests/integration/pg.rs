//! PostgreSQL for the tests: a fresh database per test on the server at
//! 127.0.0.1:5432 (or ASPJWT_TEST_PG, an admin URL), dropped afterwards, and a
//! loopback TCP proxy that can cut the link to it (an outage without touching the
//! server that other tests share). A missing server fails the tests, never skips them.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DEFAULT_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";

fn admin_url() -> String {
    std::env::var("ASPJWT_TEST_PG").unwrap_or_else(|_| DEFAULT_ADMIN.to_string())
}

/// Runs `f` with a connection to `url` (closed afterwards).
fn with_client<T>(
    url: &str,
    f: impl AsyncFnOnce(&tokio_postgres::Client) -> Result<T, tokio_postgres::Error>,
) -> Result<T, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.map_err(|e| e.to_string())?;
        let task = tokio::spawn(conn);
        let out = f(&client).await.map_err(|e| e.to_string());
        drop(client);
        let _ = task.await;
        out
    })
}

/// Runs SQL statements on the admin database.
fn admin(sql: &str) -> Result<(), String> {
    with_client(&admin_url(), async |c| c.batch_execute(sql).await)
}

/// A database of its own, dropped (connections and all) when this goes.
pub struct PgDb {
    pub name: String,
    pub url: String,
}

impl PgDb {
    pub fn new() -> PgDb {
        static N: AtomicU64 = AtomicU64::new(0);
        let name =
            format!("aspjwt_t_{}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed), rand::random::<u32>());
        admin(&format!("CREATE DATABASE {name}")).unwrap_or_else(|e| {
            panic!("these tests need PostgreSQL at {} (trust auth; `make test` starts it): {e}", admin_url())
        });
        let base = admin_url();
        let (server, _) = base.rsplit_once('/').expect("an admin URL ending in /database");
        PgDb { url: format!("{server}/{name}"), name }
    }

    /// The URL with host and port replaced (to go through a `Proxy`) and a password
    /// added (trust auth ignores it; the tests check that it is never shown).
    pub fn url_via(&self, addr: std::net::SocketAddr, password: &str) -> String {
        let (scheme, rest) = self.url.split_once("://").unwrap();
        let (auth, path) = rest.split_once('/').unwrap();
        let user = auth.rsplit_once('@').map_or("postgres", |(u, _)| u.split(':').next().unwrap());
        format!("{scheme}://{user}:{password}@{addr}/{path}")
    }

    /// Ends every connection to this database (as an administrator or a failover would).
    pub fn terminate_backends(&self) -> usize {
        let sql =
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()";
        with_client(&admin_url(), async |c| c.query(sql, &[&self.name]).await).unwrap().len()
    }

    /// One value from a query on this database (for checks behind the store's back).
    pub fn query_i64(&self, sql: &str) -> i64 {
        with_client(&self.url, async |c| c.query_one(sql, &[]).await).unwrap().get(0)
    }

    /// One text value from a query on this database.
    pub fn query_text(&self, sql: &str) -> String {
        with_client(&self.url, async |c| c.query_one(sql, &[]).await).unwrap().get(0)
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = admin(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

/// A loopback TCP proxy to the PostgreSQL server. `cut()` closes every connection
/// through it and refuses new ones until `restore()`.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    pub fn new() -> Proxy {
        let target = {
            let url = admin_url();
            let rest = url.split_once("://").unwrap().1;
            let auth = rest.split_once('/').unwrap().0;
            auth.rsplit_once('@').map_or(auth, |(_, h)| h).to_string()
        };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, stop) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicBool::new(false)));
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        {
            let (up, stop, live) = (up.clone(), stop.clone(), live.clone());
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(client) = client else { continue };
                    if !up.load(Ordering::SeqCst) {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    }
                    let Ok(server) = TcpStream::connect(&target) else { continue };
                    live.lock().unwrap().extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                    pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                    pipe(server, client);
                }
            });
        }
        Proxy { addr, up, stop, live }
    }

    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// Runs each named test function twice: on SQLite (`None`) and on a fresh
/// PostgreSQL database (`Some(url)`, dropped afterwards).
macro_rules! sqlite_and_postgres {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(None) } )*
        }
        mod postgres {
            $( #[test] fn $name() { let db = crate::pg::PgDb::new(); super::$name(Some(&db.url)) } )*
        }
    };
}
pub(crate) use sqlite_and_postgres;
