//! Starting the write-back of staging files early. A build ends with an
//! fsync of every file it wrote; left alone, the kernel holds all of that
//! data dirty until then (its own flush starts only after 30 s or when
//! memory runs short), so the fsyncs wait for the whole version to reach
//! the disk while the cores sit idle. Asking for write-out as soon as a
//! file is written (or every few MiB of a large one) overlaps the device's
//! work with the decoding and writing still to come, and the final fsyncs
//! find most pages clean. Durability is unchanged: only the fsync counts.

use std::fs::File;

/// Fetched bytes of one file between two write-out requests.
pub const STEP: u64 = 4 << 20;

/// Asks the kernel to start writing `f`'s dirty pages, without waiting
/// for them. A hint: failures are ignored (the fsync reports real ones).
pub fn start(f: &File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain syscall on an open descriptor; offset 0 and
        // length 0 mean the whole file.
        unsafe {
            libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = f;
}

/// Whether adding `len` fetched bytes to a file that had `before` crosses
/// a multiple of [`STEP`].
pub fn crosses_step(before: u64, len: u64) -> bool {
    before / STEP != (before + len) / STEP
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps() {
        assert!(!crosses_step(0, 100));
        assert!(crosses_step(STEP - 1, 1));
        assert!(!crosses_step(STEP, STEP - 1));
        assert!(crosses_step(STEP, STEP));
    }

    #[test]
    fn start_is_harmless_on_any_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"data").unwrap();
        start(&File::open(&p).unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"data");
    }
}
