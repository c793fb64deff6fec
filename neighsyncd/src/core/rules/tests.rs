//! Every rule of the spec, and the combinations where their order matters.

use super::*;
use crate::core::neigh::nud::*;

const MAC: [u8; 6] = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55];

fn input<'a>(kind: NeighKind, ifname: &'a str, ip: &str, state: u16) -> NeighInput<'a> {
    NeighInput {
        kind,
        ifname,
        master: None,
        ip: ip.parse().unwrap(),
        lladdr: Some(&MAC),
        state,
        flags: 0,
    }
}

fn set(key: &str, mac: Mac, ipv6: bool) -> Decision {
    Decision::Set {
        key: key.into(),
        value: NeighValue { mac, ipv6 },
        route_del: None,
    }
}

fn del(key: &str) -> Decision {
    Decision::Del { key: key.into() }
}

fn dual_tor() -> ConfigSnapshot {
    ConfigSnapshot {
        dual_tor: true,
        ..Default::default()
    }
}

fn evpn() -> ConfigSnapshot {
    ConfigSnapshot {
        evpn: true,
        ..Default::default()
    }
}

#[test]
fn mac_text_round_trips_lowercase() {
    let m = Mac([0xAA, 0xbb, 0x0c, 0, 1, 0xff]);
    assert_eq!(m.to_string(), "aa:bb:0c:00:01:ff");
    assert_eq!(Mac::parse("aa:bb:0c:00:01:ff"), Some(m));
    assert_eq!(Mac::parse("AA:BB:0C:00:01:FF"), Some(m));
    assert_eq!(Mac::parse("aa:bb:0c:00:01"), None);
    assert_eq!(Mac::parse("aa:bb:0c:00:01:ff:00"), None);
    assert_eq!(Mac::parse("aa:bb:0c:00:01:zz"), None);
    assert_eq!(Mac::parse(""), None);
}

#[test]
fn keys_are_ifname_colon_canonical_ip() {
    let d = decide(
        &input(NeighKind::New, "Ethernet8", "2000:0:0::0002", REACHABLE),
        &ConfigSnapshot::default(),
    );
    assert_eq!(d, set("Ethernet8:2000::2", Mac(MAC), true));
    let d = decide(
        &input(NeighKind::New, "Vlan1000", "10.0.0.2", STALE),
        &ConfigSnapshot::default(),
    );
    assert_eq!(d, set("Vlan1000:10.0.0.2", Mac(MAC), false));
    let v = NeighValue {
        mac: Mac(MAC),
        ipv6: false,
    };
    assert_eq!(
        v.fields(),
        [
            ("neigh", "00:11:22:33:44:55".to_string()),
            ("family", "IPv4".to_string())
        ]
    );
}

#[test]
fn valid_states_are_sets() {
    for state in [REACHABLE, STALE, DELAY, PROBE, PERMANENT] {
        let d = decide(
            &input(NeighKind::New, "Ethernet0", "10.0.0.2", state),
            &ConfigSnapshot::default(),
        );
        assert_eq!(
            d,
            set("Ethernet0:10.0.0.2", Mac(MAC), false),
            "state {state}"
        );
    }
}

#[test]
fn deletes_and_unresolved_states_are_deletes() {
    let cfg = ConfigSnapshot::default();
    for (kind, state) in [
        (NeighKind::Del, REACHABLE),
        (NeighKind::Del, STALE),
        (NeighKind::New, INCOMPLETE),
        (NeighKind::New, FAILED),
        (NeighKind::Del, FAILED),
    ] {
        assert_eq!(
            decide(&input(kind, "Ethernet0", "10.0.0.2", state), &cfg),
            del("Ethernet0:10.0.0.2"),
            "{kind:?} {state}"
        );
    }
}

