//! When to dump the kernel's neighbor table, and when a dump can be trusted. Pure: no sockets,
//! no clock (the caller passes `now`), so every policy below is unit-tested, including against a
//! model of the kernel's hash table (`tests.rs`).
//!
//! # Why a dump is not a snapshot
//! The kernel resumes a neighbor dump between two `recvmsg` calls by (hash bucket, index within
//! the bucket) (`neigh_dump_table`). The hash table is one for the whole host, shared by every
//! network namespace, and it changes under the dump:
//! * an entry deleted *anywhere on the host* ahead of the resume point in that bucket shifts
//!   the rest of the bucket left: the next entry is skipped;
//! * a resize (the table only grows, so this happens while it first fills after boot)
//!   redistributes every entry: entries are skipped or repeated.
//!
//! The kernel marks neither with `NLM_F_DUMP_INTR`. A skipped entry whose live event was lost in
//! the same overrun is never repaired. So a dump is accepted only when the kernel's own table
//! statistics (`RTM_GETNEIGHTBL`: `hash_grows`, the hash seed and mask, `destroys`), read before
//! and after each family's dump, show that nothing could have moved under it ([`Verdict::Clean`]).
//! Inserts only ever repeat entries (they go to the head of a bucket), which is harmless.
//!
//! Where entries keep being destroyed somewhere on the host (garbage collection, other
//! namespaces), a clean dump may not come for a long time. [`CHURNED_ACCEPT`] dumps with no
//! resize and no lost event between them are then accepted together: an entry the kernel kept
//! throughout is missing from all of them only if, in each, a deletion hit its bucket ahead of
//! the point where the dump resumed. Until then every attempt still adds what it saw; only the
//! removal of entries no attempt saw waits for acceptance.
//!
//! # A window of attempts
//! After events are lost, every attempt until one is accepted belongs to one *window*. The
//! window starts with its first attempt; a dump entry seen by any attempt in it counts as seen,
//! and a live event since its start is newer than any of its dump entries. That union is safe
//! because no event is lost inside a window: a loss aborts the attempt in flight and opens a new
//! window.
//!
//! # Cost proportional to the burst, not to the number of overruns
//! Dumping while events are still being lost is wasted work: the next overrun aborts it. So a
//! loss is answered once losses have paused for [`SETTLE`] (but no later than [`MAX_SETTLE`]
//! after the first unanswered one), overruns during a pending dump coalesce into it, and attempts
//! that could not be accepted are retried with a growing backoff.

use std::time::{Duration, Instant};

/// A loss is answered once no further loss came for this long ...
pub const SETTLE: Duration = Duration::from_millis(100);
/// ... but no later than this after the first unanswered loss.
pub const MAX_SETTLE: Duration = Duration::from_secs(1);
/// Churned attempts accepted together when no clean one comes (see the module comment).
pub const CHURNED_ACCEPT: u32 = 3;
/// The first retry after an attempt that could not be accepted; doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_millis(25);
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// The two neighbor tables (ARP, NDP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Inet,
    Inet6,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Inet6 => "inet6",
        }
    }
}

/// What the kernel says of one neighbor table (`RTM_NEWNEIGHTBL`: `NDTA_CONFIG`, `NDTA_STATS`,
/// thresholds). The table is the host's, not the namespace's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableStats {
    /// How often the hash table grew (it never shrinks).
    pub hash_grows: u64,
    /// The hash seed and size: a new hash table gets a new seed.
    pub hash_rnd: u32,
    pub hash_mask: u32,
    /// Entries destroyed so far (anywhere on the host).
    pub destroys: u64,
    /// Entries now (host-wide), and the garbage collector's thresholds.
    pub entries: u32,
    pub gc_thresh1: u32,
    pub gc_thresh2: u32,
    pub gc_thresh3: u32,
    pub table_fulls: u64,
    pub forced_gc_runs: u64,
}

/// How far one dump attempt can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// Nothing was destroyed and the table did not resize while it was read: complete.
    Clean,
    /// Entries were destroyed somewhere on the host while it was read: an entry may have been
    /// skipped. [`CHURNED_ACCEPT`] of these in one window are accepted together.
    Churned,
    /// The hash table was resized while it was read: anything may have been skipped.
    Resized,
    /// The dump itself was cut short (an error, its socket overran, or the kernel flagged it).
    Partial,
}

impl Verdict {
    pub const ALL: [Verdict; 4] = [
        Verdict::Clean,
        Verdict::Churned,
        Verdict::Resized,
        Verdict::Partial,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::Churned => "churned",
            Verdict::Resized => "resized",
            Verdict::Partial => "partial",
        }
    }

    /// What one family's statistics, read before and after its dump, say. Without both
    /// readings nothing is known, which is treated like churn (accepted only in a pair).
    pub fn of(before: Option<&TableStats>, after: Option<&TableStats>) -> Verdict {
        match (before, after) {
            (Some(b), Some(a)) => {
                if b.hash_grows != a.hash_grows
                    || b.hash_rnd != a.hash_rnd
                    || b.hash_mask != a.hash_mask
                {
                    Verdict::Resized
                } else if b.destroys != a.destroys {
                    Verdict::Churned
                } else {
                    Verdict::Clean
                }
            }
            _ => Verdict::Churned,
        }
    }
}

/// One request of an attempt, in the order they are sent (each is a netlink dump; a socket
/// runs one at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Links,
    /// `RTM_GETNEIGHTBL` for every family: the statistics before, between and after.
    Tables,
    Neighbors(Family),
}

const STEPS: [Step; 6] = [
    Step::Links,
    Step::Tables,
    Step::Neighbors(Family::Inet),
    Step::Tables,
    Step::Neighbors(Family::Inet6),
    Step::Tables,
];

