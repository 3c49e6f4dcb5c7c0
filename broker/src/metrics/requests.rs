//! Per-request accounting at the connection: the request count and time per API, the DEBUG
//! request log and the WARN log of slow requests (`klamm.request.slow.threshold.ms`).
//!
//! A Fetch that long-polls is not slow: the handler reports the time it spent waiting for
//! data ([`intended_wait`], a task-local so no handler signature changes) and that time is
//! taken out before counting and comparing.

use std::cell::Cell;
use std::time::{Duration, Instant};

use klamm_protocol::ApiKey;
use tracing::{debug, warn};

use crate::server::Broker;

tokio::task_local! {
    static INTENDED_WAIT: Cell<Duration>;
}

/// Called by a handler for time it waited on purpose (a Fetch's `max_wait_ms`). Outside a
/// [`RequestTimer::scope`] it does nothing.
pub fn intended_wait(waited: Duration) {
    let _ = INTENDED_WAIT.try_with(|w| w.set(w.get() + waited));
}

/// Times one request from its decoded frame to its response being ready.
pub struct RequestTimer {
    started: Instant,
    waited: Duration,
}

impl RequestTimer {
    pub fn start() -> RequestTimer {
        RequestTimer { started: Instant::now(), waited: Duration::ZERO }
    }

    /// Runs `fut` (the handler) noting the intended wait it reports.
    pub async fn scope<F: std::future::Future>(&mut self, fut: F) -> F::Output {
        let (out, waited) = INTENDED_WAIT
            .scope(Cell::new(Duration::ZERO), async move {
                let out = fut.await;
                (out, INTENDED_WAIT.with(|w| w.get()))
            })
            .await;
        self.waited += waited;
        out
    }

    /// The request is answered: count it and log it (DEBUG always, WARN when slow).
    pub fn finish(&self, broker: &Broker, api_key: ApiKey, version: i16, client_id: &str, listener: &str) {
        let total = self.started.elapsed();
        let latency = total.saturating_sub(self.waited);
        broker.metrics.request_done(api_key.as_i16(), latency);
        let latency_ms = latency.as_secs_f64() * 1000.0;
        let waited_ms = self.waited.as_millis() as u64;
        let threshold = broker.config.klamm_request_slow_threshold_ms;
        if threshold > 0 && latency >= Duration::from_millis(threshold as u64) {
            broker.metrics.slow_requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            warn!(client_id, listener, api = api_key.name(), api_version = version, latency_ms, waited_ms, threshold_ms = threshold, "slow request");
        } else {
            debug!(client_id, listener, api = api_key.name(), api_version = version, latency_ms, waited_ms, "request");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn intended_wait_is_collected_inside_the_scope_only() {
        intended_wait(Duration::from_secs(5)); // outside: ignored, no panic
        let mut t = RequestTimer::start();
        let v = t
            .scope(async {
                intended_wait(Duration::from_millis(30));
                tokio::task::yield_now().await;
                intended_wait(Duration::from_millis(20));
                7
            })
            .await;
        assert_eq!(v, 7);
        assert_eq!(t.waited, Duration::from_millis(50));
    }
}
