//! A large snapshot to a stock client: N neighbors in the kernel and APPL_DB, then grpcurl
//! (the official binary, default limits: 4 MiB per message) subscribes and reads the whole
//! snapshot to its end marker. Timed from the subscription to the end marker; the daemon's peak
//! memory is read after it.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use neighsyncd_tests::daemon::{Daemon, GRPC};
use neighsyncd_tests::orchagent::Orchagent;

use super::{Meta, batch_lines, lab, proc_stats, wait_count};

pub struct Row {
    pub mode: String,
    pub n: u32,
    pub neighbors: u64,
    pub messages: u64,
    pub seconds: f64,
    pub rss_mib: f64,
}

pub async fn run(mode: &str, args: &[&str], n: u32) -> anyhow::Result<Row> {
    let (redis, lab) = lab();
    let d = Daemon::start(&lab.dut, &redis, args);
    d.wait_ready(&lab.dut).await;
    let mut orch = Orchagent::new(redis.conn(0).await);
    lab.dut
        .batch(&batch_lines(n, "add").replace("nud reachable", "nud permanent"));
    wait_count(&mut orch, n as usize, Duration::from_secs(600)).await?;
    let grpcurl = neighsyncd_tests::stock_tool("grpcurl", "bench --only snapshot");
    let t0 = Instant::now();
    let mut child = Command::new("ip")
        .args(["netns", "exec", lab.dut.name()])
        .arg(&grpcurl)
        .args([
            "-plaintext",
            "-d",
            r#"{"filter": {"interface": "Ethernet0"}}"#,
            GRPC,
            "neighsyncd.v1.Neighsyncd/Subscribe",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("grpcurl: no stdout"))?;
    // grpcurl prints each message as indented JSON: count chunks and neighbors' keys until
    // the end marker.
    let (mut neighbors, mut messages) = (0u64, 0u64);
    let mut ended = false;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        let t = line.trim();
        if t.starts_with("\"snapshot\":") {
            messages += 1;
        } else if t.starts_with("\"key\":") {
            neighbors += 1;
        } else if t.starts_with("\"snapshotEnd\":") {
            ended = true;
            break;
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    let _ = child.kill();
    let _ = child.wait();
    anyhow::ensure!(ended, "grpcurl ended before the snapshot's end marker");
    let (_, rss) = proc_stats(d.pid());
    eprintln!(
        "{mode} snapshot of {neighbors} neighbors to grpcurl: {seconds:.2} s in {messages} messages"
    );
    Ok(Row {
        mode: mode.into(),
        n,
        neighbors,
        messages,
        seconds,
        rss_mib: rss,
    })
}

pub fn render(meta: &Meta, rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| date | command | mode | neighbors added | neighbors received | snapshot messages | seconds to the end marker | daemon peak RSS (MiB) |"
    );
    let _ = writeln!(s, "|---|---|---|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {} | {} | {} | {:.2} | {:.1} |",
            meta.date, meta.command, r.mode, r.n, r.neighbors, r.messages, r.seconds, r.rss_mib
        );
    }
    s
}
