//! Confluent's JSON Schema compatibility rules: can a consumer validating
//! with `reader` accept every document valid under `writer`?
//!
//! The walk compares the writer (the "original") with the reader (the
//! "update") keyword by keyword and classifies each difference under
//! Confluent's difference names; a difference that widens what the reader
//! accepts is compatible (`MAX_LENGTH_INCREASED`, `ENUM_ARRAY_EXTENDED`,
//! `REQUIRED_ATTRIBUTE_REMOVED`, ...), one that narrows it is not
//! (`TYPE_NARROWED`, `PATTERN_ADDED`, `REQUIRED_ATTRIBUTE_ADDED`, ...).
//! Properties follow the content-model rules: adding a property to an open
//! model (`additionalProperties` absent or true) is incompatible, since old
//! data may hold that name with any value; removing one from a closed model
//! (`additionalProperties: false`) is too; a partially open model (a schema
//! for `additionalProperties`) covers an added or removed property when the
//! property's schema and the additional-properties schema are compatible.
//! Only the incompatible differences are reported, one message each:
//! `NAME at path '#/...': what changed`.
//!
//! `$ref`s are followed (inside the document and into references); a pair of
//! references already being compared is not compared again, so recursive
//! schemas end, and the walk is bounded in depth.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::Document;

/// Deeper than this, schemas are not compared further (hostile nesting).
const MAX_DEPTH: usize = 64;

/// Why `reader` cannot read what `writer` wrote; empty when it can.
pub(crate) fn incompatibilities(reader: &Document, writer: &Document) -> Vec<String> {
    let mut walk = Walk { writer, reader, seen: HashSet::new(), out: Vec::new() };
    walk.compare(Side { value: &writer.root, doc_ref: None }, Side { value: &reader.root, doc_ref: None }, "#", 0);
    walk.out
}

/// A schema and the document it lives in (`None`: the root document; else
/// the URI part of the `$ref` that led into a reference).
#[derive(Clone, Copy)]
struct Side<'a> {
    value: &'a Value,
    doc_ref: Option<&'a str>,
}

struct Walk<'a> {
    writer: &'a Document,
    reader: &'a Document,
    /// `$ref` pairs under comparison (writer ref, reader ref).
    seen: HashSet<(String, String)>,
    out: Vec<String>,
}

const ALWAYS: Value = Value::Bool(true);
/// What an absent object keyword (or a boolean schema) reads as.
static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);
static NO_ITEMS: Vec<Value> = Vec::new();

fn obj(v: &Value) -> Option<&Map<String, Value>> {
    v.as_object()
}

/// A difference Confluent classifies as incompatible.
fn report(out: &mut Vec<String>, name: &str, path: &str, what: String) {
    out.push(format!("{name} at path '{path}': {what}"));
}

fn num(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64)
}

impl<'a> Walk<'a> {
    /// Follows `$ref` chains (bounded) to the schema they name.
    fn resolve(&self, doc: &'a Document, mut side: Side<'a>) -> (Side<'a>, Option<String>) {
        let mut key = None;
        for _ in 0..16 {
            let Some(reference) = side.value.get("$ref").and_then(Value::as_str) else { break };
            let (uri, fragment) = reference.split_once('#').unwrap_or((reference, ""));
            let (document, doc_ref) = if uri.is_empty() {
                (side.doc_ref.map_or(Some(&doc.root), |d| doc.resolve_document(d)), side.doc_ref)
            } else {
                (doc.resolve_document(uri), Some(uri))
            };
            let Some(target) = document.and_then(|d| if fragment.is_empty() { Some(d) } else { d.pointer(fragment) }) else { break };
            key = Some(format!("{}#{fragment}", doc_ref.unwrap_or("")));
            side = Side { value: target, doc_ref };
        }
        (side, key)
    }

    /// Whether `writer` → `reader` has no incompatible difference (used to
    /// match subschemas of combinations and partially open content models).
    fn fits(&mut self, writer: Side<'a>, reader: Side<'a>, depth: usize) -> bool {
        let saved = std::mem::take(&mut self.out);
        self.compare(writer, reader, "#", depth + 1);
        let ok = self.out.is_empty();
        self.out = saved;
        ok
    }

