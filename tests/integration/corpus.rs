//! Every real-world file in tests/corpus (see its SOURCES.md): rendering without changes is
//! byte-identical; rotating a key a file holds changes only that key's values; a file
//! that holds none is left byte-identical (compose) or only appended to (.env).

use std::collections::BTreeMap;
use std::path::Path;

use aspjwt::compose::{ComposeFile, Source};
use aspjwt::envfile::{EnvFile, Quote, is_plain_key};
use aspjwt::rotate;

use crate::util::{Dir, corpus, node_dotenv};

/// Files docker compose itself refuses, with where our error points.
const REJECTED_ENV: &[(&str, &str)] = &[
    // UTF-16 with a BOM: refused, never transcoded.
    ("gotenv-utf16le-bom.env", "UTF-16"),
    // Quoted key names (`export "EDQUOTED" = 123`).
    ("phpdotenv-exported.env", "4:8: unexpected character '\"'"),
];

const NEW: &str = "RoTaTeD+value/0123456789=";

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// The text with every value of `keys` replaced by a marker.
fn blank_values(doc: &EnvFile, keys: &[&str]) -> String {
    let mut text = doc.text().to_string();
    let mut spans: Vec<_> = doc
        .entries()
        .iter()
        .filter(|e| keys.contains(&e.key.as_str()))
        .filter_map(|e| e.value.as_ref().map(|v| v.span.clone()))
        .collect();
    spans.sort_by_key(|s| std::cmp::Reverse(s.start));
    for s in spans {
        text.replace_range(s, "<V>");
    }
    text
}

#[test]
fn env_files_round_trip_and_rotate_only_their_targets() {
    let mut accepted = 0;
    for path in corpus("env") {
        let bytes = std::fs::read(&path).unwrap();
        let file = name(&path);
        let parsed = EnvFile::parse(&bytes);
        if let Some((_, want)) = REJECTED_ENV.iter().find(|(f, _)| *f == file) {
            let e = parsed.expect_err(&file).to_string();
            assert!(e.contains(want), "{file}: {e}");
            continue;
        }
        let doc = parsed.unwrap_or_else(|e| panic!("{file}: {e}"));
        accepted += 1;
        assert_eq!(doc.render(), bytes, "{file}: render is not the identity");

        let keys: Vec<&str> = doc
            .entries()
            .iter()
            .filter(|e| e.value.is_some() && is_plain_key(&e.key))
            .map(|e| e.key.as_str())
            .collect();
        for key in &keys {
            let values: BTreeMap<String, String> = [(key.to_string(), NEW.to_string())].into();
            let plan = rotate::plan_env(&path, Some(&bytes), &values).unwrap_or_else(|e| panic!("{file} {key}: {e}"));
            let after = EnvFile::parse(&plan.new).unwrap();
            assert_eq!(after.get(key), Some(NEW), "{file} {key}");
            for (a, b) in doc.entries().iter().zip(after.entries()) {
                assert_eq!(a.key, b.key, "{file}");
                if a.key != *key {
                    assert_eq!(
                        a.value.as_ref().map(|v| &v.text),
                        b.value.as_ref().map(|v| &v.text),
                        "{file}: {} changed",
                        a.key
                    );
                }
            }
            assert_eq!(
                blank_values(&doc, &[key]),
                blank_values(&after, &[key]),
                "{file} {key}: bytes outside the value changed"
            );
        }

        // The defaults: a file holding none of them is only appended to.
        let defaults: BTreeMap<String, String> = ["JWT_SECRET", "JWT_REFRESH_SECRET", "SESSION_SECRET"]
            .iter()
            .map(|k| (k.to_string(), NEW.to_string()))
            .collect();
        let plan = rotate::plan_env(&path, Some(&bytes), &defaults).unwrap();
        if plan.report.rotated.is_empty() {
            assert!(plan.new.starts_with(&bytes), "{file}: not only appended to");
            let tail = String::from_utf8(plan.new[bytes.len()..].to_vec()).unwrap();
            let tail = tail.trim_start_matches(['\r', '\n']);
            assert_eq!(tail.lines().count(), 3, "{file}: {tail}");
        }
    }
    assert_eq!(accepted + REJECTED_ENV.len(), corpus("env").len());
}

