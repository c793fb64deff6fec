//! The log level, changeable at run time the way SONiC does it: CONFIG_DB `LOGGER|neighsyncd`
//! field `LOGLEVEL` (swss-common's `Logger::linkToDbNative`), followed through keyspace
//! notifications.

use std::time::Duration;

use futures::StreamExt;
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

use crate::logging::LevelHandle;
use crate::sonic::appdb;
use crate::sonic::dbconfig::DbEndpoint;

/// SONiC's level names -> a tracing filter.
pub fn filter_for(sonic_level: &str) -> Option<&'static str> {
    Some(match sonic_level.trim().to_ascii_uppercase().as_str() {
        "EMERG" | "ALERT" | "CRIT" | "ERROR" => "error",
        "WARN" | "WARNING" => "warn",
        "NOTICE" | "INFO" => "info",
        "DEBUG" => "debug",
        _ => return None,
    })
}

/// Follows `LOGGER|neighsyncd` until the process ends. `initial` is the configured filter,
/// restored when the CONFIG_DB entry goes away.
pub async fn watch(ep: DbEndpoint, handle: LevelHandle, initial: String) {
    let key = format!("LOGGER{}neighsyncd", ep.separator);
    let mut current = initial.clone();
    loop {
        let res: Result<(), redis::RedisError> = async {
            let mut conn = appdb::connect(&ep.url).await?;
            let client = redis::Client::open(ep.url.as_str())?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub
                .subscribe(format!("__keyspace@{}__:{key}", ep.id))
                .await?;
            let mut messages = pubsub.on_message();
            loop {
                let level: Option<String> = redis::cmd("HGET")
                    .arg(&key)
                    .arg("LOGLEVEL")
                    .query_async(&mut conn)
                    .await?;
                let want = match level.as_deref() {
                    None => initial.clone(),
                    Some(l) => match filter_for(l) {
                        Some(f) => f.to_string(),
                        None => {
                            warn!(
                                level = l,
                                "LOGGER|neighsyncd LOGLEVEL is not a SONiC level; ignored"
                            );
                            current.clone()
                        }
                    },
                };
                if want != current {
                    match EnvFilter::try_new(&want).map(|f| handle.reload(f)) {
                        Ok(Ok(())) => {
                            current = want;
                            info!(level = current, "log level changed from CONFIG_DB");
                        }
                        _ => warn!(level = want, "cannot apply the log level"),
                    }
                }
                // Re-read on every change to the key (or every 30 s if notifications are off).
                if let Ok(None) =
                    tokio::time::timeout(Duration::from_secs(30), messages.next()).await
                {
                    // The subscription closed: reconnect.
                    return Ok(());
                }
            }
        }
        .await;
        if let Err(e) = res {
            warn!(error = %e, "LOGGER watch failed; retrying");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::filter_for;

    #[test]
    fn sonic_levels_map_to_tracing_levels() {
        assert_eq!(filter_for("DEBUG"), Some("debug"));
        assert_eq!(filter_for("NOTICE"), Some("info"));
        assert_eq!(filter_for("INFO"), Some("info"));
        assert_eq!(filter_for("WARN"), Some("warn"));
        assert_eq!(filter_for("ERROR"), Some("error"));
        assert_eq!(filter_for("CRIT"), Some("error"));
        assert_eq!(filter_for("loud"), None);
    }
}
