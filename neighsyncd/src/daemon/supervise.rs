//! While the daemon runs: what becomes of each namespace's sources, told to its pipeline.

use tokio::sync::{mpsc, watch};

use crate::core::source_health::SourceReport;
use crate::pipeline::{Command, PipelineError};
use crate::southbound::ebpf::{ConsumerError, ConsumerTask};
use crate::southbound::supervisor::SourceGaveUp;

/// Runs until a namespace's pipeline ends (shutdown, or an error), telling the pipelines
/// meanwhile what becomes of their sources: a namespace's rtnetlink supervisor giving up (its
/// own), or the eBPF consumer dying (every namespace's). What follows (a fallback, a stop) is
/// each engine's source policy.
pub(super) async fn supervise(
    pipelines: Vec<tokio::task::JoinHandle<Result<(), PipelineError>>>,
    netlinks: Vec<tokio::task::JoinHandle<Result<(), SourceGaveUp>>>,
    mut consumer: Option<ConsumerTask>,
    commands: Vec<mpsc::UnboundedSender<Command>>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    // Each namespace's rtnetlink source reports to its own pipeline.
    let mut netlinks: futures::stream::FuturesUnordered<_> = netlinks
        .into_iter()
        .enumerate()
        .map(|(i, h)| async move { (i, h.await) })
        .collect();
    let mut pipelines = futures::future::select_all(pipelines);
    use futures::StreamExt;
    loop {
        tokio::select! {
            (r, _, _) = &mut pipelines => {
                return match r {
                    Ok(r) => r.map_err(anyhow::Error::from),
                    Err(e) => Err(anyhow::anyhow!("the sync pipeline panicked: {e}")),
                };
            }
            Some((i, r)) = netlinks.next() => {
                let why = match r {
                    Ok(Ok(())) => continue,
                    Ok(Err(gave_up)) => gave_up.to_string(),
                    Err(e) => format!("the rtnetlink source supervisor died: {e}"),
                };
                if let Some(c) = commands.get(i) {
                    let _ = c.send(Command::Source(SourceReport::NetlinkGaveUp(why)));
                }
            }
            r = wait_consumer(&mut consumer) => {
                consumer = None;
                let why = match r {
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => e.to_string(),
                    Err(e) if e.is_cancelled() => continue, // detached on purpose (fallback)
                    Err(e) => format!("panicked: {e}"),
                };
                if *shutdown.borrow() {
                    continue;
                }
                for c in &commands {
                    let _ = c.send(Command::Source(SourceReport::EbpfFailed(why.clone())));
                }
            }
        }
    }
}

async fn wait_consumer(
    consumer: &mut Option<ConsumerTask>,
) -> Result<Result<(), ConsumerError>, tokio::task::JoinError> {
    match consumer {
        Some(t) => t.await,
        None => std::future::pending().await,
    }
}
