//! Planning a restore against the store: list the station's `date=`/`hour=`
//! partitions that can hold the time range (or, without time bounds, the whole
//! station in one paginated listing), keep the data files whose names can
//! hold the seq range, read each kept file's Parquet footer and keep the row
//! groups whose statistics can hold the selection. Files a tier-2 merge
//! replaced are skipped when the file that holds their rows is listed too
//! ([`crate::replacements`]): each message is read once, during the grace as
//! after it. The result is a [`Plan`] in
//! reading order; decisions come from the pure rules in [`super::select`].

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::{stream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::ObjectMeta;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, RowSelection};
use parquet::arrow::async_reader::ParquetObjectReader;

use crate::columnar::{
    check_schema, file_info, page_selection, reader_options, select_row_groups, Selection,
};
use crate::layout::{self, DataKey, Hour};
use crate::message::StationName;
use crate::replacements::{self, Fetch, Replacements};
use crate::store::Archive;

use super::select;
use super::RestoreError;

/// How many list or footer requests run at once.
const CONCURRENCY: usize = 16;

/// Bytes fetched from the end of a file in the first footer request: Strata's
/// footers (a handful of columns, a few row groups) fit, so one request serves.
const FOOTER_HINT: usize = 16 * 1024;

/// Footers kept from planning for reading, in bytes of decoded metadata; the
/// footers of files beyond it are read again when their turn comes, so a plan
/// over a whole station's history stays small.
const METADATA_BUDGET: usize = 64 << 20;

/// One file to read.
#[derive(Debug, Clone)]
pub struct PlannedFile {
    /// Its key.
    pub key: DataKey,
    /// Its path in the archive (relative to the root, as [`DataKey::path`]).
    pub path: Path,
    /// Its size in bytes.
    pub size: u64,
    /// Its footer, read during planning and kept for reading unless the plan
    /// outgrew [`METADATA_BUDGET`].
    pub metadata: Option<ArrowReaderMetadata>,
    /// The row groups to read.
    pub row_groups: Vec<usize>,
    /// Within them, the rows on pages whose page index may hold the
    /// selection; `None`: all their rows.
    pub row_selection: Option<RowSelection>,
    /// Rows to decode (an upper bound of the messages it yields).
    pub rows: u64,
}

/// What planning looked at and kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanStats {
    /// Hour partitions listed one by one (0 when the station was listed whole,
    /// as it is without time bounds).
    pub hours_listed: u64,
    /// Data files found in them.
    pub files_listed: u64,
    /// Data files whose footer was read.
    pub files_opened: u64,
    /// Row groups in the opened files.
    pub row_groups_total: u64,
    /// Row groups kept.
    pub row_groups_selected: u64,
    /// Rows in the kept row groups.
    pub rows_planned: u64,
    /// The most files whose seq ranges overlap (files held open at once).
    pub max_overlap: usize,
    /// Objects under the station that are not data files (ignored).
    pub foreign_objects: u64,
    /// Data files skipped because a listed tier-2 merged file holds their rows.
    pub files_replaced: u64,
}

/// The files to read, in reading order.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Files with at least one row group kept, ordered by first seq.
    pub files: Vec<PlannedFile>,
    /// Figures for the summary.
    pub stats: PlanStats,
}

/// Plans reading `station`'s messages in `sel` from `archive`.
///
/// # Errors
/// [`RestoreError::Store`] when listing fails, [`RestoreError::Footer`] when a
/// data file's footer cannot be read.
pub async fn plan(
    archive: &Archive,
    station: &StationName,
    sel: &Selection,
) -> Result<Plan, RestoreError> {
    let mut stats = PlanStats::default();
    if select::is_empty(sel) {
        return Ok(Plan::default());
    }
    let objects: Vec<ObjectMeta> = if sel.from_ts.is_none() && sel.to_ts.is_none() {
        // No time bounds: every hour is needed, and one flat listing (a
        // thousand keys per request on S3) costs far fewer requests than one
        // per hour of the station's history.
        archive
            .list_all(Some(&layout::station_prefix(station)))
            .await?
    } else {
        let hours = list_hours(archive, station, sel).await?;
        stats.hours_listed = hours.len() as u64;
        let listings: Vec<Vec<ObjectMeta>> = stream::iter(hours)
            .map(|dir| async move {
                let listed = archive.list_with_delimiter(&dir).await?;
                Ok::<_, RestoreError>(listed.objects)
            })
            .buffered(CONCURRENCY)
            .try_collect()
            .await?;
        listings.into_iter().flatten().collect()
    };

    let listed: BTreeSet<DataKey> = objects
        .iter()
        .filter_map(|m| DataKey::parse(&m.location))
        .filter(|k| &k.station == station)
        .collect();
    // A replaced file and the file holding its rows share an hour partition,
    // so whatever hours were listed, both are in `listed`.
    let index = if replacements::any_nested(&listed) {
        replacements::load(archive, Some(station), &listed, Fetch::Relevant).await?
    } else {
        // No file lies inside another's span, so none can have replaced it:
        // no request for the records.
        Replacements::default()
    };
    let mut candidates = Vec::new();
    for meta in objects {
        match DataKey::parse(&meta.location) {
            Some(key) if &key.station == station => {
                stats.files_listed += 1;
                if index.covering(&key, |k| listed.contains(k)).is_some() {
                    stats.files_replaced += 1;
                    continue;
                }
                if select::key_may_hold(sel, &key) {
                    candidates.push((key, meta));
                }
            }
            _ => stats.foreign_objects += 1,
        }
    }
    select::order_keys(&mut candidates, |(k, _)| k);

    let opened: Vec<Opened> = stream::iter(candidates)
        .map(|(key, meta)| open_footer(archive, key, meta, sel))
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    stats.files_opened = opened.len() as u64;
    let mut files = Vec::new();
    let mut kept_metadata = 0usize;
    for o in opened {
        match o {
            Opened::Kept(mut f, row_groups) => {
                stats.row_groups_total += row_groups;
                stats.row_groups_selected += f.row_groups.len() as u64;
                stats.rows_planned += f.rows;
                if let Some(m) = &f.metadata {
                    kept_metadata += m.metadata().memory_size();
                    if kept_metadata > METADATA_BUDGET {
                        f.metadata = None;
                    }
                }
                files.push(f);
            }
            Opened::Dropped { row_groups } => stats.row_groups_total += row_groups,
        }
    }
    let keys: Vec<&DataKey> = files.iter().map(|f| &f.key).collect();
    stats.max_overlap = select::max_overlap(&keys);
    Ok(Plan { files, stats })
}