/// One dump attempt: links, then each family's neighbors between two table readings.
#[derive(Debug, Clone, Default)]
pub struct Attempt {
    step: usize,
    /// Table readings, one per `Tables` step: [inet, inet6].
    tables: [[Option<TableStats>; 2]; 3],
    partial: bool,
}

fn slot(f: Family) -> usize {
    match f {
        Family::Inet => 0,
        Family::Inet6 => 1,
    }
}

impl Attempt {
    /// The request to send now.
    pub fn step(&self) -> Step {
        STEPS[self.step.min(STEPS.len() - 1)]
    }

    /// The current request's dump ended; the next one to send, or `None` when the attempt is
    /// over (then ask [`Attempt::verdict`]).
    pub fn advance(&mut self) -> Option<Step> {
        self.step += 1;
        STEPS.get(self.step).copied()
    }

    /// A table reading arrived for the current `Tables` step.
    pub fn table(&mut self, family: Family, stats: TableStats) {
        let nth = STEPS[..=self.step.min(STEPS.len() - 1)]
            .iter()
            .filter(|s| **s == Step::Tables)
            .count();
        if self.step() == Step::Tables && nth > 0 {
            self.tables[nth - 1][slot(family)] = Some(stats);
        }
    }

    /// The dump was cut short: the attempt can only be [`Verdict::Partial`].
    pub fn mark_partial(&mut self) {
        self.partial = true;
    }

    /// The worst of the two families' verdicts.
    pub fn verdict(&self) -> Verdict {
        if self.partial {
            return Verdict::Partial;
        }
        let inet = Verdict::of(self.tables[0][0].as_ref(), self.tables[1][0].as_ref());
        let inet6 = Verdict::of(self.tables[1][1].as_ref(), self.tables[2][1].as_ref());
        inet.max(inet6)
    }

    /// The last table readings of the attempt (for the table-pressure metrics).
    pub fn latest_tables(&self) -> impl Iterator<Item = (Family, &TableStats)> {
        [Family::Inet, Family::Inet6].into_iter().filter_map(|f| {
            self.tables
                .iter()
                .rev()
                .find_map(|t| t[slot(f)].as_ref())
                .map(|s| (f, s))
        })
    }
}

/// What [`Planner::attempt_done`] concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The window's attempts are accepted: everything not seen by them (and not touched by a
    /// live event since the window began) is gone.
    Complete,
    /// Not yet: another attempt follows (see [`Planner::next_start`]).
    Retry,
}

#[derive(Debug, Clone, Copy)]
struct LossWait {
    first: Instant,
    last: Instant,
}

/// Decides when an attempt starts and whether a finished one completes its window.
#[derive(Debug)]
pub struct Planner {
    in_attempt: bool,
    /// Attempts since the last loss that could not be accepted alone: `Some(churned count)`.
    window: Option<u32>,
    /// Events were lost and no attempt has started since.
    loss: Option<LossWait>,
    requested: bool,
    backoff: Duration,
    retry_at: Option<Instant>,
}

impl Default for Planner {
    fn default() -> Self {
        Planner {
            in_attempt: false,
            window: None,
            loss: None,
            requested: false,
            backoff: BACKOFF_MIN,
            retry_at: None,
        }
    }
}

impl Planner {
    /// Events were lost (an overrun, a ring-buffer overflow). Returns whether the attempt in
    /// flight must be aborted (it can no longer be trusted; the caller discards what is left
    /// of it). The loss is answered by a new window once losses pause.
    pub fn lost(&mut self, now: Instant) -> bool {
        self.loss = Some(match self.loss {
            Some(w) => LossWait {
                first: w.first,
                last: now,
            },
            None => LossWait {
                first: now,
                last: now,
            },
        });
        self.window = None;
        std::mem::replace(&mut self.in_attempt, false)
    }

    /// A dump is wanted (start, audit, an operator): one starts as soon as none is running.
    pub fn requested(&mut self) {
        self.requested = true;
    }

    pub fn in_attempt(&self) -> bool {
        self.in_attempt
    }

    /// Whether a dump is wanted, running, or being retried.
    pub fn busy(&self) -> bool {
        self.in_attempt || self.window.is_some() || self.loss.is_some() || self.requested
    }

    /// When the next attempt should start (`now` when it is due already); `None` while one runs
    /// or when nothing is wanted.
    pub fn next_start(&self, now: Instant) -> Option<Instant> {
        if self.in_attempt {
            return None;
        }
        let due = match self.loss {
            Some(l) => (l.last + SETTLE).min(l.first + MAX_SETTLE),
            None if self.window.is_some() || self.requested => now,
            None => return None,
        };
        Some(due.max(self.retry_at.unwrap_or(due)).max(now))
    }

    /// Starts an attempt (the caller calls this once [`Planner::next_start`] is due). Returns
    /// whether it opens a new window.
    pub fn start(&mut self) -> bool {
        self.in_attempt = true;
        self.loss = None;
        self.requested = false;
        let fresh = self.window.is_none();
        if fresh {
            self.window = Some(0);
        }
        fresh
    }

    /// The attempt in flight ended with `verdict`.
    pub fn attempt_done(&mut self, verdict: Verdict, now: Instant) -> Outcome {
        self.in_attempt = false;
        let churned = self.window.get_or_insert(0);
        let complete = match verdict {
            Verdict::Clean => true,
            Verdict::Churned => {
                *churned += 1;
                *churned >= CHURNED_ACCEPT
            }
            Verdict::Resized | Verdict::Partial => false,
        };
        if complete {
            self.window = None;
            self.backoff = BACKOFF_MIN;
            self.retry_at = None;
            Outcome::Complete
        } else {
            self.retry_at = Some(now + self.backoff);
            self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
            Outcome::Retry
        }
    }
}

#[cfg(test)]
mod tests;
