//! Carrying out one planned merge: read the group's files, merge their rows
//! in seq order (a seq present twice is kept once), encode them exactly as
//! the first tier does (same encoder, zstd level, row groups and statistics:
//! [`crate::columnar`]) and upload the result under the group's deterministic
//! key with the first tier's uploader ([`crate::compactor::upload`]), so a
//! rerun rewrites the same object.
//!
//! Files that follow one another in seq order (the usual case) are streamed:
//! memory holds one file's messages and one row group. Files whose spans
//! overlap are merged in memory, at most `[tier2] target_file_bytes` of
//! compressed Parquet.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use crate::columnar::{
    decode_file, encode_file_on_threads, FileEncoder, FileSummary, ParquetOptions, Selection,
};
use crate::compactor::upload::{ObjectUpload, UploadOptions};
use crate::layout::{CommittedFile, DataKey};
use crate::message::{Message, Timestamp};
use crate::store::Archive;

use super::plan::Group;
use super::Tier2Error;

/// Files of a group read at once.
const READ_CONCURRENCY: usize = 4;
/// Threads encoding the merged file's row groups.
const ENCODE_THREADS: usize = 2;
/// Bytes handed to the uploader at a time, so a large file goes up in parts
/// while the rest waits.
const UPLOAD_CHUNK: usize = 1 << 20;

/// One merged file, uploaded.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The merged file, as its replacement record names it.
    pub merged: CommittedFile,
    /// The files it replaces, in seq order, as the record names them.
    pub replaced: Vec<CommittedFile>,
    /// Rows dropped because their seq was in two of the files.
    pub duplicates: u64,
}

/// Reads, merges, encodes and uploads `group`; see the module doc.
///
/// # Errors
/// [`Tier2Error::Store`] when a read or the upload fails,
/// [`Tier2Error::Encode`] when a file cannot be decoded or the result encoded,
/// [`Tier2Error::Mismatch`] when the files do not hold what their keys say.
pub async fn merge_group(
    archive: &Archive,
    group: &Group,
    parquet: &ParquetOptions,
    upload: UploadOptions,
) -> Result<Merged, Tier2Error> {
    let mut up = ObjectUpload::new(archive.clone(), group.merged.path(), upload);
    let result = if disjoint(&group.files) {
        stream_group(archive, group, parquet, &mut up).await
    } else {
        merge_in_memory(archive, group, parquet, &mut up).await
    };
    let (summary, replaced, duplicates) = match result {
        Ok(r) => r,
        Err(e) => {
            up.abort().await;
            return Err(e);
        }
    };
    let done = up.finish().await.map_err(Tier2Error::store)?;
    let key = &group.merged;
    let object = archive.key(&key.path());
    Ok(Merged {
        merged: CommittedFile::new(&object, key, &summary, done.bytes, hex::encode(done.sha256)),
        replaced,
        duplicates,
    })
}

/// What encoding a group came to: the merged file's summary, the replaced
/// files as the record names them, and the duplicate rows dropped.
type Encoded = (FileSummary, Vec<CommittedFile>, u64);

/// Files one after another in seq order, none overlapping the next (the
/// usual case: consecutive segments): each is decoded and appended to the
/// merged file in turn, so memory holds one file's messages and one row group,
/// whatever the group's size. The next file is fetched while one is encoded.
async fn stream_group(
    archive: &Archive,
    group: &Group,
    parquet: &ParquetOptions,
    up: &mut ObjectUpload,
) -> Result<Encoded, Tier2Error> {
    let key = &group.merged;
    let encode_err = |source| Tier2Error::Encode {
        key: archive.key(&key.path()).to_string(),
        source,
    };
    let mut encoder =
        FileEncoder::new(&key.station, key.first_seq, key.last_seq, parquet).map_err(encode_err)?;
    let mut replaced = Vec::with_capacity(group.files.len());
    let owned = archive.clone();
    let mut files = futures::stream::iter(group.files.clone())
        .map(move |key| read_file(owned.clone(), key))
        .buffered(2);
    while let Some(read) = files.next().await {
        let (file, messages) = read?;
        replaced.push(file);
        let (back, bytes) = blocking(move || {
            let written = encoder.write(&messages);
            let bytes = encoder.take_bytes();
            (encoder, written.map(|()| bytes))
        })
        .await?;
        encoder = back;
        send(up, bytes.map_err(encode_err)?).await?;
    }
    let (rest, summary) = blocking(move || encoder.finish())
        .await?
        .map_err(encode_err)?;
    send(up, rest).await?;
    Ok((summary, replaced, 0))
}

