//! `cargo xtask bench --resync`: what lost events cost. A burst overflows a small event buffer
//! (netlink) or ring (eBPF) while two CPU hogs load the machine; measured: the time until
//! orchagent holds the whole table, the losses, and how many dumps answered them.

use std::fmt::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use neighsyncd_tests::daemon::Daemon;
use neighsyncd_tests::netns::Lab;
use neighsyncd_tests::orchagent::Orchagent;
use neighsyncd_tests::redis_server::RedisServer;

use super::{batch_lines, metric, proc_stats, wait_count};

pub struct Row {
    mode: String,
    n: u32,
    hogs: usize,
    kernel_seconds: f64,
    seconds: f64,
    losses: f64,
    attempts: f64,
    cpu: f64,
}

/// Busy loops on every core but none for us: what a loaded switch CPU looks like.
struct Hogs(Vec<Child>);

impl Hogs {
    fn start(n: usize) -> Hogs {
        Hogs(
            (0..n)
                .filter_map(|_| {
                    Command::new("sh")
                        .args(["-c", "while :; do :; done"])
                        .stdout(Stdio::null())
                        .spawn()
                        .ok()
                })
                .collect(),
        )
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The host's ARP table entries (all namespaces), from `ip -s ntable`.
fn host_entries() -> Option<u64> {
    let out = Command::new("ip")
        .args(["-s", "ntable", "show", "name", "arp_cache"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rest = text.split(" entries ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// Waits until no namespace is still tearing its neighbors down (an earlier lab's), so that
/// one run's destroys do not land in the next run's dumps.
async fn host_table_settled() {
    let mut last = host_entries();
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = host_entries();
        if now == last {
            return;
        }
        last = now;
    }
}

pub async fn overrun(mode: &str, args: &[&str], n: u32, hogs: usize) -> anyhow::Result<Row> {
    host_table_settled().await;
    let redis = RedisServer::start();
    let lab = Lab::new();
    lab.dut.ip("addr add 10.100.0.1/14 dev Ethernet0");
    let d = Daemon::start(&lab.dut, &redis, args);
    d.wait_ready(&lab.dut).await;
    let mut orch = Orchagent::new(redis.conn(0).await);
    let _hogs = Hogs::start(hogs);
    let (cpu0, _) = proc_stats(d.pid());
    let attempts0 = metric(&lab.dut, "neighsyncd_dump_attempts_total");
    let t0 = Instant::now();
    lab.dut.batch(&batch_lines(n, "add"));
    let kernel_seconds = t0.elapsed().as_secs_f64();
    wait_count(&mut orch, n as usize, Duration::from_secs(600)).await?;
    let seconds = t0.elapsed().as_secs_f64();
    let (cpu1, _) = proc_stats(d.pid());
    let row = Row {
        mode: mode.into(),
        n,
        hogs,
        kernel_seconds,
        seconds,
        losses: metric(&lab.dut, "neighsyncd_netlink_overruns_total")
            + metric(
                &lab.dut,
                "neighsyncd_resyncs_total{cause=\"ringbuf_overflow\"}",
            ),
        attempts: metric(&lab.dut, "neighsyncd_dump_attempts_total") - attempts0,
        cpu: cpu1 - cpu0,
    };
    let verdicts: Vec<String> = ["clean", "churned", "resized", "partial"]
        .iter()
        .map(|v| {
            let n = metric(
                &lab.dut,
                &format!("neighsyncd_dump_attempts_total{{verdict=\"{v}\"}}"),
            );
            format!("{v}={n}")
        })
        .collect();
    eprintln!(
        "{mode} {n} hogs={hogs}: {seconds:.2} s, {} losses, {} dump attempts ({})",
        row.losses,
        row.attempts,
        verdicts.join(" ")
    );
    Ok(row)
}

/// The run with the median convergence time, and the spread of all runs.
pub fn median(mut runs: Vec<Row>) -> Option<(Row, f64, f64)> {
    runs.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    let (lo, hi) = (runs.first()?.seconds, runs.last()?.seconds);
    let mid = runs.len() / 2;
    Some((runs.swap_remove(mid), lo, hi))
}

pub fn render(rows: &[(Row, f64, f64)]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| daemon, source and buffer | neighbors | CPU hogs | kernel burst (s) | converged, median (s) | range of runs (s) | losses | dump attempts | daemon CPU (s) |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (r, lo, hi) in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.2} | {:.2} | {:.2}–{:.2} | {:.0} | {} | {:.2} |",
            r.mode,
            r.n,
            r.hogs,
            r.kernel_seconds,
            r.seconds,
            lo,
            hi,
            r.losses,
            if r.attempts > 0.0 {
                format!("{:.0}", r.attempts)
            } else {
                "n/a".into()
            },
            r.cpu
        );
    }
    s
}
