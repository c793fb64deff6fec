//! The system calls the restore step needs: interface facts, a netlink neighbor add, and a
//! raw packet socket.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::core::rules::Mac;
use crate::southbound::parse::encode;

fn sysfs(ifname: &str, attr: &str) -> io::Result<String> {
    if ifname.contains('/') || ifname.contains("..") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad interface name",
        ));
    }
    std::fs::read_to_string(format!("/sys/class/net/{ifname}/{attr}")).map(|s| s.trim().to_string())
}

/// Operationally up: `/sys/class/net/<if>/carrier` is 1.
pub fn carrier(ifname: &str) -> bool {
    sysfs(ifname, "carrier").map(|s| s == "1").unwrap_or(false)
}

pub struct Interface {
    pub name: String,
    pub ifindex: u32,
    pub mac: Mac,
    v4: Option<Ipv4Addr>,
    v6: Option<Ipv6Addr>,
    packet: OwnedFd,
}

impl Interface {
    pub fn open(name: &str) -> io::Result<Interface> {
        let ifindex: u32 = sysfs(name, "ifindex")?
            .parse()
            .map_err(|_| io::Error::other("bad ifindex"))?;
        let mac = Mac::parse(&sysfs(name, "address")?).ok_or_else(|| io::Error::other("no MAC"))?;
        let (v4, v6) = first_addresses(name)?;
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, valid descriptor we own from here on.
        let packet = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Interface {
            name: name.to_string(),
            ifindex,
            mac,
            v4,
            v6,
            packet,
        })
    }

    /// The source address for a target of that family (the interface's first one).
    pub fn source_for(&self, target: &IpAddr) -> Option<IpAddr> {
        match target {
            IpAddr::V4(_) => self.v4.map(IpAddr::V4),
            IpAddr::V6(_) => self.v6.map(IpAddr::V6),
        }
    }

    /// Sends one Ethernet frame out of the interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid starting value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = self.ifindex as i32;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: frame and addr outlive the call; lengths are theirs.
        let n = unsafe {
            libc::sendto(
                self.packet.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

/// The first IPv4 and IPv6 address (link-local included, as upstream) of an interface.
fn first_addresses(name: &str) -> io::Result<(Option<Ipv4Addr>, Option<Ipv6Addr>)> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let (mut v4, mut v6) = (None, None);
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: cur is a node of the list getifaddrs returned and we have not freed yet.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let ifname = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        if ifname.to_bytes() != name.as_bytes() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points to a sockaddr whose family tells its type.
        match i32::from(unsafe { (*ifa.ifa_addr).sa_family }) {
            libc::AF_INET if v4.is_none() => {
                // SAFETY: family AF_INET means a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                v4 = Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
            }
            libc::AF_INET6 if v6.is_none() => {
                // SAFETY: family AF_INET6 means a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                v6 = Some(Ipv6Addr::from(sin6.sin6_addr.s6_addr));
            }
            _ => {}
        }
    }
    // SAFETY: head came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok((v4, v6))
}

/// Adds a neighbor as STALE (`ip neigh add ... nud stale`), failing with EEXIST if present.
pub fn add_stale(ifindex: u32, ip: IpAddr, mac: Mac) -> io::Result<()> {
    let mut n = NeighbourMessage::default();
    n.header.family = if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    n.header.ifindex = ifindex;
    n.header.state = NeighbourState::Stale;
    n.attributes.push(NeighbourAttribute::Destination(match ip {
        IpAddr::V4(a) => NeighbourAddress::Inet(a),
        IpAddr::V6(a) => NeighbourAddress::Inet6(a),
    }));
    n.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
    let bytes = encode(
        RouteNetlinkMessage::NewNeighbour(n),
        NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK,
        1,
    );
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind(&SocketAddr::new(0, 0))?;
    socket.send(&bytes, 0)?;
    let mut buf = vec![0u8; 8192];
    let n = socket.recv(&mut &mut buf[..], 0)?;
    let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[..n])
        .map_err(|e| io::Error::other(format!("bad netlink answer: {e}")))?;
    match msg.payload {
        NetlinkPayload::Error(e) => match e.code {
            None => Ok(()),
            Some(code) => Err(io::Error::from_raw_os_error(code.get().saturating_neg())),
        },
        _ => Ok(()),
    }
}
