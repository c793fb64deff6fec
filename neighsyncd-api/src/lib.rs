//! The records neighsyncd's REST API speaks, as types: the daemon serializes them and
//! `neighsyncctl` deserializes the same types, so the two cannot drift apart. JSON field names
//! are part of the API (stable). The gRPC API has its own types, from `proto/`.

use std::borrow::Cow;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// One neighbor, as both sides see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighborRecord {
    /// The APPL_DB key, `<ifname>:<ip>`.
    pub key: String,
    /// Multi-ASIC: the SONiC namespace (`asic0`, ...) whose kernel and APPL_DB these are;
    /// absent on a single-ASIC device.
    #[serde(default)]
    pub namespace: Option<String>,
    pub ifname: String,
    /// The interface's master device (its VRF), if any.
    pub vrf: Option<String>,
    pub ip: IpAddr,
    /// `IPv4` or `IPv6`.
    pub family: Cow<'static, str>,
    /// The kernel's link-layer address (lowercase), if the kernel has the neighbor.
    pub kernel_mac: Option<String>,
    /// The kernel's NUD state name (REACHABLE, STALE, ...), if the kernel has the neighbor. In
    /// eBPF mode, where moves within a state class are not reported, the class's states
    /// (`REACHABLE|STALE|DELAY`, `INCOMPLETE|FAILED`): what is really known.
    pub kernel_state: Option<Cow<'static, str>>,
    /// What APPL_DB holds for it (`neigh` field), if anything.
    pub appl_db_mac: Option<String>,
    /// Why the SONiC rules skipped the kernel's last message for it.
    pub skip_reason: Option<Cow<'static, str>>,
    /// When either side last changed (RFC 3339).
    pub last_changed: String,
}

/// `GET /api/v1/neighbors`: one page, in key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighborPage {
    /// The view's sequence number when the page was read.
    pub seq: u64,
    /// The daemon instance's epoch: sequence numbers of another instance mean nothing here.
    pub epoch: String,
    pub neighbors: Vec<NeighborRecord>,
    /// Pass as `page_token` for the next page; absent on the last.
    pub next_page_token: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Upsert,
    Remove,
}

/// A `change` event of `GET /api/v1/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub seq: u64,
    pub kind: ChangeKind,
    pub record: NeighborRecord,
}

/// A `snapshot` event: a chunk of the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChunk {
    pub epoch: String,
    pub seq: u64,
    pub neighbors: Vec<NeighborRecord>,
}

/// A `snapshot_end` event: the snapshot is complete; changes after `seq` follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotEnd {
    pub epoch: String,
    pub seq: u64,
    pub count: u64,
}

/// A `fell_behind` event: the subscriber missed changes; it gets a fresh snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FellBehind {
    pub missed: u64,
    pub seq: u64,
}

/// `POST /api/v1/resync`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResyncReply {
    pub status: String,
}

/// The metrics listener's `/ready`: 200 when ready, 503 when not, with the same body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    pub ready: bool,
    /// The names of the checks that fail.
    pub failed: Vec<String>,
    pub checks: Vec<Check>,
    /// Hot standby (`ha`): `leader` or `standby`; absent without it. A standby is ready
    /// ("standby-ready") when it could take over at once: synced, its source attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// One readiness check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    /// Whether readiness depends on it: neighbor sync does; a management listener does not.
    pub critical: bool,
    /// When the check last changed (RFC 3339, UTC).
    pub since: String,
}

/// Every error: a stable code (`invalid_argument`, `not_found`, `unauthenticated`, ...) and a
/// message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    pub code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record written by the daemon reads back as the same record.
    #[test]
    fn a_record_round_trips_through_json() {
        let r = NeighborRecord {
            key: "Ethernet0:10.0.0.1".into(),
            namespace: Some("asic0".into()),
            ifname: "Ethernet0".into(),
            vrf: Some("Vrf1".into()),
            ip: "10.0.0.1".parse().unwrap(),
            family: "IPv4".into(),
            kernel_mac: Some("02:00:00:00:00:01".into()),
            kernel_state: Some("REACHABLE".into()),
            appl_db_mac: None,
            skip_reason: None,
            last_changed: "2026-11-26T00:00:00Z".into(),
        };
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains(r#""family":"IPv4""#), "{text}");
        assert!(text.contains(r#""appl_db_mac":null"#), "{text}");
        assert_eq!(serde_json::from_str::<NeighborRecord>(&text).unwrap(), r);
    }
}

/// `GET /api/v1/ha`: hot standby as this daemon sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaReply {
    /// `leader` or `standby`.
    pub role: String,
    /// This daemon's name in the lease.
    pub me: String,
    /// Who holds the lease (`None`: nobody, between leaders).
    pub leader: Option<String>,
    /// The leader's fencing token.
    pub token: Option<u64>,
    /// How long the leader has held the lease (milliseconds).
    pub lease_age_ms: Option<u64>,
    /// How long the lease lasts without renewal (milliseconds).
    pub lease_expires_in_ms: Option<i64>,
}
