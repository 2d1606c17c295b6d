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
