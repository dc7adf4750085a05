//! Which source assigns a station's seqs: one authority per station (the
//! identity rule, [`crate::identity`]). The NATS source registers every
//! station it archives; HTTP ingest refuses those with `409 Conflict`, so a
//! seq it would assign can never collide with a stream sequence.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use crate::message::StationName;

/// The stations the NATS source archives in this process.
#[derive(Debug, Clone, Default)]
pub struct NatsStations(Arc<RwLock<HashSet<StationName>>>);

impl NatsStations {
    /// Registers a station the NATS source archives.
    pub fn insert(&self, station: StationName) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(station);
    }

    /// Whether the NATS source archives `station`.
    pub fn contains(&self, station: &StationName) -> bool {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(station)
    }

    /// Every station the NATS source archives, by name.
    pub fn list(&self) -> Vec<StationName> {
        let mut stations: Vec<StationName> = self
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        stations.sort();
        stations
    }
}
