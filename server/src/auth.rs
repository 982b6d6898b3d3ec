//! Bearer-token check for uploads and publishes, in constant time.

use http::{header, HeaderMap, StatusCode};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// Checks `Authorization: Bearer <token>` against the configured token.
/// Both sides are hashed first so the comparison leaks neither content nor
/// length through timing.
pub fn require_push_token(headers: &HeaderMap, expected: Option<&str>) -> Result<(), ApiError> {
    let Some(expected) = expected else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this server accepts no pushes: it was started without --push-token",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing bearer token (Authorization: Bearer <push token>)",
            )
        })?;
    let a = blake3::hash(given.trim().as_bytes());
    let b = blake3::hash(expected.as_bytes());
    if bool::from(a.as_bytes().ct_eq(b.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::UNAUTHORIZED, "wrong push token"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::AUTHORIZATION, v.parse().unwrap());
        m
    }

    #[test]
    fn token_checks() {
        assert!(require_push_token(&h("Bearer s3cret"), Some("s3cret")).is_ok());
        assert_eq!(
            require_push_token(&h("Bearer nope"), Some("s3cret"))
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert!(require_push_token(&HeaderMap::new(), Some("s3cret")).is_err());
        assert_eq!(
            require_push_token(&h("Bearer s3cret"), None)
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
    }
}
