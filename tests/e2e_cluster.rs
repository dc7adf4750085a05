//! Several `strata run` processes sharing four stations through the lease
//! bucket on a real `nats-server -js`, archiving into one bucket on the real
//! S3 server (moto), read back with DuckDB and pyarrow:
//!
//! - two processes, one killed with `kill -9` mid-stream: the survivor takes
//!   its stations within the documented bound, the killed one restarts with
//!   its disk and uploads its WAL, and every message is archived once;
//! - a third process joins and takes a share, nothing archived twice;
//! - the NATS server restarts: failed renewals never give a station two
//!   owners.
//!
//! Liveness bounds are generous (a loaded 2-core machine); safety is strict:
//! from every process's log, the intervals in which each held a station's
//! lease (from "took" to the `held_until` of its release or loss, or to the
//! `kill -9`) never overlap for one station, and the archive holds each
//! `(station, seq)` exactly once. The bucket is sampled all along: one owner
//! per station key is the server's rule, and the samples show the handovers.

#[macro_use]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use support::{conf::*, msg::*, nats::*, strata::*, *};

const LEASE: &str = "3s";
const LEASE_SECS: f64 = 3.0;
/// The documented bound on a takeover after the last renewal: a lease and
/// one renewal interval; doubled with slack for a loaded machine.
const TAKEOVER_BOUND: Duration = Duration::from_secs(15);
/// Ack wait of consumers created by a member with a 3 s lease: 10 s.
const CATCH_UP: Duration = Duration::from_secs(40);

/// One test's cluster: streams, the shared archive, the processes.
struct Setup {
    dir: tempfile::TempDir,
    url: String,
    js: async_nats::jetstream::Context,
    streams: Vec<String>,
    consumer: String,
    endpoint: String,
    bucket: String,
    /// Member name → its config file and `[http]`, written once.
    configs: Mutex<BTreeMap<String, (PathBuf, HttpConf)>>,
}

impl Setup {
    async fn new(url: &str, base: &str) -> Setup {
        let endpoint = support::s3::endpoint().expect("S3 endpoint");
        let bucket = support::s3::unique_bucket("strata-cluster");
        let (e, b) = (endpoint.clone(), bucket.clone());
        blocking(move || support::s3::create_bucket(&e, &b)).await;
        let js = jetstream(url).await;
        let mut streams = Vec::new();
        for i in 0..4 {
            let name = unique(&format!("{base}{i}"));
            create_stream(&js, &name, None).await;
            streams.push(name);
        }
        // No '_' in the consumer: the bucket name stays readable.
        let consumer = format!("c{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        Setup {
            dir: tempdir(),
            url: url.to_string(),
            js,
            streams,
            consumer,
            endpoint,
            bucket,
            configs: Mutex::new(BTreeMap::new()),
        }
    }

    /// The config of member `name`: its own WAL, the shared archive.
    fn config(&self, name: &str) -> (PathBuf, HttpConf) {
        let mut configs = self.configs.lock().expect("configs");
        if let Some(c) = configs.get(name) {
            return c.clone();
        }
        let root = self.dir.path().join(name);
        std::fs::create_dir_all(&root).expect("member dir");
        let mut conf = Conf::local(&root);
        conf.storage = Storage::S3 {
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            prefix: "archive".into(),
        };
        conf.segment_max_age = Some("1s".into());
        let http = HttpConf::free(None);
        conf.http = Some(http.clone());
        conf.nats = Some(NatsConf {
            url: self.url.clone(),
            stations: self.streams.clone(),
            consumer: self.consumer.clone(),
            fetch_batch: Some(64),
        });
        let text = format!("{}\n[cluster]\nlease = \"{LEASE}\"\n", conf.toml());
        let path = root.join("strata.toml");
        std::fs::write(&path, text).expect("write config");
        configs.insert(name.to_string(), (path.clone(), http.clone()));
        (path, http)
    }

    async fn spawn(&self, name: &str) -> StrataRun {
        let (config, http) = self.config(name);
        let logs = self.dir.path().join(name).join("logs");
        std::fs::create_dir_all(&logs).expect("log dir");
        let mut run = StrataRun::spawn(&config, &http, &[], &logs);
        run.ready().await;
        run
    }

