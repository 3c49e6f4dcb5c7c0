//! Protobuf: parsing with references and well-known imports, the canonical
//! rendering, and the compatibility rules table-driven, each row checked in
//! both directions (new reads old: BACKWARD; old reads new: FORWARD).

use base64::Engine;
use prost::Message as _;

use super::*;
use crate::registry::format::test_support::{problem_names, text};
use crate::registry::format::{ResolvedReference, SchemaFormat, SchemaText};

fn canonical(schema: &str) -> Result<String, String> {
    ProtobufFormat.canonical(text(schema), false)
}

fn problems(reader: &str, writer: &str) -> Vec<String> {
    problem_names(&ProtobufFormat, reader, writer)
}

const ORDER: &str = r#"
syntax = "proto3";
package shop.events;

import "google/protobuf/timestamp.proto";

option java_package = "com.example.shop";

// An order was placed.
message OrderCreated {
  string order_id = 1;
  string user_id = 2;
  repeated Item items = 3;
  double total = 4;
  string currency = 5;
  google.protobuf.Timestamp at = 6;
  map<string, string> tags = 7;
  optional string note = 8;
  oneof payment {
    string card = 9;
    string voucher = 10;
  }
  message Item {
    string sku = 1;
    int32 quantity = 2;
  }
  enum Channel { CHANNEL_UNSPECIFIED = 0; WEB = 1; }
  reserved 20 to 25, 30;
  reserved "legacy";
}

enum Status { STATUS_UNSPECIFIED = 0; OPEN = 1; }
"#;

#[test]
fn a_full_schema_compiles_and_its_rendering_compiles_to_the_same() {
    let first = canonical(ORDER).expect("valid");
    assert!(first.contains("map<string, string> tags = 7;"), "{first}");
    assert!(first.contains("optional string note = 8;"), "{first}");
    assert!(first.contains("oneof payment {"), "{first}");
    assert!(first.contains(".google.protobuf.Timestamp at = 6;"), "{first}");
    assert!(first.contains("reserved 20 to 25, 30;"), "{first}");
    assert!(!first.contains("An order was placed"), "comments are not part of the canonical form");
    // The rendering is a fixed point: it compiles, and renders to itself.
    assert_eq!(canonical(&first).expect("rendering compiles"), first);
}

#[test]
fn formatting_and_comments_do_not_change_the_canonical_form() {
    let a = canonical("syntax = \"proto3\"; message A { string x = 1; }").unwrap();
    let b = canonical("// c\nsyntax   =   \"proto3\";\n\nmessage A {\n  // the x\n  string x = 1;\n}\n").unwrap();
    assert_eq!(a, b);
}

#[test]
fn normalize_sorts_imports_and_options() {
    let refs = [
        ResolvedReference { name: "b.proto".into(), subject: "b".into(), version: 1, schema: "syntax = \"proto3\"; message B {}".into() },
        ResolvedReference { name: "a.proto".into(), subject: "a".into(), version: 1, schema: "syntax = \"proto3\"; message A {}".into() },
    ];
    let one = "syntax = \"proto3\"; import \"b.proto\"; import \"a.proto\"; option java_package = \"x\"; option go_package = \"y\"; message M { B b = 1; A a = 2; }";
    let two = "syntax = \"proto3\"; import \"a.proto\"; import \"b.proto\"; option go_package = \"y\"; option java_package = \"x\"; message M { B b = 1; A a = 2; }";
    let c = |s: &str, n: bool| ProtobufFormat.canonical(SchemaText { schema: s, references: &refs }, n).unwrap();
    assert_ne!(c(one, false), c(two, false));
    assert_eq!(c(one, true), c(two, true));
}

#[test]
fn imports_resolve_to_references_by_path() {
    let customer = ResolvedReference {
        name: "shop/customer.proto".into(),
        subject: "customer".into(),
        version: 1,
        schema: "syntax = \"proto3\"; package shop; message Customer { string id = 1; }".into(),
    };
    let schema = "syntax = \"proto3\"; package shop; import \"shop/customer.proto\"; message Order { Customer customer = 1; }";
    let r = ProtobufFormat.canonical(SchemaText { schema, references: &[customer] }, false);
    assert!(r.as_ref().is_ok_and(|c| c.contains(".shop.Customer customer = 1;")), "{r:?}");
    let missing = ProtobufFormat.canonical(text(schema), false);
    assert!(missing.is_err());
}

