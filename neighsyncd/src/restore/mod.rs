//! `neighsyncd restore`: SONiC's `restore_neighbors` step, started by supervisord before
//! neighsyncd in the swss container.
//!
//! * Warm start off: nothing to do.
//! * swss-only warm restart (the kernel kept its neighbors): set STATE_DB
//!   `NEIGH_RESTORE_TABLE|Flags` `restored` = `true` at once.
//! * System warm reboot: for every neighbor saved in APPL_DB whose interface is up (carrier;
//!   for `Vlan*` a STATE_DB `VLAN_MEMBER_TABLE|<if>|*`, for `PortChannel*` a
//!   `LAG_MEMBER_TABLE|<if>|*`), add it to the kernel as STALE and send an ARP request or a
//!   neighbor solicitation so the kernel re-resolves it; interfaces not up yet are retried
//!   every check interval until the timeout; then set the flag (also on timeout).

pub mod packets;
mod sys;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::config::Config;
use crate::core::rules::Mac;
use crate::sonic::appdb;
use crate::sonic::warm::WarmDb;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Warm(#[from] crate::sonic::warm::WarmError),
}

#[derive(Debug, Clone, Copy)]
pub struct RestoreOptions {
    /// Give up on interfaces that are still down after this long (upstream: 110 s).
    pub timeout: Duration,
    /// How often interface states are checked (upstream: 5 s).
    pub check_interval: Duration,
}

/// interface -> saved neighbors.
type SavedNeighbors = BTreeMap<String, Vec<(IpAddr, Mac)>>;

pub async fn run(cfg: &Config, opts: RestoreOptions) -> Result<(), RestoreError> {
    info!("restore_neighbors service is started");
    let mut db = WarmDb {
        state: appdb::connect(&cfg.db.state.url).await?,
        state_sep: cfg.db.state.separator.clone(),
        config: appdb::connect(&cfg.db.config.url).await?,
        config_sep: cfg.db.config.separator.clone(),
    };
    let ws = db.check(false).await?;
    if !ws.enabled {
        info!("restore_neighbors service is skipped as warm restart not enabled");
        return Ok(());
    }
    if !ws.system {
        db.set_restore_done().await?;
        info!("restore_neighbors service is done as system warm reboot not enabled");
        return Ok(());
    }
    let mut appl = appdb::connect(&cfg.db.appl.url).await?;
    let saved = read_saved(&mut appl, &cfg.db.appl.separator).await?;
    let restored = restore(saved, &mut db, opts).await;
    db.set_restore_done().await?;
    info!(
        restored,
        "restore_neighbor service is done for system warmreboot"
    );
    Ok(())
}

/// One saved `NEIGH_TABLE` entry: its key (without the table prefix) and fields -> interface,
/// address and MAC; or why it cannot be restored.
fn parse_saved(
    key: &str,
    fields: &BTreeMap<String, String>,
) -> Result<(String, IpAddr, Mac), &'static str> {
    let (ifname, ip) = key.split_once(':').ok_or("no interface")?;
    if ifname.is_empty() {
        return Err("no interface");
    }
    let ip: IpAddr = ip.parse().map_err(|_| "bad IP address")?;
    let mac = fields
        .get("neigh")
        .and_then(|m| Mac::parse(m))
        .ok_or("bad or missing neigh")?;
    match fields.get("family").map(String::as_str) {
        Some("IPv4") if ip.is_ipv4() => {}
        Some("IPv6") if ip.is_ipv6() => {}
        _ => return Err("bad or missing family"),
    }
    Ok((ifname.to_string(), ip, mac))
}

/// Reads `NEIGH_TABLE:*` grouped by interface (`lo` skipped, as upstream does). An entry that
/// cannot be restored is skipped, logged and counted: one bad entry must not leave the
/// restore flag unset (neighsyncd would wait for it, then give up).
async fn read_saved(
    conn: &mut redis::aio::MultiplexedConnection,
    sep: &str,
) -> Result<SavedNeighbors, RestoreError> {
    let prefix = format!("{}{sep}", appdb::NEIGH_TABLE);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(conn)
        .await?;
    let mut saved = SavedNeighbors::new();
    let mut skipped = 0usize;
    for key in keys {
        let fields: BTreeMap<String, String> =
            redis::cmd("HGETALL").arg(&key).query_async(conn).await?;
        match parse_saved(&key[prefix.len()..], &fields) {
            Ok((ifname, _, _)) if ifname == "lo" => {}
            Ok((ifname, ip, mac)) => saved.entry(ifname).or_default().push((ip, mac)),
            Err(why) => {
                skipped += 1;
                warn!(key, why, "malformed APPL_DB NEIGH_TABLE entry skipped");
            }
        }
    }
    if skipped > 0 {
        warn!(skipped, "APPL_DB NEIGH_TABLE entries skipped as malformed");
    }
    Ok(saved)
}

