//! `ferry agent`: the sync agent as a long-running service, configured by
//! flags and/or a TOML file (flags win).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use ferry_client::agent::{run_agent, AgentEvent, Schedule};
use ferry_client::hooks::Hook;
use ferry_client::{SyncOptions, Timeouts, TlsRoots, UnchangedFiles};
use serde::Deserialize;

use super::common::{parse_trust, runtime, shutdown_signal, FetchMode};
use super::publish::parse_duration;

#[derive(Debug, Args, Default)]
pub struct AgentArgs {
    /// TOML file with any of these options (keys as the flags, e.g.
    /// `client-id-file`); flags given here win.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Server URL.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    #[arg(long)]
    pub app: Option<String>,
    #[arg(long)]
    pub channel: Option<String>,
    /// Install directory.
    #[arg(long, value_name = "DIR")]
    pub install: Option<PathBuf>,
    /// Publisher public key to trust (repeatable), or a file of keys.
    #[arg(long, value_name = "PUBKEY")]
    pub trust: Vec<String>,
    /// Time between checks [default: 4h].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub interval: Option<u64>,
    /// Spread of the interval, in percent [default: 20].
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(0..=90))]
    pub jitter: Option<u8>,
    /// Longest wait between retries after errors [default: 1h].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub max_backoff: Option<u64>,
    /// The first check waits a random time up to this [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = parse_splay)]
    pub startup_splay: Option<u64>,
    /// Rollout group of this client.
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,
    /// File holding this machine's client id.
    #[arg(long, value_name = "FILE")]
    pub client_id_file: Option<PathBuf>,
    /// Previous versions to keep [default: 1].
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub keep: Option<u32>,
    /// Concurrent fetch streams [default: 3].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub streams: Option<u32>,
    /// Seconds without progress before a request is abandoned [default: 60].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: Option<u64>,
    /// Run COMMAND at POINT (post-install, pre-switch, post-switch;
    /// repeatable).
    #[arg(long, value_name = "POINT=COMMAND")]
    pub hook: Vec<Hook>,
    /// Time a hook may run [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub hook_timeout: Option<u64>,
    /// Print one JSON object per event on stdout.
    #[arg(long)]
    pub json: bool,
    /// CA certificate(s), PEM, that an https:// server must chain to
    /// (instead of the system's CAs).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// How to fetch chunks: batch or get (cacheable) [default: batch].
    #[arg(long, value_enum)]
    pub fetch: Option<FetchMode>,
    /// Hard-link unchanged files from the installed version even with
    /// hooks (see `ferry sync --link-unchanged`).
    #[arg(long, conflicts_with = "copy_unchanged")]
    pub link_unchanged: bool,
    /// Copy unchanged files instead of hard-linking them (see `ferry sync
    /// --copy-unchanged`).
    #[arg(long)]
    pub copy_unchanged: bool,
}

/// The TOML file: every key optional, unknown keys an error naming them.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct AgentFile {
    server: Option<String>,
    app: Option<String>,
    channel: Option<String>,
    install: Option<PathBuf>,
    trust: Option<Vec<String>>,
    interval: Option<String>,
    jitter: Option<u8>,
    max_backoff: Option<String>,
    startup_splay: Option<String>,
    group: Option<String>,
    client_id_file: Option<PathBuf>,
    keep: Option<u32>,
    streams: Option<u32>,
    timeout: Option<u64>,
    hook: Option<Vec<String>>,
    hook_timeout: Option<String>,
    ca: Option<PathBuf>,
    fetch: Option<FetchMode>,
    link_unchanged: Option<bool>,
}

fn parse_splay(s: &str) -> Result<u64, String> {
    if s.trim() == "0" {
        return Ok(0);
    }
    parse_duration(s)
}

