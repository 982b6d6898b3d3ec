//! The version manifest: every file, directory and symlink of one version of
//! an app, each file as a list of chunk ids and lengths.
//!
//! Wire form (deterministic CBOR, signed as exact bytes, see [`crate::signed`]):
//!
//! ```text
//! manifest = { 0: format (1), 1: app, 2: version, 3: [min, avg, max],
//!              4: created_at (unix seconds), 5: [entry...],
//!              ? 6: entry point (path of a file entry, for `ferry run`) }
//! entry    = [0, path, exec: bool, size, ids: bytes (32 * n), [len...]]   ; file
//!          | [1, path]                                                    ; directory
//!          | [2, path, target]                                            ; symlink
//! ```
//!
//! A chunk costs 32 bytes of id plus 3 to 5 bytes of length. Decoding checks
//! everything a client relies on before it writes a byte: names, path safety,
//! sorted unique paths, parents that are directories, chunk lengths that add
//! up to the file size, and symlinks that cannot lead out of the tree.

use std::collections::{HashMap, HashSet};

use minicbor::Decoder;

use crate::cbor::{cbor_err, encoder, expect_end, ok, required, Enc, MapReader};
use crate::error::DecodeError;
use crate::hash::{ids_from_bytes, ChunkId, FileId, ManifestId};
use crate::names::{parent_of, validate_app, validate_rel_path, validate_version, MAX_PATH_LEN};
use crate::params::ChunkerParams;

/// Manifest format understood by this build.
pub const MANIFEST_FORMAT: u32 = 1;
/// Largest manifest body accepted (about 3.5 million chunks).
pub const MAX_MANIFEST_BYTES: usize = 128 * 1024 * 1024;
const WHAT: &str = "manifest";

/// One chunk of a file: its id and uncompressed length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkRef {
    pub id: ChunkId,
    pub len: u32,
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File {
        exec: bool,
        size: u64,
        chunks: Vec<ChunkRef>,
    },
    Dir,
    Symlink {
        target: String,
    },
}

/// One path of a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative, `/`-separated, validated by [`validate_rel_path`].
    pub path: String,
    pub kind: EntryKind,
}

impl Entry {
    /// The file id (BLAKE3 over size and chunk list) of a file entry.
    pub fn file_id(&self) -> Option<FileId> {
        match &self.kind {
            EntryKind::File { size, chunks, .. } => Some(file_id(*size, chunks)),
            _ => None,
        }
    }
}

/// BLAKE3 over a file's size and chunk list: equal ids mean equal contents.
pub fn file_id(size: u64, chunks: &[ChunkRef]) -> FileId {
    let mut h = blake3::Hasher::new();
    h.update(b"ferry-file-v1");
    h.update(&size.to_le_bytes());
    for c in chunks {
        h.update(&c.id.0);
        h.update(&c.len.to_le_bytes());
    }
    FileId(*h.finalize().as_bytes())
}

/// A version manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub app: String,
    pub version: String,
    pub params: ChunkerParams,
    pub created_at: u64,
    /// Sorted by path (byte order), unique.
    pub entries: Vec<Entry>,
    /// The file `ferry run` starts (`push --entry`).
    pub entry_point: Option<String>,
}

