//! A local copy, in the WAL directory (`<wal dir>/identity/`), of what the
//! NATS source needs from the identity ledger: the restore key
//! (`restore.key`, readable by the owner only) and each station's
//! incarnation records (`<station>.json`, a JSON array). Records are
//! immutable in the archive, so a cached record that matches a stream's
//! creation time is that record: a restart with the object store down goes
//! on archiving into the WAL. Anything unreadable here is simply fetched
//! from the archive again.

use std::io;
use std::path::{Path, PathBuf};

use super::mac::RestoreKey;
use super::IncarnationRecord;
use crate::fsio;
use crate::message::StationName;

/// The cache directory of one WAL.
#[derive(Debug, Clone)]
pub struct LocalCache {
    dir: PathBuf,
}

impl LocalCache {
    /// The cache under `wal_dir`.
    pub fn new(wal_dir: &Path) -> Self {
        Self {
            dir: wal_dir.join("identity"),
        }
    }

    /// The cached restore key, if there is a readable one.
    pub fn restore_key(&self) -> Option<RestoreKey> {
        let bytes = std::fs::read(self.dir.join("restore.key")).ok()?;
        RestoreKey::from_json(&bytes).ok()
    }

    /// Caches the restore key (owner-only permissions).
    ///
    /// # Errors
    /// The I/O error of the write.
    pub fn save_restore_key(&self, key: &RestoreKey) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join("restore.key");
        fsio::write_atomic(&path, &key.to_json())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(())
    }

    /// The cached incarnations of `station` (empty when none or unreadable).
    pub fn incarnations(&self, station: &StationName) -> Vec<IncarnationRecord> {
        std::fs::read(self.station_path(station))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Caches the incarnations of `station`.
    ///
    /// # Errors
    /// The I/O error of the write.
    pub fn save_incarnations(
        &self,
        station: &StationName,
        records: &[IncarnationRecord],
    ) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let json = serde_json::to_vec_pretty(records).expect("records serialise");
        fsio::write_atomic(&self.station_path(station), &json)
    }

    fn station_path(&self, station: &StationName) -> PathBuf {
        self.dir.join(format!("{station}.json"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::RECORD_VERSION;

    #[test]
    fn keys_and_records_round_trip_and_garbage_reads_as_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LocalCache::new(dir.path());
        let st = StationName::new("orders").unwrap();
        assert!(cache.restore_key().is_none());
        assert!(cache.incarnations(&st).is_empty());
        let key = RestoreKey::generate();
        cache.save_restore_key(&key).unwrap();
        assert_eq!(cache.restore_key(), Some(key));
        let rec = IncarnationRecord {
            version: RECORD_VERSION,
            station: st.clone(),
            incarnation: 0,
            stream_created: "t".into(),
            seq_offset: 0,
            detected_at: "d".into(),
            previous_stream_created: None,
        };
        cache
            .save_incarnations(&st, std::slice::from_ref(&rec))
            .unwrap();
        assert_eq!(cache.incarnations(&st), vec![rec]);
        std::fs::write(dir.path().join("identity/orders.json"), b"{garbage").unwrap();
        assert!(cache.incarnations(&st).is_empty());
    }
}
