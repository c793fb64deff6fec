//! The state's unit tests: events, dumps, batches, read-backs and knobs, one behaviour each.
//!
//! Longer than 450 lines because each test is a short, independent story over the same few
//! fixtures (`msg`, `links`, `cfg`); splitting them would scatter the fixtures, not the logic.

use super::*;
use crate::core::neigh::{LinkMsg, nud};

const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

fn links() -> LinkCache {
    let mut l = LinkCache::default();
    for (i, n) in [(2, "Ethernet0"), (3, "Ethernet4")] {
        l.apply(&LinkMsg {
            ifindex: i,
            name: n.into(),
            master: None,
            oper_up: true,
            deleted: false,
        });
    }
    l
}

fn msg(
    kind: NeighKind,
    ifindex: u32,
    ip: &str,
    mac: [u8; 6],
    state: u16,
    origin: Origin,
) -> NeighMsg {
    NeighMsg {
        kind,
        ifindex,
        ip: ip.parse().unwrap(),
        lladdr: LinkAddr::new(Some(&mac[..])),
        state,
        flags: 0,
        origin,
    }
}

fn live(ts: u64) -> Origin {
    Origin::Live { ts_ns: ts }
}

/// Takes and commits everything; returns the ops.
fn flush(s: &mut State) -> Vec<Op> {
    let (b, _) = s.take_batch(usize::MAX);
    let ops = b.ops.clone();
    s.commit(b);
    ops
}

fn set_op(key: &str, mac: &str, fam: &str) -> Op {
    Op::Set {
        key: key.into(),
        value: NeighValue {
            mac: Mac::parse(mac).expect("a MAC"),
            ipv6: fam == "IPv6",
        },
    }
}

#[test]
fn flaps_with_the_same_mac_write_nothing() {
    let (l, c) = (links(), ConfigSnapshot::default());
    let mut s = State::default();
    s.apply(
        &msg(NeighKind::New, 2, "10.0.0.2", A, nud::REACHABLE, live(1)),
        &l,
        &c,
        1,
    );
    assert_eq!(
        flush(&mut s),
        vec![set_op("Ethernet0:10.0.0.2", "02:00:00:00:00:0a", "IPv4")]
    );
    for (i, st) in [nud::STALE, nud::DELAY, nud::PROBE, nud::REACHABLE]
        .into_iter()
        .enumerate()
    {
        s.apply(
            &msg(NeighKind::New, 2, "10.0.0.2", A, st, live(2 + i as u64)),
            &l,
            &c,
            2,
        );
    }
    let (b, noop) = s.take_batch(usize::MAX);
    assert!(b.is_empty());
    assert_eq!(noop, 1);
    // A MAC change is written.
    s.apply(
        &msg(NeighKind::New, 2, "10.0.0.2", B, nud::REACHABLE, live(9)),
        &l,
        &c,
        9,
    );
    assert_eq!(
        flush(&mut s),
        vec![set_op("Ethernet0:10.0.0.2", "02:00:00:00:00:0b", "IPv4")]
    );
}

#[test]
fn add_then_delete_before_a_flush_writes_nothing_new() {
    let (l, c) = (links(), ConfigSnapshot::default());
    let mut s = State::default();
    s.apply(
        &msg(NeighKind::New, 2, "10.0.0.2", A, nud::REACHABLE, live(1)),
        &l,
        &c,
        1,
    );
    s.apply(
        &msg(NeighKind::Del, 2, "10.0.0.2", A, nud::REACHABLE, live(2)),
        &l,
        &c,
        2,
    );
    assert!(flush(&mut s).is_empty());
    // Delete then re-add with the value APPL_DB already holds: nothing either.
    s.apply(
        &msg(NeighKind::New, 2, "10.0.0.2", A, nud::REACHABLE, live(3)),
        &l,
        &c,
        3,
    );
    flush(&mut s);
    s.apply(
        &msg(NeighKind::Del, 2, "10.0.0.2", A, nud::REACHABLE, live(4)),
        &l,
        &c,
        4,
    );
    s.apply(
        &msg(NeighKind::New, 2, "10.0.0.2", A, nud::REACHABLE, live(5)),
        &l,
        &c,
        5,
    );
    assert!(flush(&mut s).is_empty());
}