#[test]
fn dual_tor_drops_ipv4_link_local_both_ways() {
    for kind in [NeighKind::New, NeighKind::Del] {
        assert_eq!(
            decide(
                &input(kind, "Vlan1000", "169.254.0.1", REACHABLE),
                &dual_tor()
            ),
            Decision::Skip(SkipReason::DualTorLinkLocalV4)
        );
    }
    // Not dual-ToR: 169.254/16 is an ordinary neighbor.
    assert_eq!(
        decide(
            &input(NeighKind::New, "Vlan1000", "169.254.0.1", REACHABLE),
            &ConfigSnapshot::default()
        ),
        set("Vlan1000:169.254.0.1", Mac(MAC), false)
    );
    // Just outside the range.
    assert!(matches!(
        decide(
            &input(NeighKind::New, "Vlan1000", "169.255.0.1", REACHABLE),
            &dual_tor()
        ),
        Decision::Set { .. }
    ));
}

#[test]
fn ipv6_link_local_needs_the_knob_for_adds_only() {
    let off = ConfigSnapshot::default();
    let mut on = ConfigSnapshot::default();
    on.link_local.insert("Ethernet0".into());
    for ip in ["fe80::1", "febf::1"] {
        assert_eq!(
            decide(&input(NeighKind::New, "Ethernet0", ip, REACHABLE), &off),
            Decision::Skip(SkipReason::LinkLocalV6Disabled),
            "{ip}"
        );
        assert!(matches!(
            decide(&input(NeighKind::New, "Ethernet0", ip, REACHABLE), &on),
            Decision::Set { .. }
        ));
        // Deletes always pass.
        assert_eq!(
            decide(&input(NeighKind::Del, "Ethernet0", ip, REACHABLE), &off),
            del(&format!("Ethernet0:{ip}"))
        );
    }
    // Enabled on another interface only.
    assert_eq!(
        decide(
            &input(NeighKind::New, "Ethernet4", "fe80::1", REACHABLE),
            &on
        ),
        Decision::Skip(SkipReason::LinkLocalV6Disabled)
    );
    // fec0::/10 is not link-local.
    assert!(matches!(
        decide(
            &input(NeighKind::New, "Ethernet0", "fec0::1", REACHABLE),
            &off
        ),
        Decision::Set { .. }
    ));
    // An unresolved link-local neighbor on an enabled interface is a delete.
    assert_eq!(
        decide(&input(NeighKind::New, "Ethernet0", "fe80::1", FAILED), &on),
        del("Ethernet0:fe80::1")
    );
}

#[test]
fn ipv6_multicast_link_local_is_always_dropped() {
    let mut on = ConfigSnapshot::default();
    on.link_local.insert("Ethernet0".into());
    for ip in ["ff02::1", "ff12::1:2", "ff32::16"] {
        for kind in [NeighKind::New, NeighKind::Del] {
            for cfg in [&on, &ConfigSnapshot::default()] {
                assert_eq!(
                    decide(&input(kind, "Ethernet0", ip, REACHABLE), cfg),
                    Decision::Skip(SkipReason::MulticastLinkLocal),
                    "{ip} {kind:?}"
                );
            }
        }
    }
    // Other multicast scopes are not this rule's business.
    assert!(matches!(
        decide(
            &input(NeighKind::New, "Ethernet0", "ff05::1", REACHABLE),
            &ConfigSnapshot::default()
        ),
        Decision::Set { .. }
    ));
}

#[test]
fn evpn_drops_new_probe_but_not_deleted_probe() {
    assert_eq!(
        decide(
            &input(NeighKind::New, "Vlan1000", "10.0.0.2", PROBE),
            &evpn()
        ),
        Decision::Skip(SkipReason::EvpnProbe)
    );
    assert_eq!(
        decide(
            &input(NeighKind::Del, "Vlan1000", "10.0.0.2", PROBE),
            &evpn()
        ),
        del("Vlan1000:10.0.0.2")
    );
}

