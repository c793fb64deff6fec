//! Command-line flags + TOML file -> one validated [`Config`]. Flags win over the file, the
//! file over the defaults. Every file key has a flag of the same name (with dashes).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use serde::Deserialize;

pub use crate::northbound::listeners::ListenAddr;
use crate::sonic::dbconfig::{DEFAULT_DB_CONFIG, DbConfigError, DbLayout};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
    #[error(transparent)]
    Db(#[from] DbConfigError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
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

/// Where logs go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    Stderr,
    /// RFC 3164 datagrams to this unix socket (normally /dev/log).
    Syslog(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Mirrors the kernel neighbor table (ARP, NDP) into SONiC's APPL_DB NEIGH_TABLE.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "neighsyncd", version, about, long_about = None)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// TOML config file; every key is also a flag below (flags win).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Plain Redis address for labs and tests: redis://HOST:PORT or unix:///PATH. SONiC's database
    /// numbers are used (APPL_DB 0, CONFIG_DB 4, STATE_DB 6). Overrides --db-config.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,

    /// SONiC database_config.json [default: /var/run/redis/sonic-db/database_config.json].
    #[arg(long, value_name = "PATH")]
    pub db_config: Option<PathBuf>,

    /// Where neighbor events come from [default: auto].
    #[arg(long, value_enum)]
    pub source: Option<SourceKind>,

    /// Netlink socket receive buffer in bytes (SO_RCVBUFFORCE when permitted) [default: 16777216].
    #[arg(long, value_name = "BYTES")]
    pub netlink_rcvbuf: Option<usize>,

    /// Most neighbor operations written to APPL_DB in one round trip [default: 16384].
    #[arg(long, value_name = "N")]
    pub batch_max: Option<usize>,

    /// Periodic audit (kernel dump + APPL_DB read-back + diff) every N seconds; 0 = off
    /// [default: 300 when eBPF may be the source (auto, ebpf), 0 with netlink].
    #[arg(long, value_name = "SECS")]
    pub audit_interval: Option<u64>,

    /// Interfaces whose neighbors are never written (comma separated; opt-in, default none).
    #[arg(long, value_name = "IFNAMES", value_delimiter = ',')]
    pub ignore_interfaces: Option<Vec<String>>,

    /// How often CONFIG_DB is re-read when Redis has keyspace notifications off [default: 5].
    #[arg(long, value_name = "SECS")]
    pub config_db_poll: Option<u64>,

    /// Log format [default: text].
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,

    /// Log level or tracing filter, e.g. info, debug, neighsyncd=trace [default: info]. CONFIG_DB
    /// LOGGER|neighsyncd LOGLEVEL overrides it at run time, as in SONiC.
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,

    /// Where logs go: stderr, or syslog (the socket of --syslog-socket) [default: stderr].
    #[arg(long, value_name = "stderr|syslog")]
    pub log_target: Option<String>,

    /// The syslog socket [default: /dev/log].
    #[arg(long, value_name = "PATH")]
    pub syslog_socket: Option<PathBuf>,

    /// OpenTelemetry: export spans (OTLP over HTTP) to this URL, e.g.
    /// http://127.0.0.1:4318/v1/traces [default: off].
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,

    /// Prometheus metrics and health listener, or "off" [default: 127.0.0.1:9091].
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,

    /// REST API listener: ADDR:PORT, unix:/PATH, or "off" [default: unix:/run/neighsyncd/rest.sock].
    #[arg(long, value_name = "ADDR")]
    pub rest_listen: Option<String>,

    /// gRPC API listener (neighsyncd.v1, health, reflection): ADDR:PORT, unix:/PATH, or "off"
    /// [default: unix:/run/neighsyncd/grpc.sock].
    #[arg(long, value_name = "ADDR")]
    pub grpc_listen: Option<String>,

    /// File holding the bearer token mutating API calls (resync) need; without it they are
    /// refused [default: none].
    #[arg(long, value_name = "PATH")]
    pub api_token_file: Option<PathBuf>,

    /// TLS for the REST and gRPC listeners: the server certificate chain (PEM) [default: plain].
    #[arg(long, value_name = "PATH")]
    pub api_tls_cert: Option<PathBuf>,

    /// The server certificate's private key (PEM).
    #[arg(long, value_name = "PATH")]
    pub api_tls_key: Option<PathBuf>,

    /// Mutual TLS: clients must present a certificate signed by this CA (PEM).
    #[arg(long, value_name = "PATH")]
    pub api_tls_client_ca: Option<PathBuf>,

    /// Whether API reads need no token [default: true].
    #[arg(long, value_name = "BOOL")]
    pub api_reads_open: Option<bool>,

    /// eBPF ring buffer size in bytes, a power of two [default: 4194304].
    #[arg(long, value_name = "BYTES")]
    pub ebpf_ring_bytes: Option<u32>,

    /// eBPF de-duplication LRU entries [default: 262144].
    #[arg(long, value_name = "N")]
    pub ebpf_lru_entries: Option<u32>,

    /// After this many seconds without a record, the eBPF source is checked with the canary
    /// neighbor [default: 60].
    #[arg(long, value_name = "SECS")]
    pub ebpf_watchdog: Option<u64>,

    /// Warm start: how long to wait for STATE_DB NEIGH_RESTORE_TABLE|Flags restored=true before
    /// exiting with an error [default: 180].
    #[arg(long, value_name = "SECS")]
    pub warm_restore_timeout: Option<u64>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// SONiC's restore_neighbors step (run by supervisord before neighsyncd): on a system warm
    /// reboot, re-add the neighbors saved in APPL_DB to the kernel and re-resolve them (ARP /
    /// neighbor solicitation), then set STATE_DB NEIGH_RESTORE_TABLE|Flags restored=true; on a
    /// swss-only warm restart set the flag at once; with warm restart off, do nothing.
    Restore {
        /// Give up on interfaces still down after this many seconds.
        #[arg(long, default_value_t = 110, value_name = "SECS")]
        timeout: u64,
        /// Seconds between interface state checks.
        #[arg(long, default_value_t = 5, value_name = "SECS")]
        check_interval: u64,
    },
}

/// The TOML file: the same keys as the flags, with underscores.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    redis: Option<String>,
    db_config: Option<PathBuf>,
    source: Option<SourceKind>,
    netlink_rcvbuf: Option<usize>,
    batch_max: Option<usize>,
    audit_interval: Option<u64>,
    ignore_interfaces: Option<Vec<String>>,
    config_db_poll: Option<u64>,
    log_format: Option<LogFormat>,
    log_level: Option<String>,
    log_target: Option<String>,
    syslog_socket: Option<PathBuf>,
    otlp_endpoint: Option<String>,
    metrics_listen: Option<String>,
    rest_listen: Option<String>,
    grpc_listen: Option<String>,
    api_token_file: Option<PathBuf>,
    api_reads_open: Option<bool>,
    api_tls_cert: Option<PathBuf>,
    api_tls_key: Option<PathBuf>,
    api_tls_client_ca: Option<PathBuf>,
    ebpf_ring_bytes: Option<u32>,
    ebpf_lru_entries: Option<u32>,
    ebpf_watchdog: Option<u64>,
    warm_restore_timeout: Option<u64>,
}

