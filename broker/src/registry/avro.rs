//! The AVRO `schemaType`: parsing (with named references) and the stored form
//! come from the `apache-avro` crate; compatibility follows the Avro
//! specification's schema-resolution rules, checked here.
//!
//! Why our own resolution walk rather than `apache_avro::schema_compatibility`:
//! the crate's checker compares referenced named types (`Schema::Ref`) by name
//! only, ignores the aliases of named types, and answers one opaque error
//! without a path. Confluent's registry reports each problem with where it is
//! (`/fields/1/type`), and a reference to another subject's record must be
//! checked structurally, so the walk resolves names itself (a map from full
//! name to the parsed named schema, from the schema and its references).

use std::collections::{HashMap, HashSet};

use apache_avro::schema::{Alias, Name, RecordSchema, Schema};

use super::format::{SchemaFormat, SchemaText};

/// Avro through `apache-avro`.
pub struct AvroFormat;

/// A parsed schema with every named type it can reach (its own and its references').
struct Parsed {
    root: Schema,
    names: HashMap<String, Schema>,
}

fn parse(text: SchemaText<'_>) -> Result<Parsed, String> {
    // A bare primitive name ("string") is valid Avro JSON only when quoted; Confluent's
    // clients send it quoted, so the JSON parser sees a string value.
    let refs: Vec<&str> = text.references.iter().map(|r| r.schema.as_str()).collect();
    let (root, list) = if refs.is_empty() {
        (Schema::parse_str(text.schema).map_err(|e| e.to_string())?, Vec::new())
    } else {
        Schema::parse_str_with_list(text.schema, refs).map_err(|e| e.to_string())?
    };
    let mut names = HashMap::new();
    for s in list.iter().chain(std::iter::once(&root)) {
        collect_names(s, &mut names);
    }
    Ok(Parsed { root, names })
}

fn collect_names(schema: &Schema, out: &mut HashMap<String, Schema>) {
    match schema {
        Schema::Record(r) => {
            out.insert(r.name.fullname(None), schema.clone());
            for f in &r.fields {
                collect_names(&f.schema, out);
            }
        }
        Schema::Enum(e) => {
            out.insert(e.name.fullname(None), schema.clone());
        }
        Schema::Fixed(f) => {
            out.insert(f.name.fullname(None), schema.clone());
        }
        Schema::Array(a) => collect_names(&a.items, out),
        Schema::Map(m) => collect_names(&m.types, out),
        Schema::Union(u) => {
            for v in u.variants() {
                collect_names(v, out);
            }
        }
        Schema::Decimal(d) => collect_names(&d.inner, out),
        _ => {}
    }
}

impl SchemaFormat for AvroFormat {
    fn name(&self) -> &'static str {
        "AVRO"
    }

    /// The full JSON form apache-avro writes (Avro Java's `Schema.toString()`
    /// equivalent: compact, attribute order fixed, defaults, docs and aliases kept),
    /// which is also what Confluent stores. `normalize` gives the same form: it
    /// is already independent of whitespace and attribute order.
    fn canonical(&self, schema: SchemaText<'_>, _normalize: bool) -> Result<String, String> {
        let parsed = parse(schema)?;
        serde_json::to_string(&parsed.root).map_err(|e| e.to_string())
    }

    fn incompatibilities(&self, reader: SchemaText<'_>, writer: SchemaText<'_>) -> Vec<String> {
        let (reader, writer) = match (parse(reader), parse(writer)) {
            (Ok(r), Ok(w)) => (r, w),
            (Err(e), _) | (_, Err(e)) => return vec![format!("schema does not parse: {e}")],
        };
        let mut check = Check { reader: &reader, writer: &writer, seen: HashSet::new(), problems: Vec::new() };
        check.walk(&reader.root, &writer.root, "");
        check.problems
    }
}

struct Check<'a> {
    reader: &'a Parsed,
    writer: &'a Parsed,
    /// (reader name, writer name) pairs of records under check: a recursive type is compatible
    /// with itself unless something else fails.
    seen: HashSet<(String, String)>,
    problems: Vec<String>,
}

/// The type a logical type is carried in, for resolution (the Avro spec resolves on it).
fn underlying(s: &Schema) -> Schema {
    match s {
        Schema::Date | Schema::TimeMillis => Schema::Int,
        Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Schema::Long,
        Schema::Uuid => Schema::String,
        Schema::BigDecimal => Schema::Bytes,
        Schema::Decimal(d) => underlying(&d.inner),
        other => other.clone(),
    }
}

