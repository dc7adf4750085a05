//! HTTP ingest and the admin endpoints of `strata run`. (Interface; implementation pending.)
#![allow(missing_docs, unused_variables, dead_code)]
