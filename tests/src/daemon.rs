//! The neighsyncd binary running inside a lab namespace.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::netns::Netns;
use crate::redis_server::RedisServer;

/// The metrics port inside the namespace (each namespace has its own loopback).
pub const METRICS_PORT: u16 = 9091;
/// The API listeners the harness gives a daemon inside its namespace.
pub const REST: &str = "[::1]:8080";
pub const GRPC: &str = "[::1]:50051";

/// The built `neighsyncd` binary: `$NEIGHSYNCD_BIN`, or next to this test executable.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("NEIGHSYNCD_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("current exe");
    // Test executables live in target/<profile>/deps, other binaries in target/<profile>.
    let bin = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join("neighsyncd"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| exe.with_file_name("neighsyncd"));
    assert!(
        bin.exists(),
        "{} not built: run `cargo build -p neighsyncd` (cargo xtask test does)",
        bin.display()
    );
    bin
}

/// neighsyncctl (built beside the daemon) inside `ns`: whether it succeeded, and what it
/// printed (standard output, then standard error).
pub fn neighsyncctl(ns: &Netns, args: &[&str]) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns.name()])
        .arg(binary().with_file_name("neighsyncctl"))
        .args(args)
        .output()
        .expect("run neighsyncctl");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// How the harness starts a daemon.
enum Launch<'a> {
    /// In the namespace (`ip netns exec`), against this Redis.
    Redis(&'a RedisServer),
    /// In the namespace, `extra` saying what it talks to.
    InNamespace,
    /// Here (the host's namespace), `extra` saying where it goes and what it talks to.
    Here,
}

pub struct Daemon {
    child: Option<Child>,
    ns_name: String,
    /// Where its metrics and `/ready` are, in its namespace (`--metrics-listen` in `extra`,
    /// or [`METRICS_PORT`]).
    metrics_port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts the daemon in `ns` against `redis` with extra flags.
    pub fn start(ns: &Netns, redis: &RedisServer, extra: &[&str]) -> Daemon {
        let level =
            std::env::var("NEIGHSYNCD_TEST_LOG").unwrap_or_else(|_| "neighsyncd=debug".into());
        Self::start_with_log(ns, redis, extra, &level)
    }

    /// Like [`Daemon::start`], with this `--log-level`.
    pub fn start_with_log(ns: &Netns, redis: &RedisServer, extra: &[&str], level: &str) -> Daemon {
        Self::start_with_env(ns, redis, extra, level, &[])
    }

    /// Like [`Daemon::start_with_log`], with extra environment variables.
    pub fn start_with_env(
        ns: &Netns,
        redis: &RedisServer,
        extra: &[&str],
        level: &str,
        envs: &[(&str, &str)],
    ) -> Daemon {
        Self::spawn(ns, Launch::Redis(redis), &[], extra, level, envs)
    }

    /// Like [`Daemon::start`], run through `wrapper` (a command that runs its arguments, e.g.
    /// `setpriv` with its options) inside the namespace.
    pub fn start_wrapped(
        ns: &Netns,
        redis: &RedisServer,
        wrapper: &[&str],
        extra: &[&str],
    ) -> Daemon {
        let level =
            std::env::var("NEIGHSYNCD_TEST_LOG").unwrap_or_else(|_| "neighsyncd=debug".into());
        Self::spawn(ns, Launch::Redis(redis), wrapper, extra, &level, &[])
    }

    /// Daemon `i` of a hot-standby pair (`--ha`) in `ns`, with listeners of its own there
    /// (metrics on 9191 + i, REST on 8181 + i, gRPC on 50151 + i), and `extra`.
    pub fn start_ha(ns: &Netns, redis: &RedisServer, i: u16, extra: &[&str]) -> Daemon {
        let metrics = format!("127.0.0.1:{}", 9191 + i);
        let rest = format!("[::1]:{}", 8181 + i);
        let grpc = format!("[::1]:{}", 50151 + i);
        let mut args = vec![
            "--ha",
            "--metrics-listen",
            &metrics,
            "--rest-listen",
            &rest,
            "--grpc-listen",
            &grpc,
        ];
        args.extend(extra);
        Self::start(ns, redis, &args)
    }

    /// The daemon as SONiC's multi-ASIC runs it: started in the host's namespace, it enters
    /// `ns` itself (`--namespace`, in `extra`) and finds its databases in SONiC's config
    /// files (no `--redis`). `ns` is where the test then reaches its listeners.
    pub fn start_sonic(ns: &Netns, extra: &[&str]) -> Daemon {
        let level =
            std::env::var("NEIGHSYNCD_TEST_LOG").unwrap_or_else(|_| "neighsyncd=debug".into());
        Self::spawn(ns, Launch::Here, &[], extra, &level, &[])
    }