#[test]
fn a_dump_entry_never_overrides_a_newer_live_event() {
    let (l, c) = (links(), ConfigSnapshot::default());
    let mut s = State::default();
    s.dump_start(100, true);
    // A live change at t=150 (after the dump began), then the dump's older view of the key.
    s.apply(
        &msg(NeighKind::New, 2, "10.0.0.2", B, nud::REACHABLE, live(150)),
        &l,
        &c,
        150,
    );
    let a = s.apply(
        &msg(NeighKind::New, 2, "10.0.0.2", A, nud::STALE, Origin::Dump),
        &l,
        &c,
        151,
    );
    assert!(a.superseded);
    s.dump_done(&c, 152);
    assert_eq!(
        flush(&mut s),
        vec![set_op("Ethernet0:10.0.0.2", "02:00:00:00:00:0b", "IPv4")]
    );
    // Events from before the dump do not shield a key: the dump's newer view wins.
    s.dump_start(200, true);
    s.apply(
        &msg(NeighKind::New, 2, "10.0.0.2", A, nud::STALE, Origin::Dump),
        &l,
        &c,
        201,
    );
    s.dump_done(&c, 202);
    assert_eq!(
        flush(&mut s),
        vec![set_op("Ethernet0:10.0.0.2", "02:00:00:00:00:0a", "IPv4")]
    );
}

#[test]
fn dump_done_sweeps_what_vanished_but_keeps_what_was_touched() {
    let (l, c) = (links(), ConfigSnapshot::default());
    let mut s = State::default();
    for (ip, ts) in [("10.0.0.2", 1), ("10.0.0.3", 2), ("10.0.0.4", 3)] {
        s.apply(
            &msg(NeighKind::New, 2, ip, A, nud::REACHABLE, live(ts)),
            &l,
            &c,
            ts,
        );
    }
    flush(&mut s);
    s.dump_start(10, true);
    s.apply(
        &msg(
            NeighKind::New,
            2,
            "10.0.0.2",
            A,
            nud::REACHABLE,
            Origin::Dump,
        ),
        &l,
        &c,
        11,
    );
    // .4 is re-added live after the dump started: the dump may have missed it.
    s.apply(
        &msg(NeighKind::New, 2, "10.0.0.4", A, nud::REACHABLE, live(12)),
        &l,
        &c,
        12,
    );
    assert_eq!(s.dump_done(&c, 13), 1);
    assert_eq!(
        flush(&mut s),
        vec![Op::Del {
            key: "Ethernet0:10.0.0.3".into()
        }]
    );
    assert!(s.kernel_entry(2, &"10.0.0.3".parse().unwrap()).is_none());
}

