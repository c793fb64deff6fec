//! What the rest of the daemon may ask of the kernel sources. The southbound carries it out;
//! the management plane only sees this trait, never a socket.

use super::neigh::ResyncCause;

/// Asks the sources for a full resynchronisation (a dump, then the difference is written).
pub trait ResyncRequests: Send + Sync {
    fn request_resync(&self, cause: ResyncCause);
}
