//! The Redis side: where the databases are, the producer protocol, and the APPL_DB connection
//! the pipeline writes through.

use std::time::Duration;

use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;

pub use super::producer::ProducerStateTable;
use crate::core::key::NeighKey;
pub use crate::core::ops::{Fields, Op};
use crate::core::state::Told;

pub const NEIGH_TABLE: &str = "NEIGH_TABLE";
pub const ROUTE_TABLE: &str = "ROUTE_TABLE";

/// A Redis answer can take this long before the connection is declared broken.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum AppDbError {
    #[error("not connected to APPL_DB")]
    NotConnected,
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A hot-standby leader's write refused: a newer leader's token holds APPL_DB's fence.
    #[error("APPL_DB refused the write: a newer leader holds the fence ({0})")]
    Fenced(String),
}

/// Opens a multiplexed connection with bounded connect and response times.
pub async fn connect(url: &str) -> Result<MultiplexedConnection, redis::RedisError> {
    let client = redis::Client::open(url)?;
    let cfg = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
}

/// The APPL_DB connection the pipeline writes `NEIGH_TABLE` (and EVPN's `ROUTE_TABLE`
/// deletes) through. A failed call drops the connection; the caller reconnects.
pub struct AppDb {
    url: String,
    separator: String,
    conn: Option<MultiplexedConnection>,
    pub neigh: ProducerStateTable,
    pub route: ProducerStateTable,
    /// A hot-standby leader's fencing token: every write carries it (see `core::ha`).
    fence: Option<u64>,
}

impl AppDb {
    pub fn new(url: &str, db_id: i64, separator: &str) -> AppDb {
        AppDb {
            url: url.into(),
            separator: separator.into(),
            conn: None,
            neigh: ProducerStateTable::new(NEIGH_TABLE, db_id, separator),
            route: ProducerStateTable::new(ROUTE_TABLE, db_id, separator),
            fence: None,
        }
    }

    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    pub async fn connect(&mut self) -> Result<(), AppDbError> {
        let mut conn = connect(&self.url).await?;
        self.neigh.load_scripts(&mut conn).await?;
        // A leader raises the fence on every connect: an APPL_DB that restarted empty has none.
        if let Some(token) = self.fence
            && !super::lease::raise_fence(&mut conn, token).await?
        {
            return Err(AppDbError::Fenced(format!(
                "token {token} is not the newest"
            )));
        }
        self.conn = Some(conn);
        Ok(())
    }

    /// Writes from now on carry `token` (a hot-standby leader's), or none.
    pub fn set_fence(&mut self, token: Option<u64>) {
        self.fence = token;
    }

    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    fn conn(&mut self) -> Result<&mut MultiplexedConnection, AppDbError> {
        self.conn.as_mut().ok_or(AppDbError::NotConnected)
    }

    /// Whether the connection still answers. A Redis that restarted (and lost APPL_DB) is only
    /// noticed through its connection: when nothing is written, this is how.
    pub async fn ping(&mut self) -> Result<(), AppDbError> {
        let res = async {
            let conn = self.conn()?;
            redis::cmd("PING").query_async::<()>(conn).await?;
            Ok(())
        }
        .await;
        self.check(res)
    }

    /// Writes route deletes, then neighbor operations, in one round trip.
    pub async fn write(&mut self, route_dels: &[Op], neigh_ops: &[Op]) -> Result<(), AppDbError> {
        let mut pipe = redis::pipe();
        self.route.append(&mut pipe, route_dels, self.fence);
        self.neigh.append(&mut pipe, neigh_ops, self.fence);
        let res = async {
            let conn = self.conn()?;
            match pipe.query_async::<()>(conn).await {
                Err(e) if super::lease::is_fenced(&e) => Err(AppDbError::Fenced(e.to_string())),
                r => Ok(r?),
            }
        }
        .await;
        self.check(res)
    }

    fn check<T>(&mut self, res: Result<T, AppDbError>) -> Result<T, AppDbError> {
        if let Err(AppDbError::Redis(e)) = &res {
            // A script missing after a server restart, or any I/O failure: start afresh.
            tracing::debug!(error = %e, "APPL_DB call failed; dropping the connection");
            self.conn = None;
        }
        res
    }

    /// Drops all staged `NEIGH_TABLE` state (warm start only).
    pub async fn clear_staging(&mut self) -> Result<(), AppDbError> {
        let res = async {
            let neigh = self.neigh.clone();
            neigh.clear(self.conn()?).await?;
            Ok(())
        }
        .await;
        self.check(res)
    }

