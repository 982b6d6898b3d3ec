//! Cut points and chunk hashing over a streamed file.

use std::io::{self, Read};

use fastcdc::v2020::{cut, select_masks, Normalization};
use ferry_protocol::{ChunkId, ChunkRef, ChunkerParams};
use rayon::prelude::*;

use crate::error::ScanError;

/// Smallest read window; the window is also at least twice the max chunk,
/// so each window holds many chunks to hash in parallel.
pub const WINDOW_MIN: usize = 4 * 1024 * 1024;

/// A configured FastCDC v2020 chunker (normalization level 1).
#[derive(Debug, Clone, Copy)]
pub struct Chunker {
    params: ChunkerParams,
    mask_s: u64,
    mask_l: u64,
}

impl Chunker {
    /// Validates the parameters (fastcdc only `debug_assert`s them).
    pub fn new(params: ChunkerParams) -> Result<Self, ScanError> {
        params
            .validate()
            .map_err(|e| ScanError::Params(e.to_string()))?;
        let (mask_s, mask_l) = select_masks(params.avg as usize, Normalization::Level1);
        Ok(Chunker {
            params,
            mask_s,
            mask_l,
        })
    }

    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// Length of the next chunk at the start of `data`. `data` must hold at
    /// least `max` bytes unless it is the end of the input.
    #[inline]
    pub fn next_cut(&self, data: &[u8]) -> usize {
        let (_, len) = cut(
            data,
            self.params.min as usize,
            self.params.avg as usize,
            self.params.max as usize,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
        );
        len
    }

    /// Chunk lengths of a whole in-memory buffer (the reference the streaming
    /// path is tested against, and what benches of cut points use).
    pub fn cut_lengths(&self, data: &[u8]) -> Vec<u32> {
        let mut out = Vec::with_capacity(data.len() / self.params.avg as usize + 1);
        let mut pos = 0;
        while pos < data.len() {
            let len = self.next_cut(&data[pos..]);
            out.push(len as u32);
            pos += len;
        }
        out
    }

    /// Chunks and hashes a whole in-memory buffer.
    pub fn chunk_bytes(&self, data: &[u8]) -> Vec<ChunkRef> {
        let lens = self.cut_lengths(data);
        hash_lengths(data, &lens)
    }

    fn window(&self) -> usize {
        WINDOW_MIN.max(2 * self.params.max as usize)
    }

    /// Chunks and hashes everything `reader` yields, holding at most one
    /// window in memory. Hashing of the chunks of a window runs in parallel.
    pub fn chunk_reader<R: Read>(&self, mut reader: R) -> io::Result<Vec<ChunkRef>> {
        let window = self.window();
        let max = self.params.max as usize;
        let mut buf = vec![0u8; window];
        let mut filled = 0;
        let mut eof = false;
        let mut out = Vec::new();
        loop {
            while !eof && filled < window {
                match reader.read(&mut buf[filled..]) {
                    Ok(0) => eof = true,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            // Cut while a full max-size look-ahead is available (or at EOF).
            let mut pos = 0;
            let mut lens = Vec::new();
            while pos < filled && (eof || filled - pos >= max) {
                let len = self.next_cut(&buf[pos..filled]);
                lens.push(len as u32);
                pos += len;
            }
            out.extend(hash_lengths(&buf[..pos], &lens));
            if eof && pos == filled {
                return Ok(out);
            }
            buf.copy_within(pos..filled, 0);
            filled -= pos;
        }
    }
}

/// Hashes consecutive chunks of the given lengths, in parallel.
pub fn hash_lengths(data: &[u8], lens: &[u32]) -> Vec<ChunkRef> {
    let mut slices = Vec::with_capacity(lens.len());
    let mut pos = 0;
    for &len in lens {
        slices.push(&data[pos..pos + len as usize]);
        pos += len as usize;
    }
    slices
        .par_iter()
        .with_min_len(4)
        .map(|s| ChunkRef {
            id: ChunkId::of(s),
            len: s.len() as u32,
        })
        .collect()
}
