//! `ferry sync`: learn the channel's version, verify the record and the
//! manifest against the pinned keys, build the new tree beside the old one
//! from local chunks plus fetched ones, and switch `current` atomically.

mod build;
mod fetch;
mod get_chunks;
mod group;
mod handles;
mod index;
mod record;
mod repair;
use record::{accept_record, get_manifest};
mod rollback;
mod run;
mod stage;
mod tree;
mod writeback;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_protocol::rollout::{decide, ClientView};
use ferry_protocol::{unix_now, PublicKey};
use serde::Serialize;

pub use build::{FileJob, LocalStats, Staging};
pub use fetch::FetchContext;
use group::DeltaBase;
pub use index::LocalIndex;
pub use repair::repair_install;
pub use rollback::{rollback, RollbackReport};
pub use stage::{client_id, switch_due};
pub(crate) use tree::build_tree;
pub use tree::Built;

use crate::error::ClientError;
use crate::hooks::{run_hooks, Hook, HookEnv, HookPoint};
use crate::http::Http;
use crate::install::{
    recover, switch_to, InstallLock, InstallState, Installed, Layout, Staged, SwitchSource,
};
use crate::verify::{check_tree, load_manifest};

/// What to sync.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub app: String,
    pub channel: String,
    pub install: PathBuf,
    pub trusted: Vec<PublicKey>,
    /// Previous versions to keep in `versions/`.
    pub keep: usize,
    /// Concurrent fetch streams.
    pub streams: usize,
    pub quiet: bool,
    /// Rollout group of this client (per-group activation times).
    pub group: Option<String>,
    /// A file holding the client id (shared by installs on one machine);
    /// default: the id in the install's state.
    pub client_id_file: Option<PathBuf>,
    /// The clock (unix seconds); `None` reads the system clock.
    pub now: Option<u64>,
    /// Commands run around the switch.
    pub hooks: Vec<Hook>,
    pub hook_timeout: Duration,
    /// How files that did not change from the installed version get into
    /// the new tree.
    pub unchanged: UnchangedFiles,
}

/// How a sync puts files that did not change into the new tree. Every
/// way verifies the bytes against the manifest first; a reflink (btrfs,
/// XFS) is used wherever the file system has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnchangedFiles {
    /// `Link`, unless hooks that see the new tree before the switch
    /// (post-install, pre-switch) are configured: those may edit files in
    /// place, which must not reach the live version.
    #[default]
    Auto,
    /// Hard links: no bytes written, but the versions share those inodes,
    /// so an in-place edit of one changes the other (docs/storage.md).
    Link,
    /// Copies (`copy_file_range`): every version owns its files.
    Copy,
}

impl SyncOptions {
    /// Whether unchanged files are hard-linked (when no reflink is
    /// possible).
    pub fn links_unchanged(&self) -> bool {
        match self.unchanged {
            UnchangedFiles::Link => true,
            UnchangedFiles::Copy => false,
            UnchangedFiles::Auto => !self
                .hooks
                .iter()
                .any(|h| matches!(h.point, HookPoint::PostInstall | HookPoint::PreSwitch)),
        }
    }
}

impl SyncOptions {
    /// Options with the defaults of `ferry sync` (keep 1, 3 streams, quiet).
    pub fn new(app: &str, channel: &str, install: PathBuf, trusted: Vec<PublicKey>) -> Self {
        SyncOptions {
            app: app.to_string(),
            channel: channel.to_string(),
            install,
            trusted,
            keep: 1,
            streams: 3,
            quiet: true,
            group: None,
            client_id_file: None,
            now: None,
            hooks: Vec::new(),
            hook_timeout: Duration::from_secs(60),
            unchanged: UnchangedFiles::Auto,
        }
    }
}

