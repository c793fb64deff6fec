//! Hot standby (`--ha`): two daemons on one kernel and one Redis, one leader writing APPL_DB
//! through its fencing token, one standby ready to take over. Every scenario ends with
//! APPL_DB equal to the kernel; the takeover times are printed.

use std::time::{Duration, Instant};

use neighsyncd_tests::daemon::Daemon;
use neighsyncd_tests::netns::Lab;
use neighsyncd_tests::orchagent::Orchagent;
use neighsyncd_tests::redis_server::RedisServer;
use neighsyncd_tests::{require_lab, wait};

const T: Duration = Duration::from_secs(30);
/// A short lease, so that ten takeovers fit in a test: 1.2 s, renewed every 300 ms.
const LEASE: [&str; 4] = ["--ha-lease-ms", "1200", "--ha-renew-ms", "300"];

/// Daemon `i` of the pair (its own listeners in the shared namespace).
fn start(lab: &Lab, redis: &RedisServer, i: u16) -> Daemon {
    start_with(lab, redis, i, &[])
}

fn start_with(lab: &Lab, redis: &RedisServer, i: u16, extra: &[&str]) -> Daemon {
    let mut args = LEASE.to_vec();
    args.extend(extra);
    Daemon::start_ha(&lab.dut, redis, i, &args)
}

/// `/ready`'s role, when it answers.
fn role(d: &Daemon, lab: &Lab) -> Option<String> {
    d.ready(&lab.dut).1["role"].as_str().map(String::from)
}

