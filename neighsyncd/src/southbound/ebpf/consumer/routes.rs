//! Where a record goes when one program serves several namespaces: the route of its
//! namespace, and which routes a drain's uncertain records call to resynchronise.

use neighsyncd_common::NeighEvent;

use super::Route;

/// The network namespace a record is from (its inode number), read without trusting the
/// rest of it; `None` for a record too short to say.
pub fn record_netns(bytes: &[u8]) -> Option<u32> {
    const AT: usize = std::mem::offset_of!(NeighEvent, netns);
    let b = bytes.get(AT..AT + 4)?;
    Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// Which route a record goes to: its namespace's; anything unreadable to the first, which
/// counts it.
pub(super) fn route_of(routes: &[Route], bytes: &[u8]) -> usize {
    match routes {
        [_] => 0,
        _ => record_netns(bytes)
            .and_then(|ns| routes.iter().position(|r| r.netns == ns))
            .unwrap_or(0),
    }
}

/// The routes whose records were uncertain in a drain.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Uncertain {
    pub(super) count: u64,
    routes: u64,
}

impl Uncertain {
    pub(super) fn add(&mut self, route: usize) {
        self.count += 1;
        self.routes |= 1u64.checked_shl(route as u32).unwrap_or(u64::MAX);
    }

    pub(super) fn merge(&mut self, other: Uncertain) {
        self.count += other.count;
        self.routes |= other.routes;
    }

    pub(super) fn has(&self, route: usize) -> bool {
        self.routes & 1u64.checked_shl(route as u32).unwrap_or(u64::MAX) != 0
    }
}