    fn compare(&mut self, writer: Side<'a>, reader: Side<'a>, path: &str, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        let (writer, wkey) = self.resolve(self.writer, writer);
        let (reader, rkey) = self.resolve(self.reader, reader);
        if let (Some(w), Some(r)) = (&wkey, &rkey) {
            if !self.seen.insert((w.clone(), r.clone())) {
                return;
            }
        }
        self.compare_resolved(writer, reader, path, depth);
        if let (Some(w), Some(r)) = (wkey, rkey) {
            self.seen.remove(&(w, r));
        }
    }

    fn compare_resolved(&mut self, writer: Side<'a>, reader: Side<'a>, path: &str, depth: usize) {
        // Boolean schemas: `true` accepts anything, `false` nothing.
        match (writer.value, reader.value) {
            (_, Value::Bool(true)) | (Value::Bool(false), _) => return,
            (_, Value::Bool(false)) => {
                report(&mut self.out, "TYPE_NARROWED", path, "the reader schema is false and accepts nothing".into());
                return;
            }
            _ => {}
        }
        let w = obj(writer.value).unwrap_or(&*EMPTY);
        let r = obj(reader.value).unwrap_or(&*EMPTY);
        if w == r && writer.doc_ref == reader.doc_ref && !w.contains_key("$ref") {
            // Identical text in the same document: identical meaning.
            if !contains_ref(writer.value) {
                return;
            }
        }
        if self.compare_combined(writer, reader, w, r, path, depth) {
            return;
        }
        self.compare_not(writer, reader, w, r, path, depth);
        self.compare_types(w, r, path);
        self.compare_enum(w, r, path);
        self.compare_numbers(w, r, path);
        self.compare_strings(w, r, path);
        self.compare_objects(writer, reader, w, r, path, depth);
        self.compare_arrays(writer, reader, w, r, path, depth);
    }

    /// oneOf / anyOf / allOf. Returns true when the combination rules decided
    /// the whole comparison (a schema became or stopped being a combination).
    fn compare_combined(&mut self, writer: Side<'a>, reader: Side<'a>, w: &'a Map<String, Value>, r: &'a Map<String, Value>, path: &str, depth: usize) -> bool {
        let combo = |m: &'a Map<String, Value>| ["oneOf", "anyOf", "allOf"].into_iter().find_map(|k| m.get(k).and_then(Value::as_array).map(|a| (k, a)));
        match (combo(w), combo(r)) {
            (None, None) => false,
            (None, Some((kind, subs))) => {
                // A single schema became a combination: fine if one choice
                // (all of them, for allOf) still reads the writer's data.
                let here = |s: &'a Value| Side { value: s, doc_ref: reader.doc_ref };
                let ok = if kind == "allOf" {
                    subs.iter().all(|s| self.fits(writer, here(s), depth))
                } else {
                    subs.iter().any(|s| self.fits(writer, here(s), depth))
                };
                if !ok {
                    report(&mut self.out, "COMBINED_TYPE_CHANGED", path, format!("the reader's {kind} has no choice that reads the writer's schema"));
                }
                true
            }
            (Some((kind, subs)), None) => {
                // A combination became one schema: every writer choice (one
                // of them, for allOf) must be readable by it.
                let there = |s: &'a Value| Side { value: s, doc_ref: writer.doc_ref };
                let ok = if kind == "allOf" {
                    subs.iter().any(|s| self.fits(there(s), reader, depth))
                } else {
                    subs.iter().all(|s| self.fits(there(s), reader, depth))
                };
                if !ok {
                    report(&mut self.out, "COMBINED_TYPE_CHANGED", path, format!("the writer's {kind} became a single schema that does not read all of its choices"));
                }
                true
            }
            (Some((wkind, wsubs)), Some((rkind, rsubs))) => {
                if wkind != rkind && !(wkind == "oneOf" && rkind == "anyOf") {
                    report(&mut self.out, "COMBINED_TYPE_CHANGED", path, format!("{wkind} changed to {rkind}"));
                    return true;
                }
                let wside = |s: &'a Value| Side { value: s, doc_ref: writer.doc_ref };
                let rside = |s: &'a Value| Side { value: s, doc_ref: reader.doc_ref };
                if wkind == "allOf" {
                    // Product type: every reader constraint must hold for some writer one.
                    if rsubs.len() > wsubs.len() {
                        report(&mut self.out, "PRODUCT_TYPE_EXTENDED", path, format!("allOf grew from {} to {} schemas", wsubs.len(), rsubs.len()));
                        return true;
                    }
                    if !match_all(rsubs.len(), wsubs.len(), |ri, wi| self.fits(wside(&wsubs[wi]), rside(&rsubs[ri]), depth)) {
                        report(&mut self.out, "COMBINED_TYPE_SUBSCHEMAS_CHANGED", path, "a schema of the reader's allOf matches none of the writer's".into());
                    }
                } else {
                    // Sum type: every writer choice must be read by some reader choice.
                    if rsubs.len() < wsubs.len() {
                        report(&mut self.out, "SUM_TYPE_NARROWED", path, format!("{rkind} shrank from {} to {} schemas", wsubs.len(), rsubs.len()));
                        return true;
                    }
                    if !match_all(wsubs.len(), rsubs.len(), |wi, ri| self.fits(wside(&wsubs[wi]), rside(&rsubs[ri]), depth)) {
                        report(&mut self.out, "COMBINED_TYPE_SUBSCHEMAS_CHANGED", path, format!("a choice of the writer's {wkind} is read by none of the reader's"));
                    }
                }
                false
            }
        }
    }

