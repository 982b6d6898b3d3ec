//! Operator endpoints: `/readyz` (the store answers) and `/metrics`
//! (Prometheus text). `/healthz` is the plain liveness answer in `api`.

use std::sync::Arc;

use http::{header, Response, StatusCode};

use crate::api::blocking;
use crate::body::{full, RespBody};
use crate::error::ApiError;
use crate::serve::ServerState;

/// OpenMetrics text, which Prometheus reads natively.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /readyz`: 200 when the store answers, else 503 with the reason, so a
/// load balancer takes the server out of rotation.
pub async fn readyz(st: Arc<ServerState>) -> Result<Response<RespBody>, ApiError> {
    let r = blocking(&st, |s| Ok(s.ready())).await?;
    let (status, text) = match r {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: store: {e}\n"),
        ),
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(full(text))
        .map_err(ApiError::internal)
}

/// `GET /metrics`: every counter, with the store's size read now.
pub async fn metrics(st: Arc<ServerState>) -> Result<Response<RespBody>, ApiError> {
    let stats = blocking(&st, |s| Ok(s.stats())).await?;
    let stats = match stats {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("metrics: store size unavailable: {e}");
            None
        }
    };
    let text = st.metrics.render(stats);
    Response::builder()
        .header(header::CONTENT_TYPE, OPENMETRICS)
        .header(header::CACHE_CONTROL, "no-store")
        .body(full(text))
        .map_err(ApiError::internal)
}
