//! `cargo xtask chaos`: builds the daemon and runs the chaos suite (`tests/src/chaos`), as root,
//! against the real kernel, a private redis-server and the daemon.

use std::process::Command;

pub struct Options {
    pub seed: Option<u64>,
    pub minutes: f64,
    pub steps: Option<usize>,
    pub source: String,
}

pub fn run(o: &Options) -> anyhow::Result<()> {
    crate::run(Command::new("cargo").args(["build", "-p", "neighsyncd", "--bins"]))?;
    crate::run(&mut command(o))
}

/// The chaos runner's command line (also what `xtask test` runs, with a fixed seed).
pub fn command(o: &Options) -> Command {
    let mut c = Command::new("cargo");
    c.args([
        "run",
        "-q",
        "-p",
        "neighsyncd-tests",
        "--bin",
        "chaos",
        "--",
    ])
    .args(["--minutes", &o.minutes.to_string()])
    .args(["--source", &o.source]);
    if let Some(s) = o.seed {
        c.args(["--seed", &s.to_string()]);
    }
    if let Some(n) = o.steps {
        c.args(["--steps", &n.to_string()]);
    }
    c
}
