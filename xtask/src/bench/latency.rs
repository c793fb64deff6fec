//! Latency at a steady rate: neighbor changes fed to `ip -batch -` line by line at a fixed
//! pace, each one a new MAC (so each is a write); the daemon's own histogram of event to
//! APPL_DB latency (`neighsyncd_event_to_appdb_seconds`), read before and after, gives the
//! quantiles. The daemon measures from the kernel's timestamp (eBPF) or the socket's receipt
//! (netlink) to the end of the Redis write, queueing and batching included.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use neighsyncd_tests::daemon::{Daemon, METRICS_PORT};
use neighsyncd_tests::netns::Netns;

use super::{Meta, lab, proc_stats};

pub struct Row {
    pub mode: String,
    pub rate: u32,
    pub seconds: f64,
    pub writes: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub cpu: f64,
}

/// Distinct neighbors the changes cycle over.
const POOL: u32 = 1000;

pub async fn run(mode: &str, args: &[&str], rate: u32, seconds: u32) -> anyhow::Result<Row> {
    let (redis, lab) = lab();
    let d = Daemon::start(&lab.dut, &redis, args);
    d.wait_ready(&lab.dut).await;
    let before = histogram(&lab.dut);
    let (cpu0, _) = proc_stats(d.pid());
    let mut ip = Command::new("ip")
        .args(["-n", lab.dut.name(), "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    let mut stdin = ip
        .stdin
        .take()
        .ok_or_else(|| anyhow::anyhow!("ip -batch: no stdin"))?;
    let total = u64::from(rate) * u64::from(seconds);
    let t0 = Instant::now();
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut chunk = String::new();
    while sent < total {
        tick.tick().await;
        let due = ((t0.elapsed().as_secs_f64() * f64::from(rate)) as u64).min(total);
        chunk.clear();
        while sent < due {
            let i = sent as u32;
            let host = i % POOL;
            let _ = writeln!(
                chunk,
                "neigh replace 10.100.{}.{} lladdr 02:00:00:{:02x}:{:02x}:{:02x} dev Ethernet0 nud reachable",
                host / 250,
                host % 250 + 2,
                (i >> 16) & 255,
                (i >> 8) & 255,
                i & 255
            );
            sent += 1;
        }
        stdin.write_all(chunk.as_bytes())?;
    }
    drop(stdin);
    ip.wait()?;
    let elapsed = t0.elapsed().as_secs_f64();
    // Until the daemon has written the last change: pending drains to zero.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline
        && (super::metric(&lab.dut, "neighsyncd_pending_operations") > 0.0
            || histogram(&lab.dut).count() < before.count() + 1.0)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (cpu1, _) = proc_stats(d.pid());
    let delta = histogram(&lab.dut).minus(&before);
    let row = Row {
        mode: mode.into(),
        rate,
        seconds: elapsed,
        writes: delta.count(),
        p50_ms: delta.quantile(0.50) * 1e3,
        p99_ms: delta.quantile(0.99) * 1e3,
        cpu: cpu1 - cpu0,
    };
    eprintln!(
        "{mode} {rate}/s: p50 {:.3} ms, p99 {:.3} ms over {:.0} writes",
        row.p50_ms, row.p99_ms, row.writes
    );
    Ok(row)
}

/// A cumulative histogram: (upper bound, count) by bound.
struct Histogram(Vec<(f64, f64)>);

fn histogram(ns: &Netns) -> Histogram {
    let (_, body) = ns
        .http_get(METRICS_PORT, "/metrics")
        .unwrap_or((0, String::new()));
    let mut b: Vec<(f64, f64)> = body
        .lines()
        .filter(|l| l.starts_with("neighsyncd_event_to_appdb_seconds_bucket{"))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    Histogram(b)
}

impl Histogram {
    fn count(&self) -> f64 {
        self.0.last().map(|b| b.1).unwrap_or(0.0)
    }

    fn minus(&self, earlier: &Histogram) -> Histogram {
        Histogram(
            self.0
                .iter()
                .map(|(le, n)| {
                    let before = earlier
                        .0
                        .iter()
                        .find(|(l, _)| l == le)
                        .map(|b| b.1)
                        .unwrap_or(0.0);
                    (*le, n - before)
                })
                .collect(),
        )
    }

    /// As Prometheus' `histogram_quantile`: linear within the bucket the rank falls in.
    fn quantile(&self, q: f64) -> f64 {
        let rank = q * self.count();
        let mut prev = (0.0, 0.0);
        for &(le, n) in &self.0 {
            if n >= rank {
                if le.is_infinite() {
                    return prev.0;
                }
                let within = (rank - prev.1) / (n - prev.1).max(1e-9);
                return prev.0 + (le - prev.0) * within;
            }
            prev = (le, n);
        }
        prev.0
    }
}

pub fn render(meta: &Meta, rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| date | command | mode | rate (changes/s) | seconds | APPL_DB writes | p50 (ms) | p99 (ms) | daemon CPU (s) |"
    );
    let _ = writeln!(s, "|---|---|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {} | {:.1} | {:.0} | {:.3} | {:.3} | {:.2} |",
            meta.date, meta.command, r.mode, r.rate, r.seconds, r.writes, r.p50_ms, r.p99_ms, r.cpu
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_the_bucket() {
        let h = Histogram(vec![
            (0.001, 50.0),
            (0.002, 99.0),
            (0.004, 100.0),
            (f64::INFINITY, 100.0),
        ]);
        assert!((h.quantile(0.5) - 0.001).abs() < 1e-12);
        assert!((h.quantile(0.99) - 0.002).abs() < 1e-12);
        assert!((h.quantile(0.995) - 0.003).abs() < 1e-9);
    }
}
