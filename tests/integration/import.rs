//! `aspjwt user import`: the CRM's users with the bcrypt hashes its Node backend stored
//! (made here by Node's bcryptjs), logged in through the real service and upgraded to
//! argon2id, on both backends (issue 24).

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::pg::sqlite_and_postgres;
use crate::service::{Service, setup_on};

sqlite_and_postgres!(
    imported_bcrypt_users_log_in_and_are_upgraded,
    a_refused_row_writes_nothing_and_names_its_line,
    conflicts_dry_runs_and_stdin,
    an_update_never_undoes_what_aspjwt_changed,
    two_logins_at_once_both_get_in,
    two_imports_at_once_honour_on_conflict,
);

/// bcrypt hashes from Node's bcryptjs: (password, cost, 'a' or 'b').
fn bcryptjs(specs: &[(&str, u32, char)]) -> Vec<String> {
    let node_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node");
    assert!(
        Path::new(node_dir).join("node_modules/bcryptjs").is_dir(),
        "bcryptjs is missing: run `npm ci --prefix tests/node` (make test does)"
    );
    let specs: Vec<Value> =
        specs.iter().map(|(p, cost, minor)| json!({"password": p, "cost": cost, "minor": minor.to_string()})).collect();
    let out = Command::new("node")
        .arg(format!("{node_dir}/bcrypt-hash.js"))
        .arg(Value::Array(specs).to_string())
        .output()
        .expect("node runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn users_of(s: &Service) -> Vec<Value> {
    s.cli(&["--json", "user", "list"]).code(0).rows().as_array().unwrap().clone()
}

fn scheme_of(s: &Service, email: &str) -> String {
    let users = users_of(s);
    let u = users.iter().find(|u| u["email"] == email).unwrap_or_else(|| panic!("no {email}: {users:?}"));
    u["password_scheme"].as_str().unwrap().to_string()
}

fn legacy_gauge(s: &Service) -> String {
    let text = reqwest::blocking::get(format!("http://{}/metrics", s.metrics_addr())).unwrap().text().unwrap();
    text.lines().find(|l| l.starts_with("aspjwt_legacy_password_hashes ")).unwrap_or("none").to_string()
}

const A: &str = "anna-secret-one";
const B: &str = "bert-secret-two";

fn imported_bcrypt_users_log_in_and_are_upgraded(db: Option<&str>) {
    let long = "x".repeat(80); // bcrypt only ever read its first 72 bytes
    let hashes = bcryptjs(&[(A, 10, 'a'), (B, 12, 'b'), (&long, 10, 'b')]);
    let d = setup_on(db, "METRICS_BIND=127.0.0.1:0\nAUTH_RATE_BURST=1000\n", &[]);
    let users = json!([
        {"email": "Anna@Example.com", "name": "Anna", "role": "agent", "password_hash": hashes[0]},
        {"email": "bert@example.com", "name": "Bert", "role": "admin", "password_hash": hashes[1], "id": 1042},
        {"email": "long@example.com", "name": "Long", "role": "support", "password_hash": hashes[2]},
    ]);
    d.write("users.json", serde_json::to_string_pretty(&users).unwrap());
    let s = Service::start(d);
    let out = s.cli(&["user", "import", "users.json", "--role-map", "agent=sales_agent"]);
    assert!(out.code(0).stdout.contains("3 created, 0 updated, 0 skipped, 0 refused"), "{}", out.stdout);
    assert!(out.stderr.contains("3 user(s) keep their bcrypt hash"), "{}", out.stderr);
    assert_eq!(legacy_gauge(&s), "aspjwt_legacy_password_hashes 3");
    let listed = users_of(&s);
    assert!(listed.iter().all(|u| u["legacy_hash"] == true && u["password_scheme"] == "bcrypt"), "{listed:?}");
    assert_eq!(listed.iter().find(|u| u["email"] == "bert@example.com").unwrap()["id"], "1042");
    assert_eq!(listed.iter().find(|u| u["email"] == "anna@example.com").unwrap()["role"], "sales_agent");
    // Every import is audited, never with the hash.
    let audit = s.cli(&["--json", "audit", "--event", "user_imported"]);
    assert_eq!(audit.code(0).rows().as_array().unwrap().len(), 3);
    assert!(!audit.stdout.contains("$2"), "{}", audit.stdout);

    // A wrong password for a bcrypt user answers as an unknown email does.
    let wrong = s.login("anna@example.com", "not-her-password");
    let unknown = s.login("nobody@example.com", "not-her-password");
    assert_eq!((wrong.status, unknown.status), (401, 401));
    assert_eq!(wrong.json(), unknown.json());
    assert_eq!(scheme_of(&s, "anna@example.com"), "bcrypt", "a failed login upgrades nothing");

    // The right one logs in, and the hash is argon2id from then on.
    assert_eq!(s.login("anna@example.com", A).status, 200);
    assert_eq!(scheme_of(&s, "anna@example.com"), "argon2id");
    let rehashed = s.cli(&["--json", "audit", "--event", "password_rehashed"]).code(0).rows();
    let rehashed = rehashed.as_array().unwrap();
    assert_eq!(rehashed.len(), 1);
    assert_eq!(rehashed[0]["email"], "anna@example.com");
    assert_eq!(rehashed[0]["reason"], "bcrypt cost 10 upgraded to argon2id at login");
    assert_eq!(s.login("anna@example.com", A).status, 200, "the second login uses the argon2id hash");
    assert_eq!(s.login("anna@example.com", "not-her-password").status, 401);
    // Cost 12, written $2b$.
    assert_eq!(s.login("bert@example.com", B).status, 200);
    assert_eq!(scheme_of(&s, "bert@example.com"), "argon2id");
    // Longer than bcrypt reads: refused rather than truncated (and not upgraded).
    assert_eq!(s.login("long@example.com", &long).status, 401);
    assert_eq!(scheme_of(&s, "long@example.com"), "bcrypt");
    assert_eq!(legacy_gauge(&s), "aspjwt_legacy_password_hashes 1");
}

fn a_refused_row_writes_nothing_and_names_its_line(db: Option<&str>) {
    let hashes = bcryptjs(&[(A, 4, 'b')]);
    let s = Service::start(setup_on(db, "", &[("admin@example.com", "admin")]));
    // A quoted name with a comma (kept), an unknown role and a malformed hash (refused).
    let csv = format!(
        "email,name,role,password_hash\n\
         anna@example.com,\"Smith, Anna\",support,{h}\n\
         boss@example.com,Boss,superuser,{h}\n\
         carl@example.com,Carl,support,$2b$10$tooshort\n",
        h = hashes[0]
    );
    s.dir.write("users.csv", &csv);
    let out = s.cli(&["user", "import", "users.csv"]);
    assert!(out.code(2).stderr.contains("users.csv:3: role \"superuser\" is not one of ours"), "{}", out.stderr);
    assert!(out.stderr.contains("users.csv:4: password_hash: not a well-formed bcrypt hash"), "{}", out.stderr);
    assert!(out.stderr.contains("2 row(s) refused; nothing imported"), "{}", out.stderr);
    assert_eq!(users_of(&s).len(), 1, "nothing was written");
    // --skip-invalid imports the rest and reports the refused rows.
    let out = s.cli(&["--json", "user", "import", "users.csv", "--skip-invalid"]);
    let j = out.code(0).json();
    assert_eq!((j["version"].as_u64(), j["created"].as_u64()), (Some(1), Some(1)));
    let lines: Vec<u64> = j["refused"].as_array().unwrap().iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [3, 4]);
    let anna = users_of(&s).into_iter().find(|u| u["email"] == "anna@example.com").unwrap();
    assert_eq!(anna["name"], "Smith, Anna");
    assert_eq!(s.login("anna@example.com", A).status, 200);
    // A JSON file that is not an array of users is refused whole, naming the place.
    s.dir.write("bad.json", "[\n  {\"email\": \"x@example.com\",}\n]");
    let out = s.cli(&["user", "import", "bad.json"]);
    assert!(out.code(2).stderr.contains("bad.json:2:"), "{}", out.stderr);
}

