//! The member's loop: every third of the lease it renews its member key and
//! its station leases, reads the bucket, and takes or releases stations
//! ([`super::share`]). Workers are started and stopped through a
//! [`StationRunner`]; each gets the [`Lease`] it must check.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde::Serialize;
use tokio::sync::watch;

use super::bucket::{Bucket, Cas, Entry, Holder};
use super::keys::{bucket_stream, Key};
use super::lease::{Lease, LeaseTiming};
use super::share::{self, View};
use crate::message::StationName;
use crate::metrics::Metrics;

/// How often `stations = ["*"]` lists the server's streams.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(30);

/// Starts and stops the archiving of single stations.
#[async_trait::async_trait]
pub trait StationRunner: Send {
    /// Starts archiving `station` under `lease`.
    fn start(&mut self, station: StationName, lease: Lease);
    /// Stops archiving `station`: returns once its worker has finished the
    /// batch in flight (appended and acknowledged) and ended.
    async fn stop(&mut self, station: &StationName);
    /// Stops every station at once (shutdown).
    async fn stop_all(&mut self);
}

/// Which stations the cluster archives.
#[derive(Debug, Clone)]
pub enum StationList {
    /// These.
    Listed(Vec<StationName>),
    /// Every stream of the server but the lease bucket's own.
    All,
}

/// What this member holds, for `GET /v1/status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MemberStatus {
    /// This member's id (its WAL id).
    pub member: String,
    /// The lease bucket.
    pub bucket: String,
    /// The lease in seconds.
    pub lease_seconds: f64,
    /// Live members seen at the last reading of the bucket.
    pub members: usize,
    /// Stations this member owns now.
    pub owned: Vec<String>,
}

/// Shared, read by the status endpoint.
pub type SharedStatus = Arc<RwLock<MemberStatus>>;

struct Held {
    revision: u64,
    lease: Lease,
}

/// One member of the cluster; see the module doc.
pub struct Coordinator {
    bucket: Bucket,
    js: async_nats::jetstream::Context,
    timing: LeaseTiming,
    me: Holder,
    member_rev: Option<u64>,
    owned: BTreeMap<StationName, Held>,
    stations: StationList,
    known: BTreeSet<StationName>,
    discovered_at: Option<Instant>,
    metrics: Arc<Metrics>,
    status: SharedStatus,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("bucket", &self.bucket)
            .field("member", &self.me.owner)
            .finish()
    }
}

impl Coordinator {
    /// A member named `me` of the cluster of `bucket`.
    pub fn new(
        bucket: Bucket,
        js: async_nats::jetstream::Context,
        me: Holder,
        stations: StationList,
        metrics: Arc<Metrics>,
        status: SharedStatus,
    ) -> Self {
        let timing = LeaseTiming::new(bucket.lease());
        if let Ok(mut s) = status.write() {
            s.member = me.owner.clone();
            s.bucket = bucket.name().to_string();
            s.lease_seconds = timing.lease.as_secs_f64();
        }
        Self {
            bucket,
            js,
            timing,
            me,
            member_rev: None,
            owned: BTreeMap::new(),
            stations,
            known: BTreeSet::new(),
            discovered_at: None,
            metrics,
            status,
        }
    }

    /// Runs rounds until `shutdown`, then stops every worker and gives the
    /// keys back so the other members take the stations at once.
    pub async fn run(
        mut self,
        runner: &mut dyn StationRunner,
        mut shutdown: watch::Receiver<bool>,
    ) {
        tracing::info!(
            bucket = %self.bucket.name(), member = %self.me.owner,
            lease = ?self.timing.lease, "joining the cluster of Strata processes sharing this NATS consumer"
        );
        loop {
            if *shutdown.borrow() {
                break;
            }
            let next = Instant::now() + self.timing.renew_every();
            // A round waits on NATS; shutdown must not wait for it. A round cut
            // short is what a crash leaves: a key taken but not yet recorded
            // lapses after its lease, and `stop_all` below stops every worker.
            tokio::select! {
                () = self.round(runner) => {}
                r = shutdown.wait_for(|s| *s) => { let _ = r; break; }
            }
            tokio::select! {
                () = tokio::time::sleep_until(next.into()) => {}
                r = shutdown.wait_for(|s| *s) => { let _ = r; break; }
            }
        }
        runner.stop_all().await;
        let owned: Vec<StationName> = self.owned.keys().cloned().collect();
        for station in owned {
            self.release(runner, &station, "shutting down").await;
        }
        if let Some(rev) = self.member_rev.take() {
            let _ = self
                .bucket
                .delete(&Key::Member(self.me.owner.clone()), rev)
                .await;
        }
        self.publish_status(0);
    }

