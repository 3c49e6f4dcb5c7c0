//! The canonical text of a compiled `.proto` file: a re-rendering of its
//! descriptor, stable whatever the original formatting and comments.
//!
//! Declarations keep their order (field order is meaningful to readers of
//! the text, and Confluent keeps it), types are written fully qualified
//! (`.pkg.Msg`, which the compiler has already resolved), map fields are
//! written as `map<K, V>` and their synthetic entry messages left out, proto3
//! `optional` fields keep their keyword and their synthetic oneofs are left
//! out. With `normalize`, imports and file options are sorted (Confluent's
//! normalization treats their order as insignificant). The output compiles
//! back to the same descriptor.

use std::fmt::Write;

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto, ServiceDescriptorProto};

/// Renders `file` as `.proto` text.
pub(crate) fn render(file: &FileDescriptorProto, normalize: bool) -> String {
    let mut out = String::new();
    let syntax = file.syntax.as_deref().filter(|s| !s.is_empty()).unwrap_or("proto2");
    let proto3 = syntax == "proto3";
    let _ = writeln!(out, "syntax = \"{syntax}\";");
    if let Some(package) = file.package.as_deref().filter(|p| !p.is_empty()) {
        let _ = writeln!(out, "package {package};");
    }
    let mut imports: Vec<String> = file
        .dependency
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let i = i32::try_from(i).unwrap_or(i32::MAX);
            let kind = if file.public_dependency.contains(&i) {
                "public "
            } else if file.weak_dependency.contains(&i) {
                "weak "
            } else {
                ""
            };
            format!("import {kind}\"{}\";", escape(d))
        })
        .collect();
    if normalize {
        imports.sort();
    }
    if !imports.is_empty() {
        out.push('\n');
        for i in &imports {
            let _ = writeln!(out, "{i}");
        }
    }
    let mut options = file_options(file);
    if normalize {
        options.sort();
    }
    if !options.is_empty() {
        out.push('\n');
        for o in &options {
            let _ = writeln!(out, "option {o};");
        }
    }
    for message in &file.message_type {
        out.push('\n');
        render_message(&mut out, message, proto3, 0);
    }
    for e in &file.enum_type {
        out.push('\n');
        render_enum(&mut out, e, 0);
    }
    for service in &file.service {
        out.push('\n');
        render_service(&mut out, service);
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The file options protox keeps in the descriptor, as `name = value`.
fn file_options(file: &FileDescriptorProto) -> Vec<String> {
    let Some(o) = &file.options else { return Vec::new() };
    let mut out = Vec::new();
    let mut string = |name: &str, v: &Option<String>| {
        if let Some(v) = v {
            out.push(format!("{name} = \"{}\"", escape(v)));
        }
    };
    string("java_package", &o.java_package);
    string("java_outer_classname", &o.java_outer_classname);
    string("go_package", &o.go_package);
    string("objc_class_prefix", &o.objc_class_prefix);
    string("csharp_namespace", &o.csharp_namespace);
    string("swift_prefix", &o.swift_prefix);
    string("php_class_prefix", &o.php_class_prefix);
    string("php_namespace", &o.php_namespace);
    string("php_metadata_namespace", &o.php_metadata_namespace);
    string("ruby_package", &o.ruby_package);
    for (name, v) in [
        ("java_multiple_files", o.java_multiple_files),
        ("java_generic_services", o.java_generic_services),
        ("cc_generic_services", o.cc_generic_services),
        ("py_generic_services", o.py_generic_services),
        ("cc_enable_arenas", o.cc_enable_arenas),
        ("deprecated", o.deprecated),
    ] {
        if let Some(v) = v {
            out.push(format!("{name} = {v}"));
        }
    }
    if let Some(level) = o.optimize_for {
        let level = match level {
            2 => "CODE_SIZE",
            3 => "LITE_RUNTIME",
            _ => "SPEED",
        };
        out.push(format!("optimize_for = {level}"));
    }
    out
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

fn scalar_name(t: Type) -> Option<&'static str> {
    Some(match t {
        Type::Double => "double",
        Type::Float => "float",
        Type::Int64 => "int64",
        Type::Uint64 => "uint64",
        Type::Int32 => "int32",
        Type::Fixed64 => "fixed64",
        Type::Fixed32 => "fixed32",
        Type::Bool => "bool",
        Type::String => "string",
        Type::Bytes => "bytes",
        Type::Uint32 => "uint32",
        Type::Sfixed32 => "sfixed32",
        Type::Sfixed64 => "sfixed64",
        Type::Sint32 => "sint32",
        Type::Sint64 => "sint64",
        Type::Group | Type::Message | Type::Enum => return None,
    })
}

/// A field's type as written: a scalar keyword or the qualified type name.
pub(crate) fn type_text(field: &FieldDescriptorProto) -> String {
    scalar_name(field.r#type()).map(str::to_string).unwrap_or_else(|| field.type_name().to_string())
}

/// The entry message of a map field, if `field` is one.
fn map_entry<'a>(message: &'a DescriptorProto, field: &FieldDescriptorProto) -> Option<&'a DescriptorProto> {
    if field.label() != Label::Repeated || field.r#type() != Type::Message {
        return None;
    }
    let simple = field.type_name().rsplit('.').next().unwrap_or("");
    message.nested_type.iter().find(|n| n.name() == simple && n.options.as_ref().and_then(|o| o.map_entry).unwrap_or(false))
}

