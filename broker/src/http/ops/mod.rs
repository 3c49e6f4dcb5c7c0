//! The admin/ops HTTP application served on `klamm.http.listener`: `/health`, `/ready`,
//! `/metrics` and the ops page with its JSON endpoints. Read-only: nothing here changes the
//! broker.
//!
//! [`OpsState`] exists before the broker does (the listener is bound first thing at start-up,
//! so probes get answers while the node starts); start-up fills it in step by step and
//! `/ready` reports which step is still missing.

mod api;
mod groups;
mod ready;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use http::StatusCode;

use super::{Request, Response, Service};
use crate::metadata::MetadataSource;
use crate::server::Broker;
pub use ready::{readiness_response, Readiness};

/// The ops page: one static file compiled into the binary (no CDN, no external fonts).
const PAGE: &str = include_str!("page.html");

/// Largest request body the ops routes accept (they take none: GET only).
pub const MAX_BODY: usize = 64 * 1024;

/// What start-up has reached, shared between `server::start` and the ops routes.
pub struct OpsState {
    node_id: i32,
    started: Instant,
    metadata: OnceLock<MetadataSource>,
    broker: OnceLock<Arc<Broker>>,
    /// The broker epoch of this node's registration; -1 until registered.
    broker_epoch: AtomicI64,
    /// The local partitions reflect the metadata log up to the unfencing (start-up catch-up).
    caught_up: AtomicBool,
    /// The Kafka listeners accept connections.
    listeners_open: AtomicBool,
}

impl OpsState {
    pub fn new(node_id: i32) -> Arc<OpsState> {
        Arc::new(OpsState {
            node_id,
            started: Instant::now(),
            metadata: OnceLock::new(),
            broker: OnceLock::new(),
            broker_epoch: AtomicI64::new(-1),
            caught_up: AtomicBool::new(false),
            listeners_open: AtomicBool::new(false),
        })
    }

    pub fn set_metadata(&self, metadata: MetadataSource) {
        let _ = self.metadata.set(metadata);
    }

    pub fn set_registered(&self, broker_epoch: i64) {
        self.broker_epoch.store(broker_epoch, Ordering::Release);
    }

    pub fn set_caught_up(&self) {
        self.caught_up.store(true, Ordering::Release);
    }

    /// The broker is built and its listeners serve.
    pub fn set_serving(&self, broker: Arc<Broker>) {
        let _ = self.broker.set(broker);
        self.listeners_open.store(true, Ordering::Release);
    }

    pub fn broker(&self) -> Option<&Arc<Broker>> {
        self.broker.get()
    }

    /// The readiness checks as they stand now.
    pub fn readiness(&self) -> Readiness {
        let epoch = self.broker_epoch.load(Ordering::Acquire);
        let image = self.metadata.get().map(|m| m.image());
        let registration = image.as_ref().and_then(|i| i.broker(self.node_id)).filter(|b| epoch >= 0 && b.epoch == epoch);
        let shutting_down = self.broker.get().is_some_and(|b| b.shutting_down.load(Ordering::Relaxed));
        let leader_known = self.metadata.get().is_some_and(|m| m.active_controller().is_some());
        Readiness {
            node_id: self.node_id,
            registered: registration.is_some(),
            unfenced: registration.is_some_and(|b| !b.fenced),
            caught_up: self.caught_up.load(Ordering::Acquire) && leader_known,
            listeners_open: self.listeners_open.load(Ordering::Acquire) && !shutting_down,
            metadata_index: image.map(|i| i.last_applied_index).unwrap_or(0),
        }
    }
}

/// The ops routes over an [`OpsState`].
pub struct OpsService {
    state: Arc<OpsState>,
}

impl OpsService {
    pub fn new(state: Arc<OpsState>) -> Arc<OpsService> {
        Arc::new(OpsService { state })
    }

    async fn route(&self, req: Request) -> Response {
        if req.method != http::Method::GET && req.method != http::Method::HEAD {
            return Response::error(StatusCode::METHOD_NOT_ALLOWED, "the ops listener is read-only: GET only");
        }
        match req.path.as_str() {
            "/health" => Response::json(
                StatusCode::OK,
                &serde_json::json!({
                    "status": "UP",
                    "node_id": self.state.node_id,
                    "uptime_ms": self.state.started.elapsed().as_millis() as u64,
                }),
            ),
            "/ready" => readiness_response(&self.state.readiness()),
            "/" | "/index.html" => Response::new(StatusCode::OK, "text/html; charset=utf-8", PAGE),
            path => {
                let Some(broker) = self.state.broker() else {
                    return Response::error(StatusCode::SERVICE_UNAVAILABLE, "the broker is still starting");
                };
                match path {
                    "/metrics" => Response::new(StatusCode::OK, crate::metrics::encode::CONTENT_TYPE, crate::metrics::scrape::render(broker).await),
                    "/api/cluster" => Response::json(StatusCode::OK, &api::cluster(broker)),
                    "/api/topics" => Response::json(StatusCode::OK, &api::topics(broker)),
                    "/api/groups" => Response::json(StatusCode::OK, &groups::cluster_groups(broker).await),
                    _ => Response::error(StatusCode::NOT_FOUND, &format!("no such resource: {}", req.path)),
                }
            }
        }
    }
}

impl Service for OpsService {
    fn call(&self, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send + '_>> {
        Box::pin(self.route(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Request {
        Request {
            method: http::Method::GET,
            path: path.to_string(),
            query: Vec::new(),
            headers: http::HeaderMap::new(),
            body: bytes::Bytes::new(),
            peer: "127.0.0.1:1".parse().unwrap(),
        }
    }

    #[tokio::test]
    async fn while_starting_health_is_up_and_ready_names_every_missing_step() {
        let service = OpsService::new(OpsState::new(7));
        let health = service.call(get("/health")).await;
        assert_eq!(health.status, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_slice(&health.body).unwrap();
        assert_eq!((v["status"].as_str(), v["node_id"].as_i64()), (Some("UP"), Some(7)));

        let ready = service.call(get("/ready")).await;
        assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
        let v: serde_json::Value = serde_json::from_slice(&ready.body).unwrap();
        assert_eq!(v["ready"], false);
        assert_eq!(v["missing"], serde_json::json!(["registered", "unfenced", "caught_up", "listeners_open"]));

        // Registered and caught up, but without an image showing the registration: still not ready.
        service.state.set_registered(3);
        service.state.set_caught_up();
        let v: serde_json::Value = serde_json::from_slice(&service.call(get("/ready")).await.body).unwrap();
        assert_eq!(v["checks"]["registered"], false);

        assert_eq!(service.call(get("/metrics")).await.status, StatusCode::SERVICE_UNAVAILABLE);
        let page = service.call(get("/")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(std::str::from_utf8(&page.body).unwrap().contains("id=\"broker-count\""));
        let post = Request { method: http::Method::POST, ..get("/metrics") };
        assert_eq!(service.call(post).await.status, StatusCode::METHOD_NOT_ALLOWED);
    }
}
