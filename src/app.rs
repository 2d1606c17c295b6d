//! Dispatch: parsed arguments to the command that owns them. No rules live here.

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::commands;
use crate::error::Exit;
use crate::output::Out;

pub fn run(cli: Cli) -> Result<Exit> {
    let out = Out::new(cli.json, cli.quiet, cli.color);
    match cli.command {
        Command::Generate(args) => commands::secrets::generate(&out, args),
        Command::Rotate(args) => commands::secrets::rotate(&out, args),
        Command::Check(args) => commands::check::check(&out, args),
        Command::Decode(args) => commands::tokens::decode(&out, args),
        Command::Verify(args) => commands::tokens::verify(&out, args),
        Command::Mint(args) => commands::tokens::mint(&out, args),
        Command::Serve(args) => commands::serve::serve(args),
        Command::Health(args) => commands::health::health(&out, args),
        Command::User(args) => commands::operator::user(&out, args),
        Command::Sessions(args) => commands::operator::sessions(&out, args),
        Command::Audit(args) => commands::operator::audit(&out, args),
        Command::Incident(args) => commands::incident::incident(&out, args),
        Command::Backup(args) => commands::backup::backup(&out, args),
        Command::Restore(args) => commands::backup::restore(&out, args),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "aspjwt", &mut std::io::stdout().lock());
            Ok(Exit::Ok)
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout().lock())?;
            Ok(Exit::Ok)
        }
    }
}
