//! neighsyncctl against a running daemon.

use std::process::Command;
use std::time::Duration;

use neighsyncd_tests::daemon::{Daemon, binary};
use neighsyncd_tests::netns::Lab;
use neighsyncd_tests::redis_server::RedisServer;
use neighsyncd_tests::{require_lab, wait};

/// neighsyncctl inside the lab, talking to the REST API on the daemon's unix socket.
fn ctl(lab: &Lab, api: &str, args: &[&str]) -> (bool, String) {
    let bin = binary().with_file_name("neighsyncctl");
    let out = Command::new("ip")
        .args(["netns", "exec", lab.dut.name()])
        .arg(bin)
        .args(["--api", api])
        .args(args)
        .output()
        .expect("run neighsyncctl");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_stats_resync_health() {
    require_lab("show_stats_resync_health");
    let redis = RedisServer::start();
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "ctl-token").unwrap();
    // A socket directory the daemon has to create (as it creates /run/neighsyncd).
    let socket = dir.path().join("run/rest.sock");
    let listen = format!("unix:{}", socket.display());
    let d = Daemon::start(
        &lab.dut,
        &redis,
        &[
            "--api-token-file",
            token.to_str().unwrap(),
            "--rest-listen",
            &listen,
        ],
    );
    let api = listen.as_str();
    d.wait_ready(&lab.dut).await;
    lab.dut
        .ip("neigh add 10.0.0.5 lladdr 02:00:00:00:00:05 dev Ethernet0 nud permanent");
    wait::until("show lists it", Duration::from_secs(10), async || {
        let (ok, out) = ctl(&lab, api, &["show", "--family", "IPv4"]);
        if ok
            && out.contains("10.0.0.5")
            && out.contains("02:00:00:00:00:05")
            && out.contains("Total number of entries")
        {
            Ok(())
        } else {
            Err(out)
        }
    })
    .await;
    let (ok, out) = ctl(&lab, api, &["show", "--interface", "Ethernet0", "--json"]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|r| r["key"] == "Ethernet0:10.0.0.5")
    );
    let (ok, out) = ctl(&lab, api, &["stats"]);
    assert!(ok && out.contains("neighbors{family=IPv4} 1"), "{out}");
    let (ok, out) = ctl(&lab, api, &["resync"]);
    assert!(!ok && out.contains("401"), "resync without a token: {out}");
    let (ok, out) = ctl(
        &lab,
        api,
        &["--token-file", token.to_str().unwrap(), "resync"],
    );
    assert!(ok && out.contains("resync requested"), "{out}");
    let (ok, out) = ctl(&lab, api, &["--metrics", "http://127.0.0.1:9091", "health"]);
    assert!(ok && out.contains("redis") && out.contains("ok"), "{out}");
}
