//! The async shell's plumbing, shared by the adapters: named `tasks` joined on shutdown,
//! test-only `fault` injection, `log_throttle` for bad input, and `memory`: freed heap back
//! to the system after a one-off peak; `netns`: entering `--namespace`'s network namespace.

pub mod fault;
pub mod log_throttle;
pub mod memory;
pub mod netns;
pub mod tasks;