/// A file whose footer was read.
enum Opened {
    /// At least one row group may hold selected rows; the file has this many.
    Kept(PlannedFile, u64),
    /// None may; it had this many.
    Dropped { row_groups: u64 },
}

/// The hour partition directories of `station` that may hold `sel`.
async fn list_hours(
    archive: &Archive,
    station: &StationName,
    sel: &Selection,
) -> Result<Vec<Path>, RestoreError> {
    let days = archive
        .list_with_delimiter(&layout::station_prefix(station))
        .await?;
    let mut day_dirs: Vec<(chrono::NaiveDate, Path)> = days
        .common_prefixes
        .into_iter()
        .filter_map(|p| {
            let date = layout::parse_date_segment(p.filename()?)?;
            Some((date, p))
        })
        .filter(|(date, _)| select::day_may_hold(sel, *date))
        .collect();
    day_dirs.sort();

    let per_day: Vec<Vec<Path>> = stream::iter(day_dirs)
        .map(|(date, dir)| async move {
            let hours = archive.list_with_delimiter(&dir).await?;
            let mut kept: Vec<(u8, Path)> = hours
                .common_prefixes
                .into_iter()
                .filter_map(|p| {
                    let hour = layout::parse_hour_segment(p.filename()?)?;
                    Some((hour, p))
                })
                .filter(|(hour, _)| select::hour_may_hold(sel, Hour { date, hour: *hour }))
                .collect();
            kept.sort();
            Ok::<_, RestoreError>(kept.into_iter().map(|(_, p)| p).collect())
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    Ok(per_day.into_iter().flatten().collect())
}

/// Reads one file's footer and keeps it if a row group may hold `sel`.
async fn open_footer(
    archive: &Archive,
    key: DataKey,
    meta: ObjectMeta,
    sel: &Selection,
) -> Result<Opened, RestoreError> {
    let metadata = load_footer(archive, &meta.location, meta.size, &key.station).await?;
    let row_groups = select_row_groups(metadata.metadata(), sel);
    if row_groups.is_empty() {
        return Ok(Opened::Dropped {
            row_groups: metadata.metadata().num_row_groups() as u64,
        });
    }
    let row_selection = page_selection(metadata.metadata(), &row_groups, sel);
    let rows = match &row_selection {
        Some(s) => s.row_count() as u64,
        None => row_groups
            .iter()
            .map(|&i| metadata.metadata().row_group(i).num_rows().max(0) as u64)
            .sum(),
    };
    let total = metadata.metadata().num_row_groups() as u64;
    Ok(Opened::Kept(
        PlannedFile {
            key,
            path: meta.location,
            size: meta.size,
            metadata: Some(metadata),
            row_groups,
            row_selection,
            rows,
        },
        total,
    ))
}

/// Reads a data file's footer with its page index, and checks it is a data
/// file of `station` in a schema this Strata reads.
///
/// # Errors
/// [`RestoreError::Footer`] or [`RestoreError::Decode`] naming the object (its full key).
pub async fn load_footer(
    archive: &Archive,
    path: &Path,
    size: u64,
    station: &StationName,
) -> Result<ArrowReaderMetadata, RestoreError> {
    let mut reader = ParquetObjectReader::new(Arc::clone(archive.store()), path.clone())
        .with_file_size(size)
        .with_footer_size_hint(FOOTER_HINT);
    let metadata = ArrowReaderMetadata::load_async(&mut reader, reader_options())
        .await
        .map_err(|source| RestoreError::Footer {
            path: archive.key(path).to_string(),
            source: Box::new(source),
        })?;
    let decode_err = |source| RestoreError::Decode {
        path: archive.key(path).to_string(),
        source: Box::new(source),
    };
    check_schema(metadata.schema()).map_err(decode_err)?;
    file_info(metadata.metadata())
        .and_then(|info| info.check(station))
        .map_err(decode_err)?;
    Ok(metadata)
}