fn conflicts_dry_runs_and_stdin(db: Option<&str>) {
    let hashes = bcryptjs(&[(A, 4, 'a'), (B, 4, 'b')]);
    let s = Service::start(setup_on(db, "", &[("admin@example.com", "admin")]));
    let file = |role: &str, hash: &str| {
        json!([{"email": "anna@example.com", "name": "Anna", "role": role, "password_hash": hash}]).to_string()
    };
    s.dir.write("one.json", file("support", &hashes[0]));
    let audit_rows = || s.cli(&["--json", "audit", "--limit", "0"]).code(0).rows().as_array().unwrap().len();
    // A dry run reports and writes nothing.
    let before = audit_rows();
    let out = s.cli(&["user", "import", "one.json", "--dry-run"]);
    assert!(out.code(0).stdout.contains("would import"), "{}", out.stdout);
    assert!(out.stdout.contains("1 created") && out.stdout.contains("nothing written"), "{}", out.stdout);
    assert_eq!((users_of(&s).len(), audit_rows()), (1, before));
    // From stdin.
    let mut args = vec!["user", "import", "-"];
    if db.is_none() {
        args.extend(["--db", "aspjwt.db"]);
    }
    s.dir.run_stdin(&args, file("support", &hashes[0]).as_bytes()).code(0);
    assert_eq!(users_of(&s).len(), 2);
    // Again: fails by default, naming the line; skip; update (a new role ends the
    // user's sessions; the argon2id hash her login made stays over the file's bcrypt one).
    let out = s.cli(&["user", "import", "one.json"]);
    assert!(out.code(2).stderr.contains("one.json:1: anna@example.com already exists"), "{}", out.stderr);
    let out = s.cli(&["user", "import", "one.json", "--on-conflict", "skip"]);
    assert!(out.code(0).stdout.contains("0 created, 0 updated, 1 skipped"), "{}", out.stdout);
    assert_eq!(s.login("anna@example.com", A).status, 200);
    s.dir.write("two.json", file("operator", &hashes[1]));
    let out = s.cli(&["user", "import", "two.json", "--on-conflict", "update"]);
    assert!(out.code(0).stdout.contains("0 created, 1 updated"), "{}", out.stdout);
    assert!(out.stderr.contains("1 session(s) of updated users ended"), "{}", out.stderr);
    assert_eq!(s.login("anna@example.com", B).status, 401);
    assert_eq!(s.login("anna@example.com", A).status, 200);
    // The last admin cannot be demoted by an import.
    s.dir.write(
        "demote.json",
        json!([{"email": "admin@example.com", "name": "A", "role": "support", "password_hash": hashes[0]}]).to_string(),
    );
    let out = s.cli(&["user", "import", "demote.json", "--on-conflict", "update"]);
    assert!(out.code(2).stderr.contains("last enabled admin"), "{}", out.stderr);
}

