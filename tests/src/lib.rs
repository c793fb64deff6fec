//! The lab the integration tests share: a private `redis-server` per test, network namespaces
//! built like a switch, the daemon running inside one, and orchagent played by popping
//! `NEIGH_TABLE` with ConsumerStateTable semantics. Everything a test creates has a unique
//! name and is removed on drop, also when the test panics.

pub mod chaos;
pub mod churn;
pub mod daemon;
pub mod kernel;
pub mod netns;
pub mod orchagent;
pub mod redis_server;
pub mod wait;

/// The repository's root: where the docs, deploy/ and the package the tests read are.
pub fn root() -> &'static std::path::Path {
    std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Fails the test, saying what is missing and how to get it, unless this process may build
/// labs (root, iproute2, redis-server). A test that cannot run must never pass: the README's
/// test command (`cargo xtask test`, which CI runs) installs everything first.
pub fn require_lab(test: &str) {
    if let Some(m) = lab_missing() {
        panic!("{test} needs {m}: run it as root after `bash scripts/setup.sh` (see README)");
    }
}

/// What a lab needs that this process lacks, if anything.
pub fn lab_missing() -> Option<&'static str> {
    if unsafe_geteuid() != 0 {
        Some("root")
    } else if !has("ip") {
        Some("iproute2 (`ip`)")
    } else if !has("redis-server") {
        Some("redis-server")
    } else {
        None
    }
}

/// Fails the test unless the tool is installed (`scripts/setup.sh` installs them all).
pub fn require_tool(name: &str, test: &str) {
    if !has(name) {
        panic!("{test} needs {name}: `bash scripts/setup.sh` installs it");
    }
}

/// A stock client installed by `scripts/setup.sh` into the checkout's `target/tools/venv`
/// (or found on PATH). Fails the test when missing: CI installs it, so it must never skip.
pub fn stock_tool(name: &str, test: &str) -> std::path::PathBuf {
    find_stock_tool(name).unwrap_or_else(|| {
        panic!("{test} needs {name}: `bash scripts/setup.sh` installs it into target/tools/venv")
    })
}

/// Where stock client `name` is: the checkout's tools venv first, then `PATH`.
pub fn find_stock_tool(name: &str) -> Option<std::path::PathBuf> {
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/tools/venv/bin")
        .join(name);
    if venv.is_file() {
        return Some(venv);
    }
    has(name).then(|| std::path::PathBuf::from(name))
}

/// The neighbor source the integration tests run with, unless a test names one:
/// `NEIGHSYNCD_TEST_SOURCE` (`ebpf`, the daemon's default, or `netlink`); `cargo xtask test`
/// runs the suite once with each.
pub fn test_source() -> &'static str {
    match std::env::var("NEIGHSYNCD_TEST_SOURCE").as_deref() {
        Ok("netlink") => "netlink",
        Ok("ebpf") | Err(_) => "ebpf",
        Ok(other) => panic!("NEIGHSYNCD_TEST_SOURCE={other}: ebpf or netlink"),
    }
}

fn unsafe_geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn has(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false)
}

/// A unique, short name (interface and namespace names are limited to 15 bytes).
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}{}x{n}", std::process::id() % 100_000)
}

/// Raises the kernel's global neighbor table limits (initial namespace) for scale tests.
pub fn raise_neigh_limits(n: u64) {
    for fam in ["ipv4", "ipv6"] {
        for (k, v) in [
            // Below gc_thresh1 the kernel never collects entries: a long burst's early
            // REACHABLE entries turn STALE and would otherwise age out under the test.
            ("gc_thresh1", n),
            ("gc_thresh2", n),
            ("gc_thresh3", n * 2),
        ] {
            let path = format!("/proc/sys/net/{fam}/neigh/default/{k}");
            let cur: u64 = std::fs::read_to_string(&path)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            if cur < v {
                let _ = std::fs::write(&path, v.to_string());
            }
        }
    }
}