/// What a sync did (the `--json` summary).
#[derive(Debug, Clone, Serialize, Default)]
pub struct SyncReport {
    pub app: String,
    pub channel: String,
    pub version: Option<String>,
    pub previous_version: Option<String>,
    pub updated: bool,
    pub sequence: u64,
    /// HTTP body bytes received during this sync.
    pub bytes_downloaded: u64,
    pub requests: u64,
    /// What the tree build fetched and reused (flattened into the JSON).
    #[serde(flatten)]
    pub built: Built,
    pub files: u64,
    pub version_bytes: u64,
    pub resumed: bool,
    pub elapsed_ms: u64,
    /// Downloaded and built, waiting for `activates_at` to switch.
    pub staged: bool,
    /// The version staged (when `staged`).
    pub staged_version: Option<String>,
    pub activates_at: Option<u64>,
    /// Why the record's rollout gave this client what it did.
    pub decision: String,
    /// When the rollout may offer something else without a new record.
    pub recheck_at: Option<u64>,
    /// The server was out of reach; a staged version switched on schedule.
    pub offline: bool,
    /// This client's id (rollout buckets, reports).
    pub client_id: String,
}

pub async fn sync(http: &Http, o: &SyncOptions) -> Result<SyncReport, ClientError> {
    let start = Instant::now();
    if o.trusted.is_empty() {
        return Err(ClientError::Usage(
            "at least one --trust key is required".into(),
        ));
    }
    let now = o.now.unwrap_or_else(unix_now);
    let layout = Layout::create(&o.install)?;
    let _lock = InstallLock::acquire(&layout)?;
    let mut state = InstallState::load_or_new(&layout)?;
    if let Some(app) = &state.app {
        if app != &o.app {
            return Err(ClientError::install(
                &layout.root,
                format!(
                    "holds app {app}, not {}; use another --install directory",
                    o.app
                ),
            ));
        }
    }
    recover(&layout, &mut state, o.keep)?;
    stage::tidy(&layout, &mut state);
    let mut report = SyncReport {
        app: o.app.clone(),
        channel: o.channel.clone(),
        version: state.current.as_ref().map(|c| c.version.clone()),
        ..SyncReport::default()
    };
    let client_id = match &o.client_id_file {
        Some(f) => stage::client_id_from_file(f)?,
        None => state.client_id.clone(),
    };
    report.client_id = client_id.clone();

    // 1. The channel record (a 304 re-reads the one kept locally).
    let record = match accept_record(http, &layout, &mut state, o, now).await {
        Ok(r) => r,
        Err(e) if e.is_transient() => {
            // Out of reach: a staged version whose time has come still
            // switches, without the server.
            let l = layout.clone();
            let o2 = o.clone();
            let (switched, st) = tokio::task::spawn_blocking(move || {
                let r = stage::switch_due(&l, &mut state, &o2, now);
                (r, state)
            })
            .await?;
            if let Some(v) = switched? {
                tracing::warn!("server unreachable ({e}); switched to staged {v} on schedule");
                st.save(&layout)?;
                report.previous_version = report.version.take();
                report.version = Some(v);
                report.updated = true;
                report.offline = true;
                return Ok(finish_report(report, http, start));
            }
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    report.sequence = record.sequence;
    state.min_version = record.policy.min_version.clone();
    if state
        .blocked
        .as_ref()
        .is_some_and(|b| record.sequence > b.sequence)
    {
        tracing::info!("a newer record arrived: unblocking a version that failed here");
        state.blocked = None;
    }

    // 2. What the record offers this client.
    let current_ok = state.current.is_some() && layout.current().is_dir();
    let installed = state
        .current
        .as_ref()
        .filter(|_| current_ok)
        .map(|c| c.version.clone());
    let decision = decide(
        &o.app,
        &record.target(),
        &record.policy,
        ClientView {
            client_id: &client_id,
            group: o.group.as_deref(),
            installed: installed.as_deref(),
            now,
        },
    );
    report.decision = stage::describe(&decision.reason);
    report.recheck_at = decision.recheck_at;
    let offer = decision.install.filter(|t| {
        let blocked = state
            .blocked
            .as_ref()
            .is_some_and(|b| b.version == t.version);
        if blocked {
            report.decision = format!("{} is blocked on this client (it failed here)", t.version);
        }
        !blocked
    });
    let Some(offer) = offer else {
        if state.staged.is_some() {
            tracing::info!("the staged version is no longer offered; discarding it");
            stage::discard(&layout, &mut state);
        }
        state.save(&layout)?;
        return Ok(finish_report(report, http, start));
    };
    let target = Installed::new(&offer.version, &offer.manifest_id);
    if current_ok && state.current.as_ref() == Some(&target) {
        state.save(&layout)?;
        return Ok(finish_report(report, http, start));
    }
    let staging_only = decision.activate_at > now;
    if staging_only {
        report.activates_at = Some(decision.activate_at);
        if let Some(s) = &state.staged {
            if s.manifest_id == target.manifest_id && layout.staging(&offer.manifest_id).is_dir() {
                // Already built; only the time may have moved.
                state.staged = Some(Staged {
                    activates_at: decision.activate_at,
                    ..s.clone()
                });
                state.save(&layout)?;
                report.staged = true;
                report.staged_version = Some(offer.version.clone());
                return Ok(finish_report(report, http, start));
            }
        }
    }
    state.save(&layout)?;

    // 3. The manifest.
    let base = state.current.as_ref().and_then(|c| c.id().ok());
    let trusted = state.trusted_keys(&o.trusted);
    let manifest = get_manifest(http, &layout, &o.app, &offer, &trusted, base).await?;
    tracing::debug!("record and manifest at {:?}", start.elapsed());
    report.files = manifest.files().count() as u64;
    report.version_bytes = manifest.total_size();
    report.previous_version = state.current.as_ref().map(|c| c.version.clone());

    // 4. A kept tree of this very version needs no rebuild if it is intact.
    let kept_dir = layout.version_dir(&offer.version);
    if !staging_only && state.kept.contains(&target) && kept_dir.is_dir() {
        let m = manifest.clone();
        let dir = kept_dir.clone();
        let check = tokio::task::spawn_blocking(move || check_tree(&dir, &m)).await?;
        if check.is_clean() {
            let l = layout.clone();
            let o2 = o.clone();
            let t = target.clone();
            tokio::task::spawn_blocking(move || {
                state.staged = None;
                switch_with_hooks(&l, &mut state, t, kept_dir, &o2)
            })
            .await??;
            report.built.chunks_reused = manifest.chunk_refs() as u64;
            report.built.bytes_reused = manifest.total_size();
            report.updated = true;
            report.version = Some(offer.version.clone());
            return Ok(finish_report(report, http, start));
        }
        tracing::warn!("kept version {} is damaged; rebuilding it", offer.version);
    }

    // 5. Build in staging, from local chunks and fetched ones.
    let staging = layout.staging(&offer.manifest_id);
    clear_other_staging(&layout, &staging);
    if state
        .staged
        .as_ref()
        .is_some_and(|s| s.manifest_id != target.manifest_id)
    {
        state.staged = None;
    }
    report.resumed = staging.exists();
    let (l, st) = (layout.clone(), state.clone());
    let (index, base) = tokio::task::spawn_blocking(move || local_sources(&l, &st)).await?;
    tracing::debug!("local index at {:?}", start.elapsed());
    let ctx = FetchContext {
        want: Some(offer.manifest_id),
        base,
    };
    let jobs: Vec<FileJob> = manifest
        .entries
        .iter()
        .filter_map(FileJob::from_entry)
        .collect();
    let built = match build_tree(
        http,
        staging.clone(),
        jobs,
        &manifest.entries,
        index,
        ctx,
        o.streams,
        o.quiet,
        o.links_unchanged(),
    )
    .await
    {
        Ok(b) => b,
        Err(e) if e.is_disk_full() => {
            return Err(disk_full(&layout, &staging, &offer.version, &manifest, e))
        }
        Err(e) => return Err(e),
    };
    tracing::debug!("tree built at {:?}", start.elapsed());
    report.built = built;

    // 6. Post-install hooks on the complete tree, then stage for later or
    // switch now.
    if !o.hooks.is_empty() {
        let (hooks, timeout) = (o.hooks.clone(), o.hook_timeout);
        let (root, dir, version) = (layout.root.clone(), staging.clone(), offer.version.clone());
        let previous = report.previous_version.clone();
        tokio::task::spawn_blocking(move || {
            let env = HookEnv {
                install: &root,
                version: &version,
                previous: previous.as_deref(),
                tree: &dir,
            };
            run_hooks(&hooks, HookPoint::PostInstall, &env, timeout)
        })
        .await??;
    }
    if staging_only {
        state.staged = Some(Staged {
            version: offer.version.clone(),
            manifest_id: target.manifest_id.clone(),
            activates_at: decision.activate_at,
        });
        state.save(&layout)?;
        report.staged = true;
        report.staged_version = Some(offer.version.clone());
        return Ok(finish_report(report, http, start));
    }
    let l = layout.clone();
    let o2 = o.clone();
    tokio::task::spawn_blocking(move || {
        state.staged = None;
        switch_with_hooks(&l, &mut state, target, staging, &o2)
    })
    .await??;
    tracing::debug!("switched at {:?}", start.elapsed());
    report.updated = true;
    report.version = Some(offer.version.clone());
    Ok(finish_report(report, http, start))
}

/// The atomic switch to the tree at `source` (staging or a kept version),
/// with the pre-switch hooks before (a failure leaves the old version live)
/// and the post-switch hooks after (a failure is only logged). Blocking.
pub(crate) fn switch_with_hooks(
    layout: &Layout,
    state: &mut InstallState,
    target: Installed,
    source: PathBuf,
    o: &SyncOptions,
) -> Result<(), ClientError> {
    let previous = state.current.as_ref().map(|c| c.version.clone());
    let version = target.version.clone();
    let env = |tree| HookEnv {
        install: &layout.root,
        version: &version,
        previous: previous.as_deref(),
        tree,
    };
    run_hooks(
        &o.hooks,
        HookPoint::PreSwitch,
        &env(&source),
        o.hook_timeout,
    )?;
    let from = if source.starts_with(layout.staging_root()) {
        SwitchSource::Staging(source.clone())
    } else {
        SwitchSource::Kept(target.version.clone())
    };
    switch_to(layout, state, target, from, o.keep)?;
    let current = layout.current();
    if let Err(e) = run_hooks(
        &o.hooks,
        HookPoint::PostSwitch,
        &env(&current),
        o.hook_timeout,
    ) {
        tracing::warn!("{e} (the new version is live)");
    }
    Ok(())
}

fn finish_report(mut r: SyncReport, http: &Http, start: Instant) -> SyncReport {
    r.bytes_downloaded = http.bytes_down();
    r.requests = http.requests();
    r.elapsed_ms = start.elapsed().as_millis() as u64;
    r
}

/// A build that filled the disk: the partial tree is deleted (a full disk
/// hurts the running version more than a resumable download helps), and
/// the error says how much the version needs.
fn disk_full(
    layout: &Layout,
    staging: &Path,
    version: &str,
    manifest: &ferry_protocol::Manifest,
    e: ClientError,
) -> ClientError {
    let source = match e {
        ClientError::Io { source, .. } => source,
        other => std::io::Error::other(other.to_string()),
    };
    if let Err(err) = layout.discard(staging) {
        tracing::warn!("could not remove the partial tree: {err}");
    }
    ClientError::DiskFull {
        version: version.to_string(),
        path: layout.root.clone(),
        needed: manifest.total_size(),
        source,
    }
}

/// Staging trees of other targets are abandoned work: delete them.
fn clear_other_staging(layout: &Layout, keep: &Path) {
    if let Ok(rd) = std::fs::read_dir(layout.staging_root()) {
        for e in rd.flatten() {
            if e.path() != keep {
                let _ = layout.discard(&e.path());
            }
        }
    }
}

/// Every installed tree with its manifest.
pub(crate) fn local_index(layout: &Layout, state: &InstallState) -> LocalIndex {
    local_sources(layout, state).0
}

/// The local index of every installed tree, and the live version as the
/// reference for group frames (when its manifest is at hand): each stored
/// manifest is read and decoded once. Blocking.
fn local_sources(layout: &Layout, state: &InstallState) -> (LocalIndex, Option<Arc<DeltaBase>>) {
    let mut index = LocalIndex::default();
    let mut base = None;
    let trees = state
        .current
        .iter()
        .map(|c| (c, layout.current(), true))
        .chain(
            state
                .kept
                .iter()
                .map(|k| (k, layout.version_dir(&k.version), false)),
        );
    for (inst, dir, live) in trees {
        let Ok(id) = inst.id() else { continue };
        match load_manifest(layout, &id, &[]) {
            Ok(m) => {
                if live {
                    base = Some(Arc::new(DeltaBase::new(&m, &dir)));
                }
                if dir.is_dir() {
                    index.add_tree(&dir, &m);
                }
            }
            Err(e) => tracing::warn!("ignoring installed version {}: {e}", inst.version),
        }
    }
    (index, base)
}
