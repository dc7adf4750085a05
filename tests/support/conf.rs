//! The `strata.toml` a test writes: storage, `[http]`, `[nats]`.

use std::fs;
use std::path::{Path, PathBuf};

use super::free_port;

/// Where the archive lives.
#[derive(Debug, Clone)]
pub enum Storage {
    /// A local folder (`file:///abs`).
    File(PathBuf),
    /// A bucket on the S3-compatible test server.
    S3 {
        /// `http://127.0.0.1:PORT`.
        endpoint: String,
        /// The bucket.
        bucket: String,
        /// Key prefix (no leading or trailing slash; may be empty).
        prefix: String,
    },
}

/// The `[http]` table.
#[derive(Debug, Clone)]
pub struct HttpConf {
    /// `127.0.0.1:PORT`.
    pub listen: String,
    /// Bearer token, if any.
    pub token: Option<String>,
    /// `max_body_bytes`, if set.
    pub max_body_bytes: Option<usize>,
}

impl HttpConf {
    /// A listener on a free loopback port.
    pub fn free(token: Option<&str>) -> Self {
        Self {
            listen: format!("127.0.0.1:{}", free_port()),
            token: token.map(str::to_string),
            max_body_bytes: None,
        }
    }
    /// `http://<listen>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.listen)
    }
}

/// The `[nats]` table.
#[derive(Debug, Clone)]
pub struct NatsConf {
    /// Server URL.
    pub url: String,
    /// Stream names.
    pub stations: Vec<String>,
    /// Durable consumer name.
    pub consumer: String,
    /// `fetch_batch`, if set.
    pub fetch_batch: Option<usize>,
}

/// A `strata.toml` for one test.
#[derive(Debug, Clone)]
pub struct Conf {
    /// `[wal] dir`.
    pub wal_dir: PathBuf,
    /// `[storage]`.
    pub storage: Storage,
    /// `[wal] segment_max_bytes`.
    pub segment_max_bytes: Option<u64>,
    /// `[wal] segment_max_age`, e.g. `"500ms"`.
    pub segment_max_age: Option<String>,
    /// `[wal] max_disk_bytes`, a TOML value (`65536` or `"64MiB"`).
    pub max_disk_bytes: Option<String>,
    /// `[compaction] row_group_rows`.
    pub row_group_rows: Option<usize>,
    /// `[http]`.
    pub http: Option<HttpConf>,
    /// `[nats]`.
    pub nats: Option<NatsConf>,
}

fn q(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

impl Conf {
    /// WAL under `dir/wal`, archive in the local folder `dir/archive`.
    pub fn local(dir: &Path) -> Self {
        Self {
            wal_dir: dir.join("wal"),
            storage: Storage::File(dir.join("archive")),
            segment_max_bytes: None,
            segment_max_age: None,
            max_disk_bytes: None,
            row_group_rows: None,
            http: None,
            nats: None,
        }
    }

    /// The `[storage] url`.
    pub fn storage_url(&self) -> String {
        match &self.storage {
            Storage::File(p) => format!("file://{}", p.display()),
            Storage::S3 { bucket, prefix, .. } if prefix.is_empty() => format!("s3://{bucket}"),
            Storage::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }

    /// The TOML text.
    pub fn toml(&self) -> String {
        let mut t = String::new();
        t += "[wal]\n";
        t += &format!("dir = {}\n", q(&self.wal_dir.display().to_string()));
        if let Some(v) = self.segment_max_bytes {
            t += &format!("segment_max_bytes = {v}\n");
        }
        if let Some(v) = &self.segment_max_age {
            t += &format!("segment_max_age = {}\n", q(v));
        }
        if let Some(v) = &self.max_disk_bytes {
            t += &format!("max_disk_bytes = {v}\n");
        }
        t += "\n[storage]\n";
        t += &format!("url = {}\n", q(&self.storage_url()));
        if let Storage::S3 { endpoint, .. } = &self.storage {
            t += "region = \"us-east-1\"\n";
            t += &format!("endpoint = {}\n", q(endpoint));
            t += "path_style = true\n";
            t += "access_key_id = \"strata-test\"\n";
            t += "secret_access_key = \"strata-test-secret\"\n";
        }
        if let Some(v) = self.row_group_rows {
            t += &format!("\n[compaction]\nrow_group_rows = {v}\n");
        }
        if let Some(h) = &self.http {
            t += "\n[http]\n";
            t += &format!("listen = {}\n", q(&h.listen));
            if let Some(tok) = &h.token {
                t += &format!("token = {}\n", q(tok));
            }
            if let Some(v) = h.max_body_bytes {
                t += &format!("max_body_bytes = {v}\n");
            }
        }
        if let Some(n) = &self.nats {
            t += "\n[nats]\n";
            t += &format!("url = {}\n", q(&n.url));
            let list: Vec<String> = n.stations.iter().map(|s| q(s)).collect();
            t += &format!("stations = [{}]\n", list.join(", "));
            t += &format!("consumer = {}\n", q(&n.consumer));
            if let Some(v) = n.fetch_batch {
                t += &format!("fetch_batch = {v}\n");
            }
        }
        t
    }

    /// Writes the file and returns its path.
    pub fn write(&self, path: &Path) -> PathBuf {
        fs::write(path, self.toml()).expect("write strata.toml");
        path.to_path_buf()
    }
}
