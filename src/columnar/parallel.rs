//! Row groups encoded on several threads and handed out in order.
//!
//! Thread `t` of `n` encodes jobs `t`, `t + n`, `t + 2n`, … and hands each result
//! over a rendezvous channel, so the caller receives them in job order and at most
//! one finished row group per thread waits besides the ones being encoded. What
//! the caller builds from them (a file's bytes) is the same whatever the number of
//! threads.

use std::ops::ControlFlow;
use std::sync::mpsc;

use bytes::Bytes;

use super::encode::{row_group_ends, EncodedRowGroup, FileEncoder, FileSummary, RowGroupEncoder};
use super::{ColumnarError, ParquetOptions};
use crate::message::{Message, StationName};

/// One row group to encode: messages of one file of `station`.
#[derive(Debug, Clone, Copy)]
pub struct RowGroupJob<'a> {
    /// The station of the file the row group belongs to.
    pub station: &'a StationName,
    /// The row group's messages, ascending by seq.
    pub msgs: &'a [Message],
}

/// Encodes `jobs` with `encoder` on `threads` threads (1: on the calling thread)
/// and hands each row group, in job order, to `consume` on the calling thread,
/// until `consume` breaks.
///
/// # Errors
/// The first encoding error, in job order, or the first error of `consume`;
/// nothing is handed out after it.
///
/// # Panics
/// When an encoding thread panics.
pub fn encode_in_order<E>(
    encoder: &RowGroupEncoder,
    jobs: &[RowGroupJob<'_>],
    threads: usize,
    consume: impl FnMut(usize, EncodedRowGroup) -> Result<ControlFlow<()>, E>,
) -> Result<(), E>
where
    E: From<ColumnarError> + Send,
{
    encode_each_in_order(
        jobs,
        threads,
        |job| Ok(encoder.encode(job.station, job.msgs)?),
        consume,
    )
}

/// Runs `encode` on each of `jobs` on `threads` threads (1: on the calling
/// thread) and hands each row group, in job order, to `consume` on the calling
/// thread, until `consume` breaks. `encode` may load the job's messages
/// itself: each thread then holds only the jobs it is encoding.
///
/// # Errors
/// The first error of `encode`, in job order, or the first error of
/// `consume`; nothing is handed out after it.
///
/// # Panics
/// When an encoding thread panics.
pub fn encode_each_in_order<J, E>(
    jobs: &[J],
    threads: usize,
    encode: impl Fn(&J) -> Result<EncodedRowGroup, E> + Sync,
    mut consume: impl FnMut(usize, EncodedRowGroup) -> Result<ControlFlow<()>, E>,
) -> Result<(), E>
where
    J: Sync,
    E: Send,
{
    let threads = threads.clamp(1, jobs.len().max(1));
    if threads == 1 {
        for (i, job) in jobs.iter().enumerate() {
            let group = encode(job)?;
            if consume(i, group)?.is_break() {
                break;
            }
        }
        return Ok(());
    }
    let encode = &encode;
    std::thread::scope(|scope| {
        let mut receivers = Vec::with_capacity(threads);
        for t in 0..threads {
            let (tx, rx) = mpsc::sync_channel::<Result<EncodedRowGroup, E>>(0);
            receivers.push(rx);
            std::thread::Builder::new()
                .name(format!("strata-encode-{t}"))
                .spawn_scoped(scope, move || {
                    for job in jobs.iter().skip(t).step_by(threads) {
                        let encoded = encode(job);
                        let failed = encoded.is_err();
                        // The receiver is gone once the caller stopped.
                        if tx.send(encoded).is_err() || failed {
                            break;
                        }
                    }
                })
                .expect("cannot start an encoding thread");
        }
        // Returning drops the receivers, which stops threads still encoding at
        // their next send; the scope then waits for them.
        hand_out(receivers, jobs.len(), &mut consume)
    })
}

/// Receives the results of `jobs` jobs in order from the threads' `receivers`.
fn hand_out<E>(
    receivers: Vec<mpsc::Receiver<Result<EncodedRowGroup, E>>>,
    jobs: usize,
    consume: &mut impl FnMut(usize, EncodedRowGroup) -> Result<ControlFlow<()>, E>,
) -> Result<(), E> {
    for i in 0..jobs {
        let Ok(encoded) = receivers[i % receivers.len()].recv() else {
            // The thread is gone without an answer: it panicked, and the scope
            // re-raises that panic.
            return Ok(());
        };
        if consume(i, encoded?)?.is_break() {
            break;
        }
    }
    Ok(())
}

/// Encodes a whole file in memory as [`super::encode_file`] does, with its row
/// groups encoded on `threads` threads: the bytes are the same.
///
/// # Errors
/// As [`super::encode_file`].
pub fn encode_file_on_threads(
    station: &StationName,
    msgs: &[Message],
    opts: &ParquetOptions,
    threads: usize,
) -> Result<(Bytes, FileSummary), ColumnarError> {
    let (Some(first), Some(last)) = (msgs.first(), msgs.last()) else {
        return Err(ColumnarError::Empty);
    };
    let mut file = FileEncoder::new(station, first.seq, last.seq.max(first.seq), opts)?;
    let mut jobs = Vec::new();
    let mut start = 0;
    for end in row_group_ends(msgs, opts) {
        jobs.push(RowGroupJob {
            station,
            msgs: &msgs[start..end],
        });
        start = end;
    }
    let encoder = RowGroupEncoder::new(opts)?;
    let mut parts = Vec::new();
    encode_in_order(&encoder, &jobs, threads, |_, group| {
        file.append(group)?;
        parts.push(file.take_bytes());
        Ok::<_, ColumnarError>(ControlFlow::Continue(()))
    })?;
    let (tail, summary) = file.finish()?;
    parts.push(tail);
    if parts.len() == 1 {
        return Ok((parts.remove(0), summary));
    }
    Ok((Bytes::from(parts.concat()), summary))
}
