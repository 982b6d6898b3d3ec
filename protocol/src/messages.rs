//! Small CBOR request and response bodies of the HTTP API.
//!
//! ```text
//! missing request  = { 0: ids (bytes, 32 * n) }
//! missing response = { 0: ids (bytes, 32 * n): those the server lacks }
//! fetch request    = { 0: ids (bytes, 32 * n), ? 1: manifest id the client has,
//!                      ? 2: manifest id the ids belong to, ? 3: plain (true) }
//! upload response  = { 0: chunks stored, 1: chunks already present }
//! publish response = { 0: manifest id (32 bytes) }
//! history response = { 0: [signed channel record envelope (bytes)...] }, oldest first
//! ```

use minicbor::Decoder;

use crate::cbor::{encoder, expect_end, ok, required, MapReader};
use crate::error::DecodeError;
use crate::hash::{ids_from_bytes, ids_to_bytes, ChunkId, ManifestId};

/// Most ids in one missing or fetch request (2 MiB of ids).
pub const MAX_IDS_PER_REQUEST: usize = 65_536;
/// Largest request body that carries an id list.
pub const MAX_ID_LIST_BODY: usize = MAX_IDS_PER_REQUEST * 32 + 1024;

fn decode_ids(r: &mut MapReader<'_, '_>, what: &'static str) -> Result<Vec<ChunkId>, DecodeError> {
    let b = r.bytes()?;
    if b.len() > MAX_IDS_PER_REQUEST * 32 {
        return Err(DecodeError::invalid(
            what,
            format!(
                "{} ids, at most {MAX_IDS_PER_REQUEST} per request",
                b.len() / 32
            ),
        ));
    }
    Ok(ids_from_bytes(b)?)
}

/// A list of chunk ids (missing query, missing answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdList {
    pub ids: Vec<ChunkId>,
}

impl IdList {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = encoder();
        ok(ok(ok(e.map(1)).u8(0)).bytes(&ids_to_bytes(&self.ids)));
        e.into_writer()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        const WHAT: &str = "id list";
        let mut d = Decoder::new(bytes);
        let mut r = MapReader::new(&mut d, WHAT)?;
        let mut ids = None;
        while let Some(k) = r.next_key()? {
            match k {
                0 => ids = Some(decode_ids(&mut r, WHAT)?),
                other => return Err(r.unknown(other)),
            }
        }
        expect_end(&d, WHAT)?;
        Ok(IdList {
            ids: required(ids, WHAT, "ids")?,
        })
    }
}

/// Most records in one history response.
pub const MAX_HISTORY_RECORDS: usize = 10_000;
/// Largest history response body.
pub const MAX_HISTORY_BODY: usize = 64 * 1024 * 1024;

/// A channel's records, each the exact signed envelope as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub records: Vec<Vec<u8>>,
}

impl History {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = encoder();
        ok(ok(ok(e.map(1)).u8(0)).array(self.records.len() as u64));
        for r in &self.records {
            ok(e.bytes(r));
        }
        e.into_writer()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        const WHAT: &str = "history";
        if bytes.len() > MAX_HISTORY_BODY {
            return Err(DecodeError::TooLarge {
                what: WHAT,
                len: bytes.len(),
                max: MAX_HISTORY_BODY,
            });
        }
        let mut d = Decoder::new(bytes);
        let mut r = MapReader::new(&mut d, WHAT)?;
        let mut records = None;
        while let Some(k) = r.next_key()? {
            match k {
                0 => {
                    let n =
                        r.d.array()
                            .map_err(|e| r.err(e))?
                            .ok_or_else(|| DecodeError::invalid(WHAT, "indefinite array"))?;
                    if n > MAX_HISTORY_RECORDS as u64 {
                        return Err(DecodeError::invalid(
                            WHAT,
                            format!("{n} records, at most {MAX_HISTORY_RECORDS}"),
                        ));
                    }
                    let mut v = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        v.push(r.bytes()?.to_vec());
                    }
                    records = Some(v);
                }
                other => return Err(r.unknown(other)),
            }
        }
        expect_end(&d, WHAT)?;
        Ok(History {
            records: required(records, WHAT, "records")?,
        })
    }
}

/// A batched fetch request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FetchRequest {
    pub ids: Vec<ChunkId>,
    /// The manifest the client runs now (its files are the references of
    /// group frames: `crate::group`).
    pub have: Option<ManifestId>,
    /// The manifest being built, whose chunks `ids` are, in file order:
    /// with it the server can send runs of them as group frames.
    pub want: Option<ManifestId>,
    /// Only single-chunk frames (a retry after a group failed to verify).
    pub plain: bool,
}

