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
            // Tests never bind the embedded default ops port (9644).
            "klamm.http.listener=".to_string(),
            // Nor the embedded default schema registry port (8081).
            "klamm.schema.registry.listener=".to_string(),
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

/// A cluster of combined (broker+controller) nodes in this process, each a
/// voter of one metadata quorum on its own loopback port, with its own temp
/// dir. Kafka listeners bind port 0; controller ports are picked by binding
/// port 0 and releasing it just before the start (voters must know each
/// other's addresses in advance).
pub struct TestCluster {
    pub nodes: Vec<TestBroker>,
    /// Each node's full property list, to start it again on the same data.
    args: Vec<Vec<String>>,
}

impl TestCluster {
    /// Starts `n` nodes concurrently (each waits for a quorum) with `overrides` on every node.
    pub async fn start(n: usize, overrides: &[&str]) -> anyhow::Result<TestCluster> {
        let mut ports = Vec::new();
        {
            let mut held = Vec::new();
            for _ in 0..n {
                let l = std::net::TcpListener::bind("127.0.0.1:0").context("pick a controller port")?;
                ports.push(l.local_addr()?.port());
                held.push(l);
            }
        }
        let voters: Vec<String> = ports.iter().enumerate().map(|(i, p)| format!("{}@127.0.0.1:{p}", i + 1)).collect();
        let voters = voters.join(",");
        let mut starts = Vec::new();
        let mut args = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let dir = tempfile::tempdir().context("create data dir")?;
            let mut all = vec![
                format!("node.id={}", i + 1),
                "process.roles=broker,controller".to_string(),
                format!("listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{port}"),
                "advertised.listeners=PLAINTEXT://127.0.0.1:0".to_string(),
                "controller.listener.names=CONTROLLER".to_string(),
                format!("controller.quorum.voters={voters}"),
                format!("log.dirs={}", dir.path().display()),
                // Tests never bind the embedded default ops port (9644).
                "klamm.http.listener=".to_string(),
                // Nor the embedded default schema registry port (8081).
                "klamm.schema.registry.listener=".to_string(),
            ];
            all.extend(overrides.iter().map(|s| s.to_string()));
            args.push(all.clone());
            starts.push(tokio::spawn(async move {
                let loaded = klamm_config::BrokerConfig::load(None, &all).map_err(|e| anyhow::anyhow!("{e}"))?;
                let running = start(loaded).await?;
                let addr = running.broker.bound.first().map(|(_, a)| *a).context("broker bound no listener")?;
                anyhow::Ok(TestBroker { addr, running: Some(running), data: DataDir::Owned(dir) })
            }));
        }
        let mut nodes = Vec::new();
        for s in starts {
            nodes.push(s.await.context("start task")??);
        }
        Ok(TestCluster { nodes, args })
    }

    /// Stops node `i` cleanly (controlled shutdown), keeping its data.
    pub async fn stop_node(&mut self, i: usize) -> anyhow::Result<()> {
        if let Some(r) = self.nodes.get_mut(i).and_then(|n| n.running.take()) {
            r.shutdown().await?;
        }
        Ok(())
    }

    /// Starts node `i` again on its data (its Kafka listener gets a new port).
    pub async fn start_node(&mut self, i: usize) -> anyhow::Result<()> {
        let loaded = klamm_config::BrokerConfig::load(None, &self.args[i]).map_err(|e| anyhow::anyhow!("{e}"))?;
        let running = start(loaded).await?;
        let node = &mut self.nodes[i];
        node.addr = running.broker.bound.first().map(|(_, a)| *a).context("broker bound no listener")?;
        node.running = Some(running);
        Ok(())
    }

    /// Kafka listeners of the running nodes, comma-separated.
    pub fn running_bootstrap(&self) -> String {
        self.nodes.iter().filter(|n| n.running.is_some()).map(|n| n.bootstrap()).collect::<Vec<_>>().join(",")
    }

    /// All Kafka listeners, comma-separated.
    pub fn bootstrap(&self) -> String {
        self.nodes.iter().map(|n| n.bootstrap()).collect::<Vec<_>>().join(",")
    }

    /// The running broker of node `i` (0-based).
    pub fn broker(&self, i: usize) -> Option<&std::sync::Arc<klamm_broker::server::Broker>> {
        self.nodes.get(i).and_then(|n| n.running.as_ref()).map(|r| &r.broker)
    }

    /// Stops every node concurrently (a voter's shutdown may wait for the others).
    pub async fn stop(self) -> anyhow::Result<()> {
        let mut stops = Vec::new();
        for n in self.nodes {
            stops.push(tokio::spawn(n.stop()));
        }
        for s in stops {
            s.await.context("stop task")??;
        }
        Ok(())
    }
}
