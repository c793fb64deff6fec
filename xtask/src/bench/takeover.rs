//! Hot standby (`--ha`): a pair on N neighbors. What the standby costs while idle (CPU over
//! 10 s, resident memory, beside the leader's), and how long a takeover takes after the leader
//! is SIGKILLed or stopped with SIGTERM: until the standby leads, and until 1,000 changes made
//! right after the stop are in APPL_DB.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use neighsyncd_tests::daemon::Daemon;
use neighsyncd_tests::orchagent::Orchagent;

use super::{Meta, batch_lines, lab, proc_stats, wait_count};

/// Changes made in the gap, right after the leader is stopped.
const GAP_CHANGES: u32 = 1_000;

pub struct Row {
    pub n: u32,
    pub how: &'static str,
    pub leading_s: f64,
    pub changes_in_s: f64,
    pub standby_cpu_pct: f64,
    pub standby_rss_mib: f64,
    pub leader_rss_mib: f64,
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// `d`'s role, once `/ready` says 200.
async fn wait_role(
    d: &Daemon,
    lab: &neighsyncd_tests::netns::Lab,
    want: &str,
    limit: Duration,
) -> anyhow::Result<()> {
    let t0 = Instant::now();
    loop {
        let (code, body) = d.ready(&lab.dut);
        if code == 200 && body["role"] == want {
            return Ok(());
        }
        anyhow::ensure!(t0.elapsed() < limit, "not {want} within {limit:?}: {body}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub async fn run(args: &[&str], n: u32, kill: bool) -> anyhow::Result<Row> {
    let limit = Duration::from_secs(600);
    let (redis, lab) = lab();
    lab.dut
        .batch(&batch_lines(n, "add").replace("nud reachable", "nud permanent"));
    let mut orch = Orchagent::new(redis.conn(0).await);
    let mut leader = Daemon::start_ha(&lab.dut, &redis, 0, args);
    wait_role(&leader, &lab, "leader", limit).await?;
    wait_count(&mut orch, n as usize, limit).await?;
    let standby = Daemon::start_ha(&lab.dut, &redis, 1, args);
    wait_role(&standby, &lab, "standby", limit).await?;
    // Idle: nothing changes for 10 s.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (c0, _) = proc_stats(standby.pid());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (c1, _) = proc_stats(standby.pid());
    let standby_cpu_pct = (c1 - c0) / 10.0 * 100.0;
    let (standby_rss_mib, leader_rss_mib) = (rss_mib(standby.pid()), rss_mib(leader.pid()));
    // The leader goes; changes follow at once.
    let changes = batch_lines(GAP_CHANGES, "replace")
        .replace("lladdr 02:00:", "lladdr 02:01:")
        .replace("nud reachable", "nud permanent");
    let t0 = Instant::now();
    if kill {
        leader.kill();
    } else {
        leader.stop();
    }
    lab.dut.batch(&changes);
    wait_role(&standby, &lab, "leader", limit).await?;
    let leading_s = t0.elapsed().as_secs_f64();
    // Orchagent pops what is staged; then the 1,000 keys are read (not the whole table: at
    // 100k a full read would take longer than the takeover).
    let keys: Vec<String> = (0..GAP_CHANGES)
        .map(|i| {
            let (a, b) = (i / 250, i % 250 + 2);
            format!(
                "NEIGH_TABLE:Ethernet0:10.{}.{}.{}",
                100 + a / 256,
                a % 256,
                b
            )
        })
        .collect();
    loop {
        orch.pop_and_count().await;
        let mut p = redis::pipe();
        for k in &keys {
            p.cmd("HGET").arg(k).arg("neigh");
        }
        let macs: Vec<Option<String>> = p.query_async(orch.conn()).await?;
        let landed = macs
            .iter()
            .filter(|m| m.as_deref().is_some_and(|m| m.starts_with("02:01:")))
            .count();
        if landed >= GAP_CHANGES as usize {
            break;
        }
        anyhow::ensure!(
            t0.elapsed() < limit,
            "the gap's changes never landed: {landed}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let changes_in_s = t0.elapsed().as_secs_f64();
    let how = if kill { "SIGKILL" } else { "SIGTERM" };
    eprintln!(
        "takeover, {n} neighbors, {how}: leading after {leading_s:.2} s, the gap's changes in APPL_DB after {changes_in_s:.2} s; standby idle {standby_cpu_pct:.2}% CPU, {standby_rss_mib:.1} MiB (leader {leader_rss_mib:.1} MiB)"
    );
    Ok(Row {
        n,
        how,
        leading_s,
        changes_in_s,
        standby_cpu_pct,
        standby_rss_mib,
        leader_rss_mib,
    })
}

pub fn render(meta: &Meta, rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| date | command | neighbors | leader stopped by | standby leads after (s) | 1,000 changes made after the stop in APPL_DB after (s) | standby idle CPU (%) | standby RSS (MiB) | leader RSS (MiB) |"
    );
    let _ = writeln!(s, "|---|---|---:|---|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} |",
            meta.date,
            meta.command,
            r.n,
            r.how,
            r.leading_s,
            r.changes_in_s,
            r.standby_cpu_pct,
            r.standby_rss_mib,
            r.leader_rss_mib
        );
    }
    s
}
