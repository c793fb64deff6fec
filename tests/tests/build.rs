//! What plain `cargo build` yields: with the nightly toolchain and bpf-linker (CI installs
//! them) a daemon with its eBPF program embedded; without them (`NEIGHSYNCD_EBPF=off` stands
//! in for their absence) a warning at build time, and a netlink-only daemon that says so in
//! `--version` and at start.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use neighsyncd_tests::daemon::binary;

fn version(bin: &Path) -> String {
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .expect("run neighsyncd --version");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_daemon_under_test_has_its_ebpf_program_embedded() {
    let v = version(&binary());
    assert!(v.contains("eBPF program embedded"), "{v}");
}

#[test]
fn without_the_ebpf_toolchain_the_build_warns_and_the_daemon_says_so() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // A target directory of its own: the flag changes what the build script embeds.
    let target = root.join("target/no-ebpf");
    let out = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args(["build", "-p", "neighsyncd", "--bin", "neighsyncd"])
        .env("NEIGHSYNCD_EBPF", "off")
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("run cargo build");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The build script warns whenever it runs (a build that reuses its output prints none).
    if stderr.contains("Compiling neighsyncd v") {
        assert!(
            stderr.contains("building neighsyncd WITHOUT its eBPF program"),
            "{stderr}"
        );
    }
    let bin = target.join("debug/neighsyncd");
    let v = version(&bin);
    assert!(
        v.contains("netlink only: eBPF program not built (NEIGHSYNCD_EBPF=off)"),
        "{v}"
    );
    // At start, before anything else, it says so in the log.
    let mut child = Command::new(&bin)
        .args([
            "--redis",
            "unix:///nonexistent/redis.sock",
            "--metrics-listen",
            "off",
        ])
        .args(["--rest-listen", "off", "--grpc-listen", "off"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start neighsyncd");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let found = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.contains("built without its eBPF program") => break true,
            Ok(line) => seen.push(line),
            Err(_) => break false,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(found, "no start-up warning in:\n{}", seen.join("\n"));
}
