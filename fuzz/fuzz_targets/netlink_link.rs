//! Netlink link messages (RTM_NEWLINK/DELLINK), well-framed with a fuzzed payload, and raw.
//! Invariants: no panic; a link event is a deletion exactly when the message was RTM_DELLINK.

#![no_main]

use libfuzzer_sys::fuzz_target;
use neighsyncd::core::neigh::SourceEvent;
use neighsyncd::southbound::parse::{Parsed, parse_datagram};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, payload)) = data.split_first() else {
        return;
    };
    let kind: u16 = if sel & 1 == 0 { 16 } else { 17 }; // RTM_NEWLINK, RTM_DELLINK
    let len = 16 + payload.len();
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(&0u16.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(payload);
    let mut out = Vec::new();
    parse_datagram(&msg, None, 1, &mut out);
    for p in &out {
        if let Parsed::Event(SourceEvent::Link(l)) = p {
            assert_eq!(l.deleted, kind == 17, "{l:?}");
        }
    }
    out.clear();
    parse_datagram(data, None, 1, &mut out);
});
