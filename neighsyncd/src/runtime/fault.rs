//! Fault injection for the tests that prove the daemon's defences: `NEIGHSYNCD_FAULT`, a
//! comma-separated list of `name` or `name=value`. Read once; every fault in use is logged as a
//! warning at start. Production never sets it.
//!
//! | fault | effect |
//! |---|---|
//! | `dump_delay_ms=N` | wait N ms after each dump datagram (a loaded machine reads dumps slowly) |
//! | `ebpf_offset=FIELD` | the eBPF program reads `FIELD` (an `Offsets` field) one byte off |
//! | `ebpf_silent` | the eBPF program filters on a namespace that is not ours: no events at all |
//! | `source_exit_after=N` | the live neighbor source ends after N events (a crashed task) |

use std::collections::HashMap;
use std::sync::LazyLock;

pub const ENV: &str = "NEIGHSYNCD_FAULT";

static FAULTS: LazyLock<HashMap<String, String>> =
    LazyLock::new(|| std::env::var(ENV).map(|v| parse(&v)).unwrap_or_default());

fn parse(v: &str) -> HashMap<String, String> {
    v.split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(|f| match f.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (f.to_string(), String::new()),
        })
        .collect()
}

/// The value of fault `name` (empty for a bare flag), if injected.
pub fn get(name: &str) -> Option<&'static str> {
    FAULTS.get(name).map(String::as_str)
}

/// A numeric fault value.
pub fn number(name: &str) -> Option<u64> {
    get(name).and_then(|v| v.parse().ok())
}

/// Logs every injected fault (once, at start).
pub fn announce() {
    for (k, v) in FAULTS.iter() {
        tracing::warn!(fault = %k, value = %v, "{ENV}: fault injected (tests only)");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_flags_and_values() {
        let f = super::parse(" dump_delay_ms=5, ebpf_silent ,,");
        assert_eq!(f.get("dump_delay_ms").map(String::as_str), Some("5"));
        assert_eq!(f.get("ebpf_silent").map(String::as_str), Some(""));
        assert_eq!(f.len(), 2);
    }
}