    /// Station → owner's member id, as the bucket says now.
    async fn owners(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Ok(kv) = self
            .js
            .get_key_value(format!("strata_leases_{}", self.consumer))
            .await
        else {
            return out;
        };
        let Ok(mut keys) = kv.keys().await else {
            return out;
        };
        let mut names = Vec::new();
        while let Some(Ok(k)) = keys.next().await {
            names.push(k);
        }
        for k in names {
            let Some(station) = k.strip_prefix("station.") else {
                continue;
            };
            if let Ok(Some(v)) = kv.get(&k).await {
                let v: serde_json::Value = serde_json::from_slice(&v).unwrap_or_default();
                if let Some(owner) = v["owner"].as_str() {
                    out.insert(station.to_string(), owner.to_string());
                }
            }
        }
        out
    }

    /// Waits until the bucket shows every station owned and `check` holds
    /// for the counts per owner.
    async fn wait_owners(
        &self,
        timeout: Duration,
        what: &str,
        check: impl Fn(&BTreeMap<String, usize>) -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let owners = self.owners().await;
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for o in owners.values() {
                *counts.entry(o.clone()).or_default() += 1;
            }
            if owners.len() == self.streams.len() && check(&counts) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < timeout,
                "{what}: not within {timeout:?}; bucket says {owners:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Publishes `per_stream` messages to every stream, spread over `over`.
    fn publisher(&self, per_stream: u64, over: Duration) -> tokio::task::JoinHandle<()> {
        let (js, streams) = (self.js.clone(), self.streams.clone());
        tokio::spawn(async move {
            let rounds = 40u64;
            let per_round = per_stream / rounds;
            for r in 0..rounds {
                for s in &streams {
                    let msgs: Vec<Pub> = (r * per_round + 1..=(r + 1) * per_round)
                        .map(|i| test_message(s, i))
                        .collect();
                    publish(&js, &msgs).await;
                }
                tokio::time::sleep(over / rounds as u32).await;
            }
        })
    }

    async fn caught_up(&self, per_stream: u64) {
        for s in &self.streams {
            wait_consumer_caught_up(&self.js, s, &self.consumer, per_stream, CATCH_UP, None).await;
        }
    }

    /// Downloads the archive and checks: every published message once.
    async fn assert_archived_once(&self, per_stream: u64) {
        let local = self.dir.path().join("downloaded");
        let (e, b, l) = (self.endpoint.clone(), self.bucket.clone(), local.clone());
        blocking(move || support::s3::download(&e, &b, "archive", &l)).await;
        // DuckDB and pyarrow agree; count = distinct (station, seq).
        let read = read_checked(local).await;
        assert_eq!(read.count(), per_stream * self.streams.len() as u64);
        for s in &self.streams {
            let seqs: Vec<u64> = read.station(s).iter().map(|r| r.seq as u64).collect();
            assert_eq!(seqs, (1..=per_stream).collect::<Vec<u64>>(), "station {s}");
        }
        // The Iceberg table every member committed to, concurrently: the same
        // rows, each once.
        let config = self
            .configs
            .lock()
            .expect("configs")
            .values()
            .next()
            .map(|(path, _)| path.clone())
            .expect("a member");
        let endpoint = self.endpoint.clone();
        let table = blocking(move || {
            let url = support::iceberg::metadata_url(&config);
            support::iceberg::scan(&url, Some(&endpoint), None)
        })
        .await;
        assert_eq!(table.summary["rows"], table.summary["distinct_station_seq"]);
        assert!(
            table.rows == read.rows,
            "pyiceberg and DuckDB read different rows"
        );
    }
}

/// Bucket readings over time: station → owner.
type Samples = Arc<Mutex<Vec<BTreeMap<String, String>>>>;

/// Samples the bucket every 200 ms until stopped; the samples name the
/// members that owned each station over time.
fn sample_bucket(setup: &Arc<Setup>) -> (Samples, tokio::sync::watch::Sender<bool>) {
    let samples = Arc::new(Mutex::new(Vec::new()));
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let (s, out) = (Arc::clone(setup), Arc::clone(&samples));
    tokio::spawn(async move {
        while !*rx.borrow() {
            let owners = s.owners().await;
            out.lock().expect("samples").push(owners);
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = rx.changed() => {}
            }
        }
    });
    (samples, tx)
}

