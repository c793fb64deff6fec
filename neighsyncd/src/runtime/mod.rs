//! The async shell's plumbing, shared by the adapters: named `tasks` joined on shutdown,
//! test-only `fault` injection, and `log_throttle` for bad input.

pub mod fault;
pub mod log_throttle;
pub mod tasks;
