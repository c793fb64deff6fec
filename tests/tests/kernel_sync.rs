//! The kernel's neighbor table mirrored into APPL_DB, driven by the real kernel in a lab.

use std::time::Duration;

use neighsyncd_tests::daemon::Daemon;
use neighsyncd_tests::kernel::entry;
use neighsyncd_tests::netns::Lab;
use neighsyncd_tests::orchagent::Orchagent;
use neighsyncd_tests::redis_server::RedisServer;
use neighsyncd_tests::{require_lab, wait};

const T: Duration = Duration::from_secs(10);

async fn converged(orch: &mut Orchagent, lab: &Lab) {
    wait::appl_db_equals_kernel("APPL_DB equals the kernel", orch, &lab.dut, T).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adds_changes_and_deletes_reach_orchagent() {
    require_lab("adds_changes_and_deletes_reach_orchagent");
    let redis = RedisServer::start();
    let lab = Lab::new();
    lab.dut
        .ip("neigh add 10.0.0.5 lladdr 02:00:00:00:00:05 dev Ethernet0 nud permanent");
    let d = Daemon::start(&lab.dut, &redis, &[]);
    d.wait_ready(&lab.dut).await;
    let mut orch = Orchagent::new(redis.conn(0).await);
    converged(&mut orch, &lab).await;
    assert!(orch.sync().await.contains_key("Ethernet0:10.0.0.5"));

    // Real ARP and NDP resolution.
    lab.ping("10.0.0.2");
    lab.ping("2000::2");
    let mac0 = lab.peer_mac("p0");
    wait::until("resolved neighbors", T, async || {
        let got = orch.sync().await;
        for (k, fam) in [
            ("Ethernet0:10.0.0.2", "IPv4"),
            ("Ethernet0:2000::2", "IPv6"),
        ] {
            if got.get(k) != Some(&entry(&mac0, fam)) {
                return Err(format!("{k}: {:?}", got.get(k)));
            }
        }
        Ok(())
    })
    .await;

    // MAC change, IPv6 canonical form, delete.
    lab.dut
        .ip("neigh replace 10.0.0.5 lladdr 02:00:00:00:00:55 dev Ethernet0 nud permanent");
    lab.dut
        .ip("neigh add 2000:0:0:0::0:77 lladdr 02:AA:00:00:00:77 dev Ethernet0 nud stale");
    lab.dut
        .ip("neigh add 192.168.0.9 lladdr 02:00:00:00:00:09 dev Vlan1000 nud reachable");
    converged(&mut orch, &lab).await;
    let got = orch.sync().await;
    assert_eq!(
        got.get("Ethernet0:10.0.0.5"),
        Some(&entry("02:00:00:00:00:55", "IPv4"))
    );
    assert_eq!(
        got.get("Ethernet0:2000::77"),
        Some(&entry("02:aa:00:00:00:77", "IPv6"))
    );
    assert_eq!(
        got.get("Vlan1000:192.168.0.9"),
        Some(&entry("02:00:00:00:00:09", "IPv4"))
    );

    lab.dut.ip("neigh del 10.0.0.5 dev Ethernet0");
    lab.dut
        .ip("neigh change 2000::77 lladdr 02:aa:00:00:00:78 dev Ethernet0 nud reachable");
    converged(&mut orch, &lab).await;
    let got = orch.sync().await;
    assert!(!got.contains_key("Ethernet0:10.0.0.5"));
    assert_eq!(
        got.get("Ethernet0:2000::77"),
        Some(&entry("02:aa:00:00:00:78", "IPv6"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_mac_state_flaps_are_not_rewritten() {
    require_lab("same_mac_state_flaps_are_not_rewritten");
    let redis = RedisServer::start();
    let lab = Lab::new();
    let d = Daemon::start(&lab.dut, &redis, &[]);
    d.wait_ready(&lab.dut).await;
    let mut orch = Orchagent::new(redis.conn(0).await);
    lab.dut
        .ip("neigh add 10.0.0.7 lladdr 02:00:00:00:00:07 dev Ethernet0 nud reachable");
    converged(&mut orch, &lab).await;
    let writes = orch.writes();
    for st in ["stale", "delay", "probe", "reachable", "stale"] {
        lab.dut.ip(&format!(
            "neigh change 10.0.0.7 lladdr 02:00:00:00:00:07 dev Ethernet0 nud {st}"
        ));
    }
    // A MAC change after the flaps is the marker that everything before it was processed.
    lab.dut
        .ip("neigh change 10.0.0.7 lladdr 02:00:00:00:00:08 dev Ethernet0 nud stale");
    wait::until("the MAC change", T, async || {
        let got = orch.sync().await;
        match got.get("Ethernet0:10.0.0.7") {
            Some(e) if *e == entry("02:00:00:00:00:08", "IPv4") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(
        orch.writes(),
        writes + 1,
        "flaps with the same MAC were written: {:?}",
        &orch.seen[writes..]
    );
    assert!(d.metric(&lab.dut, "neighsyncd_noop_writes_suppressed_total", "") >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_converges_without_rewriting() {
    require_lab("restart_converges_without_rewriting");
    let redis = RedisServer::start();
    let lab = Lab::new();
    for i in 1..=20 {
        lab.dut.ip(&format!(
            "neigh add 10.0.0.{} lladdr 02:00:00:00:01:{i:02x} dev Ethernet0 nud permanent",
            i + 100
        ));
    }
    let mut d = Daemon::start(&lab.dut, &redis, &[]);
    d.wait_ready(&lab.dut).await;
    let mut orch = Orchagent::new(redis.conn(0).await);
    converged(&mut orch, &lab).await;
    d.kill();
    // While it is down: one deleted, one changed, one added.
    lab.dut.ip("neigh del 10.0.0.101 dev Ethernet0");
    lab.dut
        .ip("neigh replace 10.0.0.102 lladdr 02:00:00:00:02:02 dev Ethernet0 nud permanent");
    lab.dut
        .ip("neigh add 10.0.0.200 lladdr 02:00:00:00:02:00 dev Ethernet0 nud permanent");
    let before = orch.writes();
    let d2 = Daemon::start(&lab.dut, &redis, &[]);
    d2.wait_ready(&lab.dut).await;
    converged(&mut orch, &lab).await;
    let mut keys: Vec<&str> = orch.seen[before..]
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            "Ethernet0:10.0.0.101",
            "Ethernet0:10.0.0.102",
            "Ethernet0:10.0.0.200"
        ]
    );
}
