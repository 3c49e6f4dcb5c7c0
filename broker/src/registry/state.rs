//! The registry's state machine: subjects, versions, schema ids, soft and
//! permanent deletes, compatibility configs and modes, as the deterministic
//! result of applying the `_schemas` log in offset order. No I/O: the store
//! feeds it records and hands the outcome of each write back to its writer,
//! so every broker that applies the same log decides the same (ids are
//! assigned here, at apply time: one past the largest id ever assigned).
//!
//! Record format (JSON key and value, documented in docs/schema-registry.md):
//! the key names the kind (`keytype`) and the subject; the value carries the
//! request. A write is appended as the request itself, not as its result, so
//! two brokers registering at the same moment are ordered by the log.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::format::{ResolvedReference, SchemaFormat, SchemaText};
use super::KnownSchemaIds;

/// A REST error: HTTP status, Confluent `error_code` and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: i32,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: i32, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }
    pub fn subject_not_found(subject: &str) -> ApiError {
        ApiError::new(404, 40401, format!("Subject '{subject}' not found."))
    }
    pub fn version_not_found(version: &str) -> ApiError {
        ApiError::new(404, 40402, format!("Version {version} not found."))
    }
    pub fn schema_not_found() -> ApiError {
        ApiError::new(404, 40403, "Schema not found")
    }
    pub fn invalid_schema(detail: &str) -> ApiError {
        ApiError::new(422, 42201, format!("Invalid schema: {detail}"))
    }
    pub fn invalid_version(version: &str) -> ApiError {
        ApiError::new(
            422,
            42202,
            format!("The specified version '{version}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""),
        )
    }
    pub fn operation_not_permitted(message: impl Into<String>) -> ApiError {
        ApiError::new(422, 42205, message)
    }
}

/// Compatibility levels (Confluent's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Level {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        serde_json::from_value(serde_json::Value::String(s.to_ascii_uppercase())).ok()
    }
    pub fn name(self) -> &'static str {
        match self {
            Level::None => "NONE",
            Level::Backward => "BACKWARD",
            Level::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Level::Forward => "FORWARD",
            Level::ForwardTransitive => "FORWARD_TRANSITIVE",
            Level::Full => "FULL",
            Level::FullTransitive => "FULL_TRANSITIVE",
        }
    }
    fn transitive(self) -> bool {
        matches!(self, Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive)
    }
    /// (new schema reads old data, old schemas read new data)
    fn directions(self) -> (bool, bool) {
        match self {
            Level::None => (false, false),
            Level::Backward | Level::BackwardTransitive => (true, false),
            Level::Forward | Level::ForwardTransitive => (false, true),
            Level::Full | Level::FullTransitive => (true, true),
        }
    }
}

/// Registry modes: READWRITE (normal), READONLY (no writes), IMPORT (writes carry their ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Mode {
    Readwrite,
    Readonly,
    Import,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s.to_ascii_uppercase().as_str() {
            "READWRITE" => Some(Mode::Readwrite),
            "READONLY" | "READONLY_OVERRIDE" => Some(Mode::Readonly),
            "IMPORT" => Some(Mode::Import),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Mode::Readwrite => "READWRITE",
            Mode::Readonly => "READONLY",
            Mode::Import => "IMPORT",
        }
    }
}

/// A reference as the REST API gives it: `name` used in the schema, and the subject version it means.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    pub name: String,
    pub subject: String,
    pub version: i32,
}

/// One write, as appended to `_schemas` (the value; the key is [`RecordKey`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "keytype", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Command {
    /// Register `schema` under `subject` (a new version unless it is already there).
    Register {
        subject: String,
        schema: String,
        #[serde(rename = "schemaType")]
        schema_type: String,
        #[serde(default)]
        references: Vec<Reference>,
        #[serde(default)]
        normalize: bool,
        /// IMPORT mode only: the id and version the schema must get.
        #[serde(default)]
        id: Option<i32>,
        #[serde(default)]
        version: Option<i32>,
    },
    DeleteSubject {
        subject: String,
        permanent: bool,
    },
    DeleteVersion {
        subject: String,
        version: i32,
        permanent: bool,
    },
    /// Set (`Some`) or remove (`None`) a compatibility level; `subject` None = global.
    Config {
        subject: Option<String>,
        level: Option<Level>,
    },
    /// Set or remove a mode; `subject` None = global.
    Mode {
        subject: Option<String>,
        mode: Option<Mode>,
        #[serde(default)]
        force: bool,
    },
}