impl FetchRequest {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = encoder();
        let n = 1
            + u64::from(self.have.is_some())
            + u64::from(self.want.is_some())
            + u64::from(self.plain);
        ok(e.map(n));
        ok(ok(e.u8(0)).bytes(&ids_to_bytes(&self.ids)));
        if let Some(h) = &self.have {
            ok(ok(e.u8(1)).bytes(&h.0));
        }
        if let Some(w) = &self.want {
            ok(ok(e.u8(2)).bytes(&w.0));
        }
        if self.plain {
            ok(ok(e.u8(3)).bool(true));
        }
        e.into_writer()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        const WHAT: &str = "fetch request";
        let mut d = Decoder::new(bytes);
        let mut r = MapReader::new(&mut d, WHAT)?;
        let mut f = FetchRequest::default();
        let mut ids = None;
        while let Some(k) = r.next_key()? {
            match k {
                0 => ids = Some(decode_ids(&mut r, WHAT)?),
                1 => f.have = Some(ManifestId::from_slice(r.bytes()?)?),
                2 => f.want = Some(ManifestId::from_slice(r.bytes()?)?),
                3 => {
                    if !r.d.bool().map_err(|e| r.err(e))? {
                        return Err(DecodeError::invalid(
                            WHAT,
                            "plain is written only when true",
                        ));
                    }
                    f.plain = true;
                }
                other => return Err(r.unknown(other)),
            }
        }
        expect_end(&d, WHAT)?;
        f.ids = required(ids, WHAT, "ids")?;
        Ok(f)
    }
}

/// What an upload stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UploadResponse {
    pub stored: u64,
    pub present: u64,
}

impl UploadResponse {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = encoder();
        ok(ok(ok(ok(ok(e.map(2)).u8(0)).u64(self.stored)).u8(1)).u64(self.present));
        e.into_writer()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        const WHAT: &str = "upload response";
        let mut d = Decoder::new(bytes);
        let mut r = MapReader::new(&mut d, WHAT)?;
        let mut out = UploadResponse::default();
        while let Some(k) = r.next_key()? {
            match k {
                0 => out.stored = r.u64()?,
                1 => out.present = r.u64()?,
                other => return Err(r.unknown(other)),
            }
        }
        expect_end(&d, WHAT)?;
        Ok(out)
    }
}

/// The id of a published manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishResponse {
    pub manifest_id: ManifestId,
}

impl PublishResponse {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = encoder();
        ok(ok(ok(e.map(1)).u8(0)).bytes(&self.manifest_id.0));
        e.into_writer()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        const WHAT: &str = "publish response";
        let mut d = Decoder::new(bytes);
        let mut r = MapReader::new(&mut d, WHAT)?;
        let mut id = None;
        while let Some(k) = r.next_key()? {
            match k {
                0 => id = Some(ManifestId::from_slice(r.bytes()?)?),
                other => return Err(r.unknown(other)),
            }
        }
        expect_end(&d, WHAT)?;
        Ok(PublishResponse {
            manifest_id: required(id, WHAT, "manifest id")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let ids = vec![ChunkId::of(b"1"), ChunkId::of(b"2")];
        let l = IdList { ids: ids.clone() };
        assert_eq!(IdList::decode(&l.encode()).unwrap(), l);
        for f in [
            FetchRequest {
                ids: ids.clone(),
                have: Some(ManifestId::of(b"m")),
                ..Default::default()
            },
            FetchRequest {
                ids: ids.clone(),
                have: None,
                want: Some(ManifestId::of(b"w")),
                plain: true,
            },
        ] {
            assert_eq!(FetchRequest::decode(&f.encode()).unwrap(), f);
        }
        let u = UploadResponse {
            stored: 3,
            present: 4,
        };
        assert_eq!(UploadResponse::decode(&u.encode()).unwrap(), u);
        let p = PublishResponse {
            manifest_id: ManifestId::of(b"x"),
        };
        assert_eq!(PublishResponse::decode(&p.encode()).unwrap(), p);
    }

    #[test]
    fn malformed_rejected() {
        assert!(IdList::decode(b"").is_err());
        assert!(IdList::decode(&[0xa1, 0x00, 0x43, 1, 2, 3]).is_err()); // 3-byte id list
        assert!(IdList::decode(&[0xa1, 0x05, 0x40]).is_err()); // unknown key
        assert!(FetchRequest::decode(&[0xff]).is_err());
    }
}