#[test]
fn startup_writes_only_the_difference_with_appl_db() {
    let (l, c) = (links(), ConfigSnapshot::default());
    let mut s = State::default();
    let mut told = HashMap::new();
    let f = |mac: &str, fam: &str| -> Fields {
        [
            ("neigh".to_string(), mac.to_string()),
            ("family".to_string(), fam.to_string()),
        ]
        .into()
    };
    told.insert(
        "Ethernet0:10.0.0.2".to_string(),
        Told::from_fields(&f("02:00:00:00:00:0a", "IPv4")),
    );
    told.insert(
        "Ethernet0:10.0.0.3".to_string(),
        Told::from_fields(&f("02:00:00:00:00:0a", "IPv4")),
    );
    told.insert(
        "Ethernet0:10.0.0.5".to_string(),
        Told::from_fields(&f("garbage", "IPv4")),
    );
    s.replace_told(
        told.into_iter()
            .map(|(k, t)| (NeighKey::from_appl_db(&k), t)),
        true,
        0,
    );
    s.dump_start(1, true);
    s.apply(
        &msg(
            NeighKind::New,
            2,
            "10.0.0.2",
            A,
            nud::REACHABLE,
            Origin::Dump,
        ),
        &l,
        &c,
        2,
    );
    s.apply(
        &msg(
            NeighKind::New,
            2,
            "10.0.0.4",
            B,
            nud::REACHABLE,
            Origin::Dump,
        ),
        &l,
        &c,
        2,
    );
    s.dump_done(&c, 3);
    let mut ops = flush(&mut s);
    ops.sort_by(|a, b| a.key().cmp(b.key()));
    assert_eq!(
        ops,
        vec![
            Op::Del {
                key: "Ethernet0:10.0.0.3".into()
            },
            set_op("Ethernet0:10.0.0.4", "02:00:00:00:00:0b", "IPv4"),
            Op::Del {
                key: "Ethernet0:10.0.0.5".into()
            },
        ]
    );
}

#[test]
fn skipped_entries_keep_what_appl_db_holds_across_a_restart() {
    // EVPN: a neighbor in PROBE is skipped, but it still exists: its APPL_DB entry stays.
    let l = links();
    let c = ConfigSnapshot {
        evpn: true,
        ..Default::default()
    };
    let mut s = State::default();
    let fields: Fields = [
        ("neigh".to_string(), "02:00:00:00:00:0a".to_string()),
        ("family".to_string(), "IPv4".to_string()),
    ]
    .into();
    s.replace_told(
        [(
            NeighKey::from_appl_db("Ethernet0:10.0.0.2"),
            Told::from_fields(&fields),
        )],
        true,
        0,
    );
    s.dump_start(1, true);
    s.apply(
        &msg(NeighKind::New, 2, "10.0.0.2", A, nud::PROBE, Origin::Dump),
        &l,
        &c,
        2,
    );
    s.dump_done(&c, 3);
    assert!(flush(&mut s).is_empty());
}

#[test]
fn redis_restart_rewrites_everything_desired() {
    let (l, c) = (links(), ConfigSnapshot::default());
    let mut s = State::default();
    s.apply(
        &msg(NeighKind::New, 2, "10.0.0.2", A, nud::REACHABLE, live(1)),
        &l,
        &c,
        1,
    );
    s.apply(
        &msg(NeighKind::New, 3, "2000::2", B, nud::REACHABLE, live(1)),
        &l,
        &c,
        1,
    );
    flush(&mut s);
    // Redis came back empty.
    s.replace_told(Vec::new(), false, 5);
    let mut ops = flush(&mut s);
    ops.sort_by(|a, b| a.key().cmp(b.key()));
    assert_eq!(
        ops,
        vec![
            set_op("Ethernet0:10.0.0.2", "02:00:00:00:00:0a", "IPv4"),
            set_op("Ethernet4:2000::2", "02:00:00:00:00:0b", "IPv6"),
        ]
    );
}

#[test]
fn failed_batches_stay_pending() {
    let (l, c) = (links(), ConfigSnapshot::default());
    let mut s = State::default();
    s.apply(
        &msg(NeighKind::New, 2, "10.0.0.2", A, nud::REACHABLE, live(1)),
        &l,
        &c,
        1,
    );
    let (b, _) = s.take_batch(10);
    assert_eq!(b.ops.len(), 1);
    s.abort(b);
    assert_eq!(s.pending(), 1);
    assert_eq!(flush(&mut s).len(), 1);
    assert_eq!(s.pending(), 0);
}

