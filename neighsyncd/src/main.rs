//! The `neighsyncd` binary: flags and config, logging, then the daemon. No logic here.

use std::process::ExitCode;

use clap::Parser;
use neighsyncd::config::{Args, Config};

fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = match Config::load(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("neighsyncd: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = neighsyncd::logging::init(cfg.log_format, &cfg.log_level) {
        eprintln!("neighsyncd: cannot set up logging: {e}");
        return ExitCode::from(2);
    }
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
    match rt.block_on(neighsyncd::daemon::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("neighsyncd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
