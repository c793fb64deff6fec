//! Nothing dies silently: a source that fails is restarted, replaced, or stops the daemon with
//! an error (never exit 0 with neighbor sync dead); a management listener that cannot bind
//! never stops neighbor sync; shutdown joins every task.

use std::fmt::Write as _;
use std::time::Duration;

use neighsyncd_tests::daemon::{Daemon, METRICS_PORT};
use neighsyncd_tests::netns::Lab;
use neighsyncd_tests::orchagent::Orchagent;
use neighsyncd_tests::redis_server::RedisServer;
use neighsyncd_tests::{require_lab, wait};

fn adds(n: u32, first: u32) -> String {
    let mut s = String::new();
    for i in first..first + n {
        let _ = writeln!(
            s,
            "neigh add 10.0.{}.{} lladdr 02:00:00:00:{:02x}:{:02x} dev Ethernet0 nud permanent",
            i / 250,
            i % 250 + 2,
            i >> 8,
            i & 0xff
        );
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_netlink_source_is_restarted_and_resynchronised() {
    require_lab("a_failed_netlink_source_is_restarted_and_resynchronised");
    let redis = RedisServer::start();
    let lab = Lab::new();
    lab.dut.ip("addr add 10.0.0.1/16 dev Ethernet0");
    let d = Daemon::start_with_env(
        &lab.dut,
        &redis,
        &["--source", "netlink"],
        "neighsyncd=debug",
        &[("NEIGHSYNCD_FAULT", "source_exit_after=300")],
    );
    d.wait_ready(&lab.dut).await;
    // 700 live events: the source dies twice on the way.
    lab.dut.batch(&adds(700, 0));
    let mut orch = Orchagent::new(redis.conn(0).await);
    wait::appl_db_equals_kernel(
        "APPL_DB equals the kernel",
        &mut orch,
        &lab.dut,
        Duration::from_secs(30),
    )
    .await;
    let restarts = d.metric(
        &lab.dut,
        "neighsyncd_source_failures_total",
        "action=\"restarted\"",
    );
    assert!(restarts >= 1.0, "no restart counted; log:\n{}", d.tail());
    assert!(
        d.metric(
            &lab.dut,
            "neighsyncd_resyncs_total",
            "cause=\"source_restart\""
        ) >= 1.0
    );
    assert!(
        d.log()
            .contains("the rtnetlink source failed; restarting it")
    );
    let (code, _) = lab.dut.http_get(METRICS_PORT, "/ready").unwrap();
    assert_eq!(code, 200, "still ready after restarts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_netlink_source_that_keeps_failing_stops_the_daemon_with_an_error() {
    require_lab("a_netlink_source_that_keeps_failing_stops_the_daemon_with_an_error");
    let redis = RedisServer::start();
    let lab = Lab::new();
    lab.dut.ip("addr add 10.0.0.1/16 dev Ethernet0");
    let mut d = Daemon::start_with_env(
        &lab.dut,
        &redis,
        &["--source", "netlink"],
        "neighsyncd=debug",
        &[("NEIGHSYNCD_FAULT", "source_exit_after=5")],
    );
    d.wait_ready(&lab.dut).await;
    // Keep events coming until the restart budget is spent.
    let mut first = 0;
    let status = loop {
        lab.dut.batch(&adds(20, first));
        first += 20;
        if let Some(st) = d.wait_exit(Duration::from_millis(300)) {
            break st;
        }
        assert!(first < 20_000, "still running; log:\n{}", d.tail());
    };
    assert!(!status.success(), "exit status {status}");
    let log = d.log();
    assert!(log.contains("keeps failing; giving up"), "{log}");
    assert!(
        log.contains("the rtnetlink source failed 5 times"),
        "the error names the cause: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_ebpf_consumer_falls_back_to_netlink_with_source_auto() {
    require_lab("a_dead_ebpf_consumer_falls_back_to_netlink_with_source_auto");
    let redis = RedisServer::start();
    let lab = Lab::new();
    lab.dut.ip("addr add 10.0.0.1/16 dev Ethernet0");
    let d = Daemon::start_with_env(
        &lab.dut,
        &redis,
        &["--source", "auto"],
        "neighsyncd=debug",
        &[("NEIGHSYNCD_FAULT", "ebpf_consumer_exit_after=50")],
    );
    d.wait_ready(&lab.dut).await;
    lab.dut.batch(&adds(300, 0));
    let mut orch = Orchagent::new(redis.conn(0).await);
    wait::appl_db_equals_kernel(
        "APPL_DB equals the kernel",
        &mut orch,
        &lab.dut,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        d.metric(
            &lab.dut,
            "neighsyncd_source_active",
            "reason=\"ebpf_consumer_failed\""
        ),
        1.0,
        "log:\n{}",
        d.tail()
    );
    assert_eq!(
        d.metric(
            &lab.dut,
            "neighsyncd_source_failures_total",
            "action=\"fell_back\""
        ),
        1.0
    );
    // Events keep flowing over rtnetlink.
    lab.dut.batch(&adds(100, 1000));
    wait::appl_db_equals_kernel(
        "after the fallback",
        &mut orch,
        &lab.dut,
        Duration::from_secs(30),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_ebpf_consumer_stops_the_daemon_with_source_ebpf() {
    require_lab("a_dead_ebpf_consumer_stops_the_daemon_with_source_ebpf");
    let redis = RedisServer::start();
    let lab = Lab::new();
    lab.dut.ip("addr add 10.0.0.1/16 dev Ethernet0");
    let mut d = Daemon::start_with_env(
        &lab.dut,
        &redis,
        &["--source", "ebpf"],
        "neighsyncd=debug",
        &[("NEIGHSYNCD_FAULT", "ebpf_consumer_exit_after=20")],
    );
    d.wait_ready(&lab.dut).await;
    lab.dut.batch(&adds(100, 0));
    let status = d
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("still running; log:\n{}", d.tail()));
    assert!(!status.success(), "exit status {status}");
    assert!(
        d.log().contains("the eBPF source failed"),
        "the error says why: {}",
        d.tail()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_api_port_never_stops_neighbor_sync_and_is_retried() {
    require_lab("a_taken_api_port_never_stops_neighbor_sync_and_is_retried");
    let redis = RedisServer::start();
    let lab = Lab::new();
    // Someone else holds the REST port (as SONiC's telemetry holds 8080).
    let squatter = lab
        .dut
        .run_inside(|| std::net::TcpListener::bind("[::1]:8080"))
        .unwrap()
        .expect("bind [::1]:8080 in the namespace");
    let d = Daemon::start(&lab.dut, &redis, &["--rest-listen", "[::1]:8080"]);
    d.wait_ready(&lab.dut).await;
    lab.dut
        .ip("neigh add 10.0.0.9 lladdr 02:00:00:00:00:09 dev Ethernet0 nud permanent");
    let mut orch = Orchagent::new(redis.conn(0).await);
    wait::appl_db_equals_kernel(
        "neighbors flow without the REST listener",
        &mut orch,
        &lab.dut,
        Duration::from_secs(10),
    )
    .await;
    let (code, body) = lab.dut.http_get(METRICS_PORT, "/ready").unwrap();
    assert_eq!(code, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    let rest = ready["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "rest_listener")
        .unwrap_or_else(|| panic!("no rest_listener check: {body}"));
    assert_eq!(
        (rest["ok"].as_bool(), rest["critical"].as_bool()),
        (Some(false), Some(false))
    );
    assert!(
        d.metric(
            &lab.dut,
            "neighsyncd_listener_failures_total",
            "listener=\"rest_listener\""
        ) >= 1.0
    );
    assert!(d.log().contains("cannot listen; neighbor sync goes on"));
    // The port frees up: the listener comes up on a retry.
    drop(squatter);
    wait::until(
        "the REST listener is up",
        Duration::from_secs(40),
        async || match lab.dut.http(("::1", 8080), "GET", "/api/v1/stats", &[], "") {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_joins_every_task_and_exits_zero() {
    require_lab("sigterm_joins_every_task_and_exits_zero");
    let redis = RedisServer::start();
    let lab = Lab::new();
    let mut d = Daemon::start(&lab.dut, &redis, &[]);
    d.wait_ready(&lab.dut).await;
    let status = d.stop();
    let log = d.log();
    assert!(status.success(), "{status}: {log}");
    assert!(log.contains("neighsyncd stopped"), "{log}");
    assert!(
        !log.contains("did not stop in time") && !log.contains("panicked"),
        "{log}"
    );
}
