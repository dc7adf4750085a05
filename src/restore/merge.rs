//! Merging files into one stream in strictly ascending seq.
//!
//! Files are taken in order of their first seq (from the key). A file is opened
//! only when its first seq is not above the smallest seq the open files offer,
//! so files whose ranges do not overlap are read one after another, and files
//! that do overlap (messages whose timestamps put them in a later hour) are
//! merged k-way. Memory is bounded by the overlap depth, never the station.
//! One file beyond those in use is started early, so its first row group is
//! fetched and decoded while the current one is consumed.
//!
//! The same seq twice (a file uploaded twice under different keys) is delivered
//! once; a file whose rows go backwards is refused, since the order could not
//! be trusted.

use std::collections::VecDeque;

use futures::StreamExt;

use crate::message::Message;

use super::read::Chunks;
use super::RestoreError;

/// A file not yet opened.
struct Pending {
    first_seq: u64,
    index: usize,
    started: Option<Chunks>,
}

/// An open file: its next message and the rest of its current chunk.
struct Cursor {
    head: Message,
    rest: std::vec::IntoIter<Message>,
    chunks: Chunks,
}

/// Merges files (see the module doc); `start(i)` begins reading file `i`.
pub struct Merge<F> {
    pending: VecDeque<Pending>,
    open: Vec<Cursor>,
    start: F,
    last: Option<u64>,
    duplicates: u64,
}

impl<F> std::fmt::Debug for Merge<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Merge")
            .field("pending", &self.pending.len())
            .field("open", &self.open.len())
            .field("last", &self.last)
            .field("duplicates", &self.duplicates)
            .finish()
    }
}

impl<F: FnMut(usize) -> Chunks> Merge<F> {
    /// A merge over files with these first seqs (ascending), started by `start`.
    pub fn new(first_seqs: impl IntoIterator<Item = u64>, start: F) -> Self {
        let pending: VecDeque<Pending> = first_seqs
            .into_iter()
            .enumerate()
            .map(|(index, first_seq)| Pending {
                first_seq,
                index,
                started: None,
            })
            .collect();
        debug_assert!(pending
            .iter()
            .zip(pending.iter().skip(1))
            .all(|(a, b)| a.first_seq <= b.first_seq));
        let mut merge = Self {
            pending,
            open: Vec::new(),
            start,
            last: None,
            duplicates: 0,
        };
        merge.prefetch();
        merge
    }

    /// Messages seen twice and delivered once.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Starts the next pending file early.
    fn prefetch(&mut self) {
        if let Some(p) = self.pending.front_mut() {
            if p.started.is_none() {
                p.started = Some((self.start)(p.index));
            }
        }
    }

    /// Opens the next pending file; it joins the open set if it has messages.
    async fn open_next(&mut self) -> Result<(), RestoreError> {
        let Some(p) = self.pending.pop_front() else {
            return Ok(());
        };
        let chunks = match p.started {
            Some(c) => c,
            None => (self.start)(p.index),
        };
        self.prefetch();
        if let Some(cursor) = first_message(chunks).await? {
            self.open.push(cursor);
        }
        Ok(())
    }

    /// The next message in seq order, `None` at the end.
    ///
    /// # Errors
    /// A reading error of any file, or [`RestoreError::OutOfOrder`].
    pub async fn next(&mut self) -> Result<Option<Message>, RestoreError> {
        loop {
            let min = self
                .open
                .iter()
                .enumerate()
                .min_by_key(|(_, c)| c.head.seq)
                .map(|(i, c)| (i, c.head.seq));
            let open_first = match (min, self.pending.front()) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some((_, seq)), Some(p)) => p.first_seq <= seq,
            };
            if open_first {
                self.open_next().await?;
                continue;
            }
            let Some((i, _)) = min else {
                return Ok(None);
            };
            let msg = self.advance(i).await?;
            match self.last {
                Some(last) if msg.seq == last => self.duplicates += 1,
                Some(last) if msg.seq < last => {
                    return Err(RestoreError::OutOfOrder {
                        seq: msg.seq,
                        after: last,
                    })
                }
                _ => {
                    self.last = Some(msg.seq);
                    return Ok(Some(msg));
                }
            }
        }
    }

    /// Takes the head of open file `i` and moves it to its next message.
    async fn advance(&mut self, i: usize) -> Result<Message, RestoreError> {
        let cursor = &mut self.open[i];
        let next = match cursor.rest.next() {
            Some(m) => Some(m),
            None => loop {
                match cursor.chunks.next().await {
                    Some(Ok(chunk)) => {
                        cursor.rest = chunk.into_iter();
                        if let Some(m) = cursor.rest.next() {
                            break Some(m);
                        }
                    }
                    Some(Err(e)) => return Err(e),
                    None => break None,
                }
            },
        };
        match next {
            Some(m) => {
                if m.seq < cursor.head.seq {
                    return Err(RestoreError::OutOfOrder {
                        seq: m.seq,
                        after: cursor.head.seq,
                    });
                }
                Ok(std::mem::replace(&mut cursor.head, m))
            }
            None => Ok(self.open.swap_remove(i).head),
        }
    }
}

