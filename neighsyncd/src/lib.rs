//! neighsyncd: the kernel neighbor table (ARP, NDP) mirrored into SONiC's APPL_DB.
//!
//! The house has four rooms and a shell (`docs/ARCHITECTURE.md` draws the data's way):
//! - [`core`]: pure: the neighbor vocabulary, SONiC's rules, the state, the dump policy.
//! - [`southbound`]: the kernel sources (rtnetlink, the eBPF ring buffer).
//! - [`sonic`]: Redis: the ProducerStateTable writer, CONFIG_DB, warm restart, restore.
//! - [`northbound`]: the read model, REST, gRPC, the metrics and health endpoints.
//!
//! [`telemetry`] (metrics, health) and [`runtime`] (tasks, fault injection) serve every room.
//! The shell performs the I/O around the core: `pipeline` (the sync loop), `daemon` (wiring),
//! `restore` (a command of its own), `config`, `logging` and `log_level`. Imports run one way:
//! the rooms depend on `core`, `telemetry` and `runtime` only; only the shell sees every room
//! (checked by `architecture_tests`).

/// The version, and whether the eBPF program is embedded (`--version`, the start-up log).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("NEIGHSYNCD_BUILD_EBPF"),
    ")"
);

pub mod config;
pub mod core;
pub mod daemon;
pub(crate) mod log_level;
pub mod logging;
pub mod northbound;
pub mod pipeline;
pub mod restore;
pub(crate) mod runtime;

/// The allocator's setting the binary's `main` makes first.
pub use runtime::memory::keep_large_blocks_mapped;
/// Entering a named network namespace (`--namespace`), for the binary's `main`.
pub use runtime::netns;
pub mod sonic;
pub mod southbound;
pub mod telemetry;

#[cfg(test)]
mod architecture_tests;
