//! JSON Schema: validation, canonical form, and the compatibility rules
//! table-driven, each row checked in both directions (the new schema as
//! reader of the old one: BACKWARD; the old one as reader of the new: FORWARD).

use super::*;
use crate::registry::format::test_support::{problem_names, text};
use crate::registry::format::{ResolvedReference, SchemaFormat, SchemaText};

fn canonical(schema: &str) -> Result<String, String> {
    JsonSchemaFormat.canonical(text(schema), false)
}

/// The difference names of the problems `reader` has reading `writer`'s data.
fn problems(reader: &str, writer: &str) -> Vec<String> {
    problem_names(&JsonSchemaFormat, reader, writer)
}

#[test]
fn valid_schemas_are_accepted_in_every_draft() {
    for schema in [
        r#"{"type":"object","properties":{"id":{"type":"string"}}}"#,
        r#"true"#,
        r#"{"$schema":"http://json-schema.org/draft-04/schema#","type":"integer","minimum":0,"exclusiveMinimum":true}"#,
        r#"{"$schema":"http://json-schema.org/draft-06/schema#","type":"number","exclusiveMinimum":0}"#,
        r##"{"$schema":"http://json-schema.org/draft-07/schema#","definitions":{"a":{"type":"string"}},"$ref":"#/definitions/a"}"##,
        r##"{"$schema":"https://json-schema.org/draft/2019-09/schema","$defs":{"a":{"type":"string"}},"properties":{"x":{"$ref":"#/$defs/a"}}}"##,
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","prefixItems":[{"type":"string"}],"items":false}"#,
    ] {
        assert!(canonical(schema).is_ok(), "{schema}: {:?}", canonical(schema));
    }
}

