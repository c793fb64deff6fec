//! The eBPF source verifies itself: a program that reads any struct offset wrong never writes a
//! key (it is caught by the canary neighbor before a record reaches the pipeline), `auto` falls
//! back to rtnetlink and says why, `ebpf` refuses to start; a program that goes silent later is
//! caught by the watchdog.

use std::time::Duration;

use neighsyncd_tests::daemon::Daemon;
use neighsyncd_tests::netns::Lab;
use neighsyncd_tests::orchagent::Orchagent;
use neighsyncd_tests::redis_server::RedisServer;
use neighsyncd_tests::{require_lab, wait};

/// Every offset the program reads (neighsyncd_common::Offsets).
const FIELDS: [&str; 11] = [
    "neigh_tbl",
    "neigh_dev",
    "neigh_primary_key",
    "neigh_ha",
    "neigh_nud_state",
    "neigh_flags",
    "tbl_family",
    "dev_ifindex",
    "dev_addr_len",
    "dev_nd_net",
    "net_ns_inum",
];

/// With one offset read a byte off (and with the namespace filter matching nothing), `auto`
/// ends up on rtnetlink, says why, and APPL_DB is exactly the kernel's: nothing the broken
/// program read was written.
async fn falls_back_cleanly(fault: String) {
    let redis = RedisServer::start();
    let lab = Lab::new();
    // Neighbors before and after the start: the broken program sees the later ones.
    lab.dut
        .ip("neigh add 10.0.0.5 lladdr 02:00:00:00:00:05 dev Ethernet0 nud permanent");
    let d = Daemon::start_with_env(
        &lab.dut,
        &redis,
        &["--source", "auto"],
        "neighsyncd=debug",
        &[("NEIGHSYNCD_FAULT", fault.as_str())],
    );
    d.wait_ready(&lab.dut).await;
    lab.dut
        .ip("neigh add 2000::6 lladdr 02:00:00:00:00:06 dev Ethernet0 nud reachable");
    lab.dut
        .ip("neigh replace 10.0.0.5 lladdr 02:00:00:00:00:55 dev Ethernet0 nud permanent");
    let mut orch = Orchagent::new(redis.conn(0).await);
    wait::appl_db_equals_kernel(
        &format!("{fault}: APPL_DB equals the kernel"),
        &mut orch,
        &lab.dut,
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(
        d.metric(
            &lab.dut,
            "neighsyncd_source_active",
            "reason=\"ebpf_verification_failed\""
        ),
        1.0,
        "{fault}: not on rtnetlink; log:\n{}",
        d.tail()
    );
    assert!(
        d.log().contains("the eBPF program failed its self-check"),
        "{fault}: the log says why"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_wrong_offset_is_caught_before_a_key_is_written() {
    require_lab("any_wrong_offset_is_caught_before_a_key_is_written");
    let mut runs: Vec<_> = FIELDS
        .iter()
        .map(|f| falls_back_cleanly(format!("ebpf_offset={f}")))
        .collect();
    runs.push(falls_back_cleanly("ebpf_silent".into()));
    futures::future::join_all(runs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_ebpf_means_ebpf_or_a_clear_failure() {
    require_lab("source_ebpf_means_ebpf_or_a_clear_failure");
    let redis = RedisServer::start();
    let lab = Lab::new();
    let mut d = Daemon::start_with_env(
        &lab.dut,
        &redis,
        &["--source", "ebpf"],
        "neighsyncd=debug",
        &[("NEIGHSYNCD_FAULT", "ebpf_offset=neigh_ha")],
    );
    let status = d
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("still running; log:\n{}", d.tail()));
    assert!(!status.success(), "{status}");
    let log = d.log();
    assert!(
        log.contains("--source ebpf: the eBPF program failed its self-check")
            && log.contains("link-layer address"),
        "the error names what disagreed: {log}"
    );
    assert!(!log.contains("APPL_DB batch written"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_goes_silent_is_caught_by_the_watchdog() {
    require_lab("a_program_that_goes_silent_is_caught_by_the_watchdog");
    let redis = RedisServer::start();
    let lab = Lab::new();
    // The consumer stops reading the ring after 2 s: from there on, nothing comes.
    let d = Daemon::start_with_env(
        &lab.dut,
        &redis,
        &["--source", "auto", "--ebpf-watchdog", "2"],
        "neighsyncd=debug",
        &[("NEIGHSYNCD_FAULT", "ebpf_stall_after_secs=2")],
    );
    d.wait_ready(&lab.dut).await;
    wait::until(
        "the watchdog falls back",
        Duration::from_secs(20),
        async || {
            if d.metric(
                &lab.dut,
                "neighsyncd_source_active",
                "reason=\"ebpf_consumer_failed\"",
            ) == 1.0
            {
                Ok(())
            } else {
                Err(d.tail())
            }
        },
    )
    .await;
    assert!(d.log().contains("reported nothing for the canary neighbor"));
    lab.dut
        .ip("neigh add 10.0.0.7 lladdr 02:00:00:00:00:07 dev Ethernet0 nud permanent");
    let mut orch = Orchagent::new(redis.conn(0).await);
    wait::appl_db_equals_kernel(
        "neighbors flow over rtnetlink",
        &mut orch,
        &lab.dut,
        Duration::from_secs(10),
    )
    .await;
}
