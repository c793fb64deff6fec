//! SONiC's ProducerStateTable protocol, batched.
//!
//! For table `T` in database `N` a producer stages an operation on key `k` by, atomically:
//! `SADD T_KEY_SET k`, then for a set `HSET _T:k f v ...`, for a delete `SADD T_DEL_SET k` and
//! `DEL _T:k`; and `PUBLISH T_CHANNEL@N G` when the SADD added the key. The consumer
//! (orchagent's ConsumerStateTable) pops keys and applies them (see [`super::consumer`]).
//!
//! One script invocation here carries many operations, applied in order inside one atomic
//! script, so the staging state and the notifications a consumer sees are those of the same
//! operations applied one by one.

use redis::aio::MultiplexedConnection;
use redis::{Pipeline, RedisResult, Script};

use crate::core::ops::{Fields, Op};

/// What a consumer will hold for one key once it has consumed what is staged for it: the
/// table's fields (`None` when the key is in the del set: it is deleted first), with the staged
/// fields set on top. Empty: the key is gone.
pub fn with_staged(table: Option<Fields>, staged: Fields) -> Fields {
    let mut fields = table.unwrap_or_default();
    fields.extend(staged);
    fields
}

/// Operations per script invocation: large enough to amortise, small enough not to stall Redis.
pub const OPS_PER_SCRIPT: usize = 256;

/// What both batch scripts do once their own part is done: apply the ops in order, from
/// `ARGV[a]` and `KEYS[first_key]` on (each script sets both), and notify when a key was added.
macro_rules! apply_ops_lua {
    () => {
        r#"local added = 0
for i = first_key, #KEYS do
    local kind = ARGV[a]
    local key = ARGV[a + 1]
    local n = tonumber(ARGV[a + 2])
    a = a + 3
    added = added + redis.call('SADD', KEYS[2], key)
    if kind == 'D' then
        redis.call('SADD', KEYS[3], key)
        redis.call('DEL', KEYS[i])
    end
    for j = 0, n - 1 do
        redis.call('HSET', KEYS[i], ARGV[a + j * 2], ARGV[a + j * 2 + 1])
    end
    a = a + n * 2
end
if added > 0 then
    redis.call('PUBLISH', KEYS[1], ARGV[1])
end
return added
"#
    };
}

/// `KEYS`: channel, key set, del set, then one staging hash per op.
/// `ARGV`: the notification, then per op: kind (`S`|`D`), key, field count, fields and values.
const BATCH_LUA: &str = concat!("local first_key, a = 4, 2\n", apply_ops_lua!());

