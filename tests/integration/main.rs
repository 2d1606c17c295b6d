//! One integration crate (one link step): modules grouped by subcommand.

mod h2;
mod pg;
mod service;
mod util;

mod accounts;
mod backup;
mod check;
mod completions;
mod conn;
mod corpus;
mod crm;
mod deploy;
mod faults;
mod gateway;
mod generate;
mod hardening;
mod health;
mod import;
mod incident;
mod monitoring;
mod operator;
mod props;
mod rollover;
mod rotate;
mod scaleout;
mod serve;
mod store;
mod tls;
mod tokens;
