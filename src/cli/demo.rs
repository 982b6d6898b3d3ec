//! `ferry demo`: placeholder replaced below.
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

#[derive(Debug, Args)]
pub struct DemoArgs {}

pub fn run(_a: DemoArgs) -> Result<ExitCode> {
    Ok(ExitCode::SUCCESS)
}
