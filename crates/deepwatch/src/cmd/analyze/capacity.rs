//! `deepwatch analyze capacity`.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`deepwatch analyze capacity` is not available in this build yet")
}
