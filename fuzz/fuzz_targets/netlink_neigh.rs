//! Netlink neighbor messages (RTM_NEWNEIGH/DELNEIGH, and the table statistics RTM_NEWNEIGHTBL)
//! as the kernel's event and dump sockets would deliver them. The first byte picks the message
//! type and context; the rest is the payload after a valid netlink header, so the fuzzer
//! spends its time in the attribute decoding, not on header checks. Whole raw datagrams are
//! tried too. Invariants: no panic; a neighbor event's address is of the family its message
//! says; a link-layer address is never empty.

#![no_main]

use libfuzzer_sys::fuzz_target;
use neighsyncd::core::neigh::SourceEvent;
use neighsyncd::southbound::parse::{Parsed, parse_datagram};

const TYPES: [u16; 3] = [28, 29, 64]; // RTM_NEWNEIGH, RTM_DELNEIGH, RTM_NEWNEIGHTBL

fn message(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let len = 16 + payload.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(payload);
    m
}

fn check(out: &[Parsed], family_byte: Option<u8>) {
    for p in out {
        if let Parsed::Event(SourceEvent::Neigh(n)) = p {
            match family_byte {
                Some(2) => assert!(n.ip.is_ipv4(), "{n:?}"),
                Some(10) => assert!(n.ip.is_ipv6(), "{n:?}"),
                _ => {}
            }
            assert!(n.lladdr.get().is_none_or(|l| !l.is_empty()), "{n:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    // Raw datagrams, on the event socket and on the dump socket.
    parse_datagram(data, None, 1, &mut out);
    out.clear();
    parse_datagram(data, Some(7), 1, &mut out);
    out.clear();
    // One well-framed message with a fuzzed payload.
    let Some((&sel, payload)) = data.split_first() else {
        return;
    };
    let kind = TYPES[usize::from(sel) % TYPES.len()];
    let flags = if sel & 0x10 != 0 { 0x2 } else { 0 }; // NLM_F_MULTI
    let msg = message(kind, flags, 7, payload);
    let dump = (sel & 0x20 != 0).then_some(7);
    parse_datagram(&msg, dump, 1, &mut out);
    check(&out, payload.first().copied());
});
