//! `cargo xtask bench`: end-to-end measurements through the real kernel, daemon and Redis,
//! recorded in docs/BENCHMARKING.md with the date and the command.
//!
//! - `burst.rs`: N neighbors added in one `ip -batch`, flapped, deleted; per size and source;
//! - `latency.rs`: event-to-APPL_DB latency quantiles at steady rates;
//! - `cold.rs`: start-up with a large table, APPL_DB already equal or empty;
//! - `stalled.rs`: peak memory with subscribers that stopped reading;
//! - `snapshot.rs`: a 1M-neighbor snapshot to grpcurl at its default limits;
//! - `takeover.rs`: a hot-standby pair: the standby's idle cost, takeover after SIGKILL/SIGTERM;
//! - `resync.rs`: what lost events cost (`--resync`, separate);
//! - `--compare`: reruns the bursts and prints the ratios to the recorded figures.

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use neighsyncd_tests::daemon::METRICS_PORT;
use neighsyncd_tests::netns::Netns;
use neighsyncd_tests::orchagent::Orchagent;

mod burst;
mod cold;
mod latency;
mod resync;
mod snapshot;
mod stalled;
mod takeover;

/// The parts of a run, each a section of docs/BENCHMARKING.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    Burst,
    Latency,
    ColdStart,
    Stalled,
    Snapshot,
    Takeover,
}

impl Part {
    const ALL: [Part; 6] = [
        Part::Burst,
        Part::Latency,
        Part::ColdStart,
        Part::Stalled,
        Part::Snapshot,
        Part::Takeover,
    ];

    fn section(self) -> &'static str {
        match self {
            Part::Burst => "burst",
            Part::Latency => "latency",
            Part::ColdStart => "cold-start",
            Part::Stalled => "stalled",
            Part::Snapshot => "snapshot",
            Part::Takeover => "takeover",
        }
    }
}

/// What to run.
pub struct Options {
    pub sizes: Vec<u32>,
    pub write: bool,
    /// Only the lost-events scenario (`resync.rs`).
    pub resync: bool,
    /// Measure this daemon binary (e.g. an older build) instead of building this tree's.
    pub daemon: Option<std::path::PathBuf>,
    /// Runs per scenario of --resync (the median is reported).
    pub repeat: usize,
    /// These parts only (empty: all).
    pub only: Vec<Part>,
    /// Rerun the bursts and print the ratio to docs/BENCHMARKING.md's figures.
    pub compare: bool,
    /// The command line, as recorded with the figures.
    pub command: String,
}

/// When, where and how the figures were made.
pub struct Meta {
    pub date: String,
    pub command: String,
}

