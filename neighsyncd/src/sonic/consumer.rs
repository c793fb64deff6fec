//! The consumer side of the producer protocol, as orchagent's ConsumerStateTable does it.
//! The daemon itself never consumes; tests and benchmarks use this to play orchagent, so they
//! assert what orchagent would see rather than staging keys.

use redis::aio::MultiplexedConnection;
use redis::{RedisResult, Script};

/// SONiC's default pop batch.
pub const POP_BATCH: usize = 128;

/// `KEYS`: key set, table prefix (`T:`), del set, staging prefix (`_T:`); `ARGV`: count.
/// Returns `{key, {f, v, ...}}` per popped key; an empty field list is a delete.
const POP_LUA: &str = r#"
local ret = {}
local keys = redis.call('SPOP', KEYS[1], ARGV[1])
for _, key in ipairs(keys) do
    if redis.call('SREM', KEYS[3], key) == 1 then
        redis.call('DEL', KEYS[2] .. key)
    end
    local fv = redis.call('HGETALL', KEYS[4] .. key)
    table.insert(ret, {key, fv})
    for i = 1, #fv, 2 do
        redis.call('HSET', KEYS[2] .. key, fv[i], fv[i + 1])
    end
    redis.call('DEL', KEYS[4] .. key)
end
return ret
"#;

/// One popped operation: `fields` empty means delete.
pub type Popped = (String, Vec<(String, String)>);

pub struct ConsumerStateTable {
    table: String,
    separator: String,
    script: Script,
}

impl ConsumerStateTable {
    pub fn new(table: &str, separator: &str) -> ConsumerStateTable {
        ConsumerStateTable {
            table: table.into(),
            separator: separator.into(),
            script: Script::new(POP_LUA),
        }
    }

    /// Pops up to `n` keys.
    pub async fn pop(
        &self,
        conn: &mut MultiplexedConnection,
        n: usize,
    ) -> RedisResult<Vec<Popped>> {
        let raw: Vec<(String, Vec<String>)> = self
            .script
            .key(format!("{}_KEY_SET", self.table))
            .key(format!("{}{}", self.table, self.separator))
            .key(format!("{}_DEL_SET", self.table))
            .key(format!("_{}{}", self.table, self.separator))
            .arg(n)
            .invoke_async(conn)
            .await?;
        Ok(raw
            .into_iter()
            .map(|(k, fv)| {
                let pairs = fv
                    .chunks(2)
                    .filter(|c| c.len() == 2)
                    .map(|c| (c[0].clone(), c[1].clone()))
                    .collect();
                (k, pairs)
            })
            .collect())
    }

    /// Pops until the key set is empty; returns everything popped, in order.
    pub async fn pop_all(&self, conn: &mut MultiplexedConnection) -> RedisResult<Vec<Popped>> {
        let mut all = Vec::new();
        loop {
            let batch = self.pop(conn, POP_BATCH).await?;
            if batch.is_empty() {
                return Ok(all);
            }
            all.extend(batch);
        }
    }
}
