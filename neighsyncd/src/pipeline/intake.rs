//! Kernel events taken in while an APPL_DB round trip is out.
//!
//! A round trip takes milliseconds, and a burst brings tens of thousands of events a second.
//! A loop that waited for each answer before it read on left the events waiting in the
//! sources' queues meanwhile: in the channel (a heap copy of each, 64 bytes), in the eBPF ring
//! (which overflows, and a resync follows), in the netlink socket (ENOBUFS, the same). Taken
//! in at once, they land in the state, which keeps one slot per key however often the key
//! changes, and the next batch writes the latest of each.
//!
//! The engine is ready for it: it takes no second batch until the first is answered, and a key
//! an event marks due while its write is out stays due after the answer (`State::commit`).

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;

use super::report::Reports;
use crate::core::engine::{Engine, Input, Output};
use crate::core::neigh::SourceEvent;
use crate::southbound::monotonic_ns;

/// How often the channel is emptied while a write is out. Not at every event: a task woken by
/// every send would wake per record of a burst, and what arrives during a write waits for the
/// next batch anyway.
const EVERY: Duration = Duration::from_millis(1);
/// Events taken in at most per look: the write's answer is looked at in between.
const CHUNK: usize = 4096;

/// Takes one kernel event into `engine` and carries out at once what needs neither APPL_DB nor
/// the pipeline (counts, log lines, the view); the rest is added to `rest`, in order. `out` is
/// a buffer kept from event to event.
pub(super) fn take_in(
    engine: &mut Engine,
    reports: &Reports<'_>,
    ev: SourceEvent,
    out: &mut Vec<Output>,
    rest: &mut impl Extend<Output>,
) {
    engine.handle_into(monotonic_ns(), Input::Kernel(ev), out);
    rest.extend(out.drain(..).filter_map(|o| reports.carry_out(o)));
}

/// Awaits `write`, applying the events that arrive meanwhile to `engine`. Their counts, log
/// lines and view updates are carried out at once; what needs the pipeline itself (rare: a
/// resync to ask for, a source to switch) is left in `later`, in order.
pub(super) async fn while_writing<F: Future>(
    write: F,
    events: &mut mpsc::Receiver<SourceEvent>,
    engine: &mut Engine,
    reports: &Reports<'_>,
    later: &mut Vec<Output>,
) -> F::Output {
    tokio::pin!(write);
    // A closed channel is the main loop's to notice.
    let mut open = true;
    let mut out = Vec::new();
    loop {
        tokio::select! {
            biased;
            r = &mut write => return r,
            _ = tokio::time::sleep(EVERY), if open => {
                for _ in 0..CHUNK {
                    let ev = match events.try_recv() {
                        Ok(ev) => ev,
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            open = false;
                            break;
                        }
                    };
                    take_in(engine, reports, ev, &mut out, later);
                }
            }
        }
    }
}