fn type_name(s: &Schema) -> String {
    match s {
        Schema::Null => "null".into(),
        Schema::Boolean => "boolean".into(),
        Schema::Int => "int".into(),
        Schema::Long => "long".into(),
        Schema::Float => "float".into(),
        Schema::Double => "double".into(),
        Schema::Bytes => "bytes".into(),
        Schema::String => "string".into(),
        Schema::Array(_) => "array".into(),
        Schema::Map(_) => "map".into(),
        Schema::Union(_) => "union".into(),
        Schema::Record(r) => format!("record {}", r.name.fullname(None)),
        Schema::Enum(e) => format!("enum {}", e.name.fullname(None)),
        Schema::Fixed(f) => format!("fixed {}", f.name.fullname(None)),
        Schema::Ref { name } => name.fullname(None),
        other => type_name(&underlying(other)),
    }
}

/// Whether a named type of the writer called `writer` may be read as `reader` (names equal,
/// or the writer's full name is one of the reader's aliases, as the Avro spec allows).
fn names_match(reader: &Name, reader_aliases: Option<&Vec<Alias>>, writer: &Name) -> bool {
    let r = reader.fullname(None);
    let w = writer.fullname(None);
    if r == w {
        return true;
    }
    reader_aliases.is_some_and(|aliases| {
        aliases.iter().any(|a| {
            let full = a.fullname(reader.namespace.clone());
            full == w || a.name() == writer.name && a.namespace().is_none()
        })
    })
}

