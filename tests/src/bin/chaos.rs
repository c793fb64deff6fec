//! `chaos`: the chaos suite's runner (`cargo xtask chaos` builds the daemon and calls it).
//! Exits non-zero on any divergence.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

#[derive(Parser)]
#[command(about = "A seeded chaos run against the real kernel, Redis and daemon")]
struct Cli {
    /// The generator's seed (the same seed gives the same steps) [default: time].
    #[arg(long)]
    seed: Option<u64>,
    /// Stop after this many minutes.
    #[arg(long, default_value_t = 2.0)]
    minutes: f64,
    /// Stop after this many steps.
    #[arg(long)]
    steps: Option<usize>,
    /// netlink or ebpf.
    #[arg(long, default_value = "ebpf")]
    source: String,
    /// Seconds a quiet point may take to converge.
    #[arg(long, default_value_t = 60)]
    deadline: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(m) = neighsyncd_tests::lab_missing() {
        eprintln!("chaos needs {m}: run it as root after `bash scripts/setup.sh`");
        return ExitCode::from(2);
    }
    if !["netlink", "ebpf"].contains(&cli.source.as_str()) {
        eprintln!("--source: netlink or ebpf");
        return ExitCode::from(2);
    }
    let seed = cli.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let opts = neighsyncd_tests::chaos::Options {
        seed,
        duration: Duration::from_secs_f64(cli.minutes * 60.0),
        max_steps: cli.steps,
        source: cli.source,
        deadline: Duration::from_secs(cli.deadline),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = rt.block_on(neighsyncd_tests::chaos::run(opts));
    println!("{}", report.text());
    println!("{}", report.json());
    println!("{}", report.closing_line());
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