#[test]
fn noarp_without_ext_learned() {
    let cfg = ConfigSnapshot::default();
    for kind in [NeighKind::New, NeighKind::Del] {
        assert_eq!(
            decide(&input(kind, "Ethernet0", "10.0.0.2", NOARP), &cfg),
            Decision::Skip(SkipReason::NoarpNotExtLearned)
        );
    }
    let mut ext = input(NeighKind::New, "Ethernet0", "10.0.0.2", NOARP);
    ext.flags = NTF_EXT_LEARNED;
    assert_eq!(
        decide(&ext, &cfg),
        set("Ethernet0:10.0.0.2", Mac(MAC), false)
    );
    ext.kind = NeighKind::Del;
    assert_eq!(decide(&ext, &cfg), del("Ethernet0:10.0.0.2"));
    // EVPN: NOARP without EXT_LEARNED means "moved to remote": delete.
    assert_eq!(
        decide(
            &input(NeighKind::New, "Vlan1000", "10.0.0.2", NOARP),
            &evpn()
        ),
        del("Vlan1000:10.0.0.2")
    );
    let mut ext = input(NeighKind::New, "Vlan1000", "10.0.0.2", NOARP);
    ext.flags = NTF_EXT_LEARNED;
    assert_eq!(
        decide(&ext, &evpn()),
        set("Vlan1000:10.0.0.2", Mac(MAC), false)
    );
}

#[test]
fn dual_tor_unresolved_is_a_zero_mac_set() {
    for state in [INCOMPLETE, FAILED] {
        let mut i = input(NeighKind::New, "Vlan1000", "192.168.0.2", state);
        i.lladdr = None;
        assert_eq!(
            decide(&i, &dual_tor()),
            set("Vlan1000:192.168.0.2", Mac::ZERO, false)
        );
        i.kind = NeighKind::Del;
        assert_eq!(decide(&i, &dual_tor()), del("Vlan1000:192.168.0.2"));
    }
    // A real delete of a resolved neighbor on dual-ToR is a delete.
    assert_eq!(
        decide(
            &input(NeighKind::Del, "Vlan1000", "192.168.0.2", REACHABLE),
            &dual_tor()
        ),
        del("Vlan1000:192.168.0.2")
    );
}

#[test]
fn sets_need_a_unicast_six_byte_mac() {
    let cfg = ConfigSnapshot::default();
    let mut i = input(NeighKind::New, "Ethernet0", "10.0.0.2", REACHABLE);
    i.lladdr = None;
    assert_eq!(
        decide(&i, &cfg),
        Decision::Skip(SkipReason::NoLinkLayerAddress)
    );
    i.lladdr = Some(&[]);
    assert_eq!(
        decide(&i, &cfg),
        Decision::Skip(SkipReason::NoLinkLayerAddress)
    );
    i.lladdr = Some(&[1, 2, 3, 4]);
    assert_eq!(
        decide(&i, &cfg),
        Decision::Skip(SkipReason::BadLinkLayerAddress)
    );
    i.lladdr = Some(&[0xff; 6]);
    assert_eq!(decide(&i, &cfg), Decision::Skip(SkipReason::BroadcastMac));
    // Deletes do not look at the MAC.
    i.kind = NeighKind::Del;
    i.lladdr = None;
    assert_eq!(decide(&i, &cfg), del("Ethernet0:10.0.0.2"));
    i.lladdr = Some(&[0xff; 6]);
    assert_eq!(decide(&i, &cfg), del("Ethernet0:10.0.0.2"));
}

#[test]
fn evpn_vrf_neighbors_delete_the_host_route_first() {
    let mut i = input(NeighKind::New, "Vlan1000", "10.0.0.2", REACHABLE);
    i.master = Some("Vrf-red");
    assert_eq!(
        decide(&i, &evpn()),
        Decision::Set {
            key: "Vlan1000:10.0.0.2".into(),
            value: NeighValue {
                mac: Mac(MAC),
                ipv6: false
            },
            route_del: Some("Vrf-red:10.0.0.2".into()),
        }
    );
    // Not EVPN: no route delete; VRF never enters the key.
    assert_eq!(
        decide(&i, &ConfigSnapshot::default()),
        set("Vlan1000:10.0.0.2", Mac(MAC), false)
    );
    // A master not named Vrf*: no route delete.
    i.master = Some("Bridge");
    assert_eq!(
        decide(&i, &evpn()),
        set("Vlan1000:10.0.0.2", Mac(MAC), false)
    );
    // Deletes never touch ROUTE_TABLE.
    i.master = Some("Vrf-red");
    i.kind = NeighKind::Del;
    assert_eq!(decide(&i, &evpn()), del("Vlan1000:10.0.0.2"));
}

