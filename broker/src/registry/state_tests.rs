//! The state machine on its own: registration, ids, versions, deletes, configs, modes.

use super::*;
use crate::registry::formats;

fn state() -> RegistryState {
    RegistryState::new(formats(), KnownSchemaIds::default())
}

fn register(subject: &str, schema: &str) -> Command {
    Command::Register {
        subject: subject.into(),
        schema: schema.into(),
        schema_type: "AVRO".into(),
        references: vec![],
        normalize: false,
        id: None,
        version: None,
    }
}

const V1: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"}]}"#;
const V2: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"total","type":"double","default":0}]}"#;
const V3_BREAKS: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"user","type":"string"}]}"#;

#[test]
fn same_schema_same_id_and_ids_grow() {
    let mut s = state();
    assert_eq!(s.apply(register("a", V1)), Outcome::Registered { id: 1, version: 1 });
    // Whitespace does not make a new schema.
    let spaced = V1.replace(',', " , ");
    assert_eq!(s.apply(register("a", &spaced)), Outcome::Registered { id: 1, version: 1 });
    assert_eq!(s.apply(register("a", V2)), Outcome::Registered { id: 2, version: 2 });
    // The same schema under another subject keeps its id.
    assert_eq!(s.apply(register("b", V1)), Outcome::Registered { id: 1, version: 1 });
    assert_eq!(s.subject_names(false), vec!["a", "b"]);
    assert_eq!(s.uses_of(1, false), vec![("a".to_string(), 1), ("b".to_string(), 1)]);
}

