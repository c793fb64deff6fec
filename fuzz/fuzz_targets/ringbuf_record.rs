//! eBPF ring-buffer records: whatever the ring hands over (a record of another build, a short
//! one, garbage) is decoded without a panic. Invariants: a neighbor's link-layer address is at
//! most 32 bytes and never empty; its address is of the family the record says.

#![no_main]

use libfuzzer_sys::fuzz_target;
use neighsyncd::southbound::ebpf::{Record, decode};

fuzz_target!(|data: &[u8]| {
    if let Record::Neigh(m) | Record::Uncertain(m) = decode(data) {
        assert!(
            m.lladdr
                .get()
                .is_none_or(|l| !l.is_empty() && l.len() <= 32)
        );
        // The family byte sits at offset 11 of the record.
        match data.get(11) {
            Some(2) => assert!(m.ip.is_ipv4()),
            Some(10) => assert!(m.ip.is_ipv6()),
            other => panic!("a neighbor from family {other:?}"),
        }
    }
});
