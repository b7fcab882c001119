//! `smime-gateway`: the S/MIME proxy gateway and its operator commands.

mod commands;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = commands::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("smime-gateway: {e:#}");
            ExitCode::from(2)
        }
    }
}
