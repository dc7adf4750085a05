//! The cluster's ownership table as `strata status --nats URL` prints it,
//! from one reading of the lease bucket. Pure.

use serde::Serialize;

use super::bucket::{Entry, Holder};
use super::keys::Key;

/// The whole cluster at one reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table {
    /// The lease bucket.
    pub bucket: String,
    /// The lease in seconds.
    pub lease_seconds: u64,
    /// Live members.
    pub members: Vec<Holder>,
    /// Each owned station and its owner, by station name.
    pub stations: Vec<Owned>,
    /// Stations whose rows a member is uploading right now.
    pub uploads: Vec<Owned>,
}

/// A station and who holds its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owned {
    /// The station.
    pub station: String,
    /// Who holds it.
    #[serde(flatten)]
    pub holder: Holder,
}

impl Table {
    /// The table of `entries`.
    pub fn new(bucket: &str, lease_seconds: u64, entries: &[Entry]) -> Table {
        let mut t = Table {
            bucket: bucket.to_string(),
            lease_seconds,
            members: Vec::new(),
            stations: Vec::new(),
            uploads: Vec::new(),
        };
        for e in entries {
            match &e.key {
                Key::Member(_) => t.members.push(e.holder.clone()),
                Key::Station(s) => t.stations.push(Owned {
                    station: s.as_str().to_string(),
                    holder: e.holder.clone(),
                }),
                Key::Upload(s) => t.uploads.push(Owned {
                    station: s.as_str().to_string(),
                    holder: e.holder.clone(),
                }),
            }
        }
        t.members.sort_by(|a, b| a.owner.cmp(&b.owner));
        t.stations.sort_by(|a, b| a.station.cmp(&b.station));
        t.uploads.sort_by(|a, b| a.station.cmp(&b.station));
        t
    }

    /// Text for a terminal: members, then one line per station.
    pub fn render(&self) -> String {
        let mut out = format!(
            "cluster {} (lease {} s): {} member(s), {} station(s) owned\n",
            self.bucket,
            self.lease_seconds,
            self.members.len(),
            self.stations.len()
        );
        out += "MEMBER                            HOST                 PID      HTTP                   STATIONS\n";
        for m in &self.members {
            let n = self
                .stations
                .iter()
                .filter(|s| s.holder.owner == m.owner)
                .count();
            out += &format!(
                "{:<33} {:<20} {:<8} {:<22} {}\n",
                m.owner,
                m.host,
                m.pid,
                m.http.as_deref().unwrap_or("-"),
                n
            );
        }
        out += "STATION                           OWNER                             SINCE\n";
        for s in &self.stations {
            out += &format!(
                "{:<33} {:<33} {}\n",
                s.station, s.holder.owner, s.holder.since
            );
        }
        for u in &self.uploads {
            out += &format!("uploading now: {} by {}\n", u.station, u.holder.owner);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::StationName;

    fn holder(owner: &str) -> Holder {
        Holder {
            owner: owner.into(),
            host: "h".into(),
            pid: 7,
            http: Some("127.0.0.1:8080".into()),
            since: "2026-11-24T10:00:00Z".into(),
        }
    }

    #[test]
    fn stations_are_listed_with_their_owner_and_members_with_their_count() {
        let st = |n: &str| StationName::new(n).expect("valid");
        let entries = vec![
            Entry {
                key: Key::Station(st("b")),
                holder: holder("m1"),
                revision: 3,
            },
            Entry {
                key: Key::Member("m1".into()),
                holder: holder("m1"),
                revision: 1,
            },
            Entry {
                key: Key::Station(st("a")),
                holder: holder("m1"),
                revision: 2,
            },
            Entry {
                key: Key::Upload(st("a")),
                holder: holder("m1"),
                revision: 4,
            },
        ];
        let t = Table::new("strata_leases_strata", 15, &entries);
        assert_eq!(t.stations[0].station, "a");
        let text = t.render();
        assert!(text.contains("1 member(s), 2 station(s) owned"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("m1") && l.trim_end().ends_with('2')),
            "{text}"
        );
        assert!(text.contains("uploading now: a by m1"), "{text}");
        let json = serde_json::to_value(&t).expect("json");
        assert_eq!(json["stations"][1]["owner"], "m1");
        assert_eq!(json["stations"][1]["station"], "b");
    }
}
