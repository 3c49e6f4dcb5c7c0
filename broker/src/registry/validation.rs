//! Broker-side schema id validation of produced records, per topic, with
//! Confluent Server's topic properties:
//! `confluent.value.schema.validation` / `confluent.key.schema.validation`
//! (off by default) and `confluent.value.subject.name.strategy` /
//! `confluent.key.subject.name.strategy`.
//!
//! What a validated record must carry (the Confluent wire format): byte 0 is
//! the magic byte 0, bytes 1-4 a big-endian schema id that the registry knows
//! ([`KnownSchemaIds`], filled by the store as it applies `_schemas`). With
//! TopicNameStrategy (the default) the id must also be registered under
//! `<topic>-value` / `<topic>-key`; with RecordNameStrategy and
//! TopicRecordNameStrategy the subject depends on the record's schema, so only
//! the id is checked. As Confluent documents, a null value (a tombstone) or a
//! null key passes: compacted topics must stay deletable.
//!
//! Like Kafka's own record validation, a batch with a bad record is refused as
//! a whole: INVALID_RECORD with `record_errors` (the index of each bad record
//! in the batch and why) and an `error_message`.
//!
//! Cost: topics without either property return after two boolean reads;
//! validated topics walk the records once more (the partition's own
//! validation walks them too, after this check), decompressing a compressed
//! batch with the same bound the partition uses.

use bytes::Bytes;
use klamm_config::{SubjectNameStrategy, TopicConfig};
use klamm_protocol::records::RecordBatch;
use klamm_protocol::ErrorCode;

use super::KnownSchemaIds;
use crate::replica::validation::inflate_limit;
use crate::replica::PartitionError;

/// The Confluent wire format's first byte.
const MAGIC_BYTE: u8 = 0;
/// Magic byte plus the 4-byte schema id.
const HEADER_LEN: usize = 5;
/// At most this many per-record errors are reported (as the partition's own
/// validation caps them), so a huge bad batch gets a small answer.
const MAX_RECORD_ERRORS: usize = 100;

/// Which half of a record is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Key,
    Value,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Key => "key",
            Part::Value => "value",
        }
    }
}

/// What one part of a topic's records is checked against.
struct Rule<'a> {
    part: Part,
    /// The subject the id must be registered under (TopicNameStrategy), else
    /// any known id passes.
    subject: Option<String>,
    ids: &'a KnownSchemaIds,
    /// The last id that passed: the records of one batch nearly always carry
    /// one schema id, so the shared map is read once per batch, not per record.
    last_good: Option<i32>,
}

impl Rule<'_> {
    fn new<'a>(ids: &'a KnownSchemaIds, topic: &str, part: Part, strategy: SubjectNameStrategy) -> Rule<'a> {
        let subject = (strategy == SubjectNameStrategy::TopicName).then(|| format!("{topic}-{}", part.name()));
        Rule { part, subject, ids, last_good: None }
    }

    /// Why `data` (a record's key or value) fails, `None` if it passes.
    fn check(&mut self, data: Option<&[u8]>) -> Option<String> {
        let part = self.part.name();
        // Confluent lets null keys and values (tombstones) through.
        let data = data?;
        if data.len() < HEADER_LEN {
            return Some(format!(
                "the {part} is {} bytes long, too short for the magic byte and a 4-byte schema id",
                data.len()
            ));
        }
        if data[0] != MAGIC_BYTE {
            return Some(format!("the {part} does not start with the magic byte 0 (found {})", data[0]));
        }
        let id = i32::from_be_bytes([data[1], data[2], data[3], data[4]]);
        if self.last_good == Some(id) {
            return None;
        }
        let ok = match &self.subject {
            Some(subject) => self.ids.registered_under(id, subject),
            None => self.ids.contains(id),
        };
        if ok {
            self.last_good = Some(id);
            return None;
        }
        Some(match &self.subject {
            Some(subject) if self.ids.contains(id) => {
                format!("the {part}'s schema id {id} is not registered under subject {subject}")
            }
            _ => format!("the {part}'s schema id {id} is not known to the schema registry"),
        })
    }
}

