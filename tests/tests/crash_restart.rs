//! Our own crashes: SIGKILL at random points of a burst, restart, 20 rounds. APPL_DB (as
//! orchagent sees it) must always end equal to the kernel.

use std::fmt::Write as _;
use std::time::Duration;

use neighsyncd_tests::daemon::Daemon;
use neighsyncd_tests::netns::Lab;
use neighsyncd_tests::orchagent::Orchagent;
use neighsyncd_tests::redis_server::RedisServer;
use neighsyncd_tests::{raise_neigh_limits, require_lab, wait};

/// A small deterministic generator (the seed is printed, so a failure can be replayed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_bursts_always_converges() {
    require_lab("sigkill_during_bursts_always_converges");
    raise_neigh_limits(50_000);
    let seed = std::env::var("NSD_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("seed {seed} (NSD_SEED={seed} replays it)");
    let mut rng = Lcg(seed);
    let redis = RedisServer::start();
    let lab = Lab::new();
    lab.dut.ip("addr add 10.100.0.1/16 dev Ethernet0");
    let mut orch = Orchagent::new(redis.conn(0).await);
    for round in 0..20 {
        let mut d = Daemon::start(&lab.dut, &redis, &[]);
        d.wait_ready(&lab.dut).await;
        // A burst of adds, MAC changes and deletes over a pool of 3000 addresses.
        let mut text = String::new();
        for _ in 0..3000 {
            let i = rng.next() % 3000;
            let ip = format!("10.100.{}.{}", i / 200, i % 200 + 2);
            match rng.next() % 4 {
                0 => writeln!(text, "neigh del {ip} dev Ethernet0").unwrap(),
                _ => writeln!(
                    text,
                    "neigh replace {ip} lladdr 02:00:00:{:02x}:{:02x}:{:02x} dev Ethernet0 nud permanent",
                    round,
                    (i >> 8) & 0xff,
                    i & 0xff
                )
                .unwrap(),
            }
        }
        let ns = lab.dut.name().to_string();
        let burst = std::thread::spawn(move || {
            let mut f = tempfile::NamedTempFile::new().unwrap();
            std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
            // `-force`: deletes of absent neighbors must not stop the batch.
            std::process::Command::new("ip")
                .args(["-n", &ns, "-force", "-batch"])
                .arg(f.path())
                .output()
                .unwrap();
        });
        let delay = rng.next() % 300;
        tokio::time::sleep(Duration::from_millis(delay)).await; // the random crash point, not a synchronisation
        d.kill();
        let d2 = Daemon::start(&lab.dut, &redis, &[]);
        burst.join().unwrap();
        d2.wait_ready(&lab.dut).await;
        wait::appl_db_equals_kernel(
            &format!("round {round} (killed after {delay} ms): APPL_DB equals the kernel"),
            &mut orch,
            &lab.dut,
            Duration::from_secs(30),
        )
        .await;
        drop(d2);
    }
}