/// The real binary over a copy of every corpus .env file.
#[test]
fn env_files_through_the_binary() {
    let d = Dir::new();
    for path in corpus("env") {
        let file = name(&path);
        let bytes = std::fs::read(&path).unwrap();
        d.write(&file, &bytes);
        let out = d.run(&["--json", "rotate", "--env-file", &file]);
        if REJECTED_ENV.iter().any(|(f, _)| *f == file) {
            assert!(out.code(2).stderr.contains(&file), "{file}: {}", out.stderr);
            assert_eq!(d.read(&file), bytes, "{file} changed after a failure");
            continue;
        }
        out.code(0);
        let old = EnvFile::parse(&bytes).unwrap();
        let new = EnvFile::parse(&d.read(&file)).unwrap();
        let targets = ["JWT_SECRET", "JWT_REFRESH_SECRET", "SESSION_SECRET"];
        let (before, after) = (blank_values(&old, &targets), blank_values(&new, &targets));
        let tail = after.strip_prefix(&before).unwrap_or_else(|| panic!("{file}: bytes outside the values changed"));
        for line in tail.trim_start_matches(['\r', '\n']).lines() {
            assert!(targets.iter().any(|t| line.trim_end() == format!("{t}=<V>")), "{file}: appended {line:?}");
        }
        for t in targets {
            assert!(new.get(t).is_some_and(|v| v.len() >= 44), "{file}: {t}");
        }
    }
}

