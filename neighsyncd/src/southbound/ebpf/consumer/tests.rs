//! Decoding ring-buffer records: every byte checked, nothing trusted.

use super::*;

fn as_bytes(ev: &NeighEvent) -> &[u8] {
    // SAFETY: viewing a plain-data struct (no undefined padding) as bytes.
    unsafe {
        std::slice::from_raw_parts(
            (ev as *const NeighEvent).cast::<u8>(),
            std::mem::size_of::<NeighEvent>(),
        )
    }
}

#[test]
fn records_convert_and_garbage_is_refused() {
    let mut ev = NeighEvent {
        ts_ns: 7,
        version: RECORD_VERSION,
        kind: 0,
        family: 2,
        netns: 1,
        ifindex: 3,
        flags: 0x10,
        state: 0x02,
        lladdr_len: 6,
        uncertain: 0,
        _pad: [0; 5],
        addr: [0; 16],
        lladdr: [0; 32],
    };
    ev.addr[..4].copy_from_slice(&[10, 0, 0, 2]);
    ev.lladdr[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    // SAFETY: viewing a plain-data struct as bytes.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (&ev as *const NeighEvent).cast::<u8>(),
            std::mem::size_of::<NeighEvent>(),
        )
    };
    let m = to_neigh_msg(bytes).unwrap();
    assert_eq!(m.ip, "10.0.0.2".parse::<IpAddr>().unwrap());
    assert_eq!(m.lladdr.get(), Some(&[2, 0, 0, 0, 0, 1][..]));
    assert_eq!(m.kind, NeighKind::New);
    assert_eq!(m.origin, Origin::Live { ts_ns: 7 });
    assert!(to_neigh_msg(&bytes[..10]).is_none());
    // Its namespace, read without trusting the rest (what routes it in a multi-ASIC daemon).
    assert_eq!(record_netns(bytes), Some(1));
    assert_eq!(record_netns(&bytes[..10]), None);
    // Another build's record, and an uncertain one, are not taken as they are.
    let mut other = ev;
    other.version = RECORD_VERSION + 1;
    assert_eq!(
        decode(as_bytes(&other)),
        Record::Bad("ringbuf_record_version")
    );
    let mut unsure = ev;
    unsure.uncertain = 1;
    assert!(matches!(decode(as_bytes(&unsure)), Record::Uncertain(_)));
    ev.family = 7;
    // SAFETY: as above.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (&ev as *const NeighEvent).cast::<u8>(),
            std::mem::size_of::<NeighEvent>(),
        )
    };
    assert!(to_neigh_msg(bytes).is_none());
}