/// Loads the config file; relative paths in it are relative to the file.
fn load_file(path: &Path) -> Result<AgentFile> {
    let meta = std::fs::metadata(path).with_context(|| format!("config {}", path.display()))?;
    if meta.len() > 1 << 20 {
        bail!("config {}: larger than 1 MiB", path.display());
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    let mut f: AgentFile =
        toml::from_str(&text).with_context(|| format!("config {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    for p in [&mut f.install, &mut f.client_id_file, &mut f.ca]
        .into_iter()
        .flatten()
    {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    }
    if let Some(trust) = &mut f.trust {
        for t in trust.iter_mut() {
            let looks_like_key = t.len() == 64 && t.chars().all(|c| c.is_ascii_hexdigit());
            if !looks_like_key && Path::new(t.as_str()).is_relative() {
                *t = base.join(&*t).display().to_string();
            }
        }
    }
    Ok(f)
}

fn dur(file_value: &Option<String>, key: &str, allow_zero: bool) -> Result<Option<u64>> {
    file_value
        .as_deref()
        .map(|s| {
            if allow_zero {
                parse_splay(s)
            } else {
                parse_duration(s)
            }
        })
        .transpose()
        .map_err(|e| anyhow::anyhow!("config key {key}: {e}"))
}

/// Flags over file over defaults.
/// Everything `ferry agent` runs with, after flags, file and defaults.
#[derive(Debug)]
struct Resolved {
    server: String,
    timeouts: Timeouts,
    roots: TlsRoots,
    fetch: FetchMode,
    opts: SyncOptions,
    schedule: Schedule,
    json: bool,
}

fn resolve(a: AgentArgs) -> Result<Resolved> {
    let f = match &a.config {
        Some(p) => load_file(p)?,
        None => AgentFile::default(),
    };
    let need = |v: Option<String>, name: &str| {
        v.ok_or_else(|| {
            anyhow::anyhow!("--{name} is required (on the command line or in --config)")
        })
    };
    let server = need(a.server.or(f.server), "server")?;
    let app = need(a.app.or(f.app), "app")?;
    let channel = need(a.channel.or(f.channel), "channel")?;
    let install = a.install.or(f.install).ok_or_else(|| {
        anyhow::anyhow!("--install is required (on the command line or in --config)")
    })?;
    let trust = if a.trust.is_empty() {
        f.trust.unwrap_or_default()
    } else {
        a.trust
    };
    if trust.is_empty() {
        bail!("--trust is required (on the command line or in --config)");
    }
    let trusted = parse_trust(&trust)?;
    let group = a.group.or(f.group);
    if let Some(g) = &group {
        ferry_protocol::names::validate_channel(g)
            .map_err(|e| anyhow::anyhow!("group {g:?}: {e}"))?;
    }
    let jitter = a.jitter.or(f.jitter).unwrap_or(20);
    if jitter > 90 {
        bail!("config key jitter: {jitter} is above 90 (percent)");
    }
    let defaults = Schedule::default();
    let interval = a
        .interval
        .or(dur(&f.interval, "interval", false)?)
        .map_or(defaults.interval, Duration::from_secs);
    let schedule = Schedule {
        interval,
        jitter: f64::from(jitter) / 100.0,
        max_backoff: a
            .max_backoff
            .or(dur(&f.max_backoff, "max-backoff", false)?)
            .map_or(defaults.max_backoff, Duration::from_secs),
        startup_splay: a
            .startup_splay
            .or(dur(&f.startup_splay, "startup-splay", true)?)
            .map_or(defaults.startup_splay, Duration::from_secs)
            .min(interval),
        ..defaults
    };
    let keep = a.keep.or(f.keep).unwrap_or(1);
    let streams = a.streams.or(f.streams).unwrap_or(3);
    if keep > 100 || !(1..=32).contains(&streams) {
        bail!("config: keep must be 0-100 and streams 1-32");
    }
    let timeouts = Timeouts {
        read: a.timeout.or(f.timeout).unwrap_or(60).clamp(1, 3600),
        ..Timeouts::default()
    };
    let mut opts = SyncOptions::new(&app, &channel, install, trusted);
    opts.keep = keep as usize;
    opts.streams = streams as usize;
    opts.group = group;
    opts.client_id_file = a.client_id_file.or(f.client_id_file);
    opts.unchanged = match (a.link_unchanged, a.copy_unchanged, f.link_unchanged) {
        (false, false, Some(true)) => UnchangedFiles::Link,
        (false, false, Some(false)) => UnchangedFiles::Copy,
        (link, copy, _) => super::sync::unchanged_files(link, copy),
    };
    opts.hooks = if a.hook.is_empty() {
        f.hook
            .unwrap_or_default()
            .iter()
            .map(|h| {
                h.parse::<Hook>()
                    .map_err(|e| anyhow::anyhow!("config key hook: {e}"))
            })
            .collect::<Result<_>>()?
    } else {
        a.hook
    };
    if let Some(t) = a
        .hook_timeout
        .or(dur(&f.hook_timeout, "hook-timeout", false)?)
    {
        opts.hook_timeout = Duration::from_secs(t);
    }
    let roots = TlsRoots::from_option(a.ca.or(f.ca).as_deref());
    Ok(Resolved {
        fetch: a.fetch.or(f.fetch).unwrap_or_default(),
        server,
        timeouts,
        roots,
        opts,
        schedule,
        json: a.json,
    })
}

pub fn run(a: AgentArgs) -> Result<ExitCode> {
    let Resolved {
        server,
        timeouts,
        roots,
        fetch,
        opts,
        schedule,
        json,
    } = resolve(a)?;
    // Fail fast on a URL or CA file that can never work, before the first
    // sleep.
    let client = ferry_client::Http::with_roots(&server, timeouts, &roots)?
        .with_chunk_gets(fetch == FetchMode::Get);
    eprintln!(
        "ferry agent: {} {} -> {} every {:?} (±{:.0}%)",
        opts.app,
        opts.channel,
        opts.install.display(),
        schedule.interval,
        schedule.jitter * 100.0
    );
    let print = move |e: &AgentEvent| {
        if json {
            if let Ok(s) = serde_json::to_string(e) {
                println!("{s}");
            }
        } else {
            eprintln!(
                "ferry agent: {}: {} (next check in {} s)",
                e.event, e.message, e.next_check_in_s
            );
        }
    };
    runtime()?.block_on(run_agent(
        &client,
        &opts,
        &schedule,
        shutdown_signal(),
        print,
    ))?;
    eprintln!("ferry agent: stopped");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let p = dir.join("agent.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    const KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    #[test]
    fn file_fills_in_and_flags_win() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            &format!(
                "server = \"http://a:1\"\napp = \"demo\"\nchannel = \"stable\"\ninstall = \"inst\"\n\
                 trust = [\"{KEY}\"]\ninterval = \"30m\"\njitter = 10\ngroup = \"branch-a\"\n"
            ),
        );
        let a = AgentArgs {
            config: Some(p),
            channel: Some("beta".into()),
            ..Default::default()
        };
        let Resolved {
            server,
            opts: o,
            schedule: s,
            ..
        } = resolve(a).unwrap();
        assert_eq!(server, "http://a:1");
        assert_eq!(o.channel, "beta");
        assert_eq!(o.install, d.path().join("inst"));
        assert_eq!(o.group.as_deref(), Some("branch-a"));
        assert_eq!(s.interval, Duration::from_secs(1800));
        assert!((s.jitter - 0.1).abs() < 1e-9);
    }

    #[test]
    fn unknown_keys_and_missing_values_are_named() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "server = \"http://a:1\"\nintervall = \"1h\"\n");
        let e = resolve(AgentArgs {
            config: Some(p),
            ..Default::default()
        })
        .unwrap_err();
        assert!(format!("{e:#}").contains("intervall"), "{e:#}");
        let p = write(d.path(), "server = \"http://a:1\"\n");
        let e = resolve(AgentArgs {
            config: Some(p),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("--app"), "{e}");
        let p = write(
            d.path(),
            &format!(
                "server = \"http://a:1\"\napp = \"demo\"\nchannel = \"s\"\ninstall = \"i\"\n\
                 trust = [\"{KEY}\"]\ninterval = \"soon\"\n"
            ),
        );
        let e = resolve(AgentArgs {
            config: Some(p),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("interval"), "{e}");
    }
}