fn field_options(field: &FieldDescriptorProto) -> String {
    let mut options = Vec::new();
    if let Some(default) = &field.default_value {
        let value = match field.r#type() {
            Type::String | Type::Bytes => format!("\"{}\"", escape(default)),
            _ => default.clone(),
        };
        options.push(format!("default = {value}"));
    }
    if let Some(o) = &field.options {
        if let Some(packed) = o.packed {
            options.push(format!("packed = {packed}"));
        }
        if let Some(deprecated) = o.deprecated {
            options.push(format!("deprecated = {deprecated}"));
        }
    }
    if let Some(json) = &field.json_name {
        // The compiler fills json_name for every field; only a chosen one is written.
        if *json != default_json_name(field.name()) {
            options.push(format!("json_name = \"{}\"", escape(json)));
        }
    }
    if options.is_empty() {
        String::new()
    } else {
        format!(" [{}]", options.join(", "))
    }
}

/// protoc's default json_name: lowerCamelCase of the field name.
fn default_json_name(name: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn render_field(out: &mut String, message: &DescriptorProto, field: &FieldDescriptorProto, proto3: bool, in_oneof: bool, depth: usize) {
    indent(out, depth);
    if let Some(entry) = map_entry(message, field) {
        let key = entry.field.iter().find(|f| f.number() == 1).map(type_text).unwrap_or_default();
        let value = entry.field.iter().find(|f| f.number() == 2).map(type_text).unwrap_or_default();
        let _ = writeln!(out, "map<{key}, {value}> {} = {}{};", field.name(), field.number(), field_options(field));
        return;
    }
    let label = match field.label() {
        _ if in_oneof => "",
        Label::Repeated => "repeated ",
        Label::Required => "required ",
        Label::Optional if !proto3 || field.proto3_optional() => "optional ",
        Label::Optional => "",
    };
    let _ = writeln!(out, "{label}{} {} = {}{};", type_text(field), field.name(), field.number(), field_options(field));
}

fn render_message(out: &mut String, message: &DescriptorProto, proto3: bool, depth: usize) {
    indent(out, depth);
    let _ = writeln!(out, "message {} {{", message.name());
    // Real oneofs (not proto3 `optional`'s synthetic ones) group their fields.
    let synthetic = |index: i32| message.field.iter().any(|f| f.oneof_index == Some(index) && f.proto3_optional());
    let mut oneofs_done = Vec::new();
    for field in &message.field {
        match field.oneof_index {
            Some(index) if !synthetic(index) => {
                if oneofs_done.contains(&index) {
                    continue;
                }
                oneofs_done.push(index);
                let name = usize::try_from(index).ok().and_then(|i| message.oneof_decl.get(i)).map(|o| o.name()).unwrap_or("");
                indent(out, depth + 1);
                let _ = writeln!(out, "oneof {name} {{");
                for member in message.field.iter().filter(|f| f.oneof_index == Some(index)) {
                    render_field(out, message, member, proto3, true, depth + 2);
                }
                indent(out, depth + 1);
                out.push_str("}\n");
            }
            _ => render_field(out, message, field, proto3, false, depth + 1),
        }
    }
    for nested in &message.nested_type {
        if nested.options.as_ref().and_then(|o| o.map_entry).unwrap_or(false) {
            continue;
        }
        render_message(out, nested, proto3, depth + 1);
    }
    for e in &message.enum_type {
        render_enum(out, e, depth + 1);
    }
    let ranges: Vec<String> = message
        .reserved_range
        .iter()
        .map(|r| {
            // Descriptor ranges are end-exclusive.
            let (start, end) = (r.start(), r.end().saturating_sub(1));
            if start == end {
                start.to_string()
            } else if end >= 536_870_911 {
                format!("{start} to max")
            } else {
                format!("{start} to {end}")
            }
        })
        .collect();
    if !ranges.is_empty() {
        indent(out, depth + 1);
        let _ = writeln!(out, "reserved {};", ranges.join(", "));
    }
    if !message.reserved_name.is_empty() {
        indent(out, depth + 1);
        let names: Vec<String> = message.reserved_name.iter().map(|n| format!("\"{}\"", escape(n))).collect();
        let _ = writeln!(out, "reserved {};", names.join(", "));
    }
    for r in &message.extension_range {
        indent(out, depth + 1);
        let end = r.end().saturating_sub(1);
        if end >= 536_870_911 {
            let _ = writeln!(out, "extensions {} to max;", r.start());
        } else {
            let _ = writeln!(out, "extensions {} to {end};", r.start());
        }
    }
    indent(out, depth);
    out.push_str("}\n");
}

fn render_enum(out: &mut String, e: &EnumDescriptorProto, depth: usize) {
    indent(out, depth);
    let _ = writeln!(out, "enum {} {{", e.name());
    if e.options.as_ref().and_then(|o| o.allow_alias).unwrap_or(false) {
        indent(out, depth + 1);
        out.push_str("option allow_alias = true;\n");
    }
    for v in &e.value {
        indent(out, depth + 1);
        let _ = writeln!(out, "{} = {};", v.name(), v.number());
    }
    for r in &e.reserved_range {
        // Enum reserved ranges are end-inclusive.
        indent(out, depth + 1);
        if r.start() == r.end() {
            let _ = writeln!(out, "reserved {};", r.start());
        } else {
            let _ = writeln!(out, "reserved {} to {};", r.start(), r.end());
        }
    }
    if !e.reserved_name.is_empty() {
        indent(out, depth + 1);
        let names: Vec<String> = e.reserved_name.iter().map(|n| format!("\"{}\"", escape(n))).collect();
        let _ = writeln!(out, "reserved {};", names.join(", "));
    }
    indent(out, depth);
    out.push_str("}\n");
}

fn render_service(out: &mut String, service: &ServiceDescriptorProto) {
    let _ = writeln!(out, "service {} {{", service.name());
    for m in &service.method {
        let stream = |yes: bool| if yes { "stream " } else { "" };
        let _ = writeln!(
            out,
            "  rpc {}({}{}) returns ({}{});",
            m.name(),
            stream(m.client_streaming()),
            m.input_type(),
            stream(m.server_streaming()),
            m.output_type()
        );
    }
    out.push_str("}\n");
}
