//! Multi-ASIC SONiC. One daemon per ASIC namespace, as upstream runs it, each started from
//! the host with `--namespace` and finding its own Redis through SONiC's database_global.json;
//! and one process serving several namespaces. Two namespaces, two redis-servers: each APPL_DB
//! holds its own namespace's neighbors under SONiC's rules, through bursts; losing one Redis
//! touches only that namespace; each keeps its own warm-restart contract.

use std::path::Path;
use std::time::Duration;

use neighsyncd_tests::daemon::{Daemon, METRICS_PORT};
use neighsyncd_tests::netns::{Lab, Netns};
use neighsyncd_tests::orchagent::Orchagent;
use neighsyncd_tests::redis_server::RedisServer;
use neighsyncd_tests::{require_lab, wait};

const T: Duration = Duration::from_secs(30);

/// A namespace's database_config.json: SONiC's databases on that namespace's Redis.
fn db_config(redis: &RedisServer) -> String {
    format!(
        r#"{{"INSTANCES": {{"redis": {{"hostname": "127.0.0.1", "port": 6379, "unix_socket_path": "{}"}}}},
            "DATABASES": {{"APPL_DB": {{"id": 0, "separator": ":", "instance": "redis"}},
                          "CONFIG_DB": {{"id": 4, "separator": "|", "instance": "redis"}},
                          "STATE_DB": {{"id": 6, "separator": "|", "instance": "redis"}}}},
            "VERSION": "1.0"}}"#,
        redis.socket().display()
    )
}

