//! The kernel BTF reader: any blob parses or is refused, and every lookup the daemon makes on
//! a parsed one ends (no hang on a self-referencing type, no overflow). Seeded with the running
//! kernel's BTF by `cargo xtask fuzz`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use neighsyncd::southbound::ebpf::btf::Btf;

fuzz_target!(|data: &[u8]| {
    let Ok(btf) = Btf::parse(data) else {
        return;
    };
    for (root, path) in [
        ("neighbour", "primary_key"),
        ("neighbour", "ha"),
        ("neighbour", "flags"),
        ("neighbour", "ha_lock.seqcount.seqcount.sequence"),
        ("net", "ns.inum"),
        ("net_device", "nd_net.net"),
    ] {
        let _ = btf.offset(root, path);
        let _ = btf.field(root, path);
    }
});
