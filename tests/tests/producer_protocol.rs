//! The exact Redis effects of the ProducerStateTable protocol, checked against a real Redis:
//! staging hashes, key set, del set, and the channel notification.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use neighsyncd::core::rules::{Mac, NeighValue};
use neighsyncd::sonic::appdb::{Op, ProducerStateTable};
use neighsyncd::sonic::consumer::ConsumerStateTable;
use neighsyncd_tests::redis_server::RedisServer;

fn set(key: &str, mac: &str) -> Op {
    Op::Set {
        key: key.into(),
        value: NeighValue {
            mac: Mac::parse(mac).expect("a MAC"),
            ipv6: false,
        },
    }
}

async fn members(c: &mut redis::aio::MultiplexedConnection, key: &str) -> BTreeSet<String> {
    redis::cmd("SMEMBERS")
        .arg(key)
        .query_async(c)
        .await
        .unwrap()
}

async fn hash(c: &mut redis::aio::MultiplexedConnection, key: &str) -> BTreeMap<String, String> {
    redis::cmd("HGETALL").arg(key).query_async(c).await.unwrap()
}

#[tokio::test]
async fn set_del_and_clear_have_sonic_effects() {
    neighsyncd_tests::require_tool("redis-server", "set_del_and_clear_have_sonic_effects");
    let redis = RedisServer::start();
    let mut c = redis.conn(0).await;
    let client = redis::Client::open(redis.db_url(0)).unwrap();
    let mut sub = client.get_async_pubsub().await.unwrap();
    sub.subscribe("NEIGH_TABLE_CHANNEL@0").await.unwrap();
    let mut messages = sub.into_on_message();

    let p = ProducerStateTable::new("NEIGH_TABLE", 0, ":");
    p.load_scripts(&mut c).await.unwrap();
    let wc = c.clone();
    let write = |ops: Vec<Op>| {
        let p = p.clone();
        let mut c = wc.clone();
        async move {
            let mut pipe = redis::pipe();
            p.append(&mut pipe, &ops, None);
            pipe.query_async::<()>(&mut c).await.unwrap();
        }
    };

    // set: SADD key set, HSET staging hash, PUBLISH "G".
    write(vec![set("Ethernet0:10.0.0.2", "00:11:22:33:44:55")]).await;
    assert_eq!(
        members(&mut c, "NEIGH_TABLE_KEY_SET").await,
        ["Ethernet0:10.0.0.2".to_string()].into()
    );
    assert_eq!(
        hash(&mut c, "_NEIGH_TABLE:Ethernet0:10.0.0.2").await,
        [
            ("neigh".to_string(), "00:11:22:33:44:55".to_string()),
            ("family".to_string(), "IPv4".to_string())
        ]
        .into()
    );
    let msg = tokio::time::timeout(Duration::from_secs(5), messages.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg.get_channel_name(), "NEIGH_TABLE_CHANNEL@0");
    assert_eq!(msg.get_payload::<String>().unwrap(), "G");

    // A second set of the same unconsumed key: no new notification (SADD added nothing).
    write(vec![set("Ethernet0:10.0.0.2", "00:11:22:33:44:66")]).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), messages.next())
            .await
            .is_err()
    );

    // del: SADD key set, SADD del set, DEL staging hash.
    write(vec![Op::Del {
        key: "Ethernet0:10.0.0.3".into(),
    }])
    .await;
    assert!(
        members(&mut c, "NEIGH_TABLE_DEL_SET")
            .await
            .contains("Ethernet0:10.0.0.3")
    );
    assert!(
        hash(&mut c, "_NEIGH_TABLE:Ethernet0:10.0.0.3")
            .await
            .is_empty()
    );
    let msg = tokio::time::timeout(Duration::from_secs(5), messages.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg.get_payload::<String>().unwrap(), "G");

    // The consumer (orchagent) sees the last set and the delete.
    let consumer = ConsumerStateTable::new("NEIGH_TABLE", ":");
    let mut popped = consumer.pop_all(&mut c).await.unwrap();
    popped.sort();
    assert_eq!(popped.len(), 2);
    assert_eq!(popped[0].0, "Ethernet0:10.0.0.2");
    assert!(
        popped[0]
            .1
            .contains(&("neigh".to_string(), "00:11:22:33:44:66".to_string()))
    );
    assert_eq!(popped[1], ("Ethernet0:10.0.0.3".to_string(), vec![]));
    assert_eq!(
        hash(&mut c, "NEIGH_TABLE:Ethernet0:10.0.0.2")
            .await
            .get("neigh")
            .unwrap(),
        "00:11:22:33:44:66"
    );

    // Batches equal one-by-one application: set, del, set again of one key in one script.
    write(vec![
        set("Ethernet0:10.0.0.9", "00:00:00:00:00:01"),
        Op::Del {
            key: "Ethernet0:10.0.0.9".into(),
        },
        set("Ethernet0:10.0.0.9", "00:00:00:00:00:02"),
    ])
    .await;
    assert!(
        members(&mut c, "NEIGH_TABLE_DEL_SET")
            .await
            .contains("Ethernet0:10.0.0.9")
    );
    assert_eq!(
        hash(&mut c, "_NEIGH_TABLE:Ethernet0:10.0.0.9")
            .await
            .get("neigh")
            .unwrap(),
        "00:00:00:00:00:02"
    );

    // clear: key set, staging hashes, del set all gone; the table itself untouched.
    p.clear(&mut c).await.unwrap();
    let keys: BTreeSet<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(keys, ["NEIGH_TABLE:Ethernet0:10.0.0.2".to_string()].into());
}

