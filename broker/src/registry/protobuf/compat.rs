//! Confluent's Protobuf compatibility rules between a writer (the
//! "original") and a reader (the "update") `.proto` file.
//!
//! Messages and enums are matched by fully-qualified name, fields by number.
//! Incompatible (reported): `PACKAGE_CHANGED`, `MESSAGE_REMOVED` (a message
//! of the writer the reader lacks), `FIELD_KIND_CHANGED` (scalar vs message
//! vs enum), `FIELD_SCALAR_KIND_CHANGED` (scalar types outside one wire-
//! compatible group: int32/uint32/int64/uint64/bool, sint32/sint64,
//! fixed32/sfixed32, fixed64/sfixed64, string/bytes, float, double),
//! `FIELD_NAMED_TYPE_CHANGED` (another message or enum type),
//! `FIELD_NUMERIC_LABEL_CHANGED` (a numeric field became or stopped being
//! repeated), `REQUIRED_FIELD_ADDED` / `REQUIRED_FIELD_REMOVED` (proto2),
//! `ONEOF_FIELD_REMOVED`, `MULTIPLE_FIELDS_MOVED_TO_ONEOF` and
//! `FIELD_MOVED_TO_EXISTING_ONEOF`. Compatible (not reported): messages,
//! enums and enum constants added, removed or renumbered (unknown enum values
//! are kept by readers), fields added or removed, field renames, a single
//! field moved into a new oneof, oneofs added, `optional` ↔ `repeated` on
//! string, bytes and message fields, a `syntax` change (the wire format is
//! the same; the field rules above catch `required`).
//!
//! Messages are `CODE at path '#/Msg/field_number': what changed`, paths
//! naming the message by its qualified name.

use std::collections::HashMap;

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto};

use super::render::type_text;
use super::Compiled;

/// Why `reader` cannot read what `writer` wrote; empty when it can.
pub(crate) fn incompatibilities(reader: &Compiled, writer: &Compiled) -> Vec<String> {
    let (r, w) = (reader.main(), writer.main());
    let mut out = Vec::new();
    if r.package() != w.package() {
        out.push(format!("PACKAGE_CHANGED at path '#/': package '{}' became '{}'", w.package(), r.package()));
    }
    let rmessages: HashMap<String, &DescriptorProto> = messages(r).into_iter().collect();
    for (name, wm) in messages(w) {
        match rmessages.get(&name) {
            None => out.push(format!("MESSAGE_REMOVED at path '#/{}': the reader has no message {name}", path_name(&name, w))),
            Some(rm) => compare_message(&mut out, &path_name(&name, w), wm, rm),
        }
    }
    out
}

/// Every message of the file (nested ones too), by qualified name without the leading dot.
fn messages(file: &FileDescriptorProto) -> Vec<(String, &DescriptorProto)> {
    fn walk<'a>(prefix: &str, list: &'a [DescriptorProto], out: &mut Vec<(String, &'a DescriptorProto)>) {
        for m in list {
            let name = if prefix.is_empty() { m.name().to_string() } else { format!("{prefix}.{}", m.name()) };
            walk(&name, &m.nested_type, out);
            out.push((name, m));
        }
    }
    let mut out = Vec::new();
    walk(file.package(), &file.message_type, &mut out);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A message's path name: qualified, without the package (Confluent's paths).
fn path_name(name: &str, file: &FileDescriptorProto) -> String {
    let package = file.package();
    if package.is_empty() {
        name.to_string()
    } else {
        name.strip_prefix(&format!("{package}.")).unwrap_or(name).to_string()
    }
}

/// Scalar types whose values read the same from each other's wire form.
fn scalar_group(t: Type) -> Option<u8> {
    Some(match t {
        Type::Int32 | Type::Uint32 | Type::Int64 | Type::Uint64 | Type::Bool => 0,
        Type::Sint32 | Type::Sint64 => 1,
        Type::Fixed32 | Type::Sfixed32 => 2,
        Type::Fixed64 | Type::Sfixed64 => 3,
        Type::String | Type::Bytes => 4,
        Type::Float => 5,
        Type::Double => 6,
        Type::Message | Type::Group | Type::Enum => return None,
    })
}

#[derive(PartialEq, Eq, Debug, Clone, Copy)]
enum Kind {
    Scalar,
    Message,
    Enum,
}

