//! Compaction: sealed WAL segments become Parquet files in the archive, then a
//! commit record, then the segment is deleted. (Interface; implementation pending.)
#![allow(missing_docs, unused_variables, dead_code)]
