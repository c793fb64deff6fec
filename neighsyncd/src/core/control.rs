//! The small traits the shell performs its I/O behind: what the daemon and the management
//! plane may ask of the kernel sources (the southbound carries it out), and what the sync loop
//! needs of APPL_DB (the sonic room carries it out). Neither side sees a socket of the other.

use super::neigh::ResyncCause;
use super::ops::Op;
use super::state::Told;

/// Asks the sources for a full resynchronisation (a dump, then the difference is written).
pub trait ResyncRequests: Send + Sync {
    fn request_resync(&self, cause: ResyncCause);
}

/// What the sync loop may ask of the sources: the orders of the engine's source policy
/// ([`super::source_health`]) that it carries out while running.
pub trait SourceControl: ResyncRequests {
    /// Detaches the eBPF program (if any) and joins rtnetlink's neighbor group. Returns the
    /// monotonic time (ns) from which every live event is rtnetlink's.
    fn switch_to_netlink(&self) -> u64;
    /// Events may have been lost: dump with this cause once losses pause.
    fn lost(&self, cause: ResyncCause);
}

/// What the sync loop needs of APPL_DB. The shell's writer (`sonic::appdb::AppDb`, the
/// ProducerStateTable protocol over Redis) implements it; a failed call drops the connection.
pub trait AppDbWriter: Send {
    type Error: std::fmt::Display + Send;
    fn is_connected(&self) -> bool;
    fn disconnect(&mut self);
    fn connect(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Route deletes, then neighbor operations, in one round trip.
    fn write(
        &mut self,
        route_dels: &[Op],
        neigh_ops: &[Op],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// What the consumer will hold once it has consumed everything staged: each key, and what
    /// its fields say (compact: at a million keys the read-back is one entry per neighbor).
    fn read_neighbors(
        &mut self,
    ) -> impl Future<Output = Result<Vec<(crate::core::key::NeighKey, Told)>, Self::Error>> + Send;
    /// Whether the connection still answers.
    fn ping(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Drops all staged state (warm start only).
    fn clear_staging(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send;
    /// Hot standby: writes from now on carry a leader's fencing token (or none).
    fn set_fence(&mut self, _token: Option<u64>) {}
    /// Whether a failed call was APPL_DB refusing a stale leader's write (see `core::ha`).
    fn is_fenced(_e: &Self::Error) -> bool {
        false
    }
}
