//! `cargo xtask test`: the whole suite, as CI runs it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

pub fn run(extra: &[String]) -> anyhow::Result<()> {
    crate::run(Command::new("cargo").args(["fmt", "--all", "--", "--check"]))?;
    // First, so that clippy and the tests see the daemon with the eBPF object embedded.
    crate::ebpf::build_for_tests()?;
    crate::run(Command::new("cargo").args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    crate::run(Command::new("cargo").args(["build", "--workspace", "--bins"]))?;
    let mut test = Command::new("cargo");
    test.current_dir(crate::root())
        .args(["test", "--workspace", "--all-targets"])
        .stdout(Stdio::piped());
    if !extra.is_empty() {
        test.arg("--").args(extra);
    }
    eprintln!("xtask: {test:?}");
    let mut child = test.spawn()?;
    let (mut passed, mut failed, mut ignored) = (0u64, 0u64, 0u64);
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line?;
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                let num = |word: &str| {
                    rest.split(';')
                        .find_map(|p| {
                            p.trim()
                                .strip_suffix(word)?
                                .split_whitespace()
                                .last()?
                                .parse::<u64>()
                                .ok()
                        })
                        .unwrap_or(0)
                };
                passed += num("passed");
                failed += num("failed");
                ignored += num("ignored");
            }
        }
    }
    let status = child.wait()?;
    // One closing line over every test binary of the workspace.
    println!("tests: {passed} passed, {failed} failed, {ignored} skipped");
    anyhow::ensure!(status.success(), "cargo test failed: {status}");
    Ok(())
}
