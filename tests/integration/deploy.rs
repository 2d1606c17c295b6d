//! The project's own deployment files work with its own commands.

use std::path::Path;

use crate::util::Dir;

fn project_file(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(name)).unwrap()
}

#[test]
fn compose_file_parses_checks_and_rotates_with_a_generated_env() {
    let compose = project_file("docker-compose.yml");
    let v: serde_yaml::Value = serde_yaml::from_str(&compose).unwrap();
    assert!(v["services"]["aspjwt"]["environment"]["JWT_SECRET"].as_str().unwrap().starts_with("${JWT_SECRET"));
    let doc = aspjwt::compose::ComposeFile::parse(compose.as_bytes()).unwrap();
    assert!(
        doc.environment()
            .iter()
            .any(|e| e.key == "SESSION_SECRET" && matches!(e.source, aspjwt::compose::Source::Interpolated(_)))
    );

    let d = Dir::new();
    d.write("docker-compose.yml", &compose);
    d.run(&["rotate", "--env-file", ".env", "--create", "-q"]).code(0);
    d.run(&["check", "--env-file", ".env", "--compose", "docker-compose.yml", "--strict"]).code(0);
    // Every secret is interpolated: rotation changes .env and leaves the compose file alone.
    let before = d.read_str(".env");
    let j = d.run(&["--json", "rotate", "--env-file", ".env", "--compose", "docker-compose.yml"]).code(0).json();
    assert_ne!(d.read_str(".env"), before);
    assert_eq!(d.read_str("docker-compose.yml"), compose);
    assert_eq!(j["files"][1]["rotated"].as_array().unwrap().len(), 0);
    // The check reads the .env beside the compose file on its own.
    d.run(&["check", "--compose", "docker-compose.yml"]).code(0);
}

/// The scale-out variant: its documented set-up commands, in order, give a
/// configuration that passes `check --strict`, and the database URL compose builds
/// from the generated password is a valid PostgreSQL URL (base64url: nothing to escape).
#[test]
fn postgres_compose_variant_sets_up_with_its_documented_commands() {
    let compose = project_file("docker-compose.postgres.yml");
    let v: serde_yaml::Value = serde_yaml::from_str(&compose).unwrap();
    assert_eq!(v["services"]["aspjwt"]["deploy"]["replicas"].as_u64(), Some(2));
    assert_eq!(v["services"]["aspjwt"]["depends_on"]["postgres"]["condition"], "service_healthy");
    let url_template = v["services"]["aspjwt"]["environment"]["ASPJWT_DB"].as_str().unwrap().to_string();
    let d = Dir::new();
    d.write("docker-compose.postgres.yml", &compose);
    let setup: Vec<Vec<String>> = compose
        .lines()
        .filter_map(|l| l.trim_start_matches('#').trim().strip_prefix("aspjwt "))
        .map(|cmd| cmd.split_whitespace().map(str::to_string).collect())
        .collect();
    assert_eq!(setup.len(), 3, "the header documents three aspjwt commands");
    for args in &setup {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let strict: Vec<&str> = if args[0] == "check" { [&args[..], &["--strict"]].concat() } else { args };
        d.run(&strict).code(0);
    }
    let env = d.read_str(".env");
    let password = env.lines().find_map(|l| l.strip_prefix("POSTGRES_PASSWORD=")).expect("POSTGRES_PASSWORD in .env");
    use base64::Engine;
    assert_eq!(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(password).unwrap().len(), 24);
    let url = url_template.replace("${POSTGRES_PASSWORD}", password);
    let target = aspjwt::store::Target::parse(&url).unwrap();
    assert!(target.is_postgres() && target.has_password());
    assert!(!target.to_string().contains(password));
}

#[test]
fn dockerfile_runs_as_non_root_with_the_quick_healthcheck() {
    let f = project_file("Dockerfile");
    assert!(f.contains("FROM debian:bookworm-slim"), "a small runtime stage");
    assert!(f.lines().any(|l| l.trim() == "USER aspjwt"));
    let hc = f.lines().skip_while(|l| !l.starts_with("HEALTHCHECK")).take(2).collect::<String>();
    assert!(hc.contains("\"health\", \"--quick\""), "{hc}");
    // The health check it runs works against a real service.
    let s = crate::service::Service::start(crate::service::setup("", &[]));
    s.dir.run(&["health", "--quick", "--url", &s.base, "-q"]).code(0);
}

