//! The service layer against a real view: pages, arguments, subscriptions and their chunks.

use std::sync::Arc;

use super::*;
use crate::core::key::LinkAddr;
use crate::core::neigh::KernelSide;
use crate::northbound::view::View;

fn side(mac: u8) -> KernelSide {
    KernelSide {
        vrf: None,
        lladdr: LinkAddr::new(Some(&[2, 0, 0, 0, 0, mac])),
        state: crate::core::neigh::nud::REACHABLE,
        classed: false,
        skip_reason: None,
    }
}

fn state(n: u8) -> ApiState {
    let view = Arc::new(View::new(16));
    for i in 0..n {
        let ifname = if i % 2 == 0 { "Ethernet0" } else { "Ethernet4" };
        let ip: IpAddr = format!("10.0.0.{i}").parse().unwrap();
        view.kernel_update(NeighKey::new(ifname, ip), side(i));
    }
    ApiState::for_tests(view)
}

#[test]
fn pages_walk_the_filtered_keys_once_in_order() {
    let s = state(25);
    let f = Filter {
        interface: Some("Ethernet4".into()),
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s.list(&f, after.as_deref(), Some(5)).unwrap();
        assert!(page.neighbors.len() <= 5);
        seen.extend(page.neighbors.iter().map(|r| r.key.clone()));
        match page.next_page_token {
            Some(t) => after = Some(t),
            None => break,
        }
    }
    // In key order: the addresses as values (10.0.0.9 before 10.0.0.11).
    let want: Vec<String> = (0..25u8)
        .filter(|i| i % 2 == 1)
        .map(|i| format!("Ethernet4:10.0.0.{i}"))
        .collect();
    assert_eq!(seen, want);
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    let s = state(1);
    let bad_family = Filter {
        family: Some("IPv5".into()),
        ..Default::default()
    };
    assert!(matches!(
        s.list(&bad_family, None, None),
        Err(ServiceError::InvalidArgument(m)) if m.contains("IPv4 or IPv6")
    ));
    assert!(matches!(
        s.list(&Filter::default(), None, Some(MAX_PAGE_SIZE + 1)),
        Err(ServiceError::InvalidArgument(_))
    ));
    for token in ["not a key", "NoSuchInterface:10.0.0.1", "Ethernet0:10.0.0"] {
        assert!(
            matches!(
                s.list(&Filter::default(), Some(token), None),
                Err(ServiceError::InvalidArgument(m)) if m.contains("page token")
            ),
            "{token}"
        );
    }
    assert!(matches!(
        s.get("Ethernet0", "not-an-ip", None),
        Err(ServiceError::InvalidArgument(_))
    ));
    assert!(matches!(
        s.get("Ethernet0", "10.9.9.9", None),
        Err(ServiceError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_subscription_starts_with_a_filtered_snapshot_then_changes() {
    let s = state(4);
    let f = Filter {
        interface: Some("Ethernet0".into()),
        ..Default::default()
    };
    let epoch = s.view.epoch().to_string();
    let mut sub = s.subscribe(f.clone(), None).unwrap();
    match sub.next().await {
        Some(Item::Snapshot { seq, neighbors, .. }) => {
            assert_eq!(seq, 4);
            assert_eq!(neighbors.len(), 2);
        }
        _ => panic!("expected a snapshot first"),
    }
    match sub.next().await {
        Some(Item::SnapshotEnd {
            seq,
            count,
            epoch: e,
        }) => {
            assert_eq!((seq, count), (4, 2));
            assert_eq!(e, epoch);
        }
        _ => panic!("expected the snapshot's end"),
    }
    s.view
        .kernel_remove(NeighKey::parse("Ethernet4:10.0.0.1").unwrap()); // filtered out
    s.view
        .kernel_remove(NeighKey::parse("Ethernet0:10.0.0.2").unwrap());
    match sub.next().await {
        Some(Item::Change(c)) => assert_eq!(c.record.key, "Ethernet0:10.0.0.2"),
        _ => panic!("expected the matching change"),
    }
    // Resuming from seq 4 of this instance replays the matching removal.
    let mut resumed = s.subscribe(f.clone(), Some((&epoch, 4))).unwrap();
    match resumed.next().await {
        Some(Item::Change(c)) => assert_eq!(c.seq, 6),
        _ => panic!("expected the missed change"),
    }
    // The same sequence number from another instance means nothing here: a snapshot.
    let mut other = s.subscribe(f, Some(("0123456789abcdef", 4))).unwrap();
    assert!(matches!(other.next().await, Some(Item::Snapshot { .. })));
}

#[tokio::test]
async fn a_large_snapshot_comes_in_bounded_chunks_in_key_order() {
    let view = Arc::new(View::new(16));
    let n = 3 * SNAPSHOT_CHUNK + 7;
    for i in 0..n {
        let ip: IpAddr = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255)
            .parse()
            .unwrap();
        view.kernel_update(NeighKey::new("Ethernet0", ip), side(1));
    }
    let mut s = state(0);
    s.view = view;
    let mut sub = s.subscribe(Filter::default(), None).unwrap();
    let mut keys = Vec::new();
    loop {
        match sub.next().await {
            Some(Item::Snapshot { neighbors, .. }) => {
                assert!(neighbors.len() <= SNAPSHOT_CHUNK);
                keys.extend(neighbors.into_iter().map(|r| r.key));
            }
            Some(Item::SnapshotEnd { count, .. }) => {
                assert_eq!(count as usize, n);
                break;
            }
            _ => panic!("expected snapshot chunks, then the end"),
        }
    }
    // Key order: by interface, then address (as values: 10.0.0.9 before 10.0.0.10).
    let mut sorted = keys.clone();
    sorted.sort_by_key(|k| NeighKey::parse_existing(k).unwrap());
    sorted.dedup();
    assert_eq!(keys, sorted, "every key once, in key order");
    assert_eq!(keys.len(), n);
}
