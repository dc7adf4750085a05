//! Several `strata run` processes share the stations of one NATS server,
//! coordinated by the server itself: no other service to run.
//!
//! **Model.** Processes with the same `[nats]` server and consumer are the
//! members of one cluster. They meet in a JetStream key-value bucket,
//! `strata_leases_<consumer>` ([`keys`]), created on first use with history
//! 1 and `max_age` = `[cluster] lease` (default 15 s): the *server* expires
//! a key that is not renewed within the lease, so no process's clock decides
//! when a lease ends. Keys: `member.<id>` per live process (its id is its
//! WAL's id, so a restart with the same disk is the same member),
//! `station.<station>` per archived station, `upload.<station>` while a
//! station's rows are being uploaded. Values are small JSON ([`bucket::Holder`]:
//! owner, host, pid, HTTP address, since). Every write is a compare-and-set:
//! `create` takes a free key, `update` at the last revision renews it, a
//! delete at that revision releases it.
//!
//! **One owner per station** ([`lease`]). An owner renews its keys every
//! third of the lease. Its deadline is `sent + lease − margin` (margin =
//! lease / 5), `sent` being the local instant it *sent* its last successful
//! renewal. The server stored that renewal after `sent` and expires it no
//! earlier than `lease` later; another process can `create` the key only
//! after that. At its deadline, or at once when a renewal conflicts, the
//! owner stops fetching the station and refuses to append it to its WAL
//! (checked right before each append). So the old owner stops at least one
//! margin before a new owner can start, whatever the network does.
//!
//! **Balance** ([`share`]). With `S` stations and `N` members, each member
//! owns `S / N` or one more (the first `S mod N` by id). A member above its
//! share stops the excess stations' workers (the batch in flight is appended
//! and acknowledged first) and then deletes their keys; a member below takes
//! free ones. A lone process owns everything.
//!
//! **No `(station, seq)` twice** ([`claims`], [`crate::compactor::claims`]).
//! A takeover can leave the same message in two WALs: the old owner made it
//! durable but its acknowledgement never reached the server (`kill -9`, a
//! partition), so the server redelivers it to the new owner after the ack
//! wait. Before uploading a segment, the compactor claims its stations
//! (`upload.<station>`), lists the partitions it writes into, reads the seqs
//! of the stored files whose key ranges meet its own, and leaves out what is
//! already stored, splitting the rest so that no new key equals a stored one.
//! A process restarting with a non-empty WAL uploads it this way before it
//! takes any lease.
//!
//! **Assumptions.** The WAL is on a persistent local disk and locked by one
//! process (its id is the member id). The server keeps the bucket (a
//! JetStream store on disk): a bucket deleted while members run would free
//! every lease at once. A claim holder that stalls for longer than a lease
//! between its last claim check and the end of a data file's upload could
//! overlap another member's upload of the same station.

pub mod bucket;
pub mod claims;
pub mod coordinator;
pub mod keys;
pub mod lease;
pub mod share;
pub mod table;

use std::sync::Arc;

use crate::compactor::claims::UploadClaims;
use crate::config::{ClusterConfig, NatsConfig};
use crate::metrics::Metrics;
use bucket::{Bucket, BucketError, Holder};
use coordinator::{Coordinator, SharedStatus, StationList};
use lease::LeaseTiming;

/// Why this process could not join the cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// Connecting to NATS failed.
    #[error(transparent)]
    Connect(#[from] crate::nats::NatsConnectError),
    /// The lease bucket could not be opened or created.
    #[error(transparent)]
    Bucket(#[from] BucketError),
}

/// This process's membership: the bucket, its own name in it, and what
/// `GET /v1/status` shows.
#[derive(Debug, Clone)]
pub struct Cluster {
    bucket: Bucket,
    js: async_nats::jetstream::Context,
    me: Holder,
    status: SharedStatus,
}

impl Cluster {
    /// Connects to `[nats]` and opens (or creates) the lease bucket of its
    /// consumer. `member` is this process's id (its WAL's id), `http` its
    /// HTTP address.
    ///
    /// # Errors
    /// [`ClusterError`] saying what to check.
    pub async fn join(
        nats: &NatsConfig,
        cfg: &ClusterConfig,
        member: &str,
        http: Option<String>,
    ) -> Result<Cluster, ClusterError> {
        let (_client, js) = crate::nats::connect_jetstream(&nats.auth(), "strata-cluster").await?;
        let consumer = if nats.consumer.is_empty() {
            crate::source::nats::DEFAULT_CONSUMER
        } else {
            nats.consumer.as_str()
        };
        let bucket = Bucket::open(&js, consumer, cfg.lease).await?;
        let me = Holder {
            owner: member.to_string(),
            host: crate::status::this_owner()
                .rsplit_once(':')
                .map(|(h, _)| h.to_string())
                .unwrap_or_default(),
            pid: std::process::id(),
            http,
            since: crate::message::Timestamp::now().to_rfc3339(),
        };
        Ok(Cluster {
            bucket,
            js,
            me,
            status: SharedStatus::default(),
        })
    }

    /// The lease timings (from the bucket's `max_age`).
    pub fn timing(&self) -> LeaseTiming {
        LeaseTiming::new(self.bucket.lease())
    }

    /// The upload claims the compactor takes.
    pub fn upload_claims(&self) -> Arc<dyn UploadClaims> {
        Arc::new(claims::BucketClaims::new(
            self.bucket.clone(),
            self.me.clone(),
        ))
    }

    /// What `GET /v1/status` reports of this member.
    pub fn status(&self) -> SharedStatus {
        Arc::clone(&self.status)
    }

    /// The member loop over `stations`.
    pub fn coordinator(&self, stations: StationList, metrics: Arc<Metrics>) -> Coordinator {
        Coordinator::new(
            self.bucket.clone(),
            self.js.clone(),
            self.me.clone(),
            stations,
            metrics,
            Arc::clone(&self.status),
        )
    }
}