const SOURCES: [(&str, &[&str]); 2] = [
    ("netlink", &["--source", "netlink"]),
    ("ebpf", &["--source", "ebpf"]),
];

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
        return run_resync(o, &rt);
    }
    let meta = Meta {
        date: today(),
        command: o.command.clone(),
    };
    let doc_path = crate::root().join("docs/BENCHMARKING.md");
    let mut doc = std::fs::read_to_string(&doc_path).unwrap_or_default();
    if o.compare {
        let recorded = burst::parse(section(&doc, Part::Burst.section()).unwrap_or_default());
        anyhow::ensure!(
            !recorded.is_empty(),
            "docs/BENCHMARKING.md records no burst figures to compare with"
        );
        let mut now = Vec::new();
        for &n in &o.sizes {
            neighsyncd_tests::raise_neigh_limits(u64::from(n) + 1000);
            for (mode, args) in SOURCES {
                if recorded.iter().any(|r| r.mode == mode && r.n == n) {
                    now.extend(rt.block_on(burst::run(mode, args, n))?);
                }
            }
        }
        println!("{}", compare(&recorded, &now));
        return Ok(());
    }
    let parts: Vec<Part> = if o.only.is_empty() {
        Part::ALL.to_vec()
    } else {
        o.only.clone()
    };
    // Checked first: these parts come after many minutes of bursts.
    let stock = [Part::Stalled, Part::Snapshot];
    anyhow::ensure!(
        !parts.iter().any(|p| stock.contains(p))
            || neighsyncd_tests::find_stock_tool("grpcurl").is_some(),
        "the stalled-subscriber and snapshot parts need grpcurl: `bash scripts/setup.sh` \
         installs it into target/tools/venv (or leave them out with --only)"
    );
    for part in parts {
        let table = match part {
            Part::Burst => {
                let mut rows = Vec::new();
                for &n in &o.sizes {
                    neighsyncd_tests::raise_neigh_limits(u64::from(n) + 1000);
                    for (mode, args) in SOURCES {
                        rows.extend(rt.block_on(burst::run(mode, args, n))?);
                    }
                }
                // The C++ daemon's way, approximated: one operation per Redis round trip. Only
                // at a size it finishes before the kernel ages the burst's REACHABLE entries
                // out (it manages ~8k/s).
                if let Some(&n) = o.sizes.iter().filter(|&&n| n <= 10_000).min() {
                    rows.extend(rt.block_on(burst::run(
                        "netlink, batch_max=1",
                        &["--source", "netlink", "--batch-max", "1"],
                        n,
                    ))?);
                }
                burst::render(&meta, &rows)
            }
            Part::Latency => {
                let mut rows = Vec::new();
                for (mode, args) in SOURCES {
                    for rate in [1_000, 10_000] {
                        rows.push(rt.block_on(latency::run(mode, args, rate, 10))?);
                    }
                }
                latency::render(&meta, &rows)
            }
            Part::ColdStart => {
                // 100k: the memory target's size; 128k: the start-up time target's.
                let mut rows = Vec::new();
                for n in [100_000, 128_000] {
                    neighsyncd_tests::raise_neigh_limits(u64::from(n) + 1000);
                    for (mode, args) in SOURCES {
                        rows.extend(rt.block_on(cold::run(mode, args, n))?);
                    }
                }
                cold::render(&meta, &rows)
            }
            Part::Stalled => {
                const N: u32 = 100_000;
                neighsyncd_tests::raise_neigh_limits(u64::from(N) + 1000);
                let (mode, args) = SOURCES[0];
                let rows = vec![
                    rt.block_on(stalled::run(mode, args, N, 0, 0))?,
                    rt.block_on(stalled::run(mode, args, N, 4, 4))?,
                ];
                stalled::render(&meta, &rows)
            }
            Part::Snapshot => {
                // The largest size asked for: a 1M snapshot by default.
                let n = o.sizes.iter().copied().max().unwrap_or(1_000_000);
                neighsyncd_tests::raise_neigh_limits(u64::from(n) + 1000);
                let (mode, args) = SOURCES[0];
                snapshot::render(&meta, &[rt.block_on(snapshot::run(mode, args, n))?])
            }
            Part::Takeover => {
                let mut rows = Vec::new();
                for n in [10_000, 100_000] {
                    neighsyncd_tests::raise_neigh_limits(u64::from(n) + 2000);
                    for kill in [true, false] {
                        rows.push(rt.block_on(takeover::run(&["--source", "ebpf"], n, kill))?);
                    }
                }
                takeover::render(&meta, &rows)
            }
        };
        println!("{table}");
        doc = splice(
            &doc,
            part.section(),
            &format!("{}\n\n{table}", machine(&meta)),
        );
    }
    if o.write {
        std::fs::write(&doc_path, &doc)?;
        println!("written to {}", doc_path.display());
    }
    Ok(())
}

fn run_resync(o: &Options, rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
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
    Ok(())
}

/// Three cells: then, now and their ratio. A figure a phase does not have (a flap storm's
/// time until it is in APPL_DB: it writes nothing) is `n/a`, and so is a ratio to zero.
fn then_now(then: f64, now: f64, decimals: usize) -> String {
    let cell = |v: f64| {
        if v.is_finite() {
            format!("{v:.decimals$}")
        } else {
            "n/a".to_string()
        }
    };
    let ratio = if then.is_finite() && now.is_finite() && then > 0.0 {
        format!("{:.2}", now / then)
    } else {
        "n/a".to_string()
    };
    format!("{} | {} | {ratio}", cell(then), cell(now))
}

/// Now against then, phase by phase: a ratio above 1 is slower, costlier or bigger.
fn compare(then: &[burst::Row], now: &[burst::Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| mode | neighbors | phase | in APPL_DB then (s) | now (s) | ratio | converged then (s) | now (s) | ratio | CPU/event then (µs) | now (µs) | ratio | peak RSS then (MiB) | now (MiB) | ratio |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in now {
        let Some(t) = then
            .iter()
            .find(|t| t.mode == r.mode && t.n == r.n && t.phase == r.phase)
        else {
            continue;
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.mode,
            r.n,
            r.phase,
            then_now(t.appl_db_seconds, r.appl_db_seconds, 2),
            then_now(t.seconds, r.seconds, 2),
            then_now(t.cpu_per_event_us(), r.cpu_per_event_us(), 2),
            then_now(t.rss_mib, r.rss_mib, 1),
        );
    }
    s
}

fn today() -> String {
    Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The machine line above each table.
fn machine(meta: &Meta) -> String {
    format!(
        "Measured {} on {} ({} cores), kernel {}, with `{}` (as root).",
        meta.date,
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
        meta.command,
    )
}

fn markers(name: &str) -> (String, String) {
    (
        format!("<!-- bench:{name}:begin -->"),
        format!("<!-- bench:{name}:end -->"),
    )
}

/// The generated text of section `name`.
fn section<'a>(doc: &'a str, name: &str) -> Option<&'a str> {
    let (begin, end) = markers(name);
    let b = doc.find(&begin)? + begin.len();
    let e = doc[b..].find(&end)? + b;
    Some(&doc[b..e])
}

