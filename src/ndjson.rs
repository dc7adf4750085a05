//! The NDJSON interchange format used by `strata ingest`, HTTP ingest and
//! `strata restore --output`. (Interface; implementation pending.)
#![allow(missing_docs, unused_variables, dead_code)]

use crate::message::{Draft, Message, StationName};

/// A line that could not be turned into a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: field `{field}`: {reason}")]
pub struct LineError {
    /// 1-based line number (or array index + 1 for a JSON array).
    pub line: usize,
    /// The offending field (`json` when the line is not a JSON object).
    pub field: String,
    pub reason: String,
}

/// Parses one NDJSON line; `station` is the default when the line has none.
pub fn parse_line(
    line: &str,
    line_no: usize,
    station: Option<&StationName>,
) -> Result<Draft, LineError> {
    todo!()
}

/// Parses a whole body: NDJSON, or a JSON array of the same objects. Blank lines are skipped.
pub fn parse_body(body: &[u8], station: Option<&StationName>) -> Result<Vec<Draft>, LineError> {
    todo!()
}

/// One message as an NDJSON line (no trailing newline).
pub fn to_line(m: &Message) -> String {
    todo!()
}
