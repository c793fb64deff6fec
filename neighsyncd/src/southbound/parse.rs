//! Netlink datagrams -> [`SourceEvent`]s. Pure: no sockets, so every malformed shape can be
//! unit-tested with bytes built in the test.

use netlink_packet_core::{NLM_F_DUMP_INTR, NLM_F_MULTIPART, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage};
use netlink_packet_route::neighbour_table::{NeighbourTableAttribute, NeighbourTableMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::IpAddr;

use crate::core::dump::{Family, TableStats};
use crate::core::key::LinkAddr;
use crate::core::neigh::{LinkMsg, NeighKind, NeighMsg, Origin, SourceEvent};

/// One thing a datagram said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Event(SourceEvent),
    /// A neighbor of a family SONiC does not sync (bridge FDB shares the group): ignored.
    NotIp,
    /// The end of the dump with this sequence number.
    DumpDone {
        seq: u32,
    },
    /// The dump with this sequence number failed (errno, positive).
    DumpError {
        seq: u32,
        errno: i32,
    },
    /// The kernel flagged the dump inconsistent (NLM_F_DUMP_INTR): redo it.
    DumpInterrupted {
        seq: u32,
    },
    /// A neighbor table's statistics (`RTM_NEWNEIGHTBL` with its config and stats).
    Table {
        family: Family,
        stats: TableStats,
    },
    /// A message on the dump socket from a dump that is no longer wanted (dropped).
    Stale,
    /// Something we neither asked for nor care about (acks, other message types).
    Other,
}

/// Splits a datagram into messages and converts each one. `dump_seq`: the datagram came from the
/// dump socket, and this is the sequence number of the dump in flight (messages carrying another
/// one are [`Parsed::Stale`], never taken for live events); `None`: from the event socket.
/// `ts_ns` stamps live events.
pub fn parse_datagram(buf: &[u8], dump_seq: Option<u32>, ts_ns: u64, out: &mut Vec<Parsed>) {
    let mut offset = 0usize;
    while offset < buf.len() {
        let rest = &buf[offset..];
        if rest.len() < 16 {
            out.push(Parsed::Event(SourceEvent::Malformed(
                "truncated_netlink_header",
            )));
            return;
        }
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len < 16 || len > rest.len() {
            out.push(Parsed::Event(SourceEvent::Malformed("bad_netlink_length")));
            return;
        }
        out.push(parse_message(&rest[..len], dump_seq, ts_ns));
        // Messages are 4-byte aligned.
        offset += (len + 3) & !3;
    }
}

fn parse_message(bytes: &[u8], dump_seq: Option<u32>, ts_ns: u64) -> Parsed {
    let msg = match NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes) {
        Ok(m) => m,
        Err(_) => return Parsed::Event(SourceEvent::Malformed("undecodable_message")),
    };
    let seq = msg.header.sequence_number;
    let from_dump = match dump_seq {
        Some(current) if seq == current => true,
        Some(_) => return Parsed::Stale,
        None => false,
    };
    if from_dump && msg.header.flags & NLM_F_DUMP_INTR != 0 {
        return Parsed::DumpInterrupted { seq };
    }
    let origin = if from_dump && msg.header.flags & NLM_F_MULTIPART != 0 {
        Origin::Dump
    } else {
        Origin::Live { ts_ns }
    };
    match msg.payload {
        NetlinkPayload::Done(_) if from_dump => Parsed::DumpDone { seq },
        NetlinkPayload::Error(e) if from_dump => match e.code {
            Some(code) => Parsed::DumpError {
                seq,
                // The kernel sends -errno; anything else must not overflow the negation.
                errno: code.get().saturating_neg(),
            },
            None => Parsed::Other,
        },
        NetlinkPayload::InnerMessage(inner) => match inner {
            RouteNetlinkMessage::NewNeighbour(n) => neigh(n, NeighKind::New, origin),
            RouteNetlinkMessage::DelNeighbour(n) => neigh(n, NeighKind::Del, origin),
            RouteNetlinkMessage::NewLink(l) => link(l, false),
            RouteNetlinkMessage::DelLink(l) => link(l, true),
            RouteNetlinkMessage::NewNeighbourTable(t) => table(t),
            _ => Parsed::Other,
        },
        _ => Parsed::Other,
    }
}