    /// The daemon serving several SONiC namespaces from one process (`--namespace` repeated,
    /// in `extra`): started in `ns` (`ip netns exec`), which it stays in and where the test
    /// reaches its listeners, it reaches into each namespace it serves.
    pub fn start_sonic_in(ns: &Netns, extra: &[&str]) -> Daemon {
        let level =
            std::env::var("NEIGHSYNCD_TEST_LOG").unwrap_or_else(|_| "neighsyncd=debug".into());
        Self::spawn(ns, Launch::InNamespace, &[], extra, &level, &[])
    }

    fn spawn(
        ns: &Netns,
        launch: Launch<'_>,
        wrapper: &[&str],
        extra: &[&str],
        level: &str,
        envs: &[(&str, &str)],
    ) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("nsd-daemon-")
            .tempdir()
            .expect("temp dir");
        let log = dir.path().join("neighsyncd.log");
        let logf = std::fs::File::create(&log).expect("log file");
        // The APIs on TCP in the namespace (each namespace has its own loopback), unless the
        // test says otherwise: the default unix sockets are one path for the whole host.
        let mut listeners = vec![];
        for (flag, addr) in [("--rest-listen", REST), ("--grpc-listen", GRPC)] {
            if !extra.contains(&flag) {
                listeners.extend([flag, addr]);
            }
        }
        // The suite runs in both source modes (see `test_source`) unless a test names one.
        if !extra.contains(&"--source") {
            listeners.extend(["--source", crate::test_source()]);
        }
        let mut cmd = match launch {
            Launch::Redis(redis) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns.name()])
                    .args(wrapper)
                    .arg(binary())
                    .arg("--redis")
                    .arg(redis.url());
                c
            }
            Launch::InNamespace => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns.name()])
                    .args(wrapper)
                    .arg(binary());
                c
            }
            Launch::Here => Command::new(binary()),
        };
        let metrics_port = extra
            .iter()
            .position(|a| *a == "--metrics-listen")
            .and_then(|i| extra.get(i + 1))
            .and_then(|a| a.rsplit(':').next()?.parse().ok())
            .unwrap_or(METRICS_PORT);
        if !extra.contains(&"--metrics-listen") {
            cmd.args(["--metrics-listen", &format!("127.0.0.1:{METRICS_PORT}")]);
        }
        let child = cmd
            .args(["--log-level", level])
            .args(listeners)
            .envs(envs.iter().copied())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("spawn neighsyncd");
        Daemon {
            child: Some(child),
            ns_name: ns.name().to_string(),
            metrics_port,
            log,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for `/ready` (initial sync done, Redis up).
    pub async fn wait_ready(&self, ns: &Netns) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok((200, _)) = ns.http_get(self.metrics_port, "/ready") {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "daemon in {} not ready within 20 s; log:\n{}",
                    self.ns_name,
                    self.tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A metric's value summed over the label sets whose text contains `labels` (e.g.
    /// `cause="netlink_overrun"`).
    pub fn metric(&self, ns: &Netns, name: &str, labels: &str) -> f64 {
        let (_, body) = ns
            .http_get(self.metrics_port, "/metrics")
            .unwrap_or((0, String::new()));
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| {
                l.starts_with(name)
                    && (l[name.len()..].starts_with('{') || l[name.len()..].starts_with(' '))
            })
            .filter(|l| l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Where its metrics and `/ready` are (in its namespace).
    pub fn metrics_port(&self) -> u16 {
        self.metrics_port
    }

    /// `/ready`'s status and body.
    pub fn ready(&self, ns: &Netns) -> (u16, serde_json::Value) {
        match ns.http_get(self.metrics_port, "/ready") {
            Ok((code, body)) => (code, serde_json::from_str(&body).unwrap_or_default()),
            Err(_) => (0, serde_json::Value::Null),
        }
    }

    pub fn tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// SIGTERM and wait for the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        // `ip netns exec` execs the binary, so the child pid is the daemon's.
        // SAFETY: sending a signal to a pid we spawned and have not reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "daemon did not exit within 15 s of SIGTERM; log:\n{}",
                    self.tail()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the daemon to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                self.child = None;
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Freezes it (SIGSTOP), as a process descheduled for long would be.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Thaws it (SIGCONT).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: a signal to a child we spawned and have not reaped.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- neighsyncd log ({}) ---\n{}", self.ns_name, self.tail());
        }
        self.kill();
    }
}
