//! `schemaType: JSON`: JSON Schema documents in the registry.
//!
//! - Parse and validate: the text must be JSON, a schema object or boolean,
//!   valid against its draft's meta-schema (`$schema`, draft 7 when absent, as
//!   Confluent's default), and every `$ref` must resolve: inside the document,
//!   or to one of the schema's `references` by name (the name a `$ref` uses,
//!   e.g. `customer.json` or a full URL, optionally with a `#/...` fragment).
//!   The `jsonschema` crate does both (its validator build fails on an
//!   unresolvable reference).
//! - Canonical form: compact JSON with object keys sorted, so the same schema
//!   written with other whitespace or key order gets the same id. `normalize`
//!   also treats the set-valued keywords as sets (`required`, `enum`, `type`
//!   arrays sorted and de-duplicated).
//! - Compatibility: [`compat`], Confluent's documented JSON Schema rules.

mod compat;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::format::{ResolvedReference, SchemaFormat, SchemaText};

/// The JSON Schema format of the registry.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonSchemaFormat;

impl SchemaFormat for JsonSchemaFormat {
    fn name(&self) -> &'static str {
        "JSON"
    }

    fn canonical(&self, schema: SchemaText<'_>, normalize: bool) -> Result<String, String> {
        let value = parse(schema.schema)?;
        let references = parse_references(schema.references)?;
        validate(&value, &references)?;
        let value = if normalize { normalized(value) } else { value };
        Ok(compact_sorted(&value))
    }

    fn incompatibilities(&self, reader: SchemaText<'_>, writer: SchemaText<'_>) -> Vec<String> {
        let (reader_doc, writer_doc) = match (Document::new(reader), Document::new(writer)) {
            (Ok(r), Ok(w)) => (r, w),
            (Err(e), _) | (_, Err(e)) => return vec![format!("SCHEMA_INVALID: {e}")],
        };
        compat::incompatibilities(&reader_doc, &writer_doc)
    }
}

/// A parsed schema with its parsed references, what the compatibility rules walk.
pub(crate) struct Document {
    root: Value,
    /// (reference name, its parsed schema)
    references: Vec<(String, Value)>,
}

impl Document {
    fn new(text: SchemaText<'_>) -> Result<Document, String> {
        Ok(Document { root: parse(text.schema)?, references: parse_references(text.references)? })
    }

    /// The document a `$ref`'s URI part names: `None` (empty) is the root.
    fn resolve_document(&self, uri: &str) -> Option<&Value> {
        if uri.is_empty() {
            return Some(&self.root);
        }
        reference_for(&self.references, uri)
    }
}

/// Parses schema text: JSON whose top level is a schema (object or boolean).
fn parse(text: &str) -> Result<Value, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("Invalid JSON: {e}"))?;
    match value {
        Value::Object(_) | Value::Bool(_) => Ok(value),
        other => Err(format!("Invalid schema: a JSON Schema is an object or a boolean, not {}", kind(&other))),
    }
}

fn parse_references(references: &[ResolvedReference]) -> Result<Vec<(String, Value)>, String> {
    references
        .iter()
        .map(|r| parse(&r.schema).map(|v| (r.name.clone(), v)).map_err(|e| format!("reference {}: {e}", r.name)))
        .collect()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The reference a `$ref` URI (without fragment) names: by exact name, or
/// by the last path segment on both sides (`customer.json` and
/// `https://example.com/schemas/customer.json` name the same document, as a
/// relative `$ref` resolves against the referring schema's base URI).
fn reference_for<'a>(references: &'a [(String, Value)], uri: &str) -> Option<&'a Value> {
    let last = |s: &str| s.trim_end_matches('#').rsplit('/').next().unwrap_or("").to_string();
    references
        .iter()
        .find(|(name, _)| name == uri || name.trim_end_matches('#') == uri.trim_end_matches('#'))
        .or_else(|| {
            let wanted = last(uri);
            references.iter().find(|(name, _)| !wanted.is_empty() && last(name) == wanted)
        })
        .map(|(_, v)| v)
}

/// Serves the schema's references to the validator by the URI a `$ref` resolves to.
struct References(Arc<Vec<(String, Value)>>);

impl jsonschema::Retrieve for References {
    fn retrieve(&self, uri: &jsonschema::Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let uri = uri.as_str();
        // A relative `$ref: "customer.json"` arrives resolved against the default base URI.
        let relative = uri.strip_prefix("json-schema:///").unwrap_or(uri);
        reference_for(&self.0, uri)
            .or_else(|| reference_for(&self.0, relative))
            .cloned()
            .ok_or_else(|| format!("no reference named {relative}").into())
    }
}

/// Checks the schema against its draft's meta-schema and resolves every `$ref`.
fn validate(value: &Value, references: &[(String, Value)]) -> Result<(), String> {
    let retriever = References(Arc::new(references.to_vec()));
    let value = value.clone();
    // The validator is a third-party parser of untrusted input: a panic in it
    // must become an invalid-schema answer, not take the request task down.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        jsonschema::options()
            .with_draft(draft_of(&value))
            .with_retriever(retriever)
            .build(&value)
            .map(|_| ())
            .map_err(|e| format!("Invalid schema: {e}"))
    }));
    outcome.unwrap_or_else(|_| Err("Invalid schema: the schema could not be processed".to_string()))
}

/// The draft `$schema` names; draft 7 when absent (Confluent's default).
fn draft_of(value: &Value) -> jsonschema::Draft {
    use jsonschema::Draft;
    let Some(uri) = value.get("$schema").and_then(Value::as_str) else { return Draft::Draft7 };
    let uri = uri.trim_end_matches('#');
    if uri.contains("draft-04") {
        Draft::Draft4
    } else if uri.contains("draft-06") {
        Draft::Draft6
    } else if uri.contains("draft/2019-09") {
        Draft::Draft201909
    } else if uri.contains("draft/2020-12") {
        Draft::Draft202012
    } else {
        Draft::Draft7
    }
}

/// Compact JSON, object keys sorted (whatever order serde_json's map keeps).
pub(crate) fn compact_sorted(value: &Value) -> String {
    serde_json::to_string(&sorted(value)).unwrap_or_default()
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let mut out = Map::new();
            for (k, v) in entries {
                out.insert(k.clone(), sorted(v));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// `normalize=true`: set-valued keywords become sorted, duplicate-free sets.
fn normalized(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let v = match k.as_str() {
                    "required" | "enum" | "type" if v.is_array() => as_set(v),
                    // Property names are data, not keywords: recurse into their schemas only.
                    _ => normalized(v),
                };
                out.insert(k, v);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(normalized).collect()),
        other => other,
    }
}

fn as_set(v: Value) -> Value {
    let Value::Array(items) = v else { return v };
    let mut seen = BTreeSet::new();
    let mut out: Vec<(String, Value)> = Vec::new();
    for item in items {
        let key = compact_sorted(&item);
        if seen.insert(key.clone()) {
            out.push((key, item));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Array(out.into_iter().map(|(_, v)| v).collect())
}
