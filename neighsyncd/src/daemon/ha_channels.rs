//! Hot standby's subscriptions: the leader's release announcements (a standby takes over at
//! once), and the leader's writes (a standby's picture of APPL_DB follows them).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tracing::warn;

use crate::sonic::appdb::NEIGH_TABLE;
use crate::sonic::dbconfig::DbLayout;
use crate::sonic::lease::{Observation, decode, is_marker};
use crate::sonic::producer::writes_channel;

/// The leader's release announcements, on a subscription of its own (re-made when it
/// breaks; a missed announcement costs at most a renewal interval).
pub(super) struct Releases {
    url: String,
    channel: String,
    stream: Option<redis::aio::PubSubStream>,
    retry_at: Instant,
}

impl Releases {
    pub(super) fn new(url: String, channel: String) -> Releases {
        Releases {
            url,
            channel,
            stream: None,
            retry_at: Instant::now(),
        }
    }

    async fn subscribe(&self) -> Option<redis::aio::PubSubStream> {
        let client = redis::Client::open(self.url.as_str()).ok()?;
        let mut ps = client.get_async_pubsub().await.ok()?;
        ps.subscribe(&self.channel).await.ok()?;
        Some(ps.into_on_message())
    }

    /// The next announcement; never, while there is no subscription.
    pub(super) async fn next(&mut self) {
        loop {
            if self.stream.is_none() {
                tokio::time::sleep_until(self.retry_at.into()).await;
                self.retry_at = Instant::now() + Duration::from_secs(1);
                self.stream = self.subscribe().await;
                continue;
            }
            if let Some(s) = &mut self.stream {
                match s.next().await {
                    Some(_) => return,
                    None => self.stream = None,
                }
            }
        }
    }
}

/// How long start-up waits for its first subscription (then the task keeps trying).
pub(super) const FIRST_SUBSCRIPTION: Duration = Duration::from_secs(2);

/// A subscription to the writes channel, and when Redis had it: a read-back that starts
/// later misses nothing.
pub(super) type Subscription = (Instant, redis::aio::PubSubStream);

/// Subscribes to `db`'s writes channel (`None`: Redis could not be reached).
pub(super) async fn subscribe_writes(db: &DbLayout) -> Option<Subscription> {
    let client = redis::Client::open(db.appl.url.as_str()).ok()?;
    let mut ps = client.get_async_pubsub().await.ok()?;
    ps.subscribe(writes_channel(NEIGH_TABLE, db.appl.id))
        .await
        .ok()?;
    Some((Instant::now(), ps.into_on_message()))
}

/// Follows the leader's writes on the writes channel, for the pipeline: every (re)made
/// subscription is announced as a gap first (what came before it was missed). `first` is a
/// subscription made already (at start, before APPL_DB is read back).
///
/// While `following` says the pipeline does not follow them (it leads), writes are dropped
/// undecoded; markers are always passed on.
pub(super) async fn follow_writes(
    db: DbLayout,
    mut first: Option<Subscription>,
    tx: mpsc::UnboundedSender<Observation>,
    following: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) {
    let channel = writes_channel(NEIGH_TABLE, db.appl.id);
    loop {
        let stream = match first.take() {
            Some(s) => Some(s),
            None => tokio::select! {
                s = subscribe_writes(&db) => s,
                _ = crate::runtime::tasks::shutdown_signalled(&mut stop) => return,
            },
        };
        if let Some((since, mut stream)) = stream {
            if tx.send(Observation::Gap { since }).is_err() {
                return;
            }
            loop {
                let msg = tokio::select! {
                    m = stream.next() => m,
                    _ = crate::runtime::tasks::shutdown_signalled(&mut stop) => return,
                };
                let Some(msg) = msg else { break };
                if !following.load(Ordering::Acquire) && !is_marker(msg.get_payload_bytes()) {
                    continue;
                }
                let payload: String = msg.get_payload().unwrap_or_default();
                match decode(&payload) {
                    Some(o) => {
                        if tx.send(o).is_err() {
                            return;
                        }
                    }
                    None => warn!("hot standby: an unreadable message on {channel}; skipped"),
                }
            }
            warn!("hot standby: the writes channel's subscription broke; subscribing again");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = crate::runtime::tasks::shutdown_signalled(&mut stop) => return,
        }
    }
}
