//! `ferry history`: every state a channel has been in, who signed it, when.

use ferry_protocol::signed::KIND_CHANNEL;
use ferry_protocol::{ChannelRecord, Envelope, PublicKey};
use serde::Serialize;

use crate::error::ClientError;
use crate::http::Http;
use crate::promote::PromoteReport;

/// One record of the history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub issued_at: u64,
    /// Keys that signed it (hex).
    pub signed_by: Vec<String>,
    /// Checked against the `--trust` keys (false when none were given).
    pub verified: bool,
    pub note: Option<String>,
    #[serde(flatten)]
    pub record: PromoteReport,
}

/// Fetches and decodes the newest `limit` records, oldest first. With
/// `trusted` keys, a record that fails verification is an error.
pub async fn history(
    http: &Http,
    app: &str,
    channel: &str,
    limit: usize,
    trusted: &[PublicKey],
) -> Result<Vec<HistoryEntry>, ClientError> {
    let raw = http.get_history(app, channel, limit).await?;
    raw.iter()
        .map(|bytes| {
            let env = Envelope::decode(bytes, usize::MAX)?;
            let verified = !trusted.is_empty();
            let body = if verified {
                env.verify(KIND_CHANNEL, trusted)?
            } else {
                &env.body
            };
            let rec = ChannelRecord::decode(body)?;
            if rec.app != app || rec.channel != channel {
                return Err(ClientError::Mismatch(format!(
                    "history of {app}/{channel} holds a record of {}/{}",
                    rec.app, rec.channel
                )));
            }
            Ok(HistoryEntry {
                issued_at: rec.issued_at,
                signed_by: env.signatures.iter().map(|(k, _)| k.to_string()).collect(),
                verified,
                note: rec.policy.note.clone(),
                record: PromoteReport::of(&rec, None),
            })
        })
        .collect()
}
