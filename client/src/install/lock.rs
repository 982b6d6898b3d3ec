//! One ferry process per install directory, via `flock`.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;

use super::Layout;
use crate::error::ClientError;

/// Held while a command works on an install directory; released on drop
/// (and by the kernel if the process dies).
pub struct InstallLock {
    _file: File,
}

impl InstallLock {
    pub fn acquire(layout: &Layout) -> Result<InstallLock, ClientError> {
        let path = layout.lock_file();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| ClientError::io(&path, e))?;
        // SAFETY: flock on a valid, owned file descriptor.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(ClientError::install(
                    &layout.root,
                    "another ferry process is working on this install directory",
                ));
            }
            return Err(ClientError::io(&path, err));
        }
        Ok(InstallLock { _file: file })
    }
}