    fn compare_not(&mut self, writer: Side<'a>, reader: Side<'a>, w: &'a Map<String, Value>, r: &'a Map<String, Value>, path: &str, depth: usize) {
        match (w.get("not"), r.get("not")) {
            (None, Some(_)) => report(&mut self.out, "NOT_TYPE_NARROWED", path, "the reader adds a 'not' schema".into()),
            // What the reader excludes must be excluded by the writer too: compare the other way round.
            (Some(wn), Some(rn)) if !self.fits(Side { value: rn, doc_ref: reader.doc_ref }, Side { value: wn, doc_ref: writer.doc_ref }, depth) => {
                report(&mut self.out, "NOT_TYPE_NARROWED", path, "the reader's 'not' schema excludes more".into());
            }
            _ => {}
        }
    }

    fn compare_types(&mut self, w: &Map<String, Value>, r: &Map<String, Value>, path: &str) {
        let (Some(wt), rt) = (types(w), types(r)) else {
            if let Some(rt) = types(r) {
                report(&mut self.out, "TYPE_NARROWED", path, format!("the reader restricts the type to {}", rt.join(", ")));
            }
            return;
        };
        let Some(rt) = rt else { return };
        let covers = |set: &[String], t: &str| set.iter().any(|s| s == t || (s == "number" && t == "integer"));
        let widened = wt.iter().all(|t| covers(&rt, t));
        if widened {
            return;
        }
        let narrowed = rt.iter().all(|t| covers(&wt, t));
        let name = if narrowed { "TYPE_NARROWED" } else { "TYPE_CHANGED" };
        report(&mut self.out, name, path, format!("type {} became {}", wt.join(", "), rt.join(", ")));
    }

    fn compare_enum(&mut self, w: &Map<String, Value>, r: &Map<String, Value>, path: &str) {
        let values = |m: &Map<String, Value>| -> Option<Vec<Value>> {
            m.get("enum").and_then(Value::as_array).cloned().or_else(|| m.get("const").map(|c| vec![c.clone()]))
        };
        match (values(w), values(r)) {
            (None, Some(_)) => report(&mut self.out, "ENUM_ARRAY_NARROWED", path, "the reader adds an enum (or const)".into()),
            (Some(wv), Some(rv)) => {
                if wv.iter().all(|v| rv.contains(v)) {
                    return;
                }
                let name = if rv.iter().all(|v| wv.contains(v)) { "ENUM_ARRAY_NARROWED" } else { "ENUM_ARRAY_CHANGED" };
                let missing: Vec<String> = wv.iter().filter(|v| !rv.contains(v)).map(|v| v.to_string()).collect();
                report(&mut self.out, name, path, format!("the reader does not accept {}", missing.join(", ")));
            }
            _ => {}
        }
    }

    /// An upper bound (maximum, maxLength, ...): added or decreased narrows.
    fn upper(&mut self, w: &Map<String, Value>, r: &Map<String, Value>, key: &str, prefix: &str, path: &str) {
        match (num(w.get(key)), num(r.get(key))) {
            (None, Some(b)) => report(&mut self.out, &format!("{prefix}_ADDED"), path, format!("the reader adds {key} {b}")),
            (Some(a), Some(b)) if b < a => report(&mut self.out, &format!("{prefix}_DECREASED"), path, format!("{key} decreased from {a} to {b}")),
            _ => {}
        }
    }