/// Replaces the generated text of section `name` (or appends the section).
fn splice(doc: &str, name: &str, body: &str) -> String {
    let (begin, end) = markers(name);
    let new = format!("{begin}\n{body}{end}");
    match (doc.find(&begin), doc.find(&end)) {
        (Some(b), Some(e)) if b < e => format!("{}{}{}", &doc[..b], new, &doc[e + end.len()..]),
        _ => format!("{doc}\n{new}\n"),
    }
}

pub(crate) fn proc_stats(pid: u32) -> (f64, f64) {
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

/// A private Redis and a fresh lab whose `Ethernet0` has an address covering every burst's
/// neighbors (10.64.0.0/10): what each part starts from.
pub(crate) fn lab() -> (
    neighsyncd_tests::redis_server::RedisServer,
    neighsyncd_tests::netns::Lab,
) {
    let redis = neighsyncd_tests::redis_server::RedisServer::start();
    let lab = neighsyncd_tests::netns::Lab::new();
    lab.dut.ip("addr add 10.100.0.1/10 dev Ethernet0");
    (redis, lab)
}

pub(crate) fn metric(ns: &Netns, name: &str) -> f64 {
    let (_, body) = ns
        .http_get(METRICS_PORT, "/metrics")
        .unwrap_or((0, String::new()));
    body.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub(crate) fn batch_lines(n: u32, verb: &str) -> String {
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

pub(crate) async fn wait_count(
    orch: &mut Orchagent,
    want: usize,
    limit: Duration,
) -> anyhow::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            date: "2026-11-26".into(),
            command: "cargo xtask bench".into(),
        }
    }

    /// Every row has as many cells as the header (the table once had 9 headers, 13 cells).
    #[test]
    fn the_table_has_a_header_per_column() {
        let table = burst::render(
            &meta(),
            &[burst::Row {
                mode: "netlink".into(),
                phase: "add".into(),
                ..burst::Row::default()
            }],
        );
        let cells: Vec<usize> = table.lines().map(|l| l.matches('|').count()).collect();
        assert!(cells.iter().all(|c| *c == cells[0]), "{table}");
    }

    /// What a table records, `--compare` reads back.
    #[test]
    fn a_recorded_burst_table_reads_back() {
        let row = burst::Row {
            mode: "ebpf".into(),
            n: 100_000,
            phase: "flap storm".into(),
            // A flap storm writes nothing: no time until it is in APPL_DB.
            appl_db_seconds: f64::NAN,
            seconds: 2.5,
            kernel_seconds: 2.0,
            cpu: 0.5,
            rss_mib: 21.5,
            kernel_events: 200_000.0,
            ..burst::Row::default()
        };
        let doc = splice(
            "# Benchmarking\n",
            "burst",
            &burst::render(&meta(), std::slice::from_ref(&row)),
        );
        let back = burst::parse(section(&doc, "burst").unwrap());
        assert_eq!(back.len(), 1, "{doc}");
        let b = &back[0];
        assert_eq!(
            (b.mode.as_str(), b.n, b.phase.as_str()),
            ("ebpf", 100_000, "flap storm")
        );
        assert_eq!((b.seconds, b.rss_mib), (2.5, 21.5));
        assert!((b.cpu_per_event_us() - row.cpu_per_event_us()).abs() < 0.01);
        // A second splice replaces the section rather than adding one.
        let again = splice(&doc, "burst", "x\n");
        assert_eq!(again.matches("bench:burst:begin").count(), 1);
        let compared = compare(&back, &back);
        assert!(compared.contains("| 1.00 |"), "{compared}");
        // A flap storm has no time until it is in APPL_DB: n/a, not NaN.
        assert!(!compared.contains("NaN"), "{compared}");
        assert!(compared.contains("| n/a | n/a | n/a |"), "{compared}");
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
