//! Sequence assignment and duplicate detection, with no I/O.
//!
//! A message's archive identity is `(station, seq)`, and a broker redelivers
//! after a crash, so the WAL keeps, per station, the set of sequences that are
//! durable and the set that are in flight (accepted, not yet fsynced). A batch
//! is planned against both: drafts without a sequence get the station's next
//! one, drafts whose sequence is already taken are dropped as duplicates.
//! Sets are stored as coalesced ranges, so a station archived without gaps
//! costs one range however many messages it has.

use std::collections::{BTreeMap, HashMap};

use crate::message::{Draft, Message, Seq, StationName};

/// A set of sequence numbers stored as disjoint, non-adjacent inclusive ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SeqSet {
    /// start → end (inclusive); ranges never overlap or touch.
    ranges: BTreeMap<u64, u64>,
}

impl SeqSet {
    /// Whether `seq` is in the set.
    pub(crate) fn contains(&self, seq: u64) -> bool {
        self.ranges
            .range(..=seq)
            .next_back()
            .is_some_and(|(_, &end)| end >= seq)
    }

    /// Adds one sequence.
    pub(crate) fn insert(&mut self, seq: u64) {
        self.insert_range(seq, seq);
    }

    /// Adds `start..=end`, merging with overlapping or adjacent ranges.
    pub(crate) fn insert_range(&mut self, start: u64, end: u64) {
        debug_assert!(start <= end);
        // The common case, sequences taken in order: the last range grows.
        if let Some(mut last) = self.ranges.last_entry() {
            if *last.key() <= start && last.get().saturating_add(1) >= start {
                let e = last.get_mut();
                *e = (*e).max(end);
                return;
            }
        }
        let (mut start, mut end) = (start, end);
        if let Some((&s, &e)) = self.ranges.range(..=start).next_back() {
            if e.saturating_add(1) >= start {
                start = s;
                end = end.max(e);
                self.ranges.remove(&s);
            }
        }
        while let Some((&s, &e)) = self.ranges.range(start..).next() {
            if s > end.saturating_add(1) {
                break;
            }
            end = end.max(e);
            self.ranges.remove(&s);
        }
        self.ranges.insert(start, end);
    }

    /// Removes `start..=end`, splitting ranges as needed.
    pub(crate) fn remove_range(&mut self, start: u64, end: u64) {
        debug_assert!(start <= end);
        // The range that may begin before `start` and reach into it.
        if let Some((&s, &e)) = self.ranges.range(..start).next_back() {
            if e >= start {
                self.ranges.insert(s, start - 1);
                if e > end {
                    self.ranges.insert(end + 1, e);
                    return;
                }
            }
        }
        while let Some((&s, &e)) = self.ranges.range(start..).next() {
            if s > end {
                break;
            }
            self.ranges.remove(&s);
            if e > end {
                self.ranges.insert(end + 1, e);
                break;
            }
        }
    }

    /// Adds every sequence of `other`.
    pub(crate) fn extend(&mut self, other: &SeqSet) {
        for (s, e) in other.ranges() {
            self.insert_range(s, e);
        }
    }

    /// Removes every sequence of `other`.
    pub(crate) fn subtract(&mut self, other: &SeqSet) {
        for (s, e) in other.ranges() {
            self.remove_range(s, e);
        }
    }

    /// The smallest sequence.
    pub(crate) fn min(&self) -> Option<u64> {
        self.ranges.keys().next().copied()
    }

    /// The largest sequence.
    pub(crate) fn max(&self) -> Option<u64> {
        self.ranges.values().next_back().copied()
    }

    /// Whether the set is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The ranges in ascending order, as inclusive `(start, end)` pairs.
    pub(crate) fn ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().map(|(&s, &e)| (s, e))
    }

    /// Number of ranges.
    pub(crate) fn range_count(&self) -> usize {
        self.ranges.len()
    }
}

/// Per-station sequence state.
#[derive(Debug, Clone, Default)]
struct StationSeqs {
    durable: SeqSet,
    in_flight: SeqSet,
}

