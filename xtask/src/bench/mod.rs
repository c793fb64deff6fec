//! `cargo xtask bench`: end-to-end bursts through the real kernel, daemon and Redis.
//!
//! For each size N: N neighbors added in one `ip -batch` in a lab namespace; measured: time until
//! orchagent (popping like ConsumerStateTable) holds all N, the daemon's CPU seconds (utime +
//! stime from /proc), its peak RSS (VmHWM), and the Redis round trips it made (its
//! `appdb_batches_total`); then the same for deleting them all.

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use neighsyncd_tests::daemon::{Daemon, METRICS_PORT};
use neighsyncd_tests::netns::{Lab, Netns};
use neighsyncd_tests::orchagent::Orchagent;
use neighsyncd_tests::redis_server::RedisServer;

mod resync;

#[derive(Default)]
struct Row {
    mode: String,
    n: u32,
    phase: &'static str,
    seconds: f64,
    kernel_seconds: f64,
    cpu: f64,
    rss_mib: f64,
    round_trips: f64,
    ops: f64,
    /// Kernel neighbor changes the phase made, and events that reached userspace.
    kernel_events: f64,
    user_events: f64,
    drops: f64,
}

/// What to run.
pub struct Options {
    pub sizes: Vec<u32>,
    pub write: bool,
    /// Only the lost-events scenario (`resync.rs`).
    pub resync: bool,
    /// Measure this daemon binary (e.g. an older build) instead of building this tree's.
    pub daemon: Option<std::path::PathBuf>,
    /// Runs per scenario (the median is reported).
    pub repeat: usize,
}

pub fn run(o: &Options) -> anyhow::Result<()> {
    anyhow::ensure!(
        neighsyncd_tests::lab_missing().is_none(),
        "benchmarks need root, iproute2 and redis-server"
    );
    let bin = match &o.daemon {
        Some(p) => p.clone(),
        None => {
            crate::run(Command::new("cargo").args([
                "build",
                "--release",
                "-p",
                "neighsyncd",
                "--bins",
            ]))?;
            crate::root().join("target/release/neighsyncd")
        }
    };
    // SAFETY: still single-threaded (the runtime starts below).
    unsafe {
        std::env::set_var("NEIGHSYNCD_BIN", &bin);
        std::env::set_var("NEIGHSYNCD_TEST_LOG", "warn");
    }
    let rt = tokio::runtime::Runtime::new()?;
    if o.resync {
        let label = match &o.daemon {
            Some(p) => p.display().to_string(),
            None => "this build".into(),
        };
        let mut rows: Vec<(resync::Row, f64, f64)> = Vec::new();
        for &n in &o.sizes {
            neighsyncd_tests::raise_neigh_limits(u64::from(n) + 1000);
            for (mode, args) in [
                (
                    "netlink, 64 KiB buffer",
                    &["--source", "netlink", "--netlink-rcvbuf", "65536"][..],
                ),
                (
                    "ebpf, 64 KiB ring",
                    &["--source", "ebpf", "--ebpf-ring-bytes", "65536"][..],
                ),
            ] {
                let mut runs = Vec::new();
                for _ in 0..o.repeat.max(1) {
                    let mode = format!("{label}: {mode}");
                    runs.push(rt.block_on(resync::overrun(&mode, args, n, 2))?);
                }
                rows.extend(resync::median(runs));
            }
        }
        println!("{}", resync::render(&rows));
        return Ok(());
    }
    let (sizes, write) = (&o.sizes, o.write);
    let mut rows = Vec::new();
    for &n in sizes {
        neighsyncd_tests::raise_neigh_limits(u64::from(n) + 1000);
        rows.extend(rt.block_on(burst("netlink", &["--source", "netlink"], n))?);
        rows.extend(rt.block_on(burst("ebpf", &["--source", "ebpf"], n))?);
    }
    // The C++ daemon's way, approximated: one operation per Redis round trip.
    if let Some(&n) = sizes.first() {
        rows.extend(rt.block_on(burst(
            "netlink, batch_max=1",
            &["--source", "netlink", "--batch-max", "1"],
            n,
        ))?);
    }
    let table = render(&rows);
    println!("{table}");
    if write {
        let path = crate::root().join("docs/BENCHMARKING.md");
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        std::fs::write(&path, splice(&old, &table))?;
        println!("written to {}", path.display());
    }
    Ok(())
}

