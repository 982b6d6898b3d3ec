//! Where each kind of record lives under the store's prefix (docs/storage.md,
//! "Object store layout"):
//!
//! ```text
//! chunks/<hex id>                       stored value: codec raw_len payload
//! manifests/<hex id>                    signed manifest envelope
//! versions/<app>/<version>              32-byte manifest id (create-only)
//! channels/<app>/<channel>              current signed record (compare-and-swap)
//! history/<app>/<channel>/<seq:020>     every record that was current (create-only)
//! keys/<app>/pinned|rotated|revoked     key sets, 32 bytes per key
//! reports/<app>/<client id>             at (u64 le) || report
//! ```

use ferry_protocol::{ChunkId, ManifestId};
use ferry_store::StoreError;
use object_store::path::Path;

/// The three key sets of an app.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KeySlot {
    Pinned,
    Rotated,
    Revoked,
}

/// Builds object keys under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: Path,
}

/// A name used as one key segment. The protocol already restricts app,
/// channel, version and client names to `[A-Za-z0-9][A-Za-z0-9._+-]*`;
/// checked again here so no name can ever form `..` or a `/` in a key.
fn segment(name: &str) -> Result<&str, StoreError> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
    if ok {
        Ok(name)
    } else {
        Err(StoreError::Conflict(format!(
            "{name:?} cannot be part of an object key"
        )))
    }
}

impl Layout {
    /// `prefix` is `a/b` (slashes at either end ignored; empty: the bucket's root).
    pub fn new(prefix: &str) -> Result<Layout, StoreError> {
        let trimmed = prefix.trim_matches('/');
        let root = Path::parse(trimmed).map_err(|e| StoreError::Object {
            what: "bad prefix".into(),
            key: prefix.into(),
            message: e.to_string(),
        })?;
        Ok(Layout { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn join(&self, parts: &[&str]) -> Path {
        let mut p = self.root.clone();
        for part in parts {
            p = p.join(*part);
        }
        p
    }

    pub fn chunks(&self) -> Path {
        self.join(&["chunks"])
    }

    pub fn chunk(&self, id: &ChunkId) -> Path {
        self.join(&["chunks", &id.to_string()])
    }

    pub fn manifest(&self, id: &ManifestId) -> Path {
        self.join(&["manifests", &id.to_string()])
    }

    pub fn versions(&self) -> Path {
        self.join(&["versions"])
    }

    pub fn versions_of(&self, app: &str) -> Result<Path, StoreError> {
        Ok(self.join(&["versions", segment(app)?]))
    }

    pub fn version(&self, app: &str, version: &str) -> Result<Path, StoreError> {
        Ok(self.join(&["versions", segment(app)?, segment(version)?]))
    }

    pub fn channels_of(&self, app: &str) -> Result<Path, StoreError> {
        Ok(self.join(&["channels", segment(app)?]))
    }

    pub fn channel(&self, app: &str, channel: &str) -> Result<Path, StoreError> {
        Ok(self.join(&["channels", segment(app)?, segment(channel)?]))
    }

    pub fn history_of(&self, app: &str, channel: &str) -> Result<Path, StoreError> {
        Ok(self.join(&["history", segment(app)?, segment(channel)?]))
    }

    /// Zero-padded to 20 digits (u64::MAX has 20), so listing order is
    /// sequence order.
    pub fn history(&self, app: &str, channel: &str, seq: u64) -> Result<Path, StoreError> {
        Ok(self.history_of(app, channel)?.join(format!("{seq:020}")))
    }

    pub fn keys(&self, app: &str, slot: KeySlot) -> Result<Path, StoreError> {
        let slot = match slot {
            KeySlot::Pinned => "pinned",
            KeySlot::Rotated => "rotated",
            KeySlot::Revoked => "revoked",
        };
        Ok(self.join(&["keys", segment(app)?, slot]))
    }

    pub fn reports_of(&self, app: &str) -> Result<Path, StoreError> {
        Ok(self.join(&["reports", segment(app)?]))
    }

    pub fn report(&self, app: &str, client: &str) -> Result<Path, StoreError> {
        Ok(self.join(&["reports", segment(app)?, segment(client)?]))
    }
}

/// The last segment of a listed key (a version, channel or sequence).
pub(crate) fn last(p: &Path) -> String {
    p.filename().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_their_segment() {
        let l = Layout::new("/ferry/prod/").unwrap();
        assert_eq!(
            l.version("demo", "1.2.0+b7").unwrap().as_ref(),
            "ferry/prod/versions/demo/1.2.0+b7"
        );
        assert_eq!(
            l.history("demo", "stable", 42).unwrap().as_ref(),
            "ferry/prod/history/demo/stable/00000000000000000042"
        );
        for bad in ["..", ".", "", "a/b", "a\\b", ".hidden", "a%2F"] {
            assert!(l.channel("demo", bad).is_err(), "{bad:?}");
        }
        assert_eq!(Layout::new("").unwrap().chunks().as_ref(), "chunks");
    }
}
