//! The APPL_DB connection's policy: when to reconnect (exponential backoff), when to probe an
//! idle connection, and when to read APPL_DB back (at start, after a reconnect, after an
//! audit). The engine owns it; the shell only connects, pings and reads when told, and says
//! how it went.
//!
//! Redis being down only stops the writing: the state keeps following the kernel, and once
//! APPL_DB answers again it is read back and only the difference is written.

use std::time::Duration;

pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long APPL_DB may go without answering before an idle connection is probed.
pub const LIVENESS: Duration = Duration::from_secs(1);

/// What the shell says of APPL_DB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppDbReport {
    /// A connection is up (at start, or after [`AppDbOrder::Reconnect`]).
    Connected,
    /// A connect, read, probe or write failed; the shell has dropped the connection.
    Unreachable,
    /// A probe was answered.
    Answered,
}

/// What the shell is to do with APPL_DB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppDbOrder {
    /// Connect again after `after`, then report [`AppDbReport::Connected`] or
    /// [`AppDbReport::Unreachable`].
    Reconnect { after: Duration },
    /// Read NEIGH_TABLE back and hand it over (`Input::ReadBack`), with `seed`.
    ReadBack { seed: bool },
    /// Is APPL_DB still there? (a PING)
    Probe,
}

#[derive(Debug)]
pub struct AppDbLink {
    connected: bool,
    /// Anything tried yet: only the very first read-back seeds what APPL_DB should hold.
    tried: bool,
    /// A failure came since the last read-back: the next connection is a reconnect.
    lost: bool,
    backoff: Duration,
    last_answer_ns: u64,
    /// An audit asked for a read-back once the writes due are done.
    readback_due: bool,
}

impl Default for AppDbLink {
    fn default() -> AppDbLink {
        AppDbLink {
            connected: false,
            tried: false,
            lost: false,
            backoff: BACKOFF_MIN,
            last_answer_ns: 0,
            readback_due: false,
        }
    }
}

/// What [`AppDbLink::report`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reaction {
    pub order: Option<AppDbOrder>,
    /// A connection came back after a failure (count it, resync); only ever on `Connected`.
    pub reconnected: bool,
}

impl AppDbLink {
    pub fn connected(&self) -> bool {
        self.connected
    }

    pub fn report(&mut self, now_ns: u64, report: AppDbReport) -> Reaction {
        match report {
            AppDbReport::Connected => {
                let seed = !self.tried;
                self.tried = true;
                self.connected = true;
                self.last_answer_ns = now_ns;
                Reaction {
                    order: Some(AppDbOrder::ReadBack { seed }),
                    reconnected: std::mem::take(&mut self.lost),
                }
            }
            AppDbReport::Unreachable => Reaction {
                order: Some(self.failed()),
                reconnected: false,
            },
            AppDbReport::Answered => {
                self.last_answer_ns = now_ns;
                Reaction::default()
            }
        }
    }

    /// A write failed: the connection is gone.
    pub fn failed(&mut self) -> AppDbOrder {
        self.tried = true;
        self.connected = false;
        self.lost = true;
        let after = self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        AppDbOrder::Reconnect { after }
    }

    /// APPL_DB answered a write or a read-back.
    pub fn answered(&mut self, now_ns: u64, read_back: bool) {
        self.tried = true;
        self.connected = true;
        self.last_answer_ns = now_ns;
        if read_back {
            self.backoff = BACKOFF_MIN;
        }
    }

    /// The liveness timer: probe a connection that has been quiet for [`LIVENESS`].
    pub fn tick(&self, now_ns: u64) -> Option<AppDbOrder> {
        let quiet = now_ns.saturating_sub(self.last_answer_ns);
        (self.connected && quiet >= LIVENESS.as_nanos() as u64).then_some(AppDbOrder::Probe)
    }

    /// An audit: read APPL_DB back once the writes due are written.
    pub fn audit(&mut self) {
        self.readback_due = true;
    }

    /// Nothing is due to be written: the audit's read-back, if one is waiting.
    pub fn idle(&mut self) -> Option<AppDbOrder> {
        (self.connected && std::mem::take(&mut self.readback_due))
            .then_some(AppDbOrder::ReadBack { seed: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn the_first_read_back_seeds_and_a_reconnect_reads_back_again() {
        let mut l = AppDbLink::default();
        let r = l.report(0, AppDbReport::Connected);
        assert_eq!(r.order, Some(AppDbOrder::ReadBack { seed: true }));
        assert!(!r.reconnected);
        l.answered(1, true);
        assert_eq!(l.failed(), AppDbOrder::Reconnect { after: BACKOFF_MIN });
        let r = l.report(2, AppDbReport::Connected);
        assert_eq!(r.order, Some(AppDbOrder::ReadBack { seed: false }));
        assert!(r.reconnected);
    }

    #[test]
    fn a_start_without_redis_never_seeds_later() {
        let mut l = AppDbLink::default();
        assert!(matches!(
            l.report(0, AppDbReport::Unreachable).order,
            Some(AppDbOrder::Reconnect { .. })
        ));
        let r = l.report(1, AppDbReport::Connected);
        assert_eq!(r.order, Some(AppDbOrder::ReadBack { seed: false }));
        assert!(r.reconnected);
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_a_read_back_resets_it() {
        let mut l = AppDbLink::default();
        let mut waits = Vec::new();
        for _ in 0..8 {
            if let AppDbOrder::Reconnect { after } = l.failed() {
                waits.push(after.as_millis());
            }
        }
        assert_eq!(waits, vec![100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        l.report(0, AppDbReport::Connected);
        l.answered(0, false); // a write is not a read-back: the backoff stays
        assert_eq!(l.failed(), AppDbOrder::Reconnect { after: BACKOFF_MAX });
        l.report(0, AppDbReport::Connected);
        l.answered(0, true);
        assert_eq!(l.failed(), AppDbOrder::Reconnect { after: BACKOFF_MIN });
    }

    #[test]
    fn only_a_quiet_connection_is_probed() {
        let mut l = AppDbLink::default();
        assert_eq!(l.tick(10 * S), None, "not connected: nothing to probe");
        l.report(10 * S, AppDbReport::Connected);
        assert_eq!(l.tick(10 * S + S / 2), None);
        assert_eq!(l.tick(11 * S), Some(AppDbOrder::Probe));
        l.report(11 * S, AppDbReport::Answered);
        assert_eq!(l.tick(11 * S + 1), None);
    }

    #[test]
    fn an_audit_reads_back_once_when_idle_and_connected() {
        let mut l = AppDbLink::default();
        l.audit();
        assert_eq!(l.idle(), None, "not connected");
        l.audit();
        l.report(0, AppDbReport::Connected);
        assert_eq!(l.idle(), Some(AppDbOrder::ReadBack { seed: false }));
        assert_eq!(l.idle(), None);
    }
}
