//! Accepting connections on a Kafka listener.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tracing::{debug, info, warn};

use crate::net::ip_limits::{ConnectionsPerIp, PerIpLimits};
use crate::security::ListenerSecurity;
use crate::server::Broker;

/// A bound listener socket together with its Kafka listener name and security.
pub struct BoundListener {
    pub name: String,
    pub socket: TcpListener,
    pub local_addr: SocketAddr,
    /// TLS and SASL of this listener (plaintext unless set after binding).
    pub security: Arc<ListenerSecurity>,
}

impl BoundListener {
    pub async fn bind(name: &str, host: &str, port: u16) -> std::io::Result<BoundListener> {
        let host = if host.is_empty() { "0.0.0.0" } else { host };
        let socket = TcpListener::bind((host, port)).await?;
        let local_addr = socket.local_addr()?;
        Ok(BoundListener { name: name.to_string(), socket, local_addr, security: Arc::new(ListenerSecurity::plaintext()) })
    }
}

/// Accepts connections until `shutdown` flips to true. Each connection gets its
/// own task; the number of live connections is capped by `max.connections`, and
/// those of one client IP by `max.connections.per.ip` (and its overrides), counted
/// in `per_ip` across all listeners.
pub async fn serve_listener(
    listener: BoundListener,
    broker: Arc<Broker>,
    per_ip: Arc<ConnectionsPerIp>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(broker.config.max_connections.clamp(1, 1 << 20) as usize));
    let mut ip_limits: Option<PerIpLimits> = None;
    info!(listener = %listener.name, addr = %listener.local_addr, protocol = listener.security.protocol.name(), "accepting Kafka connections");
    let open_connections = broker.metrics.connections(&listener.name);
    loop {
        tokio::select! {
            _ = shutdown.changed() => {
                if *shutdown.borrow() { break; }
            }
            accepted = listener.socket.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Typically EMFILE: back off briefly instead of spinning.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Both keys are dynamic in Kafka, so the effective config is read
                // per accept; override hostnames are resolved again only when it changed.
                let config = broker.replicas.effective_broker_config();
                let (per_ip_default, overrides) =
                    (config.max_connections_per_ip, &config.max_connections_per_ip_overrides);
                if !ip_limits.as_ref().is_some_and(|l| l.matches(per_ip_default, overrides)) {
                    ip_limits = Some(PerIpLimits::resolve(per_ip_default, overrides).await);
                }
                let ip_limit = ip_limits.as_ref().map_or(per_ip_default, |l| l.limit_for(peer.ip()));
                let Some(ip_permit) = per_ip.try_acquire(peer.ip(), ip_limit) else {
                    warn!(%peer, limit = ip_limit, "max.connections.per.ip reached, closing new connection");
                    drop(stream);
                    continue;
                };
                let permit = match limit.clone().try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => {
                        warn!(%peer, "connection limit reached, closing new connection");
                        drop(stream);
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let broker = broker.clone();
                let listener_name = listener.name.clone();
                let security = listener.security.clone();
                let shutdown = shutdown.clone();
                let counted = open_connections.enter();
                tokio::spawn(async move {
                    crate::net::connection::serve(stream, peer, listener_name, security, broker, shutdown).await;
                    drop((permit, ip_permit, counted));
                    debug!(%peer, "connection closed");
                });
            }
        }
    }
}
