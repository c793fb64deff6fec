//! The REST API against a daemon in a lab namespace with a real Redis.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use neighsyncd_tests::daemon::Daemon;
use neighsyncd_tests::netns::Lab;
use neighsyncd_tests::orchagent::Orchagent;
use neighsyncd_tests::redis_server::RedisServer;
use neighsyncd_tests::{raise_neigh_limits, require_lab, wait};
use serde_json::Value;

const API: (&str, u16) = ("::1", 8080);
const T: Duration = Duration::from_secs(10);

fn get(lab: &Lab, path: &str) -> (u16, Value) {
    let (code, body) = lab.dut.http(API, "GET", path, &[], "").unwrap();
    (
        code,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body:.300}")),
    )
}

struct Setup {
    lab: Lab,
    _redis: RedisServer,
    d: Daemon,
    _dir: tempfile::TempDir,
}

async fn setup(extra: &[&str]) -> Setup {
    let redis = RedisServer::start();
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "let-me-in\n").unwrap();
    let mut args = vec!["--api-token-file", token.to_str().unwrap()];
    args.extend_from_slice(extra);
    let d = Daemon::start(&lab.dut, &redis, &args);
    d.wait_ready(&lab.dut).await;
    Setup {
        lab,
        _redis: redis,
        d,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_filters_paging_and_errors() {
    require_lab("reads_filters_paging_and_errors");
    let s = setup(&[]).await;
    let lab = &s.lab;
    lab.dut.batch(
        "neigh add 10.0.0.5 lladdr 02:00:00:00:00:05 dev Ethernet0 nud permanent
neigh add 10.0.0.6 lladdr 02:00:00:00:00:06 dev Ethernet0 nud stale
neigh add 2000::7 lladdr 02:00:00:00:00:07 dev Ethernet0 nud permanent
neigh add 10.0.4.8 lladdr 02:00:00:00:00:08 dev Ethernet4 nud permanent
neigh add fe80::9 lladdr 02:00:00:00:00:09 dev Ethernet0 nud permanent
",
    );
    let mine = [
        "Ethernet0:10.0.0.5",
        "Ethernet0:10.0.0.6",
        "Ethernet0:2000::7",
        "Ethernet4:10.0.4.8",
        "Ethernet0:fe80::9",
    ];
    wait::until("all five in the API", T, async || {
        let (_, v) = get(lab, "/api/v1/neighbors?page_size=1000");
        let recs = v["neighbors"].as_array().cloned().unwrap_or_default();
        let ours: Vec<&Value> = recs
            .iter()
            .filter(|r| mine.contains(&r["key"].as_str().unwrap_or("")))
            .collect();
        let written = ours.iter().filter(|r| r["appl_db_mac"].is_string()).count();
        if ours.len() == 5 && written == 4 {
            Ok(())
        } else {
            Err(format!("{v}"))
        }
    })
    .await;
    let (code, v) = get(lab, "/api/v1/neighbors/Ethernet0/10.0.0.5");
    assert_eq!(code, 200);
    assert_eq!(v["appl_db_mac"], "02:00:00:00:00:05");
    assert_eq!(v["kernel_state"], "PERMANENT");
    assert_eq!(v["family"], "IPv4");
    // The skipped link-local neighbor shows why.
    let (_, v) = get(lab, "/api/v1/neighbors/Ethernet0/fe80::9");
    assert_eq!(v["skip_reason"], "link_local_v6_disabled");
    assert!(v["appl_db_mac"].is_null());
    // Filters (the kernel also holds multicast NOARP entries of its own: they are listed too).
    let keys =
        |path: &str| -> Vec<Value> { get(lab, path).1["neighbors"].as_array().unwrap().clone() };
    let v6 = keys("/api/v1/neighbors?family=IPv6&page_size=1000");
    assert!(v6.iter().all(|r| r["family"] == "IPv6"));
    assert!(v6.iter().any(|r| r["key"] == "Ethernet0:2000::7"));
    assert_eq!(
        keys("/api/v1/neighbors?interface=Ethernet4&family=IPv4").len(),
        1
    );
    let stale = keys("/api/v1/neighbors?state=STALE");
    // Netlink mode knows the exact state; eBPF mode knows it up to its class (docs/API.md).
    let want = match neighsyncd_tests::test_source() {
        "netlink" => "STALE",
        _ => "REACHABLE|STALE|DELAY",
    };
    assert!(
        stale.iter().all(|r| r["kernel_state"] == want)
            && stale.iter().any(|r| r["key"] == "Ethernet0:10.0.0.6"),
        "{stale:?}"
    );
    let e0v4 = keys("/api/v1/neighbors?interface=Ethernet0&family=IPv4");
    assert_eq!(e0v4.len(), 2, "{e0v4:?}");
    // Paging through everything, two at a time: no overlap, nothing missing.
    let all: BTreeSet<String> = keys("/api/v1/neighbors?page_size=1000")
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_string())
        .collect();
    let mut paged = BTreeSet::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &token {
            Some(t) => format!(
                "/api/v1/neighbors?page_size=2&page_token={}",
                t.replace(':', "%3A")
            ),
            None => "/api/v1/neighbors?page_size=2".into(),
        };
        let (_, v) = get(lab, &path);
        pages += 1;
        for r in v["neighbors"].as_array().unwrap() {
            assert!(
                paged.insert(r["key"].as_str().unwrap().to_string()),
                "duplicate {r}"
            );
        }
        match v["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(paged, all);
    assert_eq!(pages, all.len().div_ceil(2));
    // Errors: JSON with a code and a message.
    for (path, code, err) in [
        ("/api/v1/neighbors/Ethernet0/10.0.0.99", 404, "not_found"),
        (
            "/api/v1/neighbors/Ethernet0/not-an-ip",
            400,
            "invalid_argument",
        ),
        ("/api/v1/neighbors?family=IPv5", 400, "invalid_argument"),
        ("/api/v1/neighbors?state=ASLEEP", 400, "invalid_argument"),
        (
            "/api/v1/neighbors?page_size=100000",
            400,
            "invalid_argument",
        ),
        ("/api/v1/neighbors?page_size=-1", 400, "invalid_argument"),
        ("/api/v1/neighbors?colour=blue", 400, "invalid_argument"),
        ("/api/v1/nothing-here", 404, "not_found"),
    ] {
        let (c, v) = get(lab, path);
        assert_eq!((c, v["code"].as_str()), (code, Some(err)), "{path}: {v}");
        assert!(v["message"].is_string(), "{path}: {v}");
    }
    // Stats, config (no token in it), OpenAPI.
    let (_, v) = get(lab, "/api/v1/stats");
    assert_eq!(v["neighbors"]["family=IPv4"], 3.0);
    let (_, v) = get(lab, "/api/v1/config");
    assert_eq!(v["source"], neighsyncd_tests::test_source());
    assert!(!v.to_string().contains("let-me-in"));
    let (_, v) = get(lab, "/api/v1/openapi.json");
    assert!(v["paths"]["/api/v1/neighbors"]["get"].is_object());
    let _ = &s.d;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_needs_the_token_and_closed_reads_too() {
    require_lab("resync_needs_the_token_and_closed_reads_too");
    let s = setup(&["--api-reads-open", "false"]).await;
    let (lab, d) = (&s.lab, &s.d);
    let requested = || d.metric(&lab.dut, "neighsyncd_resyncs_total", "cause=\"requested\"");
    let before = requested();
    for headers in [
        vec![],
        vec![("Authorization", "Bearer wrong")],
        vec![("Authorization", "let-me-in")],
    ] {
        let (code, body) = lab
            .dut
            .http(API, "POST", "/api/v1/resync", &headers, "")
            .unwrap();
        assert_eq!(code, 401, "{headers:?}: {body}");
        assert!(body.contains("unauthenticated"), "{body}");
        // Reads are closed too.
        let (code, _) = lab
            .dut
            .http(API, "GET", "/api/v1/neighbors", &headers, "")
            .unwrap();
        assert_eq!(code, 401);
    }
    assert_eq!(requested(), before, "a refused call changed something");
    let ok = [("Authorization", "Bearer let-me-in")];
    let (code, _) = lab
        .dut
        .http(API, "GET", "/api/v1/neighbors", &ok, "")
        .unwrap();
    assert_eq!(code, 200);
    // A body too large is refused before it is read.
    let big = "x".repeat(70 * 1024);
    let (code, _) = lab
        .dut
        .http(API, "POST", "/api/v1/resync", &ok, &big)
        .unwrap();
    assert_eq!(code, 413);
    let (code, body) = lab
        .dut
        .http(API, "POST", "/api/v1/resync", &ok, "")
        .unwrap();
    assert_eq!(code, 202, "{body}");
    wait::until("resync counted", T, async || {
        if requested() == before + 1.0 {
            Ok(())
        } else {
            Err(format!("{}", requested()))
        }
    })
    .await;
}

fn next(rx: &std::sync::mpsc::Receiver<(String, String)>) -> (String, Value) {
    let (e, d) = rx.recv_timeout(T).expect("an SSE event within 10 s");
    (e, serde_json::from_str(&d).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_give_a_snapshot_then_changes_in_order_and_resume() {
    require_lab("events_give_a_snapshot_then_changes_in_order_and_resume");
    let s = setup(&[]).await;
    let lab = &s.lab;
    lab.dut
        .ip("neigh add 10.0.0.5 lladdr 02:00:00:00:00:05 dev Ethernet0 nud permanent");
    wait::until("first neighbor", T, async || {
        let (c, _) = get(lab, "/api/v1/neighbors/Ethernet0/10.0.0.5");
        if c == 200 { Ok(()) } else { Err(c.to_string()) }
    })
    .await;
    let rx = lab.dut.sse(API, "/api/v1/events?family=IPv4");
    // The snapshot comes in chunks, then its end marker with the resume point.
    let mut snapshot = Vec::new();
    let end = loop {
        let (e, d) = next(&rx);
        match e.as_str() {
            "snapshot" => snapshot.extend(d["neighbors"].as_array().unwrap().clone()),
            "snapshot_end" => break d,
            other => panic!("{other} before the snapshot's end: {d}"),
        }
    };
    let snap_seq = end["seq"].as_u64().unwrap();
    let epoch = end["epoch"].as_str().unwrap().to_string();
    assert_eq!(end["count"].as_u64().unwrap() as usize, snapshot.len());
    assert!(snapshot.iter().any(|r| r["key"] == "Ethernet0:10.0.0.5"));
    lab.dut
        .ip("neigh add 10.0.0.6 lladdr 02:00:00:00:00:06 dev Ethernet0 nud permanent");
    lab.dut
        .ip("neigh add 2000::6 lladdr 02:00:00:00:00:06 dev Ethernet0 nud permanent");
    lab.dut.ip("neigh del 10.0.0.5 dev Ethernet0");
    // Changes in order: 10.0.0.6 appears (kernel, then APPL_DB), 10.0.0.5 goes; IPv6 filtered.
    let mut seen = Vec::new();
    let mut last = snap_seq;
    while !(seen.iter().any(|(k, kind, _): &(String, String, Value)| {
        k == "Ethernet0:10.0.0.5" && kind == "remove"
    })) {
        let (e, c) = next(&rx);
        assert_eq!(e, "change");
        let seq = c["seq"].as_u64().unwrap();
        assert!(seq > last, "out of order: {seq} after {last}");
        last = seq;
        seen.push((
            c["record"]["key"].as_str().unwrap().to_string(),
            c["kind"].as_str().unwrap().to_string(),
            c.clone(),
        ));
    }
    assert!(
        seen.iter().all(|(k, _, _)| !k.contains("2000::")),
        "filter leaked: {seen:?}"
    );
    assert!(seen.iter().any(|(k, kind, c)| k == "Ethernet0:10.0.0.6"
        && kind == "upsert"
        && c["record"]["appl_db_mac"] == "02:00:00:00:00:06"));
    // Resume from the snapshot's end: the same changes, without a snapshot.
    let rx2 = lab.dut.sse(
        API,
        &format!("/api/v1/events?family=IPv4&resume_from={epoch}:{snap_seq}"),
    );
    let mut resumed = Vec::new();
    while resumed.len() < seen.len() {
        let (e, c) = next(&rx2);
        assert_eq!(e, "change", "resume must not start with a snapshot");
        resumed.push(c["seq"].as_u64().unwrap());
    }
    let want: Vec<u64> = seen
        .iter()
        .map(|(_, _, c)| c["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(resumed, want);
    // A resume point of another instance (a restarted daemon counts from 0 again) means
    // nothing here: a snapshot, not an incoherent delta.
    let rx3 = lab.dut.sse(
        API,
        &format!("/api/v1/events?family=IPv4&resume_from=0123456789abcdef:{snap_seq}"),
    );
    let (e, _) = next(&rx3);
    assert_eq!(
        e, "snapshot",
        "another instance's resume point must get a snapshot"
    );
    // A bad filter is refused.
    let (code, body) = lab
        .dut
        .http(API, "GET", "/api/v1/events?family=IPv9", &[], "")
        .unwrap();
    assert_eq!(code, 400, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_falls_behind_without_slowing_the_pipeline() {
    require_lab("a_stalled_subscriber_falls_behind_without_slowing_the_pipeline");
    raise_neigh_limits(100_000);
    let s = setup(&[]).await;
    let lab = &s.lab;
    lab.dut.ip("addr add 10.100.0.1/16 dev Ethernet0");
    // A subscriber that reads its snapshot, then stops reading.
    let ns = format!("/var/run/netns/{}", lab.dut.name());
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (connected_tx, connected_rx) = std::sync::mpsc::channel::<()>();
    let stalled = std::thread::spawn(move || {
        use std::io::{Read, Write};
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(&ns).unwrap();
        // SAFETY: setns on an fd we own; only this thread changes namespace.
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        let mut s = std::net::TcpStream::connect(("::1", 8080)).unwrap();
        write!(s, "GET /api/v1/events HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut first = [0u8; 256];
        let _ = s.read(&mut first).unwrap();
        connected_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut all = Vec::new();
        let mut buf = [0u8; 65536];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&all).contains("event: fell_behind") {
                return true;
            }
        }
        false
    });
    connected_rx.recv_timeout(T).unwrap();
    let mut text = String::new();
    for i in 0..40_000u32 {
        writeln!(
            text,
            "neigh add 10.100.{}.{} lladdr 02:00:00:00:{:02x}:{:02x} dev Ethernet0 nud permanent",
            i / 250,
            i % 250 + 2,
            i >> 8,
            i & 0xff
        )
        .unwrap();
    }
    lab.dut.batch(&text);
    let mut orch = Orchagent::new(s._redis.conn(0).await);
    wait::appl_db_equals_kernel(
        "APPL_DB equals the kernel while a subscriber stalls",
        &mut orch,
        &lab.dut,
        Duration::from_secs(60),
    )
    .await;
    go_tx.send(()).unwrap();
    assert!(
        stalled.join().unwrap(),
        "the stalled subscriber was not told it fell behind"
    );
}
