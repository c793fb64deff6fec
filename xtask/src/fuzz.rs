//! `cargo xtask fuzz`: every parser that takes outside input, under libFuzzer (`fuzz/`, built
//! by cargo-fuzz with nightly and AddressSanitizer). Seeds each corpus with real inputs
//! (the running kernel's BTF, the example config, a SONiC database_config.json), runs each
//! target for a fixed time, and fails on any crash, leak or timeout, naming the reproducer.

use std::path::Path;
use std::process::{Command, Stdio};

/// The targets, in `fuzz/fuzz_targets/`.
pub const TARGETS: [&str; 7] = [
    "netlink_neigh",
    "netlink_link",
    "ringbuf_record",
    "btf",
    "toml_config",
    "db_config",
    "rest_request",
];

pub struct Options {
    pub seconds: u64,
    pub targets: Vec<String>,
}

/// What one run reported.
#[derive(Debug, Default)]
pub struct Outcome {
    pub target: String,
    pub runs: u64,
    pub corpus: u64,
    pub crash: Option<String>,
}

const SONIC_DB_CONFIG: &str = r#"{
    "INSTANCES": {
        "redis": {"hostname": "127.0.0.1", "port": 6379, "unix_socket_path": "/var/run/redis/redis.sock"}
    },
    "DATABASES": {
        "APPL_DB": {"id": 0, "separator": ":", "instance": "redis"},
        "CONFIG_DB": {"id": 4, "separator": "|", "instance": "redis"},
        "STATE_DB": {"id": 6, "separator": "|", "instance": "redis"}
    },
    "VERSION": "1.0"
}
"#;

pub fn run(o: &Options) -> anyhow::Result<()> {
    let outcomes = fuzz_all(o)?;
    let crashed: Vec<&Outcome> = outcomes.iter().filter(|o| o.crash.is_some()).collect();
    println!(
        "fuzz: {} targets, {} runs, {} crashed",
        outcomes.len(),
        outcomes.iter().map(|o| o.runs).sum::<u64>(),
        crashed.len()
    );
    anyhow::ensure!(
        crashed.is_empty(),
        "fuzz targets crashed: {}",
        crashed
            .iter()
            .map(|o| format!("{} ({})", o.target, o.crash.as_deref().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// Runs every selected target; a crash is reported in its outcome, not as an error.
pub fn fuzz_all(o: &Options) -> anyhow::Result<Vec<Outcome>> {
    let installed = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    anyhow::ensure!(
        installed,
        "cargo-fuzz (with the nightly toolchain) is missing: sudo bash scripts/setup.sh installs both"
    );
    let targets: Vec<String> = if o.targets.is_empty() {
        TARGETS.iter().map(|t| t.to_string()).collect()
    } else {
        o.targets.clone()
    };
    for t in &targets {
        anyhow::ensure!(
            TARGETS.contains(&t.as_str()),
            "no fuzz target {t} (there are: {})",
            TARGETS.join(", ")
        );
    }
    let root = crate::root();
    let mut out = Vec::new();
    for t in &targets {
        seed(&root.join("fuzz/corpus").join(t), t)?;
        out.push(fuzz_one(t, o.seconds)?);
    }
    Ok(out)
}

/// Real inputs to start from (libFuzzer mutates from there).
fn seed(dir: &Path, target: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let root = crate::root();
    match target {
        "btf" => {
            // The running kernel's own BTF: the input the parser really gets.
            if let Ok(b) = std::fs::read("/sys/kernel/btf/vmlinux") {
                std::fs::write(dir.join("seed-vmlinux"), b)?;
            }
        }
        "toml_config" => {
            std::fs::copy(
                root.join("deploy/neighsyncd.toml.example"),
                dir.join("seed-example"),
            )?;
        }
        "db_config" => std::fs::write(dir.join("seed-sonic"), SONIC_DB_CONFIG)?,
        "rest_request" => {
            for (i, path) in [
                "neighbors?family=ipv4&limit=10",
                "neighbors/Ethernet0/10.0.0.2",
                "resync",
                "status",
            ]
            .iter()
            .enumerate()
            {
                let mut b = vec![i as u8];
                b.extend_from_slice(path.as_bytes());
                std::fs::write(dir.join(format!("seed-{i}")), b)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn fuzz_one(target: &str, seconds: u64) -> anyhow::Result<Outcome> {
    let mut c = Command::new("cargo");
    c.current_dir(crate::root())
        .args(["+nightly", "fuzz", "run", target, "--"])
        .arg(format!("-max_total_time={seconds}"))
        .args(["-print_final_stats=1", "-timeout=10", "-rss_limit_mb=2048"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    eprintln!("xtask: {c:?}");
    let res = c.output()?;
    let err = String::from_utf8_lossy(&res.stderr);
    let stat = |name: &str| {
        err.lines()
            .find_map(|l| l.strip_prefix(&format!("stat::{name}:")))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut o = Outcome {
        target: target.to_string(),
        runs: stat("number_of_executed_units"),
        corpus: std::fs::read_dir(crate::root().join("fuzz/corpus").join(target))
            .map(|d| d.count() as u64)
            .unwrap_or(0),
        crash: None,
    };
    if !res.status.success() {
        let artifact = err
            .lines()
            .find_map(|l| l.split("Test unit written to ").nth(1))
            .map(str::trim)
            .map(str::to_string);
        let tail: Vec<&str> = err.lines().rev().take(40).collect();
        eprintln!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        o.crash = Some(artifact.unwrap_or_else(|| format!("exit {}", res.status)));
    }
    println!(
        "fuzz: {target}: {} runs in {seconds} s, corpus {}, {}",
        o.runs,
        o.corpus,
        match &o.crash {
            Some(c) => format!("CRASHED: {c}"),
            None => "no crash".into(),
        }
    );
    Ok(o)
}
