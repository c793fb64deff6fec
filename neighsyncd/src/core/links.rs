//! ifindex -> interface name (and master) cache, kept current from link messages.
//!
//! SONiC keys neighbors by interface name, the kernel by ifindex. The cache is fed by the same
//! ordered stream as the neighbor events, so a neighbor message always sees the link as the
//! kernel had it when the message was sent.

use std::collections::HashMap;

use super::key::IfName;
use super::neigh::LinkMsg;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub name: String,
    /// `name`, interned (the state keys neighbors by it).
    pub ifname: IfName,
    pub master: Option<u32>,
    pub oper_up: bool,
}

/// What applying a link message changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkChange {
    Added,
    /// The interface was renamed from this name.
    Renamed {
        old: String,
    },
    /// Master or carrier changed, or nothing did.
    Updated,
    Removed {
        name: String,
    },
    /// A delete for an ifindex we never knew.
    Unknown,
}

#[derive(Debug, Default)]
pub struct LinkCache {
    links: HashMap<u32, LinkInfo>,
}

impl LinkCache {
    pub fn apply(&mut self, msg: &LinkMsg) -> LinkChange {
        if msg.deleted {
            return match self.links.remove(&msg.ifindex) {
                Some(info) => LinkChange::Removed { name: info.name },
                None => LinkChange::Unknown,
            };
        }
        let info = LinkInfo {
            name: msg.name.clone(),
            ifname: IfName::new(&msg.name),
            master: msg.master,
            oper_up: msg.oper_up,
        };
        match self.links.insert(msg.ifindex, info) {
            None => LinkChange::Added,
            Some(old) if old.name != msg.name => LinkChange::Renamed { old: old.name },
            Some(_) => LinkChange::Updated,
        }
    }

    pub fn get(&self, ifindex: u32) -> Option<&LinkInfo> {
        self.links.get(&ifindex)
    }

    /// The SONiC name of an interface, interned: its kernel name, or the decimal ifindex when
    /// unknown (as the C++ daemon's LinkCache does).
    pub fn ifname(&self, ifindex: u32) -> IfName {
        match self.links.get(&ifindex) {
            Some(l) => l.ifname,
            None => IfName::new(&ifindex.to_string()),
        }
    }

    /// The name of the interface's master (its VRF, when it is enslaved to one).
    pub fn master_name(&self, ifindex: u32) -> Option<&str> {
        let master = self.links.get(&ifindex)?.master?;
        self.links.get(&master).map(|l| l.name.as_str())
    }

    pub fn len(&self) -> usize {
        self.links.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ifindex: u32, name: &str, master: Option<u32>, deleted: bool) -> LinkMsg {
        LinkMsg {
            ifindex,
            name: name.into(),
            master,
            oper_up: true,
            deleted,
        }
    }

    #[test]
    fn tracks_adds_renames_masters_and_deletes() {
        let mut c = LinkCache::default();
        assert_eq!(
            c.apply(&msg(3, "Ethernet0", Some(9), false)),
            LinkChange::Added
        );
        assert_eq!(c.apply(&msg(9, "Vrf-red", None, false)), LinkChange::Added);
        assert_eq!(c.ifname(3).as_str(), "Ethernet0");
        assert_eq!(c.master_name(3), Some("Vrf-red"));
        assert_eq!(c.ifname(77).as_str(), "77");
        assert_eq!(
            c.apply(&msg(3, "Ethernet4", Some(9), false)),
            LinkChange::Renamed {
                old: "Ethernet0".into()
            }
        );
        assert_eq!(c.ifname(3).as_str(), "Ethernet4");
        assert_eq!(
            c.apply(&msg(3, "Ethernet4", None, false)),
            LinkChange::Updated
        );
        assert_eq!(c.master_name(3), None);
        assert_eq!(
            c.apply(&msg(3, "", None, true)),
            LinkChange::Removed {
                name: "Ethernet4".into()
            }
        );
        assert_eq!(c.apply(&msg(3, "", None, true)), LinkChange::Unknown);
    }
}
