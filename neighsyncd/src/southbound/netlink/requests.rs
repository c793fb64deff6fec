//! How the rest of the daemon asks the rtnetlink source for dumps and subscriptions.

use tokio::sync::mpsc;

use crate::core::neigh::ResyncCause;

/// What the source can be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// A dump (coalesced: requests during a dump make it run once more).
    Dump(ResyncCause),
    /// Events were lost elsewhere (the eBPF ring buffer): like an overrun of our own socket.
    Lost(ResyncCause),
    /// Join the neighbor notification group (the eBPF source could not be used).
    SubscribeNeighbors,
}

/// Asks the source for dumps and subscriptions.
#[derive(Debug, Clone)]
pub struct DumpRequester(pub(super) mpsc::UnboundedSender<Request>);

impl DumpRequester {
    /// A requester and the receiving end, for driving a pipeline without a netlink source
    /// (tests that feed it messages the kernel here cannot produce).
    pub fn channel() -> (DumpRequester, mpsc::UnboundedReceiver<Request>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (DumpRequester(tx), rx)
    }

    pub fn request(&self, cause: ResyncCause) {
        // The source task only goes away at shutdown; a request then has nothing left to do.
        let _ = self.0.send(Request::Dump(cause));
    }

    /// Live neighbor events were lost (the eBPF ring buffer overflowed): the dump in flight is
    /// aborted, and a new one follows once the losses pause.
    pub fn lost(&self, cause: ResyncCause) {
        let _ = self.0.send(Request::Lost(cause));
    }

    /// Starts receiving neighbor notifications over netlink (before the dump that follows).
    pub fn subscribe_neighbors(&self) {
        let _ = self.0.send(Request::SubscribeNeighbors);
    }
}

impl crate::core::control::ResyncRequests for DumpRequester {
    fn request_resync(&self, cause: ResyncCause) {
        self.request(cause);
    }
}

/// rtnetlink alone (no eBPF program to detach).
impl crate::core::control::SourceControl for DumpRequester {
    fn switch_to_netlink(&self) -> u64 {
        // Every event received after the subscription is newer than this.
        let since_ns = crate::southbound::monotonic_ns();
        self.subscribe_neighbors();
        since_ns
    }

    fn lost(&self, cause: ResyncCause) {
        DumpRequester::lost(self, cause);
    }
}
