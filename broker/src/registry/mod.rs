//! The schema registry served inside the broker: a Confluent-compatible REST API
//! (`klamm.schema.registry.listener`), schemas kept in the replicated `_schemas`
//! topic, compatibility rules per format, and broker-side schema validation of
//! produced records.
//!
//! - [`format`]: what the registry needs from a schema format (parse and
//!   canonicalise, compatibility between a reader and a writer schema); one
//!   implementation per `schemaType` (AVRO, JSON, PROTOBUF);
//! - [`avro`]: the AVRO format (apache-avro for parsing, our resolution walk for compatibility);
//! - [`state`]: the deterministic state machine over the `_schemas` records
//!   (subjects, versions, ids, deletes, configs, modes), no I/O;
//! - [`api`] / [`routes`]: the REST API, handlers over a [`api::Backend`] and the route table;
//! - [`store`]: the backend on the `_schemas` topic (append through the leader, apply
//!   the local replica or the leader's log in offset order);
//! - [`service`]: the HTTP application served on `klamm.schema.registry.listener`;
//! - [`auth`]: HTTP basic auth against the broker's PLAIN users and SCRAM credentials;
//! - [`KnownSchemaIds`]: the ids this broker knows and their subjects, kept by the
//!   store as it applies the `_schemas` log and read on the produce path by
//!   broker-side validation;
//! - [`json_schema`], [`protobuf`]: the JSON and PROTOBUF formats;
//! - [`validation`]: broker-side schema id validation of produced records
//!   (`confluent.value.schema.validation`, `confluent.key.schema.validation`).

pub mod api;
pub mod auth;
pub mod avro;
pub mod format;
pub mod routes;
pub mod service;
pub mod state;
pub mod store;
pub mod json_schema;
pub mod protobuf;
pub mod validation;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The schema formats this broker serves, by `schemaType` name.
pub fn formats() -> state::Formats {
    let list: Vec<Arc<dyn format::SchemaFormat>> = vec![Arc::new(avro::AvroFormat), Arc::new(json_schema::JsonSchemaFormat), Arc::new(protobuf::ProtobufFormat)];
    Arc::new(list.into_iter().map(|f| (f.name(), f)).collect())
}

/// Schema ids known to this broker and the subjects each is registered under.
///
/// The store updates it as it applies the `_schemas` log; broker-side
/// validation (`confluent.value.schema.validation`) reads it for every
/// produced record of a validated topic, so reads take a shared lock only.
#[derive(Clone, Default)]
pub struct KnownSchemaIds(Arc<RwLock<HashMap<i32, Vec<String>>>>);

impl KnownSchemaIds {
    /// Records that `id` is registered under `subject` (idempotent).
    pub fn insert(&self, id: i32, subject: &str) {
        let mut ids = self.0.write().unwrap_or_else(|e| e.into_inner());
        let subjects = ids.entry(id).or_default();
        if !subjects.iter().any(|s| s == subject) {
            subjects.push(subject.to_string());
        }
    }

    /// Forgets `subject` for `id` (a permanent delete); the id disappears with its last subject.
    pub fn remove(&self, id: i32, subject: &str) {
        let mut ids = self.0.write().unwrap_or_else(|e| e.into_inner());
        if let Some(subjects) = ids.get_mut(&id) {
            subjects.retain(|s| s != subject);
            if subjects.is_empty() {
                ids.remove(&id);
            }
        }
    }

    /// Whether any subject holds schema `id`.
    pub fn contains(&self, id: i32) -> bool {
        self.0.read().unwrap_or_else(|e| e.into_inner()).contains_key(&id)
    }

    /// Whether `id` is registered under `subject`.
    pub fn registered_under(&self, id: i32, subject: &str) -> bool {
        self.0.read().unwrap_or_else(|e| e.into_inner()).get(&id).is_some_and(|s| s.iter().any(|x| x == subject))
    }
}

#[cfg(test)]
mod tests {
    use super::KnownSchemaIds;

    #[test]
    fn ids_follow_their_subjects() {
        let ids = KnownSchemaIds::default();
        ids.insert(1, "orders-value");
        ids.insert(1, "orders-value");
        ids.insert(1, "other-value");
        assert!(ids.contains(1) && ids.registered_under(1, "other-value"));
        ids.remove(1, "orders-value");
        assert!(ids.contains(1) && !ids.registered_under(1, "orders-value"));
        ids.remove(1, "other-value");
        assert!(!ids.contains(1));
    }
}
