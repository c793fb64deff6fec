//! The `neighsyncd` binary: flags and config, logging, then the daemon. No logic here.

use std::process::ExitCode;

use std::time::Duration;

use neighsyncd::config::{Args, Command, Config};
use neighsyncd::restore::RestoreOptions;

fn main() -> ExitCode {
    // Before any allocation worth the name, and before any thread (see its doc).
    neighsyncd::keep_large_blocks_mapped();
    let args = Args::parse_with_defaults();
    let command = args.command.clone();
    let cfg = match Config::load(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("neighsyncd: {e}");
            return ExitCode::from(2);
        }
    };
    // One process-wide TLS crypto provider (ring), before anything builds a TLS or HTTP
    // client: the OTLP exporter's reqwest refuses to build without one when the workspace
    // also builds neighsyncctl's reqwest with rustls (cargo unifies their features).
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    // Multi-ASIC: into the namespace first, while this is the only thread.
    let mut netns_warning = None;
    if let Some(ns) = &cfg.namespace {
        match neighsyncd::netns::enter(ns) {
            Ok(w) => netns_warning = w,
            Err(e) => {
                eprintln!("neighsyncd: {e}");
                return ExitCode::from(2);
            }
        }
    }
    // The eBPF program next, while the process is small (see `ebpf::Loaded::load`).
    let ebpf = match command {
        None => neighsyncd::daemon::preload_ebpf(&cfg),
        Some(_) => None,
    };
    let (log_handle, telemetry) = match neighsyncd::logging::init(
        cfg.log_format,
        &cfg.log_target,
        &cfg.log_level,
        cfg.otlp_endpoint.as_deref(),
    ) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("neighsyncd: cannot set up logging: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("neighsyncd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(ns) = &cfg.namespace {
        tracing::info!(namespace = %ns, "serving SONiC namespace {ns}");
    }
    if let Some(w) = netns_warning {
        tracing::warn!("{w}");
    }
    let result = match command {
        None => rt.block_on(neighsyncd::daemon::run(cfg, Some(log_handle), ebpf)),
        Some(Command::Restore { .. }) if !cfg.namespaces.is_empty() => Err(anyhow::anyhow!(
            "restore serves one namespace: run it once per namespace (--namespace NAME), as each swss container runs restore_neighbors.py"
        )),
        Some(Command::Restore {
            timeout,
            check_interval,
        }) => rt
            .block_on(neighsyncd::restore::run(
                &cfg,
                RestoreOptions {
                    timeout: Duration::from_secs(timeout),
                    check_interval: Duration::from_secs(check_interval.max(1)),
                },
            ))
            .map_err(anyhow::Error::from),
    };
    drop(rt);
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("neighsyncd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