/// Converts one neighbor message; exposed so tests and the eBPF start-up check can reuse it.
pub fn neigh(n: NeighbourMessage, kind: NeighKind, origin: Origin) -> Parsed {
    let is_v4 = match n.header.family {
        AddressFamily::Inet => true,
        AddressFamily::Inet6 => false,
        _ => return Parsed::NotIp,
    };
    let mut ip = None;
    let mut lladdr = LinkAddr::ABSENT;
    for attr in n.attributes {
        match attr {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => ip = Some(IpAddr::V4(a)),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => ip = Some(IpAddr::V6(a)),
            NeighbourAttribute::Destination(_) => {
                return Parsed::Event(SourceEvent::Malformed("bad_address"));
            }
            // The kernel puts an empty NDA_LLADDR for devices without link-layer addresses
            // (tunnels, loopback): no address, exactly as the eBPF record says it.
            NeighbourAttribute::LinkLayerAddress(mac) => {
                lladdr = LinkAddr::new((!mac.is_empty()).then_some(&mac[..]))
            }
            _ => {}
        }
    }
    let Some(ip) = ip else {
        return Parsed::Event(SourceEvent::Malformed("missing_address"));
    };
    if ip.is_ipv4() != is_v4 {
        return Parsed::Event(SourceEvent::Malformed("address_family_mismatch"));
    }
    Parsed::Event(SourceEvent::Neigh(NeighMsg {
        kind,
        ifindex: n.header.ifindex,
        ip,
        lladdr,
        state: u16::from(n.header.state),
        flags: u32::from(n.header.flags.bits()),
        origin,
    }))
}

fn link(l: LinkMessage, deleted: bool) -> Parsed {
    let mut name = None;
    let mut master = None;
    let mut carrier = None;
    for attr in l.attributes {
        match attr {
            LinkAttribute::IfName(n) => name = Some(n),
            LinkAttribute::Controller(m) if m != 0 => master = Some(m),
            LinkAttribute::Carrier(c) => carrier = Some(c != 0),
            _ => {}
        }
    }
    let Some(name) = name else {
        return Parsed::Event(SourceEvent::Malformed("missing_ifname"));
    };
    let up = l.header.flags.contains(LinkFlags::Up);
    let oper_up = up && carrier.unwrap_or_else(|| l.header.flags.contains(LinkFlags::Running));
    Parsed::Event(SourceEvent::Link(LinkMsg {
        ifindex: l.header.index,
        name,
        master,
        oper_up,
        deleted,
    }))
}

/// A neighbor table's statistics; per-device parameter messages (no stats) are [`Parsed::Other`].
fn table(t: NeighbourTableMessage) -> Parsed {
    let family = match t.header.family {
        AddressFamily::Inet => Family::Inet,
        AddressFamily::Inet6 => Family::Inet6,
        _ => return Parsed::Other,
    };
    let (mut config, mut stats) = (None, None);
    let mut out = TableStats::default();
    for attr in t.attributes {
        match attr {
            NeighbourTableAttribute::Config(c) => config = Some(c),
            NeighbourTableAttribute::Stats(s) => stats = Some(s),
            NeighbourTableAttribute::Threshold1(v) => out.gc_thresh1 = v,
            NeighbourTableAttribute::Threshold2(v) => out.gc_thresh2 = v,
            NeighbourTableAttribute::Threshold3(v) => out.gc_thresh3 = v,
            _ => {}
        }
    }
    let (Some(c), Some(s)) = (config, stats) else {
        return Parsed::Other;
    };
    out.hash_rnd = c.hash_rand;
    out.hash_mask = c.hash_mask;
    out.entries = c.entries;
    out.hash_grows = s.hash_grows;
    out.destroys = s.destroys;
    out.table_fulls = s.table_fulls;
    out.forced_gc_runs = s.forced_gc_runs;
    Parsed::Table { family, stats: out }
}