    /// One round: renew, read, balance.
    async fn round(&mut self, runner: &mut dyn StationRunner) {
        self.renew_member().await;
        self.renew_stations(runner).await;
        self.drop_lapsed(runner).await;
        let entries = match self.bucket.entries().await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the lease bucket; keeping what is held");
                return;
            }
        };
        self.discover().await;
        let view = self.view(&entries);
        // Keys naming this member that it does not hold: a previous run of
        // this WAL (dead: this process holds the WAL's lock) or a lease that
        // lapsed while NATS was unreachable. Taken back with their revision.
        let stale: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.holder.owner == self.me.owner)
            .filter(|e| matches!(&e.key, Key::Station(s) if !self.owned.contains_key(s)))
            .collect();
        for e in stale {
            if let Key::Station(station) = &e.key {
                self.take(runner, station, Some(e.revision)).await;
            }
        }
        let moves = share::plan(&view, &self.me.owner);
        for station in &moves.release {
            if self.owned.contains_key(station) {
                self.release(runner, station, "balancing").await;
            } else if let Some(e) = entries
                .iter()
                .find(|e| e.key == Key::Station(station.clone()))
            {
                let _ = self.bucket.delete(&e.key, e.revision).await;
            }
        }
        for station in &moves.take {
            self.take(runner, station, None).await;
        }
        self.publish_status(view.members.len());
    }

    async fn renew_member(&mut self) {
        let key = Key::Member(self.me.owner.clone());
        let result = match self.member_rev {
            Some(rev) => self.bucket.update(&key, &self.me, rev).await,
            None => self.bucket.create(&key, &self.me).await,
        };
        match result {
            Ok(Cas::Written(rev)) => self.member_rev = Some(rev),
            Ok(Cas::Conflict) => {
                // Our own key from a previous run, or a renewal whose answer
                // was lost: take whatever revision it has now.
                self.member_rev = match self.bucket.entry(&key).await {
                    Ok(Some(e)) if e.holder.owner == self.me.owner => {
                        match self.bucket.update(&key, &self.me, e.revision).await {
                            Ok(Cas::Written(rev)) => Some(rev),
                            _ => None,
                        }
                    }
                    _ => None,
                };
            }
            Err(e) => tracing::warn!(error = %e, "cannot renew this process's member key"),
        }
    }

    async fn renew_stations(&mut self, runner: &mut dyn StationRunner) {
        let stations: Vec<StationName> = self.owned.keys().cloned().collect();
        for station in stations {
            let key = Key::Station(station.clone());
            let Some(held) = self.owned.get(&station) else {
                continue;
            };
            let sent = Instant::now();
            match self.bucket.update(&key, &self.me, held.revision).await {
                Ok(Cas::Written(rev)) => {
                    if let Some(h) = self.owned.get_mut(&station) {
                        h.revision = rev;
                        h.lease.extend(self.timing.deadline(sent));
                    }
                }
                Ok(Cas::Conflict) => {
                    // Ours still (an answer lost) or someone else's now.
                    match self.bucket.entry(&key).await {
                        Ok(Some(e)) if e.holder.owner == self.me.owner => {
                            if let Some(h) = self.owned.get_mut(&station) {
                                h.revision = e.revision;
                            }
                        }
                        Ok(_) => {
                            self.lose(runner, &station, "another process holds its lease now")
                                .await
                        }
                        Err(e) => {
                            tracing::warn!(station = %station, error = %e, "cannot check a lease after a conflicting renewal")
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(station = %station, error = %e, "renewing a station lease failed; archiving it stops at the lease's deadline unless a renewal succeeds");
                }
            }
        }
    }

    /// Stops the workers whose lease passed its deadline (their own check
    /// already stopped fetching and appending).
    async fn drop_lapsed(&mut self, runner: &mut dyn StationRunner) {
        let lapsed: Vec<StationName> = self
            .owned
            .iter()
            .filter(|(_, h)| !h.lease.held())
            .map(|(s, _)| s.clone())
            .collect();
        for station in lapsed {
            self.lose(runner, &station, "its lease could not be renewed in time")
                .await;
        }
    }

    async fn lose(&mut self, runner: &mut dyn StationRunner, station: &StationName, why: &str) {
        if let Some(h) = self.owned.remove(station) {
            let until = wall_time(h.lease.deadline().min(Instant::now()));
            h.lease.revoke();
            self.metrics.inc_cluster_lease_loss();
            tracing::warn!(station = %station, reason = why, held_until = %until,
                "lost the station's lease: stopped fetching and appending it");
            runner.stop(station).await;
        }
    }

    async fn release(&mut self, runner: &mut dyn StationRunner, station: &StationName, why: &str) {
        // The worker finishes its batch in flight first: only then may the
        // key go, and another member start.
        runner.stop(station).await;
        if let Some(h) = self.owned.remove(station) {
            let until = wall_time(h.lease.deadline().min(Instant::now()));
            h.lease.revoke();
            if let Err(e) = self
                .bucket
                .delete(&Key::Station(station.clone()), h.revision)
                .await
            {
                tracing::warn!(station = %station, error = %e, "cannot release the lease; it expires by itself");
            }
            tracing::info!(station = %station, reason = why, held_until = %until, "released the station");
        }
    }

    async fn take(
        &mut self,
        runner: &mut dyn StationRunner,
        station: &StationName,
        stale: Option<u64>,
    ) {
        let key = Key::Station(station.clone());
        let mut holder = self.me.clone();
        holder.since = crate::message::Timestamp::now().to_rfc3339();
        let sent = Instant::now();
        let result = match stale {
            Some(rev) => self.bucket.update(&key, &holder, rev).await,
            None => self.bucket.create(&key, &holder).await,
        };
        match result {
            Ok(Cas::Written(revision)) => {
                let lease = Lease::until(self.timing.deadline(sent));
                tracing::info!(station = %station, member = %self.me.owner, "took the station's lease");
                self.owned.insert(
                    station.clone(),
                    Held {
                        revision,
                        lease: lease.clone(),
                    },
                );
                runner.start(station.clone(), lease);
            }
            Ok(Cas::Conflict) => {}
            Err(e) => tracing::warn!(station = %station, error = %e, "cannot take a free station"),
        }
    }

    async fn discover(&mut self) {
        match &self.stations {
            StationList::Listed(list) => self.known = list.iter().cloned().collect(),
            StationList::All => {
                if self
                    .discovered_at
                    .is_some_and(|t| t.elapsed() < DISCOVERY_INTERVAL)
                {
                    return;
                }
                let own = bucket_stream(self.bucket.name());
                let mut names = self.js.stream_names();
                let mut found = BTreeSet::new();
                while let Some(name) = names.next().await {
                    match name {
                        Ok(name) if name == own => {}
                        Ok(name) => {
                            if let Ok(s) = StationName::new(name.as_str()) {
                                found.insert(s);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "listing NATS streams failed; retrying");
                            return;
                        }
                    }
                }
                self.known = found;
                self.discovered_at = Some(Instant::now());
            }
        }
    }

    fn view(&self, entries: &[Entry]) -> View {
        let mut view = View {
            stations: self.known.clone(),
            ..View::default()
        };
        view.members.insert(self.me.owner.clone());
        for e in entries {
            match &e.key {
                Key::Member(id) => {
                    view.members.insert(id.clone());
                }
                Key::Station(s) => {
                    view.owners.insert(s.clone(), e.holder.owner.clone());
                }
                Key::Upload(_) => {}
            }
        }
        // What this member holds, whatever the reading said.
        for s in self.owned.keys() {
            view.owners.insert(s.clone(), self.me.owner.clone());
        }
        view
    }

    fn publish_status(&self, members: usize) {
        self.metrics
            .set_cluster_stations_owned(self.owned.len() as u64);
        if let Ok(mut s) = self.status.write() {
            s.members = members;
            s.owned = self.owned.keys().map(|s| s.as_str().to_string()).collect();
        }
    }
}

/// `at` on the wall clock (RFC 3339, microseconds), for logs that other
/// processes' logs are compared with.
fn wall_time(at: Instant) -> String {
    let now = Instant::now();
    let wall = if at <= now {
        std::time::SystemTime::now() - (now - at)
    } else {
        std::time::SystemTime::now() + (at - now)
    };
    chrono::DateTime::<chrono::Utc>::from(wall).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
