//! `ferry run` and `ferry mark-healthy`: start the current version's entry
//! point, watch a freshly switched version on probation, and switch back by
//! itself when that version keeps failing.
//!
//! A version is on probation from its switch until it has run for
//! `healthy_after`, exited with status 0, or the app ran `ferry
//! mark-healthy`. Each failed start or error exit on probation counts; at
//! `max_failures` Ferry switches to the previous kept version and blocks the
//! bad one until the publisher issues a newer record.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use ferry_protocol::version_order::is_older;
use ferry_protocol::{unix_now, PublicKey};
use serde::Serialize;

use crate::error::ClientError;
use crate::hooks::Hook;
use crate::install::{
    recover, switch_to, Blocked, InstallLock, InstallState, Layout, SwitchSource,
};
use crate::sync::{switch_due, SyncOptions};
use crate::verify::load_manifest;

/// How `ferry run` treats the program.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub install: PathBuf,
    /// Keys to check the manifest with (empty: the install's copy is
    /// trusted as it was checked when installed).
    pub trusted: Vec<PublicKey>,
    /// Running this long marks a version on probation healthy.
    pub healthy_after: Duration,
    /// Failures on probation before switching back.
    pub max_failures: u32,
    pub args: Vec<OsString>,
    /// Hooks for switching a due staged version before the start.
    pub hooks: Vec<Hook>,
}

/// What happened (printed on stderr by the binary).
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub version: String,
    /// Exit code to pass on (127: could not start, 128+N: killed by N).
    pub exit_code: i32,
    pub marked_healthy: bool,
    pub failures: u32,
    /// Switched back to this version after too many failures.
    pub reverted_to: Option<String>,
}

/// The program to start, found under the lock: due staged versions switch
/// first, and a version below the publisher's minimum refuses to start.
fn prepare(o: &RunOptions) -> Result<(PathBuf, String, bool), ClientError> {
    let layout = Layout::open(&o.install)?;
    let _lock = InstallLock::acquire(&layout)?;
    let mut state = InstallState::load(&layout)?;
    let keep = state.kept.len().max(1);
    recover(&layout, &mut state, keep)?;
    let mut so = SyncOptions::new("", "", o.install.clone(), o.trusted.clone());
    so.keep = keep;
    so.hooks = o.hooks.clone();
    if let Some(v) = switch_due(&layout, &mut state, &so, unix_now())? {
        tracing::info!("switched to staged version {v} (its activation time has come)");
    }
    state.save(&layout)?;
    let current = state.current.clone().ok_or_else(|| {
        ClientError::install(
            &layout.root,
            "no version is installed; run `ferry sync` first",
        )
    })?;
    if let Some(min) = &state.min_version {
        if is_older(&current.version, min) {
            return Err(ClientError::install(
                &layout.root,
                format!(
                    "version {} is below the minimum the publisher requires ({min}); run `ferry sync` to update",
                    current.version
                ),
            ));
        }
    }
    let m = load_manifest(&layout, &current.id()?, &state.known_keys(&o.trusted))?;
    let entry = m.entry_point.ok_or_else(|| {
        ClientError::install(
            &layout.root,
            format!(
                "version {} names no entry point; the publisher pushes it with --entry PATH",
                current.version
            ),
        )
    })?;
    let on_probation = state
        .probation
        .as_ref()
        .is_some_and(|p| p.version == current.version);
    // Manifest paths are validated relative paths of files: no escape.
    Ok((layout.current().join(entry), current.version, on_probation))
}

/// Runs the current version's entry point to completion.
pub fn run(o: &RunOptions) -> Result<RunReport, ClientError> {
    let (program, version, on_probation) = prepare(o)?;
    let root = o
        .install
        .canonicalize()
        .map_err(|e| ClientError::io(&o.install, e))?;
    let started = Instant::now();
    let spawned = Command::new(&program)
        .args(&o.args)
        .env("FERRY_INSTALL", &root)
        .env("FERRY_VERSION", &version)
        .spawn();
    let mut marked_healthy = false;
    let status: Option<ExitStatus> = match spawned {
        Err(e) => {
            tracing::error!("cannot start {}: {e}", program.display());
            None
        }
        Ok(mut child) => loop {
            match child.try_wait() {
                Ok(Some(st)) => break Some(st),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!("waiting for {}: {e}", program.display());
                    break None;
                }
            }
            if on_probation && !marked_healthy && started.elapsed() >= o.healthy_after {
                marked_healthy = mark_healthy(&o.install, Some(&version))?.is_some();
            }
            std::thread::sleep(Duration::from_millis(50));
        },
    };
    let exit_code = match status {
        None => 127,
        Some(s) => exit_code_of(s),
    };
    let mut report = RunReport {
        version: version.clone(),
        exit_code,
        marked_healthy,
        failures: 0,
        reverted_to: None,
    };
    if !on_probation || marked_healthy {
        return Ok(report);
    }
    if exit_code == 0 {
        report.marked_healthy = mark_healthy(&o.install, Some(&version))?.is_some();
        return Ok(report);
    }
    let (failures, reverted) = record_failure(o, &version)?;
    report.failures = failures;
    report.reverted_to = reverted;
    Ok(report)
}

#[cfg(unix)]
fn exit_code_of(s: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}

#[cfg(not(unix))]
fn exit_code_of(s: ExitStatus) -> i32 {
    s.code().unwrap_or(1)
}

/// Counts a failure of `version` on probation; at the limit switches back
/// to the previous kept version and blocks this one.
fn record_failure(o: &RunOptions, version: &str) -> Result<(u32, Option<String>), ClientError> {
    let layout = Layout::open(&o.install)?;
    let _lock = InstallLock::acquire(&layout)?;
    let mut state = InstallState::load(&layout)?;
    let Some(p) = state.probation.as_mut().filter(|p| p.version == version) else {
        return Ok((0, None));
    };
    p.failures += 1;
    let failures = p.failures;
    if failures < o.max_failures {
        state.save(&layout)?;
        return Ok((failures, None));
    }
    let Some(previous) = state.kept.first().cloned() else {
        tracing::error!("{version} failed {failures} times on probation, but no previous version is kept to go back to");
        state.save(&layout)?;
        return Ok((failures, None));
    };
    if !layout.version_dir(&previous.version).is_dir() {
        state.save(&layout)?;
        return Ok((failures, None));
    }
    let sequence = state
        .channel
        .as_ref()
        .and_then(|c| state.seen.get(c))
        .map_or(0, |s| s.sequence);
    state.blocked = Some(Blocked {
        version: version.to_string(),
        sequence,
        reason: format!("failed {failures} times on probation"),
    });
    let keep = state.kept.len();
    switch_to(
        &layout,
        &mut state,
        previous.clone(),
        SwitchSource::Kept(previous.version.clone()),
        keep,
    )?;
    state.probation = None;
    state.save(&layout)?;
    Ok((failures, Some(previous.version)))
}

/// Ends the probation of the current version (of `version`, when given).
/// Returns the version marked, or `None` when nothing was on probation.
pub fn mark_healthy(install: &Path, version: Option<&str>) -> Result<Option<String>, ClientError> {
    let layout = Layout::open(install)?;
    let _lock = InstallLock::acquire(&layout)?;
    let mut state = InstallState::load(&layout)?;
    let current = state.current.as_ref().map(|c| c.version.clone());
    let matches = state.probation.as_ref().is_some_and(|p| {
        Some(&p.version) == current.as_ref() && version.is_none_or(|v| v == p.version)
    });
    if !matches {
        return Ok(None);
    }
    state.probation = None;
    state.save(&layout)?;
    Ok(current)
}
