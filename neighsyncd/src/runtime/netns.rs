//! Entering a named network namespace (`/var/run/netns/NAME`, as `ip netns` makes them) for
//! `--namespace`: before any thread exists, so that every thread, socket and listener the
//! daemon makes is in it. Like `ip netns exec`, `/sys` is mounted afresh in a private mount
//! namespace, so that `/sys/class/net` shows this namespace's interfaces.

use std::ffi::CString;
use std::os::fd::AsRawFd;

/// Where `ip netns` keeps its namespaces.
pub const NETNS_DIR: &str = "/var/run/netns";

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("cannot open network namespace {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot enter network namespace {path}: {source} (needs CAP_SYS_ADMIN)")]
    Enter {
        path: String,
        source: std::io::Error,
    },
}

/// Enters network namespace `name`. Must be called while the process has one thread. The
/// `/sys` remount is best effort: its failure is returned as a warning, not an error (only
/// the restore step's carrier check reads `/sys`).
pub fn enter(name: &str) -> Result<Option<String>, NetnsError> {
    let path = format!("{NETNS_DIR}/{name}");
    let file = std::fs::File::open(&path).map_err(|source| NetnsError::Open {
        path: path.clone(),
        source,
    })?;
    // SAFETY: setns on a descriptor we own; it changes only this (the only) thread.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(NetnsError::Enter {
            path,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(remount_sys()
        .err()
        .map(|e| format!("entered {path}, but /sys still shows the previous namespace: {e}")))
}

fn remount_sys() -> std::io::Result<()> {
    let c = |s: &str| CString::new(s).map_err(std::io::Error::other);
    let (root, sys, sysfs) = (c("/")?, c("/sys")?, c("sysfs")?);
    let check = |rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    // SAFETY: plain syscalls with valid NUL-terminated strings; a private mount namespace
    // for this process (and the threads it starts later), as `ip netns exec` makes one.
    unsafe {
        check(libc::unshare(libc::CLONE_NEWNS))?;
        check(libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_SLAVE | libc::MS_REC,
            std::ptr::null(),
        ))?;
        check(libc::umount2(sys.as_ptr(), libc::MNT_DETACH))?;
        check(libc::mount(
            sysfs.as_ptr(),
            sys.as_ptr(),
            sysfs.as_ptr(),
            0,
            std::ptr::null(),
        ))
    }
}

/// A network namespace the daemon reaches into without entering it: one process serving
/// several SONiC namespaces. Its sockets are made by a short-lived thread that enters the
/// namespace; a socket stays in the namespace it was made in, whichever thread then uses it.
#[derive(Debug)]
pub struct Netns {
    name: String,
    file: std::fs::File,
    inode: u32,
}

impl Netns {
    /// Opens `/var/run/netns/NAME` (entering it needs CAP_SYS_ADMIN).
    pub fn open(name: &str) -> Result<Netns, NetnsError> {
        use std::os::unix::fs::MetadataExt;
        let path = format!("{NETNS_DIR}/{name}");
        let open_err = |source| NetnsError::Open {
            path: path.clone(),
            source,
        };
        let file = std::fs::File::open(&path).map_err(open_err)?;
        // The nsfs inode number is the namespace's `ns.inum`, what the eBPF program sees.
        let inode = file.metadata().map_err(open_err)?.ino() as u32;
        Ok(Netns {
            name: name.to_string(),
            file,
            inode,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn inode(&self) -> u32 {
        self.inode
    }

    /// Runs `f` on a thread inside this namespace, and returns what it returns.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
        std::thread::scope(|s| {
            std::thread::Builder::new()
                .name(format!("netns-{}", self.name))
                .spawn_scoped(s, || {
                    // SAFETY: setns on a descriptor we own; it moves only this new thread.
                    if unsafe { libc::setns(self.file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(f())
                })?
                .join()
                .map_err(|_| std::io::Error::other("a thread in the namespace panicked"))?
        })
    }
}

/// Runs `f` in `netns`, or right here when it is `None` (the namespace the process is in).
pub fn within<T: Send>(netns: Option<&Netns>, f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    match netns {
        Some(n) => n.run(f),
        None => Ok(f()),
    }
}
