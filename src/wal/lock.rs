//! The directory lock: one process owns a WAL directory at a time.
//!
//! `wal.lock` is locked with `flock` (fs4 `try_lock_exclusive`), which the
//! kernel releases when the process dies, so a `kill -9` leaves nothing to
//! clean up. The file holds the owner's pid, for the error a second opener gets.
//! Read-only tools (`strata wal inspect`) never take it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use fs4::fs_std::FileExt;

use super::error::WalError;

/// File name of the lock in the WAL directory.
pub(crate) const FILE_NAME: &str = "wal.lock";

/// A held directory lock; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

/// Takes the lock of `dir`.
///
/// # Errors
/// [`WalError::Locked`] naming the owner's pid when another process (or another
/// open [`super::Wal`] in this one) holds it; [`WalError::Io`] otherwise.
pub(crate) fn lock(dir: &Path) -> Result<DirLock, WalError> {
    let path = dir.join(FILE_NAME);
    let io = |source| WalError::Io {
        path: path.clone(),
        source,
    };
    // Not truncated on open: the pid in it belongs to the owner until we hold the lock.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    if !FileExt::try_lock_exclusive(&file).map_err(io)? {
        let mut pid = String::new();
        // Best effort: the owner may be rewriting it this very moment.
        let _ = file.read_to_string(&mut pid);
        let pid = pid.trim();
        return Err(WalError::Locked {
            dir: dir.to_path_buf(),
            pid: if pid.is_empty() {
                "unknown".into()
            } else {
                pid.to_string()
            },
        });
    }
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    Ok(DirLock { _file: file })
}
