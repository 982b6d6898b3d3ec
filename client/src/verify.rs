//! `ferry verify`: re-hash the live tree against its manifest; with
//! `--repair`, rebuild what is damaged from local chunks and the server.

use std::collections::HashSet;
use std::fs::{self, File};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;

use ferry_protocol::signed::KIND_MANIFEST;
use ferry_protocol::{ChunkId, EntryKind, Envelope, Manifest, ManifestId, PublicKey};
use rayon::prelude::*;
use serde::Serialize;

use crate::error::ClientError;
use crate::install::{InstallLock, InstallState, Installed, Layout};

/// One thing wrong with a tree.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TreeProblem {
    pub path: String,
    pub problem: String,
}

/// Result of checking a tree against a manifest.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TreeCheck {
    pub files: u64,
    pub bytes: u64,
    pub damaged: Vec<TreeProblem>,
    /// Paths in the tree that the manifest does not list (not repaired).
    pub extra: Vec<String>,
}

impl TreeCheck {
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty()
    }
}

/// Checks every entry of `m` under `root` (files hashed chunk by chunk, in
/// parallel) and lists paths the manifest does not know.
pub fn check_tree(root: &Path, m: &Manifest) -> TreeCheck {
    let problems: Vec<Option<TreeProblem>> = m
        .entries
        .par_iter()
        .map(|e| {
            check_entry(root, e).map(|problem| TreeProblem {
                path: e.path.clone(),
                problem,
            })
        })
        .collect();
    let mut extra = Vec::new();
    let known: HashSet<&str> = m.entries.iter().map(|e| e.path.as_str()).collect();
    find_extra(root, "", &known, &mut extra);
    extra.sort();
    TreeCheck {
        files: m.files().count() as u64,
        bytes: m.total_size(),
        damaged: problems.into_iter().flatten().collect(),
        extra,
    }
}

fn check_entry(root: &Path, e: &ferry_protocol::Entry) -> Option<String> {
    let p = root.join(&e.path);
    let meta = match fs::symlink_metadata(&p) {
        Ok(m) => m,
        Err(_) => return Some("missing".into()),
    };
    match &e.kind {
        EntryKind::Dir => (!meta.is_dir()).then(|| "not a directory".into()),
        EntryKind::Symlink { target } => {
            if !meta.file_type().is_symlink() {
                return Some("not a symlink".into());
            }
            match fs::read_link(&p) {
                Ok(t) if t.as_os_str() == target.as_str() => None,
                Ok(t) => Some(format!("symlink points to {:?}, expected {target:?}", t)),
                Err(err) => Some(format!("unreadable symlink: {err}")),
            }
        }
        EntryKind::File { exec, size, chunks } => {
            if !meta.is_file() {
                return Some("not a regular file".into());
            }
            if meta.len() != *size {
                return Some(format!("size is {}, expected {size}", meta.len()));
            }
            if (meta.permissions().mode() & 0o111 != 0) != *exec {
                return Some(
                    if *exec {
                        "not executable"
                    } else {
                        "unexpectedly executable"
                    }
                    .into(),
                );
            }
            let f = match File::open(&p) {
                Ok(f) => f,
                Err(err) => return Some(format!("unreadable: {err}")),
            };
            let mut buf = Vec::new();
            let mut off = 0u64;
            for c in chunks {
                buf.resize(c.len as usize, 0);
                if let Err(err) = f.read_exact_at(&mut buf, off) {
                    return Some(format!("read error at offset {off}: {err}"));
                }
                if ChunkId::of(&buf) != c.id {
                    return Some(format!(
                        "content differs in bytes {off}..{}",
                        off + u64::from(c.len)
                    ));
                }
                off += u64::from(c.len);
            }
            None
        }
    }
}

fn find_extra(root: &Path, rel: &str, known: &HashSet<&str>, out: &mut Vec<String>) {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let Ok(rd) = fs::read_dir(&dir) else { return };
    for item in rd.flatten() {
        let name = item.file_name().to_string_lossy().into_owned();
        let child = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        if !known.contains(child.as_str()) {
            out.push(child);
            continue;
        }
        if item.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            find_extra(root, &child, known, out);
        }
    }
}

/// What `ferry verify` reports.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub install: String,
    pub version: String,
    pub files: u64,
    pub bytes: u64,
    pub damaged: Vec<TreeProblem>,
    pub extra: Vec<String>,
    /// Paths rebuilt by `--repair`.
    pub repaired: Vec<String>,
    pub bytes_downloaded: u64,
    pub clean: bool,
}

/// Loads a stored manifest of an installed version, checking that its bytes
/// hash to `id` and, when keys are given, that a trusted key signed it.
pub fn load_manifest(
    layout: &Layout,
    id: &ManifestId,
    trusted: &[PublicKey],
) -> Result<Manifest, ClientError> {
    let path = layout.manifest_file(id);
    let bytes = fs::read(&path).map_err(|e| ClientError::io(&path, e))?;
    let env = Envelope::decode(&bytes, usize::MAX)?;
    if ManifestId::of(&env.body) != *id {
        return Err(ClientError::install(
            &layout.root,
            format!("stored manifest {} is damaged", id.short()),
        ));
    }
    if !trusted.is_empty() {
        env.verify(KIND_MANIFEST, trusted)?;
    }
    Ok(Manifest::decode(&env.body)?)
}

/// An install opened for checking: its layout, the lock held for as long
/// as this lives, and the version in `current`.
pub(crate) struct OpenInstall {
    pub layout: Layout,
    pub _lock: InstallLock,
    pub state: InstallState,
    pub current: Installed,
}

/// Opens `install`, takes its lock and finds the live version.
pub(crate) fn open_install(install: &Path) -> Result<OpenInstall, ClientError> {
    let layout = Layout::open(install)?;
    let lock = InstallLock::acquire(&layout)?;
    let mut state = InstallState::load(&layout)?;
    // A switch a crash interrupted is completed (or abandoned) first, so
    // the tree is checked against the version it really is. Nothing is
    // pruned here (`keep` is the caller's choice; the next sync prunes).
    crate::install::recover(&layout, &mut state, usize::MAX)?;
    let current = state
        .current
        .clone()
        .ok_or_else(|| ClientError::install(&layout.root, "no version is installed"))?;
    Ok(OpenInstall {
        layout,
        _lock: lock,
        state,
        current,
    })
}

/// Checks the live tree (no network).
pub fn verify_install(install: &Path) -> Result<VerifyReport, ClientError> {
    let OpenInstall {
        layout,
        _lock,
        current: cur,
        ..
    } = open_install(install)?;
    let m = load_manifest(&layout, &cur.id()?, &[])?;
    let check = check_tree(&layout.current(), &m);
    Ok(report(&layout, &cur.version, check, Vec::new(), 0))
}

pub(crate) fn report(
    layout: &Layout,
    version: &str,
    check: TreeCheck,
    repaired: Vec<String>,
    bytes_downloaded: u64,
) -> VerifyReport {
    VerifyReport {
        install: layout.root.display().to_string(),
        version: version.to_string(),
        files: check.files,
        bytes: check.bytes,
        clean: check.damaged.is_empty(),
        damaged: check.damaged,
        extra: check.extra,
        repaired,
        bytes_downloaded,
    }
}