fn kind(t: Type) -> Kind {
    match t {
        Type::Message | Type::Group => Kind::Message,
        Type::Enum => Kind::Enum,
        _ => Kind::Scalar,
    }
}

fn is_numeric(t: Type) -> bool {
    !matches!(t, Type::String | Type::Bytes | Type::Message | Type::Group)
}

/// The real oneof a field belongs to (proto3 `optional`'s synthetic oneofs are not).
fn real_oneof<'a>(message: &'a DescriptorProto, field: &FieldDescriptorProto) -> Option<&'a str> {
    if field.proto3_optional() {
        return None;
    }
    let index = usize::try_from(field.oneof_index?).ok()?;
    message.oneof_decl.get(index).map(|o| o.name())
}

fn compare_message(out: &mut Vec<String>, path: &str, w: &DescriptorProto, r: &DescriptorProto) {
    let rfields: HashMap<i32, &FieldDescriptorProto> = r.field.iter().map(|f| (f.number(), f)).collect();
    let wfields: HashMap<i32, &FieldDescriptorProto> = w.field.iter().map(|f| (f.number(), f)).collect();
    let mut moved_to_new_oneof: HashMap<&str, Vec<i32>> = HashMap::new();

    for wf in &w.field {
        let at = format!("#/{path}/{}", wf.number());
        let Some(rf) = rfields.get(&wf.number()) else {
            if wf.label() == Label::Required {
                out.push(format!("REQUIRED_FIELD_REMOVED at path '{at}': required field '{}' was removed", wf.name()));
            } else if let Some(oneof) = real_oneof(w, wf) {
                out.push(format!("ONEOF_FIELD_REMOVED at path '{at}': field '{}' was removed from oneof '{oneof}'", wf.name()));
            }
            continue;
        };
        let (wt, rt) = (wf.r#type(), rf.r#type());
        if kind(wt) != kind(rt) {
            out.push(format!("FIELD_KIND_CHANGED at path '{at}': field '{}' changed from {} to {}", wf.name(), type_text(wf), type_text(rf)));
        } else if kind(wt) == Kind::Scalar {
            if scalar_group(wt) != scalar_group(rt) {
                out.push(format!("FIELD_SCALAR_KIND_CHANGED at path '{at}': field '{}' changed from {} to {}", wf.name(), type_text(wf), type_text(rf)));
            }
        } else if wf.type_name() != rf.type_name() {
            out.push(format!("FIELD_NAMED_TYPE_CHANGED at path '{at}': field '{}' changed from {} to {}", wf.name(), wf.type_name(), rf.type_name()));
        }
        let (wrep, rrep) = (wf.label() == Label::Repeated, rf.label() == Label::Repeated);
        if wrep != rrep && is_numeric(wt) && is_numeric(rt) {
            out.push(format!("FIELD_NUMERIC_LABEL_CHANGED at path '{at}': numeric field '{}' changed between repeated and singular", wf.name()));
        }
        if rf.label() == Label::Required && wf.label() != Label::Required {
            out.push(format!("REQUIRED_FIELD_ADDED at path '{at}': field '{}' became required", rf.name()));
        }
        match (real_oneof(w, wf), real_oneof(r, rf)) {
            (None, Some(oneof)) => {
                // Moving into a oneof that already existed in the writer's schema
                // changes which fields exclude each other.
                let existed = w.oneof_decl.iter().any(|o| o.name() == oneof);
                if existed {
                    out.push(format!("FIELD_MOVED_TO_EXISTING_ONEOF at path '{at}': field '{}' moved into existing oneof '{oneof}'", rf.name()));
                } else {
                    moved_to_new_oneof.entry(oneof).or_default().push(wf.number());
                }
            }
            _ => {}
        }
    }
    let mut moved: Vec<(&str, Vec<i32>)> = moved_to_new_oneof.into_iter().filter(|(_, numbers)| numbers.len() > 1).collect();
    moved.sort();
    for (oneof, numbers) in moved {
        let numbers: Vec<String> = numbers.iter().map(i32::to_string).collect();
        out.push(format!("MULTIPLE_FIELDS_MOVED_TO_ONEOF at path '#/{path}': fields {} moved into new oneof '{oneof}'", numbers.join(", ")));
    }
    for rf in &r.field {
        if !wfields.contains_key(&rf.number()) && rf.label() == Label::Required {
            out.push(format!("REQUIRED_FIELD_ADDED at path '#/{path}/{}': new field '{}' is required", rf.number(), rf.name()));
        }
    }
}
