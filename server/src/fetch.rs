//! Batched fetch (one streamed response for many chunks) and the push-side
//! missing-chunk query.

use std::sync::Arc;

use bytes::Bytes;
use ferry_protocol::frame::{encode_end, encode_header, encode_missing};
use ferry_protocol::messages::{FetchRequest, IdList, MAX_ID_LIST_BODY};
use ferry_protocol::ChunkId;
use ferry_store::Backend;
use http::{header, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::mpsc;

use crate::api::{blocking, frame_from_stored, CBOR, CHUNKS};
use crate::auth::require_push_token;
use crate::body::{full, read_limited, require_content_type, ChannelBody, RespBody};
use crate::error::ApiError;
use crate::serve::ServerState;

/// Bytes gathered before handing a piece of the stream to the connection.
const SEND_CHUNK: usize = 1 << 20;
/// Pieces buffered between the store reader and the connection.
const IN_FLIGHT: usize = 4;
/// Chunks read from the store per multi-get.
const READ_GROUP: usize = 64;

pub async fn fetch(
    st: Arc<ServerState>,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, ApiError> {
    require_content_type(req.headers(), CBOR)?;
    let body = read_limited(req.into_body(), MAX_ID_LIST_BODY, "fetch request").await?;
    let fr = FetchRequest::decode(&body)?;
    st.metrics.fetch_batch(fr.ids.len());
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let store = st.store.clone();
    tokio::task::spawn_blocking(move || produce(store.as_ref(), &fr.ids, &tx));
    Response::builder()
        .header(header::CONTENT_TYPE, CHUNKS)
        .body(ChannelBody::new(rx).boxed())
        .map_err(ApiError::internal)
}

/// Reads chunks in order and sends them as frames. Stops early when the
/// client goes away (the send fails); a store error aborts the stream, which
/// the client sees as a truncated stream and retries.
fn produce(store: &dyn Backend, ids: &[ChunkId], tx: &mpsc::Sender<Result<Bytes, std::io::Error>>) {
    let mut buf = Vec::with_capacity(SEND_CHUNK + 64 * 1024);
    encode_header(&mut buf);
    for group in ids.chunks(READ_GROUP) {
        let values = match store.get_chunks(group) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!("fetch: store read failed: {e}");
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                return;
            }
        };
        for (id, v) in group.iter().zip(values) {
            match v {
                Some(v) => match frame_from_stored(id, &v, false) {
                    Ok(f) => buf.extend_from_slice(&f),
                    Err(e) => {
                        let _ = tx.blocking_send(Err(std::io::Error::other(e.message)));
                        return;
                    }
                },
                None => encode_missing(&mut buf, id),
            }
            if buf.len() >= SEND_CHUNK {
                let piece = Bytes::from(std::mem::replace(
                    &mut buf,
                    Vec::with_capacity(SEND_CHUNK + 64 * 1024),
                ));
                if tx.blocking_send(Ok(piece)).is_err() {
                    return;
                }
            }
        }
    }
    encode_end(&mut buf);
    let _ = tx.blocking_send(Ok(Bytes::from(buf)));
}

pub async fn missing(
    st: Arc<ServerState>,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, ApiError> {
    require_push_token(req.headers(), st.config.push_token.as_deref())?;
    require_content_type(req.headers(), CBOR)?;
    let body = read_limited(req.into_body(), MAX_ID_LIST_BODY, "missing-chunk query").await?;
    let q = IdList::decode(&body)?;
    let missing = blocking(&st, move |s| {
        let have = s.has_chunks(&q.ids)?;
        Ok(q.ids
            .into_iter()
            .zip(have)
            .filter(|(_, h)| !h)
            .map(|(id, _)| id)
            .collect::<Vec<_>>())
    })
    .await?;
    Response::builder()
        .header(header::CONTENT_TYPE, CBOR)
        .body(full(IdList { ids: missing }.encode()))
        .map_err(ApiError::internal)
}
