//! The shipped systemd unit's system-call filter lets the daemon do its job. The filter is
//! computed from the unit as systemd reads it: groups expanded by `systemd-analyze
//! syscall-filter`, lines applied in order (the first, an allow list, sets what is allowed; a
//! later `~` line removes from it, a later plain line adds to it). The daemon's system calls
//! are what it really makes, counted by strace: the `restore` step the unit runs first, then a
//! start in eBPF mode, a neighbor written to APPL_DB, and a SIGTERM.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use neighsyncd_tests::daemon::{GRPC, METRICS_PORT, REST, binary};
use neighsyncd_tests::netns::Lab;
use neighsyncd_tests::redis_server::RedisServer;
use neighsyncd_tests::root;
use neighsyncd_tests::{require_lab, require_tool, wait};

/// The system calls in `item`: a name, or a `@group` expanded (recursively) by systemd itself.
fn expand(item: &str, groups: &mut BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    if !item.starts_with('@') {
        return BTreeSet::from([item.to_string()]);
    }
    if let Some(s) = groups.get(item) {
        return s.clone();
    }
    let out = Command::new("systemd-analyze")
        .args(["syscall-filter", item])
        .output()
        .expect("systemd-analyze syscall-filter");
    assert!(
        out.status.success(),
        "systemd-analyze syscall-filter {item}"
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut set = BTreeSet::new();
    // The group's name on the first line, then its members indented (comments start with #).
    for line in text.lines().skip(1) {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        set.extend(expand(t, groups));
    }
    groups.insert(item.to_string(), set.clone());
    set
}

/// What the unit's `SystemCallFilter=` lines allow, in systemd's documented semantics.
fn allowed(unit: &str) -> BTreeSet<String> {
    let mut groups = BTreeMap::new();
    let mut allow: Option<BTreeSet<String>> = None;
    for line in unit.lines() {
        let Some(value) = line.trim().strip_prefix("SystemCallFilter=") else {
            continue;
        };
        let (deny, items) = match value.strip_prefix('~') {
            Some(rest) => (true, rest),
            None => (false, value),
        };
        let set: BTreeSet<String> = items
            .split_whitespace()
            .flat_map(|i| expand(i, &mut groups))
            .collect();
        match (&mut allow, deny) {
            (None, false) => allow = Some(set),
            (None, true) => panic!("the unit's first SystemCallFilter= must be an allow list"),
            (Some(a), true) => a.retain(|s| !set.contains(s)),
            (Some(a), false) => a.extend(set),
        }
    }
    allow.expect("the unit has a SystemCallFilter=")
}

/// The system calls in a `strace -c` summary.
fn summary_calls(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).expect("strace summary");
    text.lines()
        .filter(|l| !l.starts_with('%') && !l.starts_with('-') && !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .filter(|s| s != "total")
        .collect()
}

/// The pid of `pid`'s first child (strace's tracee).
fn child_of(pid: u32) -> Option<i32> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_units_syscall_filter_allows_every_call_the_daemon_makes() {
    let test = "the_units_syscall_filter_allows_every_call_the_daemon_makes";
    require_lab(test);
    require_tool("systemd-analyze", test);
    require_tool("strace", test);
    let unit = std::fs::read_to_string(root().join("deploy/neighsyncd.service")).unwrap();
    let allowed = allowed(&unit);
    let redis = RedisServer::start();
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let bin = binary();
    let traced = |out: &Path| {
        let mut c = Command::new("ip");
        c.args([
            "netns",
            "exec",
            lab.dut.name(),
            "strace",
            "-f",
            "-qq",
            "-c",
            "-o",
        ])
        .arg(out)
        .arg("--")
        .arg(&bin)
        .arg("--redis")
        .arg(redis.url());
        c
    };
    // The unit's ExecStartPre.
    let restore_out = dir.path().join("restore.strace");
    let st = traced(&restore_out)
        .arg("restore")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "neighsyncd restore under strace: {st}");
    // The daemon, in eBPF mode (the program loaded and attached), through a write and a stop.
    let daemon_out = dir.path().join("daemon.strace");
    let mut strace = traced(&daemon_out)
        .args(["--metrics-listen", &format!("127.0.0.1:{METRICS_PORT}")])
        .args([
            "--rest-listen",
            REST,
            "--grpc-listen",
            GRPC,
            "--source",
            "ebpf",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut orch = neighsyncd_tests::orchagent::Orchagent::new(redis.conn(0).await);
    wait::until(
        "the daemon ready under strace",
        Duration::from_secs(60),
        async || match lab.dut.http_get(METRICS_PORT, "/ready") {
            Ok((200, _)) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    lab.dut
        .ip("neigh add 10.0.0.2 lladdr 02:00:00:00:00:02 dev Ethernet0 nud permanent");
    wait::until(
        "the neighbor in APPL_DB",
        Duration::from_secs(30),
        async || {
            if orch.sync().await.contains_key("Ethernet0:10.0.0.2") {
                Ok(())
            } else {
                Err("not yet".into())
            }
        },
    )
    .await;
    let daemon = child_of(strace.id()).expect("strace's tracee");
    // SAFETY: a signal to the daemon this test started (strace's child).
    unsafe { libc::kill(daemon, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(30);
    let st = loop {
        if let Some(st) = strace.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(st.success(), "the daemon under strace exited {st}");
    let calls: BTreeSet<String> = summary_calls(&restore_out)
        .into_iter()
        .chain(summary_calls(&daemon_out))
        .collect();
    assert!(calls.contains("bpf"), "eBPF mode without bpf(2)? {calls:?}");
    let denied: Vec<&String> = calls.iter().filter(|c| !allowed.contains(*c)).collect();
    assert!(
        denied.is_empty(),
        "deploy/neighsyncd.service's SystemCallFilter= denies what the daemon calls: {denied:?}"
    );
}
