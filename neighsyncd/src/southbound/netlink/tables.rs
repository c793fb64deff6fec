//! The kernel's neighbor tables under pressure: their size, the garbage collector's thresholds,
//! and how often they were full or forced a collection (`RTM_GETNEIGHTBL`), polled into metrics.
//! At scale `gc_thresh3` is the limit: past it the kernel refuses new neighbors
//! (`table_fulls`), which no resync can repair.

use std::sync::Arc;
use std::time::Duration;

use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::neighbour_table::NeighbourTableMessage;
use tokio::sync::watch;
use tracing::debug;

use super::socket::{Recv, open, recv};
use crate::core::dump::{Family, TableStats};
use crate::runtime::netns::Netns;
use crate::southbound::parse::{Parsed, encode, parse_datagram};
use crate::telemetry::metrics::Metrics;

/// How often the tables are read.
pub const POLL: Duration = Duration::from_secs(5);
/// A reading that takes longer than this is given up (and tried at the next poll).
const READ_TIMEOUT: Duration = Duration::from_secs(2);
const SEQ: u32 = 1;

/// Reads the tables every [`POLL`] until shutdown, exporting what they say.
/// `netns`: whose tables (`None`: the process's own namespace).
pub async fn watch(
    metrics: Arc<Metrics>,
    netns: Option<Arc<Netns>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = crate::runtime::tasks::shutdown_signalled(&mut shutdown) => return,
        }
        match tokio::time::timeout(READ_TIMEOUT, read(netns.as_deref())).await {
            Ok(Ok(tables)) => {
                for (family, stats) in tables {
                    metrics.kernel_table(family_label(family), &stats);
                }
            }
            Ok(Err(e)) => debug!(error = %e, "cannot read the kernel's neighbor tables"),
            Err(_) => debug!("no answer from the kernel's neighbor tables in time"),
        }
    }
}

fn family_label(f: Family) -> &'static str {
    match f {
        Family::Inet => "IPv4",
        Family::Inet6 => "IPv6",
    }
}

/// One `RTM_GETNEIGHTBL` dump: each family's statistics.
async fn read(netns: Option<&Netns>) -> std::io::Result<Vec<(Family, TableStats)>> {
    let sock = open(netns, 0, 1 << 20).map_err(std::io::Error::other)?;
    let request = encode(
        RouteNetlinkMessage::GetNeighbourTable(NeighbourTableMessage::default()),
        NLM_F_REQUEST | NLM_F_DUMP,
        SEQ,
    );
    sock.get_ref().0.send(&request, 0)?;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut parsed, mut tables) = (Vec::new(), Vec::new());
    loop {
        let mut guard = sock.readable().await?;
        let n = match recv(&mut guard, &mut buf)? {
            Recv::Data(n) => n.min(buf.len()),
            Recv::Empty => continue,
            Recv::Overrun => return Err(std::io::Error::other("receive buffer overrun")),
        };
        parse_datagram(&buf[..n], Some(SEQ), 0, &mut parsed);
        for p in parsed.drain(..) {
            match p {
                Parsed::Table { family, stats } => tables.push((family, stats)),
                Parsed::DumpDone { .. } => return Ok(tables),
                Parsed::DumpError { errno, .. } => {
                    return Err(std::io::Error::from_raw_os_error(errno));
                }
                _ => {}
            }
        }
    }
}
