//! Error types of the protocol crate. Each names what was wrong, so a server
//! can send the message back as a 4xx body and a client can print it.

use thiserror::Error;

/// A hex id or id list that could not be parsed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ParseIdError {
    #[error("id must be 32 bytes, got {0}")]
    Length(usize),
    #[error("id must be 64 hex digits, got {0} characters")]
    HexLength(usize),
    #[error("invalid hex digit {0:?} in id")]
    HexDigit(char),
    #[error("id list length {0} is not a multiple of 32 bytes")]
    ListLength(usize),
}

/// A name (app, channel, version) or path that is not acceptable.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NameError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} is longer than {max} bytes")]
    TooLong { what: &'static str, max: usize },
    #[error("{what} {value:?} contains {found:?}; allowed are letters, digits and {allowed}")]
    BadChar {
        what: &'static str,
        value: String,
        found: char,
        allowed: &'static str,
    },
    #[error("{what} {value:?} must not start with {found:?}")]
    BadStart {
        what: &'static str,
        value: String,
        found: char,
    },
    #[error("path {path:?}: {reason}")]
    Path { path: String, reason: &'static str },
}

/// A CBOR document that could not be decoded or failed validation.
#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("malformed CBOR in {what}: {source}")]
    Cbor {
        what: &'static str,
        #[source]
        source: minicbor::decode::Error,
    },
    #[error("{what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("{what} is {len} bytes, more than the limit of {max}")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Id(#[from] ParseIdError),
}

impl DecodeError {
    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        DecodeError::Invalid {
            what,
            reason: reason.into(),
        }
    }
}

/// A signature that does not check out.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SignatureError {
    #[error("{kind} is not signed by any trusted key (signed by {signers})")]
    Untrusted { kind: &'static str, signers: String },
    #[error("{kind} carries a bad signature from key {key}")]
    Bad { kind: &'static str, key: String },
    #[error("document is a {found}, expected a {expected}")]
    WrongKind {
        expected: &'static str,
        found: String,
    },
    #[error("invalid public key: {0}")]
    InvalidKey(String),
}

/// A chunk frame stream that is malformed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    #[error("chunk stream does not start with the FRYS magic")]
    BadMagic,
    #[error("chunk stream version {0} is not supported (expected 1)")]
    BadVersion(u8),
    #[error("chunk frame for {id} has unknown codec {codec}")]
    UnknownCodec { id: String, codec: u8 },
    #[error("chunk frame for {id}: length {len} exceeds the limit of {max} bytes")]
    TooLarge { id: String, len: u64, max: u64 },
    #[error("chunk frame for {id}: {reason}")]
    Invalid { id: String, reason: &'static str },
    #[error("group frame: {0}")]
    Group(&'static str),
    #[error("chunk stream ended in the middle of a frame")]
    Truncated,
    #[error("data after the end of the chunk stream")]
    TrailingData,
}

/// A chunk whose payload cannot be turned into verified bytes.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ChunkError {
    #[error("chunk {id}: bytes hash to {actual}, not to the chunk id")]
    HashMismatch { id: String, actual: String },
    #[error("chunk {id}: zstd payload does not decompress: {reason}")]
    Decompress { id: String, reason: String },
    #[error("chunk {id}: decompressed to {actual} bytes, frame says {expected}")]
    LengthMismatch {
        id: String,
        expected: u64,
        actual: u64,
    },
    #[error("chunk {id}: codec {codec} cannot carry data")]
    NoData { id: String, codec: u8 },
}
