//! The lease bucket: a JetStream key-value bucket (`strata_leases_<consumer>`,
//! history 1, `max_age` = the lease), created on first use. Every write is a
//! compare-and-set: `create` (fails if the key exists) or `update` at a
//! revision (fails if anyone wrote since).

use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};

use async_nats::jetstream::{self, stream::StorageType};
use bytes::Bytes;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::keys::{bucket_name, bucket_stream, Key};

/// What a key's value says: who holds it. Small JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The member id (the holder's WAL id).
    pub owner: String,
    /// The holder's host name.
    pub host: String,
    /// The holder's process id.
    pub pid: u32,
    /// The holder's HTTP address (`[http] listen`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// When the holder took the key (RFC 3339).
    pub since: String,
}

/// One live key of the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// What it names.
    pub key: Key,
    /// Who holds it.
    pub holder: Holder,
    /// Its revision, for the next compare-and-set.
    pub revision: u64,
}

/// How a compare-and-set came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cas {
    /// Written; the new revision.
    Written(u64),
    /// Someone else holds the key, or wrote it since the revision given.
    Conflict,
}

/// Errors talking to the bucket; all transient from the caller's side.
#[derive(Debug, thiserror::Error)]
#[error("lease bucket {bucket}: {what} failed: {source}; check that the NATS server is reachable and has JetStream")]
pub struct BucketError {
    bucket: String,
    what: &'static str,
    #[source]
    source: async_nats::Error,
}

/// The lease bucket of one `[nats]` consumer.
#[derive(Clone)]
pub struct Bucket {
    kv: kv::Store,
    name: String,
    lease: Duration,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("name", &self.name)
            .field("lease", &self.lease)
            .finish()
    }
}

impl Bucket {
    /// Opens the bucket of `consumer`, creating it with `max_age = lease`
    /// when it does not exist. An existing bucket's `max_age` wins over
    /// `lease` (every member must use the lease the server expires keys
    /// with); a difference is logged.
    ///
    /// # Errors
    /// [`BucketError`] when the server cannot be asked or refuses.
    pub async fn open(
        js: &jetstream::Context,
        consumer: &str,
        lease: Duration,
    ) -> Result<Bucket, BucketError> {
        let name = bucket_name(consumer);
        let err = |what, source: async_nats::Error| BucketError {
            bucket: name.clone(),
            what,
            source,
        };
        let kv = match js.get_key_value(&name).await {
            Ok(kv) => kv,
            Err(_) => {
                // The key-value stream, spelled out: async-nats's own
                // create_key_value asks for account details that
                // nats-server 2.9 does not send in the form it expects.
                let created = js
                    .create_stream(jetstream::stream::Config {
                        name: bucket_stream(&name),
                        description: Some(format!(
                            "Strata: which process archives which station (consumer {consumer})"
                        )),
                        subjects: vec![format!("$KV.{name}.>")],
                        max_messages_per_subject: 1,
                        max_age: lease,
                        max_bytes: -1,
                        max_message_size: -1,
                        storage: StorageType::File,
                        num_replicas: 1,
                        allow_rollup: true,
                        deny_delete: true,
                        allow_direct: true,
                        discard: jetstream::stream::DiscardPolicy::New,
                        ..Default::default()
                    })
                    .await;
                if let Err(e) = created {
                    // Another member may have created it meanwhile.
                    tracing::debug!(error = %e, "creating the lease bucket");
                }
                js.get_key_value(&name)
                    .await
                    .map_err(|e| err("creating the bucket", e.into()))?
            }
        };
        let mut stream = js
            .get_stream(bucket_stream(&name))
            .await
            .map_err(|e| err("reading the bucket", e.into()))?;
        let max_age = stream
            .info()
            .await
            .map_err(|e| err("reading the bucket", e.into()))?
            .config
            .max_age;
        if max_age.is_zero() {
            return Err(err(
                "checking the bucket",
                "it has no max_age, so a lease would never end: delete it (nats kv rm) and let \
                 Strata create it"
                    .into(),
            ));
        }
        if max_age != lease {
            tracing::warn!(
                bucket = %name, bucket_lease = ?max_age, configured = ?lease,
                "the lease bucket expires keys after its own max_age, which differs from \
                 [cluster] lease: using the bucket's, as every member must"
            );
        }
        let lease = max_age;
        Ok(Bucket { kv, name, lease })
    }

