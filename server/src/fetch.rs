//! Batched fetch (one streamed response for many chunks, with group frames
//! where the request names its target manifest) and the push-side
//! missing-chunk query.

use std::sync::Arc;

use bytes::Bytes;
use ferry_protocol::frame::{encode_end, encode_header, encode_missing, FRAME_HEADER_LEN};
use ferry_protocol::group_plan::Item;
use ferry_protocol::messages::{FetchRequest, IdList, MAX_ID_LIST_BODY};
use ferry_protocol::ChunkId;
use http::{header, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use rayon::prelude::*;
use tokio::sync::mpsc;

use crate::api::{blocking, frame_from_stored, CBOR, CHUNKS};
use crate::auth::require_push_token;
use crate::body::{full, read_limited, require_content_type, ChannelBody, RespBody};
use crate::error::ApiError;
use crate::groups::Encoded;
use crate::serve::ServerState;

/// Bytes gathered before handing a piece of the stream to the connection.
const SEND_CHUNK: usize = 1 << 20;
/// Pieces buffered between the store reader and the connection.
const IN_FLIGHT: usize = 4;
/// Items (single chunks or groups) handled per step: one store multi-get,
/// groups encoded in parallel.
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
    tokio::task::spawn_blocking(move || produce(&st, &fr, &tx));
    Response::builder()
        .header(header::CONTENT_TYPE, CHUNKS)
        .body(ChannelBody::new(rx).boxed())
        .map_err(ApiError::internal)
}

type Tx = mpsc::Sender<Result<Bytes, std::io::Error>>;

/// Sends frames in request order: single stored chunks, and group frames
/// where the request names its target manifest (`groups`). Stops early when
/// the client goes away (the send fails); a store error aborts the stream,
/// which the client sees as a truncated stream and retries.
fn produce(st: &ServerState, fr: &FetchRequest, tx: &Tx) {
    let store = &st.store;
    let planned = match fr.want {
        Some(want) if !fr.plain && st.groups.enabled() => st
            .groups
            .transition(store.as_ref(), want, fr.have)
            .map(|t| (t.plan(&fr.ids), t, (want, fr.have))),
        _ => None,
    };
    let (items, transition) = match planned {
        Some((items, t, key)) => (items, Some((t, key))),
        None => ((0..fr.ids.len()).map(Item::Single).collect(), None),
    };
    let mut out = Out::new(tx);
    for window in items.chunks(READ_GROUP) {
        // Groups of this window, encoded in parallel (or found in the cache).
        let encoded: Vec<Option<Arc<Encoded>>> = match &transition {
            Some((t, key)) => window
                .par_iter()
                .map(|it| match it {
                    Item::Group(g) => Some(st.groups.encoded(store.as_ref(), *key, t, g)),
                    Item::Single(_) => None,
                })
                .collect(),
            None => vec![None; window.len()],
        };
        // Stored chunks for singles and for groups no smaller than them.
        let mut wanted: Vec<ChunkId> = Vec::new();
        for (it, e) in window.iter().zip(&encoded) {
            match (it, e.as_deref()) {
                (Item::Single(i), _) => wanted.push(fr.ids[*i]),
                (Item::Group(g), Some(Encoded::Singles)) => {
                    wanted.extend_from_slice(&fr.ids[g.first..g.first + g.count as usize])
                }
                _ => {}
            }
        }
        let values = match store.get_chunks(&wanted) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!("fetch: store read failed: {e}");
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                return;
            }
        };
        let mut values = wanted.iter().zip(values);
        for (it, e) in window.iter().zip(&encoded) {
            let singles = match (it, e.as_deref()) {
                (_, Some(Encoded::Frame(f))) => {
                    if !out.push(f) {
                        return;
                    }
                    continue;
                }
                (Item::Group(g), _) => g.count as usize,
                (Item::Single(_), _) => 1,
            };
            for (id, v) in values.by_ref().take(singles) {
                let ok = match v {
                    Some(v) => match frame_from_stored(id, &v, false) {
                        Ok(f) => out.push(&f),
                        Err(e) => {
                            let _ = tx.blocking_send(Err(std::io::Error::other(e.message)));
                            return;
                        }
                    },
                    None => {
                        let mut f = Vec::with_capacity(FRAME_HEADER_LEN);
                        encode_missing(&mut f, id);
                        out.push(&f)
                    }
                };
                if !ok {
                    return;
                }
            }
        }
    }
    out.finish();
}

/// The response stream, gathered into pieces of about [`SEND_CHUNK`].
struct Out<'a> {
    tx: &'a Tx,
    buf: Vec<u8>,
}

impl<'a> Out<'a> {
    fn new(tx: &'a Tx) -> Self {
        let mut buf = Vec::with_capacity(SEND_CHUNK + 64 * 1024);
        encode_header(&mut buf);
        Out { tx, buf }
    }

    /// Appends frame bytes; false when the client went away.
    fn push(&mut self, frame: &[u8]) -> bool {
        self.buf.extend_from_slice(frame);
        if self.buf.len() < SEND_CHUNK {
            return true;
        }
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(SEND_CHUNK + 64 * 1024));
        self.tx.blocking_send(Ok(Bytes::from(piece))).is_ok()
    }

    fn finish(mut self) {
        encode_end(&mut self.buf);
        let _ = self.tx.blocking_send(Ok(Bytes::from(self.buf)));
    }
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
