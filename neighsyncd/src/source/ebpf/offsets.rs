//! The kernel struct offsets the program needs, from the running kernel's BTF.

use std::os::unix::fs::MetadataExt;

use neighsyncd_common::Offsets;

use super::EbpfError;
use super::btf::Btf;

/// The inode number of this thread's network namespace (what the kernel calls `ns.inum`).
pub fn own_netns() -> Result<u32, EbpfError> {
    let meta = std::fs::metadata("/proc/thread-self/ns/net").map_err(EbpfError::Netns)?;
    Ok(meta.ino() as u32)
}

pub fn resolve() -> Result<Offsets, EbpfError> {
    let btf = Btf::from_sys().map_err(|e| EbpfError::Btf(e.to_string()))?;
    let mut o = Offsets {
        neigh_tbl: btf.offset("neighbour", "tbl")?,
        neigh_dev: btf.offset("neighbour", "dev")?,
        neigh_primary_key: btf.offset("neighbour", "primary_key")?,
        neigh_ha: btf.offset("neighbour", "ha")?,
        neigh_nud_state: btf.offset("neighbour", "nud_state")?,
        neigh_flags: btf.offset("neighbour", "flags")?,
        tbl_family: btf.offset("neigh_table", "family")?,
        dev_ifindex: btf.offset("net_device", "ifindex")?,
        dev_addr_len: btf.offset("net_device", "addr_len")?,
        // possible_net_t wraps the pointer as its first member.
        dev_nd_net: btf.offset("net_device", "nd_net.net")?,
        net_ns_inum: btf.offset("net", "ns.inum")?,
        netns_inum: own_netns()?,
    };
    // Fault injection for the start-up check's test: a wrong offset, as a kernel whose layout
    // was misread would give.
    if std::env::var("NEIGHSYNCD_EBPF_FAULT").as_deref() == Ok("ifindex") {
        tracing::warn!("NEIGHSYNCD_EBPF_FAULT=ifindex: reading ifindex at a wrong offset");
        o.dev_ifindex += 1;
    }
    Ok(o)
}
