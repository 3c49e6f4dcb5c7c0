//! Every REST path against an in-memory backend (the state machine applied at once), with the
//! status codes and bodies of Confluent's API reference.

use std::sync::Mutex;

use serde_json::{json, Value};

use super::*;
use crate::registry::{formats, KnownSchemaIds};

/// The state machine without a log: a write applies at once.
struct Memory(Mutex<RegistryState>);

impl Backend for Memory {
    fn read<T>(&self, f: impl FnOnce(&RegistryState) -> T) -> T {
        f(&self.0.lock().unwrap())
    }
    async fn write(&self, command: Command) -> Result<Outcome, ApiError> {
        Ok(self.0.lock().unwrap().apply(command))
    }
    async fn catch_up(&self) {}
}

fn memory() -> Memory {
    Memory(Mutex::new(RegistryState::new(formats(), KnownSchemaIds::default())))
}

fn call(b: &Memory, method: &str, target: &str, body: &str) -> (u16, Value) {
    let (path, q) = target.split_once('?').unwrap_or((target, ""));
    let query: Vec<(String, String)> =
        q.split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).unwrap_or((p.to_string(), String::new()))).collect();
    let req = ApiRequest { method, path, query: &query, body: body.as_bytes() };
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let r = rt.block_on(handle(b, &req));
    let body = match &r.raw {
        Some(raw) => serde_json::from_str(raw).unwrap_or(Value::String(raw.clone())),
        None => r.body.clone(),
    };
    (r.status, body)
}

const ORDER_V1: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"order_id","type":"string"}]}"#;
const ORDER_V2: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"order_id","type":"string"},{"name":"currency","type":"string","default":"EUR"}]}"#;
const ORDER_BAD: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"order_id","type":"int"}]}"#;

fn body(schema: &str) -> String {
    json!({ "schema": schema }).to_string()
}

fn error_code(v: &Value) -> i64 {
    v["error_code"].as_i64().unwrap_or(0)
}

#[test]
fn register_lookup_and_read_back() {
    let b = memory();
    assert_eq!(call(&b, "GET", "/subjects", ""), (200, json!([])));
    assert_eq!(call(&b, "POST", "/subjects/orders-value/versions", &body(ORDER_V1)), (200, json!({"id": 1})));
    assert_eq!(call(&b, "POST", "/subjects/orders-value/versions", &body(ORDER_V1)), (200, json!({"id": 1})));
    assert_eq!(call(&b, "POST", "/subjects/orders-value/versions", &body(ORDER_V2)), (200, json!({"id": 2})));
    assert_eq!(call(&b, "GET", "/subjects", ""), (200, json!(["orders-value"])));
    assert_eq!(call(&b, "GET", "/subjects/orders-value/versions", ""), (200, json!([1, 2])));
    let (status, v) = call(&b, "GET", "/subjects/orders-value/versions/latest", "");
    assert_eq!(status, 200);
    assert_eq!((v["subject"].as_str(), v["version"].as_i64(), v["id"].as_i64()), (Some("orders-value"), Some(2), Some(2)));
    assert!(v.get("schemaType").is_none(), "AVRO is left out as in Confluent: {v}");
    let (_, v1) = call(&b, "GET", "/subjects/orders-value/versions/1", "");
    assert_eq!(v1["id"], 1);
    let (status, raw) = call(&b, "GET", "/subjects/orders-value/versions/1/schema", "");
    assert_eq!((status, raw["name"].as_str()), (200, Some("Order")));
    // Lookup.
    let (status, v) = call(&b, "POST", "/subjects/orders-value", &body(ORDER_V1));
    assert_eq!((status, v["version"].as_i64(), v["id"].as_i64()), (200, Some(1), Some(1)));
    let (status, v) = call(&b, "POST", "/subjects/orders-value", &body(ORDER_BAD));
    assert_eq!((status, error_code(&v)), (404, 40403));
    let (status, v) = call(&b, "POST", "/subjects/nope", &body(ORDER_V1));
    assert_eq!((status, error_code(&v)), (404, 40401));
    // By id.
    let (status, v) = call(&b, "GET", "/schemas/ids/2", "");
    assert_eq!(status, 200);
    assert!(v["schema"].as_str().unwrap().contains("currency"));
    let (status, v) = call(&b, "GET", "/schemas/ids/2/schema", "");
    assert_eq!((status, v["type"].as_str()), (200, Some("record")));
    assert_eq!(call(&b, "GET", "/schemas/ids/1/subjects", ""), (200, json!(["orders-value"])));
    assert_eq!(call(&b, "GET", "/schemas/ids/1/versions", ""), (200, json!([{"subject": "orders-value", "version": 1}])));
    let (status, v) = call(&b, "GET", "/schemas/ids/99", "");
    assert_eq!((status, error_code(&v)), (404, 40403));
    let (status, v) = call(&b, "GET", "/schemas/ids/x", "");
    assert_eq!((status, error_code(&v)), (404, 40403));
    assert_eq!(call(&b, "GET", "/schemas/types", ""), (200, json!(["AVRO", "JSON", "PROTOBUF"])));
    let (status, v) = call(&b, "GET", "/schemas?subjectPrefix=orders&latestOnly=true", "");
    assert_eq!((status, v.as_array().map(Vec::len)), (200, Some(1)));
}

