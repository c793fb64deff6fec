//! CONFIG_DB -> [`ConfigSnapshot`], kept current from keyspace notifications.
//!
//! The C++ daemon queries CONFIG_DB on every neighbor message. We read the few facts the rules
//! need once, subscribe to keyspace notifications for the tables they come from, and re-read
//! after any change, after a reconnect, and (if the server has keyspace notifications off) on
//! a timer.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use redis::aio::MultiplexedConnection;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::core::rules::ConfigSnapshot;
use crate::sonic::appdb;
use crate::sonic::dbconfig::DbEndpoint;
use crate::telemetry::metrics::Metrics;

pub const PEER_SWITCH: &str = "PEER_SWITCH";
pub const VXLAN_EVPN_NVO: &str = "VXLAN_EVPN_NVO";
pub const LINK_LOCAL_FIELD: &str = "ipv6_use_link_local_only";

/// The interface table that carries the link-local knob for each interface-name prefix.
pub const LINK_LOCAL_TABLES: [(&str, &str); 3] = [
    ("Vlan", "VLAN_INTERFACE"),
    ("PortChannel", "PORTCHANNEL_INTERFACE"),
    ("Ethernet", "INTERFACE"),
];

/// Tables whose changes matter (the LOGGER table is watched by the log-level task).
const WATCHED: [&str; 5] = [
    PEER_SWITCH,
    VXLAN_EVPN_NVO,
    "VLAN_INTERFACE",
    "PORTCHANNEL_INTERFACE",
    "INTERFACE",
];

/// Changes arriving within this window are read once.
const DEBOUNCE: Duration = Duration::from_millis(20);
const RETRY: Duration = Duration::from_secs(1);

async fn scan_keys(
    conn: &mut MultiplexedConnection,
    pattern: &str,
) -> Result<Vec<String>, redis::RedisError> {
    let mut iter: redis::AsyncIter<String> = redis::cmd("SCAN")
        .cursor_arg(0)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(1000)
        .clone()
        .iter_async(conn)
        .await?;
    let mut out = Vec::new();
    while let Some(k) = iter.next_item().await {
        out.push(k?);
    }
    Ok(out)
}

/// The CONFIG_DB facts the rules depend on, as read (before any rule is applied).
#[derive(Debug, Default)]
struct Facts {
    peer_switch_keys: usize,
    evpn_keys: usize,
    /// (interface table, key, `ipv6_use_link_local_only`'s value)
    link_local: Vec<(&'static str, String, Option<String>)>,
}

/// The interface a link-local table key names: `VLAN_INTERFACE|Vlan1000` names `Vlan1000`;
/// `INTERFACE|Ethernet0|10.0.0.1/31` is an address key, not the interface's.
fn interface_of<'k>(table: &str, key: &'k str, sep: &str) -> Option<&'k str> {
    let ifname = key.strip_prefix(table)?.strip_prefix(sep)?;
    (!ifname.contains(sep)).then_some(ifname)
}

/// SONiC's reading of the facts: a `PEER_SWITCH` entry means dual-ToR, a `VXLAN_EVPN_NVO`
/// entry EVPN, and `ipv6_use_link_local_only=enable` on an interface's own key link-local.
fn snapshot(facts: Facts, sep: &str, ignore_interfaces: &HashSet<String>) -> ConfigSnapshot {
    ConfigSnapshot {
        dual_tor: facts.peer_switch_keys > 0,
        evpn: facts.evpn_keys > 0,
        link_local: facts
            .link_local
            .iter()
            .filter(|(_, _, v)| v.as_deref() == Some("enable"))
            .filter_map(|(table, key, _)| interface_of(table, key, sep))
            .map(str::to_string)
            .collect(),
        ignore_interfaces: ignore_interfaces.clone(),
    }
}

/// Reads the snapshot from CONFIG_DB.
pub async fn load(
    conn: &mut MultiplexedConnection,
    sep: &str,
    ignore_interfaces: &HashSet<String>,
) -> Result<ConfigSnapshot, redis::RedisError> {
    let mut facts = Facts {
        peer_switch_keys: scan_keys(conn, &format!("{PEER_SWITCH}{sep}*"))
            .await?
            .len(),
        evpn_keys: scan_keys(conn, &format!("{VXLAN_EVPN_NVO}{sep}*"))
            .await?
            .len(),
        link_local: Vec::new(),
    };
    for (prefix, table) in LINK_LOCAL_TABLES {
        for key in scan_keys(conn, &format!("{table}{sep}{prefix}*")).await? {
            if interface_of(table, &key, sep).is_none() {
                continue; // no HGET for address keys
            }
            let v: Option<String> = redis::cmd("HGET")
                .arg(&key)
                .arg(LINK_LOCAL_FIELD)
                .query_async(conn)
                .await?;
            facts.link_local.push((table, key, v));
        }
    }
    Ok(snapshot(facts, sep, ignore_interfaces))
}

