//! Every option, declared once. [`Options`] is the command line's flags (clap), the TOML
//! file's keys (serde), and, resolved, the effective configuration the API shows. Its
//! defaults are declared once too ([`Options::defaults`]); `--help` shows them from there,
//! and `docs/CONFIGURATION.md`'s table is checked against both (`config/tests.rs`).

use std::path::PathBuf;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// eBPF when it loads here, else rtnetlink (the reason is logged and exported).
    #[default]
    Auto,
    /// rtnetlink multicast only.
    Netlink,
    /// The eBPF program; fail if it cannot load.
    Ebpf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The options. Every field is optional here: a flag given, a key in the file, or neither
/// (then [`Options::defaults`] decides). Flags and keys share their names (dashes on the
/// command line, underscores in the file).
#[derive(Debug, Clone, Default, PartialEq, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Plain Redis address for labs and tests: redis://HOST:PORT or unix:///PATH. SONiC's
    /// database numbers are used (APPL_DB 0, CONFIG_DB 4, STATE_DB 6). Overrides --db-config.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,

    /// SONiC's database_config.json.
    #[arg(long, value_name = "PATH")]
    pub db_config: Option<PathBuf>,

    /// Multi-ASIC: the SONiC namespace(s) to serve (asic0, asic1, ...), each with its
    /// databases from --db-global-config. One name: the daemon enters that network namespace
    /// (/var/run/netns/NAME) before anything else, one daemon per namespace as upstream runs
    /// it. Repeated, or `all` (every namespace database_global.json lists): one process serves
    /// them all from where it was started. Unset: the namespace it was started in, with
    /// --db-config.
    #[arg(long, value_name = "NAME")]
    #[serde(default, deserialize_with = "one_or_many")]
    pub namespace: Option<Vec<String>>,

    /// SONiC's database_global.json (multi-ASIC), read with --namespace.
    #[arg(long, value_name = "PATH")]
    pub db_global_config: Option<PathBuf>,

    /// Where neighbor events come from.
    #[arg(long, value_enum)]
    pub source: Option<SourceKind>,

    /// Netlink socket receive buffer in bytes (SO_RCVBUFFORCE when permitted).
    #[arg(long, value_name = "BYTES")]
    pub netlink_rcvbuf: Option<usize>,

    /// Most neighbor operations written to APPL_DB in one round trip.
    #[arg(long, value_name = "N")]
    pub batch_max: Option<usize>,

    /// Periodic audit (kernel dump + APPL_DB read-back + diff) every N seconds; 0 = off.
    /// Unset: 300 when eBPF may be the source (auto, ebpf), 0 with netlink.
    #[arg(long, value_name = "SECS")]
    pub audit_interval: Option<u64>,

    /// Interfaces whose neighbors are never written (comma separated; opt-in).
    #[arg(long, value_name = "IFNAMES", value_delimiter = ',')]
    pub ignore_interfaces: Option<Vec<String>>,

    /// How often CONFIG_DB is re-read when Redis has keyspace notifications off (seconds).
    #[arg(long, value_name = "SECS")]
    pub config_db_poll: Option<u64>,

    /// Log format.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,

    /// Log level or tracing filter, e.g. info, debug, neighsyncd=trace. CONFIG_DB
    /// LOGGER|neighsyncd LOGLEVEL overrides it at run time, as in SONiC.
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,

    /// Where logs go: stderr, or syslog (the socket of --syslog-socket).
    #[arg(long, value_name = "stderr|syslog")]
    pub log_target: Option<String>,

    /// The syslog socket.
    #[arg(long, value_name = "PATH")]
    pub syslog_socket: Option<PathBuf>,

    /// OpenTelemetry: export spans (OTLP over HTTP) to this URL, e.g.
    /// http://127.0.0.1:4318/v1/traces; empty: off.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,

    /// Prometheus metrics and health listener, or "off".
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,

    /// REST API listener: ADDR:PORT, unix:/PATH, or "off".
    #[arg(long, value_name = "ADDR")]
    pub rest_listen: Option<String>,

    /// gRPC API listener (neighsyncd.v1, health, reflection): ADDR:PORT, unix:/PATH, or "off".
    #[arg(long, value_name = "ADDR")]
    pub grpc_listen: Option<String>,

    /// File holding the bearer token mutating API calls (resync) need; without it they are
    /// refused.
    #[arg(long, value_name = "PATH")]
    pub api_token_file: Option<PathBuf>,

    /// Whether API reads need no token.
    #[arg(long, value_name = "BOOL")]
    pub api_reads_open: Option<bool>,

    /// TLS for the REST and gRPC listeners: the server certificate chain (PEM).
    #[arg(long, value_name = "PATH")]
    pub api_tls_cert: Option<PathBuf>,

    /// The server certificate's private key (PEM).
    #[arg(long, value_name = "PATH")]
    pub api_tls_key: Option<PathBuf>,

    /// Mutual TLS: clients must present a certificate signed by this CA (PEM).
    #[arg(long, value_name = "PATH")]
    pub api_tls_client_ca: Option<PathBuf>,

    /// Serve an on-demand CPU profile (pprof format) at /debug/pprof/profile?seconds=N on the
    /// metrics listener; fetching it needs the API token (api_token_file).
    #[arg(long, value_name = "BOOL")]
    pub profiler: Option<bool>,

    /// eBPF ring buffer size in bytes, a power of two.
    #[arg(long, value_name = "BYTES")]
    pub ebpf_ring_bytes: Option<u32>,

    /// eBPF de-duplication LRU entries.
    #[arg(long, value_name = "N")]
    pub ebpf_lru_entries: Option<u32>,

    /// After this many seconds without a record, the eBPF source is checked with the canary
    /// neighbor.
    #[arg(long, value_name = "SECS")]
    pub ebpf_watchdog: Option<u64>,

    /// Warm start: how long to wait for STATE_DB NEIGH_RESTORE_TABLE|Flags restored=true
    /// before exiting with an error (seconds).
    #[arg(long, value_name = "SECS")]
    pub warm_restore_timeout: Option<u64>,

    /// Hot standby: run as one of two (or more) daemons with the same databases; a lease in
    /// STATE_DB elects the one that writes APPL_DB, the others stay warm and take over when
    /// it goes (docs/UPGRADE.md). `--ha` alone means true.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub ha: Option<bool>,

    /// With `ha`: how long the leader's lease lasts without renewal (milliseconds): the longest
    /// a dead leader goes unreplaced.
    #[arg(long, value_name = "MS")]
    pub ha_lease_ms: Option<u64>,

    /// With `ha`: how often the leader renews its lease, and a standby tries for it
    /// (milliseconds); at most a third of `ha_lease_ms`.
    #[arg(long, value_name = "MS")]
    pub ha_renew_ms: Option<u64>,
}

