//! What the rest of the daemon may ask of the kernel sources. The southbound carries it out;
//! the management plane only sees this trait, never a socket.

use super::neigh::ResyncCause;

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
