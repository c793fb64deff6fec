//! `cargo xtask demo`: the daemon against a private Redis in a demo namespace, neighbors
//! flowing, APPL_DB printed as orchagent sees it.

use std::process::Command;
use std::time::Duration;

use neighsyncd_tests::daemon::Daemon;
use neighsyncd_tests::kernel::Table;
use neighsyncd_tests::netns::Lab;
use neighsyncd_tests::orchagent::Orchagent;
use neighsyncd_tests::redis_server::RedisServer;

pub fn run(keep: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        neighsyncd_tests::lab_missing().is_none(),
        "the demo needs root, iproute2 and redis-server (see README: scripts/setup.sh)"
    );
    crate::run(Command::new("cargo").args(["build", "-p", "neighsyncd", "--bins"]))?;
    // SAFETY: still single-threaded (the runtime starts below); nothing reads the environment concurrently.
    unsafe {
        std::env::set_var(
            "NEIGHSYNCD_BIN",
            crate::root().join("target/debug/neighsyncd"),
        )
    };
    unsafe { std::env::set_var("NEIGHSYNCD_TEST_LOG", "info") };
    tokio::runtime::Runtime::new()?.block_on(demo(keep))
}

fn print(t: &Table) {
    println!("{:<28} {:<19} family", "NEIGH_TABLE key", "neigh");
    for (k, v) in t {
        println!(
            "{:<28} {:<19} {}",
            k,
            v.get("neigh").map(String::as_str).unwrap_or("-"),
            v.get("family").map(String::as_str).unwrap_or("-")
        );
    }
}

async fn demo(keep: bool) -> anyhow::Result<()> {
    let redis = RedisServer::start();
    let lab = Lab::new();
    println!(
        "demo namespace {} (peer {}), redis {}",
        lab.dut.name(),
        lab.peer.name(),
        redis.url()
    );
    let d = Daemon::start(&lab.dut, &redis, &["--source", "auto"]);
    d.wait_ready(&lab.dut).await;
    println!("neighsyncd is ready (pid {}); making neighbors:", d.pid());
    for addr in ["10.0.0.2", "2000::2", "10.0.4.2", "192.168.0.2", "fc00::2"] {
        println!("  ping {addr}");
        lab.ping(addr);
    }
    lab.dut
        .ip("neigh add 10.0.0.50 lladdr 02:00:00:00:00:50 dev Ethernet0 nud permanent");
    lab.dut
        .ip("neigh add fe80::50 lladdr 02:00:00:00:00:51 dev Ethernet0 nud permanent");
    println!("  ip neigh add 10.0.0.50 (permanent) and fe80::50 (link-local: skipped by default)");
    let mut orch = Orchagent::new(redis.conn(0).await);
    // The five pinged neighbors and 10.0.0.50; the link-local one is skipped.
    let want = [
        "Ethernet0:10.0.0.2",
        "Ethernet0:2000::2",
        "Ethernet4:10.0.4.2",
        "Vlan1000:192.168.0.2",
        "Vlan1000:fc00::2",
        "Ethernet0:10.0.0.50",
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut table = orch.sync().await;
    while !want.iter().all(|k| table.contains_key(*k)) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        table = orch.sync().await;
    }
    println!("\nAPPL_DB NEIGH_TABLE (popped like orchagent):");
    print(&table);
    let missing: Vec<&str> = want
        .into_iter()
        .filter(|k| !table.contains_key(*k))
        .collect();
    anyhow::ensure!(
        missing.is_empty() && !table.contains_key("Ethernet0:fe80::50"),
        "APPL_DB is not what the demo expects: missing {missing:?}"
    );
    println!("\nkernel (ip neigh show):\n{}", lab.dut.ip("neigh show"));
    if keep {
        println!(
            "watching; Ctrl-C to stop (try: ip -n {} neigh add ...)",
            lab.dut.name()
        );
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    let t = orch.sync().await;
                    if t != table {
                        println!();
                        print(&t);
                        table = t;
                    }
                }
            }
        }
    }
    println!("\nmetrics excerpt:");
    let (_, body) = lab
        .dut
        .http_get(neighsyncd_tests::daemon::METRICS_PORT, "/metrics")
        .map_err(anyhow::Error::msg)?;
    for l in body.lines().filter(|l| {
        l.starts_with("neighsyncd_appdb_operations_total")
            || l.starts_with("neighsyncd_rule_decisions_total")
            || l.starts_with("neighsyncd_source_active")
    }) {
        println!("  {l}");
    }
    Ok(())
}
