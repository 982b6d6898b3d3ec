//! Maps method and path to a handler and logs each request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::body::{full, RespBody, TrackedBody};
use crate::error::ApiError;
use crate::serve::{peer_str, ServerState};
use crate::{api, fetch, manifest, ops, publish, status, ui, upload};

pub async fn route(
    st: Arc<ServerState>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<RespBody> {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let name = route_name(&method, &path);
    st.metrics
        .request_body(name, hyper::body::Body::size_hint(req.body()).lower());
    // Probes and scrapes are never shed: an overloaded server must still
    // say so.
    let permit = if is_probe(&path) {
        None
    } else {
        match st.requests.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                st.metrics.shed();
                st.metrics.request(name, 503);
                tracing::debug!(peer = %peer_str(&peer), "{method} {path} -> 503 (busy)");
                return busy(st.config.retry_after_secs);
            }
        }
    };
    let result = dispatch(st.clone(), req).await;
    let resp = result.unwrap_or_else(error_response);
    let status = resp.status().as_u16();
    st.metrics.request(name, status);
    // The permit lives, and the clock runs, as long as the body streams.
    let resp = resp.map(|b| TrackedBody::wrap(b, permit, st.metrics.clone(), name, start));
    tracing::info!(
        peer = %peer_str(&peer),
        method = %method,
        path = %path,
        status,
        ms = start.elapsed().as_millis() as u64,
        "{method} {path} -> {status}"
    );
    resp
}

fn is_probe(path: &str) -> bool {
    matches!(path, "/v1/health" | "/healthz" | "/readyz" | "/metrics")
}

/// The route template of a request, for metrics labels: a fixed set, so
/// no client can add label values.
pub fn route_name(m: &Method, path: &str) -> &'static str {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let get = *m == Method::GET || *m == Method::HEAD;
    match (segs.as_slice(), get, *m == Method::POST, *m == Method::PUT) {
        (["v1", "health"], true, _, _) => "GET /v1/health",
        (["healthz"], true, _, _) => "GET /healthz",
        (["readyz"], true, _, _) => "GET /readyz",
        (["metrics"], true, _, _) => "GET /metrics",
        (["ui"] | [], true, _, _) => "GET /ui",
        (["v1", "apps", _, "channels", _], true, _, _) => "GET /v1/apps/{app}/channels/{channel}",
        (["v1", "apps", _, "channels", _], _, _, true) => "PUT /v1/apps/{app}/channels/{channel}",
        (["v1", "apps", _, "channels", _, "history"], true, _, _) => {
            "GET /v1/apps/{app}/channels/{channel}/history"
        }
        (["v1", "apps", _, "versions", _], true, _, _) => "GET /v1/apps/{app}/versions/{version}",
        (["v1", "apps", _, "versions"], true, _, _) => "GET /v1/apps/{app}/versions",
        (["v1", "apps", _, "reports"], _, true, _) => "POST /v1/apps/{app}/reports",
        (["v1", "apps", _, "status"], true, _, _) => "GET /v1/apps/{app}/status",
        (["v1", "manifests", _], true, _, _) => "GET /v1/manifests/{id}",
        (["v1", "manifests"], _, _, true) => "PUT /v1/manifests",
        (["v1", "chunks", _], true, _, _) => "GET /v1/chunks/{id}",
        (["v1", "chunks", "fetch"], _, true, _) => "POST /v1/chunks/fetch",
        (["v1", "chunks", "missing"], _, true, _) => "POST /v1/chunks/missing",
        (["v1", "chunks"], _, true, _) => "POST /v1/chunks",
        _ => "other",
    }
}

async fn dispatch(
    st: Arc<ServerState>,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, ApiError> {
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let m = req.method().clone();
    if let Some(up) = &st.config.mirror_of {
        if is_publish(&m, &segs) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("this server is a read-only mirror of {up}; push and promote there"),
            ));
        }
    }
    match (m.clone(), segs.as_slice()) {
        (Method::GET, ["v1", "health"]) => Ok(api::health()),
        (Method::GET, ["healthz"]) => Ok(api::health()),
        (Method::GET, ["readyz"]) => ops::readyz(st).await,
        (Method::GET, ["metrics"]) => ops::metrics(st).await,
        (Method::GET, ["ui"] | []) => ui::page(st).await,
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
        (Method::GET, ["v1", "chunks", id]) => api::get_chunk(st, id, req.headers()).await,
        (Method::POST, ["v1", "chunks", "fetch"]) => fetch::fetch(st, req).await,
        (Method::POST, ["v1", "chunks", "missing"]) => fetch::missing(st, req).await,
        (Method::POST, ["v1", "chunks"]) => upload::upload(st, req).await,
        (_, _) if known_path(&segs) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{m} is not allowed on {path}"),
        )),
        _ => Err(ApiError::not_found(format!("no such endpoint: {m} {path}"))),
    }
}

/// The requests that change what a server publishes.
fn is_publish(m: &Method, segs: &[&str]) -> bool {
    matches!(
        (m.clone(), segs),
        (Method::PUT, ["v1", "apps", _, "channels", _])
            | (Method::PUT, ["v1", "manifests"])
            | (Method::POST, ["v1", "chunks"])
            | (Method::POST, ["v1", "chunks", "missing"])
    )
}

fn known_path(segs: &[&str]) -> bool {
    matches!(
        segs,
        ["v1", "health"]
            | ["healthz" | "readyz" | "metrics" | "ui"]
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
