//! A few open write handles of staging files. Fetched chunks arrive one
//! write each, mostly in file order; opening and closing the file around
//! every write was a twelfth of the client's CPU on pyarrow (3,600
//! chunks, 7,300 `openat`). A handful stay open, the oldest closed first,
//! so a tree of thousands of files never nears the descriptor limit.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::sync::{Arc, Mutex};

/// Handles kept: a few streams, each decoding a few groups at once, each
/// group mostly in one file.
const KEPT: usize = 16;

#[derive(Debug, Default)]
pub struct OpenFiles {
    open: Mutex<VecDeque<(usize, Arc<File>)>>,
}

impl OpenFiles {
    /// The handle of file `job`, opened with `open` if none is kept.
    pub fn get(
        &self,
        job: usize,
        open: impl FnOnce() -> io::Result<File>,
    ) -> io::Result<Arc<File>> {
        if let Some(f) = self.find(job) {
            return Ok(f);
        }
        // Opened without the lock: another thread may open it too, and the
        // first one kept wins.
        let f = Arc::new(open()?);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, kept)) = open.iter().find(|(j, _)| *j == job) {
            return Ok(kept.clone());
        }
        if open.len() == KEPT {
            open.pop_front();
        }
        open.push_back((job, f.clone()));
        Ok(f)
    }

    fn find(&self, job: usize) -> Option<Arc<File>> {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.iter().find(|(j, _)| *j == job).map(|(_, f)| f.clone())
    }

    /// Closes every kept handle (those still in use close when their user
    /// drops them).
    pub fn clear(&self) {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_few_and_reopens_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let opened = std::cell::Cell::new(0);
        let files = OpenFiles::default();
        let get = |j: usize| {
            files
                .get(j, || {
                    opened.set(opened.get() + 1);
                    File::create(dir.path().join(j.to_string()))
                })
                .unwrap()
        };
        for j in 0..KEPT {
            get(j);
        }
        get(3);
        assert_eq!(opened.get(), KEPT, "a kept handle is not opened again");
        get(KEPT);
        get(0);
        assert_eq!(opened.get(), KEPT + 2, "the oldest was closed");
        files.clear();
        get(5);
        assert_eq!(opened.get(), KEPT + 3);
    }
}
