//! The REST handlers of the registry, over a [`Backend`] (the state machine to
//! read, and a way to write a command and get its outcome). Confluent's
//! request and response bodies, status codes and `{"error_code", "message"}`
//! errors; no sockets here (the HTTP adapter is in [`super::store`]), so the
//! unit tests drive every path with an in-memory backend.

use std::future::Future;

use serde::Deserialize;
use serde_json::{json, Value};

use super::routes::{route, valid_subject, Route};
use super::format::SchemaText;
use super::state::{ApiError, Command, Level, Mode, Outcome, Reference, RegistryState, StoredSchema, VersionSel};

/// Confluent's media type for every answer.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// What the handlers need from the store.
pub trait Backend: Send + Sync {
    /// Runs `f` on the current state.
    fn read<T>(&self, f: impl FnOnce(&RegistryState) -> T) -> T;
    /// Appends `command` to the log and answers what applying it decided.
    fn write(&self, command: Command) -> impl Future<Output = Result<Outcome, ApiError>> + Send;
    /// Applies everything committed so far (bounded in time); called before answering
    /// "not found", so a read on one broker sees a write acknowledged by another.
    fn catch_up(&self) -> impl Future<Output = ()> + Send;
}

/// A request as the handlers see it.
pub struct ApiRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    pub body: &'a [u8],
}

/// An answer: status and JSON body (`raw` for the `/schema` paths, which return the schema text).
#[derive(Debug, PartialEq)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Value,
    pub raw: Option<String>,
}

impl ApiResponse {
    fn ok(body: Value) -> ApiResponse {
        ApiResponse { status: 200, body, raw: None }
    }
    pub fn error(e: &ApiError) -> ApiResponse {
        ApiResponse { status: e.status, body: json!({"error_code": e.code, "message": e.message}), raw: None }
    }
    /// The bytes to send.
    pub fn bytes(&self) -> Vec<u8> {
        match &self.raw {
            Some(text) => text.clone().into_bytes(),
            None => serde_json::to_vec(&self.body).unwrap_or_default(),
        }
    }
}