impl Manifest {
    /// Canonical bytes; the manifest id is BLAKE3 of these.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = encoder();
        ok(e.map(6 + u64::from(self.entry_point.is_some())));
        ok(ok(e.u8(0)).u32(MANIFEST_FORMAT));
        ok(ok(e.u8(1)).str(&self.app));
        ok(ok(e.u8(2)).str(&self.version));
        ok(
            ok(ok(ok(ok(e.u8(3)).array(3)).u32(self.params.min)).u32(self.params.avg))
                .u32(self.params.max),
        );
        ok(ok(e.u8(4)).u64(self.created_at));
        ok(ok(e.u8(5)).array(self.entries.len() as u64));
        for entry in &self.entries {
            encode_entry(&mut e, entry);
        }
        if let Some(p) = &self.entry_point {
            ok(ok(e.u8(6)).str(p));
        }
        e.into_writer()
    }

    /// Id of these canonical bytes.
    pub fn id(&self) -> ManifestId {
        ManifestId::of(&self.encode())
    }

    /// Decodes and fully validates a manifest body.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, DecodeError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(DecodeError::TooLarge {
                what: WHAT,
                len: bytes.len(),
                max: MAX_MANIFEST_BYTES,
            });
        }
        let mut d = Decoder::new(bytes);
        let m = decode_body(&mut d)?;
        expect_end(&d, WHAT)?;
        // One manifest, one byte string, one id: refuse non-shortest
        // integers and other variants a lenient decoder would let through.
        if m.encode() != bytes {
            return Err(DecodeError::invalid(WHAT, "not in canonical encoding"));
        }
        m.validate()?;
        Ok(m)
    }

    /// Checks every invariant a client relies on (see the module docs).
    pub fn validate(&self) -> Result<(), DecodeError> {
        validate_app(&self.app)?;
        validate_version(&self.version)?;
        self.params.validate()?;
        if let Some(p) = &self.entry_point {
            validate_rel_path(p)?;
            let is_file = self
                .entries
                .iter()
                .any(|e| &e.path == p && matches!(e.kind, EntryKind::File { .. }));
            if !is_file {
                return Err(DecodeError::invalid(
                    WHAT,
                    format!("entry point {p:?} is not a file of this version"),
                ));
            }
        }
        let mut dirs: HashSet<&str> = HashSet::new();
        let mut prev: Option<&str> = None;
        for entry in &self.entries {
            validate_rel_path(&entry.path)?;
            if let Some(p) = prev {
                if p.as_bytes() >= entry.path.as_bytes() {
                    return Err(DecodeError::invalid(
                        WHAT,
                        format!("paths not sorted or duplicated at {:?}", entry.path),
                    ));
                }
            }
            prev = Some(&entry.path);
            if matches!(entry.kind, EntryKind::Dir) {
                dirs.insert(&entry.path);
            }
        }
        let mut total: u64 = 0;
        for entry in &self.entries {
            if let Some(parent) = parent_of(&entry.path) {
                if !dirs.contains(parent) {
                    return Err(DecodeError::invalid(
                        WHAT,
                        format!("parent of {:?} is not a directory entry", entry.path),
                    ));
                }
            }
            match &entry.kind {
                EntryKind::File { size, chunks, .. } => {
                    let mut sum: u64 = 0;
                    for c in chunks {
                        if c.len == 0 || c.len > self.params.max {
                            return Err(DecodeError::invalid(
                                WHAT,
                                format!(
                                    "{:?}: chunk length {} outside 1..={}",
                                    entry.path, c.len, self.params.max
                                ),
                            ));
                        }
                        sum += u64::from(c.len);
                    }
                    if sum != *size {
                        return Err(DecodeError::invalid(
                            WHAT,
                            format!("{:?}: chunks add up to {sum}, size is {size}", entry.path),
                        ));
                    }
                    total = total
                        .checked_add(*size)
                        .ok_or_else(|| DecodeError::invalid(WHAT, "total size overflows"))?;
                }
                EntryKind::Symlink { target } => {
                    validate_symlink(&entry.path, target, &dirs)?;
                }
                EntryKind::Dir => {}
            }
        }
        Ok(())
    }

    /// Sum of file sizes.
    pub fn total_size(&self) -> u64 {
        self.files().map(|(_, size, _, _)| size).sum()
    }

    /// Iterates file entries as (path, size, exec, chunks).
    pub fn files(&self) -> impl Iterator<Item = (&str, u64, bool, &[ChunkRef])> {
        self.entries.iter().filter_map(|e| match &e.kind {
            EntryKind::File { exec, size, chunks } => {
                Some((e.path.as_str(), *size, *exec, chunks.as_slice()))
            }
            _ => None,
        })
    }

    /// Every distinct chunk with its length, in first-use order.
    pub fn unique_chunks(&self) -> Vec<ChunkRef> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (_, _, _, chunks) in self.files() {
            for c in chunks {
                if seen.insert(c.id) {
                    out.push(*c);
                }
            }
        }
        out
    }

    /// Number of chunk references (with repeats).
    pub fn chunk_refs(&self) -> usize {
        self.files().map(|(_, _, _, c)| c.len()).sum()
    }

    /// Entries by path.
    pub fn by_path(&self) -> HashMap<&str, &Entry> {
        self.entries.iter().map(|e| (e.path.as_str(), e)).collect()
    }
}

fn encode_entry(e: &mut Enc, entry: &Entry) {
    match &entry.kind {
        EntryKind::File { exec, size, chunks } => {
            ok(ok(ok(e.array(6)).u8(0)).str(&entry.path));
            ok(ok(e.bool(*exec)).u64(*size));
            let mut ids = Vec::with_capacity(chunks.len() * 32);
            for c in chunks {
                ids.extend_from_slice(&c.id.0);
            }
            ok(e.bytes(&ids));
            ok(e.array(chunks.len() as u64));
            for c in chunks {
                ok(e.u32(c.len));
            }
        }
        EntryKind::Dir => {
            ok(ok(ok(e.array(2)).u8(1)).str(&entry.path));
        }
        EntryKind::Symlink { target } => {
            ok(ok(ok(ok(e.array(3)).u8(2)).str(&entry.path)).str(target));
        }
    }
}

