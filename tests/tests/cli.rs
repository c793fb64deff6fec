//! The binary's command line: help, bad flags and config (exit 2, naming the key), SIGTERM.

use std::process::Command;
use std::time::Duration;

use neighsyncd_tests::daemon::{Daemon, binary};
use neighsyncd_tests::kernel::entry;
use neighsyncd_tests::netns::Lab;
use neighsyncd_tests::orchagent::Orchagent;
use neighsyncd_tests::redis_server::RedisServer;
use neighsyncd_tests::{require_lab, wait};

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(binary())
        .args(args)
        .output()
        .expect("run neighsyncd");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn help_explains_every_option() {
    let (code, text) = run(&["--help"]);
    assert_eq!(code, 0, "{text}");
    for opt in [
        "--config",
        "--redis",
        "--db-config",
        "--source",
        "--netlink-rcvbuf",
        "--batch-max",
        "--audit-interval",
        "--ignore-interfaces",
        "--log-format",
        "--log-level",
        "--metrics-listen",
    ] {
        assert!(text.contains(opt), "--help lacks {opt}:\n{text}");
    }
}

#[test]
fn bad_flags_and_config_exit_2_naming_the_key() {
    let (code, text) = run(&["--no-such-flag"]);
    assert_eq!(code, 2, "{text}");
    let (code, text) = run(&["--redis", "unix:///tmp/x", "--source", "carrier-pigeon"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("source"), "{text}");
    let (code, text) = run(&["--redis", "ftp://x"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("`redis`"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("n.toml");
    std::fs::write(&cfg, "redis = \"unix:///tmp/x\"\nbatch_max = -3\n").unwrap();
    let (code, text) = run(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("batch_max"), "{text}");
    std::fs::write(&cfg, "redis = \"unix:///tmp/x\"\nbatchmax = 3\n").unwrap();
    let (code, text) = run(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("batchmax"), "{text}");
    let (code, text) = run(&["--db-config", "/nonexistent/database_config.json"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("/nonexistent/database_config.json"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_writes_what_is_pending_and_exits_0() {
    require_lab("sigterm_writes_what_is_pending_and_exits_0");
    let redis = RedisServer::start();
    let lab = Lab::new();
    let mut d = Daemon::start(&lab.dut, &redis, &[]);
    d.wait_ready(&lab.dut).await;
    lab.dut
        .ip("neigh add 10.0.0.77 lladdr 02:00:00:00:00:77 dev Ethernet0 nud permanent");
    let mut orch = Orchagent::new(redis.conn(0).await);
    wait::until("neighbor written", Duration::from_secs(10), async || {
        let t = orch.sync().await;
        if t.get("Ethernet0:10.0.0.77") == Some(&entry("02:00:00:00:00:77", "IPv4")) {
            Ok(())
        } else {
            Err(format!("{t:?}"))
        }
    })
    .await;
    let status = d.stop();
    assert!(status.success(), "exit status {status}; log:\n{}", d.log());
    assert!(d.log().contains("SIGTERM"), "{}", d.log());
}
