//! The lab the integration tests share: a private `redis-server` per test, network namespaces
//! built like a switch, the daemon running inside one, and orchagent played by popping
//! `NEIGH_TABLE` with ConsumerStateTable semantics. Everything a test creates has a unique
//! name and is removed on drop, also when the test panics.

pub mod churn;
pub mod daemon;
pub mod kernel;
pub mod netns;
pub mod orchagent;
pub mod redis_server;
pub mod wait;

/// Whether this process may build labs (root, iproute2, redis-server). Outside CI a test
/// without them prints why and passes; in CI (`CI=true`) it fails instead.
pub fn lab_available(test: &str) -> bool {
    let reason = if unsafe_geteuid() != 0 {
        Some("not root")
    } else if !has("ip") {
        Some("iproute2 (`ip`) missing")
    } else if !has("redis-server") {
        Some("redis-server missing")
    } else {
        None
    };
    match reason {
        None => true,
        Some(r) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{test}: cannot run in CI: {r}")
        }
        Some(r) => {
            eprintln!("SKIP {test}: {r} (run as root with iproute2 and redis-server; see README)");
            false
        }
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
            ("gc_thresh1", n / 2),
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
