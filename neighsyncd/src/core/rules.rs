//! SONiC's rules: from one kernel neighbor message and the CONFIG_DB snapshot to the operation
//! on APPL_DB `NEIGH_TABLE`, or a skip with its reason. Pure: no I/O, no clock.
//!
//! The order of the checks is the C++ neighsyncd's (`NeighSync::onMsg`), see
//! `shared/spec/sonic-compat.md`, "The rules".

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::core::neigh::{NTF_EXT_LEARNED, NeighKind, nud};

/// A MAC address as SONiC writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub const ZERO: Mac = Mac([0; 6]);
    pub const BROADCAST: Mac = Mac([0xff; 6]);

    pub fn parse(s: &str) -> Option<Mac> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut out {
            let p = parts.next()?;
            if p.is_empty() || p.len() > 2 {
                return None;
            }
            *b = u8::from_str_radix(p, 16).ok()?;
        }
        parts.next().is_none().then_some(Mac(out))
    }

    /// The MAC's text (`aa:bb:cc:dd:ee:ff`, what [`Display`](fmt::Display) writes), made
    /// without a `String`: what a write puts in APPL_DB, once per operation.
    pub fn text(&self) -> [u8; 17] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b':'; 17];
        for (i, b) in self.0.iter().enumerate() {
            out[i * 3] = HEX[usize::from(b >> 4)];
            out[i * 3 + 1] = HEX[usize::from(b & 0xf)];
        }
        out
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `text` is ASCII hex digits and colons: always UTF-8.
        f.write_str(std::str::from_utf8(&self.text()).map_err(|_| fmt::Error)?)
    }
}

/// What APPL_DB holds for a neighbor: the fields `neigh` and `family`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NeighValue {
    pub mac: Mac,
    pub ipv6: bool,
}

impl NeighValue {
    pub fn family(&self) -> &'static str {
        if self.ipv6 { "IPv6" } else { "IPv4" }
    }

    /// The field list, in the order the C++ daemon writes it.
    pub fn fields(&self) -> [(&'static str, String); 2] {
        [
            ("neigh", self.mac.to_string()),
            ("family", self.family().to_string()),
        ]
    }
}

/// The APPL_DB key of a neighbor: `<ifname>:<ip>` (RFC 5952 text for IPv6, which is what
/// Rust's `Ipv6Addr` Display produces).
pub fn neigh_key(ifname: &str, ip: &IpAddr) -> String {
    format!("{ifname}:{ip}")
}

/// The CONFIG_DB facts the rules depend on, kept current by `sonic::config_db`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigSnapshot {
    /// CONFIG_DB has a `PEER_SWITCH|*` key.
    pub dual_tor: bool,
    /// CONFIG_DB has a `VXLAN_EVPN_NVO|*` key.
    pub evpn: bool,
    /// Interfaces whose `ipv6_use_link_local_only` is `enable` (in the table that matches the
    /// interface's name prefix).
    pub link_local: HashSet<String>,
    /// Operator opt-in: interfaces whose neighbors are never written.
    pub ignore_interfaces: HashSet<String>,
}

impl ConfigSnapshot {
    pub fn link_local_enabled(&self, ifname: &str) -> bool {
        self.link_local.contains(ifname)
    }
}

/// One kernel neighbor message, as the rules see it.
#[derive(Debug, Clone, Copy)]
pub struct NeighInput<'a> {
    pub kind: NeighKind,
    pub ifname: &'a str,
    /// Name of the interface's master device, if any (its VRF).
    pub master: Option<&'a str>,
    pub ip: IpAddr,
    pub lladdr: Option<&'a [u8]>,
    pub state: u16,
    pub flags: u32,
}

/// Why a message does not change APPL_DB. Labels are stable (metrics, API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    IgnoredInterface,
    DualTorLinkLocalV4,
    LinkLocalV6Disabled,
    MulticastLinkLocal,
    EvpnProbe,
    NoarpNotExtLearned,
    NoLinkLayerAddress,
    BadLinkLayerAddress,
    BroadcastMac,
}

