//! SONiC's warm-restart contract (swss-common `WarmStart`, swss `AppRestartAssist`), for the
//! app `neighsyncd` in docker `swss`.
//!
//! * Enabled when STATE_DB `WARM_RESTART_ENABLE_TABLE|system` or `|swss` has `enable` = `true`
//!   and `WARM_RESTART_TABLE|neighsyncd` already has a `restore_count` (else: cold start).
//! * `restore_count` is 0 on a cold start and grows by one on each warm start; `state` goes
//!   `initialized` -> `restored` -> `reconciled`.
//! * The reconcile timer is CONFIG_DB `WARM_RESTART|swss` field `neighsyncd_timer` (1..9999 s,
//!   default 5); the log lines are the ones SONiC's tests look for.

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use tracing::{info, warn};

pub const APP: &str = "neighsyncd";
pub const DOCKER: &str = "swss";
pub const DEFAULT_TIMER: u64 = 5;
pub const MAX_TIMER: u64 = 9999;

#[derive(Debug, thiserror::Error)]
pub enum WarmError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(
        "neighbor table restore is not finished after {0:?} (STATE_DB NEIGH_RESTORE_TABLE|Flags restored is not true)"
    )]
    RestoreTimeout(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarmState {
    Initialized,
    Restored,
    Reconciled,
}

impl WarmState {
    pub fn as_str(self) -> &'static str {
        match self {
            WarmState::Initialized => "initialized",
            WarmState::Restored => "restored",
            WarmState::Reconciled => "reconciled",
        }
    }
}

/// What `checkWarmStart` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmStart {
    pub enabled: bool,
    /// A system warm reboot (the kernel lost its neighbors), not only a swss restart.
    pub system: bool,
    pub restore_count: u64,
}

fn key(table: &str, sep: &str, name: &str) -> String {
    format!("{table}{sep}{name}")
}

/// STATE_DB and CONFIG_DB handles for the warm-restart records.
pub struct WarmDb {
    pub state: MultiplexedConnection,
    pub state_sep: String,
    pub config: MultiplexedConnection,
    pub config_sep: String,
}

impl WarmDb {
    async fn hget(
        conn: &mut MultiplexedConnection,
        key: &str,
        field: &str,
    ) -> Result<Option<String>, redis::RedisError> {
        redis::cmd("HGET")
            .arg(key)
            .arg(field)
            .query_async(conn)
            .await
    }

    /// swss-common's `checkWarmStart`: reads the enable knobs and maintains `restore_count`
    /// (incremented on a warm start when `incr` is set; the restore step reads without it).
    pub async fn check(&mut self, incr: bool) -> Result<WarmStart, WarmError> {
        let enable = |name: &str| key("WARM_RESTART_ENABLE_TABLE", &self.state_sep, name);
        let (sys_key, docker_key) = (enable("system"), enable(DOCKER));
        let system = Self::hget(&mut self.state, &sys_key, "enable")
            .await?
            .as_deref()
            == Some("true");
        let docker = Self::hget(&mut self.state, &docker_key, "enable")
            .await?
            .as_deref()
            == Some("true");
        let table = key("WARM_RESTART_TABLE", &self.state_sep, APP);
        let cold = |why: &str| {
            info!("{APP}: cold start ({why})");
        };
        if !(system || docker) {
            cold("warm restart not enabled");
            return self.cold_start(&table).await;
        }
        let count = Self::hget(&mut self.state, &table, "restore_count").await?;
        let Some(count) = count.and_then(|c| c.parse::<u64>().ok()) else {
            warn!(
                "{APP} doing warm start, but restore_count not found in stateDB WARM_RESTART_TABLE table, fall back to cold start"
            );
            return self.cold_start(&table).await;
        };
        let restore_count = if incr { count + 1 } else { count };
        if incr {
            let _: () = redis::cmd("HSET")
                .arg(&table)
                .arg("restore_count")
                .arg(restore_count.to_string())
                .query_async(&mut self.state)
                .await?;
        }
        info!("{APP} doing warm start, restore count {restore_count}");
        Ok(WarmStart {
            enabled: true,
            system,
            restore_count,
        })
    }

