//! `ferry run` and `ferry mark-healthy`: the launcher (see
//! `ferry_client::launch`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use ferry_client::hooks::Hook;
use ferry_client::launch::{mark_healthy, run as launch, RunOptions, RunReport};
use ferry_client::{Http, SyncOptions, Timeouts, TlsRoots};
use ferry_protocol::report::{Outcome, Report};

use super::common::{parse_trust_optional, runtime};
use super::publish::parse_duration;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Install directory.
    #[arg(long, value_name = "DIR")]
    pub install: PathBuf,
    /// Sync before starting (needs --server, --app, --channel, --trust); if
    /// the server cannot be reached the installed version starts.
    #[arg(long, requires_all = ["server", "app", "channel", "trust"])]
    pub check: bool,
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    #[arg(long)]
    pub app: Option<String>,
    #[arg(long)]
    pub channel: Option<String>,
    /// Publisher public key (repeatable), or a file of keys.
    #[arg(long, value_name = "PUBKEY")]
    pub trust: Vec<String>,
    /// Rollout group (for --check).
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,
    /// A new version that runs this long is healthy.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub healthy_after: u64,
    /// Failed starts or error exits of a new version before Ferry switches
    /// back to the previous one.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_failures: u32,
    /// Hooks for an update done by --check or a staged switch
    /// (POINT=COMMAND, repeatable; see `ferry sync --help`).
    #[arg(long, value_name = "POINT=COMMAND")]
    pub hook: Vec<Hook>,
    /// CA certificate(s), PEM, that an https:// server must chain to
    /// (instead of the system's CAs).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Arguments for the program (after `--`).
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct MarkHealthyArgs {
    /// Install directory (the app gets it as $FERRY_INSTALL).
    #[arg(long, value_name = "DIR", env = "FERRY_INSTALL")]
    pub install: PathBuf,
}

pub fn run(a: RunArgs) -> Result<ExitCode> {
    let trusted = parse_trust_optional(&a.trust)?;
    if a.check {
        let mut o = SyncOptions::new(
            a.app.as_deref().unwrap_or_default(),
            a.channel.as_deref().unwrap_or_default(),
            a.install.clone(),
            trusted.clone(),
        );
        o.group = a.group.clone();
        o.hooks = a.hook.clone();
        let server = a.server.clone().unwrap_or_default();
        let result = runtime()?.block_on(async {
            let roots = TlsRoots::from_option(a.ca.as_deref());
            let http = Http::with_roots(&server, Timeouts::default(), &roots)?;
            ferry_client::sync(&http, &o).await
        });
        match result {
            Ok(r) if r.updated => eprintln!(
                "ferry run: updated to {}",
                r.version.as_deref().unwrap_or("?")
            ),
            Ok(_) => {}
            Err(e) if e.is_transient() => {
                eprintln!("ferry run: update check failed ({e}); starting the installed version")
            }
            Err(e) => return Err(e.into()),
        }
    }
    let r = launch(&RunOptions {
        install: a.install.clone(),
        trusted,
        healthy_after: Duration::from_secs(a.healthy_after),
        max_failures: a.max_failures,
        args: a.args.clone(),
        hooks: a.hook.clone(),
    })?;
    if let (Some(_), Some(server), Some(app), Some(channel)) =
        (&r.reverted_to, &a.server, &a.app, &a.channel)
    {
        report_revert(server, app, channel, &a, &r);
    }
    if let Some(prev) = &r.reverted_to {
        eprintln!(
            "ferry run: {} failed {} times right after the update; switched back to {prev} \
             and will not install {} again until the publisher issues a new record",
            r.version, r.failures, r.version
        );
    } else if r.failures > 0 {
        eprintln!(
            "ferry run: {} exited with status {} (failure {} of {} on probation)",
            r.version, r.exit_code, r.failures, a.max_failures
        );
    }
    Ok(ExitCode::from(r.exit_code.clamp(0, 255) as u8))
}

/// Tells the server a version was reverted here (best effort).
fn report_revert(server: &str, app: &str, channel: &str, a: &RunArgs, r: &RunReport) {
    let o = SyncOptions::new(app, channel, a.install.clone(), Vec::new());
    let Some(client_id) = ferry_client::sync::client_id(&o) else {
        return;
    };
    let report = Report {
        client_id,
        channel: channel.to_string(),
        version: r.reverted_to.clone(),
        outcome: Outcome::Reverted,
        error: Some("probation".into()),
        subject: Some(r.version.clone()),
    };
    let sent = runtime().map(|rt| {
        rt.block_on(async {
            let roots = TlsRoots::from_option(a.ca.as_deref());
            let http = Http::with_roots(server, Timeouts::default(), &roots)?;
            http.post_report(app, &report).await
        })
    });
    if let Ok(Err(e)) = sent {
        tracing::warn!("could not report the revert to the server: {e}");
    }
}

pub fn mark(a: MarkHealthyArgs) -> Result<ExitCode> {
    match mark_healthy(&a.install, None)? {
        Some(v) => println!("{v} marked healthy"),
        None => println!("nothing on probation"),
    }
    Ok(ExitCode::SUCCESS)
}
