//! Durable file-system helpers.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::ClientError;

/// Writes `data` to `path` via a temporary file, fsync and rename, then
/// fsyncs the directory: after a crash the file is either old or new.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), ClientError> {
    let dir = path
        .parent()
        .ok_or_else(|| ClientError::Internal(format!("{} has no parent", path.display())))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    ferry_failpoint::io("client.write_atomic").map_err(|e| ClientError::io(&tmp, e))?;
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| ClientError::io(&tmp, e))?;
        f.write_all(data).map_err(|e| ClientError::io(&tmp, e))?;
        f.sync_all().map_err(|e| ClientError::io(&tmp, e))?;
    }
    ferry_failpoint::hit("client.write_atomic.before_rename");
    fs::rename(&tmp, path).map_err(|e| ClientError::io(path, e))?;
    fsync_dir(dir)
}

/// Fsyncs a directory so renames and creations in it are durable.
pub fn fsync_dir(dir: &Path) -> Result<(), ClientError> {
    let f = File::open(dir).map_err(|e| ClientError::io(dir, e))?;
    f.sync_all().map_err(|e| ClientError::io(dir, e))
}
