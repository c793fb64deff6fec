//! Logging bad input once per kind, not once per message: a misbehaving peer must not be able
//! to flood the logs. Every occurrence is still counted in the metrics.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const INTERVAL: Duration = Duration::from_secs(60);

static LAST: Mutex<Option<HashMap<&'static str, (Instant, u64)>>> = Mutex::new(None);

/// Logs a warning for `kind` at most once a minute, with how many were not logged since.
pub fn warn_kind(kind: &'static str) {
    let Ok(mut guard) = LAST.lock() else {
        return;
    };
    let map = guard.get_or_insert_with(HashMap::new);
    let now = Instant::now();
    match map.get_mut(kind) {
        Some((last, suppressed)) if now.duration_since(*last) < INTERVAL => *suppressed += 1,
        Some((last, suppressed)) => {
            tracing::warn!(
                kind,
                suppressed = *suppressed,
                "skipped malformed kernel input"
            );
            *last = now;
            *suppressed = 0;
        }
        None => {
            tracing::warn!(
                kind,
                "skipped malformed kernel input (further ones logged once a minute)"
            );
            map.insert(kind, (now, 0));
        }
    }
}
