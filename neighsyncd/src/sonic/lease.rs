//! Hot standby's Redis side: the leader's lease in STATE_DB, and the fencing token APPL_DB
//! checks before every write (see `core::ha`).
//!
//! - The lease is a hash, `NEIGHSYNCD_HA|lease` (`holder`, `token`, `since_ms`), with an
//!   expiry. Taking it is atomic (a script): only when nobody holds it, with a token greater
//!   than every one before, made from Redis's own clock (so a Redis restarted empty still
//!   hands out greater tokens) and the last one issued (`NEIGHSYNCD_HA|token`).
//! - Renewing and releasing check holder and token: a leader whose lease expired and was taken
//!   cannot renew it back.
//! - A release publishes on `NEIGHSYNCD_HA_CHANNEL@<db>`, so that a standby takes over at once.
//! - APPL_DB holds the newest token a leader raised, `NEIGHSYNCD_HA_FENCE`; the fenced
//!   producer script (`producer`) refuses any other.

use redis::Script;

pub use crate::core::ha::LeaseInfo;
use redis::aio::MultiplexedConnection;

/// The lease hash (STATE_DB).
pub const LEASE_KEY: &str = "NEIGHSYNCD_HA|lease";
/// The last token issued (STATE_DB).
pub const TOKEN_KEY: &str = "NEIGHSYNCD_HA|token";
/// Set by a release (for a lease's length): the next leader took over from a handoff, not
/// from an expiry (STATE_DB).
pub const RELEASED_KEY: &str = "NEIGHSYNCD_HA|released";
/// The newest leader's token (APPL_DB).
pub const FENCE_KEY: &str = "NEIGHSYNCD_HA_FENCE";

/// `KEYS`: lease, token counter, released mark. `ARGV`: holder, lease ms. Returns {1, holder,
/// token, released} when taken (or already ours; `released`: 1 when the last leader had
/// released it), {0, holder, token, 0} when another holds it.
const ACQUIRE_LUA: &str = r#"
local h = redis.call('HGET', KEYS[1], 'holder')
if h then
    local t = redis.call('HGET', KEYS[1], 'token') or '0'
    if h == ARGV[1] then
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        return {1, h, t, 0}
    end
    return {0, h, t, 0}
end
local released = redis.call('DEL', KEYS[3])
local now = redis.call('TIME')
local us = tonumber(now[1]) * 1000000 + tonumber(now[2])
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local t = us
if t <= last then t = last + 1 end
local ts = string.format('%.0f', t)
redis.call('SET', KEYS[2], ts)
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'token', ts,
    'since_ms', string.format('%.0f', math.floor(us / 1000)))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, ARGV[1], ts, released}
"#;

/// `KEYS`: lease. `ARGV`: holder, token, lease ms. 1: renewed; 0: not ours any more.
const RENEW_LUA: &str = r#"
if redis.call('HGET', KEYS[1], 'holder') == ARGV[1]
    and redis.call('HGET', KEYS[1], 'token') == ARGV[2] then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    return 1
end
return 0
"#;

/// `KEYS`: lease, released mark. `ARGV`: holder, token, channel, lease ms. 1: released (and
/// announced).
const RELEASE_LUA: &str = r#"
if redis.call('HGET', KEYS[1], 'holder') == ARGV[1]
    and redis.call('HGET', KEYS[1], 'token') == ARGV[2] then
    redis.call('DEL', KEYS[1])
    redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[4])
    redis.call('PUBLISH', ARGV[3], 'released')
    return 1
end
return 0
"#;

/// `KEYS`: fence (APPL_DB). `ARGV`: token. 1: the fence is this token (raised to it, or it
/// was); 0: a newer token holds it (this leader is stale).
const RAISE_LUA: &str = r#"
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local t = tonumber(ARGV[1])
if t > cur then
    redis.call('SET', KEYS[1], ARGV[1])
    return 1
end
if t == cur then return 1 end
return 0
"#;

/// What taking the lease came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// Ours, with this token; `released`: the last leader handed it over.
    Won { token: u64, released: bool },
    /// Another's.
    Held { holder: String, token: u64 },
}

/// The lease's scripts, for one STATE_DB.
#[derive(Debug, Clone)]
pub struct Lease {
    holder: String,
    lease_ms: u64,
    channel: String,
    acquire: Script,
    renew: Script,
    release: Script,
}