/// Builds the bytes of a netlink message (for dump requests and for tests that feed the
/// parser messages the kernel here cannot produce).
pub fn encode(msg: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut nl = NetlinkMessage::new(
        netlink_packet_core::NetlinkHeader::default(),
        NetlinkPayload::InnerMessage(msg),
    );
    nl.header.flags = flags;
    nl.header.sequence_number = seq;
    nl.finalize();
    let mut buf = vec![0u8; nl.buffer_len()];
    nl.serialize(&mut buf);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::neighbour::{NeighbourFlags, NeighbourState};
    use std::net::Ipv4Addr;

    fn neigh_msg(family: AddressFamily, attrs: Vec<NeighbourAttribute>) -> RouteNetlinkMessage {
        let mut m = NeighbourMessage::default();
        m.header.family = family;
        m.header.ifindex = 7;
        m.header.state = NeighbourState::Reachable;
        m.header.flags = NeighbourFlags::ExtLearned;
        m.attributes = attrs;
        RouteNetlinkMessage::NewNeighbour(m)
    }

    fn parse_one(bytes: &[u8], dump_seq: Option<u32>) -> Vec<Parsed> {
        let mut out = Vec::new();
        parse_datagram(bytes, dump_seq, 42, &mut out);
        out
    }

    #[test]
    fn parses_a_live_ipv4_neighbor() {
        let bytes = encode(
            neigh_msg(
                AddressFamily::Inet,
                vec![
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(Ipv4Addr::new(
                        10, 0, 0, 2,
                    ))),
                    NeighbourAttribute::LinkLayerAddress(vec![2, 0, 0, 0, 0, 1]),
                ],
            ),
            0,
            0,
        );
        let out = parse_one(&bytes, None);
        assert_eq!(
            out,
            vec![Parsed::Event(SourceEvent::Neigh(NeighMsg {
                kind: NeighKind::New,
                ifindex: 7,
                ip: "10.0.0.2".parse().unwrap(),
                lladdr: LinkAddr::new(Some(&[2, 0, 0, 0, 0, 1])),
                state: crate::core::neigh::nud::REACHABLE,
                flags: crate::core::neigh::NTF_EXT_LEARNED,
                origin: Origin::Live { ts_ns: 42 },
            }))]
        );
    }

    #[test]
    fn dump_entries_are_marked_and_done_is_seen() {
        let mut bytes = encode(
            neigh_msg(
                AddressFamily::Inet6,
                vec![NeighbourAttribute::Destination(NeighbourAddress::Inet6(
                    "2000::2".parse().unwrap(),
                ))],
            ),
            NLM_F_MULTIPART,
            9,
        );
        while !bytes.len().is_multiple_of(4) {
            bytes.push(0);
        }
        // NLMSG_DONE: header only + 4-byte status.
        let mut done = vec![0u8; 20];
        done[0..4].copy_from_slice(&20u32.to_ne_bytes());
        done[4..6].copy_from_slice(&3u16.to_ne_bytes());
        done[6..8].copy_from_slice(&NLM_F_MULTIPART.to_ne_bytes());
        done[8..12].copy_from_slice(&9u32.to_ne_bytes());
        bytes.extend_from_slice(&done);
        let out = parse_one(&bytes, Some(9));
        assert_eq!(out.len(), 2);
        match &out[0] {
            Parsed::Event(SourceEvent::Neigh(n)) => assert_eq!(n.origin, Origin::Dump),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(out[1], Parsed::DumpDone { seq: 9 });
        // The same messages on the event socket are live (and an unrelated DONE is ignored).
        let out = parse_one(&bytes, None);
        assert!(
            matches!(&out[0], Parsed::Event(SourceEvent::Neigh(n)) if n.origin == Origin::Live { ts_ns: 42 })
        );
        assert_eq!(out[1], Parsed::Other);
        // On the dump socket, a dump that is no longer wanted is never taken for live events.
        assert_eq!(
            parse_one(&bytes, Some(10)),
            vec![Parsed::Stale, Parsed::Stale]
        );
    }

    #[test]
    fn bad_input_is_reported_not_panicked_on() {
        assert_eq!(
            parse_one(&[1, 2, 3], None),
            vec![Parsed::Event(SourceEvent::Malformed(
                "truncated_netlink_header"
            ))]
        );
        let mut bytes = encode(neigh_msg(AddressFamily::Inet, vec![]), 0, 0);
        assert_eq!(
            parse_one(&bytes, None),
            vec![Parsed::Event(SourceEvent::Malformed("missing_address"))]
        );
        // Length field larger than the datagram.
        bytes[0..4].copy_from_slice(&4096u32.to_ne_bytes());
        assert_eq!(
            parse_one(&bytes, None),
            vec![Parsed::Event(SourceEvent::Malformed("bad_netlink_length"))]
        );
        // An IPv6 address in an IPv4 message: the decoder or our check refuses it.
        let bytes = encode(
            neigh_msg(
                AddressFamily::Inet,
                vec![NeighbourAttribute::Destination(NeighbourAddress::Inet6(
                    "2000::2".parse().unwrap(),
                ))],
            ),
            0,
            0,
        );
        let out = parse_one(&bytes, None);
        assert!(
            matches!(
                out.as_slice(),
                [Parsed::Event(SourceEvent::Malformed(
                    "address_family_mismatch" | "undecodable_message"
                ))]
            ),
            "{out:?}"
        );
        // Garbage after a valid header.
        let mut junk = vec![0xffu8; 40];
        junk[0..4].copy_from_slice(&40u32.to_ne_bytes());
        junk[4..6].copy_from_slice(&28u16.to_ne_bytes()); // RTM_NEWNEIGH
        let out = parse_one(&junk, None);
        assert_eq!(out.len(), 1);
        assert!(matches!(out[0], Parsed::Event(SourceEvent::Malformed(_))));
    }

    #[test]
    fn bridge_fdb_entries_are_not_ip() {
        let bytes = encode(neigh_msg(AddressFamily::Bridge, vec![]), 0, 0);
        assert_eq!(parse_one(&bytes, None), vec![Parsed::NotIp]);
    }

    /// Found by the `netlink_neigh` fuzz target: an empty NDA_LLADDR (which the kernel sends for
    /// devices whose addresses have no length) came out as `Some([])`, where the eBPF source says
    /// `None` for the same neighbor.
    #[test]
    fn an_empty_link_layer_address_is_no_address() {
        // The fuzzer's input: an RTM_DELNEIGH with a zero-length NDA_LLADDR.
        let payload = [
            2u8, 0, 17, 0, 17, 40, 138, 17, 0, 0, 6, 0, 8, 0, 1, 0, 0, 45, 2, 0, 5, 0, 0, 93, 0, 0,
            0, 17, 4, 0, 2, 0,
        ];
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&(16 + payload.len() as u32).to_ne_bytes());
        bytes.extend_from_slice(&29u16.to_ne_bytes()); // RTM_DELNEIGH
        bytes.extend_from_slice(&0u16.to_ne_bytes());
        bytes.extend_from_slice(&7u32.to_ne_bytes());
        bytes.extend_from_slice(&0u32.to_ne_bytes());
        bytes.extend_from_slice(&payload);
        let out = parse_one(&bytes, None);
        let [Parsed::Event(SourceEvent::Neigh(n))] = &out[..] else {
            panic!("one neighbor expected: {out:?}");
        };
        assert_eq!(n.lladdr.get(), None, "{n:?}");

        let bytes = encode(
            neigh_msg(
                AddressFamily::Inet,
                vec![
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(Ipv4Addr::new(
                        10, 0, 0, 2,
                    ))),
                    NeighbourAttribute::LinkLayerAddress(vec![]),
                ],
            ),
            0,
            0,
        );
        let out = parse_one(&bytes, None);
        let [Parsed::Event(SourceEvent::Neigh(n))] = &out[..] else {
            panic!("one neighbor expected: {out:?}");
        };
        assert_eq!(n.lladdr.get(), None, "{n:?}");
    }

    /// Found by the `netlink_neigh` fuzz target: an NLMSG_ERROR on the dump socket whose code is
    /// `i32::MIN` overflowed the negation into errno (a panic where overflow is checked).
    #[test]
    fn an_error_code_that_cannot_be_negated_is_still_an_error() {
        let bytes = [
            0x14, 0, 0, 0, 0x02, 0, 0, 0, 0x07, 0, 0, 0, 0, 0x42, 0, 0, 0, 0, 0, 0x80,
        ];
        assert_eq!(
            parse_one(&bytes, Some(7)),
            vec![Parsed::DumpError {
                seq: 7,
                errno: i32::MAX
            }]
        );
    }
}
