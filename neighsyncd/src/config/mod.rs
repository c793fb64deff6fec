//! Command-line flags + TOML file -> one validated [`Config`]. Flags win over the file, the
//! file over the defaults. Each option is declared once, in [`options::Options`]: a flag and
//! a file key of the same name (dashes on the command line), with its default.

mod options;

pub use options::{LogFormat, Options, SourceKind};

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

pub use crate::northbound::listeners::ListenAddr;
use crate::sonic::dbconfig::{DbConfigError, DbLayout};

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

impl From<SourceKind> for crate::core::source_health::Wanted {
    fn from(k: SourceKind) -> Self {
        use crate::core::source_health::Wanted;
        match k {
            SourceKind::Auto => Wanted::Auto,
            SourceKind::Netlink => Wanted::Netlink,
            SourceKind::Ebpf => Wanted::Ebpf,
        }
    }
}

/// Where logs go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    Stderr,
    /// RFC 3164 datagrams to this unix socket (normally /dev/log).
    Syslog(PathBuf),
}

/// Mirrors the kernel neighbor table (ARP, NDP) into SONiC's APPL_DB NEIGH_TABLE.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "neighsyncd", version = crate::VERSION, about, long_about = None)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// TOML config file; every key is also a flag below (flags win).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub options: Options,
}

impl Args {
    /// Parses the command line; `--help` shows each option's default from
    /// [`Options::defaults`].
    pub fn parse_with_defaults() -> Args {
        use clap::FromArgMatches;
        match Args::from_arg_matches(&Args::command_with_defaults().get_matches()) {
            Ok(a) => a,
            Err(e) => e.exit(),
        }
    }