async fn first_message(mut chunks: Chunks) -> Result<Option<Cursor>, RestoreError> {
    while let Some(chunk) = chunks.next().await {
        let mut rest = chunk?.into_iter();
        if let Some(head) = rest.next() {
            return Ok(Some(Cursor { head, rest, chunks }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn msg(seq: u64) -> Message {
        Message::for_test(seq, seq.to_string())
    }

    /// Files as lists of chunks of seqs; returns the merged seqs and the
    /// duplicates count.
    async fn run(files: Vec<Vec<Vec<u64>>>) -> Result<(Vec<u64>, u64), RestoreError> {
        let firsts: Vec<u64> = files
            .iter()
            .map(|f| f.iter().flatten().next().copied().unwrap_or(0))
            .collect();
        let files = Arc::new(files);
        let f2 = Arc::clone(&files);
        let mut merge = Merge::new(firsts, move |i| {
            let chunks: Vec<Result<Vec<Message>, RestoreError>> = f2[i]
                .iter()
                .map(|c| Ok(c.iter().copied().map(msg).collect()))
                .collect();
            futures::stream::iter(chunks).boxed()
        });
        let mut out = Vec::new();
        while let Some(m) = merge.next().await? {
            out.push(m.seq);
        }
        Ok((out, merge.duplicates()))
    }

    #[tokio::test]
    async fn disjoint_files_stream_in_order() {
        let (seqs, dups) = run(vec![
            vec![vec![1, 2], vec![3]],
            vec![vec![4, 5, 6]],
            vec![vec![], vec![7]],
        ])
        .await
        .unwrap();
        assert_eq!(seqs, [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(dups, 0);
    }

    #[tokio::test]
    async fn interleaved_files_merge_k_way() {
        // Hour 10 holds 1..=10 except 4 and 8, whose timestamps fell in hour 11.
        let (seqs, _) = run(vec![
            vec![vec![1, 2, 3], vec![5, 6, 7, 9, 10]],
            vec![vec![4, 8]],
            vec![vec![11, 12]],
        ])
        .await
        .unwrap();
        assert_eq!(seqs, (1..=12).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_seq_seen_twice_is_delivered_once() {
        let (seqs, dups) = run(vec![vec![vec![1, 2, 3]], vec![vec![3, 4]]])
            .await
            .unwrap();
        assert_eq!(seqs, [1, 2, 3, 4]);
        assert_eq!(dups, 1);
    }

    #[tokio::test]
    async fn a_file_going_backwards_is_refused() {
        let e = run(vec![vec![vec![5, 6], vec![2]]]).await.unwrap_err();
        assert!(matches!(e, RestoreError::OutOfOrder { seq: 2, after: 6 }));
    }

    #[tokio::test]
    async fn empty_input_ends_at_once() {
        assert_eq!(run(vec![]).await.unwrap().0, Vec::<u64>::new());
        assert_eq!(
            run(vec![vec![], vec![vec![]]]).await.unwrap().0,
            Vec::<u64>::new()
        );
    }

    #[tokio::test]
    async fn holds_only_overlapping_files_open() {
        // 50 disjoint files: at most the one being read plus one prefetched
        // may have started while the previous ones are done.
        let started = Arc::new(Mutex::new(Vec::<usize>::new()));
        let s2 = Arc::clone(&started);
        let n = 50u64;
        let mut merge = Merge::new((0..n).map(|i| i * 10), move |i| {
            s2.lock().unwrap().push(i);
            let base = i as u64 * 10;
            futures::stream::iter(vec![Ok((base..base + 10).map(msg).collect())]).boxed()
        });
        let mut count = 0;
        while let Some(m) = merge.next().await.unwrap() {
            let reading = (m.seq / 10) as usize;
            let most = *started.lock().unwrap().iter().max().unwrap();
            assert!(
                most <= reading + 1,
                "file {most} started while at {reading}"
            );
            count += 1;
        }
        assert_eq!(count, 500);
    }
}
