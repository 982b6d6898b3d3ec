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

/// A response body that holds a load-shedding permit until the body is
/// dropped, so a long streamed fetch counts as a request in progress for
/// as long as it streams.
pub struct PermitBody {
    inner: RespBody,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl PermitBody {
    pub fn wrap(inner: RespBody, permit: tokio::sync::OwnedSemaphorePermit) -> RespBody {
        PermitBody {
            inner,
            _permit: permit,
        }
        .boxed()
    }
}

impl Body for PermitBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
