use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = aspjwt::cli::Cli::parse_args();
    let json = cli.json;
    match aspjwt::app::run(cli) {
        Ok(code) => code.into(),
        Err(e) if aspjwt::error::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // Errors quote input (file names, keys, server answers): never raw to a terminal.
            let message = format!("{e:#}");
            if json {
                println!("{}", aspjwt::output::json_error("input", &message));
            }
            eprintln!("aspjwt: error: {}", aspjwt::output::escape(&message));
            aspjwt::error::Exit::Usage.into()
        }
    }
}
