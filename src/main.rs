//! The `ferry` command: one binary for every role (build server, deployment
//! server, client agent, operator). Parsing lives in `cli/`, one module per
//! subcommand; libraries return precise errors, this binary reports them as
//! one line on stderr and maps them to exit codes.

mod cli;
mod malloc;
mod tune;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    malloc::tune();
    let args = cli::Cli::parse();
    cli::init_logging(&args);
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    msg.push_str(": ");
                    msg.push_str(&c);
                }
            }
            eprintln!("ferry: error: {}", msg.replace('\n', " "));
            ExitCode::from(1)
        }
    }
}