#[test]
fn base64_descriptors_are_accepted() {
    // What confluent-kafka's Python ProtobufSerializer registers.
    let compiled = compile(text("syntax = \"proto3\"; package p; message M { int64 id = 1; }")).unwrap();
    let mut descriptor = compiled.main().clone();
    descriptor.name = Some("m.proto".into());
    let b64 = base64::engine::general_purpose::STANDARD.encode(descriptor.encode_to_vec());
    let from_b64 = canonical(&b64).expect("base64 descriptor");
    assert_eq!(from_b64, canonical("syntax = \"proto3\"; package p; message M { int64 id = 1; }").unwrap());
}

#[test]
fn invalid_schemas_get_a_clear_message() {
    for (schema, why) in [
        ("message {", "Invalid schema"),
        ("syntax = \"proto3\"; message A { string x = 1; int32 y = 1; }", "Invalid schema"),
        ("syntax = \"proto3\"; message A { Missing m = 1; }", "Invalid schema"),
        ("syntax = \"proto3\"; import \"nowhere.proto\"; message A {}", "Invalid schema"),
        ("syntax = \"proto4\";", "Invalid schema"),
        ("", "Invalid schema"),
    ] {
        match canonical(schema) {
            Ok(c) if schema.is_empty() => assert!(!c.is_empty()),
            Ok(c) => panic!("{schema}: accepted as {c}"),
            Err(e) => {
                assert!(e.contains(why), "{schema}: {e}");
                assert!(!e.contains(MAIN_FILE), "{e}");
            }
        }
    }
}

struct Rule {
    old: &'static str,
    new: &'static str,
    backward: &'static [&'static str],
    forward: &'static [&'static str],
}

const fn rule(old: &'static str, new: &'static str, backward: &'static [&'static str], forward: &'static [&'static str]) -> Rule {
    Rule { old, new, backward, forward }
}

