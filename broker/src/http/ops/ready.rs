//! `/ready`: the conditions a container probe waits for before sending traffic, and the JSON
//! answer naming what is still missing.

use http::StatusCode;

use crate::http::Response;

/// The readiness checks of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub node_id: i32,
    /// The metadata log holds this process's broker registration.
    pub registered: bool,
    /// That registration is not fenced.
    pub unfenced: bool,
    /// The local partitions reflect the metadata log as of unfencing, and an active controller
    /// is known.
    pub caught_up: bool,
    /// The Kafka listeners accept connections (and no shutdown has begun).
    pub listeners_open: bool,
    /// Last metadata log index applied to this node's image.
    pub metadata_index: u64,
}

impl Readiness {
    /// The names of the checks that do not hold, in start-up order.
    pub fn missing(&self) -> Vec<&'static str> {
        let checks = [
            ("registered", self.registered),
            ("unfenced", self.unfenced),
            ("caught_up", self.caught_up),
            ("listeners_open", self.listeners_open),
        ];
        checks.iter().filter(|(_, ok)| !ok).map(|(name, _)| *name).collect()
    }
}

/// 200 when every check holds, else 503; the body lists every check and what is missing.
pub fn readiness_response(r: &Readiness) -> Response {
    let missing = r.missing();
    let ready = missing.is_empty();
    let body = serde_json::json!({
        "ready": ready,
        "node_id": r.node_id,
        "checks": {
            "registered": r.registered,
            "unfenced": r.unfenced,
            "caught_up": r.caught_up,
            "listeners_open": r.listeners_open,
        },
        "missing": missing,
        "metadata_index": r.metadata_index,
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Response::json(status, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_ok() -> Readiness {
        Readiness { node_id: 3, registered: true, unfenced: true, caught_up: true, listeners_open: true, metadata_index: 42 }
    }

    #[test]
    fn ready_when_every_check_holds() {
        let r = readiness_response(&all_ok());
        assert_eq!(r.status, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["ready"], true);
        assert_eq!(v["missing"], serde_json::json!([]));
        assert_eq!(v["node_id"], 3);
        assert_eq!(v["metadata_index"], 42);
    }

    #[test]
    fn not_ready_names_what_is_missing() {
        let fenced = Readiness { unfenced: false, caught_up: false, ..all_ok() };
        let r = readiness_response(&fenced);
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers.get(http::header::CONTENT_TYPE).unwrap(), "application/json");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["ready"], false);
        assert_eq!(v["missing"], serde_json::json!(["unfenced", "caught_up"]));
        assert_eq!(v["checks"]["registered"], true);
        assert_eq!(v["checks"]["unfenced"], false);
        assert_eq!(v["checks"]["listeners_open"], true);
        let starting = Readiness { registered: false, unfenced: false, caught_up: false, listeners_open: false, ..all_ok() };
        let v: serde_json::Value = serde_json::from_slice(&readiness_response(&starting).body).unwrap();
        assert_eq!(v["missing"], serde_json::json!(["registered", "unfenced", "caught_up", "listeners_open"]));
    }
}