fn query<'a>(req: &'a ApiRequest<'_>, name: &str) -> Option<&'a str> {
    req.query.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn flag(req: &ApiRequest<'_>, name: &str) -> bool {
    query(req, name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn not_found() -> ApiError {
    ApiError::new(404, 404, "HTTP 404 Not Found")
}

fn method_not_allowed() -> ApiError {
    ApiError::new(405, 405, "HTTP 405 Method Not Allowed")
}

fn bad_json(e: &serde_json::Error) -> ApiError {
    ApiError::new(400, 400, format!("Unrecognized request body: {e}"))
}

fn subject_ok(s: &str) -> Result<(), ApiError> {
    if valid_subject(s) {
        Ok(())
    } else {
        Err(ApiError::new(422, 42208, format!("The specified subject '{}' is not valid.", s.escape_default())))
    }
}

/// The body of register, lookup and compatibility calls (unknown fields are ignored, as Confluent does).
#[derive(Deserialize)]
struct SchemaBody {
    #[serde(default)]
    schema: Option<String>,
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Option<Vec<Reference>>,
    #[serde(default)]
    id: Option<i32>,
    #[serde(default)]
    version: Option<i32>,
}

/// (schema, schemaType, references, id, version) of a request body.
type SchemaRequest = (String, String, Vec<Reference>, Option<i32>, Option<i32>);

fn parse_schema_body(body: &[u8]) -> Result<SchemaRequest, ApiError> {
    let b: SchemaBody = serde_json::from_slice(body).map_err(|e| bad_json(&e))?;
    let schema = b.schema.filter(|s| !s.trim().is_empty()).ok_or_else(|| ApiError::invalid_schema("empty schema"))?;
    let schema_type = b.schema_type.unwrap_or_else(|| "AVRO".to_string()).to_ascii_uppercase();
    Ok((schema, schema_type, b.references.unwrap_or_default(), b.id.filter(|i| *i > 0), b.version.filter(|v| *v > 0)))
}

/// The JSON of one subject version (Confluent omits `schemaType` for AVRO and empty `references`).
fn version_json(subject: &str, version: i32, id: i32, stored: &StoredSchema) -> Value {
    let mut v = json!({"subject": subject, "version": version, "id": id, "schema": stored.schema});
    decorate(&mut v, stored);
    v
}

fn decorate(v: &mut Value, stored: &StoredSchema) {
    if stored.schema_type != "AVRO" {
        v["schemaType"] = json!(stored.schema_type);
    }
    if !stored.references.is_empty() {
        v["references"] = serde_json::to_value(&stored.references).unwrap_or(Value::Null);
    }
}

/// The schema text to answer for `stored`: the stored text, or with `?format=serialized` the
/// format's serialized form where it has one (Protobuf's base64 descriptor).
fn answered_text(s: &RegistryState, stored: &StoredSchema, req: &ApiRequest<'_>) -> Result<String, ApiError> {
    if query(req, "format") != Some("serialized") {
        return Ok(stored.schema.clone());
    }
    let format = s.format(&stored.schema_type)?;
    let references = s.resolve_references(&stored.references)?;
    match format.serialized(SchemaText { schema: &stored.schema, references: &references }) {
        None => Ok(stored.schema.clone()),
        Some(Ok(text)) => Ok(text),
        Some(Err(e)) => Err(ApiError::new(500, 50001, format!("Error serializing the stored schema: {e}"))),
    }
}

fn parse_id(s: &str) -> Result<i32, ApiError> {
    s.parse::<i32>().ok().filter(|i| *i > 0).ok_or_else(ApiError::schema_not_found)
}

/// Answers one request.
pub async fn handle<B: Backend>(backend: &B, req: &ApiRequest<'_>) -> ApiResponse {
    match dispatch(backend, req).await {
        Ok(r) => r,
        Err(e) => ApiResponse::error(&e),
    }
}

async fn dispatch<B: Backend>(b: &B, req: &ApiRequest<'_>) -> Result<ApiResponse, ApiError> {
    let route = route(req.path).ok_or_else(not_found)?;
    let subject_of = |r: &Route| match r {
        Route::Subject(s) | Route::Versions(s) | Route::Version(s, _) | Route::VersionSchema(s, _) | Route::ReferencedBy(s, _) => Some(s.clone()),
        Route::Compatibility(s, _) => Some(s.clone()),
        Route::Config(s) | Route::Mode(s) => s.clone(),
        _ => None,
    };
    if let Some(s) = subject_of(&route) {
        subject_ok(&s)?;
    }
    // A read that finds nothing is retried once after catching up with the log.
    let read_twice = req.method == "GET" || (req.method == "POST" && matches!(route, Route::Subject(_)));
    match read(b, &route, req) {
        Some(Err(e)) if read_twice && e.status == 404 && e.code != 404 => {
            b.catch_up().await;
            read(b, &route, req).unwrap_or_else(|| Err(method_not_allowed()))
        }
        Some(r) => r,
        None => write(b, &route, req).await,
    }
}

/// The handlers that only read; None when `route` + method is a write.
fn read<B: Backend>(b: &B, route: &Route, req: &ApiRequest<'_>) -> Option<Result<ApiResponse, ApiError>> {
    let deleted = flag(req, "deleted");
    let r = match (req.method, route) {
        ("GET", Route::Root) => Ok(ApiResponse::ok(json!({}))),
        ("GET", Route::Subjects) => {
            let prefix = query(req, "subjectPrefix").unwrap_or("");
            Ok(ApiResponse::ok(json!(b.read(|s| s.subject_names(deleted).into_iter().filter(|n| n.starts_with(prefix)).collect::<Vec<_>>()))))
        }
        ("GET", Route::Versions(subject)) => b.read(|s| {
            let st = s.subjects.get(subject).filter(|st| st.versions.iter().any(|v| deleted || !v.deleted));
            let st = st.ok_or_else(|| ApiError::subject_not_found(subject))?;
            Ok(ApiResponse::ok(json!(st.versions.iter().filter(|v| deleted || !v.deleted).map(|v| v.version).collect::<Vec<_>>())))
        }),
        ("GET", Route::Version(subject, v)) | ("GET", Route::VersionSchema(subject, v)) => VersionSel::parse(v).and_then(|sel| {
            b.read(|s| {
                let entry = s.version(subject, sel, deleted)?;
                let stored = s.schemas.get(&entry.id).ok_or_else(ApiError::schema_not_found)?;
                let text = answered_text(s, stored, req)?;
                Ok(match route {
                    Route::VersionSchema(..) => ApiResponse { status: 200, body: Value::Null, raw: Some(text) },
                    _ => {
                        let mut v = version_json(subject, entry.version, entry.id, stored);
                        v["schema"] = json!(text);
                        ApiResponse::ok(v)
                    }
                })
            })
        }),
        ("GET", Route::ReferencedBy(subject, v)) => VersionSel::parse(v).and_then(|sel| {
            b.read(|s| {
                let entry = s.version(subject, sel, false)?;
                let mut ids: Vec<i32> = Vec::new();
                for st in s.subjects.values() {
                    for ver in st.versions.iter().filter(|x| !x.deleted) {
                        let refers = s.schemas.get(&ver.id).is_some_and(|x| x.references.iter().any(|r| r.subject == *subject && r.version == entry.version));
                        if refers && !ids.contains(&ver.id) {
                            ids.push(ver.id);
                        }
                    }
                }
                ids.sort_unstable();
                Ok(ApiResponse::ok(json!(ids)))
            })
        }),
        ("GET", Route::Schemas) => {
            let prefix = query(req, "subjectPrefix").unwrap_or("");
            let latest_only = flag(req, "latestOnly");
            Ok(ApiResponse::ok(b.read(|s| {
                let mut out = Vec::new();
                for (name, st) in s.subjects.iter().filter(|(n, _)| n.starts_with(prefix)) {
                    let live: Vec<_> = st.versions.iter().filter(|v| deleted || !v.deleted).collect();
                    let chosen: Vec<_> = if latest_only { live.last().copied().into_iter().collect() } else { live };
                    for v in chosen {
                        if let Some(stored) = s.schemas.get(&v.id) {
                            out.push(version_json(name, v.version, v.id, stored));
                        }
                    }
                }
                Value::Array(out)
            })))
        }
        ("GET", Route::SchemaTypes) => Ok(ApiResponse::ok(json!(b.read(|s| s.format_names())))),
        ("GET", Route::SchemaById(id)) | ("GET", Route::SchemaByIdText(id)) => parse_id(id).and_then(|id| {
            b.read(|s| {
                // `?subject=` names a context to look in (Confluent's schema contexts); with a
                // single context every id is in it, so it narrows nothing.
                let stored = s.schemas.get(&id).ok_or_else(ApiError::schema_not_found)?;
                let text = answered_text(s, stored, req)?;
                Ok(match route {
                    Route::SchemaByIdText(_) => ApiResponse { status: 200, body: Value::Null, raw: Some(text) },
                    _ => {
                        let mut v = json!({"schema": text});
                        decorate(&mut v, stored);
                        ApiResponse::ok(v)
                    }
                })
            })
        }),
        ("GET", Route::SchemaByIdSubjects(id)) | ("GET", Route::SchemaByIdVersions(id)) => parse_id(id).and_then(|id| {
            b.read(|s| {
                if !s.schemas.contains_key(&id) {
                    return Err(ApiError::schema_not_found());
                }
                let uses = s.uses_of(id, deleted);
                Ok(ApiResponse::ok(match route {
                    Route::SchemaByIdSubjects(_) => {
                        let mut names: Vec<String> = uses.into_iter().map(|(n, _)| n).collect();
                        names.dedup();
                        json!(names)
                    }
                    _ => json!(uses.into_iter().map(|(n, v)| json!({"subject": n, "version": v})).collect::<Vec<_>>()),
                }))
            })
        }),
        ("POST", Route::Subject(subject)) => lookup(b, subject, req),
        ("POST", Route::Compatibility(subject, version)) => compatibility(b, subject, version.as_deref(), req),
        ("GET", Route::Config(subject)) => b.read(|s| {
            let level = match subject {
                None => s.level,
                Some(subj) => match s.subjects.get(subj).and_then(|x| x.level) {
                    Some(l) => l,
                    None if flag(req, "defaultToGlobal") => s.level,
                    None => {
                        return Err(ApiError::new(404, 40408, format!("Subject '{subj}' does not have subject-level compatibility configured")))
                    }
                },
            };
            Ok(ApiResponse::ok(json!({"compatibilityLevel": level.name()})))
        }),
        ("GET", Route::Mode(subject)) => b.read(|s| {
            let mode = match subject {
                None => s.mode,
                Some(subj) => match s.subjects.get(subj).and_then(|x| x.mode) {
                    Some(m) => m,
                    None if flag(req, "defaultToGlobal") => s.mode,
                    None => return Err(ApiError::new(404, 40409, format!("Subject '{subj}' does not have subject-level mode configured"))),
                },
            };
            Ok(ApiResponse::ok(json!({"mode": mode.name()})))
        }),
        (_, Route::Compatibility(..)) => Err(method_not_allowed()),
        ("GET", _) => Err(method_not_allowed()),
        _ => return None,
    };
    Some(r)
}

fn lookup<B: Backend>(b: &B, subject: &str, req: &ApiRequest<'_>) -> Result<ApiResponse, ApiError> {
    let (schema, schema_type, refs, _, _) = parse_schema_body(req.body)?;
    let deleted = flag(req, "deleted");
    let normalize = flag(req, "normalize");
    b.read(|s| {
        if !s.subjects.get(subject).is_some_and(|st| st.versions.iter().any(|v| deleted || !v.deleted)) {
            return Err(ApiError::subject_not_found(subject));
        }
        let candidate = s.prepare(&schema, &schema_type, &refs, normalize)?;
        let entry = s.find_in_subject(subject, &candidate, deleted).ok_or_else(ApiError::schema_not_found)?;
        let stored = s.schemas.get(&entry.id).ok_or_else(ApiError::schema_not_found)?;
        Ok(ApiResponse::ok(version_json(subject, entry.version, entry.id, stored)))
    })
}

fn compatibility<B: Backend>(b: &B, subject: &str, version: Option<&str>, req: &ApiRequest<'_>) -> Result<ApiResponse, ApiError> {
    let sel = version.map(VersionSel::parse).transpose()?;
    let (schema, schema_type, refs, _, _) = parse_schema_body(req.body)?;
    let normalize = flag(req, "normalize");
    let verbose = flag(req, "verbose");
    b.read(|s| {
        let level = s.effective_level(subject);
        let targets: Vec<i32> = match sel {
            // A named version: that version only; `latest` of a missing subject is compatible
            // (nothing to break), a missing numbered version is 40402.
            Some(VersionSel::Latest) => match s.version(subject, VersionSel::Latest, false) {
                Ok(v) => vec![v.id],
                Err(_) => Vec::new(),
            },
            Some(sel) => vec![s.version(subject, sel, false)?.id],
            None => s.compatibility_targets(subject, level),
        };
        let candidate = s.prepare(&schema, &schema_type, &refs, normalize)?;
        let targets = if level == Level::None { Vec::new() } else { targets };
        let check_level = match (sel, level) {
            (Some(_), Level::BackwardTransitive) => Level::Backward,
            (Some(_), Level::ForwardTransitive) => Level::Forward,
            (Some(_), Level::FullTransitive) => Level::Full,
            (_, l) => l,
        };
        let problems = s.incompatibilities(&candidate, &targets, check_level)?;
        let mut body = json!({"is_compatible": problems.is_empty()});
        if verbose {
            body["messages"] = json!(problems);
        }
        Ok(ApiResponse::ok(body))
    })
}

fn outcome(o: Outcome) -> Result<Outcome, ApiError> {
    match o {
        Outcome::Failed(e) => Err(e),
        other => Ok(other),
    }
}

async fn write<B: Backend>(b: &B, route: &Route, req: &ApiRequest<'_>) -> Result<ApiResponse, ApiError> {
    let permanent = flag(req, "permanent");
    match (req.method, route) {
        ("POST", Route::Versions(subject)) => {
            let (schema, schema_type, references, id, version) = parse_schema_body(req.body)?;
            let normalize = flag(req, "normalize");
            // Validate before writing: a schema that does not parse never reaches the log, and an
            // already registered one is answered without a write (as Confluent does).
            let known = b.read(|s| -> Result<Option<i32>, ApiError> {
                let candidate = s.prepare(&schema, &schema_type, &references, normalize)?;
                Ok(s.find_in_subject(subject, &candidate, false).filter(|v| id.is_none_or(|i| i == v.id)).map(|v| v.id))
            })?;
            if let Some(id) = known {
                return Ok(ApiResponse::ok(json!({"id": id})));
            }
            let command = Command::Register { subject: subject.clone(), schema, schema_type, references, normalize, id, version };
            match outcome(b.write(command).await?)? {
                Outcome::Registered { id, .. } => Ok(ApiResponse::ok(json!({"id": id}))),
                other => Err(unexpected(other)),
            }
        }
        ("DELETE", Route::Subject(subject)) => match outcome(b.write(Command::DeleteSubject { subject: subject.clone(), permanent }).await?)? {
            Outcome::Deleted(v) => Ok(ApiResponse::ok(json!(v))),
            other => Err(unexpected(other)),
        },
        ("DELETE", Route::Version(subject, v)) => {
            let version = match VersionSel::parse(v)? {
                VersionSel::Number(n) => n,
                VersionSel::Latest => {
                    b.read(|s| s.version(subject, VersionSel::Latest, permanent).map(|e| e.version))?
                }
            };
            match outcome(b.write(Command::DeleteVersion { subject: subject.clone(), version, permanent }).await?)? {
                Outcome::Deleted(_) => Ok(ApiResponse::ok(json!(version))),
                other => Err(unexpected(other)),
            }
        }
        ("PUT", Route::Config(subject)) => {
            let body: Value = serde_json::from_slice(req.body).map_err(|e| bad_json(&e))?;
            let level = body.get("compatibility").or_else(|| body.get("compatibilityLevel")).and_then(Value::as_str).and_then(Level::parse);
            let level = level.ok_or_else(|| ApiError::new(422, 42203, "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive"))?;
            match outcome(b.write(Command::Config { subject: subject.clone(), level: Some(level) }).await?)? {
                Outcome::Config(l) => Ok(ApiResponse::ok(json!({"compatibility": l.name()}))),
                other => Err(unexpected(other)),
            }
        }
        ("DELETE", Route::Config(subject)) => match outcome(b.write(Command::Config { subject: subject.clone(), level: None }).await?)? {
            Outcome::Config(l) => Ok(ApiResponse::ok(json!({"compatibilityLevel": l.name()}))),
            other => Err(unexpected(other)),
        },
        ("PUT", Route::Mode(subject)) => {
            let body: Value = serde_json::from_slice(req.body).map_err(|e| bad_json(&e))?;
            let mode = body.get("mode").and_then(Value::as_str).and_then(Mode::parse);
            let mode = mode.ok_or_else(|| ApiError::new(422, 42204, "Invalid mode. Valid values are READWRITE, READONLY and IMPORT"))?;
            let force = flag(req, "force");
            match outcome(b.write(Command::Mode { subject: subject.clone(), mode: Some(mode), force }).await?)? {
                Outcome::Mode(m) => Ok(ApiResponse::ok(json!({"mode": m.name()}))),
                other => Err(unexpected(other)),
            }
        }
        ("DELETE", Route::Mode(Some(subject))) => {
            match outcome(b.write(Command::Mode { subject: Some(subject.clone()), mode: None, force: false }).await?)? {
                Outcome::Mode(m) => Ok(ApiResponse::ok(json!({"mode": m.name()}))),
                other => Err(unexpected(other)),
            }
        }
        _ => Err(method_not_allowed()),
    }
}

fn unexpected(o: Outcome) -> ApiError {
    ApiError::new(500, 50001, format!("Error in the backend data store: unexpected outcome {o:?}"))
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
