//! Memory with stalled subscribers: the add burst again, with subscribers that connected and
//! then stopped reading, stock clients both: `curl -N` on the SSE stream and grpcurl on
//! Subscribe, their output pipes never read, so their sockets fill and the daemon's writes to
//! them block. A subscriber is a position in the view's shared history, so the daemon's peak
//! memory must not grow with them beyond a bounded per-stream buffer.

use std::fmt::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use neighsyncd_tests::daemon::{Daemon, GRPC, REST};
use neighsyncd_tests::orchagent::Orchagent;

use super::{Meta, batch_lines, lab, proc_stats, wait_count};

pub struct Row {
    pub mode: String,
    pub n: u32,
    pub subscribers: String,
    pub rss_mib: f64,
}

/// Stalled clients, killed on drop.
struct Stalled(Vec<Child>);

impl Drop for Stalled {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `ip netns exec` a client whose stdout is a pipe nobody reads.
fn stalled(ns: &str, argv: &[&str]) -> anyhow::Result<Child> {
    Ok(Command::new("ip")
        .args(["netns", "exec", ns])
        .args(argv)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?)
}

/// One add burst of `n` with `sse` SSE and `grpc` gRPC subscribers that do not read.
pub async fn run(
    mode: &str,
    args: &[&str],
    n: u32,
    sse: usize,
    grpc: usize,
) -> anyhow::Result<Row> {
    let (redis, lab) = lab();
    let d = Daemon::start(&lab.dut, &redis, args);
    d.wait_ready(&lab.dut).await;
    let ns = lab.dut.name().to_string();
    let mut clients = Stalled(Vec::new());
    let url = format!("http://{REST}/api/v1/events");
    for _ in 0..sse {
        clients.0.push(stalled(&ns, &["curl", "-sN", &url])?);
    }
    if grpc > 0 {
        let grpcurl = neighsyncd_tests::stock_tool("grpcurl", "bench --stalled");
        let grpcurl = grpcurl.to_string_lossy().into_owned();
        for _ in 0..grpc {
            clients.0.push(stalled(
                &ns,
                &[
                    &grpcurl,
                    "-plaintext",
                    "-d",
                    "{}",
                    GRPC,
                    "neighsyncd.v1.Neighsyncd/Subscribe",
                ],
            )?);
        }
    }
    // Let them connect and read their (empty) snapshots.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut orch = Orchagent::new(redis.conn(0).await);
    lab.dut.batch(&batch_lines(n, "add"));
    wait_count(&mut orch, n as usize, Duration::from_secs(600)).await?;
    let (_, rss) = proc_stats(d.pid());
    let subscribers = match (sse, grpc) {
        (0, 0) => "none".to_string(),
        _ => format!("{sse} SSE (curl) + {grpc} gRPC (grpcurl), not reading"),
    };
    eprintln!("{mode} {n} add with {subscribers}: peak RSS {rss:.1} MiB");
    Ok(Row {
        mode: mode.into(),
        n,
        subscribers,
        rss_mib: rss,
    })
}

pub fn render(meta: &Meta, rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| date | command | mode | neighbors added | subscribers | peak RSS (MiB) |"
    );
    let _ = writeln!(s, "|---|---|---|---:|---|---:|");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {} | {} | {:.1} |",
            meta.date, meta.command, r.mode, r.n, r.subscribers, r.rss_mib
        );
    }
    s
}
