//! The registry as an HTTP application of the shared server (`crate::http`): turns a
//! request into an [`ApiRequest`], answers with Confluent's media type, and starts
//! the store's reader task.
//!
//! Authentication hook: when the broker requires SASL, Confluent's registry asks for
//! HTTP basic auth against the same users. [`RegistryService::authenticate`] is where
//! that check belongs (PLAIN users from the JAAS config, SCRAM credentials from the
//! metadata image); it lets every request through today, and the listener serves
//! plain HTTP (TLS with the broker's `ssl.*` settings is not built yet).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::api::{self, ApiRequest, CONTENT_TYPE};
use super::store::Store;
use crate::http::{Request, Response, Service};

/// Largest request body accepted (a schema with its references); larger gets 413.
pub const MAX_BODY: usize = 8 << 20;

pub struct RegistryService {
    store: Arc<Store>,
}

impl RegistryService {
    pub fn new(store: Arc<Store>) -> Arc<RegistryService> {
        Arc::new(RegistryService { store })
    }

    /// The basic-auth hook (see the module doc): Err is the answer to send instead.
    fn authenticate(&self, _req: &Request) -> Result<(), Response> {
        Ok(())
    }
}

impl Service for RegistryService {
    fn call(&self, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send + '_>> {
        Box::pin(async move {
            if let Err(denied) = self.authenticate(&req) {
                return denied;
            }
            let api_req = ApiRequest { method: req.method.as_str(), path: &req.path, query: &req.query, body: &req.body };
            let answer = api::handle(&*self.store, &api_req).await;
            let status = http::StatusCode::from_u16(answer.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
            Response::new(status, CONTENT_TYPE, answer.bytes())
        })
    }
}
