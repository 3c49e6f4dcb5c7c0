//! Test harness: an in-process Klamm broker on an ephemeral loopback port with
//! its own temporary data directory (mini-redis style), for the Rust
//! integration tests in `tests/tests/`. Process-level tests (kill -9,
//! restarts) live in the Python client suite under `tests/clients/`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use klamm_broker::server::{start, RunningBroker};

pub struct TestBroker {
    pub addr: SocketAddr,
    running: Option<RunningBroker>,
    data: DataDir,
}

enum DataDir {
    Owned(tempfile::TempDir),
    Borrowed(PathBuf),
}

impl DataDir {
    fn path(&self) -> &Path {
        match self {
            DataDir::Owned(t) => t.path(),
            DataDir::Borrowed(p) => p,
        }
    }
}

impl TestBroker {
    /// Starts a single-node broker; `overrides` are extra `key=value` properties.
    pub async fn start(overrides: &[&str]) -> anyhow::Result<TestBroker> {
        let dir = tempfile::tempdir().context("create data dir")?;
        Self::start_in(DataDir::Owned(dir), overrides).await
    }

    async fn start_in(data: DataDir, overrides: &[&str]) -> anyhow::Result<TestBroker> {
        let mut all = vec![
            "node.id=1".to_string(),
            "process.roles=broker,controller".to_string(),
            "listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0".to_string(),
            "advertised.listeners=PLAINTEXT://127.0.0.1:0".to_string(),
            "controller.listener.names=CONTROLLER".to_string(),
            "controller.quorum.voters=1@127.0.0.1:0".to_string(),
            format!("log.dirs={}", data.path().display()),
        ];
        all.extend(overrides.iter().map(|s| s.to_string()));
        let loaded = klamm_config::BrokerConfig::load(None, &all).map_err(|e| anyhow::anyhow!("{e}"))?;
        let running = start(loaded).await?;
        let addr = running
            .broker
            .bound
            .first()
            .map(|(_, a)| *a)
            .context("broker bound no listener")?;
        Ok(TestBroker { addr, running: Some(running), data })
    }

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// Stops the broker cleanly and starts it again on the same data (new port).
    pub async fn restart(mut self, overrides: &[&str]) -> anyhow::Result<TestBroker> {
        if let Some(r) = self.running.take() {
            r.shutdown().await?;
        }
        let data = std::mem::replace(&mut self.data, DataDir::Borrowed(PathBuf::new()));
        Self::start_in(data, overrides).await
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(r) = self.running.take() {
            r.shutdown().await?;
        }
        Ok(())
    }
}
