//! `[compaction]`: Parquet encoding (zstd level, row groups) and uploads
//! (multipart threshold, part size, concurrency).

use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::values::{
    de_duration, de_positive_count, de_positive_duration, de_positive_size_usize, MIB,
};

/// S3's smallest allowed part of a multipart upload (all parts but the last).
pub const MIN_PART_SIZE: usize = 5 * MIB as usize;

/// `[compaction]`: Parquet settings and uploads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompactionConfig {
    /// zstd level, 1 to 22 (default 3).
    #[serde(deserialize_with = "de_zstd_level")]
    pub zstd_level: i32,
    /// Most rows in one row group (default 100 000).
    #[serde(deserialize_with = "de_positive_count")]
    pub row_group_rows: usize,
    /// Close a row group once its messages' data reaches this size (default 16 MiB).
    /// The compactor, which knows a file's rows before it writes them, makes the
    /// row groups even: the fewest this allows (an even number when more than
    /// one), each at most about this size.
    #[serde(deserialize_with = "de_positive_size_usize")]
    pub row_group_bytes: usize,
    /// Files above this size go up as multipart uploads (default 16 MiB).
    #[serde(deserialize_with = "de_positive_size_usize")]
    pub multipart_threshold: usize,
    /// Size of one part of a multipart upload (default 8 MiB; at least 5 MiB).
    #[serde(deserialize_with = "de_part_size")]
    pub part_size: usize,
    /// Uploads (files or parts) in flight at once (default 4).
    #[serde(deserialize_with = "de_positive_count")]
    pub upload_concurrency: usize,
    /// Compaction failing (the store unreachable, say) for longer than this
    /// makes `/healthz` answer 503 (default 5 min). A store that refuses the
    /// credentials or has no such bucket does so at once.
    #[serde(deserialize_with = "de_positive_duration")]
    pub unhealthy_after: Duration,
    /// While messages keep arriving, the background compactor leaves a few
    /// sealed segments for later, at most this long in a row (default 10 s; "0s":
    /// compact as soon as a segment is sealed). See [`crate::compactor::pace`].
    #[serde(deserialize_with = "de_duration")]
    pub defer_while_busy: Duration,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self {
            zstd_level: 3,
            row_group_rows: crate::columnar::DEFAULT_ROW_GROUP_ROWS,
            row_group_bytes: crate::columnar::DEFAULT_ROW_GROUP_BYTES,
            multipart_threshold: 16 * MIB as usize,
            part_size: 8 * MIB as usize,
            upload_concurrency: 4,
            unhealthy_after: Duration::from_secs(300),
            defer_while_busy: Duration::from_secs(10),
        }
    }
}

impl CompactionConfig {
    /// As options for the Parquet encoder.
    pub fn parquet_options(&self) -> crate::columnar::ParquetOptions {
        crate::columnar::ParquetOptions {
            zstd_level: self.zstd_level,
            row_group_rows: self.row_group_rows,
            row_group_bytes: self.row_group_bytes,
        }
    }
}

fn de_part_size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = de_positive_size_usize(d)?;
    if n < MIN_PART_SIZE {
        return Err(de::Error::custom(format!(
            "{n} bytes is below S3's smallest part size: use at least \"5MiB\""
        )));
    }
    Ok(n)
}

fn de_zstd_level<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    let n = i64::deserialize(d)?;
    match i32::try_from(n) {
        Ok(n) if (1..=22).contains(&n) => Ok(n),
        _ => Err(de::Error::custom(format!(
            "zstd level {n} is out of range: expected an integer from 1 (fastest) to 22 (smallest)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{parse, parse_err};

    #[test]
    fn bad_values_name_key_and_form() {
        let e = parse_err("[compaction]\nzstd_level = 40\n");
        assert!(e.contains("[compaction] zstd_level"), "{e}");
        assert!(e.contains("1 (fastest) to 22"), "{e}");

        let e = parse_err("[compaction]\npart_size = \"1MiB\"\n");
        assert!(e.contains("[compaction] part_size"), "{e}");
        assert!(e.contains("5MiB"), "{e}");
    }

    #[test]
    fn defer_while_busy_takes_a_duration_and_zero() {
        let c = parse("[compaction]\ndefer_while_busy = \"0s\"\n").unwrap();
        assert!(c.compaction.defer_while_busy.is_zero());
        let c = parse("[compaction]\ndefer_while_busy = \"1m\"\n").unwrap();
        assert_eq!(
            c.compaction.defer_while_busy,
            std::time::Duration::from_secs(60)
        );
        let e = parse_err("[compaction]\ndefer_while_busy = \"soon\"\n");
        assert!(e.contains("[compaction] defer_while_busy"), "{e}");
    }

    #[test]
    fn cross_key_rules() {
        let e = parse_err("[compaction]\nunhealthy_after = \"0s\"\n");
        assert!(e.contains("unhealthy_after"), "{e}");
    }
}