    /// A lower bound (minimum, minLength, ...): added or increased narrows.
    fn lower(&mut self, w: &Map<String, Value>, r: &Map<String, Value>, key: &str, prefix: &str, path: &str) {
        match (num(w.get(key)), num(r.get(key))) {
            (None, Some(b)) => report(&mut self.out, &format!("{prefix}_ADDED"), path, format!("the reader adds {key} {b}")),
            (Some(a), Some(b)) if b > a => report(&mut self.out, &format!("{prefix}_INCREASED"), path, format!("{key} increased from {a} to {b}")),
            _ => {}
        }
    }

    fn compare_numbers(&mut self, w: &Map<String, Value>, r: &Map<String, Value>, path: &str) {
        self.upper(w, r, "maximum", "MAXIMUM", path);
        self.lower(w, r, "minimum", "MINIMUM", path);
        // Draft 4 spells exclusive bounds as booleans beside maximum/minimum.
        for (key, prefix) in [("exclusiveMaximum", "EXCLUSIVE_MAXIMUM"), ("exclusiveMinimum", "EXCLUSIVE_MINIMUM")] {
            match (w.get(key), r.get(key)) {
                (Some(Value::Bool(_)) | None, Some(Value::Bool(b))) => {
                    if *b && w.get(key) != Some(&Value::Bool(true)) {
                        report(&mut self.out, &format!("{prefix}_ADDED"), path, format!("the reader makes the bound exclusive ({key})"));
                    }
                }
                _ if key == "exclusiveMaximum" => self.upper(w, r, key, prefix, path),
                _ => self.lower(w, r, key, prefix, path),
            }
        }
        match (num(w.get("multipleOf")), num(r.get("multipleOf"))) {
            (None, Some(b)) => report(&mut self.out, "MULTIPLE_OF_ADDED", path, format!("the reader adds multipleOf {b}")),
            (Some(a), Some(b)) if a != b => {
                if b != 0.0 && (a / b).fract() == 0.0 {
                    // MULTIPLE_OF_REDUCED: every multiple of a is one of b.
                } else if a != 0.0 && (b / a).fract() == 0.0 {
                    report(&mut self.out, "MULTIPLE_OF_EXPANDED", path, format!("multipleOf {a} became {b}"));
                } else {
                    report(&mut self.out, "MULTIPLE_OF_CHANGED", path, format!("multipleOf {a} became {b}"));
                }
            }
            _ => {}
        }
    }

    fn compare_strings(&mut self, w: &Map<String, Value>, r: &Map<String, Value>, path: &str) {
        self.upper(w, r, "maxLength", "MAX_LENGTH", path);
        self.lower(w, r, "minLength", "MIN_LENGTH", path);
        match (w.get("pattern").and_then(Value::as_str), r.get("pattern").and_then(Value::as_str)) {
            (None, Some(p)) => report(&mut self.out, "PATTERN_ADDED", path, format!("the reader adds pattern {p}")),
            (Some(a), Some(b)) if a != b => report(&mut self.out, "PATTERN_CHANGED", path, format!("pattern {a} became {b}")),
            _ => {}
        }
    }

