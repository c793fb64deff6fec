//! Cold start at scale: N neighbors in the kernel; the daemon starts (a) with APPL_DB already
//! holding exactly them (a restart: it must write nothing), (b) with APPL_DB empty (it must
//! write them all) and (c) with all of them written but staged, orchagent stalled (a restart
//! while orchagent is behind: it must read the staging back, and write nothing). Timed from the
//! process's start to `/ready`, and to APPL_DB complete (orchagent popping from then on).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use neighsyncd_tests::daemon::Daemon;
use neighsyncd_tests::orchagent::Orchagent;

use super::{Meta, batch_lines, lab, metric, proc_stats, wait_count};

pub struct Row {
    pub mode: String,
    pub n: u32,
    pub appl_db: &'static str,
    pub ready_s: f64,
    pub converged_s: f64,
    pub writes: f64,
    pub rss_mib: f64,
}

pub async fn run(mode: &str, args: &[&str], n: u32) -> anyhow::Result<Vec<Row>> {
    let (redis, lab) = lab();
    // Permanent: the table must not age while the daemon is down.
    lab.dut
        .batch(&batch_lines(n, "add").replace("nud reachable", "nud permanent"));
    let mut orch = Orchagent::new(redis.conn(0).await);
    let limit = Duration::from_secs(600);
    let mut first = Daemon::start(&lab.dut, &redis, args);
    first.wait_ready(&lab.dut).await;
    wait_count(&mut orch, n as usize, limit).await?;
    first.stop();
    let mut rows = Vec::new();
    for appl_db in ["already equal", "empty", STAGED] {
        if appl_db != "already equal" {
            let socket = redis.socket();
            let flushed = std::process::Command::new("redis-cli")
                .arg("-s")
                .arg(&socket)
                .args(["-n", "0", "FLUSHDB"])
                .status()?;
            anyhow::ensure!(flushed.success(), "redis-cli FLUSHDB failed");
            orch = Orchagent::new(redis.conn(0).await);
        }
        if appl_db == STAGED {
            // A daemon writes them all while orchagent pops nothing.
            let mut writer = Daemon::start(&lab.dut, &redis, args);
            writer.wait_ready(&lab.dut).await;
            wait_staged(&redis, n, limit).await?;
            writer.stop();
        }
        let t0 = Instant::now();
        let mut d = Daemon::start(&lab.dut, &redis, args);
        d.wait_ready(&lab.dut).await;
        let ready_s = t0.elapsed().as_secs_f64();
        wait_count(&mut orch, n as usize, limit).await?;
        let converged_s = t0.elapsed().as_secs_f64();
        let (_, rss) = proc_stats(d.pid());
        let writes = metric(&lab.dut, "neighsyncd_appdb_operations_total");
        d.stop();
        eprintln!(
            "{mode} cold start, {n} neighbors, APPL_DB {appl_db}: ready {ready_s:.2} s, converged {converged_s:.2} s, {writes} writes"
        );
        rows.push(Row {
            mode: mode.into(),
            n,
            appl_db,
            ready_s,
            converged_s,
            writes,
            rss_mib: rss,
        });
    }
    Ok(rows)
}

const STAGED: &str = "staged, orchagent stalled";

/// Until `NEIGH_TABLE_KEY_SET` holds `n` keys.
async fn wait_staged(
    redis: &neighsyncd_tests::redis_server::RedisServer,
    n: u32,
    limit: Duration,
) -> anyhow::Result<()> {
    let mut c = redis.conn(0).await;
    let t0 = Instant::now();
    loop {
        let staged: u64 = redis::cmd("SCARD")
            .arg("NEIGH_TABLE_KEY_SET")
            .query_async(&mut c)
            .await?;
        if staged >= u64::from(n) {
            return Ok(());
        }
        anyhow::ensure!(
            t0.elapsed() < limit,
            "{staged} of {n} keys staged within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn render(meta: &Meta, rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| date | command | mode | neighbors in the kernel | APPL_DB at start | ready (s) | APPL_DB complete (s) | APPL_DB writes | peak RSS (MiB) |"
    );
    let _ = writeln!(s, "|---|---|---|---:|---|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {} | {} | {:.2} | {:.2} | {:.0} | {:.1} |",
            meta.date,
            meta.command,
            r.mode,
            r.n,
            r.appl_db,
            r.ready_s,
            r.converged_s,
            r.writes,
            r.rss_mib
        );
    }
    s
}
