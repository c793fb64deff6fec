//! tracing setup: text or JSON, on stderr or to syslog (SONiC collects daemon logs through
//! syslog), with a level that can be changed at run time (see `log_level`).

use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

use crate::config::{LogFormat, LogTarget};

/// Changes the log filter of the running daemon.
pub type LevelHandle = reload::Handle<EnvFilter, Registry>;

/// RFC 3164 facility `daemon`.
const FACILITY_DAEMON: u8 = 3;

/// Sends each formatted event as one datagram to the syslog socket.
#[derive(Clone)]
struct Syslog {
    socket: Arc<UnixDatagram>,
    path: PathBuf,
    tag: String,
}

struct SyslogLine {
    syslog: Syslog,
    severity: u8,
    buf: Vec<u8>,
}

fn severity(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

impl Write for SyslogLine {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for SyslogLine {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let text = text.trim_end();
        if text.is_empty() {
            return;
        }
        let pri = FACILITY_DAEMON * 8 + self.severity;
        let msg = format!("<{pri}>{}[{}]: {text}", self.syslog.tag, std::process::id());
        // Logging must never fail the daemon: a full or absent syslog drops the line.
        let _ = self
            .syslog
            .socket
            .send_to(msg.as_bytes(), &self.syslog.path);
    }
}

impl<'a> MakeWriter<'a> for Syslog {
    type Writer = SyslogLine;

    fn make_writer(&'a self) -> SyslogLine {
        SyslogLine {
            syslog: self.clone(),
            severity: 6,
            buf: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> SyslogLine {
        SyslogLine {
            syslog: self.clone(),
            severity: severity(meta.level()),
            buf: Vec::new(),
        }
    }
}

/// Keeps the span exporter alive; [`Telemetry::shutdown`] flushes what is queued.
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still queued (call outside the async runtime: the exporter blocks).
    pub fn shutdown(self) {
        if let Some(p) = self.provider
            && let Err(e) = p.shutdown()
        {
            eprintln!("neighsyncd: span export shutdown: {e}");
        }
    }
}

/// An OpenTelemetry (OTLP over HTTP, protobuf) span exporter to `endpoint`, e.g.
/// `http://collector:4318/v1/traces`. Call before any async runtime starts.
fn otlp_provider(endpoint: &str) -> Result<opentelemetry_sdk::trace::SdkTracerProvider, String> {
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| format!("otlp_endpoint: {e}"))?;
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("neighsyncd")
                .build(),
        )
        .build())
}

pub fn init(
    format: LogFormat,
    target: &LogTarget,
    level: &str,
    otlp_endpoint: Option<&str>,
) -> Result<(LevelHandle, Telemetry), String> {
    let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
    let (filter, handle) = reload::Layer::new(filter);
    let fmt = match target {
        LogTarget::Stderr => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            match format {
                LogFormat::Text => tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(ansi)
                    .boxed(),
                LogFormat::Json => tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr)
                    .boxed(),
            }
        }
        LogTarget::Syslog(path) => {
            let writer = Syslog {
                socket: Arc::new(UnixDatagram::unbound().map_err(|e| e.to_string())?),
                path: path.clone(),
                tag: "neighsyncd".into(),
            };
            // syslog stamps time and host itself.
            match format {
                LogFormat::Text => tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .with_ansi(false)
                    .without_time()
                    .boxed(),
                LogFormat::Json => tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(writer)
                    .without_time()
                    .boxed(),
            }
        }
    };
    let provider = otlp_endpoint.map(otlp_provider).transpose()?;
    let otel = provider.as_ref().map(|p| {
        use opentelemetry::trace::TracerProvider as _;
        tracing_opentelemetry::layer().with_tracer(p.tracer("neighsyncd"))
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| e.to_string())?;
    Ok((handle, Telemetry { provider }))
}