    /// A cold start: `restore_count` is 0 (the whole STATE_DB was flushed, or warm is off).
    async fn cold_start(&mut self, table: &str) -> Result<WarmStart, WarmError> {
        let _: () = redis::cmd("HSET")
            .arg(table)
            .arg("restore_count")
            .arg("0")
            .query_async(&mut self.state)
            .await?;
        Ok(WarmStart {
            enabled: false,
            system: false,
            restore_count: 0,
        })
    }

    pub async fn set_state(&mut self, state: WarmState) -> Result<(), WarmError> {
        let _: () = redis::cmd("HSET")
            .arg(key("WARM_RESTART_TABLE", &self.state_sep, APP))
            .arg("state")
            .arg(state.as_str())
            .query_async(&mut self.state)
            .await?;
        info!("{APP} warm start state changed to {}", state.as_str());
        Ok(())
    }

    /// The reconcile timer, logged exactly as swss-common logs it.
    pub async fn reconcile_timer(&mut self) -> Result<Duration, WarmError> {
        let raw = Self::hget(
            &mut self.config,
            &key("WARM_RESTART", &self.config_sep, DOCKER),
            &format!("{APP}_timer"),
        )
        .await?;
        let value = raw.as_deref().and_then(parse_timer);
        Ok(Duration::from_secs(match value {
            Some(v) => {
                info!("Getting warmStartTimer for docker: {DOCKER}, app: {APP}, value: {v}");
                v
            }
            None => {
                info!(
                    "warmStartTimer is not configured or invalid for docker: {DOCKER}, app: {APP}"
                );
                DEFAULT_TIMER
            }
        }))
    }

    /// Whether `NEIGH_RESTORE_TABLE|Flags` says the kernel table has been restored.
    pub async fn restore_done(&mut self) -> Result<bool, WarmError> {
        let k = key("NEIGH_RESTORE_TABLE", &self.state_sep, "Flags");
        Ok(Self::hget(&mut self.state, &k, "restored")
            .await?
            .as_deref()
            == Some("true"))
    }

    /// Polls the restore flag once a second until it is set or `timeout` passes.
    pub async fn wait_restore(&mut self, timeout: Duration) -> Result<(), WarmError> {
        let start = Instant::now();
        loop {
            if self.restore_done().await? {
                info!("neighbor table restore to kernel is done");
                return Ok(());
            }
            let waited = start.elapsed();
            if waited > timeout {
                return Err(WarmError::RestoreTimeout(timeout));
            }
            info!(
                "waited neighbor table to be restored to kernel for {} seconds",
                waited.as_secs()
            );
            tokio::time::sleep(
                Duration::from_secs(1)
                    .min(timeout.saturating_sub(waited) + Duration::from_millis(10)),
            )
            .await;
        }
    }

    pub async fn set_restore_done(&mut self) -> Result<(), WarmError> {
        let _: () = redis::cmd("HSET")
            .arg(key("NEIGH_RESTORE_TABLE", &self.state_sep, "Flags"))
            .arg("restored")
            .arg("true")
            .query_async(&mut self.state)
            .await?;
        Ok(())
    }
}

/// `strtoul(s, NULL, 0)` semantics for the timer (decimal, 0x hex, 0 octal), valid 1..=9999.
pub fn parse_timer(s: &str) -> Option<u64> {
    let s = s.trim();
    let v = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()?
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(&s[1..], 8).ok()?
    } else {
        s.parse().ok()?
    };
    (1..=MAX_TIMER).contains(&v).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_bounds_and_bases() {
        assert_eq!(parse_timer("15"), Some(15));
        assert_eq!(parse_timer("9999"), Some(9999));
        assert_eq!(parse_timer("10000"), None);
        assert_eq!(parse_timer("0"), None);
        assert_eq!(parse_timer("0x10"), Some(16));
        assert_eq!(parse_timer("010"), Some(8));
        assert_eq!(parse_timer("-1"), None);
        assert_eq!(parse_timer("abc"), None);
        assert_eq!(parse_timer(""), None);
        // Strict where upstream's strtoul takes the leading digits (15): docs/BEHAVIOR_DIFFERENCES.md.
        assert_eq!(parse_timer("15abc"), None);
    }
}
