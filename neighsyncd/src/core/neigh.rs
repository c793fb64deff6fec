//! What the kernel says, in the core's terms: neighbors, links, dumps and losses.
//!
//! Every source (rtnetlink multicast, the eBPF ring buffer) turns what the kernel says into
//! [`SourceEvent`]s and sends them, in kernel order, down one channel to the pipeline. The
//! pipeline never needs to know which source is active: that is the seam.
//!
//! Ordering between a dump and live events is resolved with timestamps, not channel order:
//! every live event carries a CLOCK_MONOTONIC timestamp (the kernel's, for eBPF; the receive
//! time, for netlink) and every dump carries the time its request was sent. A dump entry never
//! overrides a key that a live event touched at or after the dump started; since live events are
//! never lost (a loss triggers a new dump), the newest event is the truth for that key.

use std::net::IpAddr;

use crate::core::key::{IfName, LinkAddr};
use crate::core::rules::SkipReason;

/// NUD states (include/uapi/linux/neighbour.h).
pub mod nud {
    pub const NONE: u16 = 0x00;
    pub const INCOMPLETE: u16 = 0x01;
    pub const REACHABLE: u16 = 0x02;
    pub const STALE: u16 = 0x04;
    pub const DELAY: u16 = 0x08;
    pub const PROBE: u16 = 0x10;
    pub const FAILED: u16 = 0x20;
    pub const NOARP: u16 = 0x40;
    pub const PERMANENT: u16 = 0x80;

    /// The kernel's name for a state, as `ip neigh` prints it.
    pub fn name(state: u16) -> &'static str {
        match state {
            NONE => "NONE",
            INCOMPLETE => "INCOMPLETE",
            REACHABLE => "REACHABLE",
            STALE => "STALE",
            DELAY => "DELAY",
            PROBE => "PROBE",
            FAILED => "FAILED",
            NOARP => "NOARP",
            PERMANENT => "PERMANENT",
            _ => "MIXED",
        }
    }
}

/// `NTF_EXT_LEARNED` (include/uapi/linux/neighbour.h).
pub const NTF_EXT_LEARNED: u32 = 0x10;

/// Whether the kernel said the neighbor exists (RTM_NEWNEIGH, or a dump entry) or is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NeighKind {
    New,
    Del,
}

/// Where a neighbor message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A live change; `ts_ns` is CLOCK_MONOTONIC (eBPF: `bpf_ktime_get_ns`; netlink: receive time).
    Live { ts_ns: u64 },
    /// An entry of the dump started by the last [`SourceEvent::DumpStart`].
    Dump,
}

/// One neighbor as the kernel described it. Family is implied by `ip`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighMsg {
    pub kind: NeighKind,
    pub ifindex: u32,
    pub ip: IpAddr,
    /// Link-layer address as the kernel gave it (any length; the rules check it).
    pub lladdr: LinkAddr,
    /// NUD state bits.
    pub state: u16,
    /// NTF_* flags (NTF_EXT_LEARNED = 0x10 lives in the 8-bit ndm_flags).
    pub flags: u32,
    pub origin: Origin,
}

/// One interface as the kernel described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkMsg {
    pub ifindex: u32,
    pub name: String,
    /// `IFLA_MASTER`: the VRF (or bridge) this interface is enslaved to.
    pub master: Option<u32>,
    /// Carrier / operational state up.
    pub oper_up: bool,
    pub deleted: bool,
}

/// Why a full resynchronisation (dump + diff) was needed. Each cause is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResyncCause {
    /// The daemon just started.
    Startup,
    /// The netlink socket overflowed (ENOBUFS): multicast events were lost.
    NetlinkOverrun,
    /// The eBPF ring buffer could not take an event (reserve failure counted in the kernel).
    RingbufOverflow,
    /// The periodic audit.
    Audit,
    /// Redis came back after a disconnect.
    RedisReconnect,
    /// An operator asked for it (API).
    Requested,
    /// CONFIG_DB changed a global knob (dual-ToR, EVPN).
    ConfigChange,
    /// A source task died and was restarted (or replaced by rtnetlink): its events are lost.
    SourceRestart,
    /// The eBPF program could not read a neighbor's link-layer address consistently.
    UncertainRead,
}

impl ResyncCause {
    pub const ALL: [ResyncCause; 9] = [
        ResyncCause::Startup,
        ResyncCause::NetlinkOverrun,
        ResyncCause::RingbufOverflow,
        ResyncCause::Audit,
        ResyncCause::RedisReconnect,
        ResyncCause::Requested,
        ResyncCause::ConfigChange,
        ResyncCause::SourceRestart,
        ResyncCause::UncertainRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResyncCause::Startup => "startup",
            ResyncCause::NetlinkOverrun => "netlink_overrun",
            ResyncCause::RingbufOverflow => "ringbuf_overflow",
            ResyncCause::Audit => "audit",
            ResyncCause::RedisReconnect => "redis_reconnect",
            ResyncCause::Requested => "requested",
            ResyncCause::ConfigChange => "config_change",
            ResyncCause::SourceRestart => "source_restart",
            ResyncCause::UncertainRead => "uncertain_read",
        }
    }
}

/// What a source sends to the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceEvent {
    Neigh(NeighMsg),
    Link(LinkMsg),
    /// A dump attempt starts; `ts_ns` (CLOCK_MONOTONIC) was taken before its first request was
    /// sent. `fresh`: it opens a new window of attempts (see [`dump`]).
    DumpStart {
        ts_ns: u64,
        fresh: bool,
    },
    /// The window's attempts are accepted as a complete picture of both families: anything
    /// none of them saw, and not touched by a live event since the window began, is gone.
    DumpDone,
    /// Events may have been lost; the source will follow with a dump.
    Lost(ResyncCause),
    /// Input the source could not parse (counted and skipped; the reason is a stable label).
    Malformed(&'static str),
}

/// What the kernel side says of a key, for the API's view (the key itself says the
/// interface and the address). Compact: the view keeps one per neighbor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSide {
    /// The interface's master device (its VRF), if any.
    pub vrf: Option<IfName>,
    pub lladdr: LinkAddr,
    /// NUD state bits ...
    pub state: u16,
    /// ... known only up to their class (eBPF mode: moves within a class are not reported).
    pub classed: bool,
    pub skip_reason: Option<SkipReason>,
}

impl KernelSide {
    /// The state as `ip neigh` names it, or the class's states where only the class is known.
    pub fn state_label(&self) -> &'static str {
        if self.classed {
            neighsyncd_common::class_label(self.state as u8)
        } else {
            nud::name(self.state)
        }
    }

    /// Whether a client could tell the two apart.
    pub fn same_facts(&self, other: &KernelSide) -> bool {
        self.vrf == other.vrf
            && self.lladdr == other.lladdr
            && self.state_label() == other.state_label()
            && self.skip_reason == other.skip_reason
    }
}