fn decode_body(d: &mut Decoder<'_>) -> Result<Manifest, DecodeError> {
    let mut r = MapReader::new(d, WHAT)?;
    let (mut format, mut app, mut version, mut params, mut created, mut entries) =
        (None, None, None, None, None, None);
    let mut entry_point = None;
    while let Some(k) = r.next_key()? {
        match k {
            0 => format = Some(r.u32()?),
            1 => app = Some(r.str()?),
            2 => version = Some(r.str()?),
            3 => {
                let n = r.d.array().map_err(|e| r.err(e))?;
                if n != Some(3) {
                    return Err(DecodeError::invalid(
                        WHAT,
                        "chunker parameters need 3 numbers",
                    ));
                }
                params = Some(ChunkerParams {
                    min: r.u32()?,
                    avg: r.u32()?,
                    max: r.u32()?,
                });
            }
            4 => created = Some(r.u64()?),
            5 => entries = Some(decode_entries(r.d)?),
            6 => entry_point = Some(r.str()?),
            other => return Err(r.unknown(other)),
        }
    }
    let format = required(format, WHAT, "format")?;
    if format != MANIFEST_FORMAT {
        return Err(DecodeError::invalid(
            WHAT,
            format!("format {format} is not supported by this build (expected {MANIFEST_FORMAT})"),
        ));
    }
    Ok(Manifest {
        app: required(app, WHAT, "app")?,
        version: required(version, WHAT, "version")?,
        params: required(params, WHAT, "chunker parameters")?,
        created_at: required(created, WHAT, "created_at")?,
        entries: required(entries, WHAT, "entries")?,
        entry_point,
    })
}

fn decode_entries(d: &mut Decoder<'_>) -> Result<Vec<Entry>, DecodeError> {
    let n = d
        .array()
        .map_err(|e| cbor_err(WHAT, e))?
        .ok_or_else(|| DecodeError::invalid(WHAT, "indefinite-length entry list"))?;
    // Each entry takes at least 4 bytes, so the input bounds the allocation.
    let cap = (n as usize).min(d.input().len() / 4);
    let mut out = Vec::with_capacity(cap);
    for _ in 0..n {
        out.push(decode_entry(d)?);
    }
    Ok(out)
}

fn decode_entry(d: &mut Decoder<'_>) -> Result<Entry, DecodeError> {
    let c = |e| cbor_err(WHAT, e);
    let len = d.array().map_err(c)?;
    let kind = d.u8().map_err(c)?;
    let path = d.str().map_err(c)?.to_owned();
    let kind = match (kind, len) {
        (0, Some(6)) => {
            let exec = d.bool().map_err(c)?;
            let size = d.u64().map_err(c)?;
            let ids = ids_from_bytes(d.bytes().map_err(c)?)?;
            let n = d
                .array()
                .map_err(c)?
                .ok_or_else(|| DecodeError::invalid(WHAT, "indefinite-length chunk lengths"))?;
            if n != ids.len() as u64 {
                return Err(DecodeError::invalid(
                    WHAT,
                    format!("{path:?}: {} chunk ids but {n} lengths", ids.len()),
                ));
            }
            let mut chunks = Vec::with_capacity(ids.len());
            for id in ids {
                chunks.push(ChunkRef {
                    id,
                    len: d.u32().map_err(c)?,
                });
            }
            EntryKind::File { exec, size, chunks }
        }
        (1, Some(2)) => EntryKind::Dir,
        (2, Some(3)) => EntryKind::Symlink {
            target: d.str().map_err(c)?.to_owned(),
        },
        (k, l) => {
            return Err(DecodeError::invalid(
                WHAT,
                format!("{path:?}: unknown entry kind {k} with {l:?} fields"),
            ))
        }
    };
    Ok(Entry { path, kind })
}

/// A symlink target must stay inside the version tree *physically*, not just
/// lexically: it is `../` repeated at most as deep as the link sits, followed
/// by components whose every intermediate step is a directory entry (never
/// another symlink, so no chain of links can climb out).
fn validate_symlink(path: &str, target: &str, dirs: &HashSet<&str>) -> Result<(), DecodeError> {
    let bad = |reason: &str| {
        Err(DecodeError::invalid(
            WHAT,
            format!("symlink {path:?} -> {target:?}: {reason}"),
        ))
    };
    if target.is_empty() || target.len() > MAX_PATH_LEN {
        return bad("empty or too long target");
    }
    if target.starts_with('/') || target.contains('\\') || target.contains(':') {
        return bad("absolute or non-portable target");
    }
    if target.chars().any(|c| c.is_control()) {
        return bad("control character in target");
    }
    let mut base: Vec<&str> = match parent_of(path) {
        Some(p) => p.split('/').collect(),
        None => Vec::new(),
    };
    let comps: Vec<&str> = target.split('/').collect();
    let mut i = 0;
    while i < comps.len() && comps[i] == ".." {
        if base.pop().is_none() {
            return bad("points outside the version");
        }
        i += 1;
    }
    let rest = &comps[i..];
    for (j, comp) in rest.iter().enumerate() {
        if comp.is_empty() || *comp == "." || *comp == ".." {
            return bad("'..' only allowed at the start; no empty or '.' components");
        }
        base.push(comp);
        if j + 1 < rest.len() && !dirs.contains(base.join("/").as_str()) {
            return bad("passes through something that is not a directory of this version");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