#[test]
fn ignore_list_is_opt_in_and_first() {
    let mut cfg = ConfigSnapshot::default();
    // eth0 is not filtered by default: orchagent does that.
    assert!(matches!(
        decide(&input(NeighKind::New, "eth0", "10.0.0.2", REACHABLE), &cfg),
        Decision::Set { .. }
    ));
    cfg.ignore_interfaces.insert("eth0".into());
    for kind in [NeighKind::New, NeighKind::Del] {
        assert_eq!(
            decide(&input(kind, "eth0", "10.0.0.2", REACHABLE), &cfg),
            Decision::Skip(SkipReason::IgnoredInterface)
        );
    }
}

#[test]
fn unknown_ifindex_names_are_used_verbatim() {
    assert_eq!(
        decide(
            &input(NeighKind::New, "42", "10.0.0.2", REACHABLE),
            &ConfigSnapshot::default()
        ),
        set("42:10.0.0.2", Mac(MAC), false)
    );
}

/// Every (kind, state, flag, config) combination yields exactly what the spec's decision table
/// says; this enumerates the table independently of `decide`'s structure.
#[test]
fn decision_table_is_exhaustive() {
    let states = [
        NONE, INCOMPLETE, REACHABLE, STALE, DELAY, PROBE, FAILED, NOARP, PERMANENT,
    ];
    for dual in [false, true] {
        for ev in [false, true] {
            let cfg = ConfigSnapshot {
                dual_tor: dual,
                evpn: ev,
                ..Default::default()
            };
            for kind in [NeighKind::New, NeighKind::Del] {
                for &state in &states {
                    for flags in [0, NTF_EXT_LEARNED] {
                        let mut i = input(kind, "Ethernet0", "10.1.0.2", state);
                        i.flags = flags;
                        let d = decide(&i, &cfg);
                        let is_del = kind == NeighKind::Del;
                        let ext = flags != 0;
                        let unresolved = state == INCOMPLETE || state == FAILED;
                        let evpn_probe = ev && !is_del && state == PROBE;
                        let plain_noarp = !ev && state == NOARP && !ext;
                        let expect = if evpn_probe || plain_noarp {
                            "skip"
                        } else if dual && unresolved {
                            if is_del { "del" } else { "zero" }
                        } else if is_del || unresolved || (ev && state == NOARP && !ext) {
                            "del"
                        } else {
                            "set"
                        };
                        let got = match &d {
                            Decision::Skip(_) => "skip",
                            Decision::Del { .. } => "del",
                            Decision::Set { value, .. } if value.mac == Mac::ZERO => "zero",
                            Decision::Set { .. } => "set",
                        };
                        assert_eq!(
                            got, expect,
                            "dual={dual} evpn={ev} {kind:?} state={state} flags={flags}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn mac_text_is_lowercase_hex_with_colons_and_its_display() {
    for (m, want) in [
        (Mac::ZERO, "00:00:00:00:00:00"),
        (Mac::BROADCAST, "ff:ff:ff:ff:ff:ff"),
        (
            Mac([0xaa, 0xbb, 0x0c, 0x00, 0x01, 0xff]),
            "aa:bb:0c:00:01:ff",
        ),
        (
            Mac([0x02, 0x99, 0x10, 0x9a, 0xf0, 0x0f]),
            "02:99:10:9a:f0:0f",
        ),
    ] {
        assert_eq!(std::str::from_utf8(&m.text()), Ok(want));
        assert_eq!(m.to_string(), want);
    }
}