#[test]
fn renames_move_keys_and_link_removal_deletes() {
    let (mut l, c) = (links(), ConfigSnapshot::default());
    let mut s = State::default();
    s.apply(
        &msg(NeighKind::New, 2, "10.0.0.2", A, nud::REACHABLE, live(1)),
        &l,
        &c,
        1,
    );
    flush(&mut s);
    l.apply(&LinkMsg {
        ifindex: 2,
        name: "Ethernet8".into(),
        master: None,
        oper_up: true,
        deleted: false,
    });
    s.rename(2, "Ethernet8", &l, &c, 2);
    let mut ops = flush(&mut s);
    ops.sort_by(|a, b| a.key().cmp(b.key()));
    assert_eq!(
        ops,
        vec![
            Op::Del {
                key: "Ethernet0:10.0.0.2".into()
            },
            set_op("Ethernet8:10.0.0.2", "02:00:00:00:00:0a", "IPv4"),
        ]
    );
    // The link goes; a late DELNEIGH would find no name, so the removal itself deletes.
    s.link_removed(2, &c, 3);
    assert_eq!(
        flush(&mut s),
        vec![Op::Del {
            key: "Ethernet8:10.0.0.2".into()
        }]
    );
    // A delete for the vanished entry afterwards uses the decimal name and changes nothing.
    l.apply(&LinkMsg {
        ifindex: 2,
        name: String::new(),
        master: None,
        oper_up: false,
        deleted: true,
    });
    s.apply(
        &msg(NeighKind::Del, 2, "10.0.0.2", A, nud::REACHABLE, live(4)),
        &l,
        &c,
        4,
    );
    assert!(flush(&mut s).is_empty());
}

#[test]
fn link_local_knob_replays_existing_neighbors() {
    let l = links();
    let mut c = ConfigSnapshot::default();
    let mut s = State::default();
    s.apply(
        &msg(NeighKind::New, 2, "fe80::2", A, nud::REACHABLE, live(1)),
        &l,
        &c,
        1,
    );
    s.apply(
        &msg(NeighKind::New, 3, "fe80::3", A, nud::REACHABLE, live(1)),
        &l,
        &c,
        1,
    );
    assert!(flush(&mut s).is_empty());
    c.link_local.insert("Ethernet0".into());
    s.reevaluate(
        |_, e| {
            e.ifname.as_str() == "Ethernet0"
                && matches!(e.verdict, Verdict::Skip(SkipReason::LinkLocalV6Disabled))
        },
        &l,
        &c,
        2,
    );
    assert_eq!(
        flush(&mut s),
        vec![set_op("Ethernet0:fe80::2", "02:00:00:00:00:0a", "IPv6")]
    );
}

#[test]
fn an_older_live_event_applied_during_a_dump_does_not_keep_a_vanished_entry() {
    let (l, c) = (links(), ConfigSnapshot::default());
    let mut s = State::default();
    s.dump_start(100, true);
    // Queued before the dump began, applied during it; the dump does not have the entry.
    s.apply(
        &msg(NeighKind::New, 2, "10.0.0.9", A, nud::REACHABLE, live(50)),
        &l,
        &c,
        101,
    );
    assert_eq!(s.dump_done(&c, 102), 1);
    assert!(s.kernel_entry(2, &"10.0.0.9".parse().unwrap()).is_none());
    assert!(flush(&mut s).is_empty(), "nothing was ever written for it");
}

