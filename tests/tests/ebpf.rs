//! The eBPF source against the running kernel: the real program loaded and attached, events
//! driven in lab namespaces.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use neighsyncd::core::neigh::{NeighKind, NeighMsg, SourceEvent, nud};
use neighsyncd::southbound::ebpf::{EbpfConfig, EbpfSource, Route};
use neighsyncd::telemetry::metrics::Metrics;
use neighsyncd_tests::daemon::Daemon;
use neighsyncd_tests::kernel::{self, entry};
use neighsyncd_tests::netns::{Lab, Netns};
use neighsyncd_tests::orchagent::Orchagent;
use neighsyncd_tests::redis_server::RedisServer;
use neighsyncd_tests::{raise_neigh_limits, require_lab, wait};
use tokio::sync::mpsc;

/// What the API reports of a neighbor's state: exactly in netlink mode; up to its class in eBPF
/// mode, where moves within a class are de-duplicated in the kernel; a filter by a state finds
/// it either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_says_what_each_source_really_knows_of_a_state() {
    require_lab("the_api_says_what_each_source_really_knows_of_a_state");
    for (source, want) in [("netlink", "STALE"), ("ebpf", "REACHABLE|STALE|DELAY")] {
        let redis = RedisServer::start();
        let lab = Lab::new();
        let d = Daemon::start(&lab.dut, &redis, &["--source", source]);
        d.wait_ready(&lab.dut).await;
        lab.dut
            .ip("neigh add 10.0.0.9 lladdr 02:00:00:00:00:09 dev Ethernet0 nud reachable");
        lab.dut
            .ip("neigh change 10.0.0.9 lladdr 02:00:00:00:00:09 dev Ethernet0 nud stale");
        wait::until(
            &format!("{source}: the API state"),
            Duration::from_secs(10),
            async || {
                let (code, body) = lab
                    .dut
                    .http(
                        ("::1", 8080),
                        "GET",
                        "/api/v1/neighbors?state=STALE",
                        &[],
                        "",
                    )
                    .map_err(|e| e.to_string())?;
                let v: serde_json::Value =
                    serde_json::from_str(&body).map_err(|e| e.to_string())?;
                let found = v["neighbors"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|r| r["key"] == "Ethernet0:10.0.0.9" && r["kernel_state"] == want);
                if code == 200 && found {
                    Ok(())
                } else {
                    Err(format!("{code} {body}"))
                }
            },
        )
        .await;
    }
}

/// Runs an EbpfSource inside `ns` on its own thread and runtime; returns the events it sends.
struct InNs {
    rx: mpsc::Receiver<SourceEvent>,
    _stop: std::sync::mpsc::Sender<()>,
}

fn source_in(ns: &Netns, ring_bytes: u32) -> InNs {
    let (tx, rx) = mpsc::channel(1 << 16);
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let path = format!("/var/run/netns/{}", ns.name());
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(&path).unwrap();
        // SAFETY: setns on an fd we own; only this thread changes namespace.
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (_shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
            let src = EbpfSource::start(
                &EbpfConfig {
                    ring_bytes,
                    lru_entries: 65_536,
                    watchdog: Duration::from_secs(60),
                },
                None,
                vec![Route {
                    netns: neighsyncd::southbound::ebpf::own_netns().unwrap(),
                    tx,
                    request_dump: Box::new(|_| {}),
                    metrics: Arc::new(Metrics::new()),
                }],
                None,
                shutdown,
            );
            match src {
                Ok(started) => {
                    // Records flow once the program has passed its self-check.
                    let verdict = match started.verified.await {
                        Ok(v) => v,
                        Err(_) => Err("no verdict".into()),
                    };
                    let _ = ready_tx.send(verdict);
                    let _keep = started.source;
                    while stop_rx.try_recv().is_err() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                }
            }
        });
    });
    ready_rx.recv().unwrap().expect("eBPF source starts");
    InNs { rx, _stop: stop_tx }
}

impl InNs {
    /// Collects neighbor messages until `done` holds or the deadline passes.
    async fn until(&mut self, what: &str, done: impl Fn(&[NeighMsg]) -> bool) -> Vec<NeighMsg> {
        self.until_or(what, done, String::new).await
    }

