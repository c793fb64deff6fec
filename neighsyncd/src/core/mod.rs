//! The pure core: the neighbor vocabulary, SONiC's rules, the state that knows what APPL_DB
//! holds and should hold, the dump-consistency policy, and the engine that decides. No async,
//! no I/O, no clock: every decision here is unit-tested without a kernel or Redis.

pub(crate) mod appdb_link;
pub mod control;
pub(crate) mod dense;
pub mod dump;
pub mod engine;
pub mod ha;
pub mod key;
pub(crate) mod links;
pub mod neigh;
pub(crate) mod ops;
pub mod rules;
pub mod source_health;
pub(crate) mod state;

/// What APPL_DB holds for a key, as the read-back (`control::AppDbWriter::read_neighbors`) says.
pub use state::Told;