/// The outcome of planning one batch against the sequencer.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Accepted messages, in batch order, with their sequences.
    pub(crate) messages: Vec<Message>,
    /// Drafts dropped as duplicates.
    pub(crate) duplicates: usize,
    /// Whether a dropped duplicate is still in flight: the caller must then not
    /// be answered before that earlier batch is durable.
    pub(crate) waits_for_in_flight: bool,
    /// Accepted sequences per station (to reserve, then commit or release).
    pub(crate) reserved: Reserved,
    /// Per station, in order of first appearance: (station, first, last) accepted seq.
    pub(crate) ranges: Vec<(StationName, u64, u64)>,
}

/// Sequences held by one batch while it is in flight.
pub(crate) type Reserved = Vec<(StationName, SeqSet)>;

/// Why a batch cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PlanError {
    /// A given or assigned sequence is above [`MAX_SEQ`].
    SeqOutOfRange(u64),
}

/// Durable and in-flight sequences of every station.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sequencer {
    stations: HashMap<StationName, StationSeqs>,
}

impl Sequencer {
    /// Plans `drafts`: assigns missing sequences and drops duplicates of what is
    /// durable, in flight or earlier in the same batch. Changes nothing; call
    /// [`Sequencer::reserve`] with the plan's `reserved` to hold its sequences.
    pub(crate) fn plan(&self, drafts: Vec<Draft>) -> Result<Plan, PlanError> {
        if let Some(seq) = drafts
            .iter()
            .filter_map(|d| d.seq)
            .find(|&s| Seq::new(s).is_err())
        {
            return Err(PlanError::SeqOutOfRange(seq));
        }
        // Per station in this batch: its slot (sequences taken by this batch,
        // highest sequence taken so far: durable, in flight or in this batch).
        let mut index: HashMap<StationName, usize> = HashMap::new();
        let mut slots: Vec<(StationName, SeqSet, Option<u64>)> = Vec::new();
        let mut messages = Vec::with_capacity(drafts.len());
        let mut duplicates = 0;
        let mut waits_for_in_flight = false;
        // The previous draft's station and slot: a batch is mostly one
        // station's messages in a row, looked up once instead of per message.
        let mut last: Option<(usize, Option<&StationSeqs>)> = None;
        for draft in drafts {
            let (idx, known) = match last.filter(|&(idx, _)| slots[idx].0 == draft.station) {
                Some(found) => found,
                None => {
                    let known = self.stations.get(&draft.station);
                    let idx = match index.get(&draft.station) {
                        Some(&idx) => idx,
                        None => {
                            let highest =
                                known.and_then(|k| k.durable.max().max(k.in_flight.max()));
                            slots.push((draft.station.clone(), SeqSet::default(), highest));
                            index.insert(draft.station.clone(), slots.len() - 1);
                            slots.len() - 1
                        }
                    };
                    (idx, known)
                }
            };
            last = Some((idx, known));
            let (_, taken_here, highest) = &mut slots[idx];
            let seq = match draft.seq {
                Some(seq) => seq,
                None => match *highest {
                    None => 1,
                    Some(h) => match Seq::new(h).and_then(|h| h.checked_add(1)) {
                        Ok(next) => next.get(),
                        Err(_) => return Err(PlanError::SeqOutOfRange(h.saturating_add(1))),
                    },
                },
            };
            if taken_here.contains(seq) || known.is_some_and(|k| k.durable.contains(seq)) {
                duplicates += 1;
                continue;
            }
            if known.is_some_and(|k| k.in_flight.contains(seq)) {
                duplicates += 1;
                waits_for_in_flight = true;
                continue;
            }
            taken_here.insert(seq);
            *highest = Some(highest.map_or(seq, |h| h.max(seq)));
            messages.push(draft.into_message(seq));
        }
        let reserved: Reserved = slots
            .into_iter()
            .filter(|(_, set, _)| !set.is_empty())
            .map(|(station, set, _)| (station, set))
            .collect();
        let ranges = reserved
            .iter()
            .filter_map(|(st, set)| Some((st.clone(), set.min()?, set.max()?)))
            .collect();
        Ok(Plan {
            messages,
            duplicates,
            waits_for_in_flight,
            reserved,
            ranges,
        })
    }

