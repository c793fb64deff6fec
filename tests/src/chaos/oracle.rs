//! What APPL_DB `NEIGH_TABLE` must hold, from the kernel's table (`ip -j neigh`) and the
//! CONFIG_DB knobs the chaos run has set: SONiC's rules (shared/spec/sonic-compat.md, "The
//! rules") written again here, independently of the daemon's code.
//!
//! Some rules depend on history: a *skipped* message leaves APPL_DB as it was (a link-local
//! neighbor updated while link-local is off, NOARP without extern_learn outside EVPN, PROBE in
//! EVPN, 169.254/16 on dual-ToR). After lost events, what APPL_DB holds then depends on which
//! events were seen, and no snapshot can predict it. So the generator keeps a discipline under
//! which the table is a function of the snapshot:
//! * it never creates NOARP-without-extern_learn, PROBE or 169.254/16 neighbors (the kernel's own
//!   multicast NOARP entries are skipped in every mode and never in APPL_DB);
//! * before it turns link-local off on an interface, it deletes that interface's fe80
//!   neighbors (adding them while it is off is fine: absent until it is on);
//! * it resolves peers (real ARP/ND, whose timers can reach PROBE) only while EVPN is off.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::kernel::{Table, entry};
use crate::netns::Netns;

/// The CONFIG_DB facts the rules depend on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Knobs {
    pub dual_tor: bool,
    pub evpn: bool,
    /// Interfaces with `ipv6_use_link_local_only` = `enable`.
    pub link_local: BTreeSet<String>,
}

#[derive(Debug, Clone)]
struct Neigh {
    dev: String,
    ip: IpAddr,
    lladdr: Option<String>,
    states: Vec<String>,
    extern_learn: bool,
}

fn read(ns: &Netns) -> Vec<Neigh> {
    let out = ns.ip("-j neigh show");
    let v: serde_json::Value =
        serde_json::from_str(if out.trim().is_empty() { "[]" } else { &out })
            .expect("ip -j neigh output");
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| {
            Some(Neigh {
                dev: n["dev"].as_str()?.to_string(),
                ip: n["dst"].as_str()?.parse().ok()?,
                lladdr: n["lladdr"].as_str().map(str::to_lowercase),
                states: n["state"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect(),
                extern_learn: n.get("extern_learn").is_some(),
            })
        })
        .collect()
}

/// The table orchagent must end up with.
pub fn expected(ns: &Netns, k: &Knobs) -> Table {
    let mut t = BTreeMap::new();
    for n in read(ns) {
        if let Some(mac) = value(&n, k) {
            let family = if n.ip.is_ipv4() { "IPv4" } else { "IPv6" };
            t.insert(format!("{}:{}", n.dev, n.ip), entry(&mac, family));
        }
    }
    t
}

/// One neighbor through the rules, in their order: the MAC APPL_DB holds, or nothing.
fn value(n: &Neigh, k: &Knobs) -> Option<String> {
    let has = |s: &str| n.states.iter().any(|x| x == s);
    match n.ip {
        IpAddr::V4(a) if k.dual_tor && a.octets()[..2] == [169, 254] => return None,
        IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80 && !k.link_local.contains(&n.dev) => {
            return None;
        }
        IpAddr::V6(a) if a.octets()[0] == 0xff && a.octets()[1] & 0x0f == 0x02 => return None,
        _ => {}
    }
    let noarp = has("NOARP");
    let unresolved = has("INCOMPLETE") || has("FAILED");
    if k.evpn && has("PROBE") {
        // Skipped: the discipline keeps peers in EVPN mode away from PROBE.
        return None;
    }
    if noarp && !n.extern_learn {
        return None; // skipped (non-EVPN) or deleted (EVPN): absent either way
    }
    if unresolved {
        return k.dual_tor.then(|| "00:00:00:00:00:00".to_string());
    }
    let valid = ["REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT"]
        .iter()
        .any(|s| has(s))
        || (noarp && n.extern_learn);
    if !valid {
        return None;
    }
    match n.lladdr.as_deref() {
        None | Some("ff:ff:ff:ff:ff:ff") => None,
        Some(mac) => Some(mac.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(dev: &str, ip: &str, lladdr: Option<&str>, states: &[&str], ext: bool) -> Neigh {
        Neigh {
            dev: dev.into(),
            ip: ip.parse().unwrap(),
            lladdr: lladdr.map(String::from),
            states: states.iter().map(|s| s.to_string()).collect(),
            extern_learn: ext,
        }
    }

    #[test]
    fn the_rules_in_their_order() {
        let mac = Some("02:00:00:00:00:01");
        let plain = Knobs::default();
        let tor = Knobs {
            dual_tor: true,
            ..Default::default()
        };
        let ll = Knobs {
            link_local: ["Ethernet4".to_string()].into(),
            ..Default::default()
        };
        let set = Some("02:00:00:00:00:01".to_string());
        assert_eq!(
            value(&n("Ethernet0", "10.0.0.2", mac, &["STALE"], false), &plain),
            set
        );
        assert_eq!(
            value(&n("Ethernet0", "10.0.0.2", mac, &["NOARP"], false), &plain),
            None
        );
        assert_eq!(
            value(&n("Ethernet0", "10.0.0.2", mac, &["NOARP"], true), &plain),
            set
        );
        assert_eq!(
            value(
                &n("Ethernet0", "10.0.0.2", None, &["FAILED"], false),
                &plain
            ),
            None
        );
        assert_eq!(
            value(
                &n("Ethernet0", "10.0.0.2", None, &["INCOMPLETE"], false),
                &tor
            ),
            Some("00:00:00:00:00:00".into())
        );
        assert_eq!(
            value(&n("Ethernet0", "169.254.0.2", mac, &["STALE"], false), &tor),
            None
        );
        assert_eq!(
            value(&n("Ethernet4", "fe80::2", mac, &["STALE"], false), &plain),
            None
        );
        assert_eq!(
            value(&n("Ethernet4", "fe80::2", mac, &["STALE"], false), &ll),
            set
        );
        assert_eq!(
            value(&n("Ethernet4", "ff02::2", mac, &["NOARP"], true), &ll),
            None
        );
        assert_eq!(
            value(
                &n(
                    "Ethernet0",
                    "10.0.0.2",
                    Some("ff:ff:ff:ff:ff:ff"),
                    &["PERMANENT"],
                    false
                ),
                &plain
            ),
            None
        );
    }
}