fn literal_keys(doc: &ComposeFile) -> Vec<String> {
    let mut keys: Vec<String> = doc
        .environment()
        .into_iter()
        .filter(|v| matches!(v.source, Source::Literal(_)) && is_plain_key(&v.key))
        .map(|v| v.key)
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[test]
fn compose_files_round_trip_and_rotate_only_their_targets() {
    for path in corpus("compose") {
        let file = name(&path);
        let bytes = std::fs::read(&path).unwrap();
        let doc = ComposeFile::parse(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(doc.rotate(&BTreeMap::new()).unwrap().bytes, bytes, "{file}: no-op is not the identity");
        for key in literal_keys(&doc) {
            let values: BTreeMap<String, String> = [(key.clone(), NEW.to_string())].into();
            let rw = doc.rotate(&values).unwrap_or_else(|e| panic!("{file} {key}: {e}"));
            let after = ComposeFile::parse(&rw.bytes).unwrap();
            let (a, b) = (doc.environment(), after.environment());
            assert_eq!(a.len(), b.len(), "{file}");
            for (x, y) in a.iter().zip(&b) {
                assert_eq!((&x.service, &x.key), (&y.service, &y.key), "{file}");
                match (&x.source, x.key == key) {
                    (Source::Literal(_), true) => {
                        assert_eq!(y.source, Source::Literal(NEW.into()), "{file} {key} in {}", x.service)
                    }
                    _ => assert_eq!(x.source, y.source, "{file}: {} of {} changed", x.key, x.service),
                }
            }
            let new = String::from_utf8(rw.bytes).unwrap();
            let old = String::from_utf8(bytes.clone()).unwrap();
            assert_eq!(old.lines().count(), new.lines().count(), "{file}");
            for (lo, ln) in old.lines().zip(new.lines()) {
                if lo != ln {
                    assert!(lo.contains(key.as_str()), "{file}: unrelated line changed: {lo}");
                    assert!(ln.contains(NEW), "{file}: {ln}");
                }
            }
        }
    }
}

/// The real binary over a copy of every corpus compose file.
#[test]
fn compose_files_through_the_binary() {
    let d = Dir::new();
    d.write(".env", "");
    for path in corpus("compose") {
        let file = name(&path);
        let bytes = std::fs::read(&path).unwrap();
        d.write(&file, &bytes);
        let doc = ComposeFile::parse(&bytes).unwrap();
        let holds_default = literal_keys(&doc)
            .iter()
            .any(|k| ["JWT_SECRET", "JWT_REFRESH_SECRET", "SESSION_SECRET"].contains(&k.as_str()));
        d.run(&["rotate", "--compose", &file]).code(0);
        if !holds_default {
            assert_eq!(d.read(&file), bytes, "{file}: holds no target yet changed");
        }
        let keys = literal_keys(&doc);
        if keys.is_empty() {
            continue;
        }
        let mut args: Vec<String> =
            vec!["--json".into(), "rotate".into(), "--compose".into(), file.clone(), "--only".into(), keys.join(",")];
        for k in &keys {
            args.push("--key".into());
            args.push(k.clone());
        }
        let out = d.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let j = out.code(0).json();
        assert_eq!(j["files"][0]["rotated"].as_array().unwrap().len(), keys.len(), "{file}");
        let after = ComposeFile::parse(&d.read(&file)).unwrap();
        for v in after.environment() {
            if let Source::Literal(value) = &v.source
                && keys.contains(&v.key)
            {
                assert_eq!(value.len(), 44, "{file}: {} in {}", v.key, v.service);
            }
        }
    }
}

/// Backtick-quoted values (Node's dotenv only) read exactly as Node's dotenv reads them,
/// in the corpus and in the corners of its pattern.
#[test]
fn backtick_values_read_as_node_dotenv_reads_them() {
    let d = Dir::new();
    d.write(
        "corners.env",
        "A=`multi\r\nline \"q\" 'q'`\r\nB=`x` # c\nC=`open\nD=`a\\`b` \nE=`a\\`\nF=``\nG= `  sp  `\nH=`x`y\nI=`a\\` b` # t\n",
    );
    let mut files: Vec<_> =
        corpus("env").into_iter().filter(|p| !REJECTED_ENV.iter().any(|(f, _)| *f == name(p))).collect();
    files.push(d.path("corners.env"));
    let node = node_dotenv(&files);
    let mut compared = 0;
    for path in &files {
        let file = name(path);
        let doc = EnvFile::parse(&std::fs::read(path).unwrap()).unwrap_or_else(|e| panic!("{file}: {e}"));
        for e in doc.entries() {
            // The last assignment of a key is the one both readers keep.
            let last = doc.entries().iter().rev().find(|x| x.key == e.key).unwrap();
            if !std::ptr::eq(last, e) {
                continue;
            }
            let Some(v) = &e.value else { continue };
            if v.quote == Quote::Backtick || (file == "corners.env" && v.text.contains('`')) {
                assert_eq!(node[&file][&e.key].as_str(), Some(v.text.as_str()), "{file} {}", e.key);
                compared += 1;
            }
        }
    }
    assert!(compared >= 15, "only {compared} backtick values compared");
}

/// `check` and `serve` read every corpus .env file the same way: a file `check` refuses
/// (exit 2), `serve` refuses with the same reason; a file `check` reads, `serve` reads and starts on.
#[test]
fn check_and_serve_agree_on_every_env_file() {
    for path in corpus("env") {
        let file = name(&path);
        let d = Dir::new();
        d.write(".env", std::fs::read(&path).unwrap());
        let check = d.run(&["check", "--env-file", ".env"]);
        let mut serve = d.cmd();
        serve
            .args(["serve", "--bind", "127.0.0.1:0", "--env-file", ".env", "--db", "agree.db"])
            .env("JWT_SECRET", aspjwt::secrets::generate_os(64, aspjwt::secrets::Encoding::Base64))
            .env("JWT_REFRESH_SECRET", aspjwt::secrets::generate_os(64, aspjwt::secrets::Encoding::Base64))
            .env("SESSION_SECRET", aspjwt::secrets::generate_os(32, aspjwt::secrets::Encoding::Base64))
            .env("APP_ENV", "development")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = serve.spawn().unwrap();
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
        let listening = lines.any(|l| l.is_ok_and(|l| l.contains("\"event\":\"listening\"")));
        let _ = child.kill();
        let status = child.wait().unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        if check.code == 2 {
            assert!(!listening, "{file}: check refused it ({}) but serve started", check.stderr.trim());
            assert_eq!(status.code(), Some(2), "{file}: {stderr}");
            let reason = |s: &str| {
                s.lines().find(|l| l.contains(".env")).map(|l| l.split(".env").nth(1).unwrap_or("").to_string())
            };
            assert_eq!(reason(&stderr), reason(&check.stderr), "{file}: check and serve give different reasons");
        } else {
            assert!(listening, "{file}: check read it (exit {}) but serve did not start: {stderr}", check.code);
        }
    }
}