    /// What orchagent will hold for `NEIGH_TABLE` once it has consumed everything staged:
    /// `NEIGH_TABLE:*` with the pending staging operations applied on top, each key with what
    /// its fields say.
    ///
    /// Staged keys are read first, a page at a time (`SSCAN`), each page's staged fields, table
    /// fields and del-set membership in one `MULTI`: orchagent pops a key atomically, so a
    /// page sees each of its keys either still staged or already applied, and the result is
    /// the same. The table is read next, without the staged keys: we are the only producer, so
    /// a key staged after its page was read is not. Whatever is read is turned into a [`Told`]
    /// at once: at a million keys, with orchagent stalled and all of them staged, the read-back
    /// costs one small entry per key, not every key's fields as strings (it runs at start and
    /// at every audit).
    pub async fn read_neighbors(&mut self) -> Result<Vec<(NeighKey, Told)>, AppDbError> {
        let table_prefix = format!("{NEIGH_TABLE}{}", self.separator);
        let neigh = self.neigh.clone();
        let res = async {
            let conn = self.conn()?;
            let mut out = Vec::new();
            let staged = read_staged(conn, &neigh, &table_prefix, &mut out).await?;
            let pattern = format!("{table_prefix}*");
            let scan = |cursor: u64| {
                let mut c = redis::cmd("SCAN");
                c.arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT);
                c
            };
            let (mut next, mut keys): (u64, Vec<String>) = scan(0).query_async(conn).await?;
            while !keys.is_empty() || next != 0 {
                // A page's hashes (staged keys were read with the staging), and the next page's
                // SCAN, in one round trip.
                let page: Vec<(NeighKey, &str)> = keys
                    .iter()
                    .filter_map(|k| {
                        let key = NeighKey::from_appl_db(k.strip_prefix(&table_prefix)?);
                        staged
                            .binary_search(&key)
                            .is_err()
                            .then_some((key, k.as_str()))
                    })
                    .collect();
                let mut p = redis::pipe();
                for (_, k) in &page {
                    p.cmd("HGETALL").arg(*k);
                }
                if next != 0 {
                    p.add_command(scan(next));
                }
                let mut replies: Vec<redis::Value> = if page.is_empty() && next == 0 {
                    Vec::new() // every key of the last page was staged: nothing to ask
                } else {
                    p.query_async(conn).await?
                };
                let following = match next {
                    0 => None,
                    _ => Some(
                        redis::from_redis_value::<(u64, Vec<String>)>(
                            replies.pop().unwrap_or_default(),
                        )
                        .map_err(redis::RedisError::from)?,
                    ),
                };
                for ((key, _), value) in page.into_iter().zip(replies) {
                    let Some(pairs) = value.as_map_iter() else {
                        continue;
                    };
                    let mut pairs = pairs.map(bulk_pair).peekable();
                    // Empty: deleted between the SCAN and the HGETALL.
                    if pairs.peek().is_some() {
                        out.push((key, Told::from_pairs(pairs)));
                    }
                }
                (next, keys) = following.unwrap_or_default();
            }
            // SCAN may return a key twice (it guarantees at least once): keep one.
            out.sort_unstable_by_key(|e| e.0);
            out.dedup_by(|a, b| a.0 == b.0);
            Ok(out)
        }
        .await;
        self.check(res)
    }
}

/// A hash's field and value as Redis returns them; anything else reads as an empty pair, so
/// that the entry reads as not ours.
fn bulk_pair<'a>(pair: (&'a redis::Value, &'a redis::Value)) -> (&'a [u8], &'a [u8]) {
    match pair {
        (redis::Value::BulkString(f), redis::Value::BulkString(v)) => (f.as_slice(), v.as_slice()),
        _ => (&[][..], &[][..]),
    }
}

/// Staged keys per page of [`read_staged`]: one `MULTI` reads three things of each.
const STAGED_PAGE: usize = 512;

/// Reads every staged key with what it will hold once consumed (see
/// [`AppDb::read_neighbors`]) into `out`; returns the staged keys, sorted.
async fn read_staged(
    conn: &mut MultiplexedConnection,
    neigh: &ProducerStateTable,
    table_prefix: &str,
    out: &mut Vec<(NeighKey, Told)>,
) -> Result<Vec<NeighKey>, redis::RedisError> {
    let mut staged = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SSCAN")
            .arg(neigh.key_set())
            .arg(cursor)
            .arg("COUNT")
            .arg(STAGED_PAGE)
            .query_async(conn)
            .await?;
        if !keys.is_empty() {
            let mut p = redis::pipe();
            p.atomic();
            for k in &keys {
                p.cmd("HGETALL")
                    .arg(neigh.staging_key(k))
                    .cmd("HGETALL")
                    .arg(format!("{table_prefix}{k}"))
                    .cmd("SISMEMBER")
                    .arg(neigh.del_set())
                    .arg(k);
            }
            let replies: Vec<redis::Value> = p.query_async(conn).await?;
            for (k, three) in keys.iter().zip(replies.chunks_exact(3)) {
                let key = NeighKey::from_appl_db(k);
                staged.push(key);
                let staging: Fields = redis::from_redis_value_ref(&three[0])?;
                let table: Fields = redis::from_redis_value_ref(&three[1])?;
                let deleted: bool = redis::from_redis_value_ref(&three[2])?;
                let fields = super::producer::with_staged((!deleted).then_some(table), staging);
                if !fields.is_empty() {
                    out.push((key, Told::from_fields(&fields)));
                }
            }
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    staged.sort_unstable();
    staged.dedup();
    Ok(staged)
}

/// Keys per SCAN page: each page's hashes are read in one pipelined round trip.
const SCAN_COUNT: usize = 2048;

impl crate::core::control::AppDbWriter for AppDb {
    type Error = AppDbError;

    fn is_connected(&self) -> bool {
        AppDb::is_connected(self)
    }

    fn disconnect(&mut self) {
        AppDb::disconnect(self)
    }

    async fn connect(&mut self) -> Result<(), AppDbError> {
        AppDb::connect(self).await
    }

    async fn write(&mut self, route_dels: &[Op], neigh_ops: &[Op]) -> Result<(), AppDbError> {
        AppDb::write(self, route_dels, neigh_ops).await
    }

    async fn read_neighbors(&mut self) -> Result<Vec<(NeighKey, Told)>, AppDbError> {
        AppDb::read_neighbors(self).await
    }

    async fn ping(&mut self) -> Result<(), AppDbError> {
        AppDb::ping(self).await
    }

    fn set_fence(&mut self, token: Option<u64>) {
        AppDb::set_fence(self, token)
    }

    fn is_fenced(e: &AppDbError) -> bool {
        matches!(e, AppDbError::Fenced(_))
    }

    async fn clear_staging(&mut self) -> Result<(), AppDbError> {
        AppDb::clear_staging(self).await
    }
}