    fn compare_objects(&mut self, writer: Side<'a>, reader: Side<'a>, w: &'a Map<String, Value>, r: &'a Map<String, Value>, path: &str, depth: usize) {
        self.upper(w, r, "maxProperties", "MAX_PROPERTIES", path);
        self.lower(w, r, "minProperties", "MIN_PROPERTIES", path);
        let wp = w.get("properties").and_then(Value::as_object).unwrap_or(&*EMPTY);
        let rp = r.get("properties").and_then(Value::as_object).unwrap_or(&*EMPTY);
        let wreq = required(w);
        let rreq = required(r);
        let wmodel = ContentModel::of(w, "additionalProperties");
        let rmodel = ContentModel::of(r, "additionalProperties");
        let wside = |v: &'a Value| Side { value: v, doc_ref: writer.doc_ref };
        let rside = |v: &'a Value| Side { value: v, doc_ref: reader.doc_ref };

        for (name, wschema) in wp {
            let at = format!("{path}/properties/{name}");
            match rp.get(name) {
                Some(rschema) => self.compare(wside(wschema), rside(rschema), &at, depth + 1),
                None => match rmodel {
                    ContentModel::Open => {} // PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL
                    ContentModel::Closed => report(&mut self.out, "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", &at, format!("the reader's closed content model drops property '{name}'")),
                    ContentModel::Partial(extra) => {
                        if !self.fits(wside(wschema), rside(extra), depth) {
                            report(&mut self.out, "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", &at, format!("the reader's additionalProperties schema does not read property '{name}'"));
                        }
                    }
                },
            }
        }
        for (name, rschema) in rp {
            if wp.contains_key(name) {
                continue;
            }
            let at = format!("{path}/properties/{name}");
            match wmodel {
                ContentModel::Open => report(&mut self.out, "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", &at, format!("the writer's content model is open, so its data may already hold '{name}' with any value")),
                ContentModel::Closed => {
                    if rreq.contains(&name.as_str()) && rschema.get("default").is_none() {
                        report(&mut self.out, "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", &at, format!("the reader requires new property '{name}', which the writer's data lacks"));
                    }
                }
                ContentModel::Partial(extra) => {
                    if !self.fits(wside(extra), rside(rschema), depth) {
                        report(&mut self.out, "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", &at, format!("the writer's additionalProperties schema allows values of '{name}' that the reader refuses"));
                    } else if rreq.contains(&name.as_str()) && rschema.get("default").is_none() {
                        report(&mut self.out, "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", &at, format!("the reader requires new property '{name}', which the writer's data lacks"));
                    }
                }
            }
        }
        for name in &rreq {
            // New properties are judged by the content-model rules above.
            if !wreq.contains(name) && wp.contains_key(*name) {
                let has_default = rp.get(*name).and_then(|s| s.get("default")).is_some();
                if !has_default {
                    report(&mut self.out, "REQUIRED_ATTRIBUTE_ADDED", &format!("{path}/required"), format!("the reader requires '{name}'"));
                }
            }
        }
        self.compare_model(writer, reader, wmodel, rmodel, "ADDITIONAL_PROPERTIES", &format!("{path}/additionalProperties"), depth);
        for key in ["dependentRequired", "dependencies"] {
            let (Some(wd), Some(rd)) = (w.get(key).and_then(Value::as_object).or(Some(&*EMPTY)), r.get(key).and_then(Value::as_object)) else { continue };
            for (name, needs) in rd {
                let Some(needs) = needs.as_array() else { continue };
                let before = wd.get(name).and_then(Value::as_array);
                if needs.iter().any(|n| !before.is_some_and(|b| b.contains(n))) {
                    report(&mut self.out, "DEPENDENCY_ARRAY_EXTENDED", &format!("{path}/{key}/{name}"), format!("the reader adds properties that '{name}' requires"));
                }
            }
        }
    }

    /// additionalProperties / additionalItems, open → closed and schema changes.
    fn compare_model(&mut self, writer: Side<'a>, reader: Side<'a>, wmodel: ContentModel<'a>, rmodel: ContentModel<'a>, prefix: &str, path: &str, depth: usize) {
        match (wmodel, rmodel) {
            (_, ContentModel::Open) | (ContentModel::Closed, _) => {}
            (_, ContentModel::Closed) => report(&mut self.out, &format!("{prefix}_REMOVED"), path, "the reader closes the content model".into()),
            (ContentModel::Open, ContentModel::Partial(_)) => report(&mut self.out, &format!("{prefix}_NARROWED"), path, "the reader constrains additional values".into()),
            (ContentModel::Partial(a), ContentModel::Partial(b)) => {
                if !self.fits(Side { value: a, doc_ref: writer.doc_ref }, Side { value: b, doc_ref: reader.doc_ref }, depth) {
                    report(&mut self.out, &format!("{prefix}_NARROWED"), path, "the reader's schema for additional values refuses some of the writer's".into());
                }
            }
        }
    }

