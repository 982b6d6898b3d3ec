//! Versions staged ahead of their activation time, and the small pieces of
//! rollout bookkeeping around them (client ids, reasons for users).

use std::path::Path;

use ferry_protocol::report::validate_client_id;
use ferry_protocol::rollout::Reason;
use ferry_protocol::ManifestId;

use crate::error::ClientError;
use crate::install::{random_client_id, write_atomic, InstallState, Installed, Layout};
use crate::verify::{check_tree, load_manifest};

/// Forgets a staged version that is gone or already current.
pub(super) fn tidy(layout: &Layout, state: &mut InstallState) {
    let Some(s) = &state.staged else { return };
    let current = state.current.as_ref().map(|c| &c.manifest_id);
    let dir = s.manifest_id.parse().map(|id| layout.staging(&id));
    if current == Some(&s.manifest_id) || !dir.is_ok_and(|d| d.is_dir()) {
        state.staged = None;
    }
}

/// Deletes the staged tree and forgets it.
pub(super) fn discard(layout: &Layout, state: &mut InstallState) {
    if let Some(s) = state.staged.take() {
        if let Ok(id) = s.manifest_id.parse::<ManifestId>() {
            if let Err(e) = layout.discard(&layout.staging(&id)) {
                tracing::warn!("could not delete the staged tree of {}: {e}", s.version);
            }
        }
    }
}

/// Switches to the staged version if its activation time has come; the
/// tree is checked against its signed manifest first (it sat on disk).
/// Returns the version switched to. Blocking: call off the runtime.
pub fn switch_due(
    layout: &Layout,
    state: &mut InstallState,
    o: &super::SyncOptions,
    now: u64,
) -> Result<Option<String>, ClientError> {
    tidy(layout, state);
    let Some(s) = state.staged.clone() else {
        return Ok(None);
    };
    if s.activates_at > now {
        return Ok(None);
    }
    let id: ManifestId = s
        .manifest_id
        .parse()
        .map_err(|e| ClientError::Internal(format!("state: bad staged manifest id: {e}")))?;
    let manifest = load_manifest(layout, &id, &state.trusted_keys(&o.trusted))?;
    let dir = layout.staging(&id);
    let check = check_tree(&dir, &manifest);
    if !check.is_clean() {
        tracing::warn!(
            "staged tree of {} is damaged; it will be fetched again",
            s.version
        );
        discard(layout, state);
        return Ok(None);
    }
    state.staged = None;
    let target = Installed::new(&s.version, &id);
    super::switch_with_hooks(layout, state, target, dir, o)?;
    Ok(Some(s.version))
}

/// The client id `o` syncs with, if one exists yet (for reports after a
/// failed sync).
pub fn client_id(o: &super::SyncOptions) -> Option<String> {
    match &o.client_id_file {
        Some(f) => client_id_from_file(f).ok(),
        None => {
            let layout = Layout::open(&o.install).ok()?;
            InstallState::load(&layout).ok().map(|s| s.client_id)
        }
    }
}

/// Reads a client id from `path`, creating it (random, atomically) when
/// absent, so several installs on one machine fall in the same bucket.
pub(super) fn client_id_from_file(path: &Path) -> Result<String, ClientError> {
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let id = s.trim();
            validate_client_id(id)
                .map_err(|e| ClientError::Usage(format!("{}: {e}", path.display())))?;
            Ok(id.to_string())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = random_client_id()?;
            write_atomic(path, format!("{id}\n").as_bytes())?;
            Ok(id)
        }
        Err(e) => Err(ClientError::io(path, e)),
    }
}

/// A reason in words, for `--json` and logs.
pub(super) fn describe(r: &Reason) -> String {
    match r {
        Reason::UpToDate => "up to date".into(),
        Reason::Rollout => "in the rollout".into(),
        Reason::BelowMinimum(m) => format!("below the minimum version {m}: forced"),
        Reason::Revert => "server-side revert".into(),
        Reason::OutsideRollout { basis_points } => format!(
            "outside the rollout (at {}%)",
            f64::from(*basis_points) / 100.0
        ),
        Reason::Paused => "the rollout is paused".into(),
        Reason::NewerInstalled => "a newer version is installed".into(),
        Reason::BeforeActivation => {
            "the new version activates later; installing the current one first".into()
        }
    }
}
