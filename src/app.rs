//! Dispatch: parsed arguments to the command that owns them. No rules live here.

use crate::cli::{Cli, Command};
use crate::commands;
use crate::error::Exit;
use crate::output::Out;
use anyhow::Result;

pub fn run(cli: Cli) -> Result<Exit> {
    let out = Out::new(cli.json, cli.quiet, cli.color);
    match cli.command {
        Command::Generate(args) => commands::secrets::generate(&out, args.0),
        Command::Rotate(args) => commands::secrets::rotate(&out, args.0),
        Command::Check(args) => commands::check::check(&out, args.0),
        Command::Decode(args) => commands::tokens::decode(&out, args.0),
        Command::Verify(args) => commands::tokens::verify(&out, args.0),
        Command::Mint(args) => commands::tokens::mint(&out, args.0),
        Command::Serve(args) => commands::serve::serve(args.0),
        Command::Health(args) => commands::health::health(&out, args.0),
        Command::User(args) => commands::operator::user(&out, args.0),
        Command::Sessions(args) => commands::operator::sessions(&out, args.0),
        Command::Audit(args) => commands::operator::audit(&out, args.0),
        Command::Incident(args) => commands::incident::incident(&out, args.0),
        Command::Backup(args) => commands::backup::backup(&out, args.0),
        Command::Restore(args) => commands::backup::restore(&out, args.0),
        Command::Completions { shell } => {
            let mut cmd = crate::cli::full_command();
            clap_complete::generate(shell, &mut cmd, "aspjwt", &mut std::io::stdout().lock());
            Ok(Exit::Ok)
        }
        Command::Man => {
            clap_mangen::Man::new(crate::cli::full_command()).render(&mut std::io::stdout().lock())?;
            Ok(Exit::Ok)
        }
    }
}