async fn member_exists(db: &mut WarmDb, table: &str, ifname: &str) -> bool {
    let pattern = format!("{table}{sep}{ifname}{sep}*", sep = db.state_sep);
    let keys: Result<Vec<String>, _> = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut db.state)
        .await;
    keys.map(|k| !k.is_empty()).unwrap_or(false)
}

async fn is_up(db: &mut WarmDb, ifname: &str) -> bool {
    if !sys::carrier(ifname) {
        return false;
    }
    if ifname.starts_with("Vlan") {
        return member_exists(db, "VLAN_MEMBER_TABLE", ifname).await;
    }
    if ifname.starts_with("PortChannel") {
        return member_exists(db, "LAG_MEMBER_TABLE", ifname).await;
    }
    true
}

/// Restores interface by interface as they come up; returns how many neighbors were restored.
async fn restore(mut saved: SavedNeighbors, db: &mut WarmDb, opts: RestoreOptions) -> usize {
    let start = Instant::now();
    let mut restored = 0;
    loop {
        let names: Vec<String> = saved.keys().cloned().collect();
        for ifname in names {
            if !is_up(db, &ifname).await {
                continue;
            }
            let Some(neighbors) = saved.remove(&ifname) else {
                continue;
            };
            match sys::Interface::open(&ifname) {
                Ok(intf) => restored += restore_interface(&intf, &neighbors),
                Err(e) => {
                    warn!(ifname, error = %e, "cannot use interface; will retry");
                    saved.insert(ifname, neighbors);
                }
            }
        }
        if saved.is_empty() {
            break;
        }
        if start.elapsed() >= opts.timeout {
            warn!(
                interfaces = ?saved.keys().collect::<Vec<_>>(),
                "timed out waiting for interfaces; their neighbors are not restored"
            );
            break;
        }
        tokio::time::sleep(
            opts.check_interval
                .min(opts.timeout.saturating_sub(start.elapsed())),
        )
        .await;
    }
    restored
}

fn restore_interface(intf: &sys::Interface, neighbors: &[(IpAddr, Mac)]) -> usize {
    let mut n = 0;
    for (ip, mac) in neighbors {
        let Some(src) = intf.source_for(ip) else {
            warn!(ifname = intf.name, %ip, "no address of that family on the interface; skipped");
            continue;
        };
        match sys::add_stale(intf.ifindex, *ip, *mac) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                warn!(ifname = intf.name, %ip, "neighbor exists in kernel");
            }
            Err(e) => {
                warn!(ifname = intf.name, %ip, error = %e, "cannot add neighbor to the kernel");
                continue;
            }
        }
        let frame = match (src, ip) {
            (IpAddr::V4(s), IpAddr::V4(t)) => packets::arp_request(intf.mac, s, *t),
            (IpAddr::V6(s), IpAddr::V6(t)) => packets::neighbor_solicitation(intf.mac, s, *t),
            _ => continue,
        };
        if let Err(e) = intf.send(&frame) {
            warn!(ifname = intf.name, %ip, error = %e, "cannot send ARP/NS");
        }
        info!(ifname = intf.name, %ip, %mac, "neighbor restored; re-resolving");
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(neigh: &str, family: &str) -> BTreeMap<String, String> {
        [
            ("neigh".to_string(), neigh.to_string()),
            ("family".to_string(), family.to_string()),
        ]
        .into()
    }

    #[test]
    fn saved_entries_parse_or_say_why_not() {
        let good = fields("02:00:00:00:00:01", "IPv4");
        assert_eq!(
            parse_saved("Vlan1000:192.168.0.2", &good),
            Ok((
                "Vlan1000".into(),
                "192.168.0.2".parse().unwrap(),
                Mac([2, 0, 0, 0, 0, 1])
            ))
        );
        let v6 = fields("02:00:00:00:00:01", "IPv6");
        assert!(parse_saved("Ethernet0:2000::2", &v6).is_ok());
        for (key, f, why) in [
            ("Ethernet0", &good, "no interface"),
            (":10.0.0.2", &good, "no interface"),
            ("Ethernet0:10.0.0.999", &good, "bad IP address"),
            (
                "Ethernet0:10.0.0.2",
                &fields("zz", "IPv4"),
                "bad or missing neigh",
            ),
            (
                "Ethernet0:10.0.0.2",
                &fields("02:00:00:00:00:01", "IPX"),
                "bad or missing family",
            ),
            ("Ethernet0:2000::2", &good, "bad or missing family"),
        ] {
            assert_eq!(parse_saved(key, f), Err(why), "{key}");
        }
    }
}