#[rustfmt::skip]
const RULES: &[Rule] = &[
    rule("syntax = \"proto3\"; message M { string a = 1; }", "syntax = \"proto3\"; message M { string a = 1; }", &[], &[]),
    // Fields added, removed, renamed.
    rule("syntax = \"proto3\"; message M { string a = 1; }", "syntax = \"proto3\"; message M { string a = 1; int32 b = 2; }", &[], &[]),
    rule("syntax = \"proto3\"; message M { string a = 1; }", "syntax = \"proto3\"; message M { string renamed = 1; }", &[], &[]),
    // Field types.
    rule("syntax = \"proto3\"; message M { int32 a = 1; }", "syntax = \"proto3\"; message M { int64 a = 1; }", &[], &[]),
    rule("syntax = \"proto3\"; message M { int32 a = 1; }", "syntax = \"proto3\"; message M { string a = 1; }", &["FIELD_SCALAR_KIND_CHANGED"], &["FIELD_SCALAR_KIND_CHANGED"]),
    rule("syntax = \"proto3\"; message M { sint32 a = 1; }", "syntax = \"proto3\"; message M { int32 a = 1; }", &["FIELD_SCALAR_KIND_CHANGED"], &["FIELD_SCALAR_KIND_CHANGED"]),
    rule("syntax = \"proto3\"; message M { string a = 1; }", "syntax = \"proto3\"; message M { bytes a = 1; }", &[], &[]),
    rule("syntax = \"proto3\"; message M { fixed32 a = 1; }", "syntax = \"proto3\"; message M { sfixed32 a = 1; }", &[], &[]),
    rule("syntax = \"proto3\"; message N {} message M { N a = 1; }", "syntax = \"proto3\"; message N {} message M { string a = 1; }", &["FIELD_KIND_CHANGED"], &["FIELD_KIND_CHANGED"]),
    rule("syntax = \"proto3\"; enum E { Z = 0; } message M { E a = 1; }", "syntax = \"proto3\"; enum E { Z = 0; } message M { int32 a = 1; }", &["FIELD_KIND_CHANGED"], &["FIELD_KIND_CHANGED"]),
    rule("syntax = \"proto3\"; message N {} message O {} message M { N a = 1; }", "syntax = \"proto3\"; message N {} message O {} message M { O a = 1; }", &["FIELD_NAMED_TYPE_CHANGED"], &["FIELD_NAMED_TYPE_CHANGED"]),
    // Labels.
    rule("syntax = \"proto3\"; message M { int32 a = 1; }", "syntax = \"proto3\"; message M { repeated int32 a = 1; }", &["FIELD_NUMERIC_LABEL_CHANGED"], &["FIELD_NUMERIC_LABEL_CHANGED"]),
    rule("syntax = \"proto3\"; message M { string a = 1; }", "syntax = \"proto3\"; message M { repeated string a = 1; }", &[], &[]),
    // proto2 required.
    rule("syntax = \"proto2\"; message M { optional string a = 1; }", "syntax = \"proto2\"; message M { optional string a = 1; required int32 b = 2; }", &["REQUIRED_FIELD_ADDED"], &["REQUIRED_FIELD_REMOVED"]),
    rule("syntax = \"proto2\"; message M { optional string a = 1; }", "syntax = \"proto2\"; message M { required string a = 1; }", &["REQUIRED_FIELD_ADDED"], &[]),
    // Messages and package.
    rule("syntax = \"proto3\"; message M {} message N {}", "syntax = \"proto3\"; message M {}", &["MESSAGE_REMOVED"], &[]),
    rule("syntax = \"proto3\"; message M { message Inner {} }", "syntax = \"proto3\"; message M {}", &["MESSAGE_REMOVED"], &[]),
    rule("syntax = \"proto3\"; package a; message M {}", "syntax = \"proto3\"; package b; message M {}", &["PACKAGE_CHANGED", "MESSAGE_REMOVED"], &["PACKAGE_CHANGED", "MESSAGE_REMOVED"]),
    rule("syntax = \"proto2\"; message M { optional string a = 1; }", "syntax = \"proto3\"; message M { string a = 1; }", &[], &[]),
    // Enums: every change is compatible (readers keep unknown values).
    rule("syntax = \"proto3\"; enum E { Z = 0; A = 1; }", "syntax = \"proto3\"; enum E { Z = 0; A = 1; B = 2; }", &[], &[]),
    rule("syntax = \"proto3\"; enum E { Z = 0; A = 1; }", "syntax = \"proto3\"; enum E { Z = 0; A = 2; }", &[], &[]),
    rule("syntax = \"proto3\"; enum E { Z = 0; } message M {}", "syntax = \"proto3\"; message M {}", &[], &[]),
    // Oneofs.
    rule("syntax = \"proto3\"; message M { string a = 1; }", "syntax = \"proto3\"; message M { oneof o { string a = 1; } }", &[], &[]),
    rule("syntax = \"proto3\"; message M { string a = 1; string b = 2; }", "syntax = \"proto3\"; message M { oneof o { string a = 1; string b = 2; } }", &["MULTIPLE_FIELDS_MOVED_TO_ONEOF"], &[]),
    rule("syntax = \"proto3\"; message M { string a = 1; oneof o { string b = 2; } }", "syntax = \"proto3\"; message M { oneof o { string a = 1; string b = 2; } }", &["FIELD_MOVED_TO_EXISTING_ONEOF"], &[]),
    rule("syntax = \"proto3\"; message M { oneof o { string a = 1; string b = 2; } }", "syntax = \"proto3\"; message M { oneof o { string a = 1; } }", &["ONEOF_FIELD_REMOVED"], &[]),
    rule("syntax = \"proto3\"; message M { oneof o { string a = 1; } }", "syntax = \"proto3\"; message M { oneof o { string a = 1; string b = 2; } }", &[], &["ONEOF_FIELD_REMOVED"]),
    // proto3 optional is not a oneof change.
    rule("syntax = \"proto3\"; message M { string a = 1; }", "syntax = \"proto3\"; message M { optional string a = 1; }", &[], &[]),
    // Maps: key and value types follow the field rules.
    rule("syntax = \"proto3\"; message M { map<string, int32> m = 1; }", "syntax = \"proto3\"; message M { map<string, string> m = 1; }", &["FIELD_SCALAR_KIND_CHANGED"], &["FIELD_SCALAR_KIND_CHANGED"]),
];

#[test]
fn compatibility_rules_in_both_directions() {
    for (i, r) in RULES.iter().enumerate() {
        assert_eq!(problems(r.new, r.old), r.backward, "row {i} backward (new reads old): {} -> {}", r.old, r.new);
        assert_eq!(problems(r.old, r.new), r.forward, "row {i} forward (old reads new): {} -> {}", r.old, r.new);
    }
}

#[test]
fn messages_name_the_rule_and_the_path() {
    let old = "syntax = \"proto3\"; package shop; message Order { message Item { int32 qty = 2; } }";
    let new = "syntax = \"proto3\"; package shop; message Order { message Item { string qty = 2; } }";
    let p = ProtobufFormat.incompatibilities(text(new), text(old));
    assert_eq!(p, vec!["FIELD_SCALAR_KIND_CHANGED at path '#/Order.Item/2': field 'qty' changed from int32 to string"]);
}

#[test]
fn hostile_input_does_not_panic() {
    let deep = format!("syntax = \"proto3\"; {} {}", "message A { ".repeat(300), "}".repeat(300));
    let _ = canonical(&deep);
    let _ = canonical("\u{0}\u{1}garbage\"unterminated");
    let _ = canonical("AAAA");
    let p = ProtobufFormat.incompatibilities(text("message {"), text("syntax = \"proto3\";"));
    assert!(p[0].starts_with("SCHEMA_INVALID"), "{p:?}");
}
