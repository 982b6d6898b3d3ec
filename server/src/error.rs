//! API errors: a status and a one-line message, sent as `text/plain`.

use ferry_store::StoreError;
use http::StatusCode;

/// An error answer of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, m)
    }

    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, m)
    }

    pub fn internal(m: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {m}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {m}"),
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match &e {
            StoreError::Conflict(_) | StoreError::StaleSequence { .. } => StatusCode::CONFLICT,
            StoreError::MissingChunks { .. } | StoreError::UnknownManifest(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            StoreError::Unsupported(_) => StatusCode::FORBIDDEN,
            StoreError::Upstream(_) => {
                tracing::warn!("{e}");
                StatusCode::BAD_GATEWAY
            }
            _ => return ApiError::internal(e),
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<ferry_protocol::DecodeError> for ApiError {
    fn from(e: ferry_protocol::DecodeError) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::internal(format!("worker task failed: {e}"))
    }
}