/// A lease interval of one process on one station.
#[derive(Debug, Clone)]
struct Held {
    process: String,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!("{name}="))? + name.len() + 1;
    let rest = &line[start..];
    Some(
        rest.split_whitespace()
            .next()
            .unwrap_or(rest)
            .trim_matches('"'),
    )
}

/// The lease intervals in the log of `process` (`killed_at`: when it was
/// killed, ending whatever it still held; else the end of the log).
fn intervals(
    process: &str,
    log: &str,
    killed_at: Option<DateTime<Utc>>,
    out: &mut BTreeMap<String, Vec<Held>>,
) {
    let mut open: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    let mut last = None;
    for line in log.lines() {
        let Some(ts) = line
            .split_whitespace()
            .next()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
        else {
            continue;
        };
        last = Some(ts);
        let Some(station) = field(line, "station") else {
            continue;
        };
        if line.contains("took the station's lease") {
            open.insert(station.to_string(), ts);
        } else if line.contains("released the station") || line.contains("lost the station's lease")
        {
            let until = field(line, "held_until")
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(ts);
            if let Some(from) = open.remove(station) {
                out.entry(station.to_string()).or_default().push(Held {
                    process: process.to_string(),
                    from,
                    until,
                });
            }
        }
    }
    let end = killed_at.or(last).unwrap_or_else(Utc::now);
    for (station, from) in open {
        out.entry(station).or_default().push(Held {
            process: process.to_string(),
            from,
            until: end,
        });
    }
}

/// No two processes held one station's lease at the same time.
fn assert_one_owner_at_a_time(all: &BTreeMap<String, Vec<Held>>) {
    for (station, held) in all {
        for (i, a) in held.iter().enumerate() {
            for b in &held[i + 1..] {
                if a.process != b.process {
                    assert!(
                        a.until <= b.from || b.until <= a.from,
                        "station {station} had two owners at once: {a:?} and {b:?}"
                    );
                }
            }
        }
    }
}

/// Every station in every sample has one owner, and ownership changed hands
/// only between members that exist.
fn assert_samples(samples: &[BTreeMap<String, String>], members: usize) {
    assert!(!samples.is_empty());
    let owners: std::collections::BTreeSet<&String> =
        samples.iter().flat_map(|s| s.values()).collect();
    assert!(owners.len() <= members, "owners seen: {owners:?}");
}