/// Waits until `d` is ready (`/ready` 200) in `want`'s role.
async fn wait_role(d: &Daemon, lab: &Lab, want: &str) -> Duration {
    let t0 = Instant::now();
    loop {
        let (code, body) = d.ready(&lab.dut);
        if code == 200 && body["role"] == want {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < T,
            "not {want} and ready within {T:?}: {code} {body}\n{}",
            d.tail()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Which of the two leads, once exactly one does (and the other stands by, ready).
async fn leader_of(pair: &[Option<Daemon>; 2], lab: &Lab) -> usize {
    let t0 = Instant::now();
    loop {
        let roles: Vec<Option<String>> = pair
            .iter()
            .map(|d| d.as_ref().and_then(|d| role(d, lab)))
            .collect();
        let leaders: Vec<usize> = (0..2)
            .filter(|i| roles[*i].as_deref() == Some("leader"))
            .collect();
        if leaders.len() == 1 && roles[1 - leaders[0]].as_deref() == Some("standby") {
            return leaders[0];
        }
        assert!(t0.elapsed() < T, "no single leader within {T:?}: {roles:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `ip -batch` lines replacing neighbors `0..n` with MACs of `round`.
fn burst_lines(round: u32, n: u32) -> String {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!(
            "neigh replace 10.0.{}.{} lladdr 02:{round:02x}:00:00:{:02x}:{:02x} dev Ethernet0 nud permanent\n",
            i / 250,
            i % 250 + 3,
            i / 256,
            i % 256
        ));
    }
    s
}

/// `ip -n NS -batch` of `lines` on a thread of its own (a burst the test acts during).
fn spawn_batch(lab: &Lab, lines: String) -> std::thread::JoinHandle<()> {
    let ns = lab.dut.name().to_string();
    std::thread::spawn(move || {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), lines).unwrap();
        let st = std::process::Command::new("ip")
            .args(["-n", &ns, "-batch"])
            .arg(f.path())
            .status()
            .unwrap();
        assert!(st.success(), "ip -batch failed");
    })
}

/// NEIGH_TABLE sets a daemon wrote, from its log after byte `from` (a standby writes none).
fn sets_logged(d: &Daemon, from: usize) -> u64 {
    let log = d.log();
    log.get(from..)
        .unwrap_or("")
        .lines()
        .filter(|l| l.contains("APPL_DB batch written"))
        .filter_map(|l| {
            let at = l.find(" sets=")? + " sets=".len();
            l[at..].split(' ').next()?.parse::<u64>().ok()
        })
        .sum()
}

/// Waits until `d`'s NEIGH_TABLE sets pass `n` (the burst is being written).
async fn wait_sets(d: &Daemon, lab: &Lab, n: f64) {
    let t0 = Instant::now();
    while d.metric(
        &lab.dut,
        "neighsyncd_appdb_operations_total",
        "op=\"set\",table=\"NEIGH_TABLE\"",
    ) < n
    {
        assert!(
            t0.elapsed() < T,
            "the leader wrote nothing of the burst\n{}",
            d.tail()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_killed_mid_burst_ten_times_loses_nothing() {
    require_lab("the_leader_killed_mid_burst_ten_times_loses_nothing");
    let lab = Lab::new();
    let redis = RedisServer::start();
    let mut pair = [Some(start(&lab, &redis, 0)), Some(start(&lab, &redis, 1))];
    let mut orch = Orchagent::new(redis.conn(0).await);
    let mut takeovers = vec![];
    for round in 1..=10u32 {
        let l = leader_of(&pair, &lab).await;
        let leader = pair[l].as_mut().unwrap();
        let before = leader.metric(
            &lab.dut,
            "neighsyncd_appdb_operations_total",
            "op=\"set\",table=\"NEIGH_TABLE\"",
        );
        let burst = spawn_batch(&lab, burst_lines(round, 10_000));
        wait_sets(leader, &lab, before + 1000.0).await;
        leader.kill();
        let killed_at = Instant::now();
        burst.join().unwrap();
        let standby = pair[1 - l].as_ref().unwrap();
        wait_role(standby, &lab, "leader").await;
        takeovers.push(killed_at.elapsed());
        wait::appl_db_equals_kernel(
            &format!("APPL_DB after round {round}'s leader was killed"),
            &mut orch,
            &lab.dut,
            T,
        )
        .await;
        // The killed one comes back, as the standby.
        pair[l] = Some(start(&lab, &redis, l as u16));
        wait_role(pair[l].as_ref().unwrap(), &lab, "standby").await;
    }
    eprintln!("takeover after SIGKILL (1.2 s lease, 300 ms renewal): {takeovers:?}");
    let taken = pair
        .iter()
        .flatten()
        .map(|d| {
            d.metric(
                &lab.dut,
                "neighsyncd_ha_takeovers_total",
                "cause=\"lease_expired\"",
            )
        })
        .sum::<f64>();
    assert!(taken >= 1.0, "no takeover counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_is_fenced_off_and_steps_down() {
    require_lab("a_paused_leader_is_fenced_off_and_steps_down");
    let lab = Lab::new();
    let redis = RedisServer::start();
    let pair = [Some(start(&lab, &redis, 0)), Some(start(&lab, &redis, 1))];
    let l = leader_of(&pair, &lab).await;
    let (old, new) = (pair[l].as_ref().unwrap(), pair[1 - l].as_ref().unwrap());
    wait_role(old, &lab, "leader").await;
    wait_role(new, &lab, "standby").await;
    old.pause();
    let t = wait_role(new, &lab, "leader").await;
    eprintln!("takeover after SIGSTOP: {t:?}");
    // Changes while the old leader sleeps: the new one writes them; the old one finds them
    // waiting when it wakes, and tries to.
    lab.dut.batch(&burst_lines(1, 300));
    let mut orch = Orchagent::new(redis.conn(0).await);
    wait::appl_db_equals_kernel("APPL_DB under the new leader", &mut orch, &lab.dut, T).await;
    old.resume();
    wait_role(old, &lab, "standby").await;
    let refused = old.metric(&lab.dut, "neighsyncd_ha_fenced_writes_total", "");
    assert!(
        refused > 0.0,
        "no write of the old leader was refused\n{}",
        old.tail()
    );
    assert!(
        old.log().contains("stepping down to standby"),
        "{}",
        old.tail()
    );
    lab.dut.batch(&burst_lines(2, 300));
    wait::appl_db_equals_kernel("APPL_DB after the old leader woke", &mut orch, &lab.dut, T).await;
    assert_eq!(new.metric(&lab.dut, "neighsyncd_ha_leader", ""), 1.0);
    assert_eq!(old.metric(&lab.dut, "neighsyncd_ha_leader", ""), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_handoff_mid_burst_writes_each_change_once() {
    require_lab("a_graceful_handoff_mid_burst_writes_each_change_once");
    let lab = Lab::new();
    let redis = RedisServer::start();
    let mut pair = [Some(start(&lab, &redis, 0)), Some(start(&lab, &redis, 1))];
    let mut orch = Orchagent::new(redis.conn(0).await);
    let l = leader_of(&pair, &lab).await;
    wait_role(pair[1 - l].as_ref().unwrap(), &lab, "standby").await;
    wait::appl_db_equals_kernel("APPL_DB before", &mut orch, &lab.dut, T).await;
    let marks: Vec<usize> = pair.iter().flatten().map(|d| d.log().len()).collect();
    let burst = spawn_batch(&lab, burst_lines(1, 10_000));
    let leader = pair[l].as_mut().unwrap();
    let before = leader.metric(
        &lab.dut,
        "neighsyncd_appdb_operations_total",
        "op=\"set\",table=\"NEIGH_TABLE\"",
    );
    wait_sets(leader, &lab, before + 1000.0).await;
    let stopped_at = Instant::now();
    assert!(leader.stop().success(), "{}", leader.tail());
    burst.join().unwrap();
    let new = pair[1 - l].as_ref().unwrap();
    wait_role(new, &lab, "leader").await;
    eprintln!("takeover after SIGTERM: {:?}", stopped_at.elapsed());
    wait::appl_db_equals_kernel("APPL_DB after the handoff", &mut orch, &lab.dut, T).await;
    assert_eq!(
        new.metric(
            &lab.dut,
            "neighsyncd_ha_takeovers_total",
            "cause=\"released\""
        ),
        1.0,
        "{}",
        new.tail()
    );
    // The new leader followed the old one's writes: it wrote the rest without reading APPL_DB
    // back.
    assert!(
        new.log().contains("the last leader's writes are all in"),
        "{}",
        new.tail()
    );
    assert!(
        !new.log().contains("reading APPL_DB back"),
        "{}",
        new.tail()
    );
    // Every one of the 10,000 changes was written once, by one or the other.
    let old = pair[l].as_ref().unwrap();
    let written = sets_logged(old, marks[l]) + sets_logged(new, marks[1 - l]);
    assert_eq!(written, 10_000, "sets written across the handoff");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_under_a_pair_leaves_one_leader() {
    require_lab("redis_restarted_under_a_pair_leaves_one_leader");
    let lab = Lab::new();
    let mut redis = RedisServer::start();
    let pair = [Some(start(&lab, &redis, 0)), Some(start(&lab, &redis, 1))];
    leader_of(&pair, &lab).await;
    lab.dut.batch(&burst_lines(1, 500));
    redis.restart();
    lab.dut.batch(&burst_lines(2, 500));
    leader_of(&pair, &lab).await;
    let mut orch = Orchagent::new(redis.conn(0).await);
    wait::appl_db_equals_kernel("APPL_DB after Redis restarted", &mut orch, &lab.dut, T).await;
    // The metrics agree: one leader (read twice in a row the same, so that a handover between
    // the two reads is not taken for two leaders or none).
    let t0 = Instant::now();
    loop {
        let read = || -> Vec<f64> {
            pair.iter()
                .flatten()
                .map(|d| d.metric(&lab.dut, "neighsyncd_ha_leader", ""))
                .collect()
        };
        let (a, b) = (read(), read());
        if a == b && a.iter().sum::<f64>() == 1.0 {
            break;
        }
        assert!(t0.elapsed() < T, "leaders by metrics: {a:?} then {b:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_drives_the_warm_restart_state() {
    require_lab("only_the_leader_drives_the_warm_restart_state");
    let lab = Lab::new();
    let redis = RedisServer::start();
    lab.dut.batch(&burst_lines(1, 50));
    // A cold start first (restore_count 0), as SONiC's own sequence has it.
    let mut first = start(&lab, &redis, 0);
    wait_role(&first, &lab, "leader").await;
    let mut orch = Orchagent::new(redis.conn(0).await);
    wait::appl_db_equals_kernel("APPL_DB after a cold start", &mut orch, &lab.dut, T).await;
    assert!(first.stop().success());
    let mut state = redis.conn(6).await;
    for (key, field) in [
        ("WARM_RESTART_ENABLE_TABLE|swss", "enable"),
        ("NEIGH_RESTORE_TABLE|Flags", "restored"),
    ] {
        let _: () = redis::cmd("HSET")
            .arg(key)
            .arg(field)
            .arg("true")
            .query_async(&mut state)
            .await
            .unwrap();
    }
    let before = orch.writes();
    let pair = [Some(start(&lab, &redis, 0)), Some(start(&lab, &redis, 1))];
    let l = leader_of(&pair, &lab).await;
    let t0 = Instant::now();
    let warm = loop {
        let t: std::collections::BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg("WARM_RESTART_TABLE|neighsyncd")
            .query_async(&mut state)
            .await
            .unwrap();
        if t.get("state").map(String::as_str) == Some("reconciled") {
            break t;
        }
        assert!(t0.elapsed() < T, "never reconciled: {t:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        warm.get("restore_count").map(String::as_str),
        Some("1"),
        "one daemon, the leader, restarted warm: {warm:?}"
    );
    let standby = pair[1 - l].as_ref().unwrap();
    assert!(
        !standby.log().contains("WARM_RESTART_TABLE"),
        "{}",
        standby.tail()
    );
    wait::appl_db_equals_kernel("APPL_DB after the warm start", &mut orch, &lab.dut, T).await;
    assert_eq!(orch.writes(), before, "writes on an unchanged warm restart");
}

/// `cmd` inside the lab's namespace: (success, standard output then standard error).
fn run_in(lab: &Lab, cmd: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", lab.dut.name()])
        .args(cmd)
        .output()
        .expect("run");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// docs/UPGRADE.md: a standby "reads APPL_DB once when it starts", and follows the leader's
/// writes from there. Its subscription to the writes channel is made before that read-back,
/// so its picture stands on it (it used to read APPL_DB three times as it started).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_reads_appl_db_once_then_follows_the_leader() {
    require_lab("a_standby_reads_appl_db_once_then_follows_the_leader");
    let lab = Lab::new();
    let redis = RedisServer::start();
    lab.dut.batch(&burst_lines(1, 20));
    let leader = start(&lab, &redis, 0);
    wait_role(&leader, &lab, "leader").await;
    let standby = start(&lab, &redis, 1);
    wait_role(&standby, &lab, "standby").await;
    // One neighbor more: the leader writes it; the standby's APPL_DB count moves only by
    // what it reads back or follows.
    lab.dut.batch(&burst_lines(1, 21));
    let t0 = Instant::now();
    while standby.metric(&lab.dut, "neighsyncd_neighbors", "family=\"IPv4\"") < 21.0 {
        assert!(
            t0.elapsed() < T,
            "the standby never counted the leader's 21st neighbor\n{}",
            standby.tail()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Followed: any read-back its subscription's notice called for came before it.
    let read_backs = standby
        .log()
        .lines()
        .filter(|l| l.contains("APPL_DB NEIGH_TABLE read back"))
        .count();
    assert_eq!(
        read_backs,
        1,
        "the standby read APPL_DB back {read_backs} times\n{}",
        standby.tail()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_serves_reads_names_its_role_and_refuses_writes() {
    require_lab("a_standby_serves_reads_names_its_role_and_refuses_writes");
    let lab = Lab::new();
    let redis = RedisServer::start();
    lab.dut.batch(&burst_lines(1, 20));
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "ha-test-token\n").unwrap();
    let token = ["--api-token-file", token_file.to_str().unwrap()];
    let pair = [
        Some(start_with(&lab, &redis, 0, &token)),
        Some(start_with(&lab, &redis, 1, &token)),
    ];
    let bearer = "Authorization: Bearer ha-test-token";
    let l = leader_of(&pair, &lab).await;
    let s = 1 - l;
    wait_role(pair[s].as_ref().unwrap(), &lab, "standby").await;
    let rest = |i: usize| format!("http://[::1]:{}", 8181 + i);
    let ctl = neighsyncd_tests::daemon::binary().with_file_name("neighsyncctl");
    let ctl = ctl.to_str().unwrap();

    // Both REST listeners up (`/ready` does not wait for them).
    for i in [l, s] {
        let t0 = Instant::now();
        while !pair[i].as_ref().unwrap().ready(&lab.dut).1["checks"]
            .as_array()
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c["name"] == "rest_listener" && c["ok"] == true)
            })
        {
            assert!(t0.elapsed() < T, "daemon {i}'s REST listener never came up");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // The leader's name, as the lease has it.
    let (ok, out) = run_in(&lab, &[ctl, "--api", &rest(l), "ha"]);
    assert!(ok, "{out}");
    let me = |out: &str, field: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(field))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let leader = me(&out, "this daemon");
    assert_eq!(me(&out, "role"), "leader", "{out}");
    assert_eq!(me(&out, "leader"), leader, "{out}");
    let (ok, out) = run_in(&lab, &[ctl, "--api", &rest(s), "ha"]);
    assert!(ok, "{out}");
    assert_eq!(me(&out, "role"), "standby", "{out}");
    assert_eq!(
        me(&out, "leader"),
        leader,
        "the standby names the leader: {out}"
    );
    assert!(
        !me(&out, "token").is_empty() && me(&out, "token") != "-",
        "{out}"
    );

    // Reads from the standby (curl), its role in the response; a write refused, naming the
    // leader.
    let (ok, out) = run_in(
        &lab,
        &["curl", "-s", "-i", &format!("{}/api/v1/neighbors", rest(s))],
    );
    assert!(ok, "{out}");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.to_lowercase().contains("x-neighsyncd-role: standby"),
        "{out}"
    );
    assert!(
        out.contains("Ethernet0:10.0.0.3"),
        "the standby's read model: {out}"
    );
    // Its read model follows what the leader writes: APPL_DB's side of a new neighbor shows
    // on the standby, which wrote nothing.
    lab.dut
        .ip("neigh add 10.0.0.77 lladdr 02:77:00:00:00:77 dev Ethernet0 nud permanent");
    let t0 = Instant::now();
    loop {
        let (code, body) = lab
            .dut
            .http(
                ("::1", 8181 + s as u16),
                "GET",
                "/api/v1/neighbors/Ethernet0/10.0.0.77",
                &[],
                "",
            )
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if code == 200 && v["appl_db_mac"] == "02:77:00:00:00:77" {
            break;
        }
        assert!(
            t0.elapsed() < T,
            "the standby's view of APPL_DB: {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (ok, out) = run_in(
        &lab,
        &[
            "curl",
            "-s",
            "-i",
            "-H",
            bearer,
            "-X",
            "POST",
            &format!("{}/api/v1/resync", rest(s)),
        ],
    );
    assert!(ok, "{out}");
    assert!(out.starts_with("HTTP/1.1 409"), "{out}");
    assert!(out.contains(&leader), "the refusal names the leader: {out}");
    let (ok, out) = run_in(
        &lab,
        &[
            "curl",
            "-s",
            "-i",
            "-H",
            bearer,
            "-X",
            "POST",
            &format!("{}/api/v1/resync", rest(l)),
        ],
    );
    assert!(ok && out.starts_with("HTTP/1.1 202"), "{out}");
    assert!(
        out.to_lowercase().contains("x-neighsyncd-role: leader"),
        "{out}"
    );

    // gRPC (grpcurl): the role in the response metadata, the write refused.
    let grpcurl = neighsyncd_tests::stock_tool(
        "grpcurl",
        "a_standby_serves_reads_names_its_role_and_refuses_writes",
    );
    let grpc = format!("[::1]:{}", 50151 + s);
    let (ok, out) = run_in(
        &lab,
        &[
            grpcurl.to_str().unwrap(),
            "-plaintext",
            "-v",
            &grpc,
            "neighsyncd.v1.Neighsyncd/GetStats",
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("x-neighsyncd-role: standby"), "{out}");
    let (ok, out) = run_in(
        &lab,
        &[
            grpcurl.to_str().unwrap(),
            "-plaintext",
            "-H",
            bearer,
            &grpc,
            "neighsyncd.v1.Neighsyncd/Resync",
        ],
    );
    assert!(!ok && out.contains("FailedPrecondition"), "{out}");
    assert!(out.contains(&leader), "{out}");
    // `/ready` says standby-ready; `neighsyncctl health` shows the role.
    let (ok, out) = run_in(
        &lab,
        &[
            ctl,
            "--metrics",
            &format!("http://127.0.0.1:{}", 9191 + s),
            "health",
        ],
    );
    assert!(ok, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("role") && l.ends_with("standby")),
        "{out}"
    );
}

/// docs/UPGRADE.md's procedure, with the kernel changing all along: the new version starts as
/// standby, `neighsyncctl health` says it is ready as standby, the old one gets SIGTERM, and
/// the new one leads with nothing lost; the old one comes back as the new standby.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upgrade_procedure_hands_over_without_a_gap() {
    require_lab("the_upgrade_procedure_hands_over_without_a_gap");
    let lab = Lab::new();
    let redis = RedisServer::start();
    let mut old = start(&lab, &redis, 0);
    wait_role(&old, &lab, "leader").await;
    let mut orch = Orchagent::new(redis.conn(0).await);
    // Changes all along: rounds of 2,000 replacements until told to stop.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let (stop, ns) = (stop.clone(), lab.dut.name().to_string());
        std::thread::spawn(move || {
            let mut round = 1;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let f = tempfile::NamedTempFile::new().unwrap();
                std::fs::write(f.path(), burst_lines(round % 200 + 1, 2_000)).unwrap();
                let st = std::process::Command::new("ip")
                    .args(["-n", &ns, "-batch"])
                    .arg(f.path())
                    .status()
                    .unwrap();
                assert!(st.success());
                round += 1;
            }
        })
    };
    // 1. The new version, as standby; 2. ready as standby, as neighsyncctl says.
    let new = start(&lab, &redis, 1);
    let ctl = neighsyncd_tests::daemon::binary().with_file_name("neighsyncctl");
    let metrics = format!("http://127.0.0.1:{}", new.metrics_port());
    let t0 = Instant::now();
    loop {
        let (ok, out) = run_in(
            &lab,
            &[ctl.to_str().unwrap(), "--metrics", &metrics, "health"],
        );
        if ok
            && out
                .lines()
                .any(|l| l.starts_with("role") && l.ends_with("standby"))
        {
            break;
        }
        assert!(t0.elapsed() < T, "never standby-ready: {out}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // 3. The old one stops; the new one leads at once.
    let stopped = Instant::now();
    assert!(old.stop().success(), "{}", old.tail());
    wait_role(&new, &lab, "leader").await;
    eprintln!("upgrade handover: {:?}", stopped.elapsed());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    churn.join().unwrap();
    wait::appl_db_equals_kernel("APPL_DB after the upgrade", &mut orch, &lab.dut, T).await;
    // The old instance comes back (on the new version) as the new standby.
    old = start(&lab, &redis, 0);
    wait_role(&old, &lab, "standby").await;
}