fn parse_file(text: &str, path: String) -> Result<FileConfig, ConfigError> {
    toml::from_str::<FileConfig>(text).map_err(|e| ConfigError::Parse {
        path,
        message: e.to_string(),
    })
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub db: DbLayout,
    pub source: SourceKind,
    pub netlink_rcvbuf: usize,
    pub batch_max: usize,
    pub audit_interval: Option<Duration>,
    pub ignore_interfaces: HashSet<String>,
    pub config_db_poll: Duration,
    pub log_format: LogFormat,
    pub log_level: String,
    pub log_target: LogTarget,
    pub otlp_endpoint: Option<String>,
    pub metrics_listen: Option<SocketAddr>,
    pub rest_listen: Option<ListenAddr>,
    pub grpc_listen: Option<ListenAddr>,
    pub api_token_file: Option<PathBuf>,
    pub api_reads_open: bool,
    pub api_tls: Option<crate::northbound::api::tls::TlsFiles>,
    pub ebpf_ring_bytes: u32,
    pub ebpf_lru_entries: u32,
    pub ebpf_watchdog: Duration,
    pub warm_restore_timeout: Duration,
}

pub const DEFAULT_RCVBUF: usize = 16 * 1024 * 1024;
pub const DEFAULT_BATCH_MAX: usize = 16384;
/// Seconds between audits when eBPF may be the source and none is configured.
pub const DEFAULT_EBPF_AUDIT: u64 = 300;
/// Defaults that collide with nothing on a SONiC switch (its telemetry/gNMI services hold 8080
/// and 50051): the APIs on unix sockets, reachable only by who may open them; Prometheus needs
/// TCP, on loopback.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9091";
pub const DEFAULT_REST_LISTEN: &str = "unix:/run/neighsyncd/rest.sock";
pub const DEFAULT_GRPC_LISTEN: &str = "unix:/run/neighsyncd/grpc.sock";

