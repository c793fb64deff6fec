//! Another namespace that keeps deleting and re-adding neighbors: the kernel's neighbor hash
//! table is one for the whole host, so this moves entries under any dump of *our* namespace
//! (what other namespaces, garbage collection and flushes do on a real host).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use crate::netns::Netns;

pub struct Churner {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
    _ns: Arc<Netns>,
}

impl Churner {
    /// Starts churning `n` neighbors in a namespace of its own.
    pub fn start(n: u32) -> Churner {
        let ns = Arc::new(Netns::new("nsdc"));
        ns.ip("link add c0 type veth peer name c1");
        ns.ip("link set c0 up");
        ns.ip("link set c1 up");
        ns.ip("addr add 10.0.0.1/8 dev c0");
        let (mut add, mut del) = (String::new(), String::new());
        for i in 0..n {
            // IPv4's hash is `(key ^ hash(dev)) * seed`, bucket from the top bits: addresses
            // that differ only in their last octets spread with a fixed stride and may never
            // share a bucket with another device's. Varying the second octet mixes them in.
            let ip = format!("10.{}.{}.{}", i % 256, (i / 256) % 256, 2 + i / 65_536);
            let _ = writeln!(
                add,
                "neigh add {ip} lladdr 02:cc:00:{:02x}:{:02x}:{:02x} dev c0 nud permanent",
                (i >> 16) & 0xff,
                (i >> 8) & 0xff,
                i & 0xff
            );
            let _ = writeln!(del, "neigh del {ip} dev c0");
        }
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, rounds, ns) = (stop.clone(), rounds.clone(), ns.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    ns.batch(&add);
                    ns.batch(&del);
                    rounds.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        Churner {
            stop,
            rounds,
            thread: Some(thread),
            _ns: ns,
        }
    }

    /// Full add+delete rounds so far.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Churner {
    fn drop(&mut self) {
        self.stop();
    }
}