/// SONiC's layout: /var/run/redis/sonic-db/database_global.json naming
/// ../../redis<N>/sonic-db/database_config.json per namespace.
fn sonic_db_files(dir: &Path, namespaces: &[(&str, &RedisServer)]) -> String {
    let mut includes = vec![];
    for (i, (ns, redis)) in namespaces.iter().enumerate() {
        let d = dir.join(format!("redis{i}/sonic-db"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("database_config.json"), db_config(redis)).unwrap();
        includes.push(format!(
            r#"{{"namespace": "{ns}", "include": "../../redis{i}/sonic-db/database_config.json"}}"#
        ));
    }
    let g = dir.join("redis/sonic-db");
    std::fs::create_dir_all(&g).unwrap();
    let global = g.join("database_global.json");
    std::fs::write(
        &global,
        format!(
            r#"{{"INCLUDES": [{}], "VERSION": "1.0"}}"#,
            includes.join(", ")
        ),
    )
    .unwrap();
    global.display().to_string()
}

fn burst(lab: &Lab, dev: &str, second_octet: u32, from: u32, n: u32) {
    let mut s = String::new();
    for i in from..from + n {
        s.push_str(&format!(
            "neigh replace 10.{second_octet}.{}.{} lladdr 02:{second_octet:02x}:00:00:{:02x}:{:02x} dev {dev} nud permanent\n",
            i / 250,
            i % 250 + 2,
            i / 256,
            i % 256
        ));
    }
    lab.dut.batch(&s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_asic_namespace_syncs_into_its_own_appl_db() {
    require_lab("each_asic_namespace_syncs_into_its_own_appl_db");
    let (a, b) = (Lab::new(), Lab::new());
    let (mut ra, rb) = (RedisServer::start(), RedisServer::start());
    let dir = tempfile::tempdir().unwrap();
    let global = sonic_db_files(dir.path(), &[(a.dut.name(), &ra), (b.dut.name(), &rb)]);
    let start = |lab: &Lab| {
        Daemon::start_sonic(
            &lab.dut,
            &["--namespace", lab.dut.name(), "--db-global-config", &global],
        )
    };
    let (da, db) = (start(&a), start(&b));
    da.wait_ready(&a.dut).await;
    db.wait_ready(&b.dut).await;

    // Each is in its namespace, and says which in its metrics.
    for (lab, d) in [(&a, &da), (&b, &db)] {
        let (_, body) = lab.dut.http_get(METRICS_PORT, "/metrics").unwrap();
        assert!(
            body.contains(&format!("namespace=\"{}\"", lab.dut.name())),
            "{}'s metrics are not labelled with its namespace:\n{}",
            lab.dut.name(),
            &body[..body.len().min(2000)]
        );
        assert!(d.log().contains("serving SONiC namespace"), "{}", d.tail());
    }

    // Bursts and the rules in both (a broadcast MAC and a link-local IPv6 neighbor skipped).
    burst(&a, "Ethernet0", 1, 0, 600);
    burst(&b, "Ethernet4", 2, 0, 400);
    for lab in [&a, &b] {
        lab.dut
            .ip("neigh add 10.0.0.99 lladdr ff:ff:ff:ff:ff:ff dev Ethernet0 nud permanent");
        lab.dut
            .ip("neigh add fe80::99 lladdr 02:00:00:00:00:99 dev Ethernet0 nud permanent");
    }
    let (mut oa, mut ob) = (
        Orchagent::new(ra.conn(0).await),
        Orchagent::new(rb.conn(0).await),
    );
    wait::appl_db_equals_kernel("namespace A's APPL_DB", &mut oa, &a.dut, T).await;
    wait::appl_db_equals_kernel("namespace B's APPL_DB", &mut ob, &b.dut, T).await;
    let (ta, tb) = (oa.sync().await, ob.sync().await);
    assert!(
        ta.len() >= 600 && tb.len() >= 400,
        "{} {}",
        ta.len(),
        tb.len()
    );
    assert!(
        ta.keys().all(|k| !k.starts_with("Ethernet4:10.2.")),
        "B's neighbors in A's APPL_DB"
    );
    assert!(
        tb.keys().all(|k| !k.starts_with("Ethernet0:10.1.")),
        "A's neighbors in B's APPL_DB"
    );

    // The API is partitioned by namespace: each record names its own, and a filter by another
    // namespace finds nothing.
    let list = |lab: &Lab, ns: &str| {
        let (code, body) = lab
            .dut
            .http(
                ("::1", 8080),
                "GET",
                &format!("/api/v1/neighbors?namespace={ns}&page_size=1000"),
                &[],
                "",
            )
            .unwrap();
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["neighbors"].as_array().cloned().unwrap_or_default()
    };
    let own = list(&a, a.dut.name());
    assert!(own.len() >= 600, "{}", own.len());
    assert!(
        own.iter().all(|r| r["namespace"] == a.dut.name()),
        "{:?}",
        own.first()
    );
    assert!(
        list(&a, b.dut.name()).is_empty(),
        "A's API lists B's namespace"
    );

    // A's Redis is lost (restarted empty) while both namespaces change: A repairs its own
    // APPL_DB; B never notices.
    let b_errors = || db.metric(&b.dut, "neighsyncd_redis_errors_total", "");
    let before = b_errors();
    ra.restart();
    burst(&a, "Ethernet0", 1, 600, 100);
    burst(&b, "Ethernet4", 2, 400, 100);
    let mut oa = Orchagent::new(ra.conn(0).await);
    wait::appl_db_equals_kernel(
        "namespace A's APPL_DB after its Redis restarted",
        &mut oa,
        &a.dut,
        T,
    )
    .await;
    wait::appl_db_equals_kernel("namespace B's APPL_DB meanwhile", &mut ob, &b.dut, T).await;
    assert_eq!(
        b_errors(),
        before,
        "namespace B saw Redis errors from A's restart"
    );
    assert!(
        da.metric(&a.dut, "neighsyncd_redis_errors_total", "") > 0.0,
        "A did not notice its Redis going away"
    );
}

/// Every page of the API's neighbor list (following `next_page_token`), from `ns`.
fn list_all(ns: &Netns, query: &str) -> Vec<serde_json::Value> {
    let mut out = vec![];
    let mut token = String::new();
    loop {
        let path = format!("/api/v1/neighbors?page_size=1000{query}{token}");
        let (code, body) = ns.http(("::1", 8080), "GET", &path, &[], "").unwrap();
        assert_eq!(code, 200, "{path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        out.extend(v["neighbors"].as_array().cloned().unwrap_or_default());
        match v["next_page_token"].as_str() {
            Some(t) => token = format!("&page_token={}", t.replace('/', "%2F")),
            None => return out,
        }
    }
}

/// One process, two ASIC namespaces: the daemon is started elsewhere (a third namespace,
/// where its listeners are) and reaches into both. One eBPF program (or one rtnetlink source
/// per namespace) feeds two engines, two writers, two APPL_DBs; the same key in both
/// namespaces stays two neighbors; losing one namespace's Redis stalls only that namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_serves_several_asic_namespaces() {
    require_lab("one_process_serves_several_asic_namespaces");
    let (a, b) = (Lab::new(), Lab::new());
    let host = Netns::new("nsdh");
    let (mut ra, rb) = (RedisServer::start(), RedisServer::start());
    let dir = tempfile::tempdir().unwrap();
    let global = sonic_db_files(dir.path(), &[(a.dut.name(), &ra), (b.dut.name(), &rb)]);
    let (na, nb) = (a.dut.name(), b.dut.name());
    let d = Daemon::start_sonic_in(
        &host,
        &[
            "--namespace",
            na,
            "--namespace",
            nb,
            "--db-global-config",
            &global,
        ],
    );
    d.wait_ready(&host).await;
    assert!(
        d.log().contains("serving 2 SONiC namespaces"),
        "{}",
        d.tail()
    );
    // Each namespace's source is the one asked for, and says so under its own label.
    let source = neighsyncd_tests::test_source();
    let (_, body) = host.http_get(METRICS_PORT, "/metrics").unwrap();
    for ns in [na, nb] {
        let on = body.lines().any(|l| {
            l.starts_with("neighsyncd_source_active{")
                && l.contains(&format!("namespace=\"{ns}\""))
                && l.contains(&format!("source=\"{source}\""))
                && l.ends_with(" 1")
        });
        assert!(on, "{ns} is not on {source}:\n{body}");
    }

    // Bursts and the rules in both; the same key in both, with different MACs.
    burst(&a, "Ethernet0", 1, 0, 600);
    burst(&b, "Ethernet4", 2, 0, 400);
    // And a key with the same MAC on the same ifindex in both: the program's de-duplication
    // must not take one namespace's event for a repeat of the other's.
    assert_eq!(a.dut.ifindex("Ethernet0"), b.dut.ifindex("Ethernet0"));
    for (lab, mac) in [(&a, "02:aa:00:00:00:01"), (&b, "02:bb:00:00:00:01")] {
        lab.dut.ip(&format!(
            "neigh add 10.0.0.50 lladdr {mac} dev Ethernet0 nud permanent"
        ));
        lab.dut
            .ip("neigh add 10.0.0.51 lladdr 02:cc:00:00:00:01 dev Ethernet0 nud permanent");
        lab.dut
            .ip("neigh add 10.0.0.99 lladdr ff:ff:ff:ff:ff:ff dev Ethernet0 nud permanent");
        lab.dut
            .ip("neigh add fe80::99 lladdr 02:00:00:00:00:99 dev Ethernet0 nud permanent");
    }
    let (mut oa, mut ob) = (
        Orchagent::new(ra.conn(0).await),
        Orchagent::new(rb.conn(0).await),
    );
    wait::appl_db_equals_kernel("namespace A's APPL_DB", &mut oa, &a.dut, T).await;
    wait::appl_db_equals_kernel("namespace B's APPL_DB", &mut ob, &b.dut, T).await;
    let (ta, tb) = (oa.sync().await, ob.sync().await);
    assert!(
        ta.len() >= 600 && tb.len() >= 400,
        "{} {}",
        ta.len(),
        tb.len()
    );
    assert!(
        ta.keys().all(|k| !k.starts_with("Ethernet4:10.2.")),
        "B's neighbors in A's APPL_DB"
    );
    assert!(
        tb.keys().all(|k| !k.starts_with("Ethernet0:10.1.")),
        "A's neighbors in B's APPL_DB"
    );
    let mac = |t: &neighsyncd_tests::kernel::Table| {
        t.get("Ethernet0:10.0.0.50")
            .and_then(|f| f.get("neigh"))
            .cloned()
    };
    assert_eq!(mac(&ta).as_deref(), Some("02:aa:00:00:00:01"));
    assert_eq!(mac(&tb).as_deref(), Some("02:bb:00:00:00:01"));
    for t in [&ta, &tb] {
        assert!(
            t.contains_key("Ethernet0:10.0.0.51"),
            "a namespace lost the shared key"
        );
    }
    // With eBPF, both namespaces' live events came from the one program.
    if source == "ebpf" {
        for ns in [na, nb] {
            let n = d.metric(
                &host,
                "neighsyncd_ebpf_events_total",
                &format!("namespace=\"{ns}\""),
            );
            assert!(n >= 400.0, "{ns}: {n} eBPF events");
        }
    }

    // One API over both: each record names its namespace, a filter keeps one, and the pages
    // of the whole list (across the namespaces) hold every record once.
    let own_a = list_all(&host, &format!("&namespace={na}"));
    let own_b = list_all(&host, &format!("&namespace={nb}"));
    assert!(
        own_a.iter().all(|r| r["namespace"] == na),
        "{:?}",
        own_a.first()
    );
    assert!(
        own_b.iter().all(|r| r["namespace"] == nb),
        "{:?}",
        own_b.first()
    );
    assert!(own_a.len() >= 600 && own_b.len() >= 400);
    let whole = list_all(&host, "");
    assert_eq!(
        whole.len(),
        own_a.len() + own_b.len(),
        "the pages skip or repeat records"
    );
    let both: Vec<&serde_json::Value> = whole
        .iter()
        .filter(|r| r["key"] == "Ethernet0:10.0.0.50")
        .collect();
    assert_eq!(both.len(), 2, "{both:?}");
    // One key by namespace; without one, the first namespace's.
    let one = |query: &str| {
        let path = format!("/api/v1/neighbors/Ethernet0/10.0.0.50{query}");
        let (code, body) = host.http(("::1", 8080), "GET", &path, &[], "").unwrap();
        assert_eq!(code, 200, "{path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        (v["namespace"].clone(), v["kernel_mac"].clone())
    };
    assert_eq!(
        one(&format!("?namespace={nb}")),
        (nb.into(), "02:bb:00:00:00:01".into())
    );
    assert_eq!(one(""), (na.into(), "02:aa:00:00:00:01".into()));
    for ns in [na, nb] {
        let n = d.metric(
            &host,
            "neighsyncd_neighbors",
            &format!("namespace=\"{ns}\""),
        );
        assert!(n > 0.0, "no neighbors gauge for {ns}");
    }

    // A's Redis goes away while both namespaces change: B keeps syncing meanwhile, in the
    // same process; A repairs its APPL_DB once its Redis is back (empty).
    let b_errors = || {
        d.metric(
            &host,
            "neighsyncd_redis_errors_total",
            &format!("namespace=\"{nb}\""),
        )
    };
    let before = b_errors();
    ra.kill();
    burst(&a, "Ethernet0", 1, 600, 100);
    burst(&b, "Ethernet4", 2, 400, 100);
    wait::appl_db_equals_kernel(
        "namespace B's APPL_DB while A's Redis is down",
        &mut ob,
        &b.dut,
        T,
    )
    .await;
    ra.restart();
    let mut oa = Orchagent::new(ra.conn(0).await);
    wait::appl_db_equals_kernel(
        "namespace A's APPL_DB after its Redis came back",
        &mut oa,
        &a.dut,
        T,
    )
    .await;
    assert_eq!(
        b_errors(),
        before,
        "namespace B saw Redis errors from A's loss"
    );
    assert!(
        d.metric(
            &host,
            "neighsyncd_redis_errors_total",
            &format!("namespace=\"{na}\"")
        ) > 0.0,
        "A did not notice its Redis going away"
    );
}

async fn warm_table(
    c: &mut redis::aio::MultiplexedConnection,
) -> std::collections::BTreeMap<String, String> {
    redis::cmd("HGETALL")
        .arg("WARM_RESTART_TABLE|neighsyncd")
        .query_async(c)
        .await
        .unwrap()
}

/// Each namespace served by one process keeps its own warm-restart contract: warm restart
/// enabled in one namespace's STATE_DB reconciles that namespace (handing orchagent only
/// what changed while the daemon was down) while the other starts cold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_keeps_each_namespace_s_warm_restart_contract() {
    require_lab("one_process_keeps_each_namespace_s_warm_restart_contract");
    let (a, b) = (Lab::new(), Lab::new());
    let host = Netns::new("nsdh");
    let (ra, rb) = (RedisServer::start(), RedisServer::start());
    let dir = tempfile::tempdir().unwrap();
    let global = sonic_db_files(dir.path(), &[(a.dut.name(), &ra), (b.dut.name(), &rb)]);
    let args = [
        "--namespace",
        a.dut.name(),
        "--namespace",
        b.dut.name(),
        "--db-global-config",
        &global,
    ];
    burst(&a, "Ethernet0", 1, 0, 20);
    burst(&b, "Ethernet4", 2, 0, 20);
    let mut d = Daemon::start_sonic_in(&host, &args);
    d.wait_ready(&host).await;
    let (mut oa, mut ob) = (
        Orchagent::new(ra.conn(0).await),
        Orchagent::new(rb.conn(0).await),
    );
    wait::appl_db_equals_kernel("namespace A's APPL_DB", &mut oa, &a.dut, T).await;
    wait::appl_db_equals_kernel("namespace B's APPL_DB", &mut ob, &b.dut, T).await;
    assert!(d.stop().success());

    // Warm restart in A only; one neighbor goes in each namespace while the daemon is down.
    let (mut sa, mut sb) = (ra.conn(6).await, rb.conn(6).await);
    for (key, field) in [
        ("WARM_RESTART_ENABLE_TABLE|swss", "enable"),
        ("NEIGH_RESTORE_TABLE|Flags", "restored"),
    ] {
        let _: () = redis::cmd("HSET")
            .arg(key)
            .arg(field)
            .arg("true")
            .query_async(&mut sa)
            .await
            .unwrap();
    }
    a.dut.ip("neigh del 10.1.0.2 dev Ethernet0");
    b.dut.ip("neigh del 10.2.0.2 dev Ethernet4");
    let (before_a, before_b) = (oa.writes(), ob.writes());
    let d = Daemon::start_sonic_in(&host, &args);
    d.wait_ready(&host).await;
    wait::appl_db_equals_kernel(
        "namespace A's APPL_DB after a warm start",
        &mut oa,
        &a.dut,
        T,
    )
    .await;
    wait::appl_db_equals_kernel(
        "namespace B's APPL_DB after a cold start",
        &mut ob,
        &b.dut,
        T,
    )
    .await;
    let handed_a: Vec<(String, bool)> = oa.seen[before_a..]
        .iter()
        .map(|(k, f)| (k.clone(), f.is_empty()))
        .collect();
    assert_eq!(
        handed_a,
        [("Ethernet0:10.1.0.2".to_string(), true)],
        "a warm restart hands orchagent only what changed"
    );
    assert!(ob.writes() > before_b, "B's cold start wrote nothing");
    let (wa, wb) = (warm_table(&mut sa).await, warm_table(&mut sb).await);
    assert_eq!(
        wa.get("state").map(String::as_str),
        Some("reconciled"),
        "{wa:?}"
    );
    assert_eq!(
        wa.get("restore_count").map(String::as_str),
        Some("1"),
        "{wa:?}"
    );
    assert_eq!(
        wb.get("restore_count").map(String::as_str),
        Some("0"),
        "{wb:?}"
    );
    assert_ne!(
        wb.get("state").map(String::as_str),
        Some("reconciled"),
        "{wb:?}"
    );
}
