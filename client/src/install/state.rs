//! The persistent state of an install directory (`.ferry/state.json`).

use std::collections::BTreeMap;

use ferry_protocol::rotation::effective_keys;
use ferry_protocol::{ManifestId, PublicKey};
use serde::{Deserialize, Serialize};

use super::{write_atomic, Layout};
use crate::error::ClientError;

const STATE_FORMAT: u32 = 1;
const MAX_STATE_BYTES: u64 = 16 * 1024 * 1024;

/// One installed version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    pub version: String,
    pub manifest_id: String,
}

impl Installed {
    pub fn new(version: &str, id: &ManifestId) -> Self {
        Installed {
            version: version.to_string(),
            manifest_id: id.to_hex(),
        }
    }

    pub fn id(&self) -> Result<ManifestId, ClientError> {
        self.manifest_id
            .parse()
            .map_err(|e| ClientError::Internal(format!("state: bad manifest id: {e}")))
    }
}

/// The newest channel record accepted for a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    pub sequence: u64,
    /// BLAKE3 (hex) of the record's exact bytes.
    pub record_hash: String,
    /// ETag the server gave it, for conditional GETs.
    pub etag: Option<String>,
    /// The manifest it names: a conditional GET only makes sense while
    /// that is what `current` holds (not after a rollback).
    pub manifest_id: String,
}

/// 16 random bytes as hex: a new client's persistent id.
pub fn random_client_id() -> Result<String, ClientError> {
    let mut id = [0u8; 16];
    getrandom::getrandom(&mut id)
        .map_err(|e| ClientError::Internal(format!("no randomness for a client id: {e}")))?;
    Ok(id.iter().map(|b| format!("{b:02x}")).collect())
}

/// A version downloaded and built ahead of its activation time; it sits
/// complete in `.ferry/staging/<manifest id>` until then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staged {
    pub version: String,
    pub manifest_id: String,
    /// Unix seconds at which it becomes `current`.
    pub activates_at: u64,
}

/// A version this client will not install automatically: it failed here
/// (or was rolled back by hand) until a record newer than `sequence` comes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocked {
    pub version: String,
    pub sequence: u64,
    pub reason: String,
}

/// A version on probation: switched to, not yet seen healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probation {
    pub version: String,
    /// Unix seconds of the switch.
    pub since: u64,
    /// Failed starts or error exits so far.
    pub failures: u32,
}

/// What is installed and what the client has seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallState {
    pub format: u32,
    pub app: Option<String>,
    pub channel: Option<String>,
    /// Random, persistent: identifies this client (e.g. for staged rollouts).
    pub client_id: String,
    /// Per channel: the newest record accepted (sequences never go down).
    pub seen: BTreeMap<String, Seen>,
    /// The version in `current/`.
    pub current: Option<Installed>,
    /// Previous versions in `versions/`, most recent first.
    pub kept: Vec<Installed>,
    /// Built ahead, waiting for its activation time.
    #[serde(default)]
    pub staged: Option<Staged>,
    /// The minimum version named by the newest record accepted: rollback and
    /// `ferry run` refuse to go below it.
    #[serde(default)]
    pub min_version: Option<String>,
    #[serde(default)]
    pub blocked: Option<Blocked>,
    #[serde(default)]
    pub probation: Option<Probation>,
    /// Publisher keys learnt from key rotations (see docs/security.md).
    #[serde(default)]
    pub keys: KeyState,
}

/// What key rotations taught this install (hex public keys).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyState {
    /// The key set the newest rotation announced.
    pub rotated: Vec<String>,
    /// Keys a rotation left out: never trusted again here, even when given
    /// with `--trust`.
    pub revoked: Vec<String>,
    /// Sequence and channel of the record that rotated last.
    pub sequence: Option<u64>,
    pub channel: Option<String>,
}

fn parse_keys(keys: &[String]) -> Vec<PublicKey> {
    keys.iter().filter_map(|k| k.parse().ok()).collect()
}

fn hex_keys(keys: &[PublicKey]) -> Vec<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

impl InstallState {
    /// The keys to verify new records and manifests with: the pinned ones
    /// (`--trust`) and those rotated in, minus those rotated out.
    pub fn trusted_keys(&self, pinned: &[PublicKey]) -> Vec<PublicKey> {
        effective_keys(
            pinned,
            &parse_keys(&self.keys.rotated),
            &parse_keys(&self.keys.revoked),
        )
    }

    /// [`Self::trusted_keys`] plus the revoked ones: for re-reading
    /// manifests this install verified and stored before a rotation.
    pub fn known_keys(&self, pinned: &[PublicKey]) -> Vec<PublicKey> {
        let mut k = self.trusted_keys(pinned);
        k.extend(parse_keys(&self.keys.revoked));
        k
    }

    /// Applies an accepted key rotation.
    pub fn rotate_keys(
        &mut self,
        keys: &[PublicKey],
        revoked: &[PublicKey],
        sequence: u64,
        channel: &str,
    ) {
        let mut all = parse_keys(&self.keys.revoked);
        all.extend(revoked.iter().filter(|k| !keys.contains(k)));
        all.retain(|k| !keys.contains(k));
        all.sort();
        all.dedup();
        self.keys = KeyState {
            rotated: hex_keys(keys),
            revoked: hex_keys(&all),
            sequence: Some(sequence),
            channel: Some(channel.to_string()),
        };
    }
    fn fresh() -> Result<Self, ClientError> {
        Ok(InstallState {
            format: STATE_FORMAT,
            app: None,
            channel: None,
            client_id: random_client_id()?,
            seen: BTreeMap::new(),
            current: None,
            kept: Vec::new(),
            staged: None,
            min_version: None,
            blocked: None,
            probation: None,
            keys: KeyState::default(),
        })
    }

    /// Loads the state, or a fresh one when the directory is new.
    pub fn load_or_new(layout: &Layout) -> Result<Self, ClientError> {
        let path = layout.state_file();
        if !path.exists() {
            return Self::fresh();
        }
        Self::load(layout)
    }

    pub fn load(layout: &Layout) -> Result<Self, ClientError> {
        let path = layout.state_file();
        let meta = std::fs::metadata(&path).map_err(|e| ClientError::io(&path, e))?;
        if meta.len() > MAX_STATE_BYTES {
            return Err(ClientError::install(
                &layout.root,
                "state file is implausibly large",
            ));
        }
        let text = std::fs::read(&path).map_err(|e| ClientError::io(&path, e))?;
        let st: InstallState = serde_json::from_slice(&text).map_err(|e| {
            ClientError::install(&layout.root, format!("state file is damaged: {e}"))
        })?;
        if st.format != STATE_FORMAT {
            return Err(ClientError::install(
                &layout.root,
                format!("state format {} is not understood by this build", st.format),
            ));
        }
        Ok(st)
    }

    pub fn save(&self, layout: &Layout) -> Result<(), ClientError> {
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| ClientError::Internal(format!("state encoding: {e}")))?;
        write_atomic(&layout.state_file(), &text)
    }

    /// Every installed version (current first, then kept).
    pub fn installed(&self) -> impl Iterator<Item = &Installed> {
        self.current.iter().chain(self.kept.iter())
    }
}
