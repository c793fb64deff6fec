//! Developer workflows: `cargo xtask <command>`.

mod bench;
mod chaos;
mod deb;
mod demo;
mod ebpf;
mod fuzz;
mod test;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "neighsyncd developer workflows")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The Debian package (binaries, unit, config, completions, man pages, docs), into `--out`.
    Deb {
        /// Cargo profile of the binaries (`dev` makes a quick one, for tests).
        #[arg(long, default_value = "release")]
        profile: String,
        #[arg(long, default_value = "target/deb")]
        out: std::path::PathBuf,
    },
    /// Build the eBPF object (nightly, rust-src, bpf-linker).
    BuildEbpf {
        #[arg(long)]
        release: bool,
    },
    /// The whole suite: fmt, clippy, unit and integration tests (as root, against real
    /// redis-server, network namespaces and the kernel).
    Test {
        /// Extra arguments for `cargo test` (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Runs the daemon against a private Redis in a demo namespace, makes neighbors flow, and
    /// prints APPL_DB NEIGH_TABLE as orchagent would see it.
    Demo {
        /// Keep running (printing changes) until Ctrl-C.
        #[arg(long)]
        keep: bool,
    },
    /// The chaos suite: a seeded random mix of kernel changes, link and CONFIG_DB changes,
    /// event losses, Redis and daemon crashes; APPL_DB must converge after every step.
    Chaos {
        /// The generator's seed (the same seed, the same steps) [default: time].
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long, default_value_t = 2.0)]
        minutes: f64,
        /// Stop after this many steps.
        #[arg(long)]
        steps: Option<usize>,
        /// netlink or ebpf.
        #[arg(long, default_value = "ebpf")]
        source: String,
    },
    /// Fuzzes every parser of outside input (netlink, ring-buffer records, BTF, config files,
    /// REST requests) with libFuzzer; fails on a crash and names its reproducer.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Only these targets [default: all].
        targets: Vec<String>,
    },
    /// End-to-end benchmarks; writes docs/BENCHMARKING.md.
    Bench {
        /// Neighbor counts to burst.
        #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
        sizes: Vec<u32>,
        /// Only these parts [default: all].
        #[arg(long, value_enum, value_delimiter = ',')]
        only: Vec<bench::Part>,
        /// Rerun the bursts and print each figure's ratio to the one docs/BENCHMARKING.md
        /// records (above 1: slower, costlier or bigger); writes nothing.
        #[arg(long)]
        compare: bool,
        /// Print the table but do not rewrite docs/BENCHMARKING.md.
        #[arg(long)]
        no_write: bool,
        /// Only the lost-events scenario: a burst overruns a 64 KiB buffer or ring while two CPU
        /// hogs run; prints convergence time, losses and dump attempts.
        #[arg(long)]
        resync: bool,
        /// Measure this daemon binary instead of building this tree's (e.g. an older build).
        #[arg(long, value_name = "PATH")]
        daemon: Option<std::path::PathBuf>,
        /// Runs per scenario of --resync (the median is reported).
        #[arg(long, default_value_t = 5)]
        repeat: usize,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Deb { profile, out } => deb::run(&deb::Options { profile, out }).map(|_| ()),
        Cmd::BuildEbpf { release } => ebpf::build(release),
        Cmd::Test { args } => test::run(&args),
        Cmd::Demo { keep } => demo::run(keep),
        Cmd::Chaos {
            seed,
            minutes,
            steps,
            source,
        } => chaos::run(&chaos::Options {
            seed,
            minutes,
            steps,
            source,
        }),
        Cmd::Fuzz { seconds, targets } => fuzz::run(&fuzz::Options { seconds, targets }),
        Cmd::Bench {
            sizes,
            only,
            compare,
            no_write,
            resync,
            daemon,
            repeat,
        } => bench::run(&bench::Options {
            sizes,
            write: !no_write && !compare,
            resync,
            daemon,
            repeat,
            only,
            compare,
            command: std::iter::once("cargo xtask".to_string())
                .chain(std::env::args().skip(1))
                .collect::<Vec<_>>()
                .join(" "),
        }),
    }
}

/// The workspace root (xtask lives one level below it).
pub fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| ".".into())
}

/// Runs a command in the workspace root, failing with its name when it fails.
pub fn run(cmd: &mut std::process::Command) -> anyhow::Result<()> {
    cmd.current_dir(root());
    eprintln!("xtask: {cmd:?}");
    let st = cmd.status().map_err(|e| anyhow::anyhow!("{cmd:?}: {e}"))?;
    anyhow::ensure!(st.success(), "{cmd:?} failed: {st}");
    Ok(())
}
