//! The view: sequencing, no-op suppression, resume, lag, waking.

use super::*;

fn side(mac: u8, state: u16) -> KernelSide {
    KernelSide {
        vrf: None,
        lladdr: crate::core::key::LinkAddr::new(Some(&[2, 0, 0, 0, 0, mac])),
        state,
        classed: false,
        skip_reason: None,
    }
}

fn key() -> NeighKey {
    NeighKey::parse("Ethernet0:10.0.0.2").unwrap()
}

#[test]
fn changes_are_sequenced_and_snapshots_consistent() {
    use crate::core::neigh::nud::{REACHABLE, STALE};
    let v = Arc::new(View::new(16));
    let (seq0, mut rx) = v.subscribe();
    assert_eq!((seq0, v.page(None, 10, 10, |_| true).records.len()), (0, 0));
    assert_eq!(v.epoch().len(), 16);
    assert_ne!(
        v.epoch(),
        View::new(4).epoch(),
        "each view is an instance of its own"
    );
    v.kernel_update(key(), side(1, REACHABLE));
    v.appl_update(
        key(),
        Some(NeighValue {
            mac: Mac([2, 0, 0, 0, 0, 1]),
            ipv6: false,
        }),
    );
    // Same content again: no change, and `last_changed` stays.
    let stamped = v.get(&key()).unwrap().last_changed;
    std::thread::sleep(std::time::Duration::from_millis(1100));
    v.kernel_update(key(), side(1, REACHABLE));
    assert_eq!(v.get(&key()).unwrap().last_changed, stamped);
    let c1 = rx.try_recv().unwrap().unwrap();
    let c2 = rx.try_recv().unwrap().unwrap();
    assert!(rx.try_recv().is_none());
    assert_eq!((c1.seq, c2.seq), (1, 2));
    assert_eq!(c2.record.appl_db_mac.as_deref(), Some("02:00:00:00:00:01"));
    v.kernel_remove(key());
    v.appl_update(key(), None);
    let last = rx.try_recv().unwrap().unwrap();
    let removed = rx.try_recv().unwrap().unwrap();
    assert_eq!(last.kind, ChangeKind::Upsert);
    assert_eq!(removed.kind, ChangeKind::Remove);
    assert_eq!(
        removed.record.ip,
        "10.0.0.2".parse::<std::net::IpAddr>().unwrap()
    );
    assert!(v.get(&key()).is_none());
    // Resume: within history, and beyond it.
    let mut resumed = v.resume(2).unwrap();
    assert_eq!(resumed.try_recv().unwrap().unwrap().seq, 3);
    assert_eq!(resumed.try_recv().unwrap().unwrap().seq, 4);
    assert!(resumed.try_recv().is_none());
    for i in 0..20u8 {
        v.kernel_update(key(), side(i + 10, STALE));
    }
    assert!(v.resume(1).is_none());
    assert!(v.resume(v.seq()).unwrap().try_recv().is_none());
    // The subscriber that stopped reading at 4 learns it lagged, once, then goes on.
    assert_eq!(rx.try_recv(), Some(Err(Lagged(4))));
    assert_eq!(rx.try_recv().unwrap().unwrap().seq, 9);
}

#[test]
fn a_waiting_subscriber_wakes_for_the_next_change() {
    let v = Arc::new(View::new(16));
    let (_, mut rx) = v.subscribe();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let writer = v.clone();
        let waiting = tokio::spawn(async move { rx.recv().await.map(|c| c.seq) });
        tokio::task::yield_now().await;
        writer.kernel_update(key(), side(1, crate::core::neigh::nud::REACHABLE));
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), waiting).await;
        assert_eq!(got.unwrap().unwrap(), Ok(1));
    });
}

