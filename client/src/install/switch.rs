//! Switching `current` to a new tree, atomically and crash-safely.
//!
//! The new tree is complete and fsynced before this starts. A journal is
//! written first; then `renameat2(RENAME_EXCHANGE)` swaps the new tree and
//! `current` in one step (on file systems without it: two renames, which the
//! journal lets a later run finish). After the swap, the path that held the
//! new tree holds the old one, which is moved to `versions/OLD`. A crash at
//! any point leaves `current` a complete old or new tree, and [`recover`]
//! completes the bookkeeping on the next run.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{fsync_dir, write_atomic, InstallState, Installed, Layout, Probation};
use crate::error::ClientError;

/// Where the new tree comes from.
#[derive(Debug, Clone)]
pub enum SwitchSource {
    /// A freshly built tree in `.ferry/staging/`.
    Staging(PathBuf),
    /// A kept version in `versions/` (rollback, or re-installing it).
    Kept(String),
}

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    new: Installed,
    old: Option<Installed>,
    /// Holds the new tree before the swap and the old tree after it.
    source: PathBuf,
    /// Inode of the new tree: tells whether the swap happened.
    new_ino: u64,
}

fn ino(p: &Path) -> Option<u64> {
    std::fs::symlink_metadata(p).ok().map(|m| m.ino())
}

fn side_path(layout: &Layout) -> PathBuf {
    layout.meta().join("switch-old")
}

/// Makes the tree at `source` the live `current` tree of version `new`,
/// keeps the old one as a previous version and prunes to `keep` of those.
pub fn switch_to(
    layout: &Layout,
    state: &mut InstallState,
    new: Installed,
    source: SwitchSource,
    keep: usize,
) -> Result<(), ClientError> {
    let source = match source {
        SwitchSource::Staging(p) => p,
        SwitchSource::Kept(v) => layout.version_dir(&v),
    };
    let new_ino = ino(&source).ok_or_else(|| {
        ClientError::install(&layout.root, format!("{} does not exist", source.display()))
    })?;
    let current = layout.current();
    let has_current = std::fs::symlink_metadata(&current).is_ok();
    let journal = Journal {
        new,
        old: if has_current {
            state.current.clone()
        } else {
            None
        },
        source: source.clone(),
        new_ino,
    };
    let text = serde_json::to_vec(&journal).map_err(|e| ClientError::Internal(e.to_string()))?;
    write_atomic(&layout.journal(), &text)?;
    ferry_failpoint::hit("switch.journaled");
    if has_current {
        exchange(layout, &source, &current)?;
    } else {
        std::fs::rename(&source, &current).map_err(|e| ClientError::io(&current, e))?;
    }
    ferry_failpoint::hit("switch.exchanged");
    fsync_dir(&layout.root)?;
    if let Some(parent) = source.parent() {
        fsync_dir(parent)?;
    }
    ferry_failpoint::hit("switch.synced");
    finish(layout, state, journal, keep)
}

/// Swaps two directories atomically, or with two journaled renames where
/// the file system cannot exchange.
fn exchange(layout: &Layout, a: &Path, b: &Path) -> Result<(), ClientError> {
    let ca = std::ffi::CString::new(a.as_os_str().as_bytes())
        .map_err(|_| ClientError::Internal("NUL in path".into()))?;
    let cb = std::ffi::CString::new(b.as_os_str().as_bytes())
        .map_err(|_| ClientError::Internal("NUL in path".into()))?;
    // SAFETY: two valid NUL-terminated paths; no pointers are retained.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => {
            tracing::debug!("RENAME_EXCHANGE unsupported here ({err}); using two renames");
            let side = side_path(layout);
            std::fs::rename(b, &side).map_err(|e| ClientError::io(b, e))?;
            std::fs::rename(a, b).map_err(|e| ClientError::io(a, e))?;
            std::fs::rename(&side, a).map_err(|e| ClientError::io(&side, e))?;
            Ok(())
        }
        _ => Err(ClientError::io(b, err)),
    }
}

/// Files the old tree away, updates and saves the state, prunes, and
/// removes the journal.
fn finish(
    layout: &Layout,
    state: &mut InstallState,
    journal: Journal,
    keep: usize,
) -> Result<(), ClientError> {
    let Journal {
        new, old, source, ..
    } = journal;
    let mut kept: Vec<Installed> = state
        .kept
        .iter()
        .filter(|k| k.version != new.version && old.as_ref().is_none_or(|o| o.version != k.version))
        .cloned()
        .collect();
    match &old {
        Some(o) if o.version != new.version && std::fs::symlink_metadata(&source).is_ok() => {
            let dest = layout.version_dir(&o.version);
            if dest != source {
                layout.discard(&dest)?;
                std::fs::rename(&source, &dest).map_err(|e| ClientError::io(&dest, e))?;
            }
            fsync_dir(&layout.versions())?;
            ferry_failpoint::hit("switch.old_filed");
            kept.insert(0, o.clone());
        }
        _ => layout.discard(&source)?,
    }
    let dropped: Vec<Installed> = if kept.len() > keep {
        kept.split_off(keep)
    } else {
        Vec::new()
    };
    // A freshly switched version is on probation until `ferry run` sees it
    // run long enough or the app calls `ferry mark-healthy`.
    state.probation = Some(Probation {
        version: new.version.clone(),
        since: ferry_protocol::unix_now(),
        failures: 0,
    });
    state.current = Some(new);
    state.kept = kept;
    for d in &dropped {
        layout.discard(&layout.version_dir(&d.version))?;
    }
    state.save(layout)?;
    ferry_failpoint::hit("switch.state_saved");
    for d in &dropped {
        if !state.installed().any(|i| i.manifest_id == d.manifest_id) {
            if let Ok(id) = d.id() {
                let _ = std::fs::remove_file(layout.manifest_file(&id));
            }
        }
    }
    std::fs::remove_file(layout.journal()).map_err(|e| ClientError::io(layout.journal(), e))?;
    fsync_dir(&layout.meta())?;
    ferry_failpoint::hit("switch.done");
    Ok(())
}

/// Completes or abandons a switch a crash interrupted. Returns true when
/// there was one.
pub fn recover(
    layout: &Layout,
    state: &mut InstallState,
    keep: usize,
) -> Result<bool, ClientError> {
    let path = layout.journal();
    let Ok(text) = std::fs::read(&path) else {
        return Ok(false);
    };
    let journal: Journal = match serde_json::from_slice(&text) {
        Ok(j) => j,
        Err(_) => {
            // A journal is written atomically, so a damaged one is foreign.
            return Err(ClientError::install(
                &layout.root,
                "switch journal is damaged",
            ));
        }
    };
    let current = layout.current();
    let side = side_path(layout);
    // Two-rename fallback interrupted between its renames.
    if ino(&current).is_none() && ino(&journal.source) == Some(journal.new_ino) {
        std::fs::rename(&journal.source, &current).map_err(|e| ClientError::io(&current, e))?;
    }
    if ino(&side).is_some() && ino(&journal.source).is_none() {
        std::fs::rename(&side, &journal.source).map_err(|e| ClientError::io(&side, e))?;
    }
    if ino(&current) == Some(journal.new_ino) {
        tracing::info!("finishing an interrupted switch to {}", journal.new.version);
        finish(layout, state, journal, keep)?;
    } else {
        tracing::info!(
            "an interrupted switch to {} had not happened; the old version stays",
            journal.new.version
        );
        std::fs::remove_file(&path).map_err(|e| ClientError::io(&path, e))?;
    }
    Ok(true)
}
