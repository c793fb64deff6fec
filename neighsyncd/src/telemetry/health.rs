//! Liveness and readiness facts, shared by the pipeline (writer) and the HTTP endpoints (reader).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What is checked; `<namespace>/<check>` for a namespace's own checks when one process
    /// serves several.
    pub name: String,
    pub ok: bool,
    /// Whether readiness depends on it: neighbor sync does; a management listener does not
    /// (it is retried while neighbors keep flowing).
    pub critical: bool,
    /// When the check last changed (RFC 3339, UTC).
    pub since: String,
}

#[derive(Debug)]
struct Flag {
    ok: AtomicBool,
    since: Mutex<SystemTime>,
}

impl Flag {
    fn new(ok: bool) -> Flag {
        Flag {
            ok: AtomicBool::new(ok),
            since: Mutex::new(SystemTime::now()),
        }
    }

    fn set(&self, ok: bool) {
        if self.ok.swap(ok, Ordering::SeqCst) != ok
            && let Ok(mut s) = self.since.lock()
        {
            *s = SystemTime::now();
        }
    }

    fn check(&self, name: impl Into<String>, critical: bool) -> Check {
        let since = self
            .since
            .lock()
            .map(|s| *s)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        Check {
            name: name.into(),
            ok: self.ok.load(Ordering::SeqCst),
            critical,
            since: rfc3339(since),
        }
    }
}

/// Formats a time as RFC 3339 UTC (seconds precision).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// The management listeners, reported in `/ready` but not deciding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Metrics,
    Rest,
    Grpc,
}

impl Listener {
    pub const ALL: [Listener; 3] = [Listener::Metrics, Listener::Rest, Listener::Grpc];

    pub fn as_str(self) -> &'static str {
        match self {
            Listener::Metrics => "metrics_listener",
            Listener::Rest => "rest_listener",
            Listener::Grpc => "grpc_listener",
        }
    }
}

#[derive(Debug)]
pub struct Health {
    redis: Flag,
    source_attached: Flag,
    sources_alive: Flag,
    synced: Flag,
    warm_restart: Flag,
    /// Listeners: `None` when not configured.
    listeners: [Option<Flag>; 3],
    started: SystemTime,
    /// Multi-ASIC, one process for several namespaces: each namespace's own health (its
    /// Redis, its sources, its sync), all of which readiness needs. Empty otherwise.
    parts: Vec<(String, std::sync::Arc<Health>)>,
    /// Hot standby: `leader` or `standby` (`None` without `ha`).
    role: Mutex<Option<&'static str>>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            redis: Flag::new(false),
            source_attached: Flag::new(false),
            sources_alive: Flag::new(true),
            synced: Flag::new(false),
            // No warm restart in progress until one says so.
            warm_restart: Flag::new(true),
            listeners: [None, None, None],
            started: SystemTime::now(),
            parts: Vec::new(),
            role: Mutex::new(None),
        }
    }
}

impl Health {
    /// Health with these listeners configured (not up until they say so).
    pub fn with_listeners(listeners: &[Listener]) -> Health {
        let mut h = Health::default();
        for l in listeners {
            h.listeners[*l as usize] = Some(Flag::new(false));
        }
        h
    }

    /// With a health of its own for each of these namespaces (see [`Health::part`]).
    pub fn with_parts(mut self, names: &[String]) -> Health {
        self.parts = names
            .iter()
            .map(|n| (n.clone(), std::sync::Arc::new(Health::default())))
            .collect();
        self
    }

    /// The health namespace `i` reports into: its own with parts, else this one.
    pub fn part(self: &std::sync::Arc<Self>, i: usize) -> std::sync::Arc<Health> {
        match self.parts.get(i) {
            Some((_, h)) => h.clone(),
            None => self.clone(),
        }
    }

    fn core_checks(&self, prefix: &str) -> [Check; 5] {
        let name = |n: &str| format!("{prefix}{n}");
        [
            self.redis.check(name("redis"), true),
            self.source_attached.check(name("source_attached"), true),
            self.sources_alive.check(name("sources_alive"), true),
            self.synced.check(name("initial_sync"), true),
            self.warm_restart.check(name("warm_restart"), true),
        ]
    }

    /// Hot standby: what this daemon is now (`leader`, `standby`).
    pub fn set_role(&self, role: &'static str) {
        if let Ok(mut r) = self.role.lock() {
            *r = Some(role);
        }
    }

    /// Hot standby: what this daemon is (`None` without `ha`).
    pub fn role(&self) -> Option<&'static str> {
        self.role.lock().ok().and_then(|r| *r)
    }

    pub fn set_redis(&self, ok: bool) {
        self.redis.set(ok)
    }
    pub fn set_source_attached(&self, ok: bool) {
        self.source_attached.set(ok)
    }
    /// `false` once a source task died and could not be restarted.
    pub fn set_sources_alive(&self, ok: bool) {
        self.sources_alive.set(ok)
    }
    pub fn set_source_synced(&self, ok: bool) {
        self.synced.set(ok)
    }
    /// `false` while a warm restart is still reconciling.
    pub fn set_warm_restart_done(&self, ok: bool) {
        self.warm_restart.set(ok)
    }
    pub fn set_listener(&self, l: Listener, ok: bool) {
        if let Some(f) = &self.listeners[l as usize] {
            f.set(ok)
        }
    }
    pub fn started(&self) -> SystemTime {
        self.started
    }

    /// Ready when every critical check passes; every check is listed.
    pub fn readiness(&self) -> (bool, Vec<Check>) {
        let mut checks = Vec::new();
        if self.parts.is_empty() {
            checks.extend(self.core_checks(""));
        }
        for (ns, h) in &self.parts {
            checks.extend(h.core_checks(&format!("{ns}/")));
        }
        for l in Listener::ALL {
            if let Some(f) = &self.listeners[l as usize] {
                checks.push(f.check(l.as_str(), false));
            }
        }
        (checks.iter().all(|c| c.ok || !c.critical), checks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn ready_only_when_all_checks_pass() {
        let h = Health::default();
        assert!(!h.readiness().0);
        h.set_redis(true);
        h.set_source_attached(true);
        h.set_source_synced(true);
        assert!(h.readiness().0);
        h.set_redis(false);
        let (ok, checks) = h.readiness();
        assert!(!ok);
        assert!(checks.iter().any(|c| c.name == "redis" && !c.ok));
    }

    #[test]
    fn a_listener_down_is_reported_but_does_not_stop_readiness() {
        let h = Health::with_listeners(&[Listener::Rest]);
        h.set_redis(true);
        h.set_source_attached(true);
        h.set_source_synced(true);
        let (ok, checks) = h.readiness();
        assert!(ok);
        let rest = checks.iter().find(|c| c.name == "rest_listener").unwrap();
        assert!(!rest.ok && !rest.critical);
        assert!(!checks.iter().any(|c| c.name == "grpc_listener"));
        h.set_sources_alive(false);
        assert!(!h.readiness().0);
    }

    #[test]
    fn with_parts_every_namespace_must_be_ready() {
        let h = std::sync::Arc::new(Health::default().with_parts(&["a".into(), "b".into()]));
        for i in 0..2 {
            let p = h.part(i);
            p.set_redis(true);
            p.set_source_attached(true);
            p.set_source_synced(true);
        }
        assert!(h.readiness().0);
        h.part(1).set_redis(false);
        let (ok, checks) = h.readiness();
        assert!(!ok);
        let failed: Vec<&str> = checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(failed, ["b/redis"]);
        assert!(!checks.iter().any(|c| c.name == "redis"));
    }
}
