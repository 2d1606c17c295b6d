//! One integration crate (one link step): modules grouped by subcommand.

mod util;

mod check;
mod completions;
mod corpus;
mod generate;
mod props;
mod rotate;
mod tokens;
