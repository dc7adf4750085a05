//! The WAL directory's files around the segments: listing the segment files,
//! setting damaged ones aside into `corrupt/`, and the directory's id
//! (`wal.id`). The directory layout is drawn in the [`super`] module doc.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::error::{io_at, WalError};
use super::segment::{self, sync_dir, SegmentHeader, SegmentId, SegmentState, HEADER_LEN};
use crate::message::Timestamp;

/// File name of the WAL id.
pub(crate) const WAL_ID_FILE: &str = "wal.id";
/// Subdirectory for segments set aside.
pub(crate) const CORRUPT_DIR: &str = "corrupt";

/// A segment file found in a directory listing.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    pub(crate) id: SegmentId,
    pub(crate) state: SegmentState,
    pub(crate) path: PathBuf,
}

/// Segment files of `dir`, in segment order (`.open` before `.seg` of the
/// same number, which only a hand-made directory can hold).
pub(crate) fn list_segments(dir: &Path) -> io::Result<Vec<Listed>> {
    let mut found = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        if let Some((id, state)) = name.to_str().and_then(segment::parse_file_name) {
            found.push(Listed {
                id,
                state,
                path: e.path(),
            });
        }
    }
    found.sort_by_key(|l| (l.id, l.state == SegmentState::Sealed));
    Ok(found)
}

/// Segment files in `<dir>/corrupt/`: (path, segment number) in name order.
pub(crate) fn list_set_aside(dir: &Path) -> io::Result<Vec<(PathBuf, Option<SegmentId>)>> {
    let corrupt = dir.join(CORRUPT_DIR);
    let entries = match fs::read_dir(&corrupt) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for e in entries {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("wal-") || name.ends_with(".reason") {
            continue;
        }
        // Names are `<segment file name>` or `<segment file name>.<n>`.
        let base: String = name.split('.').take(2).collect::<Vec<_>>().join(".");
        found.push((e.path(), segment::parse_file_name(&base).map(|(id, _)| id)));
    }
    found.sort();
    Ok(found)
}

/// Moves a segment into `<dir>/corrupt/` (never overwriting), writes the
/// reason next to it, and makes both durable. Returns the new path.
pub(crate) fn set_aside_file(dir: &Path, path: &Path, reason: &str) -> io::Result<PathBuf> {
    let corrupt = dir.join(CORRUPT_DIR);
    fs::create_dir_all(&corrupt)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "segment".into());
    let mut to = corrupt.join(&name);
    let mut n = 1;
    while to.exists() {
        to = corrupt.join(format!("{name}.{n}"));
        n += 1;
    }
    fs::rename(path, &to)?;
    let mut note = to.clone().into_os_string();
    note.push(".reason");
    let mut f = File::create(&note)?;
    writeln!(
        f,
        "{}\nset aside at {} from {}",
        reason,
        Timestamp::now(),
        path.display()
    )?;
    f.sync_all()?;
    sync_dir(&corrupt)?;
    sync_dir(dir)?;
    Ok(to)
}

/// Reads `wal.id`, or creates it for a new directory. A directory that has
/// segments but lost its `wal.id` adopts the id in the newest segment header.
pub(crate) fn load_or_create_wal_id(dir: &Path) -> Result<(String, [u8; 16]), WalError> {
    let path = dir.join(WAL_ID_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let id = uuid::Uuid::try_parse(text.trim()).map_err(|e| WalError::Corrupt {
                path: path.clone(),
                offset: 0,
                reason: format!(
                    "wal.id does not hold a UUID ({e}); restore it from a backup, or from \
                     bytes 12..28 of any segment header"
                ),
            })?;
            Ok((id.simple().to_string(), *id.as_bytes()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let adopted = adopt_wal_id(dir)?;
            let id = match adopted {
                Some(bytes) => {
                    tracing::warn!(
                        dir = %dir.display(),
                        "wal.id was missing; adopted the id found in the newest segment header"
                    );
                    uuid::Uuid::from_bytes(bytes)
                }
                None => uuid::Uuid::new_v4(),
            };
            let text = id.simple().to_string();
            let tmp = dir.join("wal.id.tmp");
            (|| {
                let mut f = File::create(&tmp)?;
                writeln!(f, "{text}")?;
                f.sync_all()?;
                fs::rename(&tmp, &path)?;
                sync_dir(dir)
            })()
            .map_err(io_at(&path))?;
            Ok((text, *id.as_bytes()))
        }
        Err(e) => Err(io_at(&path)(e)),
    }
}

fn adopt_wal_id(dir: &Path) -> Result<Option<[u8; 16]>, WalError> {
    let listed = list_segments(dir).map_err(io_at(dir))?;
    for l in listed.iter().rev() {
        let mut head = [0u8; HEADER_LEN];
        let ok = File::open(&l.path).and_then(|mut f| f.read_exact(&mut head));
        if ok.is_ok() {
            if let Ok(h) = SegmentHeader::parse(&head) {
                return Ok(Some(h.wal_id));
            }
        }
    }
    Ok(None)
}
