//! Hot standby's decisions, without I/O: who writes APPL_DB, the lease's timing and why it is
//! safe, and when a leader that cannot renew must stop writing on its own.
//!
//! Two (or more) daemons share the databases. A lease in STATE_DB names the one leader; its
//! fencing token, strictly greater than every token before it, goes with every APPL_DB
//! script the leader runs, and APPL_DB refuses a token that is no longer the newest. So a
//! leader that lost its lease (paused, cut off) cannot write a key even before it notices.

use std::time::Duration;

/// What a daemon is to APPL_DB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Without `ha`: the only writer, as always.
    Single,
    /// Holds the lease: writes, each write carrying `token`.
    Leader { token: u64 },
    /// Another holds the lease (`leader`, when known): keeps its state current and writes
    /// nothing, ready to take over.
    Standby { leader: Option<String> },
}

impl Role {
    /// Whether this daemon writes APPL_DB (and the warm-restart state).
    pub fn writes(&self) -> bool {
        !matches!(self, Role::Standby { .. })
    }

    /// The fencing token its writes carry (a leader's).
    pub fn token(&self) -> Option<u64> {
        match self {
            Role::Leader { token } => Some(*token),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Single => "single",
            Role::Leader { .. } => "leader",
            Role::Standby { .. } => "standby",
        }
    }
}

/// The lease's timing.
///
/// Why the defaults (3 s lease, renewed every 500 ms) are safe:
/// - A leader renews six times per lease: it keeps the lease through five renewals lost in a
///   row (a Redis busy for two seconds, a loaded host).
/// - A leader whose renewals keep failing stops writing after `lease - renew` counted from
///   the last renewal that succeeded, as it *sent* it. Redis extended the lease when it
///   *received* that renewal, which was later. So the leader stops before Redis can hand the
///   lease to anyone, with one renewal interval to spare for clock-rate differences.
/// - Fencing covers what timing cannot (a process paused between its check and its write):
///   APPL_DB refuses a write whose token is not the newest.
/// - A dead leader is replaced within `lease + renew` (3.5 s): the standby tries every
///   `renew`. A leader stopped with SIGTERM releases the lease and is replaced at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HaTiming {
    pub lease: Duration,
    pub renew: Duration,
}

/// The shortest lease accepted: below it a loaded host misses renewals for nothing.
pub const MIN_LEASE: Duration = Duration::from_millis(300);
/// The shortest renewal interval accepted.
pub const MIN_RENEW: Duration = Duration::from_millis(50);

impl HaTiming {
    /// Checked timing: `renew` at most a third of `lease` (two renewals may fail in a row).
    pub fn new(lease: Duration, renew: Duration) -> Result<HaTiming, String> {
        if lease < MIN_LEASE {
            return Err(format!("the lease must be at least {MIN_LEASE:?}"));
        }
        if renew < MIN_RENEW {
            return Err(format!(
                "the renewal interval must be at least {MIN_RENEW:?}"
            ));
        }
        if renew * 3 > lease {
            return Err(format!(
                "renewing every {renew:?} is more than a third of the {lease:?} lease"
            ));
        }
        Ok(HaTiming { lease, renew })
    }

    /// How long after its last successful renewal (as sent) a leader stops writing.
    pub fn self_fence_after(&self) -> Duration {
        self.lease.saturating_sub(self.renew)
    }

    /// A renewal (or an attempt) that takes longer than this is given up: the next is due.
    pub fn call_timeout(&self) -> Duration {
        self.renew
    }
}

/// The lease as STATE_DB holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseInfo {
    pub holder: Option<String>,
    pub token: Option<u64>,
    /// How long the holder has held it (milliseconds, by Redis's clock).
    pub age_ms: Option<u64>,
    /// How long it lasts without renewal (milliseconds).
    pub expires_in_ms: Option<i64>,
}

/// What the management plane may know of hot standby; the shell answers it.
pub trait HaStatus: Send + Sync {
    /// What this daemon is now.
    fn role(&self) -> Role;
    /// This daemon's name in the lease.
    fn me(&self) -> &str;
    /// The lease as it stands in STATE_DB.
    fn lease(
        &self,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<LeaseInfo, String>> + Send + '_>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_leaves_room_for_lost_renewals() {
        let ms = Duration::from_millis;
        let t = HaTiming::new(ms(3000), ms(500)).unwrap();
        assert_eq!(t.self_fence_after(), ms(2500));
        assert!(t.self_fence_after() < t.lease);
        assert!(HaTiming::new(ms(3000), ms(1001)).is_err());
        assert!(HaTiming::new(ms(3000), ms(1000)).is_ok());
        assert!(HaTiming::new(ms(200), ms(50)).is_err());
        assert!(HaTiming::new(ms(3000), ms(10)).is_err());
    }

    #[test]
    fn only_a_standby_does_not_write() {
        assert!(Role::Single.writes());
        assert!(Role::Leader { token: 7 }.writes());
        assert_eq!(Role::Leader { token: 7 }.token(), Some(7));
        let standby = Role::Standby {
            leader: Some("other".into()),
        };
        assert!(!standby.writes());
        assert_eq!(standby.token(), None);
        assert_eq!(standby.as_str(), "standby");
    }
}
