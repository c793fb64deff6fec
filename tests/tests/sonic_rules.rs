//! Every SONiC rule driven through the real kernel (and CONFIG_DB) in a lab.
//!
//! Negative cases end with a marker neighbor: the kernel reports changes in order, so once the
//! marker reaches orchagent, everything before it has been judged.

use std::time::Duration;

use neighsyncd_tests::daemon::Daemon;
use neighsyncd_tests::kernel::{Table, entry};
use neighsyncd_tests::netns::Lab;
use neighsyncd_tests::orchagent::Orchagent;
use neighsyncd_tests::redis_server::RedisServer;
use neighsyncd_tests::{require_lab, wait};
use redis::aio::MultiplexedConnection;

const T: Duration = Duration::from_secs(10);

struct Case {
    lab: Lab,
    redis: RedisServer,
    daemon: Daemon,
    orch: Orchagent,
    cfg: MultiplexedConnection,
    markers: u32,
}

impl Case {
    async fn start(config_db: &[(&str, &str, &str)], extra: &[&str]) -> Case {
        let redis = RedisServer::start();
        let lab = Lab::new();
        let mut cfg = redis.conn(4).await;
        for (key, f, v) in config_db {
            let _: () = redis::cmd("HSET")
                .arg(*key)
                .arg(*f)
                .arg(*v)
                .query_async(&mut cfg)
                .await
                .unwrap();
        }
        let mut args: Vec<&str> = vec![];
        args.extend_from_slice(extra);
        let daemon = Daemon::start(&lab.dut, &redis, &args);
        daemon.wait_ready(&lab.dut).await;
        let orch = Orchagent::new(redis.conn(0).await);
        Case {
            lab,
            redis,
            daemon,
            orch,
            cfg,
            markers: 0,
        }
    }

    /// Adds a marker neighbor and waits until orchagent has it; returns the table then.
    async fn settle(&mut self) -> Table {
        self.markers += 1;
        let ip = format!("10.0.0.{}", 200 + self.markers);
        self.lab.dut.ip(&format!(
            "neigh add {ip} lladdr 02:00:00:00:ee:{:02x} dev Ethernet0 nud permanent",
            self.markers
        ));
        let key = format!("Ethernet0:{ip}");
        let mut table = Table::new();
        let orch = &mut self.orch;
        wait::until("marker", T, async || {
            table = orch.sync().await;
            if table.contains_key(&key) {
                Ok(())
            } else {
                Err(format!("{key} not seen"))
            }
        })
        .await;
        table
    }

    async fn hset(&mut self, key: &str, f: &str, v: &str) {
        let _: () = redis::cmd("HSET")
            .arg(key)
            .arg(f)
            .arg(v)
            .query_async(&mut self.cfg)
            .await
            .unwrap();
    }

