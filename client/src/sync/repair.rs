//! `ferry verify --repair`: rebuild damaged or missing entries of the live
//! tree in staging (from intact local chunks, including the undamaged parts
//! of the damaged files, plus fetched ones), then move each into place with
//! an atomic rename.

use std::fs;
use std::path::Path;

use ferry_protocol::{EntryKind, PublicKey};

use super::build::remove_any;
use super::{build_tree, local_index, FileJob};
use crate::error::ClientError;
use crate::http::Http;
use crate::install::fsync_dir;
use crate::verify::{check_tree, load_manifest, open_install, report, OpenInstall, VerifyReport};

pub async fn repair_install(
    http: &Http,
    install: &Path,
    trusted: &[PublicKey],
    streams: usize,
    quiet: bool,
) -> Result<VerifyReport, ClientError> {
    let OpenInstall {
        layout,
        _lock,
        state,
        current: cur,
    } = open_install(install)?;
    let id = cur.id()?;
    let manifest = load_manifest(&layout, &id, &state.known_keys(trusted))?;
    let live = layout.current();
    let (m, l) = (manifest.clone(), live.clone());
    let check = tokio::task::spawn_blocking(move || check_tree(&l, &m)).await?;
    if check.is_clean() {
        return Ok(report(
            &layout,
            &cur.version,
            check,
            Vec::new(),
            http.bytes_down(),
        ));
    }
    let damaged: std::collections::HashSet<&str> =
        check.damaged.iter().map(|p| p.path.as_str()).collect();
    let entries: Vec<ferry_protocol::Entry> = manifest
        .entries
        .iter()
        .filter(|e| damaged.contains(e.path.as_str()))
        .cloned()
        .collect();

    // Directories first (a file may need its parent back), then files built
    // in staging, then symlinks.
    for e in &entries {
        if matches!(e.kind, EntryKind::Dir) {
            let p = live.join(&e.path);
            if fs::symlink_metadata(&p).is_ok() {
                remove_any(&p)?;
            }
            fs::create_dir_all(&p).map_err(|err| ClientError::io(&p, err))?;
        }
    }
    let staging = layout.staging_root().join("repair");
    layout.discard(&staging)?;
    let mut stage_entries: Vec<ferry_protocol::Entry> = manifest
        .entries
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::Dir))
        .cloned()
        .collect();
    let jobs: Vec<FileJob> = entries.iter().filter_map(FileJob::from_entry).collect();
    stage_entries.extend(
        entries
            .iter()
            .filter(|e| matches!(e.kind, EntryKind::File { .. }))
            .cloned(),
    );
    let index = local_index(&layout, &state);
    build_tree(
        http,
        staging.clone(),
        jobs.clone(),
        &stage_entries,
        index,
        super::FetchContext::default(),
        streams,
        quiet,
        // Repaired files replace damaged ones by rename: never a link to
        // the file being replaced.
        false,
    )
    .await?;

    let mut repaired = Vec::new();
    for job in &jobs {
        let from = staging.join(&job.rel);
        let to = live.join(&job.rel);
        if let Ok(m) = fs::symlink_metadata(&to) {
            if m.is_dir() {
                remove_any(&to)?;
            }
        }
        fs::rename(&from, &to).map_err(|e| ClientError::io(&to, e))?;
        if let Some(parent) = to.parent() {
            fsync_dir(parent)?;
        }
        repaired.push(job.rel.clone());
    }
    for e in &entries {
        match &e.kind {
            EntryKind::Symlink { target } => {
                let p = live.join(&e.path);
                if fs::symlink_metadata(&p).is_ok() {
                    remove_any(&p)?;
                }
                std::os::unix::fs::symlink(target, &p).map_err(|err| ClientError::io(&p, err))?;
                repaired.push(e.path.clone());
            }
            EntryKind::Dir => repaired.push(e.path.clone()),
            EntryKind::File { .. } => {}
        }
    }
    layout.discard(&staging)?;
    let (m, l) = (manifest.clone(), live.clone());
    let after = tokio::task::spawn_blocking(move || check_tree(&l, &m)).await?;
    if !after.is_clean() {
        return Err(ClientError::install(
            &layout.root,
            format!(
                "repair left {} problems, first: {} ({})",
                after.damaged.len(),
                after.damaged[0].path,
                after.damaged[0].problem
            ),
        ));
    }
    let mut r = report(&layout, &cur.version, check, repaired, http.bytes_down());
    r.clean = true;
    Ok(r)
}
