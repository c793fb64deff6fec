//! Metrics, health, logs and the deployment files, against a running daemon.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use neighsyncd_tests::daemon::{Daemon, METRICS_PORT, binary};
use neighsyncd_tests::netns::Lab;
use neighsyncd_tests::redis_server::RedisServer;
use neighsyncd_tests::root;
use neighsyncd_tests::{require_lab, wait};

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_with_kernel_events_and_ready_follows_redis() {
    require_lab("counters_move_with_kernel_events_and_ready_follows_redis");
    let mut redis = RedisServer::start();
    let lab = Lab::new();
    let d = Daemon::start(&lab.dut, &redis, &[]);
    d.wait_ready(&lab.dut).await;
    let m = |name: &str, labels: &str| d.metric(&lab.dut, name, labels);
    let live = format!(
        "kind=\"new\",source=\"{}\"",
        neighsyncd_tests::test_source()
    );
    let new0 = m("neighsyncd_events_total", &live);
    let sets0 = m(
        "neighsyncd_appdb_operations_total",
        "op=\"set\",table=\"NEIGH_TABLE\"",
    );
    for i in 2..7 {
        lab.dut.ip(&format!(
            "neigh add 10.0.0.{i} lladdr 02:00:00:00:00:0{i} dev Ethernet0 nud permanent"
        ));
    }
    lab.dut
        .ip("neigh add 10.0.0.9 lladdr 02:00:00:00:00:09 dev Ethernet0 nud noarp");
    wait::until("counters moved", T, async || {
        let (new, sets) = (
            m("neighsyncd_events_total", &live),
            m(
                "neighsyncd_appdb_operations_total",
                "op=\"set\",table=\"NEIGH_TABLE\"",
            ),
        );
        let skips = m(
            "neighsyncd_rule_skips_total",
            "reason=\"noarp_not_ext_learned\"",
        );
        let ipv4 = m("neighsyncd_neighbors", "family=\"IPv4\"");
        let eth0 = m("neighsyncd_interface_neighbors", "interface=\"Ethernet0\"");
        if new - new0 >= 6.0 && sets - sets0 == 5.0 && skips >= 1.0 && ipv4 == 5.0 && eth0 == 5.0 {
            Ok(())
        } else {
            Err(format!(
                "new +{}, sets +{}, skips {skips}, IPv4 {ipv4}, Ethernet0 {eth0}",
                new - new0,
                sets - sets0
            ))
        }
    })
    .await;
    assert!(m("neighsyncd_event_to_appdb_seconds_count", "") >= 5.0);
    assert!(m("neighsyncd_redis_roundtrip_seconds_count", "") >= 1.0);
    let active = format!("source=\"{}\"", neighsyncd_tests::test_source());
    assert_eq!(m("neighsyncd_source_active", &active), 1.0);
    assert_eq!(m("neighsyncd_build_info", ""), 1.0);
    // The kernel's own tables, as the kernel says (the tables are the host's: at least ours).
    let thresh3 = |fam: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/{fam}/neigh/default/gc_thresh3"))
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(-1.0)
    };
    wait::until("kernel table metrics", T, async || {
        let (v4, gc3) = (
            m("neighsyncd_kernel_neigh_entries", "family=\"IPv4\""),
            m(
                "neighsyncd_kernel_neigh_gc_thresh",
                "family=\"IPv4\",level=\"3\"",
            ),
        );
        if v4 >= 6.0 && gc3 == thresh3("ipv4") {
            Ok(())
        } else {
            Err(format!(
                "IPv4 entries {v4}, gc_thresh3 {gc3} (sysctl {})",
                thresh3("ipv4")
            ))
        }
    })
    .await;
    let (code, body) = lab.dut.http_get(METRICS_PORT, "/health").unwrap();
    assert_eq!(code, 200, "{body}");

    // Redis goes away: /ready says 503 and names the check; it comes back: 200.
    redis.kill();
    lab.dut
        .ip("neigh add 10.0.0.20 lladdr 02:00:00:00:00:20 dev Ethernet0 nud permanent");
    wait::until("/ready reports Redis down", T, async || {
        match lab.dut.http_get(METRICS_PORT, "/ready") {
            Ok((503, body))
                if body.contains("\"failed\":[\"redis\"]") && body.contains("since") =>
            {
                Ok(())
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    redis.restart();
    wait::until(
        "/ready recovers",
        Duration::from_secs(20),
        async || match lab.dut.http_get(METRICS_PORT, "/ready") {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    assert!(m("neighsyncd_redis_reconnects_total", "") >= 1.0);
}

/// Every metric the dashboard and the alert rules name is exported by a running daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_alerts_use_only_exported_metrics() {
    require_lab("dashboard_and_alerts_use_only_exported_metrics");
    let redis = RedisServer::start();
    let lab = Lab::new();
    // With hot standby on (alone, it leads): its metrics are a superset of a single daemon's.
    let d = Daemon::start(&lab.dut, &redis, &["--ha"]);
    d.wait_ready(&lab.dut).await;
    lab.dut
        .ip("neigh add 10.0.0.2 lladdr 02:00:00:00:00:02 dev Ethernet0 nud permanent");
    let mut exported = BTreeSet::new();
    wait::until("a write was made", T, async || {
        let (_, body) = lab
            .dut
            .http_get(METRICS_PORT, "/metrics")
            .map_err(|e| e.to_string())?;
        exported = body
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .map(String::from)
            .collect();
        if exported.contains("neighsyncd_interface_neighbors") {
            Ok(())
        } else {
            Err("no write yet".into())
        }
    })
    .await;
    let mut checked = 0;
    for file in [
        "deploy/grafana/neighsyncd.json",
        "deploy/prometheus/neighsyncd-alerts.yml",
    ] {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("neighsyncd_") {
            let name: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[i + name.len()..];
            checked += 1;
            assert!(
                exported.contains(&name),
                "{file} uses {name}, which the daemon does not export"
            );
        }
    }
    assert!(checked > 20, "too few metric references found: {checked}");
}

/// Every alert rule has a promtool case where it fires and one where it does not.
#[test]
fn every_alert_rule_has_a_firing_and_a_quiet_case() {
    let dir = root().join("deploy/prometheus");
    let rules = std::fs::read_to_string(dir.join("neighsyncd-alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("neighsyncd-alerts.test.yml")).unwrap();
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    let mut missing = Vec::new();
    for name in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        let (mut fires, mut quiet) = (false, false);
        for (i, l) in lines.iter().enumerate() {
            if *l != format!("alertname: {name}") {
                continue;
            }
            match lines.get(i + 1) {
                Some(&"exp_alerts: []") => quiet = true,
                Some(&"exp_alerts:") => fires = true,
                _ => {}
            }
        }
        if !(fires && quiet) {
            missing.push(format!("{name}: fires {fires}, quiet {quiet}"));
        }
    }
    assert!(
        missing.is_empty(),
        "alert rules without both cases:\n{}",
        missing.join("\n")
    );
}

#[test]
fn alert_rules_pass_promtool() {
    neighsyncd_tests::require_tool("promtool", "alert_rules_pass_promtool");
    let dir = root().join("deploy/prometheus");
    for args in [
        ["check", "rules", "neighsyncd-alerts.yml"],
        ["test", "rules", "neighsyncd-alerts.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `unit` (from deploy/, installed as `name`) verifies, and `systemd-analyze security` rates it
/// as `doc` states (`rates it **N.N (OK)**`).
fn verify_unit(unit: &str, name: &str, doc: &str) {
    // The unit names the installed path; verify a copy pointing at the built binary.
    let text = std::fs::read_to_string(root().join(unit)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(
        &path,
        text.replace("/usr/bin/neighsyncd", binary().to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{unit}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split(&format!("exposure level for {name}: "))
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no exposure score in:\n{text}"));
    // The docs state the score: it must be the one systemd gives.
    let stated: f64 = std::fs::read_to_string(root().join(doc))
        .unwrap()
        .split("rates it **")
        .nth(1)
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{doc} states the exposure score as `rates it **N.N (OK)**`"));
    assert_eq!(
        score, stated,
        "systemd-analyze security rates {unit} {score}; {doc} says {stated}"
    );
}

#[test]
fn systemd_unit_verifies() {
    neighsyncd_tests::require_tool("systemd-analyze", "systemd_unit_verifies");
    verify_unit(
        "deploy/neighsyncd.service",
        "neighsyncd.service",
        "docs/DEPLOYMENT.md",
    );
    // The hot-standby template, as an instance (its name is the metrics port).
    verify_unit(
        "deploy/neighsyncd-ha@.service",
        "neighsyncd-ha@9091.service",
        "docs/UPGRADE.md",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_level_follows_config_db_without_restart() {
    require_lab("log_level_follows_config_db_without_restart");
    let redis = RedisServer::start();
    let lab = Lab::new();
    let d = Daemon::start_with_log(&lab.dut, &redis, &[], "info");
    d.wait_ready(&lab.dut).await;
    let mut orch = neighsyncd_tests::orchagent::Orchagent::new(redis.conn(0).await);
    lab.dut
        .ip("neigh add 10.0.0.2 lladdr 02:00:00:00:00:02 dev Ethernet0 nud permanent");
    wait::until("first write", T, async || {
        if orch.sync().await.contains_key("Ethernet0:10.0.0.2") {
            Ok(())
        } else {
            Err("not yet".into())
        }
    })
    .await;
    assert!(
        !d.log().contains("APPL_DB batch written"),
        "debug line at info level"
    );
    let mut cfg = redis.conn(4).await;
    let _: () = redis::cmd("HSET")
        .arg("LOGGER|neighsyncd")
        .arg("LOGLEVEL")
        .arg("DEBUG")
        .query_async(&mut cfg)
        .await
        .unwrap();
    wait::until("level change applied", T, async || {
        if d.log().contains("log level changed from CONFIG_DB") {
            Ok(())
        } else {
            Err(d.tail())
        }
    })
    .await;
    lab.dut
        .ip("neigh add 10.0.0.3 lladdr 02:00:00:00:00:03 dev Ethernet0 nud permanent");
    wait::until("debug lines appear", T, async || {
        if d.log().contains("APPL_DB batch written") {
            Ok(())
        } else {
            Err(d.tail())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_go_to_syslog() {
    require_lab("logs_go_to_syslog");
    let redis = RedisServer::start();
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("log");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _d = Daemon::start(
        &lab.dut,
        &redis,
        &[
            "--log-target",
            "syslog",
            "--syslog-socket",
            sock_path.to_str().unwrap(),
        ],
    );
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a syslog datagram");
    let line = String::from_utf8_lossy(&buf[..n]);
    // <facility daemon (3) * 8 + severity>neighsyncd[pid]: message
    assert!(line.starts_with("<2") || line.starts_with("<3"), "{line}");
    assert!(line.contains(">neighsyncd["), "{line}");
}

/// With `--otlp-endpoint`, spans reach an OTLP/HTTP collector (a fake one in the lab namespace).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_otlp_when_configured() {
    require_lab("spans_are_exported_over_otlp_when_configured");
    let redis = RedisServer::start();
    let lab = Lab::new();
    // The collector listens on the namespace's loopback, where the daemon runs.
    let listener = lab
        .dut
        .run_inside(|| std::net::TcpListener::bind("127.0.0.1:4318"))
        .unwrap()
        .unwrap();
    listener.set_nonblocking(false).unwrap();
    let collector = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 65536];
        // Read the headers and the body the Content-Length announces.
        loop {
            let n = s.read(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            req.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&req).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if body.len() >= len {
                    break;
                }
            }
        }
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        String::from_utf8_lossy(&req).to_string()
    });
    let mut d = Daemon::start(
        &lab.dut,
        &redis,
        &["--otlp-endpoint", "http://127.0.0.1:4318/v1/traces"],
    );
    d.wait_ready(&lab.dut).await;
    lab.dut
        .ip("neigh add 10.0.0.2 lladdr 02:00:00:00:00:02 dev Ethernet0 nud permanent");
    // Spans are batched; shutdown flushes them.
    let mut orch = neighsyncd_tests::orchagent::Orchagent::new(redis.conn(0).await);
    wait::until("written", T, async || {
        if orch.sync().await.contains_key("Ethernet0:10.0.0.2") {
            Ok(())
        } else {
            Err("not yet".into())
        }
    })
    .await;
    assert!(d.stop().success());
    let req = collector.join().unwrap();
    assert!(req.starts_with("POST /v1/traces"), "{req:.300}");
    assert!(req.contains("application/x-protobuf"), "{req:.300}");
    assert!(
        req.contains("appdb_write") || req.contains("appl_db_read_back"),
        "no span names in the export"
    );
}

/// After a restart that has nothing to write (APPL_DB already equals the kernel), the neighbor
/// gauges show what APPL_DB holds, not zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neighbor_gauges_are_right_after_a_restart_with_nothing_to_write() {
    require_lab("neighbor_gauges_are_right_after_a_restart_with_nothing_to_write");
    let redis = RedisServer::start();
    let lab = Lab::new();
    for i in 2..5 {
        lab.dut.ip(&format!(
            "neigh add 10.0.0.{i} lladdr 02:00:00:00:00:0{i} dev Ethernet0 nud permanent"
        ));
    }
    lab.dut
        .ip("neigh add 2000::9 lladdr 02:00:00:00:00:09 dev Ethernet4 nud permanent");
    let mut orch = neighsyncd_tests::orchagent::Orchagent::new(redis.conn(0).await);
    let mut d = Daemon::start(&lab.dut, &redis, &[]);
    d.wait_ready(&lab.dut).await;
    wait::appl_db_equals_kernel("first run", &mut orch, &lab.dut, T).await;
    assert!(d.stop().success());
    let d = Daemon::start(&lab.dut, &redis, &[]);
    d.wait_ready(&lab.dut).await;
    let gauges = |d: &Daemon| {
        (
            d.metric(&lab.dut, "neighsyncd_neighbors", "family=\"IPv4\""),
            d.metric(&lab.dut, "neighsyncd_neighbors", "family=\"IPv6\""),
            d.metric(
                &lab.dut,
                "neighsyncd_interface_neighbors",
                "interface=\"Ethernet0\"",
            ),
            d.metric(
                &lab.dut,
                "neighsyncd_interface_neighbors",
                "interface=\"Ethernet4\"",
            ),
        )
    };
    wait::until("gauges after the restart", T, async || match gauges(&d) {
        (3.0, 1.0, 3.0, 1.0) => Ok(()),
        other => Err(format!("{other:?}")),
    })
    .await;
    assert_eq!(
        d.metric(&lab.dut, "neighsyncd_appdb_operations_total", ""),
        0.0,
        "the restart wrote nothing"
    );
}

/// `profiler = true`: a CPU profile in pprof format, for the API token's holder only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_profile_is_served_to_the_token_holder_only() {
    use pprof::protos::Message;
    require_lab("a_cpu_profile_is_served_to_the_token_holder_only");
    let redis = RedisServer::start();
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let token_arg = token.display().to_string();
    let d = Daemon::start(
        &lab.dut,
        &redis,
        &["--profiler", "true", "--api-token-file", &token_arg],
    );
    d.wait_ready(&lab.dut).await;
    let path = "/debug/pprof/profile?seconds=3";
    let get = |headers: &[(&str, &str)]| {
        lab.dut
            .http_bytes(("127.0.0.1", METRICS_PORT), "GET", path, headers, "", 20)
            .unwrap()
    };
    for headers in [vec![], vec![("Authorization", "Bearer wrong")]] {
        let (code, _) = get(&headers);
        assert_eq!(code, 401, "{headers:?}");
    }
    // Something to sample, for as long as the profile runs (however slowly a loaded machine
    // starts it): neighbors added and deleted in rounds until the answer is in.
    let adds: String = (0..2_000u32)
        .map(|i| {
            format!(
                "neigh replace 10.9.{}.{} lladdr 02:00:00:09:{:02x}:{:02x} dev Ethernet0 nud permanent\n",
                i >> 8,
                i & 255,
                i >> 8,
                i & 255
            )
        })
        .collect();
    let dels: String = (0..2_000u32)
        .map(|i| format!("neigh del 10.9.{}.{} dev Ethernet0\n", i >> 8, i & 255))
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let (ns, stop) = (lab.dut.name().to_string(), stop.clone());
        std::thread::spawn(move || {
            let mut rounds = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for lines in [&adds, &dels] {
                    let mut f = tempfile::NamedTempFile::new().unwrap();
                    std::io::Write::write_all(&mut f, lines.as_bytes()).unwrap();
                    let _ = Command::new("ip")
                        .args(["-n", &ns, "-force", "-batch"])
                        .arg(f.path())
                        .output();
                }
                rounds += 1;
            }
            rounds
        })
    };
    let (code, body) = get(&[("Authorization", "Bearer s3cret")]);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let rounds = churn.join().unwrap();
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert!(rounds > 0, "no churn while the profile ran");
    let profile = pprof::protos::Profile::decode(body.as_slice()).expect("a pprof protobuf");
    assert!(!profile.sample_type.is_empty(), "no sample types");
    assert!(
        !profile.sample.is_empty(),
        "no samples while the daemon worked ({rounds} rounds of 2000 adds and deletes)"
    );
    assert!(
        profile
            .string_table
            .iter()
            .any(|s| s.contains("neighsyncd")),
        "no neighsyncd frame among {} strings",
        profile.string_table.len()
    );
    // Out of range, and no profiler at all without the option.
    let (code, _) = lab
        .dut
        .http_bytes(
            ("127.0.0.1", METRICS_PORT),
            "GET",
            "/debug/pprof/profile?seconds=0",
            &[("Authorization", "Bearer s3cret")],
            "",
            5,
        )
        .unwrap();
    assert_eq!(code, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn there_is_no_profiler_unless_configured() {
    require_lab("there_is_no_profiler_unless_configured");
    let redis = RedisServer::start();
    let lab = Lab::new();
    let d = Daemon::start(&lab.dut, &redis, &[]);
    d.wait_ready(&lab.dut).await;
    let (code, _) = lab
        .dut
        .http_get(METRICS_PORT, "/debug/pprof/profile?seconds=1")
        .unwrap();
    assert_eq!(code, 404);
}
