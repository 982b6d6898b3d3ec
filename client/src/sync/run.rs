//! Verified chunks that lie back to back in one buffer. A group frame
//! decodes into consecutive chunks of (usually) one file; handing them on
//! as one run lets the writer merge those that are back to back in the file
//! too into one write: fewer system calls, and no page half-written twice
//! at every chunk boundary (ext4 zeroes the unwritten part of a new page
//! first; on pyarrow that zeroing was 4% of the sync's CPU).

use ferry_protocol::{ChunkError, ChunkId, VerifiedSlice};

/// Chunks whose BLAKE3 matched their ids, stored back to back in `data`.
/// Made only by [`VerifiedRun::single`] and [`verify_runs`], which check
/// every chunk.
pub struct VerifiedRun<'a> {
    data: &'a [u8],
    chunks: Vec<(ChunkId, u32)>,
}

impl<'a> VerifiedRun<'a> {
    /// A run of one verified chunk.
    pub fn single(c: VerifiedSlice<'a>) -> Self {
        VerifiedRun {
            data: c.data(),
            chunks: vec![(c.id(), c.data().len() as u32)],
        }
    }

    /// All the run's bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Each chunk's id, where it begins in [`data`](Self::data), and its
    /// bytes.
    pub fn pieces(&self) -> impl Iterator<Item = (ChunkId, usize, &'a [u8])> + '_ {
        let data = self.data;
        self.chunks.iter().scan(0usize, move |at, &(id, len)| {
            let start = *at;
            *at += len as usize;
            Some((id, start, &data[start..*at]))
        })
    }

    /// Chunks in the run.
    pub fn len(&self) -> usize {
        self.chunks.len()
    }
}

/// A chunk (id, length) whose bytes did not match its id, and how.
pub type Failed = ((ChunkId, u32), ChunkError);

/// Hashes each of `chunks` (ids and lengths, back to back in `buf`, which
/// they cover exactly) and splits them into maximal runs of verified
/// chunks, in order, and the chunks that failed with why.
pub fn verify_runs<'a>(
    buf: &'a [u8],
    chunks: &[(ChunkId, u32)],
) -> (Vec<VerifiedRun<'a>>, Vec<Failed>) {
    let mut runs = Vec::new();
    let mut failed = Vec::new();
    let mut run: Option<(usize, Vec<(ChunkId, u32)>)> = None;
    let mut at = 0usize;
    for &(id, len) in chunks {
        let piece = &buf[at..at + len as usize];
        match VerifiedSlice::verify(id, piece) {
            Ok(_) => run
                .get_or_insert_with(|| (at, Vec::new()))
                .1
                .push((id, len)),
            Err(e) => {
                if let Some((start, chunks)) = run.take() {
                    runs.push(VerifiedRun {
                        data: &buf[start..at],
                        chunks,
                    });
                }
                failed.push(((id, len), e));
            }
        }
        at += len as usize;
    }
    if let Some((start, chunks)) = run {
        runs.push(VerifiedRun {
            data: &buf[start..at],
            chunks,
        });
    }
    (runs, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_split_at_the_chunks_that_fail() {
        let parts: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; 100 + i as usize]).collect();
        let buf: Vec<u8> = parts.concat();
        let mut chunks: Vec<(ChunkId, u32)> = parts
            .iter()
            .map(|p| (ChunkId::of(p), p.len() as u32))
            .collect();
        // Chunks 2 and 3 carry wrong ids: runs [0, 1] and [4, 5].
        chunks[2].0 = ChunkId::of(b"x");
        chunks[3].0 = ChunkId::of(b"y");
        let (runs, failed) = verify_runs(&buf, &chunks);
        assert_eq!(failed.len(), 2);
        assert_eq!(failed[0].0, chunks[2]);
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].data(), &buf[..201]);
        assert_eq!(runs[1].len(), 2);
        let pieces: Vec<_> = runs[1]
            .pieces()
            .map(|(id, at, p)| (id, at, p.to_vec()))
            .collect();
        assert_eq!(pieces[0], (chunks[4].0, 0, parts[4].clone()));
        assert_eq!(pieces[1], (chunks[5].0, 104, parts[5].clone()));

        let (runs, failed) = verify_runs(&buf[..201], &chunks[..2]);
        assert!(failed.is_empty());
        assert_eq!((runs.len(), runs[0].len()), (1, 2));
    }
}