#[test]
fn a_dump_entry_read_before_a_live_delete_does_not_bring_it_back() {
    // The dump and the live events come over different channels: the dump's view of an entry
    // can arrive after the live delete that followed it.
    let (l, c) = (links(), ConfigSnapshot::default());
    let mut s = State::default();
    s.apply(
        &msg(NeighKind::New, 2, "10.0.0.7", A, nud::REACHABLE, live(10)),
        &l,
        &c,
        10,
    );
    assert_eq!(
        flush(&mut s),
        vec![set_op("Ethernet0:10.0.0.7", "02:00:00:00:00:0a", "IPv4")]
    );
    s.dump_start(100, true);
    s.apply(
        &msg(NeighKind::Del, 2, "10.0.0.7", A, nud::REACHABLE, live(150)),
        &l,
        &c,
        150,
    );
    let a = s.apply(
        &msg(
            NeighKind::New,
            2,
            "10.0.0.7",
            A,
            nud::REACHABLE,
            Origin::Dump,
        ),
        &l,
        &c,
        151,
    );
    assert!(a.superseded);
    s.dump_done(&c, 152);
    assert_eq!(
        flush(&mut s),
        vec![Op::Del {
            key: "Ethernet0:10.0.0.7".into()
        }]
    );
    // A delete from before the window does not shield the key: the dump's view wins.
    s.dump_start(200, true);
    s.apply(
        &msg(
            NeighKind::New,
            2,
            "10.0.0.7",
            B,
            nud::REACHABLE,
            Origin::Dump,
        ),
        &l,
        &c,
        201,
    );
    s.dump_done(&c, 202);
    assert_eq!(
        flush(&mut s),
        vec![set_op("Ethernet0:10.0.0.7", "02:00:00:00:00:0b", "IPv4")]
    );
}

#[test]
fn neighbors_heard_before_their_link_take_its_name_once_it_is_known() {
    let (mut l, c) = (links(), ConfigSnapshot::default());
    let mut s = State::default();
    let a = s.apply(
        &msg(NeighKind::New, 9, "10.0.9.2", A, nud::REACHABLE, live(10)),
        &l,
        &c,
        10,
    );
    assert!(a.unknown_ifindex);
    assert_eq!(
        flush(&mut s),
        vec![set_op("9:10.0.9.2", "02:00:00:00:00:0a", "IPv4")],
        "named by its ifindex, as upstream does"
    );
    l.apply(&LinkMsg {
        ifindex: 9,
        name: "Ethernet9".into(),
        master: None,
        oper_up: true,
        deleted: false,
    });
    s.link_added(9, "Ethernet9", &l, &c, 11);
    let mut ops = flush(&mut s);
    ops.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        ops,
        vec![
            Op::Del {
                key: "9:10.0.9.2".into()
            },
            set_op("Ethernet9:10.0.9.2", "02:00:00:00:00:0a", "IPv4"),
        ]
    );
    // A known link seen again changes nothing.
    s.link_added(9, "Ethernet9", &l, &c, 12);
    assert!(flush(&mut s).is_empty());
}

/// A due key is a flag on its slot's position, and the writer goes round the positions from
/// where its last batch stopped: keys marked again and again ahead of it do not starve one
/// further on.
#[test]
fn the_writer_goes_round_the_due_keys() {
    let (l, c) = (links(), ConfigSnapshot::default());
    let mut s = State::default();
    let mac = |i: u8| [2, 0, 0, 0, 1, i];
    for i in 0..8u8 {
        let ip = format!("10.0.0.{}", i + 2);
        s.apply(
            &msg(NeighKind::New, 2, &ip, mac(i), nud::REACHABLE, live(1)),
            &l,
            &c,
            1,
        );
    }
    let mut written = std::collections::BTreeSet::new();
    for round in 0..4u8 {
        let (b, _) = s.take_batch(2);
        assert_eq!(b.ops.len(), 2);
        for op in &b.ops {
            written.insert(op.key().to_string());
        }
        s.commit(b);
        // The first two keys change again after every batch.
        for i in 0..2u8 {
            let ip = format!("10.0.0.{}", i + 2);
            let m = [2, 0, 0, 0, 2 + round, i];
            s.apply(
                &msg(NeighKind::New, 2, &ip, m, nud::REACHABLE, live(2)),
                &l,
                &c,
                2,
            );
        }
    }
    assert_eq!(
        written.len(),
        8,
        "every key written within one round: {written:?}"
    );
    assert_eq!(flush(&mut s).len(), 2);
    assert_eq!(s.pending(), 0);
}
