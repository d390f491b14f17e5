//! `deepwatch completions <shell>`: a shell completion script on stdout (clap_complete), e.g.
//! `deepwatch completions bash > /etc/bash_completion.d/deepwatch`.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

pub fn run(args: Args, mut command: clap::Command) -> anyhow::Result<ExitCode> {
    let name = command.get_name().to_string();
    clap_complete::generate(args.shell, &mut command, name, &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
