//! The chaos suite: a seeded random mix of kernel changes, link and CONFIG_DB changes, event
//! losses, Redis and daemon crashes. After every step comes a quiet point: once the fault is
//! undone, what orchagent pops must equal the oracle's table (`oracle`) within a deadline, or
//! the run records a divergence with its diff. `cargo xtask chaos` runs it.

pub mod faults;
pub mod oracle;
pub mod report;

use std::time::{Duration, Instant};

use faults::{POOLS, Pool, Rng, Step};
use oracle::Knobs;
use report::Report;

use crate::daemon::Daemon;
use crate::netns::Lab;
use crate::orchagent::Orchagent;
use crate::redis_server::RedisServer;

pub struct Options {
    pub seed: u64,
    pub duration: Duration,
    pub max_steps: Option<usize>,
    /// `netlink` or `ebpf`.
    pub source: String,
    /// How long a quiet point may take to converge before it is a divergence.
    pub deadline: Duration,
}

/// The interface that is renamed and re-created, under its two names.
const RENAMED: (&str, &str) = ("Ethernet4", "Ethernet44");

struct Chaos {
    o: Options,
    rng: Rng,
    redis: RedisServer,
    lab: Lab,
    daemon: Daemon,
    /// The small-buffer flags the daemon runs with now, if any.
    buffer: Vec<String>,
    knobs: Knobs,
    renamed: bool,
    report: Report,
}

pub async fn run(o: Options) -> Report {
    crate::raise_neigh_limits(200_000);
    let redis = RedisServer::start();
    let lab = Lab::new();
    for p in POOLS {
        lab.dut.ip(&format!(
            "addr add {}.{}.0.1/16 dev {}",
            p.v4.0, p.v4.1, p.dev
        ));
        lab.dut
            .ip(&format!("addr add {}::1/64 dev {} nodad", p.v6, p.dev));
    }
    let daemon = Daemon::start(&lab.dut, &redis, &["--source", &o.source]);
    daemon.wait_ready(&lab.dut).await;
    let report = Report::new(o.seed, &o.source);
    let mut c = Chaos {
        rng: Rng::new(o.seed),
        o,
        redis,
        lab,
        daemon,
        buffer: Vec::new(),
        knobs: Knobs::default(),
        renamed: false,
        report,
    };
    c.go().await;
    c.report
}

impl Chaos {
    async fn go(&mut self) {
        let end = Instant::now() + self.o.duration;
        let mut n = 0;
        while Instant::now() < end && self.o.max_steps.is_none_or(|m| n < m) {
            let step = Step::draw(&mut self.rng);
            n += 1;
            self.step(step).await;
            self.report.step(step);
            if !self.quiet(step).await {
                break; // the first divergence ends the run: it is the finding
            }
        }
    }

