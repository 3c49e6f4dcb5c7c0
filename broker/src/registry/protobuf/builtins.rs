//! The Confluent files a Protobuf schema may import without a reference, as Confluent's
//! registry knows them: `confluent/meta.proto` (field and message metadata, tags and rules
//! as custom options) and the decimal type (`confluent/type/decimal.proto`, and the older
//! path `confluent/types/decimal.proto` that re-exports it). confluent-kafka's
//! `ProtobufSerializer` skips these (and `google/protobuf/*`) when it registers a schema's
//! dependencies (`skip.known.types`, on by default), so the registry must resolve them itself.
//!
//! The declarations are those of the descriptors the stock clients ship (same packages,
//! names, field numbers and extension numbers), written out as `.proto` text.

/// The text of a built-in Confluent file, by import path.
pub(super) fn confluent_file(name: &str) -> Option<&'static str> {
    Some(match name {
        "confluent/meta.proto" => META,
        "confluent/type/decimal.proto" => DECIMAL,
        "confluent/types/decimal.proto" => DECIMAL_OLD_PATH,
        _ => return None,
    })
}

const META: &str = r#"syntax = "proto3";
package confluent;

import "google/protobuf/descriptor.proto";

option go_package = "../confluent";

message Meta {
  string doc = 1;
  map<string, string> params = 2;
  repeated string tags = 3;
  repeated Rule rules = 4;
}

message Rule {
  string name = 1;
  string doc = 2;
  string expr = 3;
  string sql = 4;
}

extend google.protobuf.FileOptions {
  Meta file_meta = 1088;
}
extend google.protobuf.MessageOptions {
  Meta message_meta = 1088;
}
extend google.protobuf.FieldOptions {
  Meta field_meta = 1088;
}
extend google.protobuf.EnumOptions {
  Meta enum_meta = 1088;
}
extend google.protobuf.EnumValueOptions {
  Meta enum_value_meta = 1088;
}
"#;

const DECIMAL: &str = r#"syntax = "proto3";
package confluent.type;

message Decimal {
  bytes value = 1;
  uint32 precision = 2;
  int32 scale = 3;
}
"#;

const DECIMAL_OLD_PATH: &str = r#"syntax = "proto3";

import public "confluent/type/decimal.proto";
"#;

#[cfg(test)]
mod tests {
    use super::super::compile;
    use crate::registry::format::SchemaText;

    #[test]
    fn built_in_imports_compile_without_references() {
        let schema = r#"syntax = "proto3";
package shop;
import "confluent/meta.proto";
import "confluent/types/decimal.proto";
import "google/protobuf/timestamp.proto";
message Order {
  option (confluent.message_meta) = { doc: "an order" };
  string id = 1 [(confluent.field_meta).tags = "PII"];
  confluent.type.Decimal total = 2;
  google.protobuf.Timestamp created_at = 3;
}
"#;
        let compiled = compile(SchemaText { schema, references: &[] });
        assert!(compiled.is_ok(), "{:?}", compiled.err());
        let missing = compile(SchemaText { schema: "syntax = \"proto3\";\nimport \"confluent/nope.proto\";\n", references: &[] });
        assert!(missing.is_err());
    }
}
