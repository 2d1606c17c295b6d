use crate::util::Dir;
use base64::Engine;

fn decoded_len(v: &str) -> usize {
    base64::engine::general_purpose::STANDARD.decode(v).unwrap().len()
}

#[test]
fn env_format_has_the_three_secrets_with_node_shapes() {
    let d = Dir::new();
    let out = d.run(&["generate"]);
    out.code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3);
    let expect = [("JWT_SECRET", 88, 64), ("JWT_REFRESH_SECRET", 88, 64), ("SESSION_SECRET", 44, 32)];
    for (line, (name, chars, bytes)) in lines.iter().zip(expect) {
        let (k, v) = line.split_once('=').unwrap();
        assert_eq!(k, name);
        assert_eq!(v.len(), chars, "{line}");
        assert_eq!(decoded_len(v), bytes);
    }
    assert!(out.stderr.is_empty());
    // Two runs never repeat.
    assert_ne!(out.stdout, d.run(&["generate"]).stdout);
}

#[test]
fn formats() {
    let d = Dir::new();
    let shell = d.run(&["generate", "--format", "shell"]);
    assert!(shell.code(0).stdout.lines().all(|l| l.starts_with("export ")));
    let json = d.run(&["generate", "--format", "json"]).json();
    assert_eq!(json.as_object().unwrap().len(), 3);
    assert_eq!(json["SESSION_SECRET"].as_str().unwrap().len(), 44);
    assert_eq!(d.run(&["--json", "generate"]).json().as_object().unwrap().len(), 3);
    let yaml = d.run(&["generate", "--format", "yaml"]);
    let v: serde_yaml::Value = serde_yaml::from_str(&yaml.code(0).stdout).unwrap();
    assert_eq!(v["environment"]["JWT_REFRESH_SECRET"].as_str().unwrap().len(), 88);
}

#[test]
fn only_and_custom() {
    let d = Dir::new();
    let only = d.run(&["generate", "--only", "SESSION_SECRET,JWT_SECRET"]);
    let keys: Vec<&str> = only.code(0).stdout.lines().map(|l| l.split_once('=').unwrap().0).collect();
    assert_eq!(keys, ["SESSION_SECRET", "JWT_SECRET"]);
    let custom = d.run(&["generate", "--name", "POSTGRES_PASSWORD", "--bytes", "48", "--url-safe"]);
    let (k, v) = custom.code(0).stdout.trim().split_once('=').unwrap().to_owned();
    assert_eq!(k, "POSTGRES_PASSWORD");
    assert_eq!(v.len(), 64);
    assert!(!v.contains(['+', '/', '=']));
    assert_eq!(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v).unwrap().len(), 48);
}

#[test]
fn usage_errors_exit_2() {
    let d = Dir::new();
    assert!(d.run(&["generate", "--only", "NOPE"]).code(2).stderr.contains("unknown secret \"NOPE\""));
    d.run(&["generate", "--bytes", "8", "--name", "X"]).code(2);
    d.run(&["generate", "--bytes", "32"]).code(2);
    assert!(d.run(&["generate", "--name", "1BAD"]).code(2).stderr.contains("not a valid variable name"));
    d.run(&["generate", "--format", "toml"]).code(2);
    d.run(&["frobnicate"]).code(2);
}

#[test]
fn help_on_every_command_has_an_example() {
    let d = Dir::new();
    for cmd in [
        "generate",
        "rotate",
        "check",
        "decode",
        "verify",
        "mint",
        "serve",
        "user",
        "sessions",
        "audit",
        "completions",
        "man",
    ] {
        let out = d.run(&[cmd, "--help"]);
        assert!(out.code(0).stdout.contains("Example"), "{cmd}");
    }
    assert!(d.run(&["--help"]).code(0).stdout.contains("Exit status"));
}
