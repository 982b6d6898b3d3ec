//! Client reports in, per-app status out.

use std::sync::Arc;

use ferry_protocol::names::validate_app;
use ferry_protocol::report::{Report, Status, MAX_REPORT_BYTES};
use ferry_protocol::unix_now;
use http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::api::{blocking, CBOR};
use crate::body::{empty, full, read_limited, require_content_type, RespBody};
use crate::error::ApiError;
use crate::serve::ServerState;

/// `POST /v1/apps/{app}/reports`: a client's latest outcome. Open to
/// anyone (clients hold no token), so it is small, validated and only
/// counted.
pub async fn post_report(
    st: Arc<ServerState>,
    app: &str,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, ApiError> {
    validate_app(app).map_err(|e| ApiError::bad_request(e.to_string()))?;
    require_content_type(req.headers(), CBOR)?;
    let body = read_limited(req.into_body(), MAX_REPORT_BYTES, "report").await?;
    let report = Report::decode(&body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let app = app.to_string();
    blocking(&st, move |s| Ok(s.put_report(&app, &report, unix_now())?)).await?;
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(empty())
        .map_err(ApiError::internal)
}

/// `GET /v1/apps/{app}/status`: every channel's record and the clients per
/// (channel, version, outcome).
pub async fn get_status(st: Arc<ServerState>, app: &str) -> Result<Response<RespBody>, ApiError> {
    validate_app(app).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let a = app.to_string();
    let status = blocking(&st, move |s| {
        let channels = s.channels_of(&a)?.into_iter().map(|(_, v)| v).collect();
        let rows = s.report_counts(&a)?;
        Ok(Status { channels, rows })
    })
    .await?;
    if status.channels.is_empty() && status.rows.is_empty() {
        return Err(ApiError::not_found(format!("app {app} has no channels")));
    }
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, CBOR)
        .header(header::CACHE_CONTROL, "no-cache")
        .body(full(status.encode()))
        .map_err(ApiError::internal)
}
