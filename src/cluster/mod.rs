//! Several `strata run` processes share the stations of one NATS server,
//! coordinated by the server itself: placeholder, completed below.
pub mod keys;
pub mod lease;
pub mod share;
