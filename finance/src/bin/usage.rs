//! `usage`: finance's command line (`finance::cli`; also `wactl usage`).

use std::process::ExitCode;

use clap::Parser;
use finance::cli::{Cli, main as run};

#[tokio::main]
async fn main() -> ExitCode {
    run(Cli::parse().command).await
}
