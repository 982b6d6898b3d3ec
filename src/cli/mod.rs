//! Command-line definitions and dispatch.
//!
//! Exit codes: 0 success, 1 error (one line on stderr), 2 usage error,
//! 3 `verify`/`fsck` found damage.

mod agent;
mod backup;
mod channel;
mod common;
mod demo;
mod fsck;
mod gc;
mod keygen;
mod publish;
mod run;
mod scan;
mod serve;
mod status;
mod sync;
mod time;
mod tune;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Ferry: ship application updates to many machines, moving only what changed.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about, long_about = None)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make an Ed25519 publisher key pair; prints the public key.
    Keygen(keygen::KeygenArgs),
    /// Run the deployment server over a RocksDB store.
    Serve(serve::ServeArgs),
    /// Chunk a build folder, upload what the server lacks, publish it signed.
    Push(publish::PushArgs),
    /// Point a channel at a published version (a new signed record), with
    /// an optional staged, scheduled or forced rollout.
    Promote(channel::PromoteArgs),
    /// Stop new clients from adopting a channel's current rollout.
    Pause(channel::PauseArgs),
    /// Let a paused rollout continue.
    Resume(channel::PauseArgs),
    /// Announce new publisher keys on channels, signed by the current key
    /// (clients and the server then trust the new keys, not the old one).
    RotateKey(channel::RotateKeyArgs),
    /// List every state a channel has been in, who signed it and when.
    History(channel::HistoryArgs),
    /// Per channel: the rollout in force and what the clients report.
    Status(status::StatusArgs),
    /// Bring an install directory to the channel's current version.
    Sync(sync::SyncArgs),
    /// Keep an install directory up to date on a schedule (a service).
    Agent(agent::AgentArgs),
    /// Start the installed version's entry point; revert a new version that
    /// keeps failing.
    Run(run::RunArgs),
    /// End the probation of the freshly installed version.
    MarkHealthy(run::MarkHealthyArgs),
    /// Switch back to the previous kept version.
    Rollback(sync::RollbackArgs),
    /// Re-hash the live tree against its manifest; --repair mends it.
    Verify(sync::VerifyArgs),
    /// Check a server's data directory offline; changes nothing.
    Fsck(fsck::FsckArgs),
    /// Remove old versions and unreferenced chunks from a stopped server's store.
    Gc(gc::GcArgs),
    /// Copy a server's store consistently (works while it serves).
    Backup(backup::BackupArgs),
    /// Chunk and hash a folder as `push` would, without a server.
    Scan(scan::ScanArgs),
    /// Compare chunk sizes and zstd levels on a version history.
    Tune(tune::TuneArgs),
    /// Run a local server, push two versions, sync a client, show the bytes.
    Demo(demo::DemoArgs),
}

pub fn init_logging(cli: &Cli) {
    let default = match (cli.verbose, &cli.command) {
        (0, Command::Serve(_) | Command::Agent(_)) => "info",
        (0, _) => "warn",
        (1, _) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if log_format(cli) == serve::LogFormat::Json {
        fmt.json().with_current_span(false).init();
    } else {
        fmt.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}

/// `serve --log-format`, else the config file's `log-format` (a broken file
/// is reported by `serve` itself, after logging is up).
fn log_format(cli: &Cli) -> serve::LogFormat {
    let Command::Serve(a) = &cli.command else {
        return serve::LogFormat::Text;
    };
    a.log_format
        .or_else(|| {
            a.config
                .as_deref()
                .and_then(|p| serve::load_file(p).ok())
                .and_then(|f| f.log_format)
        })
        .unwrap_or_default()
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Keygen(a) => keygen::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Push(a) => publish::push(a),
        Command::Promote(a) => channel::promote(a),
        Command::Pause(a) => channel::pause(a, true),
        Command::Resume(a) => channel::pause(a, false),
        Command::History(a) => channel::history(a),
        Command::RotateKey(a) => channel::rotate_key(a),
        Command::Status(a) => status::run(a),
        Command::Sync(a) => sync::sync(a),
        Command::Agent(a) => agent::run(a),
        Command::Run(a) => run::run(a),
        Command::MarkHealthy(a) => run::mark(a),
        Command::Rollback(a) => sync::rollback(a),
        Command::Verify(a) => sync::verify(a),
        Command::Fsck(a) => fsck::run(a),
        Command::Gc(a) => gc::run(a),
        Command::Backup(a) => backup::run(a),
        Command::Scan(a) => scan::run(a),
        Command::Tune(a) => tune::run(a),
        Command::Demo(a) => demo::run(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn contract_invocations_parse() {
        for args in [
            "ferry keygen --secret-key k",
            "ferry serve --data d --listen 127.0.0.1:1 --push-token t",
            "ferry push dir --server http://x --app a --version 1 --key k --token t --channel c --json",
            "ferry promote --server http://x --app a --channel c --version 1 --key k --token t",
            "ferry promote --server http://x --app a --channel c --version 1 --key k --token t --percent 10 --ramp 10%,50%,100% --every 24h --activate-at 2026-12-01T09:00:00Z --group a=2026-12-01T09:00:00Z --group b=+1d --min-version 0.9 --expires-in 30d",
            "ferry pause --server http://x --app a --channel c --key k --token t",
            "ferry resume --server http://x --app a --channel c --key k --token t",
            "ferry history --server http://x --app a --channel c --json",
            "ferry status --server http://x --app a --json",
            "ferry sync --server http://x --app a --channel c --install i --trust 00 --group g --client-id-file f",
            "ferry sync --server http://x --app a --channel c --install i --trust 00 --json",
            "ferry rollback --install i",
            "ferry run --install i --check --server http://x --app a --channel c --trust 00 -- --flag x",
            "ferry mark-healthy --install i",
            "ferry agent --server http://x --app a --channel c --install i --trust 00 --interval 4h --config f.toml",
            "ferry verify --install i --repair --server http://x --trust 00",
            "ferry fsck --data d",
            "ferry gc --data d --keep 2 --dry-run",
            "ferry backup --data d --out o",
            "ferry serve --listen 127.0.0.1:1 --push-token t --tls-cert c --tls-key k --data d",
            "ferry serve --listen 127.0.0.1:1 --mirror-of http://x --data d",
            "ferry serve --config f.toml",
            "ferry sync --server https://x --app a --channel c --install i --trust 00 --ca ca.pem",
            "ferry push dir --server https://x --app a --version 1 --key k --token t --ca ca.pem",
            "ferry promote --server https://x --app a --channel c --version 1 --key k --token t --ca c",
            "ferry status --server https://x --app a --ca c",
            "ferry history --server https://x --app a --channel c --ca c",
            "ferry agent --config f.toml --ca c",
            "ferry run --install i --check --server https://x --app a --channel c --trust 00 --ca c",
            "ferry scan dir --json --avg-chunk 65536",
            "ferry tune a b c --avg 8,16 --levels 3 --fixed 0 --json --plot p.svg",
        ] {
            let r = Cli::try_parse_from(args.split(' '));
            assert!(r.is_ok(), "{args}: {r:?}");
        }
    }

    #[test]
    fn repair_needs_server_and_trust() {
        let r = Cli::try_parse_from("ferry verify --install i --repair".split(' '));
        assert!(r.is_err());
    }
}