/// `make demo`'s script, end to end, colours only on a terminal: piped (as CI or a log
/// file sees it) or with NO_COLOR, not one escape byte; on a terminal, bold headings.
#[test]
fn demo_runs_and_honours_the_terminal() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo.sh");
    let run = |dir: &Dir, env: &[(&str, &str)], tty: bool| {
        let mut c = if tty {
            // `script` gives the demo a pseudo-terminal for its stdout.
            let mut c = std::process::Command::new("script");
            c.args(["-qec", &script.display().to_string(), "/dev/null"]);
            c
        } else {
            std::process::Command::new(&script)
        };
        c.env("BIN", crate::util::BIN).env("DEMO_DIR", dir.path("demo")).env_remove("NO_COLOR").env("TERM", "xterm");
        c.envs(env.iter().copied());
        crate::util::run(&mut c, None)
    };
    let d = Dir::new();
    let piped = run(&d, &[], false);
    piped.code(0);
    assert!(piped.stdout.contains("demo OK"), "{}", piped.stdout);
    assert!(piped.stdout.contains("healthy (aspjwt "), "the deep health check ran: {}", piped.stdout);
    assert!(!piped.stdout.contains('\x1b') && !piped.stderr.contains('\x1b'), "escapes when piped:\n{}", piped.stdout);
    let no_color = run(&d, &[("NO_COLOR", "1")], true);
    no_color.code(0);
    assert!(!no_color.stdout.contains('\x1b'), "escapes with NO_COLOR:\n{}", no_color.stdout);
    let dumb = run(&d, &[("TERM", "dumb")], true);
    dumb.code(0);
    assert!(!dumb.stdout.contains('\x1b'), "escapes with TERM=dumb:\n{}", dumb.stdout);
    let tty = run(&d, &[], true);
    tty.code(0);
    assert!(tty.stdout.contains("\x1b[1m== "), "no bold heading on a terminal:\n{}", tty.stdout);
    // It wipes its folder first, so it refuses one it did not make.
    let precious = d.write("precious/keep.txt", "mine");
    let mut c = std::process::Command::new(&script);
    c.env("BIN", crate::util::BIN).env("DEMO_DIR", d.path("precious"));
    crate::util::run(&mut c, None).code(2);
    assert_eq!(std::fs::read_to_string(precious).unwrap(), "mine");
}

/// The HTTPS overlay: the certificate and key it names lie under its read-only mount, its
/// redirect listener and health check use the ports it publishes, and the pair of files
/// compose reads passes `check` with the overlay on top.
#[test]
fn tls_overlay_mounts_the_certificate_it_names() {
    let overlay = project_file("docker-compose.tls.yml");
    let v: serde_yaml::Value = serde_yaml::from_str(&overlay).unwrap();
    let svc = &v["services"]["aspjwt"];
    let volume = svc["volumes"][0].as_str().unwrap();
    let (_, rest) = volume.split_once(':').unwrap();
    let (inside, mode) = rest.split_once(':').unwrap();
    assert_eq!(mode, "ro");
    for name in ["ASPJWT_TLS_CERT", "ASPJWT_TLS_KEY"] {
        assert!(svc["environment"][name].as_str().unwrap().starts_with(&format!("{inside}/")), "{name}");
    }
    let ports: Vec<&str> = svc["ports"].as_sequence().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert_eq!(ports, ["443:8080", "80:8081"]);
    assert!(svc["environment"]["ASPJWT_REDIRECT_BIND"].as_str().unwrap().ends_with(":8081"));
    let test: Vec<&str> =
        svc["healthcheck"]["test"].as_sequence().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(test.iter().any(|a| a.starts_with("https://") && a.ends_with(":8080")), "{test:?}");
    let host = test.iter().find(|a| a.starts_with("https://")).unwrap();
    let name = host.trim_start_matches("https://").split(':').next().unwrap();
    assert_eq!(svc["extra_hosts"][0].as_str().unwrap(), format!("{name}:127.0.0.1"));
    let d = Dir::new();
    d.write("docker-compose.yml", project_file("docker-compose.yml"));
    d.write("docker-compose.tls.yml", &overlay);
    d.run(&["rotate", "--env-file", ".env", "--create", "-q"]).code(0);
    d.run(&["check", "--env-file", ".env", "--compose", "docker-compose.yml", "--compose", "docker-compose.tls.yml"])
        .code(0);
}
