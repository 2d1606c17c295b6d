use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = aspjwt::cli::Cli::parse();
    match aspjwt::app::run(cli) {
        Ok(code) => code.into(),
        Err(e) if aspjwt::error::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // Errors quote input (file names, keys, server answers): never raw to a terminal.
            eprintln!("aspjwt: error: {}", aspjwt::output::escape(&format!("{e:#}")));
            aspjwt::error::Exit::Usage.into()
        }
    }
}