fn keyspace_enabled(flags: &str) -> bool {
    // K (keyspace channel) and either A (all) or the hash, generic and string classes.
    flags.contains('K') && (flags.contains('A') || (flags.contains('h') && flags.contains('g')))
}

/// Keeps `tx` current until the receiver side is gone.
pub async fn watch(
    endpoint: DbEndpoint,
    ignore_interfaces: HashSet<String>,
    poll_interval: Duration,
    tx: watch::Sender<Option<ConfigSnapshot>>,
    metrics: Arc<Metrics>,
) {
    loop {
        if let Err(e) =
            watch_once(&endpoint, &ignore_interfaces, poll_interval, &tx, &metrics).await
        {
            warn!(error = %e, "CONFIG_DB watch failed; retrying");
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(RETRY).await;
    }
}

async fn watch_once(
    ep: &DbEndpoint,
    ignore: &HashSet<String>,
    poll_interval: Duration,
    tx: &watch::Sender<Option<ConfigSnapshot>>,
    metrics: &Metrics,
) -> Result<(), redis::RedisError> {
    let mut conn = appdb::connect(&ep.url).await?;
    let client = redis::Client::open(ep.url.as_str())?;
    let mut pubsub = client.get_async_pubsub().await?;
    for table in WATCHED {
        pubsub
            .psubscribe(format!("__keyspace@{}__:{table}{}*", ep.id, ep.separator))
            .await?;
    }
    let flags: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("notify-keyspace-events")
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    let notifications = flags.get(1).map(|f| keyspace_enabled(f)).unwrap_or(false);
    if !notifications {
        warn!(
            poll_secs = poll_interval.as_secs_f64(),
            "Redis keyspace notifications are off (notify-keyspace-events); polling CONFIG_DB instead"
        );
    }
    // Subscribed first, read second: a change between the two is seen by the next read.
    publish(tx, load(&mut conn, &ep.separator, ignore).await?, metrics);
    let mut messages = pubsub.on_message();
    loop {
        let changed = tokio::select! {
            m = messages.next() => match m {
                Some(_) => true,
                None => return Err(redis::RedisError::from(std::io::Error::other("CONFIG_DB subscription closed"))),
            },
            _ = tokio::time::sleep(poll_interval), if !notifications => true,
            _ = tx.closed() => return Ok(()),
        };
        if changed {
            // Let a burst of changes (a config reload) settle into one read.
            let _ =
                tokio::time::timeout(DEBOUNCE, async { while messages.next().await.is_some() {} })
                    .await;
            publish(tx, load(&mut conn, &ep.separator, ignore).await?, metrics);
        }
    }
}

/// `None` until CONFIG_DB has been read once: the pipeline waits for it before applying rules.
fn publish(tx: &watch::Sender<Option<ConfigSnapshot>>, snap: ConfigSnapshot, metrics: &Metrics) {
    metrics.config_reloads.inc();
    tx.send_if_modified(|cur| {
        if cur.as_ref() == Some(&snap) {
            return false;
        }
        info!(
            dual_tor = snap.dual_tor,
            evpn = snap.evpn,
            link_local = ?snap.link_local,
            "CONFIG_DB snapshot updated"
        );
        *cur = Some(snap);
        true
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_facts_read_as_sonic_reads_them() {
        let facts = Facts {
            peer_switch_keys: 1,
            evpn_keys: 0,
            link_local: vec![
                (
                    "VLAN_INTERFACE",
                    "VLAN_INTERFACE|Vlan1000".into(),
                    Some("enable".into()),
                ),
                (
                    "INTERFACE",
                    "INTERFACE|Ethernet0".into(),
                    Some("disable".into()),
                ),
                (
                    "INTERFACE",
                    "INTERFACE|Ethernet4|10.0.0.1/31".into(),
                    Some("enable".into()),
                ),
                (
                    "PORTCHANNEL_INTERFACE",
                    "PORTCHANNEL_INTERFACE|PortChannel1".into(),
                    None,
                ),
            ],
        };
        let s = snapshot(facts, "|", &HashSet::new());
        assert!(s.dual_tor && !s.evpn);
        assert_eq!(s.link_local, HashSet::from(["Vlan1000".to_string()]));
        assert_eq!(
            interface_of("INTERFACE", "INTERFACE|Ethernet4|10.0.0.1/31", "|"),
            None
        );
        assert_eq!(interface_of("INTERFACE", "VLAN_INTERFACE|Vlan1", "|"), None);
    }

    #[test]
    fn keyspace_flags() {
        assert!(keyspace_enabled("AKE"));
        assert!(keyspace_enabled("Khg"));
        assert!(!keyspace_enabled("Ex"));
        assert!(!keyspace_enabled(""));
    }
}