#[test]
fn errors_have_confluent_codes() {
    let b = memory();
    let cases: Vec<(&str, &str, String, u16, i64)> = vec![
        ("POST", "/subjects/s/versions", body("{\"type\":\"nope\"}"), 422, 42201),
        ("POST", "/subjects/s/versions", json!({"schema": ""}).to_string(), 422, 42201),
        ("POST", "/subjects/s/versions", json!({"schema": ORDER_V1, "schemaType": "XML"}).to_string(), 422, 42201),
        ("POST", "/subjects/s/versions", "{not json".into(), 400, 400),
        ("GET", "/subjects/s/versions", String::new(), 404, 40401),
        ("GET", "/subjects/s/versions/1", String::new(), 404, 40401),
        ("GET", "/subjects/s/versions/abc", String::new(), 422, 42202),
        ("GET", "/subjects/s/versions/0", String::new(), 422, 42202),
        ("GET", "/nothing/here", String::new(), 404, 404),
        ("PUT", "/subjects", String::new(), 405, 405),
        ("POST", "/subjects/a%2Fb/versions", body(ORDER_V1), 422, 42208),
        ("POST", "/subjects/a%00b/versions", body(ORDER_V1), 422, 42208),
        ("PUT", "/config", json!({"compatibility": "SIDEWAYS"}).to_string(), 422, 42203),
        ("PUT", "/mode", json!({"mode": "FAST"}).to_string(), 422, 42204),
        ("GET", "/config/s", String::new(), 404, 40408),
        ("DELETE", "/subjects/s", String::new(), 404, 40401),
        (
            "POST",
            "/subjects/o/versions",
            json!({"schema": ORDER_V1, "references": [{"name": "x.Y", "subject": "missing", "version": 1}]}).to_string(),
            422,
            42201,
        ),
    ];
    for (method, path, req_body, status, code) in cases {
        let (got_status, got) = call(&b, method, path, &req_body);
        assert_eq!((got_status, error_code(&got)), (status, code), "{method} {path}: {got}");
        assert!(got["message"].as_str().is_some_and(|m| !m.is_empty()), "{got}");
    }
    let (_, v) = call(&b, "POST", "/subjects/s/versions/1", "");
    assert_eq!(error_code(&v), 405);
}

#[test]
fn unknown_fields_are_ignored() {
    let b = memory();
    let req = json!({"schema": ORDER_V1, "schemaType": "AVRO", "metadata": {"x": 1}, "ruleSet": null, "whatever": true}).to_string();
    assert_eq!(call(&b, "POST", "/subjects/s/versions", &req), (200, json!({"id": 1})));
}

#[test]
fn compatibility_endpoint_with_verbose() {
    let b = memory();
    call(&b, "POST", "/subjects/o/versions", &body(ORDER_V1));
    assert_eq!(call(&b, "POST", "/compatibility/subjects/o/versions/latest", &body(ORDER_V2)), (200, json!({"is_compatible": true})));
    let (status, v) = call(&b, "POST", "/compatibility/subjects/o/versions/latest?verbose=true", &body(ORDER_BAD));
    assert_eq!((status, v["is_compatible"].as_bool()), (200, Some(false)));
    assert!(v["messages"].as_array().is_some_and(|m| !m.is_empty()), "{v}");
    assert_eq!(call(&b, "POST", "/compatibility/subjects/o/versions", &body(ORDER_V2)).1["is_compatible"], true);
    let (status, v) = call(&b, "POST", "/compatibility/subjects/o/versions/7", &body(ORDER_V2));
    assert_eq!((status, error_code(&v)), (404, 40402));
    assert_eq!(call(&b, "POST", "/compatibility/subjects/new/versions/latest", &body(ORDER_V2)).1["is_compatible"], true);
    // Registration refuses the incompatible one with 409 and its reasons.
    let (status, v) = call(&b, "POST", "/subjects/o/versions", &body(ORDER_BAD));
    assert_eq!((status, error_code(&v)), (409, 409));
    assert!(v["message"].as_str().unwrap().contains("order_id"), "{v}");
}