    fn dev(&self, p: &Pool) -> &'static str {
        if p.dev == RENAMED.0 && self.renamed {
            RENAMED.1
        } else {
            p.dev
        }
    }

    async fn step(&mut self, step: Step) {
        let pool = *self.rng.pick(&POOLS);
        let dev = self.dev(&pool);
        match step {
            Step::Burst => {
                let n = if self.rng.chance(15) {
                    10_000
                } else {
                    self.rng.below(3000) as u32 + 10
                };
                let lines = faults::burst(&mut self.rng, &pool, dev, n);
                self.lab.dut.batch_force(&lines);
            }
            Step::Delete => self.delete_some(dev, 50, false),
            Step::MacReplace => self.rewrite(dev, true),
            Step::Flap => self.rewrite(dev, false),
            Step::Resolve => {
                if !self.knobs.evpn {
                    for a in ["10.0.0.2", "2000::2", "192.168.0.2", "fc00::2"] {
                        let _ = self.lab.dut.exec(&["ping", "-c", "1", "-W", "1", a]);
                    }
                }
            }
            Step::LinkDownUp => {
                let d = self.dev(&POOLS[1]);
                self.lab.dut.ip(&format!("link set {d} down"));
                self.lab.dut.ip(&format!("link set {d} up"));
            }
            Step::Rename => {
                let (from, to) = if self.renamed {
                    (RENAMED.1, RENAMED.0)
                } else {
                    RENAMED
                };
                self.lab.dut.ip(&format!("link set {from} down"));
                self.lab.dut.ip(&format!("link set {from} name {to}"));
                self.lab.dut.ip(&format!("link set {to} up"));
                self.renamed = !self.renamed;
            }
            Step::Recreate => self.recreate(),
            Step::LinkLocalKnob => self.toggle_link_local().await,
            Step::DualTorKnob => {
                self.knobs.dual_tor = !self.knobs.dual_tor;
                self.write_knobs().await;
            }
            Step::EvpnKnob => {
                self.knobs.evpn = !self.knobs.evpn;
                self.write_knobs().await;
            }
            Step::Overrun => {
                let size = self.rng.pick(&["4096", "16384", "65536"]).to_string();
                let flag = match self.o.source.as_str() {
                    "netlink" => "--netlink-rcvbuf",
                    _ => "--ebpf-ring-bytes",
                };
                self.buffer = vec![flag.to_string(), size];
                self.restart_daemon().await;
                let lines = faults::burst(&mut self.rng, &pool, dev, 10_000);
                self.lab.dut.batch_force(&lines);
            }
            Step::RedisKill | Step::RedisPause | Step::DaemonKill => {
                self.during_burst(step, &pool, dev).await;
            }
        }
        self.report.fault(step);
        // Keep the table within bounds: the kernel's own limits are host-wide.
        if crate::kernel::neighbors(&self.lab.dut).len() > 20_000 {
            for p in POOLS {
                let d = self.dev(&p);
                self.delete_some(d, 100, true);
            }
        }
    }

    /// Deletes `percent` of the chaos-made neighbors on `dev` (all if `all`), fe80 ones too.
    fn delete_some(&mut self, dev: &str, percent: u64, all: bool) {
        let mut lines = String::new();
        for n in crate::kernel::neighbors(&self.lab.dut) {
            if n.dev == dev && (all || self.rng.chance(percent)) && !is_peer(&n.dst) {
                lines.push_str(&format!("neigh del {} dev {dev}\n", n.dst));
            }
        }
        self.lab.dut.batch_force(&lines);
    }

    /// A new MAC (`mac`), or a STALE/REACHABLE flap with the same one, for some neighbors.
    fn rewrite(&mut self, dev: &str, mac: bool) {
        let mut lines = String::new();
        for n in crate::kernel::neighbors(&self.lab.dut) {
            let (Some(old), true) = (&n.lladdr, n.dev == dev && !is_peer(&n.dst)) else {
                continue;
            };
            if n.states.iter().any(|s| s == "NOARP") || !self.rng.chance(30) {
                continue;
            }
            let new = if mac {
                faults::mac_text(
                    self.rng.next_u64() & 0x0000_feff_ffff_ffff | 0x0000_0200_0000_0000,
                )
            } else {
                old.clone()
            };
            lines.push_str(&format!(
                "neigh replace {} lladdr {new} dev {dev} nud stale\n",
                n.dst
            ));
            lines.push_str(&format!(
                "neigh replace {} lladdr {new} dev {dev} nud reachable\n",
                n.dst
            ));
        }
        self.lab.dut.batch_force(&lines);
    }

    fn recreate(&mut self) {
        let d = self.dev(&POOLS[1]);
        self.lab.dut.ip(&format!("link del {d}"));
        self.lab.dut.ip(&format!(
            "link add {} type veth peer name p4 netns {}",
            RENAMED.0,
            self.lab.peer.name()
        ));
        self.renamed = false;
        let p = POOLS[1];
        for cmd in [
            format!("addr add 10.0.4.1/24 dev {}", p.dev),
            format!("addr add 2004::1/64 dev {} nodad", p.dev),
            format!("addr add {}.{}.0.1/16 dev {}", p.v4.0, p.v4.1, p.dev),
            format!("addr add {}::1/64 dev {} nodad", p.v6, p.dev),
            format!("link set {} up", p.dev),
        ] {
            self.lab.dut.ip(&cmd);
        }
        let _ = self.lab.peer.try_ip("addr add 10.0.4.2/24 dev p4");
        let _ = self.lab.peer.try_ip("addr add 2004::2/64 dev p4 nodad");
        let _ = self.lab.peer.try_ip("link set p4 up");
    }

    /// Link-local on or off for Ethernet4 or Vlan1000; before it goes off, that interface's
    /// fe80 neighbors are deleted (the oracle's discipline).
    async fn toggle_link_local(&mut self) {
        let dev = *self.rng.pick(&["Ethernet4", "Vlan1000"]);
        if self.knobs.link_local.remove(dev) {
            let mut lines = String::new();
            for n in crate::kernel::neighbors(&self.lab.dut) {
                if n.dev == dev && n.dst.starts_with("fe80:") {
                    lines.push_str(&format!("neigh del {} dev {dev}\n", n.dst));
                }
            }
            self.lab.dut.batch_force(&lines);
        } else {
            self.knobs.link_local.insert(dev.to_string());
        }
        self.write_knobs().await;
    }

    /// CONFIG_DB as the knobs say (also after Redis lost it).
    async fn write_knobs(&mut self) {
        let mut c = self.redis.conn(4).await;
        let mut p = redis::pipe();
        p.cmd("DEL")
            .arg("PEER_SWITCH|peer")
            .arg("VXLAN_EVPN_NVO|nvo")
            .arg("INTERFACE|Ethernet4")
            .arg("VLAN_INTERFACE|Vlan1000");
        if self.knobs.dual_tor {
            p.cmd("HSET")
                .arg("PEER_SWITCH|peer")
                .arg("address_ipv4")
                .arg("10.1.0.1");
        }
        if self.knobs.evpn {
            p.cmd("HSET")
                .arg("VXLAN_EVPN_NVO|nvo")
                .arg("source_vtep")
                .arg("vtep");
        }
        for (table, dev) in [("INTERFACE", "Ethernet4"), ("VLAN_INTERFACE", "Vlan1000")] {
            let v = if self.knobs.link_local.contains(dev) {
                "enable"
            } else {
                "disable"
            };
            p.cmd("HSET")
                .arg(format!("{table}|{dev}"))
                .arg("ipv6_use_link_local_only")
                .arg(v);
        }
        let _: Result<(), _> = p.query_async(&mut c).await;
    }

    async fn restart_daemon(&mut self) {
        self.daemon.kill();
        let mut args = vec!["--source".to_string(), self.o.source.clone()];
        args.extend(self.buffer.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.daemon = Daemon::start(&self.lab.dut, &self.redis, &args);
        self.daemon.wait_ready(&self.lab.dut).await;
    }

    /// A burst in the background while the fault strikes.
    async fn during_burst(&mut self, step: Step, pool: &Pool, dev: &str) {
        let n = self.rng.below(10_000) as u32 + 1000;
        let lines = faults::burst(&mut self.rng, pool, dev, n);
        let ns = self.lab.dut.name().to_string();
        let burst = std::thread::spawn(move || {
            let mut f = tempfile::NamedTempFile::new().expect("temp file");
            std::io::Write::write_all(&mut f, lines.as_bytes()).expect("write batch");
            let _ = std::process::Command::new("ip")
                .args(["-n", &ns, "-force", "-batch"])
                .arg(f.path())
                .output();
        });
        tokio::time::sleep(Duration::from_millis(self.rng.below(400) + 20)).await;
        match step {
            Step::RedisKill => {
                self.redis.restart();
                self.write_knobs().await;
            }
            Step::RedisPause => {
                self.redis.pause();
                tokio::time::sleep(Duration::from_millis(self.rng.below(4000) + 1000)).await;
                self.redis.resume();
            }
            _ => self.restart_daemon().await,
        }
        let _ = burst.join();
    }

    /// Waits until what orchagent pops equals the oracle's table; records the time it took, or
    /// the divergence. Returns whether it converged.
    async fn quiet(&mut self, step: Step) -> bool {
        let t0 = Instant::now();
        if let Some(st) = self.daemon.wait_exit(Duration::ZERO) {
            self.report.diverged(
                step,
                format!("the daemon exited ({st})"),
                self.daemon.tail(),
            );
            return false;
        }
        self.daemon.wait_ready(&self.lab.dut).await;
        let mut orch = Orchagent::new(self.redis.conn(0).await);
        let deadline = t0 + self.o.deadline;
        loop {
            let want = oracle::expected(&self.lab.dut, &self.knobs);
            let got = orch.sync().await;
            let diff = match crate::wait::diff(&got, &want) {
                Ok(()) => {
                    self.report.converged(t0.elapsed());
                    return true;
                }
                Err(d) => d,
            };
            if Instant::now() >= deadline {
                let (_, ready) = self
                    .lab
                    .dut
                    .http_get(crate::daemon::METRICS_PORT, "/ready")
                    .unwrap_or_default();
                let metrics: Vec<String> = [
                    "neighsyncd_pending_operations",
                    "neighsyncd_redis_connected",
                    "neighsyncd_dump_attempts_total",
                    "neighsyncd_resyncs_total",
                    "neighsyncd_events_total",
                ]
                .iter()
                .map(|m| format!("{m} {}", self.daemon.metric(&self.lab.dut, m, "")))
                .collect();
                // The whole log, kept past the run (the lab's temp dirs are not).
                let saved = std::env::temp_dir().join(format!(
                    "neighsyncd-chaos-{}-{}-{}.log",
                    self.o.source, self.o.seed, self.report.steps
                ));
                let _ = std::fs::write(&saved, self.daemon.log());
                let state = format!(
                    "{diff}\n/ready: {ready}\n{}\nfull daemon log: {}",
                    metrics.join("\n"),
                    saved.display()
                );
                self.report.diverged(step, state, self.daemon.tail());
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The peers the lab resolves for real (the chaos run leaves them alone).
fn is_peer(dst: &str) -> bool {
    [
        "10.0.0.2",
        "2000::2",
        "192.168.0.2",
        "fc00::2",
        "10.0.4.2",
        "2004::2",
    ]
    .contains(&dst)
}
