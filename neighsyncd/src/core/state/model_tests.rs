//! `State` against a model: random interleavings of kernel changes (their events delivered or
//! lost), dumps with changes racing them, Redis writes that fail half way, Redis and daemon
//! restarts. Whatever happened, once events are no longer lost and a complete dump has been
//! applied and every write made, APPL_DB equals the SONiC rules applied to the kernel table.
//!
//! The model's rules cover the states whose outcome depends only on the entry itself
//! (REACHABLE, STALE, PERMANENT: set; INCOMPLETE, FAILED, gone: absent); the history-dependent
//! ones (skips) are the rules module's own tests' business.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use super::*;
use crate::core::neigh::{LinkMsg, nud};

const IFINDEX: u32 = 7;
const KEYS: u8 = 6;

/// What the kernel holds for one neighbor: (MAC's last byte, NUD state).
type Entry = (u8, u16);

/// When a change racing a dump lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Race {
    /// Before the dump reads its entry.
    Before,
    /// After the dump read its entry, and its live event is applied before the dump's
    /// messages (they come over another channel).
    AfterEventFirst,
    /// After the dump read its entry; its live event is applied after the dump's messages.
    After,
}

#[derive(Debug, Clone)]
enum Step {
    /// A kernel change; its live event is delivered, or lost (an overrun).
    Change {
        key: u8,
        to: Option<Entry>,
        delivered: bool,
    },
    /// A dump, with kernel changes racing it; all delivered (a loss during a dump aborts
    /// it, and the window starts over).
    Dump {
        racing: Vec<(u8, Option<Entry>, Race)>,
    },
    /// A write round trip; a failure may have applied a prefix of the operations.
    Flush { fail_after: Option<usize> },
    /// Redis restarts empty; the daemon reads it back.
    RedisRestart,
    /// The daemon restarts: a new `State` seeded from APPL_DB, then a complete dump.
    DaemonRestart,
}

fn entry() -> impl Strategy<Value = Option<Entry>> {
    prop_oneof![
        3 => (0u8..3, prop::sample::select(vec![nud::REACHABLE, nud::STALE, nud::PERMANENT]))
            .prop_map(Some),
        1 => prop::sample::select(vec![nud::INCOMPLETE, nud::FAILED]).prop_map(|s| Some((0, s))),
        2 => Just(None),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..KEYS, entry(), prop::bool::weighted(0.8))
            .prop_map(|(key, to, delivered)| Step::Change { key, to, delivered }),
        2 => prop::collection::vec(
            (
                0..KEYS,
                entry(),
                prop::sample::select(vec![Race::Before, Race::AfterEventFirst, Race::After]),
            ),
            0..4,
        )
            .prop_map(|racing| Step::Dump { racing }),
        3 => prop::option::weighted(0.3, 0usize..4).prop_map(|fail_after| Step::Flush { fail_after }),
        1 => Just(Step::RedisRestart),
        1 => Just(Step::DaemonRestart),
    ]
}

fn ip(key: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, key))
}

fn msg(key: u8, e: Option<Entry>, origin: Origin) -> NeighMsg {
    let (mac, state) = e.unwrap_or((0, nud::REACHABLE));
    NeighMsg {
        kind: if e.is_some() {
            NeighKind::New
        } else {
            NeighKind::Del
        },
        ifindex: IFINDEX,
        ip: ip(key),
        lladdr: crate::core::key::LinkAddr::new(Some(&[2, 0, 0, 0, 0, mac])),
        state,
        flags: 0,
        origin,
    }
}

/// The daemon's world: the kernel, APPL_DB, the clock, and the `State` under test.
struct World {
    kernel: BTreeMap<u8, Entry>,
    appl: HashMap<String, Told>,
    state: State,
    links: LinkCache,
    cfg: ConfigSnapshot,
    now: u64,
    /// Events were lost since the last complete dump.
    lost: bool,
}

impl World {
    fn new() -> World {
        let mut links = LinkCache::default();
        links.apply(&LinkMsg {
            ifindex: IFINDEX,
            name: "Ethernet0".into(),
            master: None,
            oper_up: true,
            deleted: false,
        });
        let mut w = World {
            kernel: BTreeMap::new(),
            appl: HashMap::new(),
            state: State::default(),
            links,
            cfg: ConfigSnapshot::default(),
            now: 1,
            lost: false,
        };
        w.state.replace_told(Vec::new(), true, 0);
        w.dump(&[]);
        w
    }

    /// APPL_DB as a read-back hands it over.
    fn read_back(&self) -> Vec<(NeighKey, Told)> {
        self.appl
            .iter()
            .map(|(k, t)| (NeighKey::from_appl_db(k), *t))
            .collect()
    }

    fn tick(&mut self) -> u64 {
        self.now += 1;
        self.now
    }

