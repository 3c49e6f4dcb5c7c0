//! What the registry needs from a schema format, independent of the format.
//!
//! Compatibility is always asked as "can a consumer using `reader` read data
//! written with `writer`": BACKWARD checks the new schema as reader of the old
//! ones, FORWARD the old ones as readers of the new one, FULL both ways (the
//! store applies the level and the transitive variants).

/// A schema another schema refers to (`references` in the REST API), resolved
/// by the store to the text of the referenced subject version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedReference {
    /// The name the referring schema uses (an Avro full name, a JSON `$ref` URL, a `.proto` import path).
    pub name: String,
    pub subject: String,
    pub version: i32,
    /// The referenced schema's text.
    pub schema: String,
}

/// A schema text with its resolved references.
#[derive(Clone, Copy, Debug)]
pub struct SchemaText<'a> {
    pub schema: &'a str,
    pub references: &'a [ResolvedReference],
}

/// One `schemaType` of the registry (AVRO, JSON, PROTOBUF).
pub trait SchemaFormat: Send + Sync {
    /// The `schemaType` name in the REST API.
    fn name(&self) -> &'static str;

    /// Parses and validates `schema`; returns the form the registry compares
    /// schemas by (registering the same schema twice gives the same id), and
    /// with `normalize` the normalized form Confluent's `normalize=true` asks
    /// for. An error is the message of a 42201 (invalid schema) answer.
    fn canonical(&self, schema: SchemaText<'_>, normalize: bool) -> Result<String, String>;

    /// Why a consumer using `reader` cannot read data written with `writer`,
    /// one message per problem, in Confluent's style; empty when it can. Both
    /// schemas have passed [`SchemaFormat::canonical`].
    fn incompatibilities(&self, reader: SchemaText<'_>, writer: SchemaText<'_>) -> Vec<String>;

    /// The schema in the form a GET with `?format=serialized` asks for, for formats that
    /// have one (Protobuf: a base64 `FileDescriptorProto`, what confluent-kafka's Python
    /// deserializer reads); None: the format has none and the stored text is answered.
    fn serialized(&self, _schema: SchemaText<'_>) -> Option<Result<String, String>> {
        None
    }
}

/// What the format tests share: a schema without references, and the names (first
/// words) of the problems a reader has with a writer's data.
#[cfg(test)]
pub(crate) mod test_support {
    use super::{SchemaFormat, SchemaText};

    pub fn text(schema: &str) -> SchemaText<'_> {
        SchemaText { schema, references: &[] }
    }

    pub fn problem_names(format: &dyn SchemaFormat, reader: &str, writer: &str) -> Vec<String> {
        format
            .incompatibilities(text(reader), text(writer))
            .into_iter()
            .map(|m| m.split(' ').next().unwrap_or_default().to_string())
            .collect()
    }
}
