//! tracing setup: text or JSON on stderr, with a level that can be changed at run time.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

use crate::config::LogFormat;

/// Changes the log filter of the running daemon.
pub type LevelHandle = reload::Handle<EnvFilter, Registry>;

pub fn init(format: LogFormat, level: &str) -> Result<LevelHandle, String> {
    let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
    let (filter, handle) = reload::Layer::new(filter);
    let fmt = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .map_err(|e| e.to_string())?;
    Ok(handle)
}