    /// Like [`InNs::until`]; on a timeout the panic also says what `context` reports (the
    /// kernel's own view, to tell a transition that never happened from a missed event).
    async fn until_or(
        &mut self,
        what: &str,
        done: impl Fn(&[NeighMsg]) -> bool,
        context: impl Fn() -> String,
    ) -> Vec<NeighMsg> {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !done(&got) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(SourceEvent::Neigh(m))) => got.push(m),
                Ok(Some(_)) => {}
                _ => panic!("{what}: not within 10 s; got {got:#?}\n{}", context()),
            }
        }
        got
    }

    /// Drains what is pending now.
    fn drain(&mut self) -> Vec<NeighMsg> {
        let mut got = Vec::new();
        while let Ok(ev) = self.rx.try_recv() {
            if let SourceEvent::Neigh(m) = ev {
                got.push(m);
            }
        }
        got
    }
}

fn has(ms: &[NeighMsg], ip: &str, kind: NeighKind, state: Option<u16>, mac: Option<&[u8]>) -> bool {
    let ip: std::net::IpAddr = ip.parse().unwrap();
    ms.iter().any(|m| {
        m.ip == ip
            && m.kind == kind
            && state.is_none_or(|s| m.state == s)
            && mac.is_none_or(|x| m.lladdr.get() == Some(x))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_for_adds_changes_deletes_timers_and_removal_in_our_namespace_only() {
    require_lab("events_for_adds_changes_deletes_timers_and_removal_in_our_namespace_only");
    let lab = Lab::new();
    // Another namespace with the same names and addresses: must produce nothing.
    let other = Netns::new("nsdo");
    other.ip("link add Ethernet0 type veth peer name q0");
    other.ip("link set Ethernet0 up");
    let mut src = source_in(&lab.dut, 1 << 20);
    let ifindex = lab.dut.ifindex("Ethernet0");

    lab.dut
        .ip("neigh add 10.0.0.5 lladdr 02:00:00:00:00:05 dev Ethernet0 nud permanent");
    other.ip("neigh add 10.0.0.5 lladdr 02:00:00:00:00:99 dev Ethernet0 nud permanent");
    other.ip("neigh add 10.0.0.6 lladdr 02:00:00:00:00:98 dev Ethernet0 nud permanent");
    let got = src
        .until("add", |m| {
            has(
                m,
                "10.0.0.5",
                NeighKind::New,
                Some(nud::PERMANENT),
                Some(&[2, 0, 0, 0, 0, 5]),
            )
        })
        .await;
    assert!(
        got.iter()
            .all(|m| m.ifindex == ifindex || m.ip.to_string() != "10.0.0.5")
    );
    // MAC change.
    lab.dut
        .ip("neigh replace 10.0.0.5 lladdr 02:00:00:00:00:55 dev Ethernet0 nud permanent");
    src.until("MAC change", |m| {
        has(
            m,
            "10.0.0.5",
            NeighKind::New,
            None,
            Some(&[2, 0, 0, 0, 0, 0x55]),
        )
    })
    .await;
    // IPv6 and delete.
    lab.dut
        .ip("neigh add 2000::5 lladdr 02:00:00:00:00:06 dev Ethernet0 nud reachable");
    src.until("IPv6 add", |m| {
        has(m, "2000::5", NeighKind::New, Some(nud::REACHABLE), None)
    })
    .await;
    lab.dut.ip("neigh del 10.0.0.5 dev Ethernet0");
    src.until("delete", |m| has(m, "10.0.0.5", NeighKind::Del, None, None))
        .await;
    // A real ARP resolution.
    lab.ping("10.0.0.2");
    src.until("resolution", |m| {
        has(m, "10.0.0.2", NeighKind::New, Some(nud::REACHABLE), None)
    })
    .await;
    // Timer transitions: a STALE entry for a host that is not there, used, goes
    // DELAY -> PROBE -> FAILED by the neighbor timer alone. (REACHABLE -> STALE is a timer
    // transition too, but within one SONiC state class: de-duplicated in the kernel.)
    for (k, v) in [
        ("ucast_solicit", "1"),
        ("mcast_solicit", "1"),
        ("retrans_time_ms", "100"),
        ("delay_first_probe_time", "1"),
    ] {
        lab.dut.sysctl(&format!("net.ipv4.neigh.Ethernet0.{k}"), v);
    }
    lab.dut
        .ip("neigh add 10.0.0.77 lladdr 02:00:00:00:00:77 dev Ethernet0 nud stale");
    let _ = lab.dut.exec(&["ping", "-c", "1", "-W", "1", "10.0.0.77"]);
    src.until("timer to PROBE", |m| {
        has(m, "10.0.0.77", NeighKind::New, Some(nud::PROBE), None)
    })
    .await;
    let kernel_view = || {
        format!(
            "the kernel has: {:?}",
            lab.dut.try_ip("-s neigh show 10.0.0.77 dev Ethernet0")
        )
    };
    src.until_or(
        "timer to FAILED",
        |m| has(m, "10.0.0.77", NeighKind::New, Some(nud::FAILED), None),
        kernel_view,
    )
    .await;
    // Device removal releases its neighbors.
    lab.dut
        .ip("neigh add 10.0.4.7 lladdr 02:00:00:00:04:07 dev Ethernet4 nud permanent");
    src.until("add on Ethernet4", |m| {
        has(m, "10.0.4.7", NeighKind::New, None, None)
    })
    .await;
    lab.dut.ip("link del Ethernet4");
    src.until("removal with the device", |m| {
        has(m, "10.0.4.7", NeighKind::Del, None, None)
    })
    .await;
    // Nothing ever came from the other namespace.
    other.ip("neigh replace 10.0.0.6 lladdr 02:00:00:00:00:97 dev Ethernet0 nud permanent");
    lab.dut
        .ip("neigh add 10.0.0.9 lladdr 02:00:00:00:00:09 dev Ethernet0 nud permanent");
    let tail = src
        .until("marker", |m| has(m, "10.0.0.9", NeighKind::New, None, None))
        .await;
    // Deleting the peer namespace destroys the veth pairs: our ends' neighbors are released.
    let Lab { dut, peer } = lab;
    drop(peer);
    src.until("removal with the peer namespace", |m| {
        has(m, "10.0.0.2", NeighKind::Del, None, None)
    })
    .await;
    drop(dut);
    assert!(
        !has(&tail, "10.0.0.6", NeighKind::New, None, None),
        "event from another namespace: {tail:?}"
    );
    let _ = src.drain();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flap_storm_costs_userspace_nothing_but_mac_changes_get_through() {
    require_lab("flap_storm_costs_userspace_nothing_but_mac_changes_get_through");
    raise_neigh_limits(50_000);
    let redis = RedisServer::start();
    let lab = Lab::new();
    lab.dut.ip("addr add 10.100.0.1/16 dev Ethernet0");
    let d = Daemon::start(&lab.dut, &redis, &["--source", "ebpf"]);
    d.wait_ready(&lab.dut).await;
    let n = 10_000u32;
    let ip = |i: u32| format!("10.100.{}.{}", i / 200, i % 200 + 2);
    let mac = |i: u32| format!("02:00:00:00:{:02x}:{:02x}", i >> 8, i & 0xff);
    let mut add = String::new();
    for i in 0..n {
        writeln!(
            add,
            "neigh add {} lladdr {} dev Ethernet0 nud reachable",
            ip(i),
            mac(i)
        )
        .unwrap();
    }
    lab.dut.batch(&add);
    let mut orch = Orchagent::new(redis.conn(0).await);
    wait::until("burst written", Duration::from_secs(60), async || {
        let c = orch.pop_and_count().await;
        if c == n as usize {
            Ok(())
        } else {
            Err(format!("{c}"))
        }
    })
    .await;
    let writes = orch.popped_total;
    let events = d.metric(&lab.dut, "neighsyncd_ebpf_events_total", "");
    // The storm: every neighbor REACHABLE -> STALE -> REACHABLE, MAC unchanged; one MAC change
    // in the middle.
    let mut storm = String::new();
    for i in 0..n {
        writeln!(
            storm,
            "neigh change {} lladdr {} dev Ethernet0 nud stale",
            ip(i),
            mac(i)
        )
        .unwrap();
        if i == n / 2 {
            writeln!(
                storm,
                "neigh change {} lladdr 02:ff:00:00:00:01 dev Ethernet0 nud stale",
                ip(7)
            )
            .unwrap();
        }
    }
    for i in 0..n {
        writeln!(
            storm,
            "neigh change {} lladdr {} dev Ethernet0 nud reachable",
            ip(i),
            mac(i)
        )
        .unwrap();
    }
    lab.dut.batch(&storm);
    // Repeated ARP from a known peer refreshes the same entry.
    for _ in 0..3 {
        lab.ping("10.0.0.2");
    }
    let k7 = format!("Ethernet0:{}", ip(7));
    let want7 = entry(&mac(7), "IPv4");
    wait::until(
        "the MAC change and its revert",
        Duration::from_secs(30),
        async || {
            let t = orch.sync().await;
            if t.get(&k7) == Some(&want7) && orch.writes() >= 2 {
                Ok(())
            } else {
                Err(format!("{:?} after {} writes", t.get(&k7), orch.writes()))
            }
        },
    )
    .await;
    // Only the MAC change (and its revert to the original MAC) plus the ARP-resolved peer.
    let extra_writes = orch.popped_total + orch.writes() - writes;
    assert!(
        extra_writes <= 3,
        "the flap storm was written: {extra_writes} writes"
    );
    let storm_events = d.metric(&lab.dut, "neighsyncd_ebpf_events_total", "") - events;
    assert!(
        storm_events <= 10.0,
        "{storm_events} events reached userspace for a no-op storm of {}",
        2 * n
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_overflow_resyncs_to_the_kernel_table() {
    require_lab("ring_overflow_resyncs_to_the_kernel_table");
    raise_neigh_limits(100_000);
    let redis = RedisServer::start();
    let lab = Lab::new();
    lab.dut.ip("addr add 10.100.0.1/16 dev Ethernet0");
    let d = Daemon::start(
        &lab.dut,
        &redis,
        &["--source", "ebpf", "--ebpf-ring-bytes", "4096"],
    );
    d.wait_ready(&lab.dut).await;
    let mut add = String::new();
    for i in 0..20_000u32 {
        writeln!(
            add,
            "neigh add 10.100.{}.{} lladdr 02:00:00:00:{:02x}:{:02x} dev Ethernet0 nud permanent",
            i / 200,
            i % 200 + 2,
            i >> 8,
            i & 0xff
        )
        .unwrap();
    }
    lab.dut.batch(&add);
    let mut orch = Orchagent::new(redis.conn(0).await);
    wait::appl_db_equals_kernel(
        "APPL_DB equals the kernel",
        &mut orch,
        &lab.dut,
        Duration::from_secs(60),
    )
    .await;
    assert!(
        d.metric(&lab.dut, "neighsyncd_ringbuf_drops_total", "") >= 1.0,
        "a 4 KiB ring cannot hold a 20k burst"
    );
    assert!(
        d.metric(
            &lab.dut,
            "neighsyncd_resyncs_total",
            "cause=\"ringbuf_overflow\""
        ) >= 1.0
    );
}

async fn scenario(args: &[&str]) -> kernel::Table {
    let redis = RedisServer::start();
    let lab = Lab::new();
    lab.dut.ip("addr add 10.100.0.1/16 dev Ethernet0");
    let d = Daemon::start(&lab.dut, &redis, args);
    d.wait_ready(&lab.dut).await;
    let mut script = String::from(
        "\
neigh add 10.0.0.11 lladdr 02:00:00:00:00:11 dev Ethernet0 nud permanent
neigh add 10.0.0.12 lladdr 02:00:00:00:00:12 dev Ethernet0 nud reachable
neigh add 2000::13 lladdr 02:00:00:00:00:13 dev Ethernet0 nud stale
neigh add 10.0.4.14 lladdr 02:00:00:00:00:14 dev Ethernet4 nud noarp
neigh add 10.0.4.15 lladdr 02:00:00:00:00:15 dev Ethernet4 nud noarp extern_learn
neigh add fe80::16 lladdr 02:00:00:00:00:16 dev Ethernet4 nud permanent
neigh add 192.168.0.17 lladdr ff:ff:ff:ff:ff:ff dev Vlan1000 nud permanent
neigh replace 10.0.0.12 lladdr 02:00:00:00:00:22 dev Ethernet0 nud reachable
neigh change 2000::13 lladdr 02:00:00:00:00:13 dev Ethernet0 nud reachable
neigh del 10.0.0.11 dev Ethernet0
neigh add 10.0.0.18 lladdr 02:00:00:00:00:18 dev Ethernet0 nud probe
neigh add 10.0.0.50 dev Ethernet0 nud none
neigh add 10.0.0.60 dev Ethernet0 managed
neigh add 10.0.0.70 lladdr 02:00:00:00:00:70 dev Ethernet0 nud permanent
neigh del 10.0.0.70 dev Ethernet0
neigh add 10.0.0.70 lladdr 02:00:00:00:00:70 dev Ethernet0 nud permanent
",
    );
    // More neighbors than a small de-duplication map holds, flapped and re-addressed: an
    // eviction must never hide a change.
    for i in 0..300u32 {
        let ip = format!("10.100.{}.{}", i / 200, i % 200 + 2);
        writeln!(
            script,
            "neigh add {ip} lladdr 02:00:00:01:{:02x}:{:02x} dev Ethernet0 nud reachable",
            i >> 8,
            i & 0xff
        )
        .unwrap();
    }
    for i in 0..300u32 {
        let ip = format!("10.100.{}.{}", i / 200, i % 200 + 2);
        writeln!(
            script,
            "neigh change {ip} lladdr 02:00:00:01:{:02x}:{:02x} dev Ethernet0 nud stale",
            i >> 8,
            i & 0xff
        )
        .unwrap();
        if i % 3 == 0 {
            writeln!(
                script,
                "neigh change {ip} lladdr 02:00:00:02:{:02x}:{:02x} dev Ethernet0 nud reachable",
                i >> 8,
                i & 0xff
            )
            .unwrap();
        }
    }
    lab.dut.batch(&script);
    lab.ping("10.0.0.2");
    lab.ping("fc00::2");
    let mut orch = Orchagent::new(redis.conn(0).await);
    wait::appl_db_equals_kernel(
        &format!("{args:?}: APPL_DB equals the kernel"),
        &mut orch,
        &lab.dut,
        Duration::from_secs(15),
    )
    .await;
    // Peer MACs differ per lab: normalise them to their role.
    let (p0, p8) = (lab.peer_mac("p0"), lab.peer_mac("p8"));
    orch.sync()
        .await
        .into_iter()
        .map(|(k, mut v)| {
            if let Some(m) = v.get_mut("neigh") {
                if *m == p0 {
                    *m = "peer-p0".into();
                } else if *m == p8 {
                    *m = "peer-p8".into();
                }
            }
            (k, v)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netlink_and_ebpf_sources_end_with_the_same_appl_db() {
    require_lab("netlink_and_ebpf_sources_end_with_the_same_appl_db");
    let via_netlink = scenario(&["--source", "netlink"]).await;
    let via_ebpf = scenario(&["--source", "ebpf", "--ebpf-lru-entries", "64"]).await;
    wait::diff(&via_ebpf, &via_netlink).unwrap_or_else(|e| panic!("eBPF vs netlink:\n{e}"));
    assert!(via_netlink.len() >= 300, "{via_netlink:?}");
    // NONE and a managed neighbor (no address yet) are not written by either source.
    for absent in ["Ethernet0:10.0.0.50", "Ethernet0:10.0.0.60"] {
        assert!(!via_ebpf.contains_key(absent), "{absent} written");
    }
    assert!(via_ebpf.contains_key("Ethernet0:10.0.0.70"));
}

/// The ring's data pages count once in the daemon's resident size: the kernel lets a reader
/// map them twice in a row (so a wrapping record reads as one slice), and every page of both
/// copies would count. A 4 MiB ring must cost 4 MiB of RSS (plus its two position pages).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ring_counts_once_in_the_daemons_resident_size() {
    require_lab("the_ring_counts_once_in_the_daemons_resident_size");
    const RING: u64 = 4 << 20;
    let redis = RedisServer::start();
    let lab = Lab::new();
    let d = Daemon::start(
        &lab.dut,
        &redis,
        &["--source", "ebpf", "--ebpf-ring-bytes", &RING.to_string()],
    );
    d.wait_ready(&lab.dut).await;
    let smaps = std::fs::read_to_string(format!("/proc/{}/smaps", d.pid())).unwrap();
    let mut in_map = false;
    let mut rss_kib = 0u64;
    for line in smaps.lines() {
        let head = line.split_whitespace().next().unwrap_or("");
        if head.contains('-') && !head.ends_with(':') {
            in_map = line.contains("bpf-map");
        } else if in_map && head == "Rss:" {
            rss_kib += line
                .split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<u64>()
                .unwrap();
        }
    }
    let rss = rss_kib * 1024;
    assert!(
        (RING..=RING + 64 * 1024).contains(&rss),
        "the eBPF maps' resident size is {rss} bytes for a {RING}-byte ring:\n{smaps}"
    );
}