/// The `_schemas` record key of a command: its kind and subject (so an export groups by subject).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordKey {
    pub keytype: String,
    pub subject: Option<String>,
    pub magic: i32,
}

impl Command {
    pub fn key(&self) -> RecordKey {
        let (keytype, subject) = match self {
            Command::Register { subject, .. } => ("REGISTER", Some(subject.clone())),
            Command::DeleteSubject { subject, .. } => ("DELETE_SUBJECT", Some(subject.clone())),
            Command::DeleteVersion { subject, .. } => ("DELETE_VERSION", Some(subject.clone())),
            Command::Config { subject, .. } => ("CONFIG", subject.clone()),
            Command::Mode { subject, .. } => ("MODE", subject.clone()),
        };
        RecordKey { keytype: keytype.to_string(), subject, magic: 1 }
    }
    pub fn encode(&self) -> (Vec<u8>, Vec<u8>) {
        let key = serde_json::to_vec(&self.key()).unwrap_or_default();
        let value = serde_json::to_vec(self).unwrap_or_default();
        (key, value)
    }
    pub fn decode(value: &[u8]) -> Option<Command> {
        serde_json::from_slice(value).ok()
    }
}

/// What applying a command decided, handed back to the REST call that wrote it.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Registered { id: i32, version: i32 },
    /// Versions deleted (subject delete) or the one version (version delete).
    Deleted(Vec<i32>),
    Config(Level),
    Mode(Mode),
    Failed(ApiError),
}

#[derive(Clone, Debug, PartialEq)]
pub struct StoredSchema {
    pub schema_type: String,
    /// The canonical text (what GET returns and what equality is decided on).
    pub schema: String,
    pub references: Vec<Reference>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VersionEntry {
    pub version: i32,
    pub id: i32,
    pub deleted: bool,
}

#[derive(Clone, Debug, Default)]
pub struct SubjectState {
    /// Ascending by version.
    pub versions: Vec<VersionEntry>,
    pub level: Option<Level>,
    pub mode: Option<Mode>,
}

/// A version selector: a number or `latest` (-1 as in Confluent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionSel {
    Latest,
    Number(i32),
}

impl VersionSel {
    pub fn parse(s: &str) -> Result<VersionSel, ApiError> {
        if s == "latest" {
            return Ok(VersionSel::Latest);
        }
        match s.parse::<i32>() {
            Ok(-1) => Ok(VersionSel::Latest),
            Ok(v) if v >= 1 => Ok(VersionSel::Number(v)),
            _ => Err(ApiError::invalid_version(s)),
        }
    }
}

pub type Formats = Arc<HashMap<&'static str, Arc<dyn SchemaFormat>>>;

/// The whole registry state.
pub struct RegistryState {
    formats: Formats,
    known: KnownSchemaIds,
    pub schemas: BTreeMap<i32, StoredSchema>,
    pub subjects: BTreeMap<String, SubjectState>,
    pub level: Level,
    pub mode: Mode,
    /// Largest id ever assigned (ids are never reused, even after a permanent delete).
    pub max_id: i32,
}

impl RegistryState {
    pub fn new(formats: Formats, known: KnownSchemaIds) -> RegistryState {
        RegistryState {
            formats,
            known,
            schemas: BTreeMap::new(),
            subjects: BTreeMap::new(),
            level: Level::Backward,
            mode: Mode::Readwrite,
            max_id: 0,
        }
    }

    pub fn format(&self, schema_type: &str) -> Result<Arc<dyn SchemaFormat>, ApiError> {
        self.formats
            .get(schema_type.to_ascii_uppercase().as_str())
            .cloned()
            .ok_or_else(|| ApiError::invalid_schema(&format!("unknown schema type {schema_type}")))
    }

