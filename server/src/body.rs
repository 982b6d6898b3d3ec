//! Request body limits and the response body types.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, HeaderMap, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame, Incoming};
use tokio::sync::mpsc;

use crate::error::ApiError;

/// The response body of every handler.
pub type RespBody = BoxBody<Bytes, std::io::Error>;

pub fn full(data: impl Into<Bytes>) -> RespBody {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> RespBody {
    full(Bytes::new())
}

/// Reads the whole body, refusing more than `max` bytes.
pub async fn read_limited(body: Incoming, max: usize, what: &str) -> Result<Bytes, ApiError> {
    match Limited::new(body, max).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("{what} is larger than the limit of {max} bytes"),
                ))
            } else {
                Err(ApiError::bad_request(format!("could not read {what}: {e}")))
            }
        }
    }
}

/// Refuses a request whose Content-Type is not `want`.
pub fn require_content_type(headers: &HeaderMap, want: &str) -> Result<(), ApiError> {
    let got = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let base = got.split(';').next().unwrap_or("").trim();
    if base.eq_ignore_ascii_case(want) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type must be {want}, got {:?}", got),
        ))
    }
}

/// A streamed response body fed by a blocking producer through a bounded
/// channel, so at most a few buffers are in flight per response.
pub struct ChannelBody {
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
}

impl ChannelBody {
    pub fn new(rx: mpsc::Receiver<Result<Bytes, std::io::Error>>) -> Self {
        ChannelBody { rx }
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}

/// A response body that holds a load-shedding permit until it is dropped
/// (so a long streamed fetch counts as a request in progress for as long
/// as it streams), counts the bytes it sends, and records the request's
/// duration and size in the metrics when done.
pub struct TrackedBody {
    inner: RespBody,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    route: &'static str,
    start: std::time::Instant,
    sent: u64,
}

impl TrackedBody {
    pub fn wrap(
        inner: RespBody,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
        route: &'static str,
        start: std::time::Instant,
    ) -> RespBody {
        TrackedBody {
            inner,
            _permit: permit,
            metrics,
            route,
            start,
            sent: 0,
        }
        .boxed()
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &r {
            if let Some(d) = f.data_ref() {
                self.sent += d.len() as u64;
            }
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        self.metrics
            .response_done(self.route, self.start.elapsed().as_secs_f64(), self.sent);
    }
}
