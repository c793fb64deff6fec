//! The chaos run's steps: what the kernel, CONFIG_DB, Redis and the daemon are put through,
//! drawn from a seeded generator (the same seed gives the same sequence of steps).

use std::fmt::Write as _;

/// A deterministic generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// One step of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// Neighbors added or replaced (a few to tens of thousands).
    Burst,
    Delete,
    MacReplace,
    /// REACHABLE -> STALE -> REACHABLE with the same MAC.
    Flap,
    /// Real ARP/ND resolution of the peers (only while EVPN is off).
    Resolve,
    LinkDownUp,
    Rename,
    /// The interface deleted and created again (a new ifindex).
    Recreate,
    LinkLocalKnob,
    DualTorKnob,
    EvpnKnob,
    /// The daemon restarted with a small event buffer (netlink) or ring (eBPF), then a burst.
    Overrun,
    /// Redis killed (its data gone) and restarted, during a burst.
    RedisKill,
    /// Redis frozen (SIGSTOP) for 1-5 s, during a burst.
    RedisPause,
    /// The daemon killed (SIGKILL) and restarted, during a burst.
    DaemonKill,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Burst => "burst",
            Step::Delete => "delete",
            Step::MacReplace => "mac_replace",
            Step::Flap => "flap",
            Step::Resolve => "resolve",
            Step::LinkDownUp => "link_down_up",
            Step::Rename => "link_rename",
            Step::Recreate => "link_recreate",
            Step::LinkLocalKnob => "config_link_local",
            Step::DualTorKnob => "config_dual_tor",
            Step::EvpnKnob => "config_evpn",
            Step::Overrun => "event_overrun",
            Step::RedisKill => "redis_kill",
            Step::RedisPause => "redis_pause",
            Step::DaemonKill => "daemon_kill",
        }
    }

    /// A step's weight in the mix.
    const WEIGHTS: [(Step, u64); 15] = [
        (Step::Burst, 6),
        (Step::Delete, 3),
        (Step::MacReplace, 2),
        (Step::Flap, 2),
        (Step::Resolve, 1),
        (Step::LinkDownUp, 1),
        (Step::Rename, 1),
        (Step::Recreate, 1),
        (Step::LinkLocalKnob, 1),
        (Step::DualTorKnob, 1),
        (Step::EvpnKnob, 1),
        (Step::Overrun, 2),
        (Step::RedisKill, 1),
        (Step::RedisPause, 1),
        (Step::DaemonKill, 2),
    ];

    pub fn draw(rng: &mut Rng) -> Step {
        let total: u64 = Step::WEIGHTS.iter().map(|(_, w)| w).sum();
        let mut x = rng.below(total);
        for (s, w) in Step::WEIGHTS {
            if x < w {
                return s;
            }
            x -= w;
        }
        Step::Burst
    }
}

/// Where neighbors live: an interface and its address pools.
#[derive(Debug, Clone, Copy)]
pub struct Pool {
    pub dev: &'static str,
    /// IPv4 prefix `a.b.` (the interface has `a.b.0.1/16`).
    pub v4: (u8, u8),
    /// IPv6 `/64` prefix (the interface has `PREFIX::1/64`).
    pub v6: &'static str,
}

/// The pools; Ethernet4 is the interface that gets renamed and re-created.
pub const POOLS: [Pool; 3] = [
    Pool {
        dev: "Ethernet0",
        v4: (10, 100),
        v6: "2100",
    },
    Pool {
        dev: "Ethernet4",
        v4: (10, 104),
        v6: "2104",
    },
    Pool {
        dev: "Vlan1000",
        v4: (10, 108),
        v6: "2108",
    },
];

/// `n` neighbor adds (as replaces: idempotent) on `dev`: IPv4, IPv6 and link-local, in
/// PERMANENT, REACHABLE, STALE or NOARP-with-extern_learn (never a history-dependent state,
/// see `oracle`).
pub fn burst(rng: &mut Rng, pool: &Pool, dev: &str, n: u32) -> String {
    let mut s = String::new();
    for _ in 0..n {
        let host = rng.below(60_000) as u32 + 2;
        let ip = match rng.below(10) {
            0..=5 => format!("{}.{}.{}.{}", pool.v4.0, pool.v4.1, host >> 8, host & 0xff),
            6..=8 => format!("{}::{:x}", pool.v6, host),
            _ => format!("fe80::{:x}", host),
        };
        let mac = rng.next_u64() & 0x0000_feff_ffff_ffff | 0x0000_0200_0000_0000;
        let nud = *rng.pick(&[
            "nud permanent",
            "nud reachable",
            "nud stale",
            "nud noarp extern_learn",
        ]);
        let _ = writeln!(
            s,
            "neigh replace {ip} lladdr {} dev {dev} {nud}",
            mac_text(mac)
        );
    }
    s
}

pub fn mac_text(m: u64) -> String {
    let b = m.to_be_bytes();
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[2], b[3], b[4], b[5], b[6], b[7]
    )
}
