//! Bursts: N neighbors added in one `ip -batch`, a flap storm over them (2N kernel changes
//! SONiC must not see), then all deleted; each phase timed until orchagent holds the result.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use neighsyncd_tests::daemon::Daemon;
use neighsyncd_tests::netns::Lab;
use neighsyncd_tests::orchagent::Orchagent;

use super::{Meta, batch_lines, lab, metric, proc_stats, wait_count};

#[derive(Default, Clone)]
pub struct Row {
    pub mode: String,
    pub n: u32,
    pub phase: String,
    pub seconds: f64,
    /// Until the daemon's writes of the phase were all in APPL_DB (orchagent may still be
    /// popping them).
    pub appl_db_seconds: f64,
    pub kernel_seconds: f64,
    pub cpu: f64,
    pub rss_mib: f64,
    pub round_trips: f64,
    pub ops: f64,
    /// Kernel neighbor changes the phase made, and events that reached userspace.
    pub kernel_events: f64,
    pub user_events: f64,
    pub drops: f64,
}

impl Row {
    pub fn cpu_per_event_us(&self) -> f64 {
        self.cpu * 1e6 / self.kernel_events.max(1.0)
    }
}

/// One burst run of the daemon started with `args`: a row per phase.
pub async fn run(mode: &str, args: &[&str], n: u32) -> anyhow::Result<Vec<Row>> {
    let (redis, lab) = lab();
    let d = Daemon::start(&lab.dut, &redis, args);
    d.wait_ready(&lab.dut).await;
    let mut orch = Orchagent::new(redis.conn(0).await);
    let mut rows = Vec::new();
    let phases: [(&'static str, &str, usize); 3] = [
        ("add", "add", n as usize),
        ("flap storm", "flap", n as usize),
        ("delete", "del", 0),
    ];
    // Generous: a 1M burst takes the kernel alone ~15 s on two cores.
    let limit = Duration::from_secs(600);
    for (phase, verb, want) in phases {
        let (cpu0, _) = proc_stats(d.pid());
        let rt0 = metric(&lab.dut, "neighsyncd_appdb_batches_total");
        let ops0 = metric(&lab.dut, "neighsyncd_appdb_operations_total");
        let ev0 = metric(&lab.dut, "neighsyncd_events_total");
        let drops0 = metric(&lab.dut, "neighsyncd_ringbuf_drops_total");
        let mut appl_db_seconds = f64::NAN;
        let t0 = Instant::now();
        lab.dut.batch(&batch_lines(n, verb));
        let kernel_seconds = t0.elapsed().as_secs_f64();
        if verb == "flap" {
            // Nothing to write: a marker after the storm shows when the daemon is through it.
            lab.dut
                .ip("neigh add 10.99.0.1 lladdr 02:99:00:00:00:01 dev Ethernet0 nud permanent");
            wait_count(&mut orch, want + 1, limit).await?;
            lab.dut.ip("neigh del 10.99.0.1 dev Ethernet0");
            wait_count(&mut orch, want, limit).await?;
        } else {
            // The daemon's writes land first (its operation count reaches n), then orchagent
            // has popped them all.
            let appl_db = wait_ops(&lab, ops0 + f64::from(n), t0, limit).await?;
            appl_db_seconds = appl_db;
            wait_count(&mut orch, want, limit).await?;
        }
        let seconds = t0.elapsed().as_secs_f64();
        let (cpu1, rss) = proc_stats(d.pid());
        rows.push(Row {
            mode: mode.into(),
            n,
            phase: phase.into(),
            seconds,
            appl_db_seconds,
            kernel_seconds,
            cpu: cpu1 - cpu0,
            rss_mib: rss,
            round_trips: metric(&lab.dut, "neighsyncd_appdb_batches_total") - rt0,
            ops: metric(&lab.dut, "neighsyncd_appdb_operations_total") - ops0,
            kernel_events: f64::from(n) * if verb == "flap" { 2.0 } else { 1.0 },
            user_events: metric(&lab.dut, "neighsyncd_events_total") - ev0,
            drops: metric(&lab.dut, "neighsyncd_ringbuf_drops_total") - drops0,
        });
        eprintln!("{mode} {n} {phase}: {seconds:.2} s, peak RSS {rss:.1} MiB");
    }
    Ok(rows)
}

/// Seconds from `t0` until the daemon has made `ops` APPL_DB operations in all.
async fn wait_ops(lab: &Lab, ops: f64, t0: Instant, limit: Duration) -> anyhow::Result<f64> {
    loop {
        if metric(&lab.dut, "neighsyncd_appdb_operations_total") >= ops {
            return Ok(t0.elapsed().as_secs_f64());
        }
        anyhow::ensure!(
            t0.elapsed() < limit,
            "fewer than {ops} operations after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub const HEADER: &str = "| date | command | mode | neighbors | phase | kernel (s) | in APPL_DB (s) | in APPL_DB / kernel | converged (s) | ops/s | daemon CPU (s) | CPU per kernel event (µs) | events in the daemon | ring-buffer drops | peak RSS (MiB) | Redis round trips | APPL_DB ops |";

pub fn render(meta: &Meta, rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{HEADER}");
    let _ = writeln!(
        s,
        "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {} | {} | {:.2} | {} | {} | {:.2} | {:.0} | {:.2} | {:.2} | {:.0} | {:.0} | {:.1} | {:.0} | {:.0} |",
            meta.date,
            meta.command,
            r.mode,
            r.n,
            r.phase,
            r.kernel_seconds,
            na(r.appl_db_seconds),
            na(r.appl_db_seconds / r.kernel_seconds.max(1e-9)),
            r.seconds,
            f64::from(r.n) / r.seconds.max(1e-9),
            r.cpu,
            r.cpu_per_event_us(),
            r.user_events,
            r.drops,
            r.rss_mib,
            r.round_trips,
            r.ops
        );
    }
    s
}

/// Two decimals, or `n/a` (a flap storm writes nothing: no time until it is in APPL_DB).
fn na(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2}")
    } else {
        "n/a".into()
    }
}

/// The rows a rendered table records (for `--compare`).
pub fn parse(table: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    for line in table.lines().filter(|l| l.starts_with("| 2")) {
        let c: Vec<&str> = line.split('|').map(str::trim).collect();
        // c[0] is empty (before the first '|'); cells follow in HEADER's order.
        let num = |i: usize| c.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let (Some(mode), Some(n), Some(phase)) = (c.get(3), c.get(4), c.get(5)) else {
            continue;
        };
        let n: u32 = n.parse().unwrap_or(0);
        let cpu = num(11);
        rows.push(Row {
            mode: mode.to_string(),
            n,
            phase: phase.to_string(),
            kernel_seconds: num(6),
            appl_db_seconds: c.get(7).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN),
            seconds: num(9),
            cpu,
            kernel_events: if cpu > 0.0 {
                cpu * 1e6 / num(12).max(1e-9)
            } else {
                0.0
            },
            user_events: num(13),
            drops: num(14),
            rss_mib: num(15),
            round_trips: num(16),
            ops: num(17),
        });
    }
    rows
}
