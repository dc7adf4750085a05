//! The NATS JetStream source: one durable pull consumer per station. (Interface; implementation pending.)
#![allow(missing_docs, unused_variables, dead_code)]