/// Overlapping files (duplicates, or a file whose span holds another's
/// seqs): every message is read, merged in seq order and encoded at once.
async fn merge_in_memory(
    archive: &Archive,
    group: &Group,
    parquet: &ParquetOptions,
    up: &mut ObjectUpload,
) -> Result<Encoded, Tier2Error> {
    let owned = archive.clone();
    let read: Vec<(CommittedFile, Vec<Message>)> = futures::stream::iter(group.files.clone())
        .map(move |key| read_file(owned.clone(), key))
        .buffered(READ_CONCURRENCY)
        .try_collect()
        .await?;
    let (replaced, files): (Vec<CommittedFile>, Vec<Vec<Message>>) = read.into_iter().unzip();
    let (messages, duplicates) = merge_in_seq_order(files);
    let key = &group.merged;
    let (first, last) = match (messages.first(), messages.last()) {
        (Some(f), Some(l)) => (f.seq, l.seq),
        _ => return Err(mismatch(key, "the files hold no rows")),
    };
    if (first, last) != (key.first_seq, key.last_seq) {
        return Err(mismatch(
            key,
            &format!("the files hold seqs {first}-{last}, not what their keys span"),
        ));
    }
    let station = key.station.clone();
    let opts = parquet.clone();
    let (bytes, summary) =
        blocking(move || encode_file_on_threads(&station, &messages, &opts, ENCODE_THREADS))
            .await?
            .map_err(|source| Tier2Error::Encode {
                key: archive.key(&key.path()).to_string(),
                source,
            })?;
    send(up, bytes).await?;
    Ok((summary, replaced, duplicates))
}

/// Hands `bytes` to the upload in chunks, so a large file goes up in parts.
async fn send(up: &mut ObjectUpload, mut bytes: Bytes) -> Result<(), Tier2Error> {
    while !bytes.is_empty() {
        let chunk = bytes.split_to(bytes.len().min(UPLOAD_CHUNK));
        up.write(chunk).await.map_err(Tier2Error::store)?;
    }
    Ok(())
}

/// Runs CPU work (decoding, encoding) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Tier2Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Tier2Error::Internal(format!("an encoding thread failed: {e}")))
}

/// Whether each file's seqs all come after the previous file's (keys in
/// group order).
fn disjoint(files: &[DataKey]) -> bool {
    files.windows(2).all(|w| w[0].last_seq < w[1].first_seq)
}

/// Reads and decodes one file of a group; describes it as a record names it.
async fn read_file(
    archive: Archive,
    key: DataKey,
) -> Result<(CommittedFile, Vec<Message>), Tier2Error> {
    let path = key.path();
    let bytes = archive.get(&path).await.map_err(Tier2Error::store)?;
    let object = archive.key(&path);
    let station = key.station.clone();
    let decoded = bytes.clone();
    let messages = blocking(move || decode_file(&station, decoded, &Selection::all()))
        .await?
        .map_err(|source| Tier2Error::Encode {
            key: object.to_string(),
            source,
        })?;
    let summary = summarize(&messages).ok_or_else(|| mismatch(&key, "the file holds no rows"))?;
    let sha: [u8; 32] = Sha256::digest(&bytes).into();
    let file = CommittedFile::new(&object, &key, &summary, len(&bytes), hex::encode(sha));
    Ok((file, messages))
}

fn len(b: &Bytes) -> u64 {
    b.len() as u64
}

/// Rows, seq and time bounds of a file's messages (ascending seq).
fn summarize(msgs: &[Message]) -> Option<FileSummary> {
    Some(FileSummary {
        rows: msgs.len() as u64,
        first_seq: msgs.first()?.seq,
        last_seq: msgs.last()?.seq,
        min_timestamp: msgs.iter().map(|m| m.timestamp).min()?,
        max_timestamp: msgs
            .iter()
            .map(|m| m.timestamp)
            .max()
            .unwrap_or(Timestamp(0)),
    })
}

fn mismatch(key: &DataKey, why: &str) -> Tier2Error {
    Tier2Error::Mismatch {
        merged: key.path().to_string(),
        reason: why.to_string(),
    }
}

