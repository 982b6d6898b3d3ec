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
    let outcome = report.outcome.as_str();
    let version = report.version.clone();
    let a = app.clone();
    // Versions the store does not know are counted as "unknown", so a
    // client cannot add label values to the metrics.
    let known = blocking(&st, move |s| {
        s.put_report(&a, &report, unix_now())?;
        Ok(match &version {
            // The local list, not get_version: on a mirror that would ask
            // the upstream about whatever version a client names.
            Some(v) if s.list_versions(&a)?.iter().any(|(x, _)| x == v) => Some(v.clone()),
            Some(_) => None,
            None => Some("-".to_string()),
        })
    })
    .await?;
    let app_label = if known.is_some() {
        app.as_str()
    } else {
        "unknown"
    };
    st.metrics
        .report(app_label, known.as_deref().unwrap_or("unknown"), outcome);
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
