//! The engine's inputs and outputs, and the one-line rendering scenario files record.

use std::fmt;

use crate::core::appdb_link::{AppDbOrder, AppDbReport};
use crate::core::key::NeighKey;
use crate::core::neigh::{KernelSide, ResyncCause, SourceEvent};
use crate::core::ops::Op;
use crate::core::rules::{ConfigSnapshot, NeighValue, SkipReason};
use crate::core::source_health::{SourceOrder, SourceReport};
use crate::core::state::{Batch, Told};

/// What the engine is told.
#[derive(Debug)]
pub enum Input {
    /// What a kernel source said.
    Kernel(SourceEvent),
    /// CONFIG_DB's facts, whole (the first one before any kernel event is judged).
    Config(ConfigSnapshot),
    /// The shell can write to APPL_DB now: a [`Output::Write`] follows if anything is due.
    Flush,
    /// The last [`Output::Write`] is in APPL_DB.
    Written(Batch),
    /// It is not (the connection failed): its keys stay due.
    WriteFailed(Batch),
    /// APPL_DB's NEIGH_TABLE as read back. `seed`: at start, it also seeds what APPL_DB should
    /// hold, so a restart rewrites nothing unchanged.
    ReadBack {
        entries: Vec<(crate::core::key::NeighKey, Told)>,
        seed: bool,
    },
    /// A warm start: nothing is written until [`Input::WarmTimerFired`].
    WarmStart,
    /// The warm-restart reconcile timer fired: the differences are written (and logged).
    WarmTimerFired,
    /// What the southbound says of its sources (start-up, self-check, failures).
    Source(SourceReport),
    /// Live events are rtnetlink's from `since_ns` on (after a [`SourceOrder::FallBack`]):
    /// older ones came from the detached eBPF program and are dropped.
    SwitchedToNetlink { since_ns: u64 },
    /// What the shell says of APPL_DB's connection.
    AppDb(AppDbReport),
    /// The liveness timer (every [`crate::core::appdb_link::LIVENESS`]).
    Tick,
    /// The periodic audit is due: dump the kernel and read APPL_DB back.
    AuditDue,
    /// A management API asks for a resync: a dump, then the difference is written.
    ResyncRequested(ResyncCause),
    /// Hot standby: this daemon now leads, but its picture of APPL_DB may have a gap (its
    /// view of the leader's writes broke): APPL_DB is read back, and the difference written.
    TakeOver,
    /// Hot standby: what the leader wrote, in order (`None`: deleted). A standby's picture of
    /// APPL_DB follows it, so that a takeover writes only what the leader had not.
    Observed(Vec<(String, Option<Told>)>),
}

/// What the shell is asked to do or report.
#[derive(Debug)]
pub enum Output {
    /// Count one occurrence (metrics).
    Count(Count),
    /// Say this in the log.
    Note(Note),
    /// The first complete dump is applied: the kernel side is in sync.
    Synced { neighbors: usize, links: usize },
    /// Write this to APPL_DB, then answer [`Input::Written`] or [`Input::WriteFailed`].
    Write(Batch),
    /// A key now holds this in APPL_DB (`None`: deleted); dirty since `since_ns`.
    Landed {
        key: NeighKey,
        value: Option<NeighValue>,
        since_ns: u64,
    },
    /// Hot standby: a key holds this in APPL_DB as the leader wrote it (`None`: deleted).
    Followed {
        key: NeighKey,
        value: Option<NeighValue>,
    },
    /// What APPL_DB holds changed wholesale (a read-back): re-read `Engine::told`.
    ApplReloaded,
    /// APPL_DB's counts by family and interface changed: re-read them.
    Gauges,
    /// The kernel side of a neighbor for the view (`None`: gone).
    Kernel {
        key: NeighKey,
        side: Option<KernelSide>,
    },
    /// Neighbors the kernel no longer has, for the view (a sweep can name a million).
    KernelGone(Vec<NeighKey>),
    /// A warm start's differences are all written: the `reconciled` state is due.
    Reconciled,
    /// Something to do with the sources.
    Source(SourceOrder),
    /// Something to do with APPL_DB's connection.
    AppDb(AppDbOrder),
    /// Dump the kernel's tables (a resync).
    Dump(ResyncCause),
}