    /// Opens the bucket of `consumer` if it exists (nothing is created).
    ///
    /// # Errors
    /// [`BucketError`] when the server cannot be asked.
    pub async fn existing(
        js: &jetstream::Context,
        consumer: &str,
    ) -> Result<Option<Bucket>, BucketError> {
        let name = bucket_name(consumer);
        let Ok(mut stream) = js.get_stream(bucket_stream(&name)).await else {
            return Ok(None);
        };
        let lease = stream
            .info()
            .await
            .map_err(|e| BucketError {
                bucket: name.clone(),
                what: "reading the bucket",
                source: e.into(),
            })?
            .config
            .max_age;
        let kv = js.get_key_value(&name).await.map_err(|e| BucketError {
            bucket: name.clone(),
            what: "opening the bucket",
            source: e.into(),
        })?;
        Ok(Some(Bucket { kv, name, lease }))
    }

    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lease the server expires keys with (the bucket's `max_age`).
    pub fn lease(&self) -> Duration {
        self.lease
    }

    fn err(&self, what: &'static str, source: impl Into<async_nats::Error>) -> BucketError {
        BucketError {
            bucket: self.name.clone(),
            what,
            source: source.into(),
        }
    }

    /// Every live key Strata wrote, with its holder and revision, read within
    /// the bucket's lease: a listing that takes longer is of no use to a round
    /// (the leases it would decide on have lapsed meanwhile) and must not hold
    /// the round up.
    ///
    /// # Errors
    /// [`BucketError`] when the server cannot be asked, or does not answer
    /// within the lease.
    pub async fn entries(&self) -> Result<Vec<Entry>, BucketError> {
        match tokio::time::timeout(self.lease, self.list_entries()).await {
            Ok(listed) => listed,
            Err(_) => Err(self.err(
                "listing keys",
                format!("no complete answer within the lease ({:?})", self.lease),
            )),
        }
    }

    async fn list_entries(&self) -> Result<Vec<Entry>, BucketError> {
        let mut keys = self
            .kv
            .keys()
            .await
            .map_err(|e| self.err("listing keys", e))?;
        let mut names = Vec::new();
        while let Some(k) = keys.next().await {
            names.push(k.map_err(|e| self.err("listing keys", e))?);
        }
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            if let Some(e) = self.entry_named(&name).await? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// The live entry of `key`, if any.
    ///
    /// # Errors
    /// [`BucketError`] when the server cannot be asked.
    pub async fn entry(&self, key: &Key) -> Result<Option<Entry>, BucketError> {
        self.entry_named(&key.encode()).await
    }

    async fn entry_named(&self, name: &str) -> Result<Option<Entry>, BucketError> {
        let Some(key) = Key::parse(name) else {
            return Ok(None);
        };
        let got = self
            .kv
            .entry(name)
            .await
            .map_err(|e| self.err("reading a key", e))?;
        Ok(got.and_then(|e| {
            if e.operation != Operation::Put {
                return None;
            }
            let holder = serde_json::from_slice(&e.value).ok()?;
            Some(Entry {
                key,
                holder,
                revision: e.revision,
            })
        }))
    }

    /// Takes `key` if nobody holds it.
    ///
    /// # Errors
    /// [`BucketError`] when the server cannot be asked.
    pub async fn create(&self, key: &Key, holder: &Holder) -> Result<Cas, BucketError> {
        match self.kv.create(key.encode(), json(holder)).await {
            Ok(rev) => Ok(Cas::Written(rev)),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(Cas::Conflict),
            Err(e) => Err(self.err("creating a key", e)),
        }
    }

    /// Writes `key` again if nobody wrote it since `revision`.
    ///
    /// # Errors
    /// [`BucketError`] when the server cannot be asked.
    pub async fn update(
        &self,
        key: &Key,
        holder: &Holder,
        revision: u64,
    ) -> Result<Cas, BucketError> {
        match self.kv.update(key.encode(), json(holder), revision).await {
            Ok(rev) => Ok(Cas::Written(rev)),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(Cas::Conflict),
            Err(e) => Err(self.err("renewing a key", e)),
        }
    }

    /// Deletes `key` if nobody wrote it since `revision`.
    ///
    /// # Errors
    /// [`BucketError`] when the server cannot be asked or someone else holds it.
    pub async fn delete(&self, key: &Key, revision: u64) -> Result<(), BucketError> {
        self.kv
            .delete_expect_revision(key.encode(), Some(revision))
            .await
            .map_err(|e| self.err("releasing a key", e))
    }
}

fn json(holder: &Holder) -> Bytes {
    Bytes::from(serde_json::to_vec(holder).unwrap_or_default())
}