    fn compare_arrays(&mut self, writer: Side<'a>, reader: Side<'a>, w: &'a Map<String, Value>, r: &'a Map<String, Value>, path: &str, depth: usize) {
        self.upper(w, r, "maxItems", "MAX_ITEMS", path);
        self.lower(w, r, "minItems", "MIN_ITEMS", path);
        if r.get("uniqueItems") == Some(&Value::Bool(true)) && w.get("uniqueItems") != Some(&Value::Bool(true)) {
            report(&mut self.out, "UNIQUE_ITEMS_ADDED", path, "the reader requires unique items".into());
        }
        let wside = |v: &'a Value| Side { value: v, doc_ref: writer.doc_ref };
        let rside = |v: &'a Value| Side { value: v, doc_ref: reader.doc_ref };
        // Tuples: `prefixItems` (2020-12) or an `items` array (earlier drafts).
        let tuple = |m: &'a Map<String, Value>| m.get("prefixItems").and_then(Value::as_array).or_else(|| m.get("items").and_then(Value::as_array));
        let rest_key = |m: &Map<String, Value>| if m.contains_key("prefixItems") { "items" } else { "additionalItems" };
        match (tuple(w), tuple(r)) {
            (None, None) => {
                if let (Some(wi), Some(ri)) = (w.get("items"), r.get("items")) {
                    self.compare(wside(wi), rside(ri), &format!("{path}/items"), depth + 1);
                } else if let (None, Some(ri)) = (w.get("items"), r.get("items")) {
                    self.compare(wside(&ALWAYS), rside(ri), &format!("{path}/items"), depth + 1);
                }
            }
            (wt, rt) => {
                let wt = wt.unwrap_or(&NO_ITEMS);
                let rt = rt.unwrap_or(&NO_ITEMS);
                let wmodel = ContentModel::of(w, rest_key(w));
                let rmodel = ContentModel::of(r, rest_key(r));
                for i in 0..wt.len().max(rt.len()) {
                    let at = format!("{path}/items/{i}");
                    match (wt.get(i), rt.get(i)) {
                        (Some(a), Some(b)) => self.compare(wside(a), rside(b), &at, depth + 1),
                        (Some(_), None) if rmodel == ContentModel::Closed => report(&mut self.out, "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL", &at, "the reader's closed tuple drops this item".into()),
                        (Some(a), None) => {
                            if let ContentModel::Partial(extra) = rmodel {
                                if !self.fits(wside(a), rside(extra), depth) {
                                    report(&mut self.out, "ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", &at, "the reader's schema for additional items does not read this item".into());
                                }
                            }
                        }
                        (None, Some(_)) if wmodel == ContentModel::Open => report(&mut self.out, "ITEM_ADDED_TO_OPEN_CONTENT_MODEL", &at, "the writer's tuple is open, so its data may hold any value here".into()),
                        (None, Some(b)) => {
                            if let ContentModel::Partial(extra) = wmodel {
                                if !self.fits(wside(extra), rside(b), depth) {
                                    report(&mut self.out, "ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", &at, "the writer's schema for additional items allows values the reader refuses".into());
                                }
                            }
                        }
                        (None, None) => {}
                    }
                }
                self.compare_model(writer, reader, wmodel, rmodel, "ADDITIONAL_ITEMS", &format!("{path}/{}", rest_key(r)), depth);
            }
        }
    }
}

/// Whether each of `left` items can be matched to a distinct `right` item
/// (augmenting paths; sizes are small).
fn match_all(left: usize, right: usize, mut fits: impl FnMut(usize, usize) -> bool) -> bool {
    let edges: Vec<Vec<usize>> = (0..left).map(|l| (0..right).filter(|&r| fits(l, r)).collect()).collect();
    let mut owner: Vec<Option<usize>> = vec![None; right];
    fn augment(l: usize, edges: &[Vec<usize>], owner: &mut [Option<usize>], visited: &mut [bool]) -> bool {
        for &r in &edges[l] {
            if visited[r] {
                continue;
            }
            visited[r] = true;
            if owner[r].map_or(true, |other| augment(other, edges, owner, visited)) {
                owner[r] = Some(l);
                return true;
            }
        }
        false
    }
    (0..left).all(|l| augment(l, &edges, &mut owner, &mut vec![false; right]))
}

/// How an object (or tuple) treats names (positions) it does not declare.
#[derive(Clone, Copy, PartialEq)]
enum ContentModel<'a> {
    /// Absent or `true`: anything goes.
    Open,
    /// `false`: nothing else.
    Closed,
    /// A schema: others must match it.
    Partial(&'a Value),
}

impl<'a> ContentModel<'a> {
    fn of(m: &'a Map<String, Value>, key: &str) -> ContentModel<'a> {
        match m.get(key) {
            None | Some(Value::Bool(true)) => ContentModel::Open,
            Some(Value::Bool(false)) => ContentModel::Closed,
            Some(Value::Object(o)) if o.is_empty() => ContentModel::Open,
            Some(schema) => ContentModel::Partial(schema),
        }
    }
}

fn types(m: &Map<String, Value>) -> Option<Vec<String>> {
    match m.get("type")? {
        Value::String(t) => Some(vec![t.clone()]),
        Value::Array(ts) => Some(ts.iter().filter_map(Value::as_str).map(str::to_string).collect()),
        _ => None,
    }
}

fn required(m: &Map<String, Value>) -> Vec<&str> {
    m.get("required").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

fn contains_ref(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.contains_key("$ref") || m.values().any(contains_ref),
        Value::Array(a) => a.iter().any(contains_ref),
        _ => false,
    }
}
