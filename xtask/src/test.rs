//! `cargo xtask test`: the whole suite, as CI runs it: format, lint, unit tests, the
//! integration tests once per neighbor source (eBPF, the default, and rtnetlink), the chaos
//! suite with a fixed seed per source, and every fuzz target for a short while.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Integration test files that name their sources themselves: one pass is enough.
const SOURCE_PINNED: [&str; 8] = [
    "capabilities",
    "docs",
    "ebpf",
    "ebpf_verify",
    "package",
    "seccomp",
    "supervision",
    "supervisord_program",
];

/// The chaos suite's share of the run, per source: a fixed seed (the same steps every time;
/// `cargo xtask chaos --seed N` explores others).
const CHAOS_SEED: u64 = 1;
const CHAOS_MINUTES: f64 = 2.5;
/// Seconds per fuzz target (the corpora in fuzz/corpus grow from run to run on a developer's
/// machine; CI starts from the seeds).
const FUZZ_SECONDS: u64 = 30;

#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
    ignored: u64,
}

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
    // The package tests/tests/package.rs installs (dev profile: the binaries just built).
    crate::deb::run(&crate::deb::Options {
        profile: "dev".into(),
        out: crate::root().join("target/deb"),
    })?;
    let mut tally = Tally::default();
    let mut ok = cargo_test("ebpf", &["--workspace", "--all-targets"], extra, &mut tally)?;
    let mut netlink = vec!["-p".to_string(), "neighsyncd-tests".to_string()];
    for t in integration_tests()? {
        if !SOURCE_PINNED.contains(&t.as_str()) {
            netlink.extend(["--test".to_string(), t]);
        }
    }
    let netlink: Vec<&str> = netlink.iter().map(String::as_str).collect();
    ok &= cargo_test("netlink", &netlink, extra, &mut tally)?;
    if extra.is_empty() {
        for source in ["ebpf", "netlink"] {
            ok &= chaos(source, &mut tally)?;
        }
        for f in crate::fuzz::fuzz_all(&crate::fuzz::Options {
            seconds: FUZZ_SECONDS,
            targets: Vec::new(),
        })? {
            match f.crash {
                None => tally.passed += 1,
                Some(_) => {
                    tally.failed += 1;
                    ok = false;
                }
            }
        }
    }
    if extra.is_empty() {
        // The README's other command, as a newcomer runs it (it sets up, then runs the demo,
        // which fails unless APPL_DB ends as it should).
        let demo = Command::new("bash")
            .args(["-c", "bash scripts/run.sh demo"])
            .current_dir(crate::root())
            .status()?;
        if demo.success() {
            tally.passed += 1;
        } else {
            println!("demo: the README's `bash scripts/run.sh demo` failed: {demo}");
            tally.failed += 1;
            ok = false;
        }
    }
    // One closing line over every test binary of both passes.
    println!(
        "tests: {} passed, {} failed, {} skipped",
        tally.passed, tally.failed, tally.ignored
    );
    anyhow::ensure!(ok, "cargo test failed");
    Ok(())
}

/// The chaos suite for one source; each converged step counts as a passed test, each
/// divergence as a failed one.
fn chaos(source: &str, tally: &mut Tally) -> anyhow::Result<bool> {
    let mut c = crate::chaos::command(&crate::chaos::Options {
        seed: Some(CHAOS_SEED),
        minutes: CHAOS_MINUTES,
        steps: None,
        source: source.to_string(),
    });
    c.current_dir(crate::root()).stdout(Stdio::piped());
    eprintln!("xtask: {c:?}");
    let mut child = c.spawn()?;
    let mut counted = false;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line?;
            println!("{line}");
            // `chaos: N passed, M failed`
            if let Some(rest) = line.strip_prefix("chaos: ") {
                let num = |word: &str| {
                    rest.split(',')
                        .find_map(|p| p.trim().strip_suffix(word)?.trim().parse::<u64>().ok())
                        .unwrap_or(0)
                };
                tally.passed += num("passed");
                tally.failed += num("failed");
                counted = true;
            }
        }
    }
    let ok = child.wait()?.success();
    if !counted {
        tally.failed += 1;
    }
    Ok(ok && counted)
}

/// The integration test files (tests/tests/*.rs), by name.
fn integration_tests() -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(crate::root().join("tests/tests"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".rs").map(str::to_string)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// One `cargo test` run with `NEIGHSYNCD_TEST_SOURCE=source`; adds its results to `tally`.
fn cargo_test(
    source: &str,
    args: &[&str],
    extra: &[String],
    tally: &mut Tally,
) -> anyhow::Result<bool> {
    let mut test = Command::new("cargo");
    test.current_dir(crate::root())
        .env("NEIGHSYNCD_TEST_SOURCE", source)
        .arg("test")
        .args(args)
        .arg("--no-fail-fast")
        .stdout(Stdio::piped());
    if !extra.is_empty() {
        test.arg("--").args(extra);
    }
    eprintln!("xtask: NEIGHSYNCD_TEST_SOURCE={source} {test:?}");
    let mut child = test.spawn()?;
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
                tally.passed += num("passed");
                tally.failed += num("failed");
                tally.ignored += num("ignored");
            }
        }
    }
    Ok(child.wait()?.success())
}