/// The files' messages in ascending seq, each seq once (the first file that
/// holds it wins), and how many rows were dropped as duplicates. Pure.
pub fn merge_in_seq_order(files: Vec<Vec<Message>>) -> (Vec<Message>, u64) {
    let mut all: Vec<Message> = files.into_iter().flatten().collect();
    let total = all.len();
    // Stable: among equal seqs the earlier file's row stays first.
    all.sort_by_key(|m| m.seq);
    all.dedup_by_key(|m| m.seq);
    let duplicates = (total - all.len()) as u64;
    (all, duplicates)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::message::StationName;

    fn msg(seq: u64, tag: &str) -> Message {
        Message {
            station: StationName::new("s").unwrap(),
            seq,
            timestamp: Timestamp(seq as i64),
            id: None,
            subject: None,
            headers: Vec::new(),
            payload: Bytes::from(tag.to_string()),
        }
    }

    #[test]
    fn only_files_in_strict_seq_order_are_streamed() {
        let key = |first, last| DataKey {
            station: StationName::new("s").unwrap(),
            hour: crate::layout::Hour::MIN,
            first_seq: first,
            last_seq: last,
        };
        assert!(disjoint(&[key(1, 5), key(6, 9), key(20, 30)]));
        assert!(!disjoint(&[key(1, 5), key(5, 9)]));
        assert!(!disjoint(&[key(1, 9), key(3, 4)]));
        assert!(disjoint(&[]));
    }

    #[test]
    fn merges_in_seq_order_and_keeps_the_first_copy() {
        let (out, dups) = merge_in_seq_order(vec![
            vec![msg(1, "a"), msg(3, "a")],
            vec![msg(2, "b"), msg(3, "b"), msg(4, "b")],
        ]);
        let seqs: Vec<u64> = out.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
        assert_eq!(out[2].payload, Bytes::from("a"));
        assert_eq!(dups, 1);
        assert_eq!(
            summarize(&out).map(|s| (s.rows, s.first_seq, s.last_seq)),
            Some((4, 1, 4))
        );
        assert!(summarize(&[]).is_none());
    }

    /// Stores each of `files` (seqs) as a data file; returns the group.
    async fn stored_group(archive: &Archive, files: &[&[u64]], opts: &ParquetOptions) -> Group {
        let mut keys = Vec::new();
        for seqs in files {
            let msgs: Vec<Message> = seqs.iter().map(|&s| msg(s, "x")).collect();
            let station = StationName::new("s").unwrap();
            let (bytes, _) = crate::columnar::encode_file(&station, &msgs, opts).unwrap();
            let key = DataKey {
                station,
                hour: crate::layout::Hour::of(Timestamp(0)),
                first_seq: seqs[0],
                last_seq: *seqs.last().unwrap(),
            };
            archive.put(&key.path(), bytes.into()).await.unwrap();
            keys.push(key);
        }
        let first = keys.iter().map(|k| k.first_seq).min().unwrap();
        let last = keys.iter().map(|k| k.last_seq).max().unwrap();
        Group {
            merged: DataKey {
                first_seq: first,
                last_seq: last,
                ..keys[0].clone()
            },
            files: keys,
            bytes: 0,
        }
    }

    #[tokio::test]
    async fn the_merged_file_is_what_the_first_tier_would_write_for_its_rows() {
        let archive = Archive::from_store(
            std::sync::Arc::new(object_store::memory::InMemory::new()),
            object_store::path::Path::default(),
            "memory://",
        );
        // Small row groups, so they cross the files' boundaries.
        let opts = ParquetOptions {
            row_group_rows: 3,
            ..ParquetOptions::default()
        };
        let upload = UploadOptions {
            multipart_threshold: 1 << 20,
            part_size: 5 << 20,
            max_concurrency: 2,
        };
        let expected = |seqs: std::ops::RangeInclusive<u64>| {
            let all: Vec<Message> = seqs.map(|s| msg(s, "x")).collect();
            crate::columnar::encode_file(&StationName::new("s").unwrap(), &all, &opts)
                .unwrap()
                .0
        };
        // Streamed: files in seq order.
        let group = stored_group(&archive, &[&[1, 2], &[3, 4, 5, 6], &[7]], &opts).await;
        let merged = merge_group(&archive, &group, &opts, upload).await.unwrap();
        let stored = archive.get(&group.merged.path()).await.unwrap();
        assert_eq!(stored, expected(1..=7));
        assert_eq!((merged.merged.rows, merged.duplicates), (7, 0));
        assert_eq!(merged.replaced.len(), 3);
        assert_eq!(merged.replaced[1].rows, 4);

        // In memory: overlapping files, seq 12 twice.
        let group = stored_group(&archive, &[&[10, 12], &[11, 12, 13]], &opts).await;
        let merged = merge_group(&archive, &group, &opts, upload).await.unwrap();
        let stored = archive.get(&group.merged.path()).await.unwrap();
        assert_eq!(stored, expected(10..=13));
        assert_eq!((merged.merged.rows, merged.duplicates), (4, 1));
    }

    proptest! {
        #[test]
        fn every_seq_once_ascending(files in prop::collection::vec(prop::collection::btree_set(0u64..100, 0..20), 0..6)) {
            let want: std::collections::BTreeSet<u64> = files.iter().flatten().copied().collect();
            let total: usize = files.iter().map(|f| f.len()).sum();
            let input = files.iter().map(|f| f.iter().map(|&s| msg(s, "x")).collect()).collect();
            let (out, dups) = merge_in_seq_order(input);
            let got: Vec<u64> = out.iter().map(|m| m.seq).collect();
            prop_assert_eq!(got, want.iter().copied().collect::<Vec<_>>());
            prop_assert_eq!(dups as usize, total - want.len());
        }
    }
}
