//! `deepwatch config`: print the commented default config, or check a file.

use deepwatch_core::config::{self, Config};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Print the full commented default deepwatch.toml.
    Example,
    /// Parse and validate a config file; lists every problem with its path.
    Check {
        /// The file to check.
        file: PathBuf,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Example => {
            print!("{}", config::example());
            Ok(ExitCode::SUCCESS)
        }
        Action::Check { file } => match Config::load(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                Ok(ExitCode::SUCCESS)
            }
            Err(err) => {
                eprintln!("{err}");
                Ok(ExitCode::from(2))
            }
        },
    }
}
