//! Fault injection for tests: a [`SegmentIo`] that fails the writer's next
//! write, `fdatasync` or seal `fsync` with a chosen error, as a full or dying
//! disk would, and otherwise makes the real calls.

use std::fs::File;
use std::io::{self, IoSlice};
use std::sync::{Arc, Mutex};

use super::log::Inner;
use super::segment::{FileIo, SegmentIo};
use super::{RecoveryMode, Wal, WalError, WalOptions};

/// `ENOSPC` (Linux): no space left on device.
pub(crate) const ENOSPC: i32 = 28;
/// `EIO` (Linux): input/output error.
pub(crate) const EIO: i32 = 5;

/// The failures to inject next, each used once.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    write: Mutex<Option<i32>>,
    sync_data: Mutex<Option<i32>>,
    sync_all: Mutex<Option<i32>>,
}

impl Faults {
    /// The next write to the active segment fails with OS error `errno`.
    pub(crate) fn fail_next_write(&self, errno: i32) {
        *lock(&self.write) = Some(errno);
    }

    /// The next `fdatasync` (a group commit) fails with OS error `errno`.
    pub(crate) fn fail_next_sync(&self, errno: i32) {
        *lock(&self.sync_data) = Some(errno);
    }

    /// The next `fsync` of a segment being sealed fails with OS error `errno`.
    pub(crate) fn fail_next_seal(&self, errno: i32) {
        *lock(&self.sync_all) = Some(errno);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes the armed failure, if any, as an error.
fn injected(slot: &Mutex<Option<i32>>) -> io::Result<()> {
    match lock(slot).take() {
        Some(errno) => Err(io::Error::from_raw_os_error(errno)),
        None => Ok(()),
    }
}

/// [`FileIo`] with the failures armed in its [`Faults`].
#[derive(Debug)]
pub(crate) struct FaultyIo(Arc<Faults>);

impl SegmentIo for FaultyIo {
    fn write_vectored(&mut self, file: &mut File, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        injected(&self.0.write)?;
        FileIo.write_vectored(file, bufs)
    }

    fn sync_data(&mut self, file: &File) -> io::Result<()> {
        injected(&self.0.sync_data)?;
        FileIo.sync_data(file)
    }

    fn sync_all(&mut self, file: &File) -> io::Result<()> {
        injected(&self.0.sync_all)?;
        FileIo.sync_all(file)
    }
}

/// Opens a WAL whose writer goes through a [`FaultyIo`]; arm its failures
/// with the returned [`Faults`].
pub(crate) fn open(opts: WalOptions) -> Result<(Wal, Arc<Faults>), WalError> {
    let faults = Arc::new(Faults::default());
    let io = FaultyIo(faults.clone());
    let wal = Wal {
        inner: Inner::open(opts, RecoveryMode::default(), io)?,
    };
    Ok((wal, faults))
}