/// [`BATCH_LUA`] for a hot-standby leader (`core::ha`): first, APPL_DB's fence must hold the
/// leader's token, or nothing at all is written and the script answers `NEIGHSYNCD_FENCED`.
/// Then the ops are published (a JSON array, as in `ARGV`) on the writes channel, where the
/// standby follows what APPL_DB holds, and applied.
/// `KEYS`: channel, key set, del set, fence, then one staging hash per op. `ARGV`: the
/// notification, the token, the writes channel, then the ops as in [`BATCH_LUA`].
const FENCED_BATCH_LUA: &str = concat!(
    r#"if redis.call('GET', KEYS[4]) ~= ARGV[2] then
    return redis.error_reply('NEIGHSYNCD_FENCED token ' .. ARGV[2] .. ' is not the newest leader')
end
local ops = {}
for i = 4, #ARGV do
    ops[#ops + 1] = ARGV[i]
end
redis.call('PUBLISH', ARGV[3], cjson.encode(ops))
local first_key, a = 5, 4
"#,
    apply_ops_lua!()
);

/// Drops all staged state of the table (warm-start registration only): the key set, every
/// `_T*` staging hash and the del set.
const CLEAR_LUA: &str = r#"
redis.call('DEL', KEYS[1])
local keys = redis.call('KEYS', KEYS[2] .. '*')
for _, k in ipairs(keys) do
    redis.call('DEL', k)
end
redis.call('DEL', KEYS[3])
return #keys
"#;

/// The notification payload ConsumerStateTable expects.
pub const NOTIFICATION: &str = "G";

/// One APPL_DB table written with the producer protocol.
#[derive(Debug, Clone)]
pub struct ProducerStateTable {
    table: String,
    channel: String,
    key_set: String,
    del_set: String,
    staging_prefix: String,
    batch: Script,
    fenced: Script,
    clear: Script,
    /// Where a hot-standby leader's writes are published (see [`writes_channel`]).
    writes: String,
}

/// The channel a hot-standby leader publishes its writes to `table` on.
pub fn writes_channel(table: &str, db_id: i64) -> String {
    format!("NEIGHSYNCD_HA_WRITES@{db_id}:{table}")
}

impl ProducerStateTable {
    /// `db_id` is the database number (it names the channel); `separator` is APPL_DB's (`:`).
    pub fn new(table: &str, db_id: i64, separator: &str) -> ProducerStateTable {
        ProducerStateTable {
            table: table.into(),
            channel: format!("{table}_CHANNEL@{db_id}"),
            key_set: format!("{table}_KEY_SET"),
            del_set: format!("{table}_DEL_SET"),
            staging_prefix: format!("_{table}{separator}"),
            batch: Script::new(BATCH_LUA),
            fenced: Script::new(FENCED_BATCH_LUA),
            writes: writes_channel(table, db_id),
            clear: Script::new(CLEAR_LUA),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn key_set(&self) -> &str {
        &self.key_set
    }

    pub fn del_set(&self) -> &str {
        &self.del_set
    }

    pub fn channel(&self) -> &str {
        &self.channel
    }

    pub fn staging_key(&self, key: &str) -> String {
        format!("{}{key}", self.staging_prefix)
    }

    /// Loads the scripts (after every connect), so that EVALSHA in pipelines finds them.
    pub async fn load_scripts(&self, conn: &mut MultiplexedConnection) -> RedisResult<()> {
        let mut p = redis::pipe();
        for code in [BATCH_LUA, FENCED_BATCH_LUA, CLEAR_LUA] {
            p.cmd("SCRIPT").arg("LOAD").arg(code).ignore();
        }
        p.query_async::<()>(conn).await
    }

    /// Appends the operations to a pipeline, [`OPS_PER_SCRIPT`] per atomic script call; with
    /// `fence` (a hot-standby leader's token), each call refuses to write unless APPL_DB's
    /// fence holds that token.
    pub fn append(&self, pipe: &mut Pipeline, ops: &[Op], fence: Option<u64>) {
        for chunk in ops.chunks(OPS_PER_SCRIPT) {
            let cmd = pipe.cmd("EVALSHA");
            match fence {
                None => cmd
                    .arg(self.batch.get_hash())
                    .arg(3 + chunk.len())
                    .arg(&self.channel)
                    .arg(&self.key_set)
                    .arg(&self.del_set),
                Some(_) => cmd
                    .arg(self.fenced.get_hash())
                    .arg(4 + chunk.len())
                    .arg(&self.channel)
                    .arg(&self.key_set)
                    .arg(&self.del_set)
                    .arg(super::lease::FENCE_KEY),
            };
            // One buffer for every staging key of the chunk (Redis copies each argument).
            let mut staging = String::with_capacity(self.staging_prefix.len() + 64);
            for op in chunk {
                staging.clear();
                staging.push_str(&self.staging_prefix);
                staging.push_str(op.key());
                cmd.arg(&staging[..]);
            }
            cmd.arg(NOTIFICATION);
            if let Some(token) = fence {
                cmd.arg(token.to_string()).arg(&self.writes);
            }
            for op in chunk {
                match op {
                    Op::Set { key, value } => {
                        cmd.arg("S")
                            .arg(key)
                            .arg(2)
                            .arg("neigh")
                            .arg(&value.mac.text()[..])
                            .arg("family")
                            .arg(value.family());
                    }
                    Op::Del { key } => {
                        cmd.arg("D").arg(key).arg(0);
                    }
                }
            }
            pipe.ignore();
        }
    }

    /// Drops everything staged for this table (SONiC's `ProducerStateTable::clear`).
    pub async fn clear(&self, conn: &mut MultiplexedConnection) -> RedisResult<()> {
        self.clear
            .key(&self.key_set)
            .key(format!("_{}", self.table))
            .key(&self.del_set)
            .invoke_async::<i64>(conn)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(mac: &str) -> Fields {
        [("neigh".to_string(), mac.to_string())]
            .into_iter()
            .collect()
    }

    #[test]
    fn staged_operations_apply_on_top_of_the_table() {
        let mac = |f: &Fields| f.get("neigh").cloned();
        // A set over an existing entry: its fields win.
        let out = with_staged(
            Some(fields("02:00:00:00:00:01")),
            fields("02:00:00:00:00:aa"),
        );
        assert_eq!(mac(&out).as_deref(), Some("02:00:00:00:00:aa"));
        // A delete (in the del set, nothing staged): gone.
        assert!(with_staged(None, Fields::default()).is_empty());
        // A delete then a set again: the new value only.
        let out = with_staged(None, fields("02:00:00:00:00:cc"));
        assert_eq!(out, fields("02:00:00:00:00:cc"));
        // A new key.
        let out = with_staged(Some(Fields::default()), fields("02:00:00:00:00:04"));
        assert_eq!(out, fields("02:00:00:00:00:04"));
        // A field the table has and the staging does not set stays.
        let mut table = fields("02:00:00:00:00:01");
        table.insert("extra".into(), "x".into());
        let out = with_staged(Some(table), fields("02:00:00:00:00:aa"));
        assert_eq!(out.get("extra").map(String::as_str), Some("x"));
        assert_eq!(mac(&out).as_deref(), Some("02:00:00:00:00:aa"));
    }
}
