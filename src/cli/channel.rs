//! `ferry promote`, `pause`, `resume`, `history`: the publisher's channel
//! commands (rollout policy lives in the signed record).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use ferry_client::{Http, PromoteOptions, PromoteReport, RolloutOptions, Timeouts};

use super::common::{http_client, load_secret_key, parse_trust_optional, print_json, runtime};
use super::publish::{parse_duration, PublishTarget};
use super::time::{format_time, parse_time};

#[derive(Debug, Args)]
pub struct PromoteArgs {
    #[command(flatten)]
    pub target: PublishTarget,
    /// Channel to point.
    #[arg(long)]
    pub channel: String,
    /// Published version to point it at.
    #[arg(long)]
    pub version: String,
    /// Offer the version to this share of clients (0-100, decimals allowed);
    /// the rest stay on, or get, the channel's previous version.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    pub percent: Option<u32>,
    /// Raise the share step by step, e.g. 10%,25%,50%,100% (with --every).
    #[arg(long, value_name = "LIST", value_parser = parse_percent, value_delimiter = ',')]
    pub ramp: Vec<u32>,
    /// Time between ramp steps, e.g. 24h.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub every: Option<u64>,
    /// Clients download ahead and switch at this time (RFC 3339, e.g.
    /// 2026-12-01T09:00:00Z, or +DURATION from now).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub activate_at: Option<u64>,
    /// A group's own activation time, NAME=TIME (repeatable).
    #[arg(long, value_name = "NAME=TIME", value_parser = parse_group)]
    pub group: Vec<(String, u64)>,
    /// Clients below this version update at once, whatever the rollout,
    /// and refuse to roll back below it.
    #[arg(long, value_name = "VERSION")]
    pub min_version: Option<String>,
    /// Mark the record as a revert (automatic when the version is older
    /// than the channel's current one).
    #[arg(long)]
    pub revert: bool,
    /// Free text kept in the channel's history (who, why).
    #[arg(long)]
    pub note: Option<String>,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// The clock, in unix seconds (tests).
    #[arg(long, hide = true)]
    pub now: Option<u64>,
}