    /// Marks a planned batch's sequences as in flight.
    pub(crate) fn reserve(&mut self, reserved: &Reserved) {
        for (station, set) in reserved {
            self.stations
                .entry(station.clone())
                .or_default()
                .in_flight
                .extend(set);
        }
    }

    /// A reserved batch is durable: its sequences move to the durable set.
    pub(crate) fn commit(&mut self, reserved: &Reserved) {
        for (station, set) in reserved {
            let s = self.stations.entry(station.clone()).or_default();
            s.in_flight.subtract(set);
            s.durable.extend(set);
        }
    }

    /// A reserved batch failed: its sequences are free again.
    pub(crate) fn release(&mut self, reserved: &Reserved) {
        for (station, set) in reserved {
            if let Some(s) = self.stations.get_mut(station) {
                s.in_flight.subtract(set);
            }
        }
    }

    /// Records durable sequences found on disk (recovery, snapshots).
    pub(crate) fn add_durable(&mut self, station: &StationName, set: &SeqSet) {
        self.stations
            .entry(station.clone())
            .or_default()
            .durable
            .extend(set);
    }

    /// Records one durable sequence found on disk.
    pub(crate) fn add_durable_seq(&mut self, station: &StationName, seq: u64) {
        match self.stations.get_mut(station) {
            Some(s) => s.durable.insert(seq),
            None => {
                let mut s = StationSeqs::default();
                s.durable.insert(seq);
                self.stations.insert(station.clone(), s);
            }
        }
    }

    /// The highest durable sequence of `station`.
    /// Whether `seq` of `station` is durable or in flight.
    pub(crate) fn holds(&self, station: &StationName, seq: u64) -> bool {
        self.stations
            .get(station)
            .is_some_and(|s| s.durable.contains(seq) || s.in_flight.contains(seq))
    }

    /// The highest seq of `station`, durable or in flight.
    pub(crate) fn highest(&self, station: &StationName) -> Option<u64> {
        self.stations
            .get(station)
            .and_then(|s| s.durable.max().max(s.in_flight.max()))
    }

    pub(crate) fn last_durable(&self, station: &StationName) -> Option<u64> {
        self.stations.get(station).and_then(|s| s.durable.max())
    }

