use std::path::PathBuf;

use thiserror::Error;

/// Why a tree could not be scanned.
#[derive(Debug, Error)]
pub enum ScanError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: file name is not valid UTF-8; Ferry manifests carry UTF-8 paths")]
    NonUtf8(PathBuf),
    #[error("{0}: not a regular file, directory or symlink (sockets, devices and FIFOs cannot be shipped)")]
    Special(PathBuf),
    #[error("{path}: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    #[error(transparent)]
    Name(#[from] ferry_protocol::NameError),
    #[error("invalid chunker parameters: {0}")]
    Params(String),
}

impl ScanError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ScanError::Io {
            path: path.into(),
            source,
        }
    }
}