    pub fn format_names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.formats.keys().copied().collect();
        names.sort();
        names
    }

    pub fn effective_level(&self, subject: &str) -> Level {
        self.subjects.get(subject).and_then(|s| s.level).unwrap_or(self.level)
    }

    pub fn effective_mode(&self, subject: &str) -> Mode {
        self.subjects.get(subject).and_then(|s| s.mode).unwrap_or(self.mode)
    }

    /// The version entry `sel` names; soft-deleted versions only with `deleted`.
    pub fn version(&self, subject: &str, sel: VersionSel, deleted: bool) -> Result<&VersionEntry, ApiError> {
        let s = self.subjects.get(subject).filter(|s| deleted || s.versions.iter().any(|v| !v.deleted));
        let s = s.ok_or_else(|| ApiError::subject_not_found(subject))?;
        let visible = |v: &&VersionEntry| deleted || !v.deleted;
        let found = match sel {
            VersionSel::Latest => s.versions.iter().rev().find(visible),
            VersionSel::Number(n) => s.versions.iter().filter(visible).find(|v| v.version == n),
        };
        found.ok_or_else(|| {
            ApiError::version_not_found(&match sel {
                VersionSel::Latest => "latest".to_string(),
                VersionSel::Number(n) => n.to_string(),
            })
        })
    }

    /// The texts of `refs` and, depth first, of what they refer to (dependencies before dependents).
    pub fn resolve_references(&self, refs: &[Reference]) -> Result<Vec<ResolvedReference>, ApiError> {
        let mut out: Vec<ResolvedReference> = Vec::new();
        self.resolve_into(refs, &mut out, 0)?;
        Ok(out)
    }

    fn resolve_into(&self, refs: &[Reference], out: &mut Vec<ResolvedReference>, depth: usize) -> Result<(), ApiError> {
        if depth > 32 {
            return Err(ApiError::invalid_schema("references nest deeper than 32"));
        }
        for r in refs {
            let entry = self.version(&r.subject, VersionSel::Number(r.version), false).map_err(|_| {
                ApiError::invalid_schema(&format!("no schema reference found for subject \"{}\" and version {}", r.subject, r.version))
            })?;
            let stored = self.schemas.get(&entry.id).ok_or_else(ApiError::schema_not_found)?;
            self.resolve_into(&stored.references, out, depth + 1)?;
            if !out.iter().any(|x| x.subject == r.subject && x.version == r.version) {
                out.push(ResolvedReference { name: r.name.clone(), subject: r.subject.clone(), version: r.version, schema: stored.schema.clone() });
            }
        }
        Ok(())
    }

    /// Parses a schema given over REST into its stored form.
    pub fn prepare(&self, schema: &str, schema_type: &str, refs: &[Reference], normalize: bool) -> Result<StoredSchema, ApiError> {
        let format = self.format(schema_type)?;
        let resolved = self.resolve_references(refs)?;
        let canonical = format.canonical(SchemaText { schema, references: &resolved }, normalize).map_err(|e| ApiError::invalid_schema(&e))?;
        Ok(StoredSchema { schema_type: format.name().to_string(), schema: canonical, references: refs.to_vec() })
    }

    /// The live version of `subject` holding exactly `candidate`, if any (`deleted`: soft-deleted too).
    pub fn find_in_subject(&self, subject: &str, candidate: &StoredSchema, deleted: bool) -> Option<&VersionEntry> {
        let s = self.subjects.get(subject)?;
        s.versions.iter().rev().filter(|v| deleted || !v.deleted).find(|v| self.schemas.get(&v.id) == Some(candidate))
    }

    fn text_of(&self, stored: &StoredSchema) -> Result<(Arc<dyn SchemaFormat>, Vec<ResolvedReference>), ApiError> {
        Ok((self.format(&stored.schema_type)?, self.resolve_references(&stored.references)?))
    }

    /// Why `candidate` may not follow `existing` (ids) at `level`; empty when it may.
    pub fn incompatibilities(&self, candidate: &StoredSchema, existing: &[i32], level: Level) -> Result<Vec<String>, ApiError> {
        let (new_reads_old, old_reads_new) = level.directions();
        let (format, new_refs) = self.text_of(candidate)?;
        let new = SchemaText { schema: &candidate.schema, references: &new_refs };
        let mut problems = Vec::new();
        for id in existing {
            let Some(old) = self.schemas.get(id) else { continue };
            if old.schema_type != candidate.schema_type {
                problems.push(format!("Incompatible schema type: the new schema is {} but version with id {id} is {}", candidate.schema_type, old.schema_type));
                continue;
            }
            let old_refs = self.resolve_references(&old.references).unwrap_or_default();
            let old_text = SchemaText { schema: &old.schema, references: &old_refs };
            if new_reads_old {
                for p in format.incompatibilities(new, old_text) {
                    problems.push(format!("{{oldSchemaVersion: id {id}, description: 'The new schema cannot read data written by the old one: {p}'}}"));
                }
            }
            if old_reads_new {
                for p in format.incompatibilities(old_text, new) {
                    problems.push(format!("{{oldSchemaVersion: id {id}, description: 'The old schema cannot read data written by the new one: {p}'}}"));
                }
            }
        }
        Ok(problems)
    }

    /// The ids a new version of `subject` is checked against at `level` (latest, or all for transitive).
    pub fn compatibility_targets(&self, subject: &str, level: Level) -> Vec<i32> {
        let Some(s) = self.subjects.get(subject) else { return Vec::new() };
        let live: Vec<i32> = s.versions.iter().filter(|v| !v.deleted).map(|v| v.id).collect();
        if level == Level::None {
            Vec::new()
        } else if level.transitive() {
            live
        } else {
            live.last().copied().into_iter().collect()
        }
    }

    /// Applies one record of `_schemas`; the outcome is for the writer of that record.
    pub fn apply(&mut self, command: Command) -> Outcome {
        let result = match command {
            Command::Register { subject, schema, schema_type, references, normalize, id, version } => {
                self.register(&subject, &schema, &schema_type, &references, normalize, id, version)
            }
            Command::DeleteSubject { subject, permanent } => self.delete_subject(&subject, permanent),
            Command::DeleteVersion { subject, version, permanent } => self.delete_version(&subject, version, permanent),
            Command::Config { subject, level } => self.set_config(subject, level),
            Command::Mode { subject, mode, force } => self.set_mode(subject, mode, force),
        };
        result.unwrap_or_else(Outcome::Failed)
    }

    #[allow(clippy::too_many_arguments)]
    fn register(
        &mut self,
        subject: &str,
        schema: &str,
        schema_type: &str,
        refs: &[Reference],
        normalize: bool,
        want_id: Option<i32>,
        want_version: Option<i32>,
    ) -> Result<Outcome, ApiError> {
        let mode = self.effective_mode(subject);
        if mode == Mode::Readonly {
            return Err(ApiError::operation_not_permitted(format!("Subject {subject} is in read-only mode")));
        }
        let candidate = self.prepare(schema, schema_type, refs, normalize)?;
        if let Some(v) = self.find_in_subject(subject, &candidate, false) {
            if want_id.is_none_or(|id| id == v.id) {
                return Ok(Outcome::Registered { id: v.id, version: v.version });
            }
        }
        let same_id = self.schemas.iter().find(|(_, s)| **s == candidate).map(|(id, _)| *id);
        let id = match (mode, want_id) {
            (Mode::Import, Some(id)) if id >= 1 => match self.schemas.get(&id) {
                Some(existing) if *existing != candidate => {
                    return Err(ApiError::operation_not_permitted(format!("Overwrite new schema with id {id} is not permitted.")))
                }
                _ => id,
            },
            (Mode::Import, _) => return Err(ApiError::operation_not_permitted("A schema id is required in IMPORT mode.")),
            (_, Some(id)) if Some(id) != same_id => {
                return Err(ApiError::operation_not_permitted(format!("Overwrite new schema with id {id} is not permitted.")))
            }
            _ => {
                let level = self.effective_level(subject);
                let targets = self.compatibility_targets(subject, level);
                let problems = self.incompatibilities(&candidate, &targets, level)?;
                if !problems.is_empty() {
                    return Err(ApiError::new(
                        409,
                        409,
                        format!("Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]", problems.join(", ")),
                    ));
                }
                same_id.unwrap_or(self.max_id + 1)
            }
        };
        let entry = self.subjects.entry(subject.to_string()).or_default();
        let next = entry.versions.last().map_or(1, |v| v.version + 1);
        let version = match (mode, want_version) {
            (Mode::Import, Some(v)) if v >= 1 => {
                if entry.versions.iter().any(|e| e.version == v) {
                    return Err(ApiError::operation_not_permitted(format!("Version {v} of subject {subject} already exists.")));
                }
                v
            }
            _ => next,
        };
        entry.versions.push(VersionEntry { version, id, deleted: false });
        entry.versions.sort_by_key(|v| v.version);
        self.schemas.insert(id, candidate);
        self.max_id = self.max_id.max(id);
        self.known.insert(id, subject);
        Ok(Outcome::Registered { id, version })
    }

    /// Whether a live schema refers to `subject` version `version`.
    fn referenced(&self, subject: &str, version: i32) -> bool {
        self.subjects.values().flat_map(|s| s.versions.iter().filter(|v| !v.deleted)).any(|v| {
            self.schemas.get(&v.id).is_some_and(|s| s.references.iter().any(|r| r.subject == subject && r.version == version))
        })
    }

    fn delete_subject(&mut self, subject: &str, permanent: bool) -> Result<Outcome, ApiError> {
        if self.effective_mode(subject) == Mode::Readonly {
            return Err(ApiError::operation_not_permitted(format!("Subject {subject} is in read-only mode")));
        }
        let Some(s) = self.subjects.get(subject) else { return Err(ApiError::subject_not_found(subject)) };
        if s.versions.iter().any(|v| self.referenced(subject, v.version) && !v.deleted) {
            return Err(ApiError::new(422, 42206, format!("One or more references exist to the schema {{subject={subject}}}.")));
        }
        if permanent {
            if s.versions.iter().any(|v| !v.deleted) {
                return Err(ApiError::new(404, 40405, format!("Subject '{subject}' was not deleted first before being permanently deleted")));
            }
            let s = self.subjects.remove(subject).unwrap_or_default();
            let versions: Vec<i32> = s.versions.iter().map(|v| v.version).collect();
            for v in &s.versions {
                self.forget(subject, v.id);
            }
            // The subject's configuration goes with it, as in Confluent.
            return Ok(Outcome::Deleted(versions));
        }
        if s.versions.iter().all(|v| v.deleted) {
            return Err(ApiError::subject_not_found(subject));
        }
        let s = self.subjects.get_mut(subject).expect("checked above");
        let mut versions = Vec::new();
        for v in s.versions.iter_mut().filter(|v| !v.deleted) {
            v.deleted = true;
            versions.push(v.version);
        }
        Ok(Outcome::Deleted(versions))
    }

    /// After a permanent delete: drop `subject` from the id's subjects, and the schema with its last use.
    fn forget(&mut self, subject: &str, id: i32) {
        let still_here = self.subjects.get(subject).is_some_and(|s| s.versions.iter().any(|v| v.id == id));
        if !still_here {
            self.known.remove(id, subject);
        }
        let used = self.subjects.values().any(|s| s.versions.iter().any(|v| v.id == id));
        if !used {
            self.schemas.remove(&id);
        }
    }

    fn delete_version(&mut self, subject: &str, version: i32, permanent: bool) -> Result<Outcome, ApiError> {
        if self.effective_mode(subject) == Mode::Readonly {
            return Err(ApiError::operation_not_permitted(format!("Subject {subject} is in read-only mode")));
        }
        let Some(s) = self.subjects.get(subject) else { return Err(ApiError::subject_not_found(subject)) };
        let Some(pos) = s.versions.iter().position(|v| v.version == version) else {
            return Err(ApiError::version_not_found(&version.to_string()));
        };
        let entry = s.versions[pos].clone();
        if self.referenced(subject, version) {
            return Err(ApiError::new(422, 42206, format!("One or more references exist to the schema {{subject={subject},version={version}}}.")));
        }
        if permanent {
            if !entry.deleted {
                return Err(ApiError::new(
                    404,
                    40407,
                    format!("Subject '{subject}' Version {version} was not deleted first before being permanently deleted"),
                ));
            }
            let s = self.subjects.get_mut(subject).expect("checked above");
            s.versions.remove(pos);
            if s.versions.is_empty() && s.level.is_none() && s.mode.is_none() {
                self.subjects.remove(subject);
            }
            self.forget(subject, entry.id);
        } else {
            if entry.deleted {
                return Err(ApiError::version_not_found(&version.to_string()));
            }
            self.subjects.get_mut(subject).expect("checked above").versions[pos].deleted = true;
        }
        Ok(Outcome::Deleted(vec![version]))
    }

    fn set_config(&mut self, subject: Option<String>, level: Option<Level>) -> Result<Outcome, ApiError> {
        match (subject, level) {
            (None, Some(l)) => {
                self.level = l;
                Ok(Outcome::Config(l))
            }
            (None, None) => {
                let old = self.level;
                self.level = Level::Backward;
                Ok(Outcome::Config(old))
            }
            (Some(s), Some(l)) => {
                self.subjects.entry(s).or_default().level = Some(l);
                Ok(Outcome::Config(l))
            }
            (Some(s), None) => {
                let old = self.subjects.get_mut(&s).and_then(|st| st.level.take());
                let old = old.ok_or_else(|| ApiError::new(404, 40408, format!("Subject '{s}' does not have subject-level compatibility configured")))?;
                self.drop_if_empty(&s);
                Ok(Outcome::Config(old))
            }
        }
    }

    fn set_mode(&mut self, subject: Option<String>, mode: Option<Mode>, force: bool) -> Result<Outcome, ApiError> {
        if mode == Some(Mode::Import) && !force {
            let has_schemas = match &subject {
                None => self.subjects.values().any(|s| !s.versions.is_empty()),
                Some(s) => self.subjects.get(s).is_some_and(|s| !s.versions.is_empty()),
            };
            if has_schemas {
                return Err(ApiError::operation_not_permitted("Cannot import since found existing subjects"));
            }
        }
        match (subject, mode) {
            (None, Some(m)) => {
                self.mode = m;
                Ok(Outcome::Mode(m))
            }
            (None, None) => {
                let old = self.mode;
                self.mode = Mode::Readwrite;
                Ok(Outcome::Mode(old))
            }
            (Some(s), Some(m)) => {
                self.subjects.entry(s).or_default().mode = Some(m);
                Ok(Outcome::Mode(m))
            }
            (Some(s), None) => {
                let old = self.subjects.get_mut(&s).and_then(|st| st.mode.take());
                let old = old.ok_or_else(|| ApiError::new(404, 40409, format!("Subject '{s}' does not have subject-level mode configured")))?;
                self.drop_if_empty(&s);
                Ok(Outcome::Mode(old))
            }
        }
    }

    fn drop_if_empty(&mut self, subject: &str) {
        if self.subjects.get(subject).is_some_and(|s| s.versions.is_empty() && s.level.is_none() && s.mode.is_none()) {
            self.subjects.remove(subject);
        }
    }

    /// Subjects with at least one live version (or any version with `deleted`).
    pub fn subject_names(&self, deleted: bool) -> Vec<String> {
        self.subjects.iter().filter(|(_, s)| s.versions.iter().any(|v| deleted || !v.deleted)).map(|(n, _)| n.clone()).collect()
    }

    /// (subject, version) pairs holding schema `id`.
    pub fn uses_of(&self, id: i32, deleted: bool) -> Vec<(String, i32)> {
        let mut out = Vec::new();
        for (name, s) in &self.subjects {
            for v in s.versions.iter().filter(|v| v.id == id && (deleted || !v.deleted)) {
                out.push((name.clone(), v.version));
            }
        }
        out
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
