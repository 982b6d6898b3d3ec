//! Ferry's wire types and codecs: pure data, no IO, no async.
//!
//! * [`hash`]: 32-byte BLAKE3 ids ([`ChunkId`], [`ManifestId`], [`FileId`]).
//! * [`manifest`]: the version manifest (files as chunk lists).
//! * [`channel`]: the channel record (which version a channel points at).
//! * [`signed`]: Ed25519 envelopes over exact document bytes.
//! * [`frame`]: the binary chunk stream of fetches and uploads.
//! * [`chunk`]: compression and verification of chunk payloads.
//! * [`group`]: runs of chunks in one zstd frame, against a reference range.
//! * [`group_plan`]: which chunks form a group and what each is compressed against.
//! * [`messages`]: small CBOR request/response bodies.
//! * [`names`]: validation of app, channel, version names and paths.
//! * [`rollout`]: who a channel record offers its version to, and when.
//! * [`report`]: client reports and the status aggregated from them.
//! * [`version_order`]: how version strings compare.
//!
//! Every decoder bounds its input and returns an error that names what was
//! wrong; see `docs/protocol.md` for the HTTP API that carries these.

mod cbor;
pub mod channel;
pub mod chunk;
pub mod error;
pub mod frame;
pub mod group;
pub mod group_plan;
pub mod hash;
pub mod manifest;
pub mod manifest_delta;
pub mod messages;
pub mod names;
pub mod params;
pub mod report;
pub mod rollout;
pub mod rotation;
pub mod signed;
pub mod version_order;

pub use channel::ChannelRecord;
pub use chunk::{VerifiedChunk, VerifiedSlice};
pub use error::{ChunkError, DecodeError, FrameError, NameError, ParseIdError, SignatureError};
pub use frame::Codec;
pub use hash::{ChunkId, FileId, ManifestId};
pub use manifest::{ChunkRef, Entry, EntryKind, Manifest};
pub use params::ChunkerParams;
pub use signed::{Envelope, PublicKey, SecretKey};

/// Seconds since the Unix epoch. (Clock reading is IO-free enough for a
/// protocol crate and keeps every caller on the same definition.)
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
