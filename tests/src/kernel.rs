//! The kernel's neighbor table of a namespace, and what APPL_DB should hold for it under the
//! default SONiC configuration, computed here independently of the daemon's rules module.

use std::collections::{BTreeMap, BTreeSet};

use crate::netns::Netns;

pub type Table = BTreeMap<String, BTreeMap<String, String>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelNeigh {
    pub dev: String,
    pub dst: String,
    pub lladdr: Option<String>,
    pub states: Vec<String>,
    pub extern_learn: bool,
}

pub fn neighbors(ns: &Netns) -> Vec<KernelNeigh> {
    let out = ns.ip("-j neigh show");
    let v: serde_json::Value =
        serde_json::from_str(if out.trim().is_empty() { "[]" } else { &out })
            .expect("ip -j neigh output");
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|n| KernelNeigh {
                    dev: n["dev"].as_str().unwrap_or_default().to_string(),
                    dst: n["dst"].as_str().unwrap_or_default().to_string(),
                    lladdr: n["lladdr"].as_str().map(str::to_lowercase),
                    states: n["state"]
                        .as_array()
                        .map(|s| {
                            s.iter()
                                .filter_map(|x| x.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default(),
                    extern_learn: n.get("extern_learn").is_some(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The kernel's table once two readings in a row agree. The kernel's neighbor table is one
/// hash table for every namespace, and a dump does not tell when it raced that table's
/// growth (another namespace's burst): it can miss entries and say nothing. A single reading
/// that a test asserts on must be a settled one.
pub fn neighbors_settled(ns: &Netns) -> Vec<KernelNeigh> {
    let mut last = neighbors(ns);
    for _ in 0..10 {
        let now = neighbors(ns);
        if now == last {
            return now;
        }
        last = now;
    }
    panic!(
        "the kernel's neighbor table in {} did not read the same twice in 10 tries",
        ns.name()
    );
}

/// What APPL_DB `NEIGH_TABLE` must hold for this kernel table with no dual-ToR, no EVPN, and
/// IPv6 link-local enabled on `link_local` interfaces only.
pub fn expected(ns: &Netns, link_local: &BTreeSet<String>) -> Table {
    let mut t = Table::new();
    for n in neighbors(ns) {
        let ip: std::net::IpAddr = match n.dst.parse() {
            Ok(ip) => ip,
            Err(_) => continue,
        };
        let valid = n.states.iter().any(|s| {
            matches!(
                s.as_str(),
                "REACHABLE" | "STALE" | "DELAY" | "PROBE" | "PERMANENT"
            ) || (s == "NOARP" && n.extern_learn)
        });
        let Some(mac) = n.lladdr.clone() else {
            continue;
        };
        if !valid || mac == "ff:ff:ff:ff:ff:ff" {
            continue;
        }
        if let std::net::IpAddr::V6(a) = ip {
            let s = a.segments();
            if s[0] & 0xffc0 == 0xfe80 && !link_local.contains(&n.dev) {
                continue;
            }
            if s[0] & 0xff0f == 0xff02 {
                continue;
            }
        }
        let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
        t.insert(
            format!("{}:{}", n.dev, ip),
            [
                ("neigh".to_string(), mac),
                ("family".to_string(), family.to_string()),
            ]
            .into(),
        );
    }
    t
}

/// One APPL_DB entry, for building expectations by hand.
pub fn entry(mac: &str, family: &str) -> BTreeMap<String, String> {
    [
        ("neigh".to_string(), mac.to_string()),
        ("family".to_string(), family.to_string()),
    ]
    .into()
}
