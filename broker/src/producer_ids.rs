//! Producer ids for InitProducerId, handed out from blocks reserved through
//! the metadata log (Kafka's AllocateProducerIds), so ids are unique across
//! brokers and restarts: a restarted broker asks for a fresh block and never
//! reuses an id of the block it had.

use std::sync::Mutex;

use klamm_raft::MetadataCommand;

/// How many ids one metadata-log entry reserves (Kafka uses 1000 too).
pub const BLOCK_SIZE: i64 = 1000;

pub struct ProducerIdAllocator {
    node_id: i32,
    /// `next..end` is the unused rest of the current block.
    block: Mutex<(i64, i64)>,
    /// Serialises block refills so concurrent callers do not each reserve one.
    refill: tokio::sync::Mutex<()>,
}

impl ProducerIdAllocator {
    pub fn new(node_id: i32) -> Self {
        ProducerIdAllocator { node_id, block: Mutex::new((0, 0)), refill: tokio::sync::Mutex::new(()) }
    }

    fn take(&self) -> Option<i64> {
        let mut block = self.block.lock().expect("producer id lock poisoned");
        if block.0 < block.1 {
            let id = block.0;
            block.0 += 1;
            Some(id)
        } else {
            None
        }
    }

    pub async fn next(&self, quorum: &crate::metadata::MetadataSource) -> anyhow::Result<i64> {
        if let Some(id) = self.take() {
            return Ok(id);
        }
        let _guard = self.refill.lock().await;
        if let Some(id) = self.take() {
            return Ok(id);
        }
        let info = quorum
            .propose(MetadataCommand::AllocateProducerIds { node_id: self.node_id, count: BLOCK_SIZE })
            .await?
            .into_result()
            .map_err(|r| anyhow::anyhow!("producer id allocation rejected: {r}"))?;
        let first = info.first_producer_id.ok_or_else(|| anyhow::anyhow!("allocation returned no id"))?;
        let mut block = self.block.lock().expect("producer id lock poisoned");
        *block = (first + 1, first + BLOCK_SIZE);
        Ok(first)
    }
}
