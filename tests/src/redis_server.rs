//! A private redis-server on a unix socket in its own temp dir, configured like SONiC's
//! (keyspace notifications on).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;

pub struct RedisServer {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("nsd-redis-")
            .tempdir()
            .expect("temp dir");
        let mut s = RedisServer { dir, child: None };
        s.spawn();
        s
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `--redis` URL for the daemon.
    pub fn url(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    pub fn db_url(&self, db: i64) -> String {
        format!("unix://{}?db={db}", self.socket().display())
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no"])
            .arg("--unixsocket")
            .arg(self.socket())
            .args(["--unixsocketperm", "777", "--notify-keyspace-events", "AKE"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut s) = std::os::unix::net::UnixStream::connect(self.socket()) {
                use std::io::{Read, Write};
                let mut buf = [0u8; 7];
                if s.write_all(b"PING\r\n").is_ok()
                    && s.read_exact(&mut buf).is_ok()
                    && &buf == b"+PONG\r\n"
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not answer on {:?}", self.socket());
    }

    /// Kills the server (SIGKILL: its data is gone, as after a crash).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(self.socket());
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is answered.
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

    /// Starts it again on the same socket, empty.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// A connection for the test itself (playing orchagent, writing CONFIG_DB). Its answers may
    /// take long on a loaded machine (`KEYS` over 100k entries): redis-rs's default 500 ms
    /// response timeout would fail the test for the machine's load, not for the daemon.
    pub async fn conn(&self, db: i64) -> MultiplexedConnection {
        let cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(std::time::Duration::from_secs(10)))
            .set_response_timeout(Some(std::time::Duration::from_secs(60)));
        redis::Client::open(self.db_url(db))
            .expect("redis url")
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
            .expect("redis connection")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