/// Checks every record of a produced batch of `topic` against the topic's
/// schema validation properties; `Ok` at once when neither is set.
///
/// A batch whose structure is broken is left to the partition's validation,
/// which runs right after on the same bytes with the same bounds and answers
/// it with Kafka's error (CORRUPT_MESSAGE, MESSAGE_TOO_LARGE, ...).
pub fn check_produced(ids: &KnownSchemaIds, config: &TopicConfig, topic: &str, records: &Bytes) -> Result<(), PartitionError> {
    if !config.confluent_key_schema_validation && !config.confluent_value_schema_validation {
        return Ok(());
    }
    let Ok((batch, _)) = RecordBatch::parse(records.clone()) else { return Ok(()) };
    let mut key_rule = config
        .confluent_key_schema_validation
        .then(|| Rule::new(ids, topic, Part::Key, config.confluent_key_subject_name_strategy));
    let mut value_rule = config
        .confluent_value_schema_validation
        .then(|| Rule::new(ids, topic, Part::Value, config.confluent_value_subject_name_strategy));

    let mut errors: Vec<(i32, String)> = Vec::new();
    let mut rejected = 0usize;
    let mut total = 0usize;
    for (index, record) in batch.records_bounded(inflate_limit(config)).enumerate() {
        let Ok(record) = record else { return Ok(()) };
        total += 1;
        let mut problems: Vec<String> = Vec::new();
        if let Some(rule) = key_rule.as_mut() {
            problems.extend(rule.check(record.key.as_deref()));
        }
        if let Some(rule) = value_rule.as_mut() {
            problems.extend(rule.check(record.value.as_deref()));
        }
        if problems.is_empty() {
            continue;
        }
        rejected += 1;
        if errors.len() < MAX_RECORD_ERRORS {
            let index = i32::try_from(index).unwrap_or(i32::MAX);
            errors.push((index, format!("Log record at batch index {index} is rejected by schema validation: {}", problems.join("; "))));
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    let first = errors[0].1.clone();
    let mut error = PartitionError::new(
        ErrorCode::INVALID_RECORD,
        format!("{rejected} of {total} records of the batch failed broker-side schema validation for topic {topic}; first: {first}"),
    );
    error.record_errors = errors;
    Err(error)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use klamm_protocol::records::{Compression, RecordBatchBuilder};

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> TopicConfig {
        let broker = klamm_config::BrokerConfig::from_map(klamm_config::Defaults::Embedded, BTreeMap::new()).expect("broker config").config;
        let overrides = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        TopicConfig::resolve(&broker, &overrides).expect("topic config")
    }

    fn framed(id: i32, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8];
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    fn batch(records: &[(Option<&[u8]>, Option<&[u8]>)], compression: Compression) -> Bytes {
        let mut b = RecordBatchBuilder::new(0).compression(compression);
        for (key, value) in records {
            b = b.record(1_000, *key, *value);
        }
        b.build()
    }

    /// A present key or value (coerces arrays and vectors to a slice).
    fn b(x: &[u8]) -> Option<&[u8]> {
        Some(x)
    }

    fn ids() -> KnownSchemaIds {
        let ids = KnownSchemaIds::default();
        ids.insert(7, "orders-value");
        ids.insert(8, "payments-value");
        ids.insert(9, "orders-key");
        ids
    }

    const VALUE_ON: &[(&str, &str)] = &[("confluent.value.schema.validation", "true")];

    #[test]
    fn topics_without_the_property_are_not_inspected() {
        let raw = batch(&[(None, b(b"{\"raw\":\"json\"}"))], Compression::None);
        assert!(check_produced(&ids(), &config(&[]), "orders", &raw).is_ok());
        // Not even a batch: the partition's own validation answers that.
        assert!(check_produced(&ids(), &config(VALUE_ON), "orders", &Bytes::from_static(b"junk")).is_ok());
    }

    /// One table row: the record, and the part of the error message expected
    /// (None: accepted).
    struct Case {
        name: &'static str,
        value: Option<Vec<u8>>,
        expected: Option<&'static str>,
    }

    #[test]
    fn value_checks_table() {
        let cases = [
            Case { name: "known id under the topic's subject", value: Some(framed(7, b"avro")), expected: None },
            Case { name: "header only, empty payload", value: Some(framed(7, b"")), expected: None },
            Case { name: "tombstone", value: None, expected: None },
            Case { name: "raw JSON", value: Some(b"{\"a\":1}".to_vec()), expected: Some("does not start with the magic byte 0 (found 123)") },
            Case { name: "wrong magic byte", value: Some({ let mut v = framed(7, b"x"); v[0] = 1; v }), expected: Some("magic byte 0 (found 1)") },
            Case { name: "short value", value: Some(vec![0, 0, 7]), expected: Some("3 bytes long, too short") },
            Case { name: "empty value", value: Some(Vec::new()), expected: Some("0 bytes long") },
            Case { name: "unknown id", value: Some(framed(42, b"x")), expected: Some("schema id 42 is not known") },
            Case { name: "negative id", value: Some(framed(-1, b"x")), expected: Some("schema id -1 is not known") },
            Case { name: "id of another topic", value: Some(framed(8, b"x")), expected: Some("schema id 8 is not registered under subject orders-value") },
            Case { name: "key subject's id in the value", value: Some(framed(9, b"x")), expected: Some("not registered under subject orders-value") },
        ];
        for case in &cases {
            let records = batch(&[(b(b"k"), case.value.as_deref())], Compression::None);
            let result = check_produced(&ids(), &config(VALUE_ON), "orders", &records);
            match (case.expected, result) {
                (None, Ok(())) => {}
                (Some(want), Err(e)) => {
                    assert_eq!(e.code, ErrorCode::INVALID_RECORD, "{}", case.name);
                    assert_eq!(e.record_errors.len(), 1, "{}", case.name);
                    assert_eq!(e.record_errors[0].0, 0, "{}", case.name);
                    assert!(e.record_errors[0].1.contains(want), "{}: {:?}", case.name, e.record_errors[0].1);
                    assert!(e.message.as_deref().unwrap_or("").contains(want), "{}: {:?}", case.name, e.message);
                }
                (want, got) => panic!("{}: expected {want:?}, got {:?}", case.name, got.err().map(|e| e.message)),
            }
        }
    }

    #[test]
    fn bad_records_are_listed_by_batch_index() {
        let good = framed(7, b"ok");
        let records = batch(
            &[(None, b(&good)), (None, b(b"raw")), (None, None), (None, b(&framed(42, b""))), (None, b(&good))],
            Compression::None,
        );
        let e = check_produced(&ids(), &config(VALUE_ON), "orders", &records).expect_err("refused");
        let indexes: Vec<i32> = e.record_errors.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, vec![1, 3]);
        assert!(e.message.as_deref().unwrap_or("").starts_with("2 of 5 records"), "{:?}", e.message);
    }

    #[test]
    fn compressed_batches_are_checked_record_by_record() {
        for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let good = batch(&[(None, b(&framed(7, b"a"))), (None, b(&framed(7, b"b")))], codec);
            assert!(check_produced(&ids(), &config(VALUE_ON), "orders", &good).is_ok(), "{codec:?}");
            let bad = batch(&[(None, b(&framed(7, b"a"))), (None, b(b"{}"))], codec);
            let e = check_produced(&ids(), &config(VALUE_ON), "orders", &bad).expect_err("refused");
            assert_eq!(e.record_errors.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![1], "{codec:?}");
        }
    }

    #[test]
    fn keys_are_checked_against_the_key_subject() {
        let on = &[("confluent.key.schema.validation", "true")];
        let ok = batch(&[(b(&framed(9, b"k")), b(b"raw value is not checked"))], Compression::None);
        assert!(check_produced(&ids(), &config(on), "orders", &ok).is_ok());
        let null_key = batch(&[(None, b(b"raw"))], Compression::None);
        assert!(check_produced(&ids(), &config(on), "orders", &null_key).is_ok(), "null keys pass");
        let value_id_as_key = batch(&[(b(&framed(7, b"k")), None)], Compression::None);
        let e = check_produced(&ids(), &config(on), "orders", &value_id_as_key).expect_err("refused");
        assert!(e.record_errors[0].1.contains("key's schema id 7 is not registered under subject orders-key"), "{:?}", e.record_errors);
    }

    #[test]
    fn key_and_value_problems_are_reported_together() {
        let both = &[("confluent.key.schema.validation", "true"), ("confluent.value.schema.validation", "true")];
        let records = batch(&[(b(b"raw key"), b(b"raw value"))], Compression::None);
        let e = check_produced(&ids(), &config(both), "orders", &records).expect_err("refused");
        let message = &e.record_errors[0].1;
        assert!(message.contains("the key does not start") && message.contains("the value does not start"), "{message}");
    }

    #[test]
    fn record_name_strategies_check_only_that_the_id_is_known() {
        for strategy in ["io.confluent.kafka.serializers.subject.RecordNameStrategy", "io.confluent.kafka.serializers.subject.TopicRecordNameStrategy"] {
            let c = config(&[("confluent.value.schema.validation", "true"), ("confluent.value.subject.name.strategy", strategy)]);
            let other_subject = batch(&[(None, b(&framed(8, b"x")))], Compression::None);
            assert!(check_produced(&ids(), &c, "orders", &other_subject).is_ok(), "{strategy}");
            let unknown = batch(&[(None, b(&framed(1234, b"x")))], Compression::None);
            let e = check_produced(&ids(), &c, "orders", &unknown).expect_err("refused");
            assert!(e.record_errors[0].1.contains("1234 is not known"), "{strategy}");
        }
    }

    #[test]
    fn an_id_removed_from_the_store_is_refused_again() {
        let ids = ids();
        let records = batch(&[(None, b(&framed(7, b"x")))], Compression::None);
        assert!(check_produced(&ids, &config(VALUE_ON), "orders", &records).is_ok());
        ids.remove(7, "orders-value");
        assert!(check_produced(&ids, &config(VALUE_ON), "orders", &records).is_err());
    }

    #[test]
    fn record_errors_are_capped() {
        let values: Vec<(Option<&[u8]>, Option<&[u8]>)> = (0..150).map(|_| (None, b(b"raw"))).collect();
        let e = check_produced(&ids(), &config(VALUE_ON), "orders", &batch(&values, Compression::None)).expect_err("refused");
        assert_eq!(e.record_errors.len(), MAX_RECORD_ERRORS);
        assert!(e.message.as_deref().unwrap_or("").starts_with("150 of 150"), "{:?}", e.message);
    }
}
