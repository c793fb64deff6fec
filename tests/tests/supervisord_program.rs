//! The shipped supervisord program (`deploy/supervisord/neighsyncd.conf`) under a real
//! supervisord: a crashed daemon comes back and syncs again; a clean stop stays stopped. The
//! program's own settings are used as shipped; only what ties it to a SONiC container is
//! replaced (the binary's path and arguments, syslog, and the dependent-startup plugin's start,
//! which stock supervisord does not have: the program is started by hand instead).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use neighsyncd_tests::daemon::{METRICS_PORT, binary};
use neighsyncd_tests::netns::Lab;
use neighsyncd_tests::orchagent::Orchagent;
use neighsyncd_tests::redis_server::RedisServer;
use neighsyncd_tests::root;
use neighsyncd_tests::{require_lab, require_tool, wait};

/// supervisord, killed with its programs on drop.
struct Supervisord {
    child: Child,
    conf: std::path::PathBuf,
    ns: String,
}

impl Supervisord {
    fn ctl(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "supervisorctl", "-c"])
            .arg(&self.conf)
            .args(args)
            .output()
            .expect("supervisorctl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The daemon's pid while supervisord says it is RUNNING.
    fn running_pid(&self) -> Option<u32> {
        let status = self.ctl(&["status", "neighsyncd"]);
        if !status.contains("RUNNING") {
            return None;
        }
        status
            .split("pid ")
            .nth(1)?
            .split(',')
            .next()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Supervisord {
    fn drop(&mut self) {
        let _ = self.ctl(&["stop", "all"]);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_daemon_comes_back_and_a_stopped_one_stays_stopped() {
    let test = "a_crashed_daemon_comes_back_and_a_stopped_one_stays_stopped";
    require_lab(test);
    require_tool("supervisord", test);
    let redis = RedisServer::start();
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let shipped =
        std::fs::read_to_string(root().join("deploy/supervisord/neighsyncd.conf")).unwrap();
    let daemon_cmd = format!(
        "{} --redis {} --metrics-listen 127.0.0.1:{METRICS_PORT} --rest-listen [::1]:8080 --grpc-listen [::1]:50051 --source netlink",
        binary().display(),
        redis.url()
    );
    let program: String = shipped
        .lines()
        .filter(|l| !l.starts_with("dependent_startup"))
        .map(|l| {
            if l.starts_with("command=/usr/bin/neighsyncd --log-target syslog") {
                format!("command={daemon_cmd}")
            } else if l.starts_with("command=/usr/bin/neighsyncd restore") {
                format!(
                    "command={} --redis {} restore",
                    binary().display(),
                    redis.url()
                )
            } else if l.ends_with("_logfile=syslog") {
                l.replace("syslog", &dir.path().join("program.log").to_string_lossy())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let sock = dir.path().join("supervisor.sock");
    let conf = dir.path().join("supervisord.conf");
    std::fs::write(
        &conf,
        format!(
            "[supervisord]\nlogfile={}\npidfile={}\nnodaemon=true\n\n\
             [unix_http_server]\nfile={}\n\n\
             [rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n\
             [supervisorctl]\nserverurl=unix://{}\n\n{program}\n",
            dir.path().join("supervisord.log").display(),
            dir.path().join("supervisord.pid").display(),
            sock.display(),
            sock.display(),
        ),
    )
    .unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", lab.dut.name(), "supervisord", "-c"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("supervisord");
    let sup = Supervisord {
        child,
        conf,
        ns: lab.dut.name().to_string(),
    };
    wait::until(
        "supervisord answering",
        Duration::from_secs(20),
        async || {
            if sup.ctl(&["status"]).contains("neighsyncd") {
                Ok(())
            } else {
                Err("no answer".into())
            }
        },
    )
    .await;
    // As the container does: the restore step, then the daemon.
    sup.ctl(&["start", "restore_neighbors"]);
    sup.ctl(&["start", "neighsyncd"]);
    let mut orch = Orchagent::new(redis.conn(0).await);
    let mut in_appl_db = async |key: &str| {
        wait::until(
            &format!("{key} in APPL_DB"),
            Duration::from_secs(30),
            async || {
                if orch.sync().await.contains_key(key) {
                    Ok(())
                } else {
                    Err("not yet".into())
                }
            },
        )
        .await;
    };
    lab.dut
        .ip("neigh add 10.0.0.2 lladdr 02:00:00:00:00:02 dev Ethernet0 nud permanent");
    in_appl_db("Ethernet0:10.0.0.2").await;
    let first = sup.running_pid().expect("neighsyncd RUNNING");
    // A crash: SIGKILL. supervisord starts it again, and it syncs what changed meanwhile.
    // SAFETY: a signal to the daemon supervisord started for this test.
    unsafe { libc::kill(first as i32, libc::SIGKILL) };
    lab.dut
        .ip("neigh add 10.0.0.3 lladdr 02:00:00:00:00:03 dev Ethernet0 nud permanent");
    wait::until(
        "neighsyncd restarted",
        Duration::from_secs(30),
        async || match sup.running_pid() {
            Some(p) if p != first => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    in_appl_db("Ethernet0:10.0.0.3").await;
    // A clean stop (SIGTERM, exit 0) is not a crash: it stays stopped.
    let stopped = sup.ctl(&["stop", "neighsyncd"]);
    assert!(stopped.contains("stopped"), "{stopped}");
    let status = sup.ctl(&["status", "neighsyncd"]);
    assert!(status.contains("STOPPED"), "{status}");
}
