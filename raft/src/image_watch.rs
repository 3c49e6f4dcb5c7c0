//! Waiting for the local metadata image to reach a state (own writes, catch-up).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::error::RaftError;
use crate::image::MetadataImage;

/// Waits (at most `timeout`) until the image seen through `rx` satisfies `ready`, and returns
/// that image. `what` describes the awaited state in the timeout error ("reach index 7").
pub async fn wait_for_image(
    rx: &mut watch::Receiver<Arc<MetadataImage>>,
    ready: impl Fn(&MetadataImage) -> bool,
    timeout: Duration,
    what: &str,
) -> Result<Arc<MetadataImage>, RaftError> {
    let wait = async {
        loop {
            {
                let image = rx.borrow_and_update();
                if ready(&image) {
                    return Ok(image.clone());
                }
            }
            rx.changed().await.map_err(|_| RaftError::ShutDown)?;
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .map_err(|_| RaftError::Timeout(format!("metadata image did not {what} within {timeout:?}")))?
}
