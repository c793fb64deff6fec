//! Proof that the program reads this kernel right: a neighbor the daemon makes itself, every
//! field of which is known, checked against what the program reports for it.
//!
//! The canary is `fe80::6e73:RRRR:RRRR dev lo lladdr 02:6e:73:64:00:01 PERMANENT extern_learn`,
//! `RRRR:RRRR` random per daemon: two daemons in one namespace (a hot-standby pair) each plant
//! and remove their own, and neither takes the other's for its own. A
//! link-local neighbor on `lo` is skipped by SONiC's rules in every mode (link-local is only
//! ever enabled on Vlan, PortChannel and Ethernet interfaces), so it never reaches APPL_DB. Its
//! record exercises every offset the program uses: the namespace filter (no record at all if
//! it is wrong), the table's family, the key, the device and its address length, `ha`, the
//! state and the flags. The kernel's own answer for it (`RTM_GETNEIGH`) is the reference.

use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::core::neigh::{NeighKind, NeighMsg, SourceEvent};
use crate::runtime::netns::{Netns, within};
use crate::southbound::parse::{Parsed, encode};

/// The canary's address with the random part zero (see [`canary_ip`]).
pub const IP: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0x6e73, 0, 0);

/// This daemon's canary address: [`IP`] with 32 random bits (the pid, without a random source).
fn canary_ip() -> Ipv6Addr {
    let mut b = [0u8; 4];
    let r = match getrandom::fill(&mut b) {
        Ok(()) => u32::from_be_bytes(b),
        Err(_) => std::process::id(),
    };
    Ipv6Addr::from(u128::from(IP) | u128::from(r))
}
pub const MAC: [u8; 6] = [0x02, 0x6e, 0x73, 0x64, 0x00, 0x01];

#[derive(Debug, thiserror::Error)]
pub enum CanaryError {
    #[error("cannot talk to the kernel about the canary neighbor: {0}")]
    Io(#[from] io::Error),
    #[error("the kernel refused the canary neighbor (errno {0})")]
    Refused(i32),
    #[error("the kernel's answer for the canary neighbor is unreadable")]
    NoAnswer,
}

/// A blocking rtnetlink socket for the canary's add, query and delete (each a round trip of
/// a few microseconds).
pub struct Canary {
    socket: Socket,
    lo: u32,
    ip: Ipv6Addr,
    seq: u32,
}

/// The canary's key: enough for a delete, and all a get may carry (the kernel refuses a get
/// with a state, flags, or any attribute but the destination).
fn key(lo: u32, ip: Ipv6Addr) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Inet6;
    m.header.ifindex = lo;
    m.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)));
    m
}

/// The whole canary, for the add.
fn full(lo: u32, ip: Ipv6Addr) -> NeighbourMessage {
    let mut m = key(lo, ip);
    m.header.state = NeighbourState::Permanent;
    m.header.flags = NeighbourFlags::ExtLearned;
    m.attributes
        .push(NeighbourAttribute::LinkLayerAddress(MAC.to_vec()));
    m
}