fn api_listen(
    key: &'static str,
    value: Option<String>,
    default: &str,
) -> Result<Option<ListenAddr>, ConfigError> {
    let v = value.unwrap_or_else(|| default.into());
    if v == "off" {
        return Ok(None);
    }
    if let Some(path) = v.strip_prefix("unix:") {
        if !path.starts_with('/') {
            return Err(invalid(
                key,
                format!("{v:?}: the unix socket path must be absolute"),
            ));
        }
        return Ok(Some(ListenAddr::Unix(PathBuf::from(path))));
    }
    v.parse::<SocketAddr>()
        .map(|a| Some(ListenAddr::Tcp(a)))
        .map_err(|_| {
            invalid(
                key,
                format!("{v:?} is not ADDR:PORT (e.g. {default}), unix:/PATH or \"off\""),
            )
        })
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

impl Config {
    /// The effective configuration, as the API serves it (the token itself never appears).
    pub fn to_json(&self) -> serde_json::Value {
        let addr =
            |a: &Option<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_else(|| "off".into());
        let mut ignore: Vec<&String> = self.ignore_interfaces.iter().collect();
        ignore.sort();
        serde_json::json!({
            "appl_db": self.db.appl.url,
            "config_db": self.db.config.url,
            "state_db": self.db.state.url,
            "source": format!("{:?}", self.source).to_lowercase(),
            "netlink_rcvbuf": self.netlink_rcvbuf,
            "batch_max": self.batch_max,
            "audit_interval": self.audit_interval.map(|d| d.as_secs()).unwrap_or(0),
            "ignore_interfaces": ignore,
            "config_db_poll": self.config_db_poll.as_secs(),
            "log_format": format!("{:?}", self.log_format).to_lowercase(),
            "log_level": self.log_level,
            "otlp_endpoint": self.otlp_endpoint,
            "metrics_listen": addr(&self.metrics_listen),
            "rest_listen": self.rest_listen.as_ref().map(|l| l.to_string()).unwrap_or_else(|| "off".into()),
            "grpc_listen": self.grpc_listen.as_ref().map(|l| l.to_string()).unwrap_or_else(|| "off".into()),
            "api_token_file": self.api_token_file.as_ref().map(|p| p.display().to_string()),
            "api_reads_open": self.api_reads_open,
            "api_tls": self.api_tls.is_some(),
            "api_mtls": self.api_tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
            "ebpf_ring_bytes": self.ebpf_ring_bytes,
            "ebpf_lru_entries": self.ebpf_lru_entries,
            "ebpf_watchdog": self.ebpf_watchdog.as_secs(),
            "warm_restore_timeout": self.warm_restore_timeout.as_secs(),
        })
    }

    pub fn load(args: Args) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => {
                let p = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: p.clone(),
                    source,
                })?;
                parse_file(&text, p)?
            }
            None => FileConfig::default(),
        };
        Self::merge(args, file)
    }

    /// What a config file's text alone gives (no flags): for the fuzzer and tools.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        Self::merge(Args::default(), parse_file(text, "<text>".into())?)
    }

    fn merge(a: Args, f: FileConfig) -> Result<Config, ConfigError> {
        let redis = a.redis.or(f.redis);
        let db = match redis {
            Some(url) => DbLayout::from_url(&url).map_err(|e| invalid("redis", e.to_string()))?,
            None => {
                let path = a
                    .db_config
                    .or(f.db_config)
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_DB_CONFIG));
                DbLayout::from_sonic_file(&path)?
            }
        };
        let netlink_rcvbuf = a
            .netlink_rcvbuf
            .or(f.netlink_rcvbuf)
            .unwrap_or(DEFAULT_RCVBUF);
        if netlink_rcvbuf < 4096 {
            return Err(invalid("netlink_rcvbuf", "must be at least 4096 bytes"));
        }
        let batch_max = a.batch_max.or(f.batch_max).unwrap_or(DEFAULT_BATCH_MAX);
        if batch_max == 0 || batch_max > 1_000_000 {
            return Err(invalid("batch_max", "must be between 1 and 1000000"));
        }
        let source = a.source.or(f.source).unwrap_or_default();
        // With eBPF the audit is the last line of defence (see the program's comment on
        // concurrent updates): on unless turned off.
        let audit = a
            .audit_interval
            .or(f.audit_interval)
            .unwrap_or(match source {
                SourceKind::Netlink => 0,
                SourceKind::Auto | SourceKind::Ebpf => DEFAULT_EBPF_AUDIT,
            });
        let poll = a.config_db_poll.or(f.config_db_poll).unwrap_or(5);
        if poll == 0 {
            return Err(invalid("config_db_poll", "must be at least 1 second"));
        }
        let log_level = a.log_level.or(f.log_level).unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(invalid(
                "log_level",
                format!("{log_level:?} is not a level or filter"),
            ));
        }
        let syslog = a
            .syslog_socket
            .or(f.syslog_socket)
            .unwrap_or_else(|| PathBuf::from("/dev/log"));
        let log_target = match a.log_target.or(f.log_target).as_deref() {
            None | Some("stderr") => LogTarget::Stderr,
            Some("syslog") => LogTarget::Syslog(syslog),
            Some(other) => {
                return Err(invalid(
                    "log_target",
                    format!("{other:?} is not stderr or syslog"),
                ));
            }
        };
        let otlp_endpoint = a
            .otlp_endpoint
            .or(f.otlp_endpoint)
            .filter(|e| !e.is_empty());
        if let Some(e) = &otlp_endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return Err(invalid(
                "otlp_endpoint",
                format!("{e:?} is not an http(s) URL"),
            ));
        }
        let metrics_listen = match a
            .metrics_listen
            .or(f.metrics_listen)
            .unwrap_or_else(|| DEFAULT_METRICS_LISTEN.into())
            .as_str()
        {
            "off" => None,
            s => Some(s.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "metrics_listen",
                    format!("{s:?} is not an address like 127.0.0.1:9091 or \"off\""),
                )
            })?),
        };
        let rest_listen = api_listen(
            "rest_listen",
            a.rest_listen.or(f.rest_listen),
            DEFAULT_REST_LISTEN,
        )?;
        let grpc_listen = api_listen(
            "grpc_listen",
            a.grpc_listen.or(f.grpc_listen),
            DEFAULT_GRPC_LISTEN,
        )?;
        let api_tls = match (
            a.api_tls_cert.or(f.api_tls_cert),
            a.api_tls_key.or(f.api_tls_key),
            a.api_tls_client_ca.or(f.api_tls_client_ca),
        ) {
            (Some(cert), Some(key), client_ca) => Some(crate::northbound::api::tls::TlsFiles {
                cert,
                key,
                client_ca,
            }),
            (None, None, None) => None,
            (None, None, Some(_)) => {
                return Err(invalid(
                    "api_tls_client_ca",
                    "needs api_tls_cert and api_tls_key",
                ));
            }
            _ => {
                return Err(invalid(
                    "api_tls_cert",
                    "api_tls_cert and api_tls_key go together",
                ));
            }
        };
        let ebpf_ring_bytes = a.ebpf_ring_bytes.or(f.ebpf_ring_bytes).unwrap_or(4 << 20);
        if !ebpf_ring_bytes.is_power_of_two() || ebpf_ring_bytes < 4096 {
            return Err(invalid(
                "ebpf_ring_bytes",
                "must be a power of two, at least 4096",
            ));
        }
        let ebpf_lru_entries = a.ebpf_lru_entries.or(f.ebpf_lru_entries).unwrap_or(262_144);
        if ebpf_lru_entries < 64 {
            return Err(invalid("ebpf_lru_entries", "must be at least 64"));
        }
        let ebpf_watchdog = a.ebpf_watchdog.or(f.ebpf_watchdog).unwrap_or(60);
        if ebpf_watchdog == 0 {
            return Err(invalid("ebpf_watchdog", "must be at least 1 second"));
        }
        let ignore: Vec<String> = a
            .ignore_interfaces
            .or(f.ignore_interfaces)
            .unwrap_or_default();
        if let Some(bad) = ignore.iter().find(|n| n.is_empty() || n.len() > 15) {
            return Err(invalid(
                "ignore_interfaces",
                format!("{bad:?} is not an interface name"),
            ));
        }
        let warm_restore_timeout = a
            .warm_restore_timeout
            .or(f.warm_restore_timeout)
            .unwrap_or(180);
        if warm_restore_timeout == 0 {
            return Err(invalid("warm_restore_timeout", "must be at least 1 second"));
        }
        Ok(Config {
            warm_restore_timeout: Duration::from_secs(warm_restore_timeout),
            db,
            source,
            netlink_rcvbuf,
            batch_max,
            audit_interval: (audit > 0).then(|| Duration::from_secs(audit)),
            ignore_interfaces: ignore.into_iter().collect(),
            config_db_poll: Duration::from_secs(poll),
            log_format: a.log_format.or(f.log_format).unwrap_or_default(),
            log_level,
            log_target,
            otlp_endpoint,
            metrics_listen,
            rest_listen,
            grpc_listen,
            api_token_file: a.api_token_file.or(f.api_token_file),
            api_reads_open: a.api_reads_open.or(f.api_reads_open).unwrap_or(true),
            api_tls,
            ebpf_ring_bytes,
            ebpf_lru_entries,
            ebpf_watchdog: Duration::from_secs(ebpf_watchdog),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut v = vec!["neighsyncd"];
        v.extend_from_slice(extra);
        Args::try_parse_from(v).unwrap()
    }

    fn file(text: &str) -> FileConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn flags_win_over_the_file_and_defaults_fill_in() {
        let c = Config::merge(
            args(&["--redis", "unix:///tmp/x.sock", "--batch-max", "10"]),
            file("batch_max = 20\naudit_interval = 30\nignore_interfaces = [\"eth0\", \"lo\"]"),
        )
        .unwrap();
        assert_eq!(c.batch_max, 10);
        assert_eq!(c.audit_interval, Some(Duration::from_secs(30)));
        assert_eq!(c.ebpf_watchdog, Duration::from_secs(60));
        assert_eq!(c.netlink_rcvbuf, DEFAULT_RCVBUF);
        assert!(c.ignore_interfaces.contains("lo"));
        assert_eq!(c.source, SourceKind::Auto);
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9091".parse().unwrap()));
        // The APIs default to unix sockets: nothing on a SONiC switch can hold them.
        assert_eq!(
            c.rest_listen,
            Some(ListenAddr::Unix("/run/neighsyncd/rest.sock".into()))
        );
        assert_eq!(
            c.grpc_listen,
            Some(ListenAddr::Unix("/run/neighsyncd/grpc.sock".into()))
        );
    }

    #[test]
    fn errors_name_the_key() {
        let cases: &[(&[&str], &str, &str)] = &[
            (&["--redis", "http://x"], "", "redis"),
            (
                &["--redis", "unix:///x", "--netlink-rcvbuf", "10"],
                "",
                "netlink_rcvbuf",
            ),
            (
                &["--redis", "unix:///x", "--batch-max", "0"],
                "",
                "batch_max",
            ),
            (
                &["--redis", "unix:///x"],
                "ebpf_ring_bytes = 5000",
                "ebpf_ring_bytes",
            ),
            (
                &["--redis", "unix:///x"],
                "metrics_listen = \"nowhere\"",
                "metrics_listen",
            ),
            (&["--redis", "unix:///x"], "log_level = \"[[\"", "log_level"),
        ];
        for (a, f, key) in cases {
            let e = Config::merge(args(a), file(f)).unwrap_err().to_string();
            assert!(e.contains(key), "{e} should name {key}");
        }
        let e = toml::from_str::<FileConfig>("no_such_key = 1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no_such_key"), "{e}");
    }

    #[test]
    fn audits_are_on_by_default_with_ebpf_only() {
        let audit = |extra: &[&str]| {
            let mut v = vec!["--redis", "unix:///x"];
            v.extend_from_slice(extra);
            Config::merge(args(&v), FileConfig::default())
                .unwrap()
                .audit_interval
        };
        let five_min = Some(Duration::from_secs(DEFAULT_EBPF_AUDIT));
        assert_eq!(audit(&[]), five_min);
        assert_eq!(audit(&["--source", "ebpf"]), five_min);
        assert_eq!(audit(&["--source", "netlink"]), None);
        assert_eq!(audit(&["--source", "ebpf", "--audit-interval", "0"]), None);
    }

    #[test]
    fn metrics_can_be_turned_off() {
        let c = Config::merge(
            args(&["--redis", "unix:///x", "--metrics-listen", "off"]),
            FileConfig::default(),
        )
        .unwrap();
        assert_eq!(c.metrics_listen, None);
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    /// deploy/neighsyncd.toml.example has every key and loads with the real loader.
    #[test]
    fn the_example_config_loads_and_names_every_key() {
        let text = include_str!("../../deploy/neighsyncd.toml.example");
        let file: FileConfig = toml::from_str(text).expect("example parses (no unknown keys)");
        let c = Config::merge(Args::default(), file).expect("example validates");
        assert_eq!(c.batch_max, DEFAULT_BATCH_MAX);
        assert_eq!(c.log_target, LogTarget::Stderr);
        let keys: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains(" = "))
            .filter_map(|l| l.split(" = ").next())
            .collect();
        for flag in [
            "db_config",
            "redis",
            "source",
            "netlink_rcvbuf",
            "batch_max",
            "audit_interval",
            "ignore_interfaces",
            "config_db_poll",
            "log_format",
            "log_target",
            "syslog_socket",
            "log_level",
            "metrics_listen",
            "ebpf_ring_bytes",
            "ebpf_lru_entries",
            "ebpf_watchdog",
            "warm_restore_timeout",
        ] {
            assert!(keys.contains(&flag), "example lacks {flag}");
        }
    }
}
