//! Maps method and path to a handler and logs each request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::body::{full, PermitBody, RespBody};
use crate::error::ApiError;
use crate::serve::{peer_str, ServerState};
use crate::{api, fetch, manifest, publish, status, upload};

pub async fn route(
    st: Arc<ServerState>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<RespBody> {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let permit = if path == "/v1/health" {
        None
    } else {
        match st.requests.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                st.shed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!(peer = %peer_str(&peer), "{method} {path} -> 503 (busy)");
                return busy(st.config.retry_after_secs);
            }
        }
    };
    let result = dispatch(st, req).await;
    let resp = result.unwrap_or_else(error_response);
    // The permit lives as long as the response body streams.
    let resp = match permit {
        Some(p) => resp.map(|b| PermitBody::wrap(b, p)),
        None => resp,
    };
    tracing::info!(
        peer = %peer_str(&peer),
        "{method} {path} -> {} ({} ms)",
        resp.status().as_u16(),
        start.elapsed().as_millis()
    );
    resp
}

async fn dispatch(
    st: Arc<ServerState>,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, ApiError> {
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let m = req.method().clone();
    match (m.clone(), segs.as_slice()) {
        (Method::GET, ["v1", "health"]) => Ok(api::health()),
        (Method::GET | Method::HEAD, ["v1", "apps", app, "channels", ch]) => {
            api::get_channel(st, app, ch, req.headers()).await
        }
        (Method::GET, ["v1", "apps", app, "channels", ch, "history"]) => {
            api::get_history(st, app, ch, req.uri().query()).await
        }
        (Method::PUT, ["v1", "apps", app, "channels", ch]) => {
            let (app, ch) = (app.to_string(), ch.to_string());
            publish::put_channel(st, &app, &ch, req).await
        }
        (Method::GET, ["v1", "apps", app, "versions", version]) => {
            api::get_version(st, app, version).await
        }
        (Method::GET, ["v1", "apps", app, "versions"]) => api::list_versions(st, app).await,
        (Method::POST, ["v1", "apps", app, "reports"]) => {
            let app = app.to_string();
            status::post_report(st, &app, req).await
        }
        (Method::GET, ["v1", "apps", app, "status"]) => status::get_status(st, app).await,
        (Method::GET, ["v1", "manifests", id]) => {
            manifest::get_manifest(st, id, req.uri().query(), req.headers()).await
        }
        (Method::PUT, ["v1", "manifests"]) => publish::put_manifest(st, req).await,
        (Method::GET, ["v1", "chunks", id]) => api::get_chunk(st, id).await,
        (Method::POST, ["v1", "chunks", "fetch"]) => fetch::fetch(st, req).await,
        (Method::POST, ["v1", "chunks", "missing"]) => fetch::missing(st, req).await,
        (Method::POST, ["v1", "chunks"]) => upload::upload(st, req).await,
        (_, ["v1", ..]) if known_path(&segs) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{m} is not allowed on {path}"),
        )),
        _ => Err(ApiError::not_found(format!("no such endpoint: {m} {path}"))),
    }
}

fn known_path(segs: &[&str]) -> bool {
    matches!(
        segs,
        ["v1", "health"]
            | ["v1", "apps", _, "channels", _]
            | ["v1", "apps", _, "channels", _, "history"]
            | ["v1", "apps", _, "versions", ..]
            | ["v1", "apps", _, "reports" | "status"]
            | ["v1", "manifests", ..]
            | ["v1", "chunks", ..]
    )
}

/// 503 with `Retry-After`: the server is at its request limit.
fn busy(retry_after: u64) -> Response<RespBody> {
    Response::builder()
        .status(StatusCode::SERVICE_UNAVAILABLE)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(http::header::RETRY_AFTER, retry_after.to_string())
        .body(full(format!(
            "server busy: too many requests in progress; retry after {retry_after} s\n"
        )))
        .unwrap_or_else(|_| Response::new(full("busy\n")))
}

pub fn error_response(e: ApiError) -> Response<RespBody> {
    let mut msg = e.message;
    msg.push('\n');
    Response::builder()
        .status(e.status)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(full(msg))
        .unwrap_or_else(|_| Response::new(full("error\n")))
}
