//! Client errors: each says what failed and, where it helps, what to do.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot reach {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{what}: no answer from the server within {secs} s")]
    Timeout { what: String, secs: u64 },
    #[error("{what}: server answered {status}: {message}")]
    Server {
        what: String,
        status: u16,
        message: String,
        /// Seconds the server asked us to wait (`Retry-After`).
        retry_after: Option<u64>,
    },
    #[error("{what}: gave up after {attempts} attempts: {source}")]
    GaveUp {
        what: String,
        attempts: u32,
        source: Box<ClientError>,
    },
    #[error("{what}: response larger than {max} bytes")]
    TooLarge { what: String, max: u64 },
    #[error("{what}: {reason}")]
    Protocol { what: String, reason: String },
    #[error(transparent)]
    Decode(#[from] ferry_protocol::DecodeError),
    #[error(transparent)]
    Signature(#[from] ferry_protocol::SignatureError),
    #[error("chunk stream: {0}")]
    Frame(#[from] ferry_protocol::FrameError),
    #[error("server sent a bad chunk: {0}")]
    Chunk(#[from] ferry_protocol::ChunkError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Scan(#[from] ferry_chunker::ScanError),
    #[error(
        "refusing channel record with sequence {got}: this install has already seen sequence {seen} \
         (a replayed old record: rollback attack or a misconfigured mirror)"
    )]
    Replay { seen: u64, got: u64 },
    #[error("refusing channel record: it expired at {expired_at} (unix time), now is {now}; the publisher must re-promote (freeze attack or stale mirror)")]
    Expired { expired_at: u64, now: u64 },
    #[error("{0}")]
    Mismatch(String),
    #[error(
        "not enough disk space to build {version} ({needed} bytes) under {}: {source}; \
         the partial new tree was removed and the old version still runs",
        path.display()
    )]
    DiskFull {
        version: String,
        path: PathBuf,
        needed: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("install directory {}: {reason}", path.display())]
    Install { path: PathBuf, reason: String },
    #[error("{point} hook {command:?} failed: {reason}")]
    Hook {
        point: &'static str,
        command: String,
        reason: String,
    },
    #[error("{0}")]
    Usage(String),
    #[error("internal: {0}")]
    Internal(String),
}

impl ClientError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ClientError::Io {
            path: path.into(),
            source,
        }
    }

    pub fn protocol(what: impl Into<String>, reason: impl Into<String>) -> Self {
        ClientError::Protocol {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub fn install(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        ClientError::Install {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// The disk (or the user's quota) is full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            ClientError::Io { source, .. } => matches!(
                source.raw_os_error(),
                Some(libc::ENOSPC) | Some(libc::EDQUOT)
            ),
            ClientError::DiskFull { .. } => true,
            _ => false,
        }
    }

    /// Seconds the server asked to wait before trying again, if it did.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ClientError::Server { retry_after, .. } => *retry_after,
            ClientError::GaveUp { source, .. } => source.retry_after(),
            _ => None,
        }
    }

    /// A short class for reports (`network`, `signature`, ...).
    pub fn class(&self) -> &'static str {
        match self {
            ClientError::InvalidUrl { .. } | ClientError::Usage(_) | ClientError::Tls(_) => "usage",
            ClientError::Connect { .. } | ClientError::Timeout { .. } => "network",
            ClientError::Server { .. } => "server",
            ClientError::GaveUp { source, .. } => source.class(),
            ClientError::TooLarge { .. }
            | ClientError::Protocol { .. }
            | ClientError::Decode(_)
            | ClientError::Frame(_)
            | ClientError::Chunk(_) => "protocol",
            ClientError::Signature(_) => "signature",
            ClientError::Replay { .. } => "replay",
            ClientError::Expired { .. } => "expired",
            ClientError::Mismatch(_) => "mismatch",
            ClientError::Io { .. } | ClientError::Scan(_) => "io",
            ClientError::DiskFull { .. } => "disk-full",
            ClientError::Install { .. } => "install",
            ClientError::Hook { .. } => "hook",
            ClientError::Internal(_) => "internal",
        }
    }

    /// Worth retrying: the network or the server had a moment.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Connect { .. } | ClientError::Timeout { .. } => true,
            ClientError::Server { status, .. } => *status >= 500 || *status == 429,
            ClientError::Protocol { reason, .. } => reason.starts_with("connection"),
            ClientError::Frame(ferry_protocol::FrameError::Truncated) => true,
            ClientError::GaveUp { source, .. } => source.is_transient(),
            _ => false,
        }
    }

    /// The connection failed (refused, cut, silent): worth retrying the
    /// request at once, with a short backoff. Server answers (503 and
    /// friends) are not: the caller decides how long to wait for those.
    pub fn is_network(&self) -> bool {
        match self {
            ClientError::Connect { .. } | ClientError::Timeout { .. } => true,
            ClientError::Protocol { reason, .. } => reason.starts_with("connection"),
            ClientError::Frame(ferry_protocol::FrameError::Truncated) => true,
            _ => false,
        }
    }
}

impl From<tokio::task::JoinError> for ClientError {
    fn from(e: tokio::task::JoinError) -> Self {
        ClientError::Internal(format!("worker task failed: {e}"))
    }
}