    async fn wait_for(
        &mut self,
        key: &str,
        want: Option<std::collections::BTreeMap<String, String>>,
    ) {
        let orch = &mut self.orch;
        wait::until(key, T, async || {
            let got = orch.sync().await;
            if got.get(key) == want.as_ref() {
                Ok(())
            } else {
                Err(format!("{key}: got {:?}, want {want:?}", got.get(key)))
            }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_tor_link_local_v4_dropped_and_unresolved_get_zero_mac() {
    require_lab("dual_tor");
    let mut c = Case::start(&[("PEER_SWITCH|peer1", "address_ipv4", "10.1.0.33")], &[]).await;
    c.lab
        .dut
        .ip("neigh add 169.254.0.5 lladdr 02:00:00:00:00:05 dev Ethernet0 nud permanent");
    // An address nobody answers: INCOMPLETE, then FAILED after one quick probe.
    c.lab
        .dut
        .sysctl("net.ipv4.neigh.Ethernet4.mcast_solicit", "1");
    c.lab
        .dut
        .sysctl("net.ipv4.neigh.Ethernet4.retrans_time_ms", "100");
    let _ = c.lab.dut.exec(&["ping", "-c", "1", "-W", "1", "10.0.4.99"]);
    c.wait_for(
        "Ethernet4:10.0.4.99",
        Some(entry("00:00:00:00:00:00", "IPv4")),
    )
    .await;
    let t = c.settle().await;
    assert!(!t.contains_key("Ethernet0:169.254.0.5"), "{t:?}");
    // A real delete of the unresolved neighbor deletes it.
    c.lab.dut.ip("neigh del 10.0.4.99 dev Ethernet4");
    c.wait_for("Ethernet4:10.0.4.99", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unresolved_neighbors_are_deleted_without_dual_tor() {
    require_lab("unresolved");
    let mut c = Case::start(&[], &[]).await;
    c.lab
        .dut
        .ip("neigh add 169.254.0.5 lladdr 02:00:00:00:00:05 dev Ethernet0 nud permanent");
    c.wait_for(
        "Ethernet0:169.254.0.5",
        Some(entry("02:00:00:00:00:05", "IPv4")),
    )
    .await;
    c.lab
        .dut
        .ip("neigh add 10.0.4.98 lladdr 02:00:00:00:00:98 dev Ethernet4 nud stale");
    c.wait_for(
        "Ethernet4:10.0.4.98",
        Some(entry("02:00:00:00:00:98", "IPv4")),
    )
    .await;
    // Re-resolution fails (nobody has .98): the kernel reports FAILED -> delete.
    c.lab
        .dut
        .sysctl("net.ipv4.neigh.Ethernet4.ucast_solicit", "1");
    c.lab
        .dut
        .sysctl("net.ipv4.neigh.Ethernet4.mcast_solicit", "1");
    c.lab
        .dut
        .sysctl("net.ipv4.neigh.Ethernet4.retrans_time_ms", "100");
    c.lab
        .dut
        .sysctl("net.ipv4.neigh.Ethernet4.delay_first_probe_time", "1");
    let _ = c.lab.dut.exec(&["ping", "-c", "2", "-W", "1", "10.0.4.98"]);
    c.wait_for("Ethernet4:10.0.4.98", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_link_local_follows_the_config_db_knob_and_replays() {
    require_lab("link_local");
    let mut c = Case::start(
        &[(
            "VLAN_INTERFACE|Ethernet4",
            "ipv6_use_link_local_only",
            "enable",
        )],
        &[],
    )
    .await;
    c.lab
        .dut
        .ip("neigh add fe80::5 lladdr 02:00:00:00:00:05 dev Ethernet0 nud permanent");
    c.lab
        .dut
        .ip("neigh add fe80::6 lladdr 02:00:00:00:00:06 dev Vlan1000 nud permanent");
    // Enabled in the wrong table for its name: still disabled.
    c.lab
        .dut
        .ip("neigh add fe80::7 lladdr 02:00:00:00:00:07 dev Ethernet4 nud permanent");
    let t = c.settle().await;
    for k in ["Ethernet0:fe80::5", "Vlan1000:fe80::6", "Ethernet4:fe80::7"] {
        assert!(
            !t.contains_key(k),
            "{k} written while link-local is off: {t:?}"
        );
    }
    // Turning the knob on replays the existing neighbors.
    c.hset("INTERFACE|Ethernet0", "ipv6_use_link_local_only", "enable")
        .await;
    c.hset(
        "VLAN_INTERFACE|Vlan1000",
        "ipv6_use_link_local_only",
        "enable",
    )
    .await;
    c.wait_for(
        "Ethernet0:fe80::5",
        Some(entry("02:00:00:00:00:05", "IPv6")),
    )
    .await;
    c.wait_for("Vlan1000:fe80::6", Some(entry("02:00:00:00:00:06", "IPv6")))
        .await;
    // New ones now pass; deletes always pass.
    c.lab
        .dut
        .ip("neigh add fe80::8 lladdr 02:00:00:00:00:08 dev Ethernet0 nud reachable");
    c.wait_for(
        "Ethernet0:fe80::8",
        Some(entry("02:00:00:00:00:08", "IPv6")),
    )
    .await;
    c.hset("INTERFACE|Ethernet0", "ipv6_use_link_local_only", "disable")
        .await;
    c.lab.dut.ip("neigh del fe80::5 dev Ethernet0");
    c.wait_for("Ethernet0:fe80::5", None).await;
    let t = c.settle().await;
    assert!(!t.contains_key("Ethernet4:fe80::7"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multicast_noarp_broadcast_and_ignored_interfaces_are_skipped() {
    require_lab("skips");
    let mut c = Case::start(&[], &["--ignore-interfaces", "Ethernet4"]).await;
    c.lab
        .dut
        .ip("neigh add 10.0.0.20 lladdr 02:00:00:00:00:20 dev Ethernet0 nud noarp");
    c.lab
        .dut
        .ip("neigh add 10.0.0.21 lladdr 02:00:00:00:00:21 dev Ethernet0 nud noarp extern_learn");
    c.lab
        .dut
        .ip("neigh add 10.0.0.30 lladdr ff:ff:ff:ff:ff:ff dev Ethernet0 nud permanent");
    c.lab
        .dut
        .ip("neigh add 10.0.4.5 lladdr 02:00:00:00:04:05 dev Ethernet4 nud permanent");
    // The kernel keeps multicast neighbors only where it is told to; try, and judge if it did.
    let mcast = c
        .lab
        .dut
        .try_ip("neigh add ff02::16 lladdr 33:33:00:00:00:16 dev Ethernet0 nud permanent")
        .is_ok();
    let t = c.settle().await;
    assert_eq!(
        t.get("Ethernet0:10.0.0.21"),
        Some(&entry("02:00:00:00:00:21", "IPv4"))
    );
    for k in [
        "Ethernet0:10.0.0.20",
        "Ethernet0:10.0.0.30",
        "Ethernet4:10.0.4.5",
        "Ethernet0:ff02::16",
    ] {
        assert!(!t.contains_key(k), "{k} written: {t:?}");
    }
    // NOARP deletes are dropped too; EXT_LEARNED ones pass.
    c.lab.dut.ip("neigh del 10.0.0.21 dev Ethernet0");
    c.wait_for("Ethernet0:10.0.0.21", None).await;
    let skipped = c.daemon.metric(
        &c.lab.dut,
        "neighsyncd_rule_skips_total",
        "noarp_not_ext_learned",
    );
    assert!(skipped >= 1.0, "skip not counted");
    if mcast {
        assert!(
            c.daemon.metric(
                &c.lab.dut,
                "neighsyncd_rule_skips_total",
                "multicast_link_local"
            ) >= 1.0
        );
    }
    let _ = &c.redis;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evpn_probe_noarp_and_vrf_host_route() {
    require_lab("evpn");
    let mut c = Case::start(&[("VXLAN_EVPN_NVO|nvo1", "source_vtep", "vtep1")], &[]).await;
    // A bridge named like a VRF stands in for the VRF master (no CONFIG_NET_VRF here): only the
    // master's name matters to the rule.
    c.lab.dut.ip("link add Vrf-red type bridge");
    c.lab.dut.ip("link set Vrf-red up");
    c.lab.dut.ip("link set Ethernet4 master Vrf-red");
    c.lab
        .dut
        .ip("neigh add 10.0.4.9 lladdr 02:00:00:00:04:09 dev Ethernet4 nud permanent");
    c.wait_for(
        "Ethernet4:10.0.4.9",
        Some(entry("02:00:00:00:04:09", "IPv4")),
    )
    .await;
    assert!(
        c.orch
            .routes_seen
            .iter()
            .any(|(k, f)| k == "Vrf-red:10.0.4.9" && f.is_empty()),
        "ROUTE_TABLE delete expected, saw {:?}",
        c.orch.routes_seen
    );
    // PROBE of a new neighbor is dropped in EVPN mode.
    let probe = c
        .lab
        .dut
        .try_ip("neigh add 10.0.0.40 lladdr 02:00:00:00:00:40 dev Ethernet0 nud probe")
        .is_ok();
    // NOARP without EXT_LEARNED means "moved to remote": delete.
    c.lab
        .dut
        .ip("neigh add 10.0.0.41 lladdr 02:00:00:00:00:41 dev Ethernet0 nud reachable");
    c.wait_for(
        "Ethernet0:10.0.0.41",
        Some(entry("02:00:00:00:00:41", "IPv4")),
    )
    .await;
    c.lab
        .dut
        .ip("neigh replace 10.0.0.41 lladdr 02:00:00:00:00:41 dev Ethernet0 nud noarp");
    c.wait_for("Ethernet0:10.0.0.41", None).await;
    let t = c.settle().await;
    if probe {
        assert!(!t.contains_key("Ethernet0:10.0.0.40"), "{t:?}");
    }
}
