//! Never losing an event: netlink overruns and Redis restarts in the middle of bursts.

use std::fmt::Write;
use std::time::Duration;

use neighsyncd_tests::daemon::Daemon;
use neighsyncd_tests::netns::Lab;
use neighsyncd_tests::orchagent::Orchagent;
use neighsyncd_tests::redis_server::RedisServer;
use neighsyncd_tests::{raise_neigh_limits, require_lab, wait};

fn burst(n: u32, dev: &str, third_octet_base: u32) -> String {
    let mut s = String::new();
    for i in 0..n {
        let (a, b) = (third_octet_base + i / 250, i % 250 + 2);
        let _ = writeln!(
            s,
            "neigh add 10.{}.{}.{} lladdr 02:00:{:02x}:{:02x}:{:02x}:{:02x} dev {dev} nud permanent",
            100 + a / 256,
            a % 256,
            b,
            (i >> 24) & 0xff,
            (i >> 16) & 0xff,
            (i >> 8) & 0xff,
            i & 0xff
        );
    }
    s
}

async fn assert_converges(orch: &mut Orchagent, lab: &Lab, timeout: Duration) {
    wait::appl_db_equals_kernel("APPL_DB equals the kernel", orch, &lab.dut, timeout).await;
}

/// A 50k burst into a 4 KiB event buffer (netlink) or ring (eBPF): events are lost by the
/// thousand, and APPL_DB must still end up equal to the kernel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrun_resyncs_to_the_kernel_table() {
    require_lab("overrun_resyncs_to_the_kernel_table");
    raise_neigh_limits(200_000);
    let redis = RedisServer::start();
    let lab = Lab::new();
    // Routes so that 10.100.0.0/14 is on-link on Ethernet0.
    lab.dut.ip("addr add 10.100.0.1/14 dev Ethernet0");
    let source = neighsyncd_tests::test_source();
    let (small_buffer, cause) = match source {
        "netlink" => ("--netlink-rcvbuf", "netlink_overrun"),
        _ => ("--ebpf-ring-bytes", "ringbuf_overflow"),
    };
    let d = Daemon::start(
        &lab.dut,
        &redis,
        &["--source", source, small_buffer, "4096"],
    );
    d.wait_ready(&lab.dut).await;
    let mut orch = Orchagent::new(redis.conn(0).await);
    lab.dut.batch(&burst(50_000, "Ethernet0", 0));
    assert_converges(&mut orch, &lab, Duration::from_secs(120)).await;
    let overruns = d.metric(
        &lab.dut,
        "neighsyncd_resyncs_total",
        &format!("cause=\"{cause}\""),
    );
    assert!(
        overruns >= 1.0,
        "no {cause} resync counted; a 4 KiB buffer cannot hold a 50k burst"
    );
    assert_eq!(orch.sync().await.len(), 50_000);
    // Deletes in a burst too (`nud all`: a plain flush leaves PERMANENT entries alone).
    lab.dut.ip("neigh flush dev Ethernet0 nud all");
    assert_converges(&mut orch, &lab, Duration::from_secs(120)).await;
    assert_eq!(orch.sync().await.len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_mid_burst_loses_nothing() {
    require_lab("redis_restart_mid_burst_loses_nothing");
    raise_neigh_limits(200_000);
    let mut redis = RedisServer::start();
    let lab = Lab::new();
    lab.dut.ip("addr add 10.100.0.1/14 dev Ethernet4");
    let d = Daemon::start(&lab.dut, &redis, &[]);
    d.wait_ready(&lab.dut).await;
    let ns = lab.dut.name().to_string();
    let first = burst(10_000, "Ethernet4", 0);
    let second = burst(10_000, "Ethernet4", 40);
    let feeder = std::thread::spawn(move || {
        let run = |text: &str| {
            let mut f = tempfile::NamedTempFile::new().unwrap();
            std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
            let st = std::process::Command::new("ip")
                .args(["-n", &ns, "-batch"])
                .arg(f.path())
                .status()
                .unwrap();
            assert!(st.success());
        };
        run(&first);
        run(&second);
    });
    // Kill Redis while the burst is being written.
    let mut conn = redis.conn(0).await;
    wait::until("writes started", Duration::from_secs(30), async || {
        let n: usize = redis::cmd("SCARD")
            .arg("NEIGH_TABLE_KEY_SET")
            .query_async(&mut conn)
            .await
            .unwrap_or(0);
        if n > 0 {
            Ok(())
        } else {
            Err("no writes yet".into())
        }
    })
    .await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(300)).await; // Redis stays down a while: not a synchronisation.
    redis.restart();
    feeder.join().unwrap();
    let mut orch = Orchagent::new(redis.conn(0).await);
    assert_converges(&mut orch, &lab, Duration::from_secs(60)).await;
    assert!(d.metric(&lab.dut, "neighsyncd_redis_reconnects_total", "") >= 1.0);
    // And it keeps working afterwards.
    lab.dut.ip("neigh del 10.100.0.2 dev Ethernet4");
    assert_converges(&mut orch, &lab, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_audit_corrects_appl_db_drift_and_counts_it() {
    require_lab("periodic_audit_corrects_appl_db_drift_and_counts_it");
    let redis = RedisServer::start();
    let lab = Lab::new();
    for i in 2..6 {
        lab.dut.ip(&format!(
            "neigh add 10.0.0.{i} lladdr 02:00:00:00:00:0{i} dev Ethernet0 nud permanent"
        ));
    }
    let d = Daemon::start(&lab.dut, &redis, &["--audit-interval", "1"]);
    d.wait_ready(&lab.dut).await;
    let mut orch = Orchagent::new(redis.conn(0).await);
    assert_converges(&mut orch, &lab, Duration::from_secs(10)).await;
    // Someone deletes one entry and corrupts another behind the daemon's back.
    let mut c = redis.conn(0).await;
    let _: () = redis::cmd("DEL")
        .arg("NEIGH_TABLE:Ethernet0:10.0.0.2")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg("NEIGH_TABLE:Ethernet0:10.0.0.3")
        .arg("neigh")
        .arg("02:de:ad:00:00:00")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg("NEIGH_TABLE:Ethernet0:10.9.9.9")
        .arg("neigh")
        .arg("02:de:ad:00:00:01")
        .arg("family")
        .arg("IPv4")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_converges(&mut orch, &lab, Duration::from_secs(15)).await;
    let corrected = d.metric(
        &lab.dut,
        "neighsyncd_resync_corrections_total",
        "side=\"appl_db\"",
    );
    assert!(corrected >= 3.0, "corrections counted: {corrected}");
    assert!(d.metric(&lab.dut, "neighsyncd_resyncs_total", "cause=\"audit\"") >= 1.0);
}

/// Redis restarts (its data gone) while the daemon has nothing to write: the daemon notices
/// through its idle connection and writes APPL_DB again. (Found by the chaos suite: only a
/// failed write used to reveal the restart, so an idle daemon left APPL_DB empty.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_while_idle_is_noticed_and_repaired() {
    require_lab("redis_restart_while_idle_is_noticed_and_repaired");
    let mut redis = RedisServer::start();
    let lab = Lab::new();
    for i in 2..6 {
        lab.dut.ip(&format!(
            "neigh add 10.0.0.{i} lladdr 02:00:00:00:00:0{i} dev Ethernet0 nud permanent"
        ));
    }
    let d = Daemon::start(&lab.dut, &redis, &[]);
    d.wait_ready(&lab.dut).await;
    let mut orch = Orchagent::new(redis.conn(0).await);
    assert_converges(&mut orch, &lab, Duration::from_secs(10)).await;
    redis.restart();
    let mut orch = Orchagent::new(redis.conn(0).await);
    assert_converges(&mut orch, &lab, Duration::from_secs(15)).await;
    assert_eq!(orch.sync().await.len(), 4);
    assert!(d.metric(&lab.dut, "neighsyncd_redis_reconnects_total", "") >= 1.0);
}

/// Redis stops answering with a write out (SIGSTOP: the round trip hangs until its 10 s
/// timeout) while the kernel keeps changing: the daemon keeps taking the kernel's events in
/// meanwhile (they land in its state, not in the sources' queues, where a burst would
/// overflow the ring or the socket), and writes the latest of each key once Redis answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_taken_in_while_a_write_is_out() {
    require_lab("events_are_taken_in_while_a_write_is_out");
    let redis = RedisServer::start();
    let lab = Lab::new();
    lab.dut.ip("addr add 10.100.0.1/14 dev Ethernet0");
    let source = neighsyncd_tests::test_source();
    let d = Daemon::start(&lab.dut, &redis, &["--source", source]);
    d.wait_ready(&lab.dut).await;
    let mut orch = Orchagent::new(redis.conn(0).await);
    let new_events = || d.metric(&lab.dut, "neighsyncd_events_total", "kind=\"new\"");
    let before = new_events();
    redis.pause();
    // The first event's write goes out and hangs; the rest arrive behind it.
    lab.dut
        .ip("neigh add 10.100.200.2 lladdr 02:00:00:00:99:02 dev Ethernet0 nud permanent");
    lab.dut.batch(&burst(2_000, "Ethernet0", 0));
    // Well within the round trip's 10 s timeout: a loop that waited for the answer would
    // not have taken any of them in yet.
    wait::until("the burst taken in", Duration::from_secs(8), async || {
        let taken = new_events() - before;
        if taken >= 2_001.0 {
            Ok(())
        } else {
            Err(format!("{taken} of 2001 events taken in"))
        }
    })
    .await;
    redis.resume();
    assert_converges(&mut orch, &lab, Duration::from_secs(30)).await;
    assert_eq!(orch.sync().await.len(), 2_001);
    assert_eq!(
        d.metric(&lab.dut, "neighsyncd_redis_reconnects_total", ""),
        0.0,
        "the write was answered, not timed out"
    );
}