impl Lease {
    /// `holder`: this daemon's name in the lease (host, pid and a random part). `db_id`:
    /// STATE_DB's number (it names the channel).
    pub fn new(holder: &str, lease_ms: u64, db_id: i64) -> Lease {
        Lease {
            holder: holder.into(),
            lease_ms,
            channel: channel(db_id),
            acquire: Script::new(ACQUIRE_LUA),
            renew: Script::new(RENEW_LUA),
            release: Script::new(RELEASE_LUA),
        }
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    pub fn channel(&self) -> &str {
        &self.channel
    }

    pub async fn acquire(&self, conn: &mut MultiplexedConnection) -> redis::RedisResult<Acquired> {
        let (won, holder, token, released): (i64, String, String, i64) = self
            .acquire
            .key(LEASE_KEY)
            .key(TOKEN_KEY)
            .key(RELEASED_KEY)
            .arg(&self.holder)
            .arg(self.lease_ms)
            .invoke_async(conn)
            .await?;
        let token = token.parse().unwrap_or(0);
        Ok(if won == 1 {
            Acquired::Won {
                token,
                released: released == 1,
            }
        } else {
            Acquired::Held { holder, token }
        })
    }

    /// `true`: renewed; `false`: the lease is not ours any more.
    pub async fn renew(
        &self,
        conn: &mut MultiplexedConnection,
        token: u64,
    ) -> redis::RedisResult<bool> {
        let r: i64 = self
            .renew
            .key(LEASE_KEY)
            .arg(&self.holder)
            .arg(token.to_string())
            .arg(self.lease_ms)
            .invoke_async(conn)
            .await?;
        Ok(r == 1)
    }

    pub async fn release(
        &self,
        conn: &mut MultiplexedConnection,
        token: u64,
    ) -> redis::RedisResult<bool> {
        let r: i64 = self
            .release
            .key(LEASE_KEY)
            .key(RELEASED_KEY)
            .arg(&self.holder)
            .arg(token.to_string())
            .arg(&self.channel)
            .arg(self.lease_ms)
            .invoke_async(conn)
            .await?;
        Ok(r == 1)
    }
}

/// The channel a release is announced on.
pub fn channel(db_id: i64) -> String {
    format!("NEIGHSYNCD_HA_CHANNEL@{db_id}")
}

/// Raises APPL_DB's fence to `token`: `true` when it now holds it, `false` when a newer
/// leader's token does.
pub async fn raise_fence(conn: &mut MultiplexedConnection, token: u64) -> redis::RedisResult<bool> {
    let r: i64 = Script::new(RAISE_LUA)
        .key(FENCE_KEY)
        .arg(token.to_string())
        .invoke_async(conn)
        .await?;
    Ok(r == 1)
}

/// The lease as it stands.
pub async fn read(conn: &mut MultiplexedConnection) -> redis::RedisResult<LeaseInfo> {
    let (fields, pttl, time): (std::collections::HashMap<String, String>, i64, (u64, u64)) =
        redis::pipe()
            .cmd("HGETALL")
            .arg(LEASE_KEY)
            .cmd("PTTL")
            .arg(LEASE_KEY)
            .cmd("TIME")
            .query_async(conn)
            .await?;
    let now_ms = time.0 * 1000 + time.1 / 1000;
    let since: Option<u64> = fields.get("since_ms").and_then(|s| s.parse().ok());
    Ok(LeaseInfo {
        holder: fields.get("holder").cloned(),
        token: fields.get("token").and_then(|s| s.parse().ok()),
        age_ms: since.map(|s| now_ms.saturating_sub(s)),
        expires_in_ms: (pttl >= 0).then_some(pttl),
    })
}

/// Whether a Redis error is APPL_DB refusing a stale leader's write.
pub fn is_fenced(e: &redis::RedisError) -> bool {
    e.code() == Some(FENCED) || e.to_string().contains(FENCED)
}

/// The error code the fenced producer script answers with.
pub const FENCED: &str = "NEIGHSYNCD_FENCED";

/// What a daemon hears on the writes channel (`producer::writes_channel`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// The leader's writes, in order: each key and what it holds now (`None`: deleted).
    Writes(Vec<(String, Option<crate::core::state::Told>)>),
    /// A new leader's mark, published once its fence is up: every write of an older leader
    /// was published before it.
    Marker(u64),
    /// The subscription was (re)made at `since`: writes before it may have been missed.
    Gap { since: std::time::Instant },
}

/// A writes-channel message: the fenced script's ops (`kind`, `key`, field count, fields and
/// values), or a new leader's marker `["M", token]`. `None` for anything else.
pub fn decode(msg: &str) -> Option<Observation> {
    let v: Vec<String> = serde_json::from_str(msg).ok()?;
    if v.first().map(String::as_str) == Some("M") {
        return Some(Observation::Marker(v.get(1)?.parse().ok()?));
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let (kind, key) = (v.get(i)?, v.get(i + 1)?);
        let n: usize = v.get(i + 2)?.parse().ok()?;
        let fields: crate::core::ops::Fields = (0..n)
            .map(|j| Some((v.get(i + 3 + 2 * j)?.clone(), v.get(i + 4 + 2 * j)?.clone())))
            .collect::<Option<_>>()?;
        i += 3 + 2 * n;
        let told = match (kind.as_str(), n) {
            ("D", 0) => None,
            ("S" | "D", _) => Some(crate::core::state::Told::from_fields(&fields)),
            _ => return None,
        };
        out.push((key.clone(), told));
    }
    Some(Observation::Writes(out))
}

/// A new leader's marker message.
pub fn marker(token: u64) -> String {
    format!("[\"{MARKER}\",\"{token}\"]")
}

/// Whether a writes-channel message is a marker, without decoding it.
pub fn is_marker(msg: &[u8]) -> bool {
    msg.starts_with(format!("[\"{MARKER}\"").as_bytes())
}

/// A marker message's kind.
const MARKER: &str = "M";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_writes_decode_to_what_appl_db_holds() {
        let msg = r#"["S","Ethernet0:10.0.0.2","2","neigh","02:00:00:00:00:02","family","IPv4","D","Ethernet0:10.0.0.3","0"]"#;
        let Some(Observation::Writes(w)) = decode(msg) else {
            panic!("not writes");
        };
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].0, "Ethernet0:10.0.0.2");
        assert!(matches!(w[0].1, Some(crate::core::state::Told::Value(_))));
        assert_eq!(w[1], ("Ethernet0:10.0.0.3".to_string(), None));
        assert_eq!(decode(&marker(42)), Some(Observation::Marker(42)));
        assert!(is_marker(marker(42).as_bytes()));
        assert!(!is_marker(msg.as_bytes()));
        for bad in [
            "",
            "{}",
            r#"["S","k"]"#,
            r#"["X","k","0"]"#,
            r#"["S","k","2","a"]"#,
        ] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
