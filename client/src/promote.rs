//! `ferry promote`: point a channel at a published version with a new signed
//! record whose sequence is one above the current one.

use ferry_protocol::names::{validate_app, validate_channel, validate_version};
use ferry_protocol::signed::KIND_CHANNEL;
use ferry_protocol::{unix_now, ChannelRecord, Envelope, Manifest, ManifestId, SecretKey};
use serde::Serialize;

use crate::error::ClientError;
use crate::http::Http;

#[derive(Debug, Clone)]
pub struct PromoteOptions {
    pub app: String,
    pub channel: String,
    pub version: String,
    /// Seconds until clients refuse the record (none: never expires).
    pub expires_in: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PromoteReport {
    pub app: String,
    pub channel: String,
    pub version: String,
    pub manifest_id: String,
    pub sequence: u64,
    pub previous_version: Option<String>,
    pub expires_at: Option<u64>,
}

pub async fn promote(
    http: &Http,
    key: &SecretKey,
    o: &PromoteOptions,
) -> Result<PromoteReport, ClientError> {
    validate_app(&o.app).map_err(|e| ClientError::Usage(e.to_string()))?;
    validate_channel(&o.channel).map_err(|e| ClientError::Usage(e.to_string()))?;
    validate_version(&o.version).map_err(|e| ClientError::Usage(e.to_string()))?;
    let env_bytes = http.get_version(&o.app, &o.version).await?;
    let env = Envelope::decode(&env_bytes, usize::MAX)?;
    let manifest = Manifest::decode(&env.body)?;
    if manifest.app != o.app || manifest.version != o.version {
        return Err(ClientError::Mismatch(format!(
            "server returned the manifest of {} {} for {} {}",
            manifest.app, manifest.version, o.app, o.version
        )));
    }
    let manifest_id = ManifestId::of(&env.body);
    // Two promoters racing: the loser gets 409 and tries once more.
    for attempt in 0..3 {
        let current = match http.get_channel_opt(&o.app, &o.channel).await? {
            None => None,
            Some(b) => {
                let env = Envelope::decode(&b, usize::MAX)?;
                Some(ChannelRecord::decode(&env.body)?)
            }
        };
        let sequence = current.as_ref().map_or(1, |c| c.sequence + 1);
        let now = unix_now();
        let record = ChannelRecord {
            app: o.app.clone(),
            channel: o.channel.clone(),
            sequence,
            version: o.version.clone(),
            manifest_id,
            issued_at: now,
            expires_at: o.expires_in.map(|s| now.saturating_add(s)),
        };
        let envelope = key.sign(KIND_CHANNEL, record.encode()).encode();
        match http.publish_channel(&o.app, &o.channel, envelope).await {
            Ok(()) => {
                return Ok(PromoteReport {
                    app: o.app.clone(),
                    channel: o.channel.clone(),
                    version: o.version.clone(),
                    manifest_id: manifest_id.to_hex(),
                    sequence,
                    previous_version: current.map(|c| c.version),
                    expires_at: record.expires_at,
                })
            }
            Err(ClientError::Server { status: 409, .. }) if attempt < 2 => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns")
}
