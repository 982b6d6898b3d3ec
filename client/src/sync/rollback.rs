//! `ferry rollback`: make the most recent kept version live again, with the
//! same atomic switch as an update. No network needed.

use std::path::Path;

use serde::Serialize;

use crate::error::ClientError;
use crate::install::{recover, switch_to, InstallLock, InstallState, Layout, SwitchSource};

#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub version: String,
    pub previous_version: Option<String>,
}

pub fn rollback(install: &Path) -> Result<RollbackReport, ClientError> {
    let layout = Layout::open(install)?;
    let _lock = InstallLock::acquire(&layout)?;
    let mut state = InstallState::load(&layout)?;
    let keep = state.kept.len().max(1);
    recover(&layout, &mut state, keep)?;
    let Some(target) = state.kept.first().cloned() else {
        return Err(ClientError::install(
            &layout.root,
            "no previous version is kept here to roll back to",
        ));
    };
    if !layout.version_dir(&target.version).is_dir() {
        return Err(ClientError::install(
            &layout.root,
            format!("kept version {} is missing from versions/", target.version),
        ));
    }
    if let Some(min) = &state.min_version {
        if ferry_protocol::version_order::is_older(&target.version, min) {
            return Err(ClientError::install(
                &layout.root,
                format!(
                    "refusing to roll back to {}: the publisher requires at least version {min}",
                    target.version
                ),
            ));
        }
    }
    let previous = state.current.as_ref().map(|c| c.version.clone());
    // Keep everything: the version rolled away from becomes the kept one.
    let keep = state.kept.len();
    switch_to(
        &layout,
        &mut state,
        target.clone(),
        SwitchSource::Kept(target.version.clone()),
        keep,
    )?;
    // Going back to a version that ran here before: no probation.
    state.probation = None;
    state.save(&layout)?;
    Ok(RollbackReport {
        version: target.version,
        previous_version: previous,
    })
}