    fn change(&mut self, key: u8, to: Option<Entry>, delivered: bool) {
        match to {
            Some(e) => self.kernel.insert(key, e),
            None => self.kernel.remove(&key),
        };
        let ts = self.tick();
        if delivered {
            let m = msg(key, to, Origin::Live { ts_ns: ts });
            self.state.apply(&m, &self.links, &self.cfg, ts);
        } else {
            self.lost = true;
        }
    }

    /// A complete dump with changes racing it (see [`Race`]); their live events are
    /// delivered.
    fn dump(&mut self, racing: &[(u8, Option<Entry>, Race)]) {
        let start = self.tick();
        self.state.dump_start(start, true);
        let landing = |when: Race| racing.iter().filter(move |r| r.2 == when);
        for (key, to, _) in landing(Race::Before) {
            self.change(*key, *to, true);
        }
        let snapshot: Vec<(u8, Entry)> = self.kernel.iter().map(|(k, e)| (*k, *e)).collect();
        for (key, to, _) in landing(Race::AfterEventFirst) {
            self.change(*key, *to, true);
        }
        for (key, e) in snapshot {
            let now = self.tick();
            self.state.apply(
                &msg(key, Some(e), Origin::Dump),
                &self.links,
                &self.cfg,
                now,
            );
        }
        for (key, to, _) in landing(Race::After) {
            self.change(*key, *to, true);
        }
        let now = self.tick();
        self.state.dump_done(&self.cfg, now);
        self.lost = false;
    }

    fn flush(&mut self, fail_after: Option<usize>) {
        let (batch, _) = self.state.take_batch(usize::MAX);
        let applied = fail_after.unwrap_or(usize::MAX).min(batch.ops.len());
        for op in &batch.ops[..applied] {
            match op {
                Op::Set { key, value } => {
                    let f: Fields = value
                        .fields()
                        .into_iter()
                        .map(|(f, v)| (f.to_string(), v))
                        .collect();
                    self.appl.insert(key.clone(), Told::from_fields(&f));
                }
                Op::Del { key } => {
                    self.appl.remove(key);
                }
            }
        }
        if fail_after.is_some() {
            // The connection is dropped; once back, APPL_DB is read back.
            self.state.abort(batch);
            let now = self.tick();
            self.state.replace_told(self.read_back(), false, now);
        } else {
            self.state.commit(batch);
        }
    }

    fn run(&mut self, s: &Step) {
        match s {
            Step::Change { key, to, delivered } => self.change(*key, *to, *delivered),
            Step::Dump { racing } => self.dump(racing),
            Step::Flush { fail_after } => self.flush(*fail_after),
            Step::RedisRestart => {
                self.appl.clear();
                let now = self.tick();
                self.state.replace_told(Vec::new(), false, now);
            }
            Step::DaemonRestart => {
                self.state = State::default();
                let now = self.tick();
                self.state.replace_told(self.read_back(), true, now);
                self.dump(&[]);
            }
        }
    }

    /// Quiet: a dump if events were lost, then writes until nothing is pending.
    fn settle(&mut self) {
        if self.lost {
            self.dump(&[]);
        }
        for _ in 0..10 {
            if self.state.pending() == 0 {
                break;
            }
            self.flush(None);
        }
        assert_eq!(self.state.pending(), 0, "writes never settle");
    }

    /// The rules, applied to the kernel table.
    fn expected(&self) -> BTreeMap<String, String> {
        self.kernel
            .iter()
            .filter(|(_, (_, s))| [nud::REACHABLE, nud::STALE, nud::PERMANENT].contains(s))
            .map(|(k, (mac, _))| {
                (
                    rules::neigh_key("Ethernet0", &ip(*k)),
                    format!("02:00:00:00:00:{mac:02x}"),
                )
            })
            .collect()
    }

    fn appl_db(&self) -> BTreeMap<String, String> {
        self.appl
            .iter()
            .map(|(k, t)| {
                let v = match t {
                    Told::Value(v) => v.mac.to_string(),
                    Told::Foreign => "foreign".into(),
                };
                (k.clone(), v)
            })
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn appl_db_ends_equal_to_the_rules_applied_to_the_kernel(steps in prop::collection::vec(step(), 1..40)) {
        let mut w = World::new();
        for s in &steps {
            w.run(s);
        }
        w.settle();
        prop_assert_eq!(w.appl_db(), w.expected());
        // The family counts kept as entries change equal a recount.
        let recount = w.state.told().fold((0, 0), |(v4, v6), (_, t)| match t {
            Told::Value(v) if v.ipv6 => (v4, v6 + 1),
            _ => (v4 + 1, v6),
        });
        prop_assert_eq!(w.state.told_counts(), recount);
    }

    /// With nothing lost and every write made, no step leaves a write undone even without a
    /// dump: the live events alone keep APPL_DB exact.
    #[test]
    fn delivered_events_alone_keep_appl_db_exact(changes in prop::collection::vec((0..KEYS, entry()), 1..40)) {
        let mut w = World::new();
        for (key, to) in changes {
            w.change(key, to, true);
            w.flush(None);
            prop_assert_eq!(w.appl_db(), w.expected());
        }
    }
}
