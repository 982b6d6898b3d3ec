//! `ferry status`: what the fleet runs, per channel and version.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use ferry_client::Timeouts;

use super::common::{http_client, parse_trust_optional, print_json, runtime};
use super::time::format_time;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Server URL.
    #[arg(long, value_name = "URL")]
    pub server: String,
    #[arg(long)]
    pub app: String,
    /// Verify each channel record against these publisher keys.
    #[arg(long, value_name = "PUBKEY")]
    pub trust: Vec<String>,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// CA certificate(s), PEM, that an https:// server must chain to
    /// (instead of the system's CAs).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

pub fn run(a: StatusArgs) -> Result<ExitCode> {
    let trusted = parse_trust_optional(&a.trust)?;
    let http = http_client(&a.server, Timeouts::default(), a.ca.as_deref())?;
    let s = runtime()?.block_on(ferry_client::status::status(&http, &a.app, &trusted))?;
    if a.json {
        print_json(&s)?;
        return Ok(ExitCode::SUCCESS);
    }
    for c in &s.channels {
        match &c.record {
            Some(r) => {
                let mut state = format!("{}% of clients", c.percent_now.unwrap_or(0.0));
                if r.paused {
                    state = "PAUSED".into();
                }
                if r.revert {
                    state.push_str(", revert");
                }
                if let Some(t) = r.activate_at {
                    state.push_str(&format!(", activates {}", format_time(t)));
                }
                if !r.groups.is_empty() {
                    state.push_str(&format!(", {} groups scheduled", r.groups.len()));
                }
                if let Some(m) = &r.min_version {
                    state.push_str(&format!(", minimum {m}"));
                }
                println!(
                    "{}/{}: {} (sequence {}; {state}){}",
                    s.app,
                    c.channel,
                    r.version,
                    r.sequence,
                    r.fallback_version
                        .as_deref()
                        .map(|f| format!("; others on {f}"))
                        .unwrap_or_default()
                );
            }
            None => println!("{}/{}: (no record)", s.app, c.channel),
        }
        if c.versions.is_empty() {
            println!("    no client reports yet");
        }
        for v in &c.versions {
            println!(
                "    {:<24} {:>6} ok {:>6} staged {:>6} failed {:>6} reverted   last report {}",
                v.version,
                v.ok,
                v.staged,
                v.failed,
                v.reverted,
                format_time(v.last_report_at)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