impl SkipReason {
    pub const ALL: [SkipReason; 9] = [
        SkipReason::IgnoredInterface,
        SkipReason::DualTorLinkLocalV4,
        SkipReason::LinkLocalV6Disabled,
        SkipReason::MulticastLinkLocal,
        SkipReason::EvpnProbe,
        SkipReason::NoarpNotExtLearned,
        SkipReason::NoLinkLayerAddress,
        SkipReason::BadLinkLayerAddress,
        SkipReason::BroadcastMac,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::IgnoredInterface => "ignored_interface",
            SkipReason::DualTorLinkLocalV4 => "dualtor_link_local_v4",
            SkipReason::LinkLocalV6Disabled => "link_local_v6_disabled",
            SkipReason::MulticastLinkLocal => "multicast_link_local",
            SkipReason::EvpnProbe => "evpn_probe",
            SkipReason::NoarpNotExtLearned => "noarp_not_ext_learned",
            SkipReason::NoLinkLayerAddress => "no_link_layer_address",
            SkipReason::BadLinkLayerAddress => "bad_link_layer_address",
            SkipReason::BroadcastMac => "broadcast_mac",
        }
    }
}

/// What to do with APPL_DB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Set {
        key: String,
        value: NeighValue,
        /// EVPN: the `ROUTE_TABLE` key `<vrf>:<ip>` to delete before the set.
        route_del: Option<String>,
    },
    Del {
        key: String,
    },
    Skip(SkipReason),
}

/// IPv6 link-local unicast, `fe80::/10`.
pub fn is_v6_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

fn is_v6_multicast_link_local(a: &Ipv6Addr) -> bool {
    a.octets()[0] == 0xff && a.octets()[1] & 0x0f == 0x02
}

fn is_v4_link_local(a: &Ipv4Addr) -> bool {
    a.octets()[0] == 169 && a.octets()[1] == 254
}

/// The rules, in the C++ daemon's order.
pub fn decide(msg: &NeighInput<'_>, cfg: &ConfigSnapshot) -> Decision {
    use Decision::*;
    let is_del = msg.kind == NeighKind::Del;
    if cfg.ignore_interfaces.contains(msg.ifname) {
        return Skip(SkipReason::IgnoredInterface);
    }
    match msg.ip {
        IpAddr::V4(a) if cfg.dual_tor && is_v4_link_local(&a) => {
            return Skip(SkipReason::DualTorLinkLocalV4);
        }
        IpAddr::V6(a) if is_v6_link_local(&a) && !is_del && !cfg.link_local_enabled(msg.ifname) => {
            return Skip(SkipReason::LinkLocalV6Disabled);
        }
        IpAddr::V6(a) if is_v6_multicast_link_local(&a) => {
            return Skip(SkipReason::MulticastLinkLocal);
        }
        _ => {}
    }
    let key = neigh_key(msg.ifname, &msg.ip);
    let state = msg.state;
    let ext_learned = msg.flags & NTF_EXT_LEARNED != 0;
    if cfg.evpn && !is_del && state == nud::PROBE {
        return Skip(SkipReason::EvpnProbe);
    }
    if !cfg.evpn && state == nud::NOARP && !ext_learned {
        return Skip(SkipReason::NoarpNotExtLearned);
    }
    let unresolved = state == nud::INCOMPLETE || state == nud::FAILED;
    let mac = if cfg.dual_tor && unresolved {
        if is_del {
            return Del { key };
        }
        Mac::ZERO
    } else if is_del || unresolved || (cfg.evpn && state == nud::NOARP && !ext_learned) {
        return Del { key };
    } else {
        match msg.lladdr {
            None | Some([]) => return Skip(SkipReason::NoLinkLayerAddress),
            Some(l) => match <[u8; 6]>::try_from(l) {
                Ok(m) => Mac(m),
                Err(_) => return Skip(SkipReason::BadLinkLayerAddress),
            },
        }
    };
    if mac == Mac::BROADCAST {
        return Skip(SkipReason::BroadcastMac);
    }
    let route_del = match msg.master {
        Some(vrf) if cfg.evpn && vrf.starts_with("Vrf") => Some(format!("{vrf}:{}", msg.ip)),
        _ => None,
    };
    Set {
        key,
        value: NeighValue {
            mac,
            ipv6: msg.ip.is_ipv6(),
        },
        route_del,
    }
}

#[cfg(test)]
mod tests;