/// The read-back (at start, after a reconnect, at every audit, and the warm reconcile) sees
/// what orchagent will hold once it has consumed the staging: the table with pending sets and
/// deletes applied on top. Upstream's reconcile reads `NEIGH_TABLE:*` only
/// (docs/BEHAVIOR_DIFFERENCES.md).
#[tokio::test]
async fn the_read_back_applies_what_is_staged_but_not_consumed() {
    use neighsyncd::core::Told;
    use neighsyncd::core::rules::{Mac, NeighValue};
    use neighsyncd::sonic::appdb::AppDb;

    neighsyncd_tests::require_tool(
        "redis-server",
        "the_read_back_applies_what_is_staged_but_not_consumed",
    );
    let redis = RedisServer::start();
    let mut c = redis.conn(0).await;
    let p = ProducerStateTable::new("NEIGH_TABLE", 0, ":");
    p.load_scripts(&mut c).await.unwrap();
    let write = async |c: &mut redis::aio::MultiplexedConnection, ops: Vec<Op>| {
        let mut pipe = redis::pipe();
        p.append(&mut pipe, &ops, None);
        pipe.query_async::<()>(c).await.unwrap();
    };
    // Consumed: .2 and .3 in the table.
    write(
        &mut c,
        vec![
            set("Ethernet0:10.0.0.2", "00:00:00:00:00:02"),
            set("Ethernet0:10.0.0.3", "00:00:00:00:00:03"),
        ],
    )
    .await;
    let mut orch = neighsyncd_tests::orchagent::Orchagent::new(redis.conn(0).await);
    let table = orch.sync().await;
    assert_eq!(table.len(), 2, "{table:?}");
    // Staged, not consumed: .2 deleted, .3 changed, .4 added.
    write(
        &mut c,
        vec![
            Op::Del {
                key: "Ethernet0:10.0.0.2".into(),
            },
            set("Ethernet0:10.0.0.3", "00:00:00:00:00:33"),
            set("Ethernet0:10.0.0.4", "00:00:00:00:00:04"),
        ],
    )
    .await;
    let mut appdb = AppDb::new(&redis.db_url(0), 0, ":");
    appdb.connect().await.unwrap();
    let got: BTreeMap<String, Told> = appdb
        .read_neighbors()
        .await
        .unwrap()
        .into_iter()
        .map(|(k, t)| (k.to_string(), t))
        .collect();
    let told = |m: &str| {
        Told::Value(NeighValue {
            mac: Mac::parse(m).unwrap(),
            ipv6: false,
        })
    };
    let want: BTreeMap<String, Told> = [
        ("Ethernet0:10.0.0.3".to_string(), told("00:00:00:00:00:33")),
        ("Ethernet0:10.0.0.4".to_string(), told("00:00:00:00:00:04")),
    ]
    .into();
    assert_eq!(got, want, "the read-back against what orchagent will hold");
    // And orchagent, consuming, ends with exactly that.
    let table = orch.sync().await;
    assert_eq!(
        table.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
}

/// A table larger than one SCAN page reads back whole and exactly: every key once, each as
/// ours or (other fields, a family that is not one) as foreign; other tables are not read.
#[tokio::test]
async fn the_read_back_reads_every_scan_page_and_marks_foreign_entries() {
    use neighsyncd::core::Told;
    use neighsyncd::core::rules::{Mac, NeighValue};
    use neighsyncd::sonic::appdb::AppDb;

    neighsyncd_tests::require_tool(
        "redis-server",
        "the_read_back_reads_every_scan_page_and_marks_foreign_entries",
    );
    const N: u32 = 9_000;
    let redis = RedisServer::start();
    let mut c = redis.conn(0).await;
    let mut want = BTreeMap::new();
    let mut pipe = redis::pipe();
    for i in 0..N {
        let key = format!(
            "Ethernet{}:10.{}.{}.{}",
            i % 7,
            i >> 16,
            (i >> 8) & 255,
            i & 255
        );
        let mac = format!("02:00:00:00:{:02x}:{:02x}", (i >> 8) & 255, i & 255);
        let ipv6 = i % 3 == 0;
        let family = if ipv6 { "IPv6" } else { "IPv4" };
        pipe.cmd("HSET")
            .arg(format!("NEIGH_TABLE:{key}"))
            .arg("neigh")
            .arg(&mac)
            .arg("family")
            .arg(family);
        let told = Told::Value(NeighValue {
            mac: Mac::parse(&mac).unwrap(),
            ipv6,
        });
        want.insert(key, told);
    }
    for (key, fields) in [
        (
            "Ethernet0:10.200.0.1",
            &[
                ("neigh", "02:00:00:00:00:01"),
                ("family", "IPv4"),
                ("x", "y"),
            ][..],
        ),
        (
            "Ethernet0:10.200.0.2",
            &[("neigh", "02:00:00:00:00:02"), ("family", "IP")][..],
        ),
        (
            "Ethernet0:10.200.0.3",
            &[("neigh", "not-a-mac"), ("family", "IPv4")][..],
        ),
    ] {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(format!("NEIGH_TABLE:{key}"));
        for (f, v) in fields {
            cmd.arg(*f).arg(*v);
        }
        pipe.add_command(cmd);
        want.insert(key.to_string(), Told::Foreign);
    }
    // A key that is not `<ifname>:<ip>` is read too, as it is.
    pipe.cmd("HSET")
        .arg("NEIGH_TABLE:no-address")
        .arg("neigh")
        .arg("02:00:00:00:00:04")
        .arg("family")
        .arg("IPv4");
    want.insert(
        "no-address".to_string(),
        Told::Value(NeighValue {
            mac: Mac::parse("02:00:00:00:00:04").unwrap(),
            ipv6: false,
        }),
    );
    pipe.cmd("HSET")
        .arg("ROUTE_TABLE:10.0.0.0/8")
        .arg("nexthop")
        .arg("x");
    pipe.query_async::<()>(&mut c).await.unwrap();

    let mut appdb = AppDb::new(&redis.db_url(0), 0, ":");
    appdb.connect().await.unwrap();
    let read = appdb.read_neighbors().await.unwrap();
    assert_eq!(read.len(), want.len(), "each key once");
    let got: BTreeMap<String, Told> = read.into_iter().map(|(k, t)| (k.to_string(), t)).collect();
    let differ: Vec<_> = want
        .iter()
        .filter(|(k, t)| got.get(*k) != Some(t))
        .map(|(k, t)| format!("{k}: want {t:?}, got {:?}", got.get(k)))
        .chain(
            got.keys()
                .filter(|k| !want.contains_key(*k))
                .map(|k| format!("{k}: not in APPL_DB")),
        )
        .take(10)
        .collect();
    assert!(differ.is_empty(), "the read-back differs: {differ:#?}");
}