    /// The command, each option's help ending with its declared default (also what the man
    /// page is made from).
    pub fn command_with_defaults() -> clap::Command {
        use clap::CommandFactory;
        Args::command().mut_args(|arg| {
            let key = arg.get_id().as_str().replace('-', "_");
            match (Options::default_text(&key), arg.get_help().cloned()) {
                (Some(d), Some(help)) => arg.help(format!("{help} [default: {d}]")),
                _ => arg,
            }
        })
    }
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

fn parse_file(text: &str, path: String) -> Result<Options, ConfigError> {
    toml::from_str::<Options>(text).map_err(|e| ConfigError::Parse {
        path,
        message: e.to_string(),
    })
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The options as resolved (every default filled in): what `to_json` shows.
    pub options: Options,
    /// Multi-ASIC, one namespace per process: the SONiC namespace served (its network
    /// namespace is entered at start).
    pub namespace: Option<String>,
    /// Multi-ASIC, one process for several: every namespace served, with its databases, each
    /// reached without entering it. Empty otherwise.
    pub namespaces: Vec<Served>,
    /// The databases of the namespace served (the first of `namespaces`).
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
    /// Serve `/debug/pprof/profile` on the metrics listener (token-guarded).
    pub profiler: bool,
    pub ebpf_ring_bytes: u32,
    pub ebpf_lru_entries: u32,
    pub ebpf_watchdog: Duration,
    pub warm_restore_timeout: Duration,
    /// Hot standby (`ha`): the lease's timing; `None` without it.
    pub ha: Option<crate::core::ha::HaTiming>,
}

fn api_listen(key: &'static str, v: String) -> Result<Option<ListenAddr>, ConfigError> {
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
                format!("{v:?} is not ADDR:PORT (e.g. 127.0.0.1:8080), unix:/PATH or \"off\""),
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
    /// The effective configuration, as the API serves it: the resolved options (the token
    /// file's path, never the token) and the databases they lead to.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.options).unwrap_or_default();
        if let serde_json::Value::Object(m) = &mut v {
            m.insert("appl_db".into(), self.db.appl.url.clone().into());
            m.insert("config_db".into(), self.db.config.url.clone().into());
            m.insert("state_db".into(), self.db.state.url.clone().into());
        }
        v
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
            None => Options::default(),
        };
        Self::merge(args, file)
    }

    /// What a config file's text alone gives (no flags): for the fuzzer and tools.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        Self::merge(Args::default(), parse_file(text, "<text>".into())?)
    }

    fn merge(a: Args, file: Options) -> Result<Config, ConfigError> {
        let o = a.options.over(file).resolved();
        let (namespace, namespaces, db) = namespaces(&o)?;
        let netlink_rcvbuf = set(o.netlink_rcvbuf, "netlink_rcvbuf")?;
        if netlink_rcvbuf < 4096 {
            return Err(invalid("netlink_rcvbuf", "must be at least 4096 bytes"));
        }
        let batch_max = set(o.batch_max, "batch_max")?;
        if batch_max == 0 || batch_max > 1_000_000 {
            return Err(invalid("batch_max", "must be between 1 and 1000000"));
        }
        let audit = set(o.audit_interval, "audit_interval")?;
        let poll = set(o.config_db_poll, "config_db_poll")?;
        if poll == 0 {
            return Err(invalid("config_db_poll", "must be at least 1 second"));
        }
        let log_level = set(o.log_level.clone(), "log_level")?;
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(invalid(
                "log_level",
                format!("{log_level:?} is not a level or filter"),
            ));
        }
        let log_target = match set(o.log_target.clone(), "log_target")?.as_str() {
            "stderr" => LogTarget::Stderr,
            "syslog" => LogTarget::Syslog(set(o.syslog_socket.clone(), "syslog_socket")?),
            other => {
                return Err(invalid(
                    "log_target",
                    format!("{other:?} is not stderr or syslog"),
                ));
            }
        };
        let otlp_endpoint = o.otlp_endpoint.clone().filter(|e| !e.is_empty());
        if let Some(e) = &otlp_endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return Err(invalid(
                "otlp_endpoint",
                format!("{e:?} is not an http(s) URL"),
            ));
        }
        let metrics_listen = match set(o.metrics_listen.clone(), "metrics_listen")?.as_str() {
            "off" => None,
            s => Some(s.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "metrics_listen",
                    format!("{s:?} is not an address like 127.0.0.1:9091 or \"off\""),
                )
            })?),
        };
        let rest_listen = api_listen("rest_listen", set(o.rest_listen.clone(), "rest_listen")?)?;
        let grpc_listen = api_listen("grpc_listen", set(o.grpc_listen.clone(), "grpc_listen")?)?;
        let api_tls = match (
            o.api_tls_cert.clone(),
            o.api_tls_key.clone(),
            o.api_tls_client_ca.clone(),
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
        let profiler = set(o.profiler, "profiler")?;
        if profiler && o.api_token_file.is_none() {
            return Err(invalid(
                "profiler",
                "needs api_token_file: the profile is guarded by the API token",
            ));
        }
        let ebpf_ring_bytes = set(o.ebpf_ring_bytes, "ebpf_ring_bytes")?;
        if !ebpf_ring_bytes.is_power_of_two() || ebpf_ring_bytes < 4096 {
            return Err(invalid(
                "ebpf_ring_bytes",
                "must be a power of two, at least 4096",
            ));
        }
        let ebpf_lru_entries = set(o.ebpf_lru_entries, "ebpf_lru_entries")?;
        if ebpf_lru_entries < 64 {
            return Err(invalid("ebpf_lru_entries", "must be at least 64"));
        }
        let ebpf_watchdog = set(o.ebpf_watchdog, "ebpf_watchdog")?;
        if ebpf_watchdog == 0 {
            return Err(invalid("ebpf_watchdog", "must be at least 1 second"));
        }
        let ignore = set(o.ignore_interfaces.clone(), "ignore_interfaces")?;
        if let Some(bad) = ignore.iter().find(|n| n.is_empty() || n.len() > 15) {
            return Err(invalid(
                "ignore_interfaces",
                format!("{bad:?} is not an interface name"),
            ));
        }
        let warm_restore_timeout = set(o.warm_restore_timeout, "warm_restore_timeout")?;
        if warm_restore_timeout == 0 {
            return Err(invalid("warm_restore_timeout", "must be at least 1 second"));
        }
        let ha = if set(o.ha, "ha")? {
            if !namespaces.is_empty() {
                return Err(invalid(
                    "ha",
                    "serves one namespace per process: run a pair per namespace",
                ));
            }
            Some(
                crate::core::ha::HaTiming::new(
                    Duration::from_millis(set(o.ha_lease_ms, "ha_lease_ms")?),
                    Duration::from_millis(set(o.ha_renew_ms, "ha_renew_ms")?),
                )
                .map_err(|e| invalid("ha_lease_ms", e))?,
            )
        } else {
            None
        };
        Ok(Config {
            ha,
            namespace,
            namespaces,
            db,
            source: set(o.source, "source")?,
            netlink_rcvbuf,
            batch_max,
            audit_interval: (audit > 0).then(|| Duration::from_secs(audit)),
            ignore_interfaces: ignore.into_iter().collect(),
            config_db_poll: Duration::from_secs(poll),
            log_format: set(o.log_format, "log_format")?,
            log_level,
            log_target,
            otlp_endpoint,
            metrics_listen,
            rest_listen,
            grpc_listen,
            api_token_file: o.api_token_file.clone(),
            api_reads_open: set(o.api_reads_open, "api_reads_open")?,
            api_tls,
            profiler,
            ebpf_ring_bytes,
            ebpf_lru_entries,
            ebpf_watchdog: Duration::from_secs(ebpf_watchdog),
            warm_restore_timeout: Duration::from_secs(warm_restore_timeout),
            options: o,
        })
    }
}

/// A resolved option's value (every one with a default has one).
fn set<T>(value: Option<T>, key: &'static str) -> Result<T, ConfigError> {
    value.ok_or_else(|| invalid(key, "has no value and no default"))
}

mod namespaces;
pub use namespaces::Served;
use namespaces::namespaces;

#[cfg(test)]
mod tests;
