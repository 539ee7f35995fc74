//! `stoker`: one binary for every role of the platform.
//!
//! `main` only parses the configuration, sets up logging and hands over to
//! a command in `commands/`; the work itself lives in the library crates.

mod cli;
mod commands;
mod config_file;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(error) => {
            eprintln!("stoker: {error:#}");
            return ExitCode::from(2);
        }
    };
    cli.logging.init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("stoker: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli.command)) {
        Ok(code) => code,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("stoker: {error:#}");
            ExitCode::FAILURE
        }
    }
}
