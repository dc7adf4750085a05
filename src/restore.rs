//! `strata restore`: read a station's archived messages for a range, in seq
//! order, and publish them to NATS JetStream or write NDJSON. (Interface; implementation pending.)
#![allow(missing_docs, unused_variables, dead_code)]
