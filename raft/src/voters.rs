//! Parsing Kafka's `controller.quorum.voters`.

use std::collections::BTreeMap;

use crate::error::RaftError;

/// Parses `controller.quorum.voters`, e.g. `1@127.0.0.1:9093,2@127.0.0.1:9094`, into
/// node id -> `host:port`. Spaces around entries are ignored; IPv6 hosts are written in
/// brackets (`3@[::1]:9095`). Rejects an empty list, a negative or non-numeric id, a duplicate
/// id, an empty host and a port outside `1..=65535`.
pub fn parse_quorum_voters(value: &str) -> Result<BTreeMap<i32, String>, RaftError> {
    let bad = |entry: &str, why: &str| RaftError::Config(format!("controller.quorum.voters entry {entry:?}: {why}"));
    let mut voters = BTreeMap::new();
    for entry in value.split(',').map(str::trim) {
        if entry.is_empty() {
            return Err(bad(entry, "empty entry"));
        }
        let (id, address) = entry.split_once('@').ok_or_else(|| bad(entry, "expected id@host:port"))?;
        let id: i32 = id.trim().parse().map_err(|_| bad(entry, "id is not a number"))?;
        if id < 0 {
            return Err(bad(entry, "id is negative"));
        }
        let (host, port) = address.rsplit_once(':').ok_or_else(|| bad(entry, "missing port"))?;
        let inner_host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if inner_host.is_empty() || inner_host.contains(['@', ' ']) || (inner_host.contains(':') && inner_host == host) {
            return Err(bad(entry, "bad host"));
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(bad(entry, "port is not in 1..=65535")),
        }
        if voters.insert(id, address.to_string()).is_some() {
            return Err(bad(entry, "duplicate id"));
        }
    }
    Ok(voters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafka_style_voter_lists() {
        let voters = parse_quorum_voters("1@127.0.0.1:9093, 2@127.0.0.1:9094,3@localhost:9095").expect("parse");
        let expected: BTreeMap<i32, String> =
            [(1, "127.0.0.1:9093"), (2, "127.0.0.1:9094"), (3, "localhost:9095")].into_iter().map(|(i, a)| (i, a.to_string())).collect();
        assert_eq!(voters, expected);
        assert_eq!(parse_quorum_voters("7@[::1]:9093").expect("ipv6")[&7], "[::1]:9093");
    }

    #[test]
    fn rejects_bad_voter_lists() {
        for bad in [
            "",
            ",",
            "1@127.0.0.1:9093,",
            "127.0.0.1:9093",
            "x@127.0.0.1:9093",
            "-1@127.0.0.1:9093",
            "1@127.0.0.1",
            "1@:9093",
            "1@127.0.0.1:0",
            "1@127.0.0.1:70000",
            "1@127.0.0.1:port",
            "1@::1:9093",
            "1@a:1,1@b:2",
            "99999999999@a:1",
        ] {
            assert!(parse_quorum_voters(bad).is_err(), "accepted {bad:?}");
        }
    }
}