#[test]
fn invalid_schemas_get_a_clear_message() {
    for (schema, why) in [
        ("{not json", "Invalid JSON"),
        ("42", "not a number"),
        (r#""string""#, "not a string"),
        (r#"{"type":"strng"}"#, "Invalid schema"),
        (r#"{"type":"object","properties":{"a":{"minLength":-1}}}"#, "Invalid schema"),
        (r#"{"type":"object","required":"id"}"#, "Invalid schema"),
        (r##"{"$ref":"#/definitions/missing"}"##, "Invalid schema"),
        (r#"{"$ref":"customer.json"}"#, "Invalid schema"),
        (r#"{"pattern":"("}"#, "Invalid schema"),
    ] {
        let e = canonical(schema).expect_err(schema);
        assert!(e.contains(why), "{schema}: {e}");
    }
}

#[test]
fn references_resolve_by_name() {
    let customer = ResolvedReference {
        name: "customer.json".into(),
        subject: "customer".into(),
        version: 1,
        schema: r#"{"type":"object","properties":{"name":{"type":"string"}},"definitions":{"id":{"type":"integer"}}}"#.into(),
    };
    let by_url = ResolvedReference { name: "https://example.com/schemas/address.json".into(), ..customer.clone() };
    let refs = [customer, by_url];
    for schema in [
        r#"{"properties":{"customer":{"$ref":"customer.json"}}}"#,
        r#"{"properties":{"id":{"$ref":"customer.json#/definitions/id"}}}"#,
        r#"{"properties":{"a":{"$ref":"https://example.com/schemas/address.json"}}}"#,
    ] {
        let r = JsonSchemaFormat.canonical(SchemaText { schema, references: &refs }, false);
        assert!(r.is_ok(), "{schema}: {r:?}");
    }
    let missing = JsonSchemaFormat.canonical(SchemaText { schema: r#"{"$ref":"order.json"}"#, references: &refs }, false);
    assert!(missing.is_err());

    // Compatibility follows references into them.
    let old = r#"{"properties":{"id":{"$ref":"customer.json#/definitions/id"}}}"#;
    let new = r#"{"properties":{"id":{"type":"string"}}}"#;
    let p = JsonSchemaFormat.incompatibilities(SchemaText { schema: new, references: &[] }, SchemaText { schema: old, references: &refs });
    assert!(p.iter().any(|m| m.starts_with("TYPE_CHANGED at path '#/properties/id'")), "{p:?}");
}

#[test]
fn canonical_form_ignores_whitespace_and_key_order() {
    let a = canonical(r#"{ "type": "object", "properties": { "b": {"type":"string"}, "a": {"type":"integer"} } }"#).unwrap();
    let b = canonical(r#"{"properties":{"a":{"type":"integer"},"b":{"type":"string"}},"type":"object"}"#).unwrap();
    assert_eq!(a, b);
    assert_eq!(a, r#"{"properties":{"a":{"type":"integer"},"b":{"type":"string"}},"type":"object"}"#);
    // Without normalize, the order of set-valued keywords is kept.
    let c = canonical(r#"{"required":["b","a"],"enum":[2,1]}"#).unwrap();
    assert_eq!(c, r#"{"enum":[2,1],"required":["b","a"]}"#);
    let n = JsonSchemaFormat.canonical(text(r#"{"required":["b","a"],"type":["string","null"],"enum":["y","x","y"],"properties":{"required":{"type":"string"}}}"#), true).unwrap();
    assert_eq!(n, r#"{"enum":["x","y"],"properties":{"required":{"type":"string"}},"required":["a","b"],"type":["null","string"]}"#);
    // Duplicates in `required` are refused by the draft's meta-schema in the first place.
    assert!(canonical(r#"{"required":["a","a"]}"#).is_err());
}

/// One rule: `old` → `new`, and the difference names expected when the new
/// schema reads old data (backward) and the old one reads new data (forward).
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
    // Identical and annotation-only changes.
    rule(r#"{"type":"string"}"#, r#"{"type":"string"}"#, &[], &[]),
    rule(r#"{"type":"string","title":"a","description":"x","default":"d"}"#, r#"{"type":"string","title":"b","description":"y","default":"e"}"#, &[], &[]),
    // Types.
    rule(r#"{"type":"integer"}"#, r#"{"type":"number"}"#, &[], &["TYPE_NARROWED"]),
    rule(r#"{"type":"string"}"#, r#"{"type":["string","null"]}"#, &[], &["TYPE_NARROWED"]),
    rule(r#"{"type":"string"}"#, r#"{"type":"integer"}"#, &["TYPE_CHANGED"], &["TYPE_CHANGED"]),
    rule(r#"{}"#, r#"{"type":"string"}"#, &["TYPE_NARROWED"], &[]),
    // Strings.
    rule(r#"{"type":"string","maxLength":5}"#, r#"{"type":"string","maxLength":10}"#, &[], &["MAX_LENGTH_DECREASED"]),
    rule(r#"{"type":"string"}"#, r#"{"type":"string","maxLength":10}"#, &["MAX_LENGTH_ADDED"], &[]),
    rule(r#"{"type":"string","minLength":5}"#, r#"{"type":"string","minLength":1}"#, &[], &["MIN_LENGTH_INCREASED"]),
    rule(r#"{"type":"string"}"#, r#"{"type":"string","minLength":1}"#, &["MIN_LENGTH_ADDED"], &[]),
    rule(r#"{"type":"string"}"#, r#"{"type":"string","pattern":"^a"}"#, &["PATTERN_ADDED"], &[]),
    rule(r#"{"type":"string","pattern":"^a"}"#, r#"{"type":"string","pattern":"^b"}"#, &["PATTERN_CHANGED"], &["PATTERN_CHANGED"]),
    // Numbers.
    rule(r#"{"type":"number","maximum":10}"#, r#"{"type":"number","maximum":20}"#, &[], &["MAXIMUM_DECREASED"]),
    rule(r#"{"type":"number"}"#, r#"{"type":"number","maximum":20}"#, &["MAXIMUM_ADDED"], &[]),
    rule(r#"{"type":"number","minimum":10}"#, r#"{"type":"number","minimum":0}"#, &[], &["MINIMUM_INCREASED"]),
    rule(r#"{"type":"number"}"#, r#"{"type":"number","minimum":0}"#, &["MINIMUM_ADDED"], &[]),
    rule(r#"{"type":"number","exclusiveMaximum":10}"#, r#"{"type":"number","exclusiveMaximum":20}"#, &[], &["EXCLUSIVE_MAXIMUM_DECREASED"]),
    rule(r#"{"type":"number"}"#, r#"{"type":"number","exclusiveMinimum":0}"#, &["EXCLUSIVE_MINIMUM_ADDED"], &[]),
    rule(r#"{"type":"number","multipleOf":4}"#, r#"{"type":"number","multipleOf":2}"#, &[], &["MULTIPLE_OF_EXPANDED"]),
    rule(r#"{"type":"number","multipleOf":4}"#, r#"{"type":"number","multipleOf":3}"#, &["MULTIPLE_OF_CHANGED"], &["MULTIPLE_OF_CHANGED"]),
    rule(r#"{"type":"number"}"#, r#"{"type":"number","multipleOf":3}"#, &["MULTIPLE_OF_ADDED"], &[]),
    // Enums.
    rule(r#"{"enum":["A","B"]}"#, r#"{"enum":["A","B","C"]}"#, &[], &["ENUM_ARRAY_NARROWED"]),
    rule(r#"{"enum":["A","B"]}"#, r#"{"enum":["A","C"]}"#, &["ENUM_ARRAY_CHANGED"], &["ENUM_ARRAY_CHANGED"]),
    rule(r#"{"type":"string"}"#, r#"{"type":"string","enum":["A"]}"#, &["ENUM_ARRAY_NARROWED"], &[]),
    // Objects: open content model (additionalProperties absent).
    rule(r#"{"type":"object","properties":{"a":{"type":"string"}}}"#, r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}}}"#, &["PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"], &[]),
    // Closed content model.
    rule(r#"{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}"#, r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}},"additionalProperties":false}"#, &[], &["PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"]),
    rule(r#"{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}"#, r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}},"required":["b"],"additionalProperties":false}"#, &["REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL"], &["PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"]),
    rule(r#"{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}"#, r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string","default":"x"}},"required":["b"],"additionalProperties":false}"#, &[], &["PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"]),
    // Partially open content model.
    rule(r#"{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":{"type":"string"}}"#, r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}},"additionalProperties":{"type":"string"}}"#, &[], &[]),
    rule(r#"{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":{"type":"string"}}"#, r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}},"additionalProperties":{"type":"string"}}"#, &["PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"], &["PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"]),
    // additionalProperties itself.
    rule(r#"{"type":"object","additionalProperties":false}"#, r#"{"type":"object"}"#, &[], &["ADDITIONAL_PROPERTIES_REMOVED"]),
    rule(r#"{"type":"object"}"#, r#"{"type":"object","additionalProperties":{"type":"string"}}"#, &["ADDITIONAL_PROPERTIES_NARROWED"], &[]),
    // Required.
    rule(r#"{"type":"object","properties":{"a":{"type":"string"}}}"#, r#"{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}"#, &["REQUIRED_ATTRIBUTE_ADDED"], &[]),
    rule(r#"{"type":"object","properties":{"a":{"type":"string"}}}"#, r#"{"type":"object","properties":{"a":{"type":"string","default":"x"}},"required":["a"]}"#, &[], &[]),
    // Property schemas are compared recursively, with their path.
    rule(r#"{"type":"object","properties":{"a":{"type":"object","properties":{"n":{"type":"integer"}}}}}"#, r#"{"type":"object","properties":{"a":{"type":"object","properties":{"n":{"type":"string"}}}}}"#, &["TYPE_CHANGED"], &["TYPE_CHANGED"]),
    rule(r#"{"type":"object","minProperties":1}"#, r#"{"type":"object","minProperties":2}"#, &["MIN_PROPERTIES_INCREASED"], &[]),
    rule(r#"{"type":"object","maxProperties":3}"#, r#"{"type":"object","maxProperties":2}"#, &["MAX_PROPERTIES_DECREASED"], &[]),
    rule(r#"{"type":"object","dependentRequired":{"a":["b"]}}"#, r#"{"type":"object","dependentRequired":{"a":["b","c"]}}"#, &["DEPENDENCY_ARRAY_EXTENDED"], &[]),
    // Arrays.
    rule(r#"{"type":"array","items":{"type":"integer"}}"#, r#"{"type":"array","items":{"type":"number"}}"#, &[], &["TYPE_NARROWED"]),
    rule(r#"{"type":"array","maxItems":5}"#, r#"{"type":"array","maxItems":3}"#, &["MAX_ITEMS_DECREASED"], &[]),
    rule(r#"{"type":"array","minItems":1}"#, r#"{"type":"array"}"#, &[], &["MIN_ITEMS_ADDED"]),
    rule(r#"{"type":"array"}"#, r#"{"type":"array","uniqueItems":true}"#, &["UNIQUE_ITEMS_ADDED"], &[]),
    rule(r#"{"type":"array","items":[{"type":"string"}]}"#, r#"{"type":"array","items":[{"type":"string"},{"type":"integer"}]}"#, &["ITEM_ADDED_TO_OPEN_CONTENT_MODEL"], &[]),
    rule(r#"{"type":"array","items":[{"type":"string"}],"additionalItems":false}"#, r#"{"type":"array","items":[{"type":"string"},{"type":"integer"}],"additionalItems":false}"#, &[], &["ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL"]),
    rule(r#"{"type":"array","items":[{"type":"string"}],"additionalItems":false}"#, r#"{"type":"array","items":[{"type":"string"}]}"#, &[], &["ADDITIONAL_ITEMS_REMOVED"]),
    // Combined schemas.
    rule(r#"{"oneOf":[{"type":"string"},{"type":"integer"}]}"#, r#"{"oneOf":[{"type":"string"},{"type":"integer"},{"type":"boolean"}]}"#, &[], &["SUM_TYPE_NARROWED"]),
    rule(r#"{"anyOf":[{"type":"string"},{"type":"integer"}]}"#, r#"{"anyOf":[{"type":"string"},{"type":"boolean"}]}"#, &["COMBINED_TYPE_SUBSCHEMAS_CHANGED"], &["COMBINED_TYPE_SUBSCHEMAS_CHANGED"]),
    rule(r#"{"allOf":[{"type":"object"},{"required":["a"]}]}"#, r#"{"allOf":[{"type":"object"}]}"#, &[], &["PRODUCT_TYPE_EXTENDED"]),
    rule(r#"{"type":"string"}"#, r#"{"oneOf":[{"type":"string"},{"type":"null"}]}"#, &[], &["COMBINED_TYPE_CHANGED"]),
    rule(r#"{"type":"string"}"#, r#"{"oneOf":[{"type":"integer"},{"type":"null"}]}"#, &["COMBINED_TYPE_CHANGED"], &["COMBINED_TYPE_CHANGED"]),
    rule(r#"{"oneOf":[{"type":"string"}]}"#, r#"{"allOf":[{"type":"string"}]}"#, &["COMBINED_TYPE_CHANGED"], &["COMBINED_TYPE_CHANGED"]),
    rule(r#"{"type":"string"}"#, r#"{"type":"string","not":{"enum":["x"]}}"#, &["NOT_TYPE_NARROWED"], &[]),
    // Boolean schemas.
    rule(r#"true"#, r#"false"#, &["TYPE_NARROWED"], &[]),
];

#[test]
fn compatibility_rules_in_both_directions() {
    for (i, r) in RULES.iter().enumerate() {
        let backward = problems(r.new, r.old);
        assert_eq!(backward, r.backward, "row {i} backward (new reads old): {} -> {}", r.old, r.new);
        let forward = problems(r.old, r.new);
        assert_eq!(forward, r.forward, "row {i} forward (old reads new): {} -> {}", r.old, r.new);
    }
}

#[test]
fn messages_name_the_rule_and_the_path() {
    let old = r#"{"type":"object","properties":{"order":{"type":"object","properties":{"id":{"type":"string"}}}}}"#;
    let new = r#"{"type":"object","properties":{"order":{"type":"object","properties":{"id":{"type":"string"},"email":{"type":"string"}}}}}"#;
    let p = JsonSchemaFormat.incompatibilities(text(new), text(old));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL at path '#/properties/order/properties/email'"), "{}", p[0]);
}

#[test]
fn recursive_schemas_terminate() {
    let tree = r##"{"definitions":{"node":{"type":"object","properties":{"children":{"type":"array","items":{"$ref":"#/definitions/node"}},"v":{"type":"integer"}}}},"$ref":"#/definitions/node"}"##;
    let tree2 = r##"{"definitions":{"node":{"type":"object","properties":{"children":{"type":"array","items":{"$ref":"#/definitions/node"}},"v":{"type":"number"}}}},"$ref":"#/definitions/node"}"##;
    assert!(canonical(tree).is_ok());
    assert!(problems(tree2, tree).is_empty());
    assert_eq!(problems(tree, tree2), vec!["TYPE_NARROWED"]);
}

#[test]
fn hostile_input_does_not_panic() {
    let deep = format!("{}{}", r#"{"properties":{"a":"#.repeat(200), "}}".repeat(200));
    let _ = canonical(&deep);
    let _ = JsonSchemaFormat.incompatibilities(text(&deep), text(&deep));
    let loop_ref = r##"{"definitions":{"a":{"$ref":"#/definitions/b"},"b":{"$ref":"#/definitions/a"}},"$ref":"#/definitions/a"}"##;
    let _ = canonical(loop_ref);
    let _ = JsonSchemaFormat.incompatibilities(text(loop_ref), text(loop_ref));
    let p = JsonSchemaFormat.incompatibilities(text("{bad"), text("{}"));
    assert!(p[0].starts_with("SCHEMA_INVALID"), "{p:?}");
}