/// Changes made while no one subscribes wake no one (the view skips the wake-up); a
/// subscriber that comes while a writer runs on another thread still sees every change after
/// its starting point, and wakes for the last.
#[test]
fn subscribers_that_come_while_changes_go_on_miss_nothing() {
    let v = Arc::new(View::new(1 << 16));
    for mac in 0..3 {
        v.kernel_update(key(), side(mac, crate::core::neigh::nud::REACHABLE));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        const CHANGES: u64 = 20_000;
        let writer = v.clone();
        let writing = std::thread::spawn(move || {
            for i in 0..CHANGES {
                let state = if i % 2 == 0 {
                    crate::core::neigh::nud::STALE
                } else {
                    crate::core::neigh::nud::REACHABLE
                };
                writer.kernel_update(key(), side((i % 200) as u8, state));
            }
        });
        let mut readers = Vec::new();
        for _ in 0..8 {
            let (from, mut rx) = v.subscribe();
            readers.push(tokio::spawn(async move {
                let mut next = from + 1;
                while next <= 3 + CHANGES {
                    let c = rx.recv().await.expect("the history holds every change");
                    assert_eq!(c.seq, next, "changes in order, none missed");
                    next += 1;
                }
            }));
            tokio::task::yield_now().await;
        }
        for r in readers {
            tokio::time::timeout(std::time::Duration::from_secs(30), r)
                .await
                .expect("every subscriber reaches the last change")
                .unwrap();
        }
        writing.join().unwrap();
    });
}

#[test]
fn moves_within_a_state_class_are_no_change_where_only_the_class_is_known() {
    use crate::core::neigh::nud::{REACHABLE, STALE};
    let v = Arc::new(View::new(16));
    let classed = |state| KernelSide {
        classed: true,
        ..side(1, state)
    };
    v.kernel_update(key(), classed(REACHABLE));
    v.kernel_update(key(), classed(STALE));
    assert_eq!(v.seq(), 1);
    v.kernel_update(key(), side(1, STALE));
    assert_eq!(v.seq(), 2, "the exact state is news");
}

#[test]
fn partitions_keep_the_same_key_apart_and_name_their_namespace() {
    use crate::core::neigh::nud::REACHABLE;
    let v = Arc::new(View::for_namespaces(
        16,
        vec!["asic0".into(), "asic1".into()],
    ));
    let (_, mut rx) = v.subscribe();
    v.part(1).kernel_update(key(), side(2, REACHABLE));
    v.part(0).kernel_update(key(), side(1, REACHABLE));
    let page = v.page(None, 10, 10, |_| true);
    let seen: Vec<(Option<&str>, &str, Option<&str>)> = page
        .records
        .iter()
        .map(|r| {
            (
                r.namespace.as_deref(),
                r.key.as_str(),
                r.kernel_mac.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                Some("asic0"),
                "Ethernet0:10.0.0.2",
                Some("02:00:00:00:00:01")
            ),
            (
                Some("asic1"),
                "Ethernet0:10.0.0.2",
                Some("02:00:00:00:00:02")
            ),
        ],
        "one record per namespace, in namespace order"
    );
    let first = rx.try_recv().unwrap().unwrap();
    assert_eq!(first.record.namespace.as_deref(), Some("asic1"));
    // Page tokens carry the partition.
    let k1 = key().in_partition(1).unwrap();
    assert_eq!(v.token(&k1), "1/Ethernet0:10.0.0.2");
    assert_eq!(v.parse_token(&v.token(&k1)), Some(k1));
    assert_eq!(v.parse_token(&v.token(&key())), Some(key()));
    assert_eq!(v.partition_of("asic1"), Some(1));
    // One namespace's removal leaves the other's.
    v.part(0).kernel_remove(key());
    assert!(v.get(&key()).is_none());
    assert!(v.get(&k1).is_some());
}

#[test]
fn a_neighbor_costs_the_view_48_bytes_and_a_change_52() {
    assert_eq!(std::mem::size_of::<(NeighKey, Facts)>(), 48);
    assert_eq!(std::mem::size_of::<Delta>(), 52);
}

#[test]
fn the_coarse_clock_tells_the_unix_time_to_the_second() {
    let precise = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let coarse = u64::from(unix_s_now());
    assert!(coarse.abs_diff(precise) <= 1, "{coarse} vs {precise}");
}
