//! `max.connections.per.ip` and `max.connections.per.ip.overrides`: the live Kafka
//! connections of each client IP, counted across all Kafka listeners of the broker (one
//! count per IP, as Kafka's `ConnectionQuotas` keeps), and the limit that applies to an IP.
//!
//! A connection beyond its IP's limit is closed right after accept, without a response,
//! which is what a Kafka client sees from Kafka.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::warn;

/// How long resolving one override hostname may take before it is skipped, so that a
/// hanging resolver cannot stall the accept loop for long.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Live connections per client IP.
#[derive(Default)]
pub struct ConnectionsPerIp {
    counts: Mutex<HashMap<IpAddr, i32>>,
}

/// One counted connection; dropping it gives its place back.
pub struct IpPermit {
    owner: Arc<ConnectionsPerIp>,
    ip: IpAddr,
}

impl ConnectionsPerIp {
    /// Counts one more connection from `ip` if it has fewer than `limit` already.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr, limit: i32) -> Option<IpPermit> {
        let ip = ip.to_canonical();
        let mut counts = self.counts.lock().expect("connection counts lock poisoned");
        let count = counts.entry(ip).or_insert(0);
        if *count >= limit {
            if *count == 0 {
                counts.remove(&ip);
            }
            return None;
        }
        *count += 1;
        Some(IpPermit { owner: self.clone(), ip })
    }

    /// The live connections from `ip`.
    pub fn count(&self, ip: IpAddr) -> i32 {
        let counts = self.counts.lock().expect("connection counts lock poisoned");
        counts.get(&ip.to_canonical()).copied().unwrap_or(0)
    }
}

impl Drop for IpPermit {
    fn drop(&mut self) {
        let mut counts = self.owner.counts.lock().expect("connection counts lock poisoned");
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count <= 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// The per-IP limits of one configuration, with override hostnames resolved.
#[derive(Debug, PartialEq)]
pub struct PerIpLimits {
    default: i32,
    /// The configured overrides as given, to notice when the configuration changes.
    configured: BTreeMap<String, i32>,
    by_ip: HashMap<IpAddr, i32>,
}

impl PerIpLimits {
    /// Whether these limits were built from this configuration.
    pub fn matches(&self, default: i32, overrides: &BTreeMap<String, i32>) -> bool {
        self.default == default && &self.configured == overrides
    }

    /// Resolves the override hosts. Kafka resolves an override hostname to an address when
    /// the limits are set; here every address of the name gets its count. A name that does
    /// not resolve is logged and left out (the default applies to its addresses).
    pub async fn resolve(default: i32, overrides: &BTreeMap<String, i32>) -> PerIpLimits {
        let mut by_ip = HashMap::new();
        for (host, &limit) in overrides {
            if let Ok(ip) = host.parse::<IpAddr>() {
                by_ip.insert(ip.to_canonical(), limit);
                continue;
            }
            match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host.as_str(), 0))).await {
                Ok(Ok(addrs)) => {
                    for a in addrs {
                        by_ip.insert(a.ip().to_canonical(), limit);
                    }
                }
                Ok(Err(e)) => warn!(%host, error = %e, "max.connections.per.ip.overrides: cannot resolve host"),
                Err(_) => warn!(%host, "max.connections.per.ip.overrides: resolving host timed out"),
            }
        }
        PerIpLimits { default, configured: overrides.clone(), by_ip }
    }

    /// The limit for connections from `ip`.
    pub fn limit_for(&self, ip: IpAddr) -> i32 {
        self.by_ip.get(&ip.to_canonical()).copied().unwrap_or(self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn counts_per_ip_up_to_the_limit_and_releases_on_drop() {
        let c = Arc::new(ConnectionsPerIp::default());
        let a = ip("10.0.0.1");
        let first = c.try_acquire(a, 2).expect("first");
        let second = c.try_acquire(a, 2).expect("second");
        assert!(c.try_acquire(a, 2).is_none(), "third is over the limit");
        assert_eq!(c.count(a), 2);
        // Another IP has its own count.
        let other = c.try_acquire(ip("10.0.0.2"), 2).expect("other ip");
        // The IPv4-mapped form of an address is the same client.
        assert!(c.try_acquire(ip("::ffff:10.0.0.1"), 2).is_none());
        drop(first);
        assert_eq!(c.count(a), 1);
        let again = c.try_acquire(a, 2).expect("a place was freed");
        drop((second, again, other));
        assert_eq!(c.count(a), 0);
        assert!(c.counts.lock().unwrap().is_empty(), "no entries are left behind");
        // A limit of 0 refuses every connection and leaves no entry.
        assert!(c.try_acquire(a, 0).is_none());
        assert!(c.counts.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn limits_use_overrides_by_ip_and_hostname() {
        let overrides: BTreeMap<String, i32> =
            [("10.0.0.9", 7), ("localhost", 5), ("no-such-host.invalid", 1)]
                .into_iter()
                .map(|(h, n)| (h.to_string(), n))
                .collect();
        let l = PerIpLimits::resolve(2, &overrides).await;
        assert_eq!(l.limit_for(ip("10.0.0.9")), 7);
        assert_eq!(l.limit_for(ip("::ffff:10.0.0.9")), 7);
        assert_eq!(l.limit_for(ip("127.0.0.1")), 5, "localhost resolves to 127.0.0.1");
        assert_eq!(l.limit_for(ip("10.0.0.8")), 2);
        assert!(l.matches(2, &overrides));
        assert!(!l.matches(3, &overrides));
        assert!(!l.matches(2, &BTreeMap::new()));
    }
}