/// Occurrences the shell counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// A kernel message by source (`dump`, `netlink`, `ebpf`) and kind (`new`, `del`, `link`).
    Event(&'static str, &'static str),
    UnknownIfindex,
    /// What APPL_DB should hold was corrected: by a dump (`kernel`) or a read-back (`appl_db`).
    Corrections(&'static str, u64),
    Set,
    Del,
    Skip(SkipReason),
    Resync(ResyncCause),
    Malformed(&'static str),
    /// Due keys that needed no write (APPL_DB already held the value).
    NoopSuppressed(u64),
    /// A source failed, by source and what followed (`fell_back`, `exited`).
    SourceFailure(&'static str, &'static str),
    /// APPL_DB's connection came back after a failure.
    AppDbReconnect,
}

/// Facts worth a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    LinkRenamed {
        ifindex: u32,
        old: String,
        new: String,
    },
    LinkRemoved {
        ifindex: u32,
        name: String,
    },
    /// A dump found neighbors gone that no event had reported.
    Swept(usize),
    /// Kernel events were lost; a resync follows.
    Lost(ResyncCause),
    /// Input a source could not parse (logged at most once a minute per kind).
    Malformed(&'static str),
    /// Dual-ToR or EVPN changed: every neighbor is judged again.
    Reevaluated,
    /// IPv6 link-local was enabled on an interface: its skipped neighbors are replayed.
    LinkLocalReplayed {
        ifname: String,
        replayed: usize,
    },
    /// IPv6 link-local was disabled on an interface: its link-local neighbors leave APPL_DB.
    LinkLocalWithdrawn {
        ifname: String,
        withdrawn: usize,
    },
    /// APPL_DB differed from what had been written.
    Drift(usize),
    ReadBack {
        entries: usize,
    },
    WarmTimerExpired {
        pending: usize,
    },
    /// The per-entry line SONiC's warm-restart tests look for, exactly.
    Reconcile(String),
    /// APPL_DB answers again after a failure; what it lost is found by a read-back.
    AppDbRestored,
    /// The periodic audit starts.
    Audit,
}

impl fmt::Display for Output {
    /// One line per output, as scenario files record them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Count(c) => write!(f, "count {c:?}"),
            Output::Note(n) => write!(f, "note {n:?}"),
            Output::Synced { neighbors, links } => {
                write!(f, "synced neighbors={neighbors} links={links}")
            }
            Output::Write(b) => {
                write!(f, "write")?;
                for op in b
                    .route_dels
                    .iter()
                    .map(|op| ("ROUTE_TABLE", op))
                    .chain(b.ops.iter().map(|op| ("NEIGH_TABLE", op)))
                {
                    match op {
                        (t, Op::Set { key, value }) => {
                            let fv: Vec<String> = value
                                .fields()
                                .iter()
                                .map(|(f, v)| format!("{f}={v}"))
                                .collect();
                            write!(f, " | SET {t}:{key} {}", fv.join(","))?
                        }
                        (t, Op::Del { key }) => write!(f, " | DEL {t}:{key}")?,
                    }
                }
                Ok(())
            }
            Output::Landed { key, value, .. } => match value {
                Some(v) => write!(f, "landed {key} {}", v.mac),
                None => write!(f, "landed {key} deleted"),
            },
            Output::Followed { key, value } => match value {
                Some(v) => write!(f, "followed {key} {}", v.mac),
                None => write!(f, "followed {key} deleted"),
            },
            Output::ApplReloaded => write!(f, "appl_reloaded"),
            Output::Gauges => write!(f, "gauges"),
            Output::Kernel { key, side } => match side {
                Some(s) => write!(
                    f,
                    "kernel {key} state={} skip={}",
                    s.state_label(),
                    s.skip_reason.map(|r| r.as_str()).unwrap_or("-")
                ),
                None => write!(f, "kernel {key} gone"),
            },
            Output::KernelGone(keys) => {
                write!(f, "kernel gone")?;
                for k in keys {
                    write!(f, " | {k}")?;
                }
                Ok(())
            }
            Output::Reconciled => write!(f, "reconciled"),
            Output::Source(o) => write!(f, "source {o:?}"),
            Output::AppDb(o) => write!(f, "appdb {o:?}"),
            Output::Dump(cause) => write!(f, "dump {}", cause.as_str()),
        }
    }
}