#[test]
fn deletes_soft_then_permanent() {
    let b = memory();
    call(&b, "POST", "/subjects/o/versions", &body(ORDER_V1));
    call(&b, "POST", "/subjects/o/versions", &body(ORDER_V2));
    let (status, v) = call(&b, "DELETE", "/subjects/o/versions/2?permanent=true", "");
    assert_eq!((status, error_code(&v)), (404, 40407));
    assert_eq!(call(&b, "DELETE", "/subjects/o/versions/2", ""), (200, json!(2)));
    assert_eq!(call(&b, "GET", "/subjects/o/versions", ""), (200, json!([1])));
    assert_eq!(call(&b, "GET", "/subjects/o/versions?deleted=true", ""), (200, json!([1, 2])));
    assert_eq!(call(&b, "DELETE", "/subjects/o/versions/2?permanent=true", ""), (200, json!(2)));
    let (status, v) = call(&b, "DELETE", "/subjects/o?permanent=true", "");
    assert_eq!((status, error_code(&v)), (404, 40405));
    assert_eq!(call(&b, "DELETE", "/subjects/o", ""), (200, json!([1])));
    assert_eq!(call(&b, "GET", "/subjects", ""), (200, json!([])));
    assert_eq!(call(&b, "GET", "/subjects?deleted=true", ""), (200, json!(["o"])));
    assert_eq!(call(&b, "DELETE", "/subjects/o?permanent=true", ""), (200, json!([1])));
    assert_eq!(call(&b, "GET", "/subjects?deleted=true", ""), (200, json!([])));
    let (status, v) = call(&b, "GET", "/schemas/ids/1", "");
    assert_eq!((status, error_code(&v)), (404, 40403));
}

#[test]
fn config_and_mode() {
    let b = memory();
    assert_eq!(call(&b, "GET", "/config", ""), (200, json!({"compatibilityLevel": "BACKWARD"})));
    assert_eq!(call(&b, "PUT", "/config", r#"{"compatibility":"FULL"}"#), (200, json!({"compatibility": "FULL"})));
    assert_eq!(call(&b, "PUT", "/config/o", r#"{"compatibility":"none"}"#), (200, json!({"compatibility": "NONE"})));
    assert_eq!(call(&b, "GET", "/config/o", ""), (200, json!({"compatibilityLevel": "NONE"})));
    assert_eq!(call(&b, "DELETE", "/config/o", ""), (200, json!({"compatibilityLevel": "NONE"})));
    assert_eq!(call(&b, "GET", "/config/o?defaultToGlobal=true", ""), (200, json!({"compatibilityLevel": "FULL"})));
    assert_eq!(call(&b, "DELETE", "/config", ""), (200, json!({"compatibilityLevel": "FULL"})));
    assert_eq!(call(&b, "GET", "/config", ""), (200, json!({"compatibilityLevel": "BACKWARD"})));
    assert_eq!(call(&b, "GET", "/mode", ""), (200, json!({"mode": "READWRITE"})));
    assert_eq!(call(&b, "PUT", "/mode/o", r#"{"mode":"READONLY"}"#), (200, json!({"mode": "READONLY"})));
    let (status, v) = call(&b, "POST", "/subjects/o/versions", &body(ORDER_V1));
    assert_eq!((status, error_code(&v)), (422, 42205));
    assert_eq!(call(&b, "DELETE", "/mode/o", ""), (200, json!({"mode": "READONLY"})));
    let (status, v) = call(&b, "GET", "/mode/o", "");
    assert_eq!((status, error_code(&v)), (404, 40409));
    assert_eq!(call(&b, "GET", "/mode/o?defaultToGlobal=true", ""), (200, json!({"mode": "READWRITE"})));
    // IMPORT: ids come with the request.
    assert_eq!(call(&b, "PUT", "/mode", r#"{"mode":"IMPORT"}"#), (200, json!({"mode": "IMPORT"})));
    let req = json!({"schema": ORDER_V1, "id": 42, "version": 3}).to_string();
    assert_eq!(call(&b, "POST", "/subjects/imported/versions", &req), (200, json!({"id": 42})));
    assert_eq!(call(&b, "GET", "/subjects/imported/versions", ""), (200, json!([3])));
}

#[test]
fn references_and_referencedby() {
    let b = memory();
    let item = r#"{"type":"record","name":"Item","namespace":"shop","fields":[{"name":"sku","type":"string"}]}"#;
    let order = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"items","type":{"type":"array","items":"shop.Item"}}]}"#;
    assert_eq!(call(&b, "POST", "/subjects/item/versions", &body(item)), (200, json!({"id": 1})));
    let req = json!({"schema": order, "references": [{"name": "shop.Item", "subject": "item", "version": 1}]}).to_string();
    assert_eq!(call(&b, "POST", "/subjects/order/versions", &req), (200, json!({"id": 2})));
    let (_, v) = call(&b, "GET", "/schemas/ids/2", "");
    assert_eq!(v["references"], json!([{"name": "shop.Item", "subject": "item", "version": 1}]));
    assert_eq!(call(&b, "GET", "/subjects/item/versions/1/referencedby", ""), (200, json!([2])));
    let (status, v) = call(&b, "DELETE", "/subjects/item/versions/1", "");
    assert_eq!((status, error_code(&v)), (422, 42206));
}

#[test]
fn normalize_is_accepted() {
    let b = memory();
    assert_eq!(call(&b, "POST", "/subjects/n/versions?normalize=true", &body(ORDER_V1)), (200, json!({"id": 1})));
    let spaced = ORDER_V1.replace(':', " : ");
    assert_eq!(call(&b, "POST", "/subjects/n?normalize=true", &body(&spaced)).1["id"], 1);
}
