//! `neighsyncd restore`: the kernel's neighbor table brought back from APPL_DB after a system
//! warm reboot, re-resolved through real ARP/ND answers from a peer namespace.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use neighsyncd_tests::daemon::binary;
use neighsyncd_tests::kernel;
use neighsyncd_tests::netns::Lab;
use neighsyncd_tests::redis_server::RedisServer;
use neighsyncd_tests::{require_lab, wait};
use redis::aio::MultiplexedConnection;

async fn hset(c: &mut MultiplexedConnection, key: &str, f: &str, v: &str) {
    let _: () = redis::cmd("HSET")
        .arg(key)
        .arg(f)
        .arg(v)
        .query_async(c)
        .await
        .unwrap();
}

async fn restored_flag(c: &mut MultiplexedConnection) -> Option<String> {
    redis::cmd("HGET")
        .arg("NEIGH_RESTORE_TABLE|Flags")
        .arg("restored")
        .query_async(c)
        .await
        .unwrap()
}

fn restore(lab: &Lab, redis: &RedisServer, extra: &[&str]) -> Child {
    Command::new("ip")
        .args(["netns", "exec", lab.dut.name()])
        .arg(binary())
        .arg("--redis")
        .arg(redis.url())
        .args([
            "--metrics-listen",
            "off",
            "restore",
            "--check-interval",
            "1",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn neighsyncd restore")
}

fn finish(mut child: Child, limit: Duration) -> (bool, String) {
    let t0 = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            let out = child.wait_with_output().unwrap();
            return (
                out.status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "restore did not finish within {limit:?}:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kernel_state(lab: &Lab, dst: &str) -> Option<Vec<String>> {
    kernel::neighbors(&lab.dut)
        .into_iter()
        .find(|n| n.dst == dst)
        .map(|n| n.states)
}

async fn save(appl: &mut MultiplexedConnection, key: &str, mac: &str, fam: &str) {
    hset(appl, &format!("NEIGH_TABLE:{key}"), "neigh", mac).await;
    hset(appl, &format!("NEIGH_TABLE:{key}"), "family", fam).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_warm_reboot_restores_and_reresolves() {
    require_lab("system_warm_reboot_restores_and_reresolves");
    let redis = RedisServer::start();
    let lab = Lab::new();
    let (mut appl, mut state) = (redis.conn(0).await, redis.conn(6).await);
    let (m0, m4, m8) = (lab.peer_mac("p0"), lab.peer_mac("p4"), lab.peer_mac("p8"));
    save(&mut appl, "Ethernet0:10.0.0.2", &m0, "IPv4").await;
    save(&mut appl, "Ethernet0:2000::2", &m0, "IPv6").await;
    save(&mut appl, "Ethernet4:10.0.4.2", &m4, "IPv4").await;
    save(&mut appl, "Vlan1000:192.168.0.2", &m8, "IPv4").await;
    save(&mut appl, "lo:127.0.0.9", "02:00:00:00:00:09", "IPv4").await;
    hset(
        &mut state,
        "WARM_RESTART_ENABLE_TABLE|system",
        "enable",
        "true",
    )
    .await;
    hset(
        &mut state,
        "WARM_RESTART_TABLE|neighsyncd",
        "restore_count",
        "1",
    )
    .await;
    // The reboot lost the kernel table; Ethernet4 is still down; Vlan1000 has no member yet.
    lab.dut.ip("neigh flush all");
    lab.dut.ip("link set Ethernet4 down");
    let child = restore(&lab, &redis, &["--timeout", "30"]);

    wait::until(
        "Ethernet0 neighbors re-resolved",
        Duration::from_secs(15),
        async || {
            for dst in ["10.0.0.2", "2000::2"] {
                match kernel_state(&lab, dst) {
                    Some(s) if s.iter().any(|x| x == "REACHABLE") => {}
                    other => return Err(format!("{dst}: {other:?}")),
                }
            }
            Ok(())
        },
    )
    .await;
    assert_eq!(
        kernel_state(&lab, "10.0.4.2"),
        None,
        "restored on a down interface"
    );
    assert_eq!(
        kernel_state(&lab, "192.168.0.2"),
        None,
        "restored on a VLAN without members"
    );
    assert_eq!(kernel_state(&lab, "127.0.0.9"), None, "lo must be skipped");
    assert_eq!(
        restored_flag(&mut state).await,
        None,
        "flag set before everything was restored"
    );

    // Interfaces come up: they are retried.
    lab.dut.ip("link set Ethernet4 up");
    hset(
        &mut state,
        "VLAN_MEMBER_TABLE|Vlan1000|Ethernet8",
        "tagging_mode",
        "untagged",
    )
    .await;
    let (ok, log) = finish(child, Duration::from_secs(30));
    assert!(ok, "{log}");
    assert_eq!(restored_flag(&mut state).await.as_deref(), Some("true"));
    wait::until(
        "late interfaces re-resolved",
        Duration::from_secs(15),
        async || {
            for dst in ["10.0.4.2", "192.168.0.2"] {
                match kernel_state(&lab, dst) {
                    Some(s)
                        if s.iter()
                            .any(|x| x == "REACHABLE" || x == "STALE" || x == "DELAY") => {}
                    other => return Err(format!("{dst}: {other:?}")),
                }
            }
            Ok(())
        },
    )
    .await;
    // The restore step does not touch restore_count (neighsyncd does).
    let t: BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg("WARM_RESTART_TABLE|neighsyncd")
        .query_async(&mut state)
        .await
        .unwrap();
    assert_eq!(t.get("restore_count").map(String::as_str), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_sets_the_flag_anyway() {
    require_lab("timeout_sets_the_flag_anyway");
    let redis = RedisServer::start();
    let lab = Lab::new();
    let (mut appl, mut state) = (redis.conn(0).await, redis.conn(6).await);
    save(&mut appl, "Ethernet4:10.0.4.2", &lab.peer_mac("p4"), "IPv4").await;
    hset(
        &mut state,
        "WARM_RESTART_ENABLE_TABLE|system",
        "enable",
        "true",
    )
    .await;
    hset(
        &mut state,
        "WARM_RESTART_TABLE|neighsyncd",
        "restore_count",
        "1",
    )
    .await;
    lab.dut.ip("link set Ethernet4 down");
    let (ok, log) = finish(
        restore(&lab, &redis, &["--timeout", "2"]),
        Duration::from_secs(20),
    );
    assert!(ok, "{log}");
    assert!(log.contains("timed out"), "{log}");
    assert_eq!(restored_flag(&mut state).await.as_deref(), Some("true"));
    assert_eq!(kernel_state(&lab, "10.0.4.2"), None);
}

/// Malformed saved entries are skipped, logged and counted; the good ones are restored and the
/// flag is set (one bad entry used to stop the step, and neighsyncd then waited 180 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_saved_entries_are_skipped_not_fatal() {
    require_lab("malformed_saved_entries_are_skipped_not_fatal");
    let redis = RedisServer::start();
    let lab = Lab::new();
    let (mut appl, mut state) = (redis.conn(0).await, redis.conn(6).await);
    save(&mut appl, "Ethernet4:10.0.4.2", &lab.peer_mac("p4"), "IPv4").await;
    save(
        &mut appl,
        "Ethernet4:10.0.4.999",
        "02:00:00:00:00:01",
        "IPv4",
    )
    .await;
    save(&mut appl, "Ethernet4:10.0.4.3", "not-a-mac", "IPv4").await;
    save(&mut appl, "Ethernet4:10.0.4.4", "02:00:00:00:00:04", "IPX").await;
    save(&mut appl, "no-interface", "02:00:00:00:00:05", "IPv4").await;
    for (key, field, value) in [
        ("WARM_RESTART_ENABLE_TABLE|system", "enable", "true"),
        ("WARM_RESTART_TABLE|neighsyncd", "restore_count", "1"),
    ] {
        hset(&mut state, key, field, value).await;
    }
    let (ok, log) = finish(restore(&lab, &redis, &[]), Duration::from_secs(30));
    assert!(ok, "{log}");
    assert_eq!(restored_flag(&mut state).await.as_deref(), Some("true"));
    assert!(
        kernel_state(&lab, "10.0.4.2").is_some(),
        "the good entry is restored: {log}"
    );
    assert_eq!(
        log.matches("malformed APPL_DB NEIGH_TABLE entry skipped")
            .count(),
        4,
        "{log}"
    );
    assert!(log.contains("skipped=4"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swss_only_sets_the_flag_at_once_and_disabled_does_nothing() {
    require_lab("swss_only_sets_the_flag_at_once_and_disabled_does_nothing");
    let redis = RedisServer::start();
    let lab = Lab::new();
    let (mut appl, mut state) = (redis.conn(0).await, redis.conn(6).await);
    save(&mut appl, "Ethernet0:10.0.0.2", &lab.peer_mac("p0"), "IPv4").await;
    lab.dut.ip("neigh flush all");
    // Disabled: nothing at all.
    let (ok, log) = finish(restore(&lab, &redis, &[]), Duration::from_secs(10));
    assert!(ok, "{log}");
    assert!(log.contains("skipped as warm restart not enabled"), "{log}");
    assert_eq!(restored_flag(&mut state).await, None);
    // swss-only: flag at once, kernel untouched.
    hset(
        &mut state,
        "WARM_RESTART_ENABLE_TABLE|swss",
        "enable",
        "true",
    )
    .await;
    hset(
        &mut state,
        "WARM_RESTART_TABLE|neighsyncd",
        "restore_count",
        "2",
    )
    .await;
    let (ok, log) = finish(restore(&lab, &redis, &[]), Duration::from_secs(10));
    assert!(ok, "{log}");
    assert_eq!(restored_flag(&mut state).await.as_deref(), Some("true"));
    assert_eq!(kernel_state(&lab, "10.0.0.2"), None);
}
