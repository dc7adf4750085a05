//! Which stations a member should take or release, from one reading of the
//! bucket. Pure, so the balancing rule is tested without a server.
//!
//! With `S` stations and `N` live members (sorted by id), the member of rank
//! `r` should own `S / N` stations, plus one when `r < S mod N`: the targets
//! add up to exactly `S`, so a newcomer always gets a share and a lone member
//! owns everything. A member above its target releases the excess (the
//! stations last in name order); one below takes free stations (no key in
//! the bucket), starting at a rank-dependent offset so that members do not
//! all race for the same one.

use std::collections::{BTreeMap, BTreeSet};

use crate::message::StationName;

/// One reading of the bucket, as the planning needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// Every station to archive.
    pub stations: BTreeSet<StationName>,
    /// Ids of the live members (their member keys), this one included.
    pub members: BTreeSet<String>,
    /// Station → the member id its lease names.
    pub owners: BTreeMap<StationName, String>,
}

/// What a member should do after a reading.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Moves {
    /// Free stations to try to take (with `create`).
    pub take: Vec<StationName>,
    /// Own stations to release (stop the worker, then delete the key).
    pub release: Vec<StationName>,
}

/// How many stations member `me` should own.
pub fn target(view: &View, me: &str) -> usize {
    let mut members = view.members.clone();
    members.insert(me.to_string());
    let n = members.len();
    let s = view.stations.len();
    let rank = members.iter().position(|m| m == me).unwrap_or(0);
    s / n + usize::from(rank < s % n)
}

/// The moves of member `me`: release its stations that are no longer
/// archived at all, then the excess over its target; take free stations up
/// to its target.
pub fn plan(view: &View, me: &str) -> Moves {
    let mut moves = Moves::default();
    let mine: Vec<&StationName> = view
        .owners
        .iter()
        .filter(|(_, owner)| owner.as_str() == me)
        .map(|(s, _)| s)
        .collect();
    let (kept, gone): (Vec<&StationName>, Vec<&StationName>) =
        mine.into_iter().partition(|s| view.stations.contains(*s));
    moves.release.extend(gone.into_iter().cloned());
    let target = target(view, me);
    if kept.len() > target {
        moves
            .release
            .extend(kept[target..].iter().map(|s| (*s).clone()));
    } else {
        let free: Vec<&StationName> = view
            .stations
            .iter()
            .filter(|s| !view.owners.contains_key(*s))
            .collect();
        if !free.is_empty() {
            let mut members = view.members.clone();
            members.insert(me.to_string());
            let rank = members.iter().position(|m| m == me).unwrap_or(0);
            let start = rank * free.len() / members.len();
            moves.take.extend(
                free.iter()
                    .cycle()
                    .skip(start)
                    .take(free.len().min(target - kept.len()))
                    .map(|s| (*s).clone()),
            );
        }
    }
    moves
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn st(n: usize) -> BTreeSet<StationName> {
        (0..n)
            .map(|i| StationName::new(format!("s{i}")).expect("valid"))
            .collect()
    }

    fn view(stations: usize, members: &[&str]) -> View {
        View {
            stations: st(stations),
            members: members.iter().map(|m| m.to_string()).collect(),
            owners: BTreeMap::new(),
        }
    }

    #[test]
    fn targets_add_up_and_a_newcomer_gets_a_share() {
        let v = view(4, &["a", "b", "c"]);
        let t: Vec<usize> = ["a", "b", "c"].iter().map(|m| target(&v, m)).collect();
        assert_eq!(t, vec![2, 1, 1]);
        assert_eq!(target(&view(4, &[]), "a"), 4, "a lone member owns all");
        assert_eq!(target(&view(8, &["a", "b"]), "b"), 4);
    }

    #[test]
    fn a_member_above_its_target_releases_the_excess() {
        let mut v = view(4, &["a", "b"]);
        for s in st(4) {
            v.owners.insert(s, "a".into());
        }
        let m = plan(&v, "a");
        assert_eq!(m.release.len(), 2);
        assert!(m.take.is_empty());
        // b waits until they are free.
        assert_eq!(plan(&v, "b"), Moves::default());
    }

    #[test]
    fn stations_no_longer_archived_are_released() {
        let mut v = view(1, &["a"]);
        v.owners
            .insert(StationName::new("gone").expect("valid"), "a".into());
        let m = plan(&v, "a");
        assert_eq!(m.release, vec![StationName::new("gone").expect("valid")]);
        assert_eq!(m.take, vec![StationName::new("s0").expect("valid")]);
    }

    /// Runs rounds of every member in turn (takes always succeed on a free
    /// station, releases free it) and returns the final owners.
    fn settle(stations: usize, members: &[&str]) -> BTreeMap<StationName, String> {
        let mut v = view(stations, members);
        for _ in 0..10 {
            for m in members {
                let moves = plan(&v, m);
                for s in moves.release {
                    v.owners.remove(&s);
                }
                for s in moves.take {
                    v.owners.entry(s).or_insert_with(|| m.to_string());
                }
            }
        }
        v.owners
    }

    proptest! {
        #[test]
        fn rounds_settle_on_one_owner_per_station_and_even_shares(stations in 0usize..20, n in 1usize..6) {
            let names: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
            let members: Vec<&str> = names.iter().map(String::as_str).collect();
            let owners = settle(stations, &members);
            prop_assert_eq!(owners.len(), stations, "every station owned");
            for m in &members {
                let count = owners.values().filter(|o| o == m).count();
                prop_assert!(count == stations / n || count == stations / n + 1, "{} owns {}", m, count);
            }
        }
    }
}
