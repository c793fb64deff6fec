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

/// What the program reads, and the sizes it reads them with.
fn field(btf: &Btf, root: &str, path: &str, sizes: &[u32]) -> Result<u32, EbpfError> {
    let f = btf.field(root, path)?;
    if sizes.contains(&f.size) || (sizes.is_empty() && f.size >= 32) {
        Ok(f.offset)
    } else {
        Err(EbpfError::Layout(format!(
            "{root}.{path} is {} bytes; the program reads {}",
            f.size,
            if sizes.is_empty() {
                "at least 32".to_string()
            } else {
                format!("{sizes:?}")
            }
        )))
    }
}

pub fn resolve() -> Result<Offsets, EbpfError> {
    let btf = Btf::from_sys().map_err(|e| EbpfError::Btf(e.to_string()))?;
    const PTR: &[u32] = &[8];
    let flags = btf.field("neighbour", "flags")?;
    // The sequence counter inside `seqlock_t ha_lock` (seqcount_spinlock_t since 5.10).
    let ha_seq = field(
        &btf,
        "neighbour",
        "ha_lock.seqcount.seqcount.sequence",
        &[4],
    )
    .or_else(|_| field(&btf, "neighbour", "ha_lock.seqcount.sequence", &[4]))?;
    let mut o = Offsets {
        neigh_tbl: field(&btf, "neighbour", "tbl", PTR)?,
        neigh_dev: field(&btf, "neighbour", "dev", PTR)?,
        neigh_primary_key: btf.offset("neighbour", "primary_key")?,
        neigh_ha: field(&btf, "neighbour", "ha", &[])?,
        neigh_nud_state: field(&btf, "neighbour", "nud_state", &[1])?,
        neigh_flags: field(&btf, "neighbour", "flags", &[1, 4])?,
        tbl_family: field(&btf, "neigh_table", "family", &[4])?,
        dev_ifindex: field(&btf, "net_device", "ifindex", &[4])?,
        dev_addr_len: field(&btf, "net_device", "addr_len", &[1])?,
        // possible_net_t wraps the pointer as its first member.
        dev_nd_net: field(&btf, "net_device", "nd_net.net", PTR)?,
        net_ns_inum: field(&btf, "net", "ns.inum", &[4])?,
        neigh_flags_size: flags.size,
        neigh_ha_seq: ha_seq,
    };
    inject_faults(&mut o);
    Ok(o)
}

/// Fault injection for the self-verification tests: one offset read a byte off, as a kernel
/// whose layout was misread would give (the namespace filter's fault is in the loader).
fn inject_faults(o: &mut Offsets) {
    if let Some(field) = crate::runtime::fault::get("ebpf_offset") {
        let slot = match field {
            "neigh_tbl" => &mut o.neigh_tbl,
            "neigh_dev" => &mut o.neigh_dev,
            "neigh_primary_key" => &mut o.neigh_primary_key,
            "neigh_ha" => &mut o.neigh_ha,
            "neigh_nud_state" => &mut o.neigh_nud_state,
            "neigh_flags" => &mut o.neigh_flags,
            "tbl_family" => &mut o.tbl_family,
            "dev_ifindex" => &mut o.dev_ifindex,
            "dev_addr_len" => &mut o.dev_addr_len,
            "dev_nd_net" => &mut o.dev_nd_net,
            "net_ns_inum" => &mut o.net_ns_inum,
            _ => return,
        };
        *slot += 1;
    }
}
