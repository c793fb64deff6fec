//! The daemon needs root's identity for nothing: as an unprivileged user holding only the
//! capabilities `deploy/neighsyncd.service` grants (docs/SECURITY.md), it loads the eBPF program
//! and syncs. Without `CAP_BPF`/`CAP_PERFMON` an explicit `--source ebpf` fails at once with a
//! clear error, and `--source auto` falls back to rtnetlink and still syncs.

use std::time::Duration;

use neighsyncd_tests::daemon::Daemon;
use neighsyncd_tests::netns::Lab;
use neighsyncd_tests::orchagent::Orchagent;
use neighsyncd_tests::redis_server::RedisServer;
use neighsyncd_tests::root;
use neighsyncd_tests::{require_lab, require_tool, wait};

/// `nobody`: any uid but 0 would do.
const UID: &str = "65534";

/// The capabilities the unit grants (`AmbientCapabilities=`), as setpriv names them.
fn unit_capabilities() -> Vec<String> {
    let unit = std::fs::read_to_string(root().join("deploy/neighsyncd.service")).unwrap();
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("AmbientCapabilities="))
        .expect("the unit grants ambient capabilities");
    line.split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_ascii_lowercase())
        .collect()
}

/// `setpriv` arguments: uid/gid `nobody`, no groups, and exactly `caps` (inheritable,
/// ambient, bounding), as systemd's `DynamicUser=` + `AmbientCapabilities=` leave a service.
fn setpriv(caps: &[&str]) -> Vec<String> {
    let set = std::iter::once("-all".to_string())
        .chain(caps.iter().map(|c| format!("+{c}")))
        .collect::<Vec<_>>()
        .join(",");
    [
        "setpriv",
        "--reuid",
        UID,
        "--regid",
        UID,
        "--clear-groups",
        "--inh-caps",
        &set,
        "--ambient-caps",
        &set,
        "--bounding-set",
        &set,
        "--",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Redis's directory opened to the unprivileged daemon (the socket itself is 0777).
fn open_to_others(redis: &RedisServer) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(redis.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The effective capability set and the real uid of a running process.
fn identity(pid: u32) -> (u64, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let eff = u64::from_str_radix(&field("CapEff:"), 16).unwrap_or(u64::MAX);
    let uid = field("Uid:")
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    (eff, uid)
}

fn cap_bit(name: &str) -> u64 {
    let n = match name {
        "net_admin" => 12,
        "net_raw" => 13,
        "perfmon" => 38,
        "bpf" => 39,
        other => panic!("no bit known for {other}"),
    };
    1 << n
}

async fn syncs(lab: &Lab, redis: &RedisServer, ip: &str) {
    let mut orch = Orchagent::new(redis.conn(0).await);
    lab.dut.ip(&format!(
        "neigh add {ip} lladdr 02:00:00:00:00:07 dev Ethernet0 nud permanent"
    ));
    let key = format!("Ethernet0:{ip}");
    wait::until(
        "the neighbor in APPL_DB",
        Duration::from_secs(20),
        async || {
            if orch.sync().await.contains_key(&key) {
                Ok(())
            } else {
                Err(format!("{key} not in NEIGH_TABLE"))
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_nobody_with_the_units_capabilities_the_ebpf_source_loads_and_syncs() {
    let test = "as_nobody_with_the_units_capabilities_the_ebpf_source_loads_and_syncs";
    require_lab(test);
    require_tool("setpriv", test);
    let caps = unit_capabilities();
    let caps: Vec<&str> = caps.iter().map(String::as_str).collect();
    assert_eq!(
        caps,
        ["net_admin", "net_raw", "bpf", "perfmon"],
        "the unit's capabilities changed: update docs/SECURITY.md and this test"
    );
    let redis = RedisServer::start();
    open_to_others(&redis);
    let lab = Lab::new();
    let wrapper = setpriv(&caps);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let d = Daemon::start_wrapped(&lab.dut, &redis, &wrapper, &["--source", "ebpf"]);
    d.wait_ready(&lab.dut).await;
    let (eff, uid) = identity(d.pid());
    let want: u64 = caps.iter().map(|c| cap_bit(c)).sum();
    assert_eq!(uid, UID, "the daemon runs as uid {uid}");
    assert_eq!(
        eff, want,
        "effective capabilities {eff:#x}, granted {want:#x}"
    );
    syncs(&lab, &redis, "10.0.0.7").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cap_bpf_ebpf_fails_clearly_and_auto_falls_back_to_netlink() {
    let test = "without_cap_bpf_ebpf_fails_clearly_and_auto_falls_back_to_netlink";
    require_lab(test);
    require_tool("setpriv", test);
    let wrapper = setpriv(&["net_admin", "net_raw"]);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();

    let redis = RedisServer::start();
    open_to_others(&redis);
    let lab = Lab::new();
    let mut d = Daemon::start_wrapped(&lab.dut, &redis, &wrapper, &["--source", "ebpf"]);
    let st = d
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("--source ebpf without CAP_BPF kept running:\n{}", d.tail()));
    assert!(!st.success(), "--source ebpf without CAP_BPF exited {st}");
    let log = d.log();
    assert!(
        log.contains("eBPF"),
        "the failure does not name eBPF:\n{log}"
    );

    let redis = RedisServer::start();
    open_to_others(&redis);
    let lab = Lab::new();
    let d = Daemon::start_wrapped(&lab.dut, &redis, &wrapper, &["--source", "auto"]);
    d.wait_ready(&lab.dut).await;
    assert!(
        d.log().contains("eBPF source unavailable"),
        "no word of the fallback:\n{}",
        d.tail()
    );
    syncs(&lab, &redis, "10.0.0.8").await;
}
