//! neighsyncd: the kernel neighbor table (ARP, NDP) mirrored into SONiC's APPL_DB.
//!
//! The data's way through: `source` (netlink | eBPF) -> `rules` -> `state` -> `appdb`
//! (ProducerStateTable) -> Redis; `pipeline` runs that loop, `daemon` wires the tasks.

pub mod api;
pub mod appdb;
pub mod config;
pub mod daemon;
pub mod fault;
pub mod health;
pub mod http;
pub mod listeners;
pub mod log_level;
pub mod logging;
pub mod metrics;
pub mod pipeline;
pub mod ratelimit;
pub mod restore;
pub mod rules;
pub mod sonic_config;
pub mod source;
pub mod state;
pub mod tasks;
pub mod view;
pub mod warm;