impl Canary {
    /// The canary's socket, in `netns` (`None`: the process's own namespace).
    pub fn open(netns: Option<&Netns>) -> Result<Canary, CanaryError> {
        let mut socket = within(netns, || Socket::new(NETLINK_ROUTE))??;
        socket.bind(&SocketAddr::new(0, 0))?;
        let tv = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        // SAFETY: `tv` lives across the call and the length is its size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error().into());
        }
        // SAFETY: a NUL-terminated name.
        let lo = within(netns, || unsafe { libc::if_nametoindex(c"lo".as_ptr()) })?;
        if lo == 0 {
            return Err(io::Error::last_os_error().into());
        }
        Ok(Canary {
            socket,
            lo,
            ip: canary_ip(),
            seq: 0,
        })
    }

    /// Whether a message is about the canary.
    pub fn is_canary(&self, m: &NeighMsg) -> bool {
        m.ifindex == self.lo && m.ip == IpAddr::V6(self.ip)
    }

    /// Sends one request and reads until its answer: the first message (for a query) or the
    /// acknowledgement.
    fn round_trip(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<Parsed>, CanaryError> {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.socket.send(&encode(msg, flags, self.seq), 0)?;
        let mut buf = vec![0u8; 8192];
        for _ in 0..16 {
            let n = self.socket.recv(&mut &mut buf[..], 0)?;
            let mut out = Vec::new();
            crate::southbound::parse::parse_datagram(
                &buf[..n.min(buf.len())],
                Some(self.seq),
                0,
                &mut out,
            );
            if out.iter().any(|p| !matches!(p, Parsed::Stale)) {
                return Ok(out);
            }
        }
        Err(CanaryError::NoAnswer)
    }

    /// Adds (or replaces) the canary and returns the kernel's own answer for it.
    pub fn plant(&mut self) -> Result<NeighMsg, CanaryError> {
        let add = RouteNetlinkMessage::NewNeighbour(full(self.lo, self.ip));
        match self
            .round_trip(
                add,
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
            )?
            .as_slice()
        {
            [Parsed::DumpError { errno, .. }, ..] if *errno != 0 => {
                return Err(CanaryError::Refused(*errno));
            }
            _ => {}
        }
        let get = RouteNetlinkMessage::GetNeighbour(key(self.lo, self.ip));
        for p in self.round_trip(get, NLM_F_REQUEST)? {
            match p {
                Parsed::Event(SourceEvent::Neigh(m)) => return Ok(m),
                Parsed::DumpError { errno, .. } if errno != 0 => {
                    return Err(CanaryError::Refused(errno));
                }
                _ => {}
            }
        }
        Err(CanaryError::NoAnswer)
    }

    /// Removes the canary (a failure is only logged: it is harmless where it is).
    pub fn remove(&mut self) {
        let del = RouteNetlinkMessage::DelNeighbour(key(self.lo, self.ip));
        if let Err(e) = self.round_trip(del, NLM_F_REQUEST | NLM_F_ACK) {
            tracing::debug!(error = %e, "cannot remove the canary neighbor");
        }
    }
}

/// Every field of the program's record against the kernel's answer: `None` when they agree,
/// else what differs.
pub fn disagreement(kernel: &NeighMsg, program: &NeighMsg) -> Option<String> {
    let mut diffs = Vec::new();
    if program.kind != NeighKind::New {
        diffs.push(format!("kind {:?}", program.kind));
    }
    if program.ifindex != kernel.ifindex {
        diffs.push(format!(
            "ifindex {} (kernel: {})",
            program.ifindex, kernel.ifindex
        ));
    }
    if program.ip != kernel.ip {
        diffs.push(format!("address {} (kernel: {})", program.ip, kernel.ip));
    }
    if program.lladdr != kernel.lladdr {
        diffs.push(format!(
            "link-layer address {:02x?} (kernel: {:02x?})",
            program.lladdr, kernel.lladdr
        ));
    }
    if program.state != kernel.state {
        diffs.push(format!(
            "state {:#x} (kernel: {:#x})",
            program.state, kernel.state
        ));
    }
    if program.flags & 0xff != kernel.flags & 0xff {
        diffs.push(format!(
            "flags {:#x} (kernel: {:#x})",
            program.flags, kernel.flags
        ));
    }
    (!diffs.is_empty()).then(|| diffs.join(", "))
}

/// How long the program may take to report the canary.
pub const DEADLINE: Duration = Duration::from_secs(3);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::neigh::Origin;

    fn msg(lladdr: &[u8], state: u16, flags: u32) -> NeighMsg {
        NeighMsg {
            kind: NeighKind::New,
            ifindex: 1,
            ip: IpAddr::V6(IP),
            lladdr: crate::core::key::LinkAddr::new(Some(lladdr)),
            state,
            flags,
            origin: Origin::Dump,
        }
    }

    #[test]
    fn every_field_is_compared() {
        let kernel = msg(&MAC, 0x80, 0x10);
        assert_eq!(disagreement(&kernel, &kernel), None);
        let wrong_mac = msg(&[0; 6], 0x80, 0x10);
        assert!(
            disagreement(&kernel, &wrong_mac)
                .unwrap()
                .contains("link-layer")
        );
        let wrong_state = msg(&MAC, 0x40, 0x10);
        assert!(
            disagreement(&kernel, &wrong_state)
                .unwrap()
                .contains("state")
        );
        let wrong_flags = msg(&MAC, 0x80, 0);
        assert!(
            disagreement(&kernel, &wrong_flags)
                .unwrap()
                .contains("flags")
        );
        let mut wrong_ip = kernel.clone();
        wrong_ip.ip = "fe80::1".parse().unwrap();
        assert!(
            disagreement(&kernel, &wrong_ip)
                .unwrap()
                .contains("address")
        );
        let mut wrong_dev = kernel.clone();
        wrong_dev.ifindex = 7;
        assert!(
            disagreement(&kernel, &wrong_dev)
                .unwrap()
                .contains("ifindex")
        );
    }
}
