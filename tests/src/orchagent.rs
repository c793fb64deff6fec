//! Playing orchagent: pop `NEIGH_TABLE` with ConsumerStateTable semantics and read the result,
//! so tests assert what orchagent would see, not staging keys.

use std::collections::BTreeMap;

use neighsyncd::sonic::consumer::{ConsumerStateTable, Popped};
use redis::aio::MultiplexedConnection;

use crate::kernel::Table;

pub struct Orchagent {
    conn: MultiplexedConnection,
    neigh: ConsumerStateTable,
    route: ConsumerStateTable,
    /// Every operation popped so far, in order (`fields` empty = delete).
    pub seen: Vec<Popped>,
    pub routes_seen: Vec<Popped>,
    /// Operations popped by [`Orchagent::pop_and_count`].
    pub popped_total: usize,
}

impl Orchagent {
    pub fn new(conn: MultiplexedConnection) -> Orchagent {
        Orchagent {
            conn,
            neigh: ConsumerStateTable::new("NEIGH_TABLE", ":"),
            route: ConsumerStateTable::new("ROUTE_TABLE", ":"),
            seen: Vec::new(),
            routes_seen: Vec::new(),
            popped_total: 0,
        }
    }

    /// Pops everything pending and returns `NEIGH_TABLE` as orchagent now holds it.
    pub async fn sync(&mut self) -> Table {
        let popped = self
            .neigh
            .pop_all(&mut self.conn)
            .await
            .expect("pop NEIGH_TABLE");
        self.seen.extend(popped);
        let routes = self
            .route
            .pop_all(&mut self.conn)
            .await
            .expect("pop ROUTE_TABLE");
        self.routes_seen.extend(routes);
        table(&mut self.conn, "NEIGH_TABLE:").await
    }

    /// Pops everything pending (without recording it) and returns how many `NEIGH_TABLE`
    /// entries orchagent now holds. Cheap enough to poll at 100k entries (benchmarks).
    pub async fn pop_and_count(&mut self) -> usize {
        let popped = self
            .neigh
            .pop_all(&mut self.conn)
            .await
            .expect("pop NEIGH_TABLE");
        self.popped_total += popped.len();
        redis::Script::new("return #redis.call('KEYS', ARGV[1])")
            .arg("NEIGH_TABLE:*")
            .invoke_async(&mut self.conn)
            .await
            .expect("count NEIGH_TABLE")
    }

    /// The number of neighbor operations orchagent has been handed.
    pub fn writes(&self) -> usize {
        self.seen.len()
    }

    pub fn conn(&mut self) -> &mut MultiplexedConnection {
        &mut self.conn
    }
}

/// All hashes under a prefix, keyed without it (one pipelined round trip per 4096 keys).
pub async fn table(conn: &mut MultiplexedConnection, prefix: &str) -> Table {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(conn)
        .await
        .expect("KEYS");
    let mut out = BTreeMap::new();
    for chunk in keys.chunks(4096) {
        let mut p = redis::pipe();
        for k in chunk {
            p.cmd("HGETALL").arg(k);
        }
        let values: Vec<BTreeMap<String, String>> = p.query_async(conn).await.expect("HGETALL");
        for (k, v) in chunk.iter().zip(values) {
            out.insert(k[prefix.len()..].to_string(), v);
        }
    }
    out
}
