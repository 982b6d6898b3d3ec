//! `ferry status`: per channel, the rollout in force and how many clients
//! run, stage or failed each version (from their reports).

use ferry_protocol::report::Outcome;
use ferry_protocol::rollout::FULL;
use ferry_protocol::signed::KIND_CHANNEL;
use ferry_protocol::{unix_now, ChannelRecord, Envelope, PublicKey};
use serde::Serialize;

use crate::error::ClientError;
use crate::http::Http;
use crate::promote::PromoteReport;

/// Clients of one version on one channel.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VersionCount {
    pub version: String,
    pub ok: u64,
    pub staged: u64,
    pub failed: u64,
    pub reverted: u64,
    pub last_report_at: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChannelStatus {
    pub channel: String,
    pub record: Option<PromoteReport>,
    /// Percentage of clients offered the version now.
    pub percent_now: Option<f64>,
    pub verified: bool,
    pub versions: Vec<VersionCount>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AppStatus {
    pub app: String,
    pub channels: Vec<ChannelStatus>,
}

/// Fetches and arranges the status of `app`. With `trusted` keys each
/// record must verify.
pub async fn status(
    http: &Http,
    app: &str,
    trusted: &[PublicKey],
) -> Result<AppStatus, ClientError> {
    let s = http.get_status(app).await?;
    let now = unix_now();
    let mut channels: Vec<ChannelStatus> = Vec::new();
    for bytes in &s.channels {
        let env = Envelope::decode(bytes, usize::MAX)?;
        let body = if trusted.is_empty() {
            &env.body
        } else {
            env.verify(KIND_CHANNEL, trusted)?
        };
        let r = ChannelRecord::decode(body)?;
        let p = &r.policy;
        let bp = if p.paused { 0 } else { p.basis_points_at(now) };
        channels.push(ChannelStatus {
            channel: r.channel.clone(),
            percent_now: Some(f64::from(bp) * 100.0 / f64::from(FULL)),
            record: Some(PromoteReport::of(&r, None)),
            verified: !trusted.is_empty(),
            versions: Vec::new(),
        });
    }
    for row in s.rows {
        let ch = match channels.iter().position(|c| c.channel == row.channel) {
            Some(i) => i,
            None => {
                channels.push(ChannelStatus {
                    channel: row.channel.clone(),
                    record: None,
                    percent_now: None,
                    verified: false,
                    versions: Vec::new(),
                });
                channels.len() - 1
            }
        };
        let vs = &mut channels[ch].versions;
        let i = match vs.iter().position(|v| v.version == row.version) {
            Some(i) => i,
            None => {
                vs.push(VersionCount {
                    version: row.version.clone(),
                    ..Default::default()
                });
                vs.len() - 1
            }
        };
        let v = &mut vs[i];
        match row.outcome {
            Outcome::Ok => v.ok += row.clients,
            Outcome::Staged => v.staged += row.clients,
            Outcome::Failed => v.failed += row.clients,
            Outcome::Reverted => v.reverted += row.clients,
        }
        v.last_report_at = v.last_report_at.max(row.last_report_at);
    }
    for c in &mut channels {
        c.versions.sort_by(|a, b| {
            ferry_protocol::version_order::compare_versions(&b.version, &a.version)
        });
    }
    Ok(AppStatus {
        app: app.to_string(),
        channels,
    })
}