/// Rows the processes left out of uploads as archived by another one.
fn dropped_rows(logs: &[String]) -> u64 {
    logs.iter()
        .flat_map(|l| l.lines())
        .filter(|l| l.contains("left out rows another Strata process already archived"))
        .filter_map(|l| field(l, "rows").and_then(|n| n.parse::<u64>().ok()))
        .sum()
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

async fn flush_all(configs: &[&Path]) {
    for c in configs {
        flush(c).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_a_kill_9_a_takeover_and_a_restart_archive_every_message_once() {
    need!(support::python::python());
    need!(support::s3::endpoint());
    let url = need!(support::nats::url());
    let _serial = serial_async().await;
    let started = Instant::now();
    let setup = Arc::new(Setup::new(&url, "cl_kill").await);
    let mut a = setup.spawn("a").await;
    let mut b = setup.spawn("b").await;
    let (samples, stop_sampling) = sample_bucket(&setup);
    setup
        .wait_owners(TAKEOVER_BOUND, "two processes share four stations", |c| {
            c.len() == 2 && c.values().all(|&n| n == 2)
        })
        .await;

    let per_stream = 400;
    let publisher = setup.publisher(per_stream, Duration::from_secs(8));
    tokio::time::sleep(Duration::from_secs(3)).await;
    a.kill9();
    let killed_at = now();
    let took = setup
        .wait_owners(TAKEOVER_BOUND, "the survivor takes every station", |c| {
            c.len() == 1
        })
        .await;
    eprintln!("takeover after kill -9: {took:?} (lease {LEASE})");
    assert!(
        took.as_secs_f64() <= LEASE_SECS * 4.0 / 3.0 + 8.0,
        "takeover took {took:?}"
    );

    // The killed one comes back with its disk: it uploads its WAL first,
    // then takes its share again.
    let a_log_before = a.stderr();
    let mut a2 = setup.spawn("a").await;
    setup
        .wait_owners(
            Duration::from_secs(25),
            "the restarted process takes its share again",
            |c| c.len() == 2 && c.values().all(|&n| n == 2),
        )
        .await;
    publisher.await.expect("publisher");
    setup.caught_up(per_stream).await;
    let (ca, _) = setup.config("a");
    let (cb, _) = setup.config("b");
    flush_all(&[&ca, &cb]).await;
    stop_sampling.send_replace(true);
    assert!(a2.terminate().await.success(), "{}", a2.logs());
    assert!(b.terminate().await.success(), "{}", b.logs());

    assert!(
        a2.stderr()
            .contains("uploading them before taking stations")
            || a2.stderr().contains("uploaded the WAL of the earlier run")
            || !a_log_before.contains("took the station's lease"),
        "the restarted process did not flush first\n{}",
        a2.logs()
    );
    let mut all = BTreeMap::new();
    intervals("a", &a_log_before, Some(killed_at), &mut all);
    intervals("a2", &a2.stderr(), None, &mut all);
    intervals("b", &b.stderr(), None, &mut all);
    assert_one_owner_at_a_time(&all);
    assert_samples(&samples.lock().expect("samples"), 2);
    let dropped = dropped_rows(&[a_log_before.clone(), a2.stderr(), b.stderr()]);
    eprintln!("rows held by two WALs and uploaded once: {dropped}");
    setup.assert_archived_once(per_stream).await;
    eprintln!("test took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_process_joins_takes_a_share_and_nothing_is_archived_twice() {
    need!(support::python::python());
    need!(support::s3::endpoint());
    let url = need!(support::nats::url());
    let _serial = serial_async().await;
    let setup = Arc::new(Setup::new(&url, "cl_join").await);
    let mut a = setup.spawn("a").await;
    let mut b = setup.spawn("b").await;
    let (samples, stop_sampling) = sample_bucket(&setup);
    setup
        .wait_owners(TAKEOVER_BOUND, "two processes share four stations", |c| {
            c.len() == 2 && c.values().all(|&n| n == 2)
        })
        .await;
    let per_stream = 400;
    let publisher = setup.publisher(per_stream, Duration::from_secs(8));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut c = setup.spawn("c").await;
    let joined = setup
        .wait_owners(TAKEOVER_BOUND, "the third process takes a share", |c| {
            c.len() == 3 && c.values().all(|&n| n >= 1)
        })
        .await;
    eprintln!("third process owned its share after {joined:?}");
    // The whole table from the bucket, and each process's own view.
    let (url, consumer) = (setup.url.clone(), setup.consumer.clone());
    let out = blocking(move || {
        strata(args![
            "status",
            "--nats",
            url,
            "--consumer",
            consumer,
            "--json"
        ])
        .ok()
    })
    .await;
    let table: serde_json::Value = serde_json::from_str(&out.stdout).expect("status JSON");
    assert_eq!(
        table["members"].as_array().map(Vec::len),
        Some(3),
        "{table}"
    );
    assert_eq!(
        table["stations"].as_array().map(Vec::len),
        Some(4),
        "{table}"
    );
    let mut owned = 0;
    for run in [&a, &b, &c] {
        let status: serde_json::Value = http_client()
            .get(format!("{}/v1/status", run.http.base()))
            .send()
            .await
            .expect("GET /v1/status")
            .json()
            .await
            .expect("status JSON");
        assert!(status["cluster"]["member"].is_string(), "{status}");
        owned += status["cluster"]["owned"].as_array().map_or(0, Vec::len);
    }
    assert!(
        owned <= 4,
        "the processes' own views claim {owned} stations"
    );
    publisher.await.expect("publisher");
    setup.caught_up(per_stream).await;
    let configs: Vec<PathBuf> = ["a", "b", "c"].iter().map(|n| setup.config(n).0).collect();
    let refs: Vec<&Path> = configs.iter().map(PathBuf::as_path).collect();
    flush_all(&refs).await;
    stop_sampling.send_replace(true);
    for run in [&mut a, &mut b, &mut c] {
        assert!(run.terminate().await.success(), "{}", run.logs());
    }
    let mut all = BTreeMap::new();
    intervals("a", &a.stderr(), None, &mut all);
    intervals("b", &b.stderr(), None, &mut all);
    intervals("c", &c.stderr(), None, &mut all);
    assert_one_owner_at_a_time(&all);
    let handed: usize = all.values().map(|v| v.len()).sum();
    assert!(handed > 4, "no station changed hands: {all:?}");
    assert_samples(&samples.lock().expect("samples"), 3);
    setup.assert_archived_once(per_stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_renewal_never_lets_two_processes_archive_one_station() {
    need!(support::python::python());
    need!(support::s3::endpoint());
    let _serial = serial_async().await;
    let server_dir = tempdir();
    let mut server = need!(NatsServer::start(server_dir.path()));
    let setup = Arc::new(Setup::new(&server.url(), "cl_renew").await);
    let mut a = setup.spawn("a").await;
    let mut b = setup.spawn("b").await;
    setup
        .wait_owners(TAKEOVER_BOUND, "two processes share four stations", |c| {
            c.len() == 2 && c.values().all(|&n| n == 2)
        })
        .await;
    let first: Vec<Vec<Pub>> = setup
        .streams
        .iter()
        .map(|s| (1..=150).map(|i| test_message(s, i)).collect())
        .collect();
    for m in &first {
        publish(&setup.js, m).await;
    }
    setup.caught_up(150).await;

    // Down for longer than a lease: every renewal fails, every owner stops
    // at its deadline; back with the same store, the keys expire and the
    // stations are taken again.
    let down = Instant::now();
    server.stop();
    tokio::time::sleep(Duration::from_secs(5)).await;
    server.restart();
    eprintln!("nats-server was down for {:?}", down.elapsed());
    let js = jetstream(&server.url()).await;
    setup
        .wait_owners(
            Duration::from_secs(30),
            "the stations are owned again",
            |c| c.values().sum::<usize>() == 4,
        )
        .await;
    let second: Vec<Vec<Pub>> = setup
        .streams
        .iter()
        .map(|s| (151..=300).map(|i| test_message(s, i)).collect())
        .collect();
    for m in &second {
        publish(&js, m).await;
    }
    setup.caught_up(300).await;
    let (ca, _) = setup.config("a");
    let (cb, _) = setup.config("b");
    flush_all(&[&ca, &cb]).await;
    assert!(a.terminate().await.success(), "{}", a.logs());
    assert!(b.terminate().await.success(), "{}", b.logs());
    let lost = a.stderr().matches("lost the station's lease").count()
        + b.stderr().matches("lost the station's lease").count();
    assert!(
        lost >= 1,
        "no lease was lost while NATS was down\n{}\n{}",
        a.logs(),
        b.logs()
    );
    let mut all = BTreeMap::new();
    intervals("a", &a.stderr(), None, &mut all);
    intervals("b", &b.stderr(), None, &mut all);
    assert_one_owner_at_a_time(&all);
    setup.assert_archived_once(300).await;
}

/// A round of the lease coordinator lists the bucket; an answer that never
/// completes (a server that stops answering, or an ordered KV consumer whose
/// last keys expired while it read them) must not hold the round, and with it
/// a shutdown, for longer than a lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_the_lease_bucket_gives_up_after_a_lease() {
    use ::strata::cluster::bucket::{Bucket, Holder};
    use ::strata::cluster::keys::Key;

    let _serial = serial_async().await;
    let server_dir = tempdir();
    let server = need!(NatsServer::start(server_dir.path()));
    let js = jetstream(&server.url()).await;
    let lease = Duration::from_secs(1);
    let bucket = Bucket::open(&js, "cl_list", lease).await.expect("bucket");
    let holder = Holder {
        owner: "m1".into(),
        host: "test".into(),
        pid: 1,
        http: None,
        since: "2026-11-30T00:00:00Z".into(),
    };
    bucket
        .create(&Key::Member("m1".into()), &holder)
        .await
        .expect("create");
    assert_eq!(bucket.entries().await.expect("entries").len(), 1);

    server.pause();
    let asked = Instant::now();
    let listed = bucket.entries().await;
    let took = asked.elapsed();
    server.resume();
    let err = listed.expect_err("a frozen server cannot list the bucket");
    assert!(
        took < lease + Duration::from_millis(1500),
        "listing took {took:?}, more than the lease ({lease:?}) allows: {err}"
    );
    assert!(err.to_string().contains("listing keys"), "{err}");
}
