//! `schemaType: PROTOBUF`: `.proto` files in the registry.
//!
//! - Parse and validate with `protox` (a pure-Rust protobuf compiler): syntax,
//!   names, field numbers, type references. `import`s resolve to the schema's
//!   `references` by import path (the reference `name`), and the
//!   `google/protobuf/*.proto` well-known files and Confluent's own
//!   (`confluent/meta.proto`, the decimal type: [`builtins`]) are built in, as
//!   in Confluent's registry. A schema may
//!   also be sent as a base64-encoded `FileDescriptorProto`, the form
//!   confluent-kafka's Python `ProtobufSerializer` registers.
//! - Canonical form: [`render`], a stable re-rendering of the compiled
//!   descriptor (fully-qualified type names, one declaration per line, no
//!   comments), so formatting and comments do not make a new schema;
//!   `normalize` also sorts imports and file options.
//! - Compatibility: [`compat`], Confluent's documented Protobuf rules.

mod builtins;
mod compat;
mod render;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use base64::Engine;
use prost_types::FileDescriptorProto;
use protox::file::{File, FileResolver, GoogleFileResolver};

use super::format::{ResolvedReference, SchemaFormat, SchemaText};

/// The name the schema being registered is compiled under (imports name
/// files by path; this one is nobody's import).
const MAIN_FILE: &str = "__klamm_registry_schema__.proto";

/// The Protobuf format of the registry.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProtobufFormat;

impl SchemaFormat for ProtobufFormat {
    fn name(&self) -> &'static str {
        "PROTOBUF"
    }

    fn canonical(&self, schema: SchemaText<'_>, normalize: bool) -> Result<String, String> {
        let compiled = compile(schema)?;
        Ok(render::render(compiled.main(), normalize))
    }

    fn incompatibilities(&self, reader: SchemaText<'_>, writer: SchemaText<'_>) -> Vec<String> {
        match (compile(reader), compile(writer)) {
            (Ok(r), Ok(w)) => compat::incompatibilities(&r, &w),
            (Err(e), _) | (_, Err(e)) => vec![format!("SCHEMA_INVALID: {e}")],
        }
    }

    fn serialized(&self, schema: SchemaText<'_>) -> Option<Result<String, String>> {
        Some(compile(schema).map(|compiled| {
            let mut descriptor = compiled.main().clone();
            // Readers name the file themselves; comments and spans are no part of the schema.
            descriptor.name = Some(SERIALIZED_NAME.to_string());
            descriptor.source_code_info = None;
            base64::engine::general_purpose::STANDARD.encode(prost::Message::encode_to_vec(&descriptor))
        }))
    }
}

/// The file name in a `format=serialized` descriptor (confluent-kafka's readers use `default`
/// for the schema they fetch).
const SERIALIZED_NAME: &str = "default";

/// A compiled schema: its own file and every file it imports, by name.
pub(crate) struct Compiled {
    files: HashMap<String, FileDescriptorProto>,
}

impl Compiled {
    fn main(&self) -> &FileDescriptorProto {
        // `compile` only returns a set that holds the main file.
        &self.files[MAIN_FILE]
    }
}

/// Serves the schema itself, its references by import path, the built-in
/// Confluent files and the well-known google/protobuf files (a reference of
/// the same name wins, as an explicit import should).
struct Resolver {
    sources: HashMap<String, String>,
    google: GoogleFileResolver,
}

impl FileResolver for Resolver {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match self.sources.get(name) {
            Some(text) => parse_file(name, text).map_err(protox::Error::new),
            None => match builtins::confluent_file(name) {
                Some(text) => File::from_source(name, text),
                None => self.google.open_file(name),
            },
        }
    }
}

/// An error message for the registry's 42201 answer.
#[derive(Debug)]
struct Invalid(String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

/// A `.proto` text, or a base64 `FileDescriptorProto` (what some serializers register).
fn parse_file(name: &str, text: &str) -> Result<File, Invalid> {
    if let Some(file) = from_base64_descriptor(name, text) {
        return Ok(file);
    }
    File::from_source(name, text).map_err(|e| Invalid(describe(&e, name)))
}

fn from_base64_descriptor(name: &str, text: &str) -> Option<File> {
    let trimmed = text.trim();
    if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')) {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(trimmed).ok()?;
    let file = File::decode_file_descriptor_proto(bytes.as_slice()).ok()?;
    // Compile it under the name it is served by (imports name it by path).
    let mut descriptor = file.file_descriptor_proto().clone();
    descriptor.name = Some(name.to_string());
    Some(File::from_file_descriptor_proto(descriptor))
}

/// protox's message, with the internal main-file name left out.
fn describe(e: &protox::Error, name: &str) -> String {
    let text = e.to_string().replace(MAIN_FILE, "schema");
    if name == MAIN_FILE {
        text
    } else {
        format!("{text} (in {name})")
    }
}

/// Compiles `schema` with its references.
pub(crate) fn compile(schema: SchemaText<'_>) -> Result<Compiled, String> {
    let mut sources: HashMap<String, String> = schema.references.iter().map(|r: &ResolvedReference| (r.name.clone(), r.schema.clone())).collect();
    sources.insert(MAIN_FILE.to_string(), schema.schema.to_string());
    let resolver = Resolver { sources, google: GoogleFileResolver::new() };
    // protox is a third-party parser of untrusted text: a panic in it must
    // become an invalid-schema answer, not take the request task down.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let mut compiler = protox::Compiler::with_file_resolver(resolver);
        compiler.include_imports(true);
        compiler.open_file(MAIN_FILE).map_err(|e| format!("Invalid schema: {}", describe(&e, MAIN_FILE)))?;
        let set = compiler.file_descriptor_set();
        let files: HashMap<String, FileDescriptorProto> = set.file.into_iter().map(|f| (f.name().to_string(), f)).collect();
        if !files.contains_key(MAIN_FILE) {
            return Err("Invalid schema: the schema did not compile".to_string());
        }
        Ok(Compiled { files })
    }));
    outcome.unwrap_or_else(|_| Err("Invalid schema: the schema could not be processed".to_string()))
}
