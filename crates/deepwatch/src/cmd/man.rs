//! `deepwatch man --out DIR`: man pages (clap_mangen) for the command and every subcommand,
//! `deepwatch.1`, `deepwatch-agent.1`, `deepwatch-analyze-rca.1`, ..., e.g. into
//! /usr/local/share/man/man1.

use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder to write the pages into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

pub fn run(args: Args, command: clap::Command) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut written = 0;
    write_pages(&command.clone(), command.get_name(), &args.out, &mut written)?;
    println!("wrote {written} man pages to {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

/// Writes `name.1` for `command` and recurses into its subcommands as `name-sub.1`.
fn write_pages(
    command: &clap::Command,
    name: &str,
    dir: &Path,
    written: &mut usize,
) -> anyhow::Result<()> {
    // The page's title and NAME section use the full dashed name.
    let command = command.clone().name(name.to_string()).bin_name(name.replace('-', " "));
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut page)?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    *written += 1;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}
