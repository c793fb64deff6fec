//! Netlink messages the kernel here cannot produce (a real VRF master, unknown ifindexes,
//! malformed records), built in the test, parsed by the daemon's parser and run through the
//! real pipeline into a real Redis.

use std::sync::Arc;
use std::time::Duration;

use neighsyncd::core::engine::{Engine, EngineConfig};
use neighsyncd::core::neigh::SourceEvent;
use neighsyncd::core::rules::ConfigSnapshot;
use neighsyncd::core::source_health::Wanted;
use neighsyncd::pipeline::{Inputs, Outputs, Pipeline, PipelineConfig};
use neighsyncd::sonic::appdb::AppDb;
use neighsyncd::southbound::netlink::DumpRequester;
use neighsyncd::southbound::parse::{Parsed, encode, parse_datagram};
use neighsyncd::telemetry::health::Health;
use neighsyncd::telemetry::metrics::Metrics;
use neighsyncd_tests::kernel::entry;
use neighsyncd_tests::orchagent::Orchagent;
use neighsyncd_tests::redis_server::RedisServer;
use neighsyncd_tests::wait;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use tokio::sync::{mpsc, watch};

fn link(index: u32, name: &str, master: Option<u32>) -> Vec<u8> {
    let mut l = LinkMessage::default();
    l.header.index = index;
    l.header.flags = LinkFlags::Up | LinkFlags::Running;
    l.attributes.push(LinkAttribute::IfName(name.into()));
    if let Some(m) = master {
        l.attributes.push(LinkAttribute::Controller(m));
    }
    encode(RouteNetlinkMessage::NewLink(l), 0, 0)
}

fn neigh(
    ifindex: u32,
    ip: &str,
    mac: &[u8],
    state: NeighbourState,
    flags: NeighbourFlags,
) -> Vec<u8> {
    let mut n = NeighbourMessage::default();
    let ip: std::net::IpAddr = ip.parse().unwrap();
    n.header.family = if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    n.header.ifindex = ifindex;
    n.header.state = state;
    n.header.flags = flags;
    n.attributes.push(NeighbourAttribute::Destination(match ip {
        std::net::IpAddr::V4(a) => NeighbourAddress::Inet(a),
        std::net::IpAddr::V6(a) => NeighbourAddress::Inet6(a),
    }));
    n.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    encode(RouteNetlinkMessage::NewNeighbour(n), 0, 0)
}

fn events(bytes: &[u8]) -> Vec<SourceEvent> {
    let mut out = Vec::new();
    parse_datagram(
        bytes,
        None,
        neighsyncd::southbound::monotonic_ns(),
        &mut out,
    );
    out.into_iter()
        .filter_map(|p| match p {
            Parsed::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vrf_unknown_ifindex_and_malformed_records() {
    neighsyncd_tests::require_tool("redis-server", "vrf_unknown_ifindex_and_malformed_records");
    let redis = RedisServer::start();
    let metrics = Arc::new(Metrics::new());
    let (tx, rx) = mpsc::channel(1024);
    let (dumps, _requests) = DumpRequester::channel();
    let snapshot = ConfigSnapshot {
        evpn: true,
        ..Default::default()
    };
    let (_cfg_tx, cfg_rx) = watch::channel(Some(snapshot));
    let (stop_tx, stop_rx) = watch::channel(false);
    let pipeline = Pipeline::new(
        PipelineConfig {
            audit_interval: None,
            warm: None,
        },
        Engine::new(EngineConfig {
            batch_max: 1000,
            source: Wanted::Netlink,
            view: false,
        }),
        AppDb::new(&redis.db_url(0), 0, ":"),
        Inputs {
            read_back: None,
            ha: None,
            events: rx,
            config: cfg_rx,
            commands: None,
        },
        Outputs {
            sources: Arc::new(dumps),
            metrics: metrics.clone(),
            health: Arc::new(Health::default()),
            view: None,
        },
    );
    let task = tokio::spawn(pipeline.run(stop_rx));

    let mac = [2, 0, 0, 0, 0, 9];
    let mut feed = Vec::new();
    feed.extend(events(&link(30, "Vrf-blue", None)));
    feed.extend(events(&link(31, "Vlan2000", Some(30))));
    feed.push(SourceEvent::DumpStart {
        ts_ns: 0,
        fresh: true,
    });
    feed.push(SourceEvent::DumpDone);
    feed.extend(events(&neigh(
        31,
        "10.20.0.9",
        &mac,
        NeighbourState::Reachable,
        NeighbourFlags::empty(),
    )));
    feed.extend(events(&neigh(
        31,
        "2001:db8::9",
        &mac,
        NeighbourState::Noarp,
        NeighbourFlags::ExtLearned,
    )));
    // An ifindex no link message ever named: SONiC uses the decimal index.
    feed.extend(events(&neigh(
        4242,
        "10.30.0.1",
        &mac,
        NeighbourState::Permanent,
        NeighbourFlags::empty(),
    )));
    // Malformed: truncated header, a length past the end, an odd MAC length.
    feed.extend(events(&[1, 2, 3]));
    let mut bad = neigh(
        31,
        "10.20.0.10",
        &mac,
        NeighbourState::Reachable,
        NeighbourFlags::empty(),
    );
    bad[0..4].copy_from_slice(&9999u32.to_ne_bytes());
    feed.extend(events(&bad));
    feed.extend(events(&neigh(
        31,
        "10.20.0.11",
        &[1, 2, 3],
        NeighbourState::Reachable,
        NeighbourFlags::empty(),
    )));
    for e in feed {
        tx.send(e).await.unwrap();
    }

    let mut orch = Orchagent::new(redis.conn(0).await);
    wait::until(
        "built messages applied",
        Duration::from_secs(10),
        async || {
            let t = orch.sync().await;
            let want = [
                ("Vlan2000:10.20.0.9", entry("02:00:00:00:00:09", "IPv4")),
                ("Vlan2000:2001:db8::9", entry("02:00:00:00:00:09", "IPv6")),
                ("4242:10.30.0.1", entry("02:00:00:00:00:09", "IPv4")),
            ];
            for (k, v) in &want {
                if t.get(*k) != Some(v) {
                    return Err(format!("{k}: {:?} in {t:?}", t.get(*k)));
                }
            }
            if t.len() != want.len() {
                return Err(format!("unexpected entries: {t:?}"));
            }
            Ok(())
        },
    )
    .await;
    // EVPN + VRF master named Vrf*: the host route is deleted before each set.
    let mut routes: Vec<&str> = orch.routes_seen.iter().map(|(k, _)| k.as_str()).collect();
    routes.sort();
    assert_eq!(routes, vec!["Vrf-blue:10.20.0.9", "Vrf-blue:2001:db8::9"]);
    assert!(
        orch.routes_seen.iter().all(|(_, f)| f.is_empty()),
        "route ops must be deletes"
    );
    let text = metrics.render();
    for line in [
        "neighsyncd_malformed_input_total{reason=\"truncated_netlink_header\"} 1",
        "neighsyncd_malformed_input_total{reason=\"bad_netlink_length\"} 1",
        "neighsyncd_rule_skips_total{reason=\"bad_link_layer_address\"} 1",
        "neighsyncd_unknown_ifindex_total 1",
    ] {
        assert!(text.contains(line), "metrics lack {line}:\n{text}");
    }
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
