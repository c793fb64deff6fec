//! SONiC's warm-restart contract, as SONiC's own neighbor warm-restart test exercises it,
//! counting what orchagent is handed, not only the end state.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use neighsyncd_tests::daemon::Daemon;
use neighsyncd_tests::kernel::entry;
use neighsyncd_tests::netns::Lab;
use neighsyncd_tests::orchagent::Orchagent;
use neighsyncd_tests::redis_server::RedisServer;
use neighsyncd_tests::{require_lab, wait};
use redis::aio::MultiplexedConnection;

const T: Duration = Duration::from_secs(20);

async fn hset(c: &mut MultiplexedConnection, key: &str, f: &str, v: &str) {
    let _: () = redis::cmd("HSET")
        .arg(key)
        .arg(f)
        .arg(v)
        .query_async(c)
        .await
        .unwrap();
}

async fn warm_table(c: &mut MultiplexedConnection) -> BTreeMap<String, String> {
    redis::cmd("HGETALL")
        .arg("WARM_RESTART_TABLE|neighsyncd")
        .query_async(c)
        .await
        .unwrap()
}

async fn wait_state(c: &mut MultiplexedConnection, want: &str, d: &Daemon) {
    let t0 = Instant::now();
    loop {
        let t = warm_table(c).await;
        if t.get("state").map(String::as_str) == Some(want) {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(40),
            "state {want} not reached: {t:?}\n{}",
            d.tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn converged(orch: &mut Orchagent, lab: &Lab) {
    wait::appl_db_equals_kernel("APPL_DB equals the kernel", orch, &lab.dut, T).await;
}

const V4: [&str; 4] = ["10.0.0.11", "10.0.0.12", "10.0.4.13", "10.0.4.14"];
const V6: [&str; 4] = ["2000::11", "2000::12", "2004::13", "2004::14"];

fn dev(ip: &str) -> &'static str {
    if ip.starts_with("10.0.0.") || ip.starts_with("2000::") {
        "Ethernet0"
    } else {
        "Ethernet4"
    }
}

fn add(lab: &Lab, ip: &str, mac_last: u8) {
    lab.dut.ip(&format!(
        "neigh replace {ip} lladdr 02:00:00:00:00:{mac_last:02x} dev {} nud permanent",
        dev(ip)
    ));
}

/// The operations orchagent was handed since `from`, sorted: (key, is_delete).
fn handed(orch: &Orchagent, from: usize) -> Vec<(String, bool)> {
    let mut v: Vec<(String, bool)> = orch.seen[from..]
        .iter()
        .map(|(k, f)| (k.clone(), f.is_empty()))
        .collect();
    v.sort();
    v
}

fn key(ip: &str) -> String {
    format!("{}:{ip}", dev(ip))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sonic_warm_restart_scenario() {
    require_lab("sonic_warm_restart_scenario");
    let redis = RedisServer::start();
    let lab = Lab::new();
    let mut state = redis.conn(6).await;
    let mut cfg = redis.conn(4).await;
    for (i, ip) in V4.iter().chain(V6.iter()).enumerate() {
        add(&lab, ip, i as u8 + 1);
    }
    // Cold start.
    let mut d = Daemon::start(&lab.dut, &redis, &[]);
    d.wait_ready(&lab.dut).await;
    let mut orch = Orchagent::new(redis.conn(0).await);
    converged(&mut orch, &lab).await;
    assert_eq!(orch.sync().await.len(), 8);
    assert_eq!(
        warm_table(&mut state)
            .await
            .get("restore_count")
            .map(String::as_str),
        Some("0")
    );
    assert!(d.stop().success());

    // swss warm restart enabled; restore_neighbors sets the flag at once for swss-only restarts.
    hset(
        &mut state,
        "WARM_RESTART_ENABLE_TABLE|swss",
        "enable",
        "true",
    )
    .await;
    hset(&mut state, "NEIGH_RESTORE_TABLE|Flags", "restored", "true").await;

    // 1. Nothing changed: zero writes.
    let before = orch.writes();
    let mut d = Daemon::start(&lab.dut, &redis, &[]);
    wait_state(&mut state, "reconciled", &d).await;
    converged(&mut orch, &lab).await;
    assert_eq!(
        handed(&orch, before),
        vec![],
        "writes on an unchanged warm restart"
    );
    assert_eq!(
        warm_table(&mut state)
            .await
            .get("restore_count")
            .map(String::as_str),
        Some("1")
    );
    assert!(
        d.log().contains(
            "warmStartTimer is not configured or invalid for docker: swss, app: neighsyncd"
        ),
        "{}",
        d.tail()
    );
    assert!(d.stop().success());

    // 2. Half deleted while down: exactly those deleted.
    let gone = [V4[0], V4[2], V6[1], V6[3]];
    for ip in gone {
        lab.dut.ip(&format!("neigh del {ip} dev {}", dev(ip)));
    }
    let before = orch.writes();
    let mut d = Daemon::start(&lab.dut, &redis, &[]);
    wait_state(&mut state, "reconciled", &d).await;
    converged(&mut orch, &lab).await;
    let mut want: Vec<(String, bool)> = gone.iter().map(|ip| (key(ip), true)).collect();
    want.sort();
    assert_eq!(handed(&orch, before), want);
    assert!(d.log().contains("cache-state:STALE"), "{}", d.tail());
    assert!(d.stop().success());

    // 3. Re-added: exactly those set.
    for ip in gone {
        let i = V4.iter().chain(V6.iter()).position(|x| *x == ip).unwrap();
        add(&lab, ip, i as u8 + 1);
    }
    let before = orch.writes();
    let mut d = Daemon::start(&lab.dut, &redis, &[]);
    wait_state(&mut state, "reconciled", &d).await;
    converged(&mut orch, &lab).await;
    let mut want: Vec<(String, bool)> = gone.iter().map(|ip| (key(ip), false)).collect();
    want.sort();
    assert_eq!(handed(&orch, before), want);
    assert!(d.log().contains("cache-state:NEW"), "{}", d.tail());
    assert_eq!(
        warm_table(&mut state)
            .await
            .get("restore_count")
            .map(String::as_str),
        Some("3")
    );
    assert!(d.stop().success());

    // 4. Timer 15 s; MACs changed and others deleted while down; more changes inside the
    //    window (add-then-delete, delete-then-re-add with the same value) fold to nothing.
    hset(&mut cfg, "WARM_RESTART|swss", "neighsyncd_timer", "15").await;
    add(&lab, V4[1], 0x71);
    add(&lab, V6[0], 0x72);
    lab.dut
        .ip(&format!("neigh del {} dev {}", V4[3], dev(V4[3])));
    lab.dut
        .ip(&format!("neigh del {} dev {}", V6[2], dev(V6[2])));
    let before = orch.writes();
    let mut d = Daemon::start(&lab.dut, &redis, &[]);
    wait_state(&mut state, "restored", &d).await;
    let started = Instant::now();
    lab.dut
        .ip("neigh add 10.0.0.99 lladdr 02:00:00:00:00:99 dev Ethernet0 nud permanent");
    lab.dut.ip("neigh del 10.0.0.99 dev Ethernet0");
    lab.dut
        .ip(&format!("neigh del {} dev {}", V4[0], dev(V4[0])));
    add(&lab, V4[0], 1);
    // Still inside the window: nothing written, state still restored.
    orch.sync().await;
    assert_eq!(
        handed(&orch, before),
        vec![],
        "written before the reconcile timer fired"
    );
    assert_eq!(
        warm_table(&mut state)
            .await
            .get("state")
            .map(String::as_str),
        Some("restored")
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the checks above took too long to be inside the window"
    );
    wait_state(&mut state, "reconciled", &d).await;
    converged(&mut orch, &lab).await;
    let mut want = vec![
        (key(V4[1]), false),
        (key(V6[0]), false),
        (key(V4[3]), true),
        (key(V6[2]), true),
    ];
    want.sort();
    assert_eq!(handed(&orch, before), want);
    let t = orch.sync().await;
    assert_eq!(
        t.get(&key(V4[1])),
        Some(&entry("02:00:00:00:00:71", "IPv4"))
    );
    assert!(
        d.log()
            .contains("Getting warmStartTimer for docker: swss, app: neighsyncd, value: 15"),
        "{}",
        d.tail()
    );
    assert!(d.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_flag_never_set_exits_non_zero() {
    require_lab("restore_flag_never_set_exits_non_zero");
    let redis = RedisServer::start();
    let lab = Lab::new();
    let mut state = redis.conn(6).await;
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
        "4",
    )
    .await;
    let mut d = Daemon::start(&lab.dut, &redis, &["--warm-restore-timeout", "2"]);
    let status = d
        .wait_exit(Duration::from_secs(30))
        .expect("daemon should give up");
    assert!(!status.success(), "exit status {status}");
    assert!(
        d.log().contains("neighbor table restore is not finished"),
        "{}",
        d.tail()
    );
    assert_eq!(
        warm_table(&mut state)
            .await
            .get("restore_count")
            .map(String::as_str),
        Some("5")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_enabled_without_restore_count_is_a_cold_start() {
    require_lab("warm_enabled_without_restore_count_is_a_cold_start");
    let redis = RedisServer::start();
    let lab = Lab::new();
    let mut state = redis.conn(6).await;
    hset(
        &mut state,
        "WARM_RESTART_ENABLE_TABLE|swss",
        "enable",
        "true",
    )
    .await;
    let d = Daemon::start(&lab.dut, &redis, &[]);
    d.wait_ready(&lab.dut).await;
    let t = warm_table(&mut state).await;
    assert_eq!(t.get("restore_count").map(String::as_str), Some("0"));
    assert_eq!(t.get("state"), None);
}