#[test]
fn incompatible_schema_is_refused_with_409_and_none_allows_it() {
    let mut s = state();
    s.apply(register("a", V1));
    match s.apply(register("a", V3_BREAKS)) {
        Outcome::Failed(e) => {
            assert_eq!((e.status, e.code), (409, 409));
            assert!(e.message.contains("user"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
    s.apply(Command::Config { subject: Some("a".into()), level: Some(Level::None) });
    assert_eq!(s.apply(register("a", V3_BREAKS)), Outcome::Registered { id: 2, version: 2 });
}

#[test]
fn transitive_checks_all_versions() {
    let a = r#"{"type":"record","name":"R","fields":[{"name":"x","type":"int"}]}"#;
    let b = r#"{"type":"record","name":"R","fields":[]}"#;
    let c = r#"{"type":"record","name":"R","fields":[{"name":"x","type":"string","default":""}]}"#;
    // BACKWARD: c reads b (x has a default), fine; BACKWARD_TRANSITIVE: c must also read a (int -> string fails).
    let mut s = state();
    s.apply(register("t", a));
    s.apply(register("t", b));
    assert!(matches!(s.apply(register("t", c)), Outcome::Registered { .. }));
    let mut s = state();
    s.apply(Command::Config { subject: None, level: Some(Level::BackwardTransitive) });
    s.apply(register("t", a));
    s.apply(register("t", b));
    assert!(matches!(s.apply(register("t", c)), Outcome::Failed(ApiError { code: 409, .. })));
}

#[test]
fn forward_and_full() {
    let mut s = state();
    s.apply(Command::Config { subject: Some("f".into()), level: Some(Level::Forward) });
    s.apply(register("f", V1));
    // Adding a field without default: the old schema reads new data (ignores it) -> FORWARD ok.
    assert!(matches!(s.apply(register("f", V3_BREAKS)), Outcome::Registered { .. }));
    s.apply(Command::Config { subject: Some("f".into()), level: Some(Level::Full) });
    // Removing a field without default from the old one's point of view: old cannot read new.
    assert!(matches!(s.apply(register("f", V1)), Outcome::Registered { .. }), "V1 is already version 1");
    let dropped = r#"{"type":"record","name":"Order","fields":[{"name":"user","type":"string"}]}"#;
    assert!(matches!(s.apply(register("f", dropped)), Outcome::Failed(ApiError { code: 409, .. })));
}

#[test]
fn invalid_schema_and_unknown_type() {
    let mut s = state();
    match s.apply(register("a", "{not json")) {
        Outcome::Failed(e) => assert_eq!((e.status, e.code), (422, 42201)),
        other => panic!("{other:?}"),
    }
    let cmd = Command::Register {
        subject: "a".into(),
        schema: V1.into(),
        schema_type: "XML".into(),
        references: vec![],
        normalize: false,
        id: None,
        version: None,
    };
    assert!(matches!(s.apply(cmd), Outcome::Failed(ApiError { code: 42201, .. })));
    assert!(s.subjects.is_empty() && s.max_id == 0);
}

#[test]
fn soft_then_permanent_delete() {
    let known = KnownSchemaIds::default();
    let mut s = RegistryState::new(formats(), known.clone());
    s.apply(register("a", V1));
    s.apply(register("a", V2));
    assert!(known.registered_under(2, "a"));
    assert!(matches!(s.apply(Command::DeleteSubject { subject: "a".into(), permanent: true }), Outcome::Failed(ApiError { code: 40405, .. })));
    assert_eq!(s.apply(Command::DeleteSubject { subject: "a".into(), permanent: false }), Outcome::Deleted(vec![1, 2]));
    assert!(s.subject_names(false).is_empty());
    assert_eq!(s.subject_names(true), vec!["a"]);
    assert!(matches!(s.apply(Command::DeleteSubject { subject: "a".into(), permanent: false }), Outcome::Failed(ApiError { code: 40401, .. })));
    assert_eq!(s.apply(Command::DeleteSubject { subject: "a".into(), permanent: true }), Outcome::Deleted(vec![1, 2]));
    assert!(!known.contains(1) && s.schemas.is_empty());
    // Ids are not reused after a permanent delete.
    assert_eq!(s.apply(register("a", V3_BREAKS)), Outcome::Registered { id: 3, version: 1 });
}

#[test]
fn version_delete_and_reregister() {
    let mut s = state();
    s.apply(register("a", V1));
    s.apply(register("a", V2));
    assert!(matches!(s.apply(Command::DeleteVersion { subject: "a".into(), version: 2, permanent: true }), Outcome::Failed(ApiError { code: 40407, .. })));
    assert_eq!(s.apply(Command::DeleteVersion { subject: "a".into(), version: 2, permanent: false }), Outcome::Deleted(vec![2]));
    assert!(matches!(s.version("a", VersionSel::Number(2), false), Err(ApiError { code: 40402, .. })));
    assert_eq!(s.version("a", VersionSel::Latest, false).unwrap().version, 1);
    assert_eq!(s.version("a", VersionSel::Number(2), true).unwrap().id, 2);
    // Registering the soft-deleted schema again makes a new version with the same id.
    assert_eq!(s.apply(register("a", V2)), Outcome::Registered { id: 2, version: 3 });
    assert!(matches!(s.apply(Command::DeleteVersion { subject: "a".into(), version: 9, permanent: false }), Outcome::Failed(ApiError { code: 40402, .. })));
}

#[test]
fn references_must_exist_and_block_deletes() {
    let mut s = state();
    let item = r#"{"type":"record","name":"Item","namespace":"shop","fields":[{"name":"sku","type":"string"}]}"#;
    let order = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"items","type":{"type":"array","items":"shop.Item"}}]}"#;
    let with_ref = |version| Command::Register {
        subject: "order".into(),
        schema: order.into(),
        schema_type: "AVRO".into(),
        references: vec![Reference { name: "shop.Item".into(), subject: "item".into(), version }],
        normalize: false,
        id: None,
        version: None,
    };
    assert!(matches!(s.apply(with_ref(1)), Outcome::Failed(ApiError { code: 42201, .. })));
    assert_eq!(s.apply(register("item", item)), Outcome::Registered { id: 1, version: 1 });
    assert_eq!(s.apply(with_ref(1)), Outcome::Registered { id: 2, version: 1 });
    assert!(matches!(s.apply(Command::DeleteVersion { subject: "item".into(), version: 1, permanent: false }), Outcome::Failed(ApiError { code: 42206, .. })));
}

#[test]
fn modes() {
    let mut s = state();
    s.apply(register("a", V1));
    assert_eq!(s.apply(Command::Mode { subject: Some("a".into()), mode: Some(Mode::Readonly), force: false }), Outcome::Mode(Mode::Readonly));
    assert!(matches!(s.apply(register("a", V2)), Outcome::Failed(ApiError { code: 42205, .. })));
    assert!(matches!(s.apply(register("b", V2)), Outcome::Registered { .. }));
    // IMPORT needs an empty registry (or force) and writes carry their ids.
    assert!(matches!(s.apply(Command::Mode { subject: None, mode: Some(Mode::Import), force: false }), Outcome::Failed(ApiError { code: 42205, .. })));
    assert_eq!(s.apply(Command::Mode { subject: None, mode: Some(Mode::Import), force: true }), Outcome::Mode(Mode::Import));
    let import = Command::Register {
        subject: "c".into(),
        schema: V3_BREAKS.into(),
        schema_type: "AVRO".into(),
        references: vec![],
        normalize: false,
        id: Some(100),
        version: Some(7),
    };
    assert_eq!(s.apply(import), Outcome::Registered { id: 100, version: 7 });
    assert!(matches!(s.apply(register("c", V1)), Outcome::Failed(ApiError { code: 42205, .. })));
    s.apply(Command::Mode { subject: None, mode: Some(Mode::Readwrite), force: false });
    assert_eq!(s.apply(register("d", r#""string""#)), Outcome::Registered { id: 101, version: 1 });
}

#[test]
fn config_delete_falls_back_to_global() {
    let mut s = state();
    assert_eq!(s.effective_level("x"), Level::Backward);
    s.apply(Command::Config { subject: Some("x".into()), level: Some(Level::Full) });
    assert_eq!(s.effective_level("x"), Level::Full);
    assert!(s.subject_names(true).is_empty(), "a config alone does not make a subject visible");
    assert_eq!(s.apply(Command::Config { subject: Some("x".into()), level: None }), Outcome::Config(Level::Full));
    assert!(matches!(s.apply(Command::Config { subject: Some("x".into()), level: None }), Outcome::Failed(ApiError { code: 40408, .. })));
    s.apply(Command::Config { subject: None, level: Some(Level::None) });
    assert_eq!(s.effective_level("x"), Level::None);
}

#[test]
fn records_round_trip_through_json() {
    let cmds = vec![
        register("a", V1),
        Command::DeleteSubject { subject: "a".into(), permanent: true },
        Command::DeleteVersion { subject: "a".into(), version: 3, permanent: false },
        Command::Config { subject: None, level: Some(Level::FullTransitive) },
        Command::Mode { subject: Some("a".into()), mode: None, force: false },
    ];
    for c in cmds {
        let (key, value) = c.encode();
        let key: serde_json::Value = serde_json::from_slice(&key).unwrap();
        assert_eq!(key["keytype"], serde_json::to_value(&c).unwrap()["keytype"]);
        assert_eq!(Command::decode(&value), Some(c));
    }
    assert_eq!(Command::decode(b"{\"keytype\":\"SCHEMA\"}"), None);
    assert_eq!(Command::decode(b"garbage"), None);
}