/// `pause` and `resume`.
#[derive(Debug, Args)]
pub struct PauseArgs {
    #[command(flatten)]
    pub target: PublishTarget,
    /// Channel whose rollout to pause or resume.
    #[arg(long)]
    pub channel: String,
    /// Free text kept in the channel's history.
    #[arg(long)]
    pub note: Option<String>,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Server URL.
    #[arg(long, value_name = "URL")]
    pub server: String,
    #[arg(long)]
    pub app: String,
    #[arg(long)]
    pub channel: String,
    /// Show the newest N records.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,
    /// Verify each record against these publisher keys.
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

/// `10`, `10%`, `2.5` -> basis points.
pub fn parse_percent(s: &str) -> Result<u32, String> {
    let t = s.trim().trim_end_matches('%');
    let p: f64 = t
        .parse()
        .map_err(|_| format!("{s:?} is not a percentage (e.g. 10 or 2.5%)"))?;
    if !(0.0..=100.0).contains(&p) {
        return Err(format!("{s:?} is not between 0 and 100"));
    }
    Ok((p * 100.0).round() as u32)
}

fn parse_group(s: &str) -> Result<(String, u64), String> {
    let (name, time) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=TIME"))?;
    ferry_protocol::names::validate_channel(name).map_err(|e| format!("group {name:?}: {e}"))?;
    Ok((name.to_string(), parse_time(time)?))
}

#[derive(Debug, Args)]
pub struct RotateKeyArgs {
    /// Server URL, app, current key (--key) and push token.
    #[command(flatten)]
    pub target: PublishTarget,
    /// Channels to announce the new keys on (repeatable): every channel
    /// clients follow, so each client learns of the rotation.
    #[arg(long, required = true)]
    pub channel: Vec<String>,
    /// Secret key file of a new publisher key (repeatable).
    #[arg(long, value_name = "FILE", required = true)]
    pub new_key: Vec<std::path::PathBuf>,
    /// Keep trusting the current key as well (adding a key, not replacing).
    #[arg(long)]
    pub keep_old: bool,
    /// Free text kept in the channels' history.
    #[arg(long)]
    pub note: Option<String>,
    /// Print a JSON summary per channel on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn rotate_key(a: RotateKeyArgs) -> Result<ExitCode> {
    let old = load_secret_key(&a.target.key)?;
    let new: Vec<_> = a
        .new_key
        .iter()
        .map(|p| load_secret_key(p))
        .collect::<Result<_>>()?;
    let http = http_for(&a.target)?;
    let rt = runtime()?;
    for ch in &a.channel {
        let r = rt.block_on(ferry_client::rotate_keys(
            &http,
            &old,
            &new,
            a.keep_old,
            &a.target.app,
            ch,
            a.target.expires_in,
            a.note.clone(),
        ))?;
        if a.json {
            print_json(&r)?;
        } else {
            println!(
                "{}/{}: keys announced (sequence {}, version {} unchanged)",
                r.app, r.channel, r.sequence, r.version
            );
        }
    }
    if !a.json {
        println!("publish with --key {} from now on", a.new_key[0].display());
    }
    Ok(ExitCode::SUCCESS)
}

fn http_for(t: &PublishTarget) -> Result<Http> {
    Ok(
        http_client(&t.server, Timeouts::default(), t.ca.as_deref())?
            .with_token(Some(t.token.clone())),
    )
}

pub fn promote(a: PromoteArgs) -> Result<ExitCode> {
    let key = load_secret_key(&a.target.key)?;
    let http = http_for(&a.target)?;
    let mut groups = BTreeMap::new();
    for (g, t) in &a.group {
        if groups.insert(g.clone(), *t).is_some() {
            bail!("--group {g} is given twice");
        }
    }
    let o = PromoteOptions {
        app: a.target.app.clone(),
        channel: a.channel.clone(),
        version: a.version.clone(),
        expires_in: a.target.expires_in,
        rollout: RolloutOptions {
            percent: a.percent,
            ramp: a.ramp.clone(),
            every: a.every,
            activate_at: a.activate_at,
            groups,
            min_version: a.min_version.clone(),
            revert: a.revert.then_some(true),
            note: a.note.clone(),
        },
        now: a.now,
    };
    let r = runtime()?.block_on(ferry_client::promote(&http, &key, &o))?;
    if a.json {
        print_json(&r)?;
    } else {
        println!(
            "channel {}/{} -> {} (sequence {}, was {})",
            r.app,
            r.channel,
            r.version,
            r.sequence,
            r.previous_version.as_deref().unwrap_or("nothing")
        );
        print_policy(&r);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn pause(a: PauseArgs, paused: bool) -> Result<ExitCode> {
    let key = load_secret_key(&a.target.key)?;
    let http = http_for(&a.target)?;
    let r = runtime()?.block_on(ferry_client::set_paused(
        &http,
        &key,
        &a.target.app,
        &a.channel,
        paused,
        a.target.expires_in,
        a.note.clone(),
    ))?;
    if a.json {
        print_json(&r)?;
    } else {
        println!(
            "rollout of {} on {}/{} {} (sequence {})",
            r.version,
            r.app,
            r.channel,
            if paused { "paused" } else { "resumed" },
            r.sequence
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn history(a: HistoryArgs) -> Result<ExitCode> {
    let trusted = parse_trust_optional(&a.trust)?;
    let http = http_client(&a.server, Timeouts::default(), a.ca.as_deref())?;
    let h = runtime()?.block_on(ferry_client::history(
        &http,
        &a.app,
        &a.channel,
        a.limit as usize,
        &trusted,
    ))?;
    if a.json {
        print_json(&h)?;
        return Ok(ExitCode::SUCCESS);
    }
    for e in &h {
        let r = &e.record;
        let signer = e
            .signed_by
            .iter()
            .map(|k| k.chars().take(16).collect::<String>())
            .collect::<Vec<_>>()
            .join(",");
        println!(
            "#{:<4} {}  {}  by key {}{}",
            r.sequence,
            format_time(e.issued_at),
            r.version,
            signer,
            if e.verified { " (verified)" } else { "" }
        );
        print_policy(r);
        if let Some(n) = &e.note {
            println!("      note: {n}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The rollout part of a record in words, one line each.
fn print_policy(r: &PromoteReport) {
    let mut lines = Vec::new();
    if r.revert {
        lines.push("revert: clients move back to this version".to_string());
    }
    if r.paused {
        lines.push("PAUSED: no new client adopts it".to_string());
    }
    if !r.ramp.is_empty() {
        let steps: Vec<String> = r
            .ramp
            .iter()
            .map(|(at, p)| match at {
                0 => format!("{p}% from the start"),
                at => format!("{p}% from {}", format_time(*at)),
            })
            .collect();
        lines.push(format!("rollout: {}", steps.join(", ")));
    }
    if let Some(t) = r.activate_at {
        lines.push(format!("activates at {}", format_time(t)));
    }
    for (g, t) in &r.groups {
        lines.push(format!("group {g} activates at {}", format_time(*t)));
    }
    if let Some(m) = &r.min_version {
        lines.push(format!("minimum version {m}"));
    }
    if let Some(f) = &r.fallback_version {
        lines.push(format!("clients outside the rollout: {f}"));
    }
    for l in lines {
        println!("      {l}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages() {
        assert_eq!(parse_percent("10"), Ok(1000));
        assert_eq!(parse_percent("2.5%"), Ok(250));
        assert_eq!(parse_percent("100%"), Ok(10_000));
        assert!(parse_percent("101").is_err());
        assert!(parse_percent("-1").is_err());
        assert!(parse_percent("ten").is_err());
    }

    #[test]
    fn groups() {
        let (g, t) = parse_group("branch-a=2026-01-05T09:00:00Z").unwrap();
        assert_eq!(g, "branch-a");
        assert_eq!(t, 1_767_603_600);
        assert!(parse_group("nogroup").is_err());
        assert!(parse_group("../x=2026-01-05T09:00:00Z").is_err());
    }
}
