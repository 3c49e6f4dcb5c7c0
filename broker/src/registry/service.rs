//! The registry as an HTTP application of the shared server (`crate::http`): turns a
//! request into an [`ApiRequest`], answers with Confluent's media type, and starts
//! the store's reader task.
//!
//! Authentication: with basic auth on (`klamm.schema.registry.authentication`, by default
//! whenever a Kafka listener is SASL_*), every request must carry the credentials of a
//! broker user ([`super::auth`]); anything else is answered 401 with
//! `WWW-Authenticate: Basic realm="..."` and Confluent's `{"error_code":401,"message":...}`
//! body before the request reaches the API. TLS (an `https://` listener) is the HTTP
//! server's business (`crate::http::serve`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tracing::info;

use super::api::{self, ApiRequest, CONTENT_TYPE};
use super::auth::{BasicAuth, Denied, REALM};
use super::store::Store;
use crate::http::{Request, Response, Service};

/// Largest request body accepted (a schema with its references); larger gets 413.
pub const MAX_BODY: usize = 8 << 20;

pub struct RegistryService {
    store: Arc<Store>,
    /// None: no authentication asked for.
    auth: Option<Arc<BasicAuth>>,
}

impl RegistryService {
    pub fn new(store: Arc<Store>, auth: Option<Arc<BasicAuth>>) -> Arc<RegistryService> {
        Arc::new(RegistryService { store, auth })
    }

    /// The basic-auth check (see the module doc): Err is the answer to send instead.
    async fn authenticate(&self, req: &Request) -> Result<(), Response> {
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        match auth.authenticate(&req.headers).await {
            Ok(_principal) => Ok(()),
            Err(denied) => {
                // The user name only: the header's password is never logged.
                let user = super::auth::credentials(&req.headers).map(|(u, _)| u).unwrap_or_default();
                info!(peer = %req.peer, user = %user.escape_default(), reason = denied.0, "schema registry request refused");
                Err(unauthorized(&denied))
            }
        }
    }
}

/// 401 with the challenge clients answer with credentials, and Confluent's error body.
pub fn unauthorized(denied: &Denied) -> Response {
    let body = serde_json::json!({ "error_code": 401, "message": denied.0 });
    let mut response = Response::new(http::StatusCode::UNAUTHORIZED, CONTENT_TYPE, body.to_string());
    if let Ok(challenge) = http::HeaderValue::from_str(&format!("Basic realm=\"{REALM}\"")) {
        response.headers.insert(http::header::WWW_AUTHENTICATE, challenge);
    }
    response
}

impl Service for RegistryService {
    fn call(&self, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send + '_>> {
        Box::pin(async move {
            if let Err(denied) = self.authenticate(&req).await {
                return denied;
            }
            let api_req = ApiRequest { method: req.method.as_str(), path: &req.path, query: &req.query, body: &req.body };
            let answer = api::handle(&*self.store, &api_req).await;
            let status = http::StatusCode::from_u16(answer.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
            Response::new(status, CONTENT_TYPE, answer.bytes())
        })
    }
}
