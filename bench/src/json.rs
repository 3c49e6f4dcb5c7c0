//! The `--json` report's values: serde_json's [`Value`], with the small builder the
//! report code uses (`Json::obj().with(key, value)`) and pretty printing with floats
//! rounded to 6 decimals so the file stays readable. Fields keep their insertion order
//! (serde_json's `preserve_order` feature), as the report lists them.

use serde_json::{Map, Value};

pub type Json = Value;

/// Builder methods on [`Json`] objects.
pub trait JsonExt {
    /// An empty object.
    fn obj() -> Self;
    /// The object with one more field (a programming error on non-objects).
    fn with(self, key: &str, value: impl Into<Json>) -> Self;
    /// Pretty-printed with two-space indents, floats rounded, and a final newline.
    fn to_pretty(&self) -> String;
}

impl JsonExt for Json {
    fn obj() -> Json {
        Value::Object(Map::new())
    }

    fn with(mut self, key: &str, value: impl Into<Json>) -> Json {
        match &mut self {
            Value::Object(fields) => {
                fields.insert(key.to_string(), value.into());
            }
            _ => panic!("Json::with on a non-object"),
        }
        self
    }

    fn to_pretty(&self) -> String {
        let mut rounded = self.clone();
        round_floats(&mut rounded);
        let mut out = serde_json::to_string_pretty(&rounded).expect("a Value always serializes");
        out.push('\n');
        out
    }
}

/// Rounds every float to 6 decimals. Non-finite floats never get here: serde_json turns
/// them into `null` when the value is built.
fn round_floats(v: &mut Json) {
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or_default();
            *v = Json::from((f * 1e6).round() / 1e6);
        }
        Value::Array(items) => items.iter_mut().for_each(round_floats),
        Value::Object(fields) => fields.values_mut().for_each(round_floats),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_nests_rounds_and_keeps_order() {
        let j = Json::obj()
            .with("a", "x\"y\n")
            .with("b", 1.5)
            .with("c", Json::Array(vec![Json::from(1), Json::Null]))
            .with("d", f64::NAN)
            .with("e", 0.123_456_789)
            .with("f", Some(3u64))
            .with("g", None::<i64>)
            .with("empty", Json::obj());
        let s = j.to_pretty();
        assert_eq!(
            s,
            "{\n  \"a\": \"x\\\"y\\n\",\n  \"b\": 1.5,\n  \"c\": [\n    1,\n    null\n  ],\n  \"d\": null,\n  \
             \"e\": 0.123457,\n  \"f\": 3,\n  \"g\": null,\n  \"empty\": {}\n}\n"
        );
    }
}
