//! `serve`: configuration, refusal on bad config, logging, the runtime.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Result, anyhow};

use crate::cli::ServeArgs;
use crate::config::{ServiceConfig, Settings};
use crate::error::Exit;

pub fn serve(args: ServeArgs) -> Result<Exit> {
    let settings = Settings::for_service(args.env_file.as_deref())?;
    let cfg = match ServiceConfig::from_settings(&settings, args.db.as_deref()) {
        Ok(cfg) => cfg,
        Err(problems) => {
            for p in &problems {
                eprintln!("aspjwt: refusing to start: {p}");
            }
            eprintln!("aspjwt: fix the configuration (see `aspjwt check`); there is no way to start without it");
            return Ok(Exit::Usage);
        }
    };
    let bind: SocketAddr =
        args.bind.parse().map_err(|_| anyhow!("--bind: {:?} is not an address like 127.0.0.1:8080", args.bind))?;
    init_logging(settings.get(crate::names::ASPJWT_LOG).map(|s| s.value.clone()));
    let store = crate::store::open(&cfg.db).map_err(|e| anyhow!("{}: {e}", cfg.db))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let reload = crate::server::ReloadSource { env_file: args.env_file.clone(), db: args.db.clone() };
    runtime.block_on(crate::server::run(cfg, bind, Arc::from(store), reload))?;
    Ok(Exit::Ok)
}

/// JSON lines on stdout; `ASPJWT_LOG` (environment or `.env`, checked like every
/// setting) or else `RUST_LOG` sets the level, default info.
fn init_logging(configured: Option<String>) {
    let filter = configured
        .or_else(|| std::env::var("RUST_LOG").ok().filter(|v| crate::config::log_filter(v).is_ok()))
        .unwrap_or_else(|| "info".into());
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stdout)
        .try_init();
}