fn proc_stats(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name: state is field 3; utime 14, stime 15 (1-based).
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc_sysconf_clk_tck() } as f64;
    let cpu = (f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0))
        / tick;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm_kib = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0);
    (cpu, hwm_kib / 1024.0)
}

unsafe fn libc_sysconf_clk_tck() -> i64 {
    unsafe extern "C" {
        fn sysconf(name: i32) -> i64;
    }
    // _SC_CLK_TCK is 2 on Linux.
    unsafe { sysconf(2) }
}

fn metric(ns: &Netns, name: &str) -> f64 {
    let (_, body) = ns
        .http_get(METRICS_PORT, "/metrics")
        .unwrap_or((0, String::new()));
    body.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn batch_lines(n: u32, verb: &str) -> String {
    let mut s = String::new();
    for i in 0..n {
        let (a, b) = (i / 250, i % 250 + 2);
        let ip = format!("10.{}.{}.{}", 100 + a / 256, a % 256, b);
        let mac = format!(
            "02:00:{:02x}:{:02x}:{:02x}:{:02x}",
            (i >> 24) & 0xff,
            (i >> 16) & 0xff,
            (i >> 8) & 0xff,
            i & 0xff
        );
        let _ = if verb == "del" {
            writeln!(s, "neigh del {ip} dev Ethernet0")
        } else if verb == "flap" {
            writeln!(s, "neigh change {ip} lladdr {mac} dev Ethernet0 nud stale")
        } else {
            writeln!(
                s,
                "neigh {verb} {ip} lladdr 02:00:{:02x}:{:02x}:{:02x}:{:02x} dev Ethernet0 nud reachable",
                (i >> 24) & 0xff,
                (i >> 16) & 0xff,
                (i >> 8) & 0xff,
                i & 0xff
            )
        };
    }
    if verb == "flap" {
        // ... and back to REACHABLE, MAC unchanged.
        let back = s.replace(" nud stale", " nud reachable");
        s.push_str(&back);
    }
    s
}

async fn wait_count(orch: &mut Orchagent, want: usize, limit: Duration) -> anyhow::Result<()> {
    let t0 = Instant::now();
    loop {
        let got = orch.pop_and_count().await;
        if got == want {
            return Ok(());
        }
        anyhow::ensure!(
            t0.elapsed() < limit,
            "APPL_DB holds {got}, want {want} after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn burst(mode: &str, args: &[&str], n: u32) -> anyhow::Result<Vec<Row>> {
    let redis = RedisServer::start();
    let lab = Lab::new();
    lab.dut.ip("addr add 10.100.0.1/14 dev Ethernet0");
    let d = Daemon::start(&lab.dut, &redis, args);
    d.wait_ready(&lab.dut).await;
    let mut orch = Orchagent::new(redis.conn(0).await);
    let mut rows = Vec::new();
    let phases: [(&'static str, &str, usize); 3] = [
        ("add", "add", n as usize),
        ("flap storm", "flap", n as usize),
        ("delete", "del", 0),
    ];
    for (phase, verb, want) in phases {
        let (cpu0, _) = proc_stats(d.pid());
        let rt0 = metric(&lab.dut, "neighsyncd_appdb_batches_total");
        let ops0 = metric(&lab.dut, "neighsyncd_appdb_operations_total");
        let ev0 = metric(&lab.dut, "neighsyncd_events_total");
        let drops0 = metric(&lab.dut, "neighsyncd_ringbuf_drops_total");
        let t0 = Instant::now();
        lab.dut.batch(&batch_lines(n, verb));
        let kernel_seconds = t0.elapsed().as_secs_f64();
        if verb == "flap" {
            // Nothing to write: a marker after the storm shows when the daemon is through it.
            lab.dut
                .ip("neigh add 10.99.0.1 lladdr 02:99:00:00:00:01 dev Ethernet0 nud permanent");
            wait_count(&mut orch, want + 1, Duration::from_secs(600)).await?;
            lab.dut.ip("neigh del 10.99.0.1 dev Ethernet0");
            wait_count(&mut orch, want, Duration::from_secs(600)).await?;
        } else {
            wait_count(&mut orch, want, Duration::from_secs(600)).await?;
        }
        let seconds = t0.elapsed().as_secs_f64();
        let (cpu1, rss) = proc_stats(d.pid());
        rows.push(Row {
            mode: mode.into(),
            n,
            phase,
            seconds,
            kernel_seconds,
            cpu: cpu1 - cpu0,
            rss_mib: rss,
            round_trips: metric(&lab.dut, "neighsyncd_appdb_batches_total") - rt0,
            ops: metric(&lab.dut, "neighsyncd_appdb_operations_total") - ops0,
            kernel_events: f64::from(n) * if verb == "flap" { 2.0 } else { 1.0 },
            user_events: metric(&lab.dut, "neighsyncd_events_total") - ev0,
            drops: metric(&lab.dut, "neighsyncd_ringbuf_drops_total") - drops0,
        });
        eprintln!("{mode} {n} {phase}: {seconds:.2} s");
    }
    Ok(rows)
}

fn render(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| mode | neighbors | phase | kernel (s) | converged (s) | ops/s | daemon CPU (s) | CPU per kernel event (µs) | events in the daemon | ring-buffer drops | peak RSS (MiB) | Redis round trips | APPL_DB ops |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} | {:.0} | {:.0} | {:.1} | {:.0} | {:.0} |",
            r.mode,
            r.n,
            r.phase,
            r.kernel_seconds,
            r.seconds,
            f64::from(r.n) / r.seconds.max(1e-9),
            r.cpu,
            r.cpu * 1e6 / r.kernel_events.max(1.0),
            r.user_events,
            r.drops,
            r.rss_mib,
            r.round_trips,
            r.ops
        );
    }
    s
}

const BEGIN: &str = "<!-- bench:begin -->";
const END: &str = "<!-- bench:end -->";

/// Replaces the generated section of BENCHMARKING.md (or appends one).
fn splice(old: &str, table: &str) -> String {
    let machine = format!(
        "Measured {} on {} ({} cores), kernel {}, with `sudo cargo xtask bench`.\n\n",
        Command::new("date")
            .arg("-u")
            .arg("+%Y-%m-%d")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default(),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(
                |c| c.lines().find(|l| l.starts_with("model name")).map(|l| l
                    .split(':')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_string())
            )
            .unwrap_or_default(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        Command::new("uname")
            .arg("-r")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default(),
    );
    let section = format!("{BEGIN}\n{machine}{table}{END}");
    match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if b < e => format!("{}{}{}", &old[..b], section, &old[e + END.len()..]),
        _ => format!("{old}\n{section}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row has as many cells as the header (the table once had 9 headers, 13 cells).
    #[test]
    fn the_table_has_a_header_per_column() {
        let table = render(&[Row {
            mode: "netlink".into(),
            phase: "add",
            ..Row::default()
        }]);
        let cells: Vec<usize> = table.lines().map(|l| l.matches('|').count()).collect();
        assert!(cells.iter().all(|c| *c == cells[0]), "{table}");
    }

    /// And so has every table docs/BENCHMARKING.md records.
    #[test]
    fn the_recorded_tables_have_a_header_per_column() {
        let doc = std::fs::read_to_string(crate::root().join("docs/BENCHMARKING.md"))
            .expect("docs/BENCHMARKING.md");
        let mut header: Option<usize> = None;
        for (n, line) in doc.lines().enumerate() {
            if !line.starts_with('|') {
                header = None;
                continue;
            }
            let cells = line.matches('|').count();
            match header {
                None => header = Some(cells),
                Some(h) => assert_eq!(cells, h, "docs/BENCHMARKING.md:{}: {line}", n + 1),
            }
        }
    }
}
