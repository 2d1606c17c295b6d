use aspjwt::{compose::ComposeFile, envfile::EnvFile};
fn main() {
    if let Some(a) = std::env::args().nth(1) { println!("{:?}", ComposeFile::parse(&std::fs::read(a).unwrap()).map(|_| ())); return; }
    for f in std::fs::read_dir("../shared/corpus/env").unwrap() {
        let p = f.unwrap().path();
        let b = std::fs::read(&p).unwrap();
        match EnvFile::parse(&b) {
            Ok(e) => {
                let dv: Result<Vec<_>, _> = dotenvy::from_read_iter(&b[..]).collect();
                println!("ENV OK {} {} entries ident={} dotenvy={}", p.display(), e.entries().len(), e.render() == b, dv.map(|v| v.len().to_string()).unwrap_or_else(|e| e.to_string()));
            }
            Err(e) => println!("ENV ERR {} {}", p.display(), e),
        }
    }
    for f in std::fs::read_dir("../shared/corpus/compose").unwrap() {
        let p = f.unwrap().path();
        let b = std::fs::read(&p).unwrap();
        match ComposeFile::parse(&b) {
            Ok(c) => {
                let env = c.environment();
                let mut t = std::collections::BTreeMap::new();
                for v in &env { if matches!(v.source, aspjwt::compose::Source::Literal(_)) { t.insert(v.key.clone(), "NEWVALUE".to_string()); } }
                let r = c.rotate(&t);
                println!("YML OK {} vars={} literal_keys={} rotate={}", p.display(), env.len(), t.len(), match r { Ok(r) => format!("ok strays={}", r.strays.len()), Err(e) => e.to_string() });
            }
            Err(e) => println!("YML ERR {} {}", p.display(), e),
        }
    }
}