impl Check<'_> {
    fn resolve(&self, s: &Schema, reader_side: bool) -> Schema {
        match s {
            Schema::Ref { name } => {
                let names = if reader_side { &self.reader.names } else { &self.writer.names };
                names.get(&name.fullname(None)).cloned().unwrap_or_else(|| s.clone())
            }
            other => other.clone(),
        }
    }

    fn fail(&mut self, path: &str, message: String) {
        let at = if path.is_empty() { "/".to_string() } else { path.to_string() };
        self.problems.push(format!("{message} at '{at}'"));
    }

    /// Can data written with `writer` be read with `reader`?
    fn walk(&mut self, reader: &Schema, writer: &Schema, path: &str) {
        let reader = self.resolve(reader, true);
        let writer = self.resolve(writer, false);
        // Unions first: a writer union needs every branch readable; a reader union needs one
        // branch able to read the writer.
        if let Schema::Union(w) = &writer {
            for (i, branch) in w.variants().iter().enumerate() {
                if !self.readable(&reader, branch) {
                    self.fail(
                        &format!("{path}/{i}"),
                        format!("reader type {} cannot read the writer's union branch {}", type_name(&reader), type_name(branch)),
                    );
                }
            }
            return;
        }
        if let Schema::Union(r) = &reader {
            if !r.variants().iter().any(|branch| self.readable(branch, &writer)) {
                self.fail(path, format!("reader union lacks writer type {}", type_name(&writer)));
            }
            return;
        }
        let (r, w) = (underlying(&reader), underlying(&writer));
        match (&r, &w) {
            (Schema::Null, Schema::Null) | (Schema::Boolean, Schema::Boolean) | (Schema::Int, Schema::Int) => {}
            (Schema::Long, Schema::Int | Schema::Long) => {}
            (Schema::Float, Schema::Int | Schema::Long | Schema::Float) => {}
            (Schema::Double, Schema::Int | Schema::Long | Schema::Float | Schema::Double) => {}
            (Schema::String | Schema::Bytes, Schema::String | Schema::Bytes) => {}
            (Schema::Array(ra), Schema::Array(wa)) => {
                let (ri, wi) = ((*ra.items).clone(), (*wa.items).clone());
                self.walk(&ri, &wi, &format!("{path}/items"));
            }
            (Schema::Map(rm), Schema::Map(wm)) => {
                let (rv, wv) = ((*rm.types).clone(), (*wm.types).clone());
                self.walk(&rv, &wv, &format!("{path}/values"));
            }
            (Schema::Fixed(rf), Schema::Fixed(wf)) => {
                if !names_match(&rf.name, rf.aliases.as_ref(), &wf.name) {
                    self.fail(&format!("{path}/name"), format!("expected fixed {} but found {}", wf.name.fullname(None), rf.name.fullname(None)));
                } else if rf.size != wf.size {
                    self.fail(&format!("{path}/size"), format!("expected fixed size {} but found {}", wf.size, rf.size));
                }
            }
            (Schema::Enum(re), Schema::Enum(we)) => {
                if !names_match(&re.name, re.aliases.as_ref(), &we.name) {
                    self.fail(&format!("{path}/name"), format!("expected enum {} but found {}", we.name.fullname(None), re.name.fullname(None)));
                    return;
                }
                // A symbol the reader lacks is an error unless the reader has a default symbol.
                let missing: Vec<&String> = we.symbols.iter().filter(|s| !re.symbols.contains(s)).collect();
                if !missing.is_empty() && re.default.is_none() {
                    let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
                    self.fail(&format!("{path}/symbols"), format!("reader enum {} lacks symbols [{}]", re.name.fullname(None), list.join(", ")));
                }
            }
            (Schema::Record(rr), Schema::Record(wr)) => self.records(rr, wr, path),
            _ => self.fail(path, format!("reader type {} cannot read writer type {}", type_name(&reader), type_name(&writer))),
        }
    }

    fn records(&mut self, reader: &RecordSchema, writer: &RecordSchema, path: &str) {
        if !names_match(&reader.name, reader.aliases.as_ref(), &writer.name) {
            self.fail(
                &format!("{path}/name"),
                format!("expected record {} but found {}", writer.name.fullname(None), reader.name.fullname(None)),
            );
            return;
        }
        let key = (reader.name.fullname(None), writer.name.fullname(None));
        if !self.seen.insert(key.clone()) {
            return;
        }
        for (i, field) in reader.fields.iter().enumerate() {
            let found = writer.fields.iter().find(|w| {
                w.name == field.name || field.aliases.as_ref().is_some_and(|a| a.contains(&w.name))
            });
            match found {
                Some(w) => {
                    let (rs, ws) = (field.schema.clone(), w.schema.clone());
                    let before = self.problems.len();
                    self.walk(&rs, &ws, &format!("{path}/fields/{i}/type"));
                    for p in &mut self.problems[before..] {
                        *p = format!("field '{}': {p}", field.name);
                    }
                }
                None if field.default.is_none() => self.fail(
                    &format!("{path}/fields/{i}"),
                    format!("reader field '{}' has no default value and is missing in the writer", field.name),
                ),
                None => {}
            }
        }
        self.seen.remove(&key);
    }

    /// Whether `reader` reads `writer` without problems (used for union branches).
    fn readable(&mut self, reader: &Schema, writer: &Schema) -> bool {
        let before = self.problems.len();
        self.walk(reader, writer, "");
        let ok = self.problems.len() == before;
        self.problems.truncate(before);
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::format::ResolvedReference;

    fn text(s: &str) -> SchemaText<'_> {
        SchemaText { schema: s, references: &[] }
    }

    /// `reader` reads data written with `writer`?
    fn compatible(reader: &str, writer: &str) -> bool {
        let problems = AvroFormat.incompatibilities(text(reader), text(writer));
        problems.is_empty()
    }

    fn record(fields: &str) -> String {
        format!(r#"{{"type":"record","name":"Order","namespace":"shop","fields":[{fields}]}}"#)
    }

    #[test]
    fn canonical_ignores_whitespace_and_attribute_order() {
        let a = AvroFormat.canonical(text(&record(r#"{"name":"id","type":"string"}"#)), false).unwrap();
        let b = AvroFormat
            .canonical(text(r#"{ "fields": [ {"type": {"type":"string"}, "name": "id"} ], "namespace":"shop", "name":"Order", "type":"record" }"#), false)
            .unwrap();
        assert_eq!(a, b);
        assert!(a.contains("\"shop.Order\"") || a.contains("\"Order\""), "{a}");
    }

    #[test]
    fn invalid_schemas_are_refused() {
        for bad in ["", "{", r#"{"type":"record","name":"X"}"#, r#"{"type":"nope"}"#, r#"{"type":"enum","name":"E","symbols":["A","A"]}"#, "42"] {
            assert!(AvroFormat.canonical(text(bad), false).is_err(), "{bad}");
        }
    }

    #[test]
    fn resolution_rules_table() {
        let id = r#"{"name":"id","type":"string"}"#;
        let cases: Vec<(&str, String, String, bool)> = vec![
            ("same", record(id), record(id), true),
            ("added field with default", record(&format!(r#"{id},{{"name":"n","type":"int","default":0}}"#)), record(id), true),
            ("added field without default", record(&format!(r#"{id},{{"name":"n","type":"int"}}"#)), record(id), false),
            ("removed field", record(id), record(&format!(r#"{id},{{"name":"n","type":"int"}}"#)), true),
            ("int read as long", r#""long""#.into(), r#""int""#.into(), true),
            ("long read as int", r#""int""#.into(), r#""long""#.into(), false),
            ("int read as float", r#""float""#.into(), r#""int""#.into(), true),
            ("long read as double", r#""double""#.into(), r#""long""#.into(), true),
            ("float read as double", r#""double""#.into(), r#""float""#.into(), true),
            ("double read as float", r#""float""#.into(), r#""double""#.into(), false),
            ("string read as bytes", r#""bytes""#.into(), r#""string""#.into(), true),
            ("bytes read as string", r#""string""#.into(), r#""bytes""#.into(), true),
            ("string read as int", r#""int""#.into(), r#""string""#.into(), false),
            (
                "enum symbol added",
                r#"{"type":"enum","name":"C","symbols":["EUR","USD","GBP"]}"#.into(),
                r#"{"type":"enum","name":"C","symbols":["EUR","USD"]}"#.into(),
                true,
            ),
            (
                "enum symbol removed",
                r#"{"type":"enum","name":"C","symbols":["EUR"]}"#.into(),
                r#"{"type":"enum","name":"C","symbols":["EUR","USD"]}"#.into(),
                false,
            ),
            (
                "enum symbol removed, reader default",
                r#"{"type":"enum","name":"C","symbols":["EUR","OTHER"],"default":"OTHER"}"#.into(),
                r#"{"type":"enum","name":"C","symbols":["EUR","USD"]}"#.into(),
                true,
            ),
            ("union gains branch", r#"["null","string","int"]"#.into(), r#"["null","string"]"#.into(), true),
            ("union loses branch", r#"["null","string"]"#.into(), r#"["null","string","int"]"#.into(), false),
            ("plain read as union", r#"["null","string"]"#.into(), r#""string""#.into(), true),
            ("union read as plain", r#""string""#.into(), r#"["null","string"]"#.into(), false),
            ("union of int read as long", r#""long""#.into(), r#"["int"]"#.into(), true),
            ("array items promoted", r#"{"type":"array","items":"long"}"#.into(), r#"{"type":"array","items":"int"}"#.into(), true),
            ("map values narrowed", r#"{"type":"map","values":"int"}"#.into(), r#"{"type":"map","values":"long"}"#.into(), false),
            ("fixed size differs", r#"{"type":"fixed","name":"F","size":4}"#.into(), r#"{"type":"fixed","name":"F","size":8}"#.into(), false),
            (
                "record renamed without alias",
                r#"{"type":"record","name":"B","fields":[]}"#.into(),
                r#"{"type":"record","name":"A","fields":[]}"#.into(),
                false,
            ),
            (
                "record renamed with alias",
                r#"{"type":"record","name":"B","aliases":["A"],"fields":[]}"#.into(),
                r#"{"type":"record","name":"A","fields":[]}"#.into(),
                true,
            ),
            (
                "field renamed with alias",
                record(r#"{"name":"order_id","type":"string","aliases":["id"]}"#),
                record(id),
                true,
            ),
            ("field renamed without alias", record(r#"{"name":"order_id","type":"string"}"#), record(id), false),
            ("logical date read as int", r#""int""#.into(), r#"{"type":"int","logicalType":"date"}"#.into(), true),
            (
                "recursive record",
                r#"{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"],"default":null}]}"#.into(),
                r#"{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"]}]}"#.into(),
                true,
            ),
        ];
        for (name, reader, writer, want) in cases {
            assert_eq!(compatible(&reader, &writer), want, "{name}: {:?}", AvroFormat.incompatibilities(text(&reader), text(&writer)));
        }
    }

    #[test]
    fn problems_name_where_they_are() {
        let reader = record(r#"{"name":"id","type":"string"},{"name":"n","type":"int"}"#);
        let writer = record(r#"{"name":"id","type":"int"}"#);
        let problems = AvroFormat.incompatibilities(text(&reader), text(&writer));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("/fields/0/type"), "{problems:?}");
        assert!(problems[1].contains("'n'") && problems[1].contains("/fields/1"), "{problems:?}");
    }

    #[test]
    fn references_resolve_and_are_checked_structurally() {
        let item_v1 = r#"{"type":"record","name":"Item","namespace":"shop","fields":[{"name":"sku","type":"string"}]}"#;
        let item_v2 = r#"{"type":"record","name":"Item","namespace":"shop","fields":[{"name":"sku","type":"string"},{"name":"qty","type":"int"}]}"#;
        let order = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"items","type":{"type":"array","items":"shop.Item"}}]}"#;
        let r1 = [ResolvedReference { name: "shop.Item".into(), subject: "item".into(), version: 1, schema: item_v1.into() }];
        let r2 = [ResolvedReference { name: "shop.Item".into(), subject: "item".into(), version: 2, schema: item_v2.into() }];
        let canonical = AvroFormat.canonical(SchemaText { schema: order, references: &r1 }, false).unwrap();
        assert!(canonical.contains("shop.Item"), "{canonical}");
        assert!(AvroFormat.canonical(text(order), false).is_err(), "an unresolved reference must not parse");
        let problems = AvroFormat.incompatibilities(SchemaText { schema: order, references: &r2 }, SchemaText { schema: order, references: &r1 });
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("qty"), "{problems:?}");
    }
}
