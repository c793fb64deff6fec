//! Polling with a deadline, and diffs that show what differs.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::{Duration, Instant};

/// Polls `check` until it returns Ok or `timeout` passes; panics with the last error.
pub async fn until<F>(what: &str, timeout: Duration, mut check: F)
where
    F: AsyncFnMut() -> Result<(), String>,
{
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(10);
    loop {
        match check().await {
            Ok(()) => return,
            Err(e) if Instant::now() >= deadline => {
                panic!("{what}: not within {timeout:?}:\n{e}")
            }
            Err(_) => {}
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}

/// Polls until orchagent's `NEIGH_TABLE` equals what the namespace's kernel table should give
/// (default SONiC configuration), then returns; panics with the diff at the deadline.
pub async fn appl_db_equals_kernel(
    what: &str,
    orch: &mut crate::orchagent::Orchagent,
    ns: &crate::netns::Netns,
    timeout: Duration,
) {
    let none = std::collections::BTreeSet::new();
    until(what, timeout, async || {
        let want = crate::kernel::expected(ns, &none);
        let got = orch.sync().await;
        diff(&got, &want)
    })
    .await;
}

/// Ok when equal, else a readable diff (at most 20 lines of each kind).
pub fn diff<K: Ord + Debug, V: PartialEq + Debug>(
    got: &BTreeMap<K, V>,
    want: &BTreeMap<K, V>,
) -> Result<(), String> {
    let mut lines = Vec::new();
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    let changed: Vec<_> = want
        .iter()
        .filter_map(|(k, v)| got.get(k).filter(|g| *g != v).map(|g| (k, g, v)))
        .collect();
    if missing.is_empty() && extra.is_empty() && changed.is_empty() {
        return Ok(());
    }
    lines.push(format!(
        "got {} entries, want {}: {} missing, {} extra, {} different",
        got.len(),
        want.len(),
        missing.len(),
        extra.len(),
        changed.len()
    ));
    for k in missing.iter().take(20) {
        lines.push(format!("  missing {k:?} = {:?}", want[*k]));
    }
    for k in extra.iter().take(20) {
        lines.push(format!("  extra   {k:?} = {:?}", got[*k]));
    }
    for (k, g, w) in changed.iter().take(20) {
        lines.push(format!("  differs {k:?}: got {g:?}, want {w:?}"));
    }
    Err(lines.join("\n"))
}