/// Review of issue 24: an update by import keeps a status the file does not give and an
/// argon2id hash over the old backend's bcrypt one, and says what it changed.
fn an_update_never_undoes_what_aspjwt_changed(db: Option<&str>) {
    let hashes = bcryptjs(&[(A, 4, 'b')]);
    let s = Service::start(setup_on(db, "", &[("admin@example.com", "admin"), ("anna@example.com", "support")]));
    // Disabled in aspjwt; then its password set there (after a compromise, say).
    s.cli(&["user", "disable", "--email", "anna@example.com"]).code(0);
    let csv = format!("email,name,role,password_hash\nanna@example.com,Anna,operator,{}\n", hashes[0]);
    s.dir.write("users.csv", csv);
    s.cli(&["user", "import", "users.csv", "--on-conflict", "update"]).code(0);
    let anna = users_of(&s).into_iter().find(|u| u["email"] == "anna@example.com").unwrap();
    assert_eq!((anna["disabled"].as_bool(), anna["role"].as_str()), (Some(true), Some("operator")), "{anna}");
    assert_eq!(anna["password_scheme"], "argon2id", "the old backend's bcrypt hash must not replace it");
    let audit = s.cli(&["--json", "audit", "--event", "user_imported"]).code(0).rows();
    let reason = audit[0]["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("role support -> operator"), "{reason}");
    assert!(reason.contains("kept its argon2id hash"), "{reason}");
    // The dry run refuses what the import would: the last admin demoted.
    s.dir.write("demote.csv", format!("email,name,role,password_hash\nadmin@example.com,A,support,{}\n", hashes[0]));
    let out = s.cli(&["user", "import", "demote.csv", "--on-conflict", "update", "--dry-run"]);
    assert!(out.code(2).stderr.contains("last enabled admin"), "{}", out.stderr);
}

/// Review of issue 24: logins of one bcrypt user at once all get in (the later ones find
/// the hash the first upgraded).
fn two_logins_at_once_both_get_in(db: Option<&str>) {
    let hashes = bcryptjs(&[(A, 10, 'b')]);
    let d = setup_on(db, "AUTH_RATE_BURST=1000\n", &[]);
    d.write(
        "users.json",
        json!([{"email": "anna@example.com", "name": "Anna", "role": "support", "password_hash": hashes[0]}])
            .to_string(),
    );
    let s = Service::start(d);
    s.cli(&["user", "import", "users.json"]).code(0);
    let statuses: Vec<u16> = std::thread::scope(|t| {
        let logins: Vec<_> = (0..4).map(|_| t.spawn(|| s.login("anna@example.com", A).status)).collect();
        logins.into_iter().map(|l| l.join().unwrap()).collect()
    });
    // On PostgreSQL they used to deadlock on the user's row (503).
    assert_eq!(statuses, [200, 200, 200, 200]);
    assert_eq!(scheme_of(&s, "anna@example.com"), "argon2id");
    let rehashed = s.cli(&["--json", "audit", "--event", "password_rehashed"]).code(0).rows();
    assert_eq!(rehashed.as_array().unwrap().len(), 1, "upgraded once");
}

/// A dry run never turns a file into a database, even an empty one.
#[test]
fn a_dry_run_writes_nothing_even_to_an_empty_file() {
    let d = crate::util::Dir::new();
    let hashes = bcryptjs(&[(A, 4, 'b')]);
    d.write(
        "users.json",
        json!([{"email": "a@example.com", "name": "A", "role": "support", "password_hash": hashes[0]}]).to_string(),
    );
    d.write("empty.db", "");
    let out = d.run(&["user", "import", "users.json", "--dry-run", "--db", "empty.db"]);
    assert!(out.code(0).stdout.contains("1 created"), "{}", out.stdout);
    assert_eq!(std::fs::metadata(d.path("empty.db")).unwrap().len(), 0);
    assert!(!d.path("empty.db-wal").exists());
    // Nor does a command that only reads.
    d.run(&["user", "list", "--db", "empty.db"]).code(2);
    assert_eq!(std::fs::metadata(d.path("empty.db")).unwrap().len(), 0);
}

/// The export docs/migrating.md gives for a CRM database on PostgreSQL, run with psql as
/// written there, imports as it is (psql writes booleans as t and f).
#[test]
fn the_documented_postgres_export_imports() {
    let doc = include_str!("../../docs/migrating.md");
    let copy: String = doc
        .split("```sql\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the PostgreSQL export in docs/migrating.md")
        .trim()
        .to_string();
    assert!(!copy.contains('\n'), "psql ends a backslash command at the line's end: {copy}");
    assert!(copy.starts_with("\\copy"), "{copy}");
    let crm = crate::pg::PgDb::new();
    let hashes = bcryptjs(&[(A, 4, 'a'), (B, 4, 'b')]);
    let setup = format!(
        "CREATE TABLE users (id serial PRIMARY KEY, email text, name text, role text, password text, is_active boolean);\n\
         INSERT INTO users (email, name, role, password, is_active) VALUES \
         ('anna@example.com', 'Smith, Anna', 'agent', '{}', true), ('bert@example.com', 'Bert', 'admin', '{}', false);",
        hashes[0], hashes[1]
    );
    let d = crate::util::Dir::new();
    for sql in [setup.as_str(), copy.as_str()] {
        let out = Command::new("psql")
            .current_dir(d.path(""))
            .args([crm.url.as_str(), "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
    }
    let out = d.run(&["user", "import", "users.csv", "--role-map", "agent=sales_agent", "--db", "aspjwt.db"]);
    assert!(out.code(0).stdout.contains("2 created"), "{} {}", out.stdout, out.stderr);
    let users = d.run(&["--json", "user", "list", "--db", "aspjwt.db"]).code(0).rows();
    let bert = users.as_array().unwrap().iter().find(|u| u["email"] == "bert@example.com").unwrap().clone();
    assert_eq!((bert["disabled"].as_bool(), bert["id"].as_str()), (Some(true), Some("2")));
}

/// Review of issue 24: two imports of overlapping users at once, --on-conflict skip: both
/// succeed, each user once (on PostgreSQL the second used to fail on the unique index).
fn two_imports_at_once_honour_on_conflict(db: Option<&str>) {
    let hashes = bcryptjs(&[(A, 4, 'b')]);
    let s = Service::start(setup_on(db, "", &[]));
    let users: Vec<Value> = (0..200)
        .map(|i| json!({"email": format!("u{i}@example.com"), "name": "U", "role": "support", "password_hash": hashes[0]}))
        .collect();
    s.dir.write("users.json", Value::Array(users).to_string());
    let outs: Vec<i32> = std::thread::scope(|t| {
        let runs: Vec<_> = (0..2)
            .map(|_| t.spawn(|| s.cli(&["user", "import", "users.json", "--on-conflict", "skip"]).code))
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(outs, [0, 0]);
    assert_eq!(users_of(&s).len(), 200);
}

/// Review of issue 24: another program's SQLite file is never made an aspjwt database,
/// and a store refusal names its line.
#[test]
fn foreign_files_and_store_refusals() {
    let d = crate::util::Dir::new();
    let hashes = bcryptjs(&[(A, 4, 'b')]);
    d.write(
        "users.json",
        json!([{"email": "a@example.com", "name": "A", "role": "admin", "password_hash": hashes[0], "id": "7"}])
            .to_string(),
    );
    d.write("crm.sqlite", "not a database at all");
    for dry in [true, false] {
        let mut args = vec!["user", "import", "users.json", "--db", "crm.sqlite"];
        if dry {
            args.push("--dry-run");
        }
        assert!(d.run(&args).code(2).stderr.contains("not an aspjwt database"));
    }
    assert_eq!(d.read_str("crm.sqlite"), "not a database at all");
    d.run(&["user", "import", "users.json", "--db", "aspjwt.db"]).code(0);
    d.write(
        "again.json",
        json!([{"email": "b@example.com", "name": "B", "role": "admin", "password_hash": hashes[0], "id": "7"}])
            .to_string(),
    );
    let out = d.run(&["user", "import", "again.json", "--db", "aspjwt.db"]);
    assert!(out.code(2).stderr.contains("again.json:1: id \"7\" already belongs to another user"), "{}", out.stderr);
}
