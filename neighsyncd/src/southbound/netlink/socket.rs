//! The NETLINK_ROUTE sockets: opening, buffer sizing, and non-blocking receives that tell an
//! overrun (ENOBUFS) from data.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tracing::{debug, warn};

use super::NetlinkError;
use crate::runtime::netns::{Netns, within};

pub(super) struct NlSocket(pub(super) Socket);

impl AsRawFd for NlSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// The dump socket's receive buffer: large enough for any dump message.
pub(super) const DUMP_RCVBUF: usize = 4 * 1024 * 1024;

/// A NETLINK_ROUTE socket in `netns` (`None`: the process's own), bound to `groups`.
pub(super) fn open(
    netns: Option<&Netns>,
    groups: u32,
    rcvbuf: usize,
) -> Result<AsyncFd<NlSocket>, NetlinkError> {
    let mut socket = within(netns, || Socket::new(NETLINK_ROUTE))
        .and_then(|s| s)
        .map_err(NetlinkError::Open)?;
    socket
        .bind(&SocketAddr::new(0, groups))
        .map_err(NetlinkError::Bind)?;
    set_rcvbuf(socket.as_raw_fd(), rcvbuf);
    socket.set_non_blocking(true).map_err(NetlinkError::Open)?;
    // SAFETY: the fd is owned by `socket`, which the AsyncFd owns for its whole life.
    unsafe { AsyncFd::register_with_interest(NlSocket(socket), Interest::READABLE) }
        .map_err(|e| NetlinkError::Register(e.into_parts().1))
}

fn set_rcvbuf(fd: RawFd, bytes: usize) {
    let val = bytes.min(i32::MAX as usize) as libc::c_int;
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    for (opt, name) in [
        (libc::SO_RCVBUFFORCE, "SO_RCVBUFFORCE"),
        (libc::SO_RCVBUF, "SO_RCVBUF"),
    ] {
        // SAFETY: `val` lives across the call and `len` is its size.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&val as *const libc::c_int).cast(),
                len,
            )
        };
        if rc == 0 {
            debug!(bytes, option = name, "netlink receive buffer set");
            return;
        }
    }
    warn!(
        bytes,
        "could not set the netlink receive buffer; using the system default"
    );
}

pub(super) enum Recv {
    Data(usize),
    Empty,
    Overrun,
}

pub(super) fn recv(
    guard: &mut tokio::io::unix::AsyncFdReadyGuard<'_, NlSocket>,
    buf: &mut [u8],
) -> io::Result<Recv> {
    loop {
        let res = guard.try_io(|inner| {
            // SAFETY: buf is a valid writable buffer of buf.len() bytes.
            let n = unsafe {
                libc::recv(
                    inner.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_TRUNC,
                )
            };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        return match res {
            Err(_would_block) => Ok(Recv::Empty),
            Ok(Ok(n)) => Ok(Recv::Data(n)),
            Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => Ok(Recv::Overrun),
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
            Ok(Err(e)) => Err(e),
        };
    }
}
