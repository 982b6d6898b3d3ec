//! Chunk upload: a chunk stream whose every frame is decompressed and
//! hash-checked (in parallel, off the async threads) before anything of the
//! batch is stored.

use std::sync::Arc;

use ferry_protocol::frame::{Frame, StreamDecoder};
use ferry_protocol::messages::UploadResponse;
use ferry_protocol::{ChunkId, Codec};
use ferry_store::StoredChunk;
use http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;
use rayon::prelude::*;

use crate::api::{blocking, CBOR, CHUNKS};
use crate::auth::require_push_token;
use crate::body::{full, read_limited, require_content_type, RespBody};
use crate::error::ApiError;
use crate::serve::ServerState;

/// Largest upload body; push clients send batches of a few MiB.
pub const MAX_UPLOAD_BODY: usize = 64 * 1024 * 1024;
/// Most chunks in one upload.
pub const MAX_UPLOAD_CHUNKS: usize = 65_536;

pub async fn upload(
    st: Arc<ServerState>,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, ApiError> {
    require_push_token(req.headers(), st.config.push_token.as_deref())?;
    require_content_type(req.headers(), CHUNKS)?;
    let body = read_limited(req.into_body(), MAX_UPLOAD_BODY, "chunk upload").await?;
    let resp = blocking(&st, move |store| {
        let frames = parse_frames(&body)?;
        let verified: Result<Vec<StoredChunk>, ApiError> = frames
            .into_par_iter()
            .map(|(id, codec, raw_len, payload)| {
                StoredChunk::verify(id, codec, raw_len, payload.to_vec()).map_err(|e| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!("rejected upload: {e}"),
                    )
                })
            })
            .collect();
        let verified = verified?;
        ferry_failpoint::hit("server.upload_verified");
        let total = verified.len() as u64;
        let stored = store.put_chunks(&verified)?;
        Ok(UploadResponse {
            stored,
            present: total - stored,
        })
    })
    .await?;
    Response::builder()
        .header(header::CONTENT_TYPE, CBOR)
        .body(full(resp.encode()))
        .map_err(ApiError::internal)
}

type RawFrame<'a> = (ChunkId, Codec, u32, &'a [u8]);

fn parse_frames(body: &[u8]) -> Result<Vec<RawFrame<'_>>, ApiError> {
    let mut d = StreamDecoder::new();
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        match d.next(&body[pos..]) {
            Ok(Some((frame, used))) => {
                pos += used;
                match frame {
                    Frame::Chunk {
                        id,
                        codec,
                        raw_len,
                        payload,
                    } => {
                        if out.len() >= MAX_UPLOAD_CHUNKS {
                            return Err(ApiError::new(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                format!("more than {MAX_UPLOAD_CHUNKS} chunks in one upload"),
                            ));
                        }
                        out.push((id, codec, raw_len, payload));
                    }
                    Frame::Missing { id } => {
                        return Err(ApiError::bad_request(format!(
                            "upload carries a 'missing' frame for {id}"
                        )))
                    }
                    Frame::Group { first, .. } => {
                        return Err(ApiError::bad_request(format!(
                            "upload carries a group frame at {first}; uploads are single chunks"
                        )))
                    }
                    Frame::End => {}
                }
            }
            Ok(None) => break,
            Err(e) => return Err(ApiError::bad_request(format!("bad chunk stream: {e}"))),
        }
    }
    d.finish(&body[pos..])
        .map_err(|e| ApiError::bad_request(format!("bad chunk stream: {e}")))?;
    Ok(out)
}