/// A key that takes a name or a list of names (`namespace = "asic0"` or `["asic0", "asic1"]`).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => None,
        Some(OneOrMany::One(s)) => Some(vec![s]),
        Some(OneOrMany::Many(v)) => Some(v),
    })
}

/// Defaults that collide with nothing on a SONiC switch (its telemetry/gNMI services hold 8080
/// and 50051): the APIs on unix sockets, reachable only by who may open them; Prometheus needs
/// TCP, on loopback.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9091";
pub const DEFAULT_REST_LISTEN: &str = "unix:/run/neighsyncd/rest.sock";
pub const DEFAULT_GRPC_LISTEN: &str = "unix:/run/neighsyncd/grpc.sock";
/// Seconds between audits when eBPF may be the source and none is configured.
pub const DEFAULT_EBPF_AUDIT: u64 = 300;

impl Options {
    /// The default of every option; `None` where being unset is the default (no Redis URL,
    /// no token, no TLS, no tracing export) or where it depends on another option
    /// (`audit_interval`, see [`Options::resolved`]).
    pub fn defaults() -> Options {
        Options {
            redis: None,
            db_config: Some(PathBuf::from(crate::sonic::dbconfig::DEFAULT_DB_CONFIG)),
            namespace: None,
            db_global_config: Some(PathBuf::from(
                crate::sonic::dbconfig::DEFAULT_DB_GLOBAL_CONFIG,
            )),
            source: Some(SourceKind::Auto),
            netlink_rcvbuf: Some(16 * 1024 * 1024),
            batch_max: Some(512),
            audit_interval: None,
            ignore_interfaces: Some(Vec::new()),
            config_db_poll: Some(5),
            log_format: Some(LogFormat::Text),
            log_level: Some("info".into()),
            log_target: Some("stderr".into()),
            syslog_socket: Some(PathBuf::from("/dev/log")),
            otlp_endpoint: None,
            metrics_listen: Some(DEFAULT_METRICS_LISTEN.into()),
            rest_listen: Some(DEFAULT_REST_LISTEN.into()),
            grpc_listen: Some(DEFAULT_GRPC_LISTEN.into()),
            api_token_file: None,
            api_reads_open: Some(true),
            api_tls_cert: None,
            api_tls_key: None,
            api_tls_client_ca: None,
            profiler: Some(false),
            ebpf_ring_bytes: Some(512 << 10),
            ebpf_lru_entries: Some(262_144),
            ebpf_watchdog: Some(60),
            warm_restore_timeout: Some(180),
            ha: Some(false),
            ha_lease_ms: Some(3000),
            ha_renew_ms: Some(500),
        }
    }

    /// Every key (sorted).
    pub fn keys() -> Vec<String> {
        match serde_json::to_value(Options::default()) {
            Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// These options, with `under`'s where these are unset (flags over the file, the file
    /// over the defaults). Generic over the fields: no option is named here.
    pub fn over(self, under: Options) -> Options {
        let (Ok(serde_json::Value::Object(top)), Ok(serde_json::Value::Object(mut base))) =
            (serde_json::to_value(&self), serde_json::to_value(&under))
        else {
            return self;
        };
        for (k, v) in top {
            if !v.is_null() {
                base.insert(k, v);
            }
        }
        serde_json::from_value(serde_json::Value::Object(base)).unwrap_or(self)
    }

    /// With every default filled in: what the daemon runs with, before validation.
    pub fn resolved(self) -> Options {
        let mut o = self.over(Options::defaults());
        if o.redis.is_some() {
            o.db_config = None; // --redis overrides the SONiC layout
        }
        // With eBPF the audit is the last line of defence (see the program's comment on
        // concurrent updates): on unless turned off.
        o.audit_interval.get_or_insert(match o.source {
            Some(SourceKind::Netlink) => 0,
            _ => DEFAULT_EBPF_AUDIT,
        });
        o
    }

    /// The text `--help` adds to each flag: its default.
    pub(crate) fn default_text(key: &str) -> Option<String> {
        let d = serde_json::to_value(Options::defaults()).ok()?;
        match d.get(key)? {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Array(a) if a.is_empty() => Some("none".into()),
            v => Some(v.to_string()),
        }
    }
}