    /// Every station's durable set, sorted by station name.
    pub(crate) fn durable(&self) -> Vec<(&StationName, &SeqSet)> {
        let mut v: Vec<_> = self
            .stations
            .iter()
            .filter(|(_, s)| !s.durable.is_empty())
            .map(|(n, s)| (n, &s.durable))
            .collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Timestamp;
    use crate::message::MAX_SEQ;
    use bytes::Bytes;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn st(name: &str) -> StationName {
        StationName::new(name).unwrap()
    }

    fn draft(station: &str, seq: Option<u64>) -> Draft {
        Draft {
            station: st(station),
            seq,
            timestamp: Timestamp(0),
            id: None,
            subject: None,
            headers: vec![],
            payload: Bytes::new(),
        }
    }

    fn seqs(plan: &Plan) -> Vec<u64> {
        plan.messages.iter().map(|m| m.seq).collect()
    }

    #[derive(Debug, Clone)]
    enum SetOp {
        Insert(u64, u64),
        Remove(u64, u64),
    }

    proptest! {
        #[test]
        fn seq_set_matches_a_plain_set(ops in proptest::collection::vec(
            (any::<bool>(), 0u64..60, 0u64..6).prop_map(|(ins, a, len)| if ins {
                SetOp::Insert(a, a + len)
            } else {
                SetOp::Remove(a, a + len)
            }), 0..40))
        {
            let mut set = SeqSet::default();
            let mut model = BTreeSet::new();
            for op in ops {
                match op {
                    SetOp::Insert(a, b) => { set.insert_range(a, b); model.extend(a..=b); }
                    SetOp::Remove(a, b) => { set.remove_range(a, b); for s in a..=b { model.remove(&s); } }
                }
                for s in 0..70 {
                    prop_assert_eq!(set.contains(s), model.contains(&s), "seq {}", s);
                }
                // Coalesced: ranges never touch.
                let ranges: Vec<_> = set.ranges().collect();
                for w in ranges.windows(2) {
                    prop_assert!(w[0].1 + 1 < w[1].0, "{:?}", ranges);
                }
                prop_assert_eq!(set.max(), model.iter().next_back().copied());
                prop_assert_eq!(set.min(), model.iter().next().copied());
            }
        }
    }

    #[test]
    fn contiguous_sequences_are_one_range() {
        let mut s = SeqSet::default();
        for seq in (1..=1000).rev() {
            s.insert(seq);
        }
        assert_eq!(s.range_count(), 1);
        assert_eq!(s.ranges().collect::<Vec<_>>(), vec![(1, 1000)]);
        // In order (the last range grows), with a gap and a repeat.
        let mut s = SeqSet::default();
        for seq in (1..=500).chain(502..=1000).chain([1000, 7]) {
            s.insert(seq);
        }
        assert_eq!(s.ranges().collect::<Vec<_>>(), vec![(1, 500), (502, 1000)]);
    }

    #[test]
    fn missing_sequences_continue_after_the_highest() {
        let mut q = Sequencer::default();
        let p = q
            .plan(vec![draft("a", None), draft("a", None), draft("b", None)])
            .unwrap();
        assert_eq!(seqs(&p), vec![1, 2, 1]);
        assert_eq!(p.ranges, vec![(st("a"), 1, 2), (st("b"), 1, 1)]);
        q.reserve(&p.reserved);
        // In flight counts: the next batch continues at 3 even before commit.
        let p2 = q
            .plan(vec![draft("a", Some(10)), draft("a", None)])
            .unwrap();
        assert_eq!(seqs(&p2), vec![10, 11]);
        q.commit(&p.reserved);
        assert_eq!(q.last_durable(&st("a")), Some(2));
    }

    #[test]
    fn duplicates_of_durable_in_flight_and_same_batch_are_dropped() {
        let mut q = Sequencer::default();
        let p = q
            .plan(vec![draft("a", Some(1)), draft("a", Some(2))])
            .unwrap();
        q.reserve(&p.reserved);
        q.commit(&p.reserved);
        let p = q.plan(vec![draft("a", Some(3))]).unwrap();
        q.reserve(&p.reserved);
        let p = q
            .plan(vec![
                draft("a", Some(1)), // durable
                draft("a", Some(3)), // in flight
                draft("a", Some(4)),
                draft("a", Some(4)), // earlier in this batch
                draft("b", Some(1)), // other station: not a duplicate
            ])
            .unwrap();
        assert_eq!(seqs(&p), vec![4, 1]);
        assert_eq!(p.duplicates, 3);
        assert!(p.waits_for_in_flight);
    }

    #[test]
    fn released_sequences_are_free_again() {
        let mut q = Sequencer::default();
        let p = q.plan(vec![draft("a", Some(5))]).unwrap();
        q.reserve(&p.reserved);
        q.release(&p.reserved);
        let p = q.plan(vec![draft("a", Some(5))]).unwrap();
        assert_eq!(p.duplicates, 0);
        assert_eq!(q.last_durable(&st("a")), None);
    }

    #[test]
    fn sequences_above_max_seq_are_refused_before_anything_else() {
        let q = Sequencer::default();
        assert_eq!(
            q.plan(vec![draft("a", None), draft("a", Some(MAX_SEQ + 1))])
                .unwrap_err(),
            PlanError::SeqOutOfRange(MAX_SEQ + 1)
        );
        let mut q = Sequencer::default();
        q.add_durable_seq(&st("a"), MAX_SEQ);
        assert_eq!(
            q.plan(vec![draft("a", None)]).unwrap_err(),
            PlanError::SeqOutOfRange(MAX_SEQ + 1)
        );
    }
}
