//! Network namespaces the tests create (`ip netns`), and a lab shaped like a switch.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::{Command, Output};

pub struct Netns {
    name: String,
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out: Output = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    pub fn new(prefix: &str) -> Netns {
        let name = crate::unique(prefix);
        run(Command::new("ip").args(["netns", "add", &name])).expect("ip netns add");
        let ns = Netns { name };
        ns.ip("link set lo up");
        // Addresses usable at once, and no router solicitations muddying NDP tests.
        ns.sysctl("net.ipv6.conf.all.accept_dad", "0");
        ns.sysctl("net.ipv6.conf.default.accept_dad", "0");
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NS <args>`; panics with stderr on failure.
    pub fn ip(&self, args: &str) -> String {
        self.try_ip(args).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_ip(&self, args: &str) -> Result<String, String> {
        run(Command::new("ip")
            .args(["-n", &self.name])
            .args(args.split_whitespace()))
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, argv: &[&str]) -> Result<String, String> {
        run(Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(argv))
    }

    pub fn sysctl(&self, key: &str, value: &str) {
        self.exec(&["sysctl", "-qw", &format!("{key}={value}")])
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// `ip -n NS -batch FILE` with these lines.
    pub fn batch(&self, lines: &str) {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(lines.as_bytes()).expect("write batch");
        run(Command::new("ip")
            .args(["-n", &self.name, "-batch"])
            .arg(f.path()))
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// `ip -n NS -force -batch FILE`: every line is tried, failures (a delete of a neighbor
    /// that is gone) do not stop the rest.
    pub fn batch_force(&self, lines: &str) {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(lines.as_bytes()).expect("write batch");
        let _ = Command::new("ip")
            .args(["-n", &self.name, "-force", "-batch"])
            .arg(f.path())
            .output();
    }

    pub fn ifindex(&self, ifname: &str) -> u32 {
        let out = self.ip(&format!("-j link show dev {ifname}"));
        let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j output");
        v[0]["ifindex"].as_u64().expect("ifindex") as u32
    }

    /// Runs `f` on a thread that has entered this namespace (sockets it opens live there).
    pub fn run_inside<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
            // SAFETY: setns on an fd we own; it changes only this thread's network namespace.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(format!("setns: {}", std::io::Error::last_os_error()));
            }
            Ok(f())
        })
        .join()
        .map_err(|_| "namespace thread panicked".to_string())?
    }

    /// A plain HTTP/1.0 GET from inside the namespace: (status, body).
    pub fn http_get(&self, port: u16, path: &str) -> Result<(u16, String), String> {
        self.http(("127.0.0.1", port), "GET", path, &[], "")
    }

    /// Any HTTP/1.0 request from inside the namespace: (status, body).
    pub fn http(
        &self,
        addr: (&str, u16),
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<(u16, String), String> {
        let (status, body) = self.http_bytes(addr, method, path, headers, body, 5)?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// Like [`Netns::http`], with a binary body and a read timeout of `timeout_secs`.
    pub fn http_bytes(
        &self,
        addr: (&str, u16),
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
        timeout_secs: u64,
    ) -> Result<(u16, Vec<u8>), String> {
        let (host, port) = (addr.0.to_string(), addr.1);
        let mut req = format!(
            "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        self.run_inside(move || -> Result<(u16, Vec<u8>), String> {
            use std::io::Read;
            let mut s =
                std::net::TcpStream::connect((host.as_str(), port)).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(std::time::Duration::from_secs(timeout_secs)))
                .map_err(|e| e.to_string())?;
            s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
            let mut resp = Vec::new();
            s.read_to_end(&mut resp).map_err(|e| e.to_string())?;
            let split = resp
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .ok_or_else(|| format!("bad response: {:.200}", String::from_utf8_lossy(&resp)))?;
            let head = String::from_utf8_lossy(&resp[..split]).into_owned();
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("bad response: {head:.200}"))?;
            Ok((status, resp[split + 4..].to_vec()))
        })?
    }
}

impl Netns {
    /// Opens a Server-Sent Events stream from inside the namespace; (event, data) pairs
    /// arrive on the receiver until the connection closes.
    pub fn sse(
        &self,
        addr: (&str, u16),
        path: &str,
    ) -> std::sync::mpsc::Receiver<(String, String)> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (host, port, path) = (addr.0.to_string(), addr.1, path.to_string());
        let ns = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            use std::io::BufRead;
            let Ok(file) = std::fs::File::open(&ns) else {
                return;
            };
            // SAFETY: setns on an fd we own; only this thread changes namespace.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return;
            }
            let Ok(mut s) = std::net::TcpStream::connect((host.as_str(), port)) else {
                return;
            };
            if write!(
                s,
                "GET {path} HTTP/1.0\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n"
            )
            .is_err()
            {
                return;
            }
            let mut event = String::new();
            let mut data = String::new();
            for line in std::io::BufReader::new(s).lines() {
                let Ok(line) = line else { return };
                if let Some(e) = line.strip_prefix("event: ") {
                    event = e.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                } else if line.is_empty()
                    && !event.is_empty()
                    && tx
                        .send((std::mem::take(&mut event), std::mem::take(&mut data)))
                        .is_err()
                {
                    return;
                }
            }
        });
        rx
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its interfaces (and the veth peers elsewhere).
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Two namespaces wired like a switch and its hosts:
/// `dut` has `Ethernet0` (10.0.0.1/24, 2000::1/64), `Ethernet4` (10.0.4.1/24, 2004::1/64) and a
/// bridge `Vlan1000` (192.168.0.1/24, fc00::1/64) with member `Ethernet8`; `peer` has their
/// other ends `p0`, `p4`, `p8` with the .2 / ::2 addresses.
pub struct Lab {
    pub dut: Netns,
    pub peer: Netns,
}

impl Default for Lab {
    fn default() -> Self {
        Self::new()
    }
}

impl Lab {
    pub fn new() -> Lab {
        let dut = Netns::new("nsdd");
        let peer = Netns::new("nsdp");
        for (port, p) in [
            ("Ethernet0", "p0"),
            ("Ethernet4", "p4"),
            ("Ethernet8", "p8"),
        ] {
            dut.ip(&format!(
                "link add {port} type veth peer name {p} netns {}",
                peer.name()
            ));
            dut.ip(&format!("link set {port} up"));
            peer.ip(&format!("link set {p} up"));
        }
        dut.ip("link add Vlan1000 type bridge");
        dut.ip("link set Ethernet8 master Vlan1000");
        dut.ip("link set Vlan1000 up");
        for (ifname, v4, v6) in [
            ("Ethernet0", "10.0.0.1/24", "2000::1/64"),
            ("Ethernet4", "10.0.4.1/24", "2004::1/64"),
            ("Vlan1000", "192.168.0.1/24", "fc00::1/64"),
        ] {
            dut.ip(&format!("addr add {v4} dev {ifname}"));
            dut.ip(&format!("addr add {v6} dev {ifname} nodad"));
        }
        for (ifname, v4, v6) in [
            ("p0", "10.0.0.2/24", "2000::2/64"),
            ("p4", "10.0.4.2/24", "2004::2/64"),
            ("p8", "192.168.0.2/24", "fc00::2/64"),
        ] {
            peer.ip(&format!("addr add {v4} dev {ifname}"));
            peer.ip(&format!("addr add {v6} dev {ifname} nodad"));
        }
        Lab { dut, peer }
    }

    /// The MAC of a peer interface.
    pub fn peer_mac(&self, ifname: &str) -> String {
        let out = self.peer.ip(&format!("-j link show dev {ifname}"));
        let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j output");
        v[0]["address"].as_str().expect("address").to_string()
    }

    /// Resolves a neighbor for real: the dut pings the peer address.
    pub fn ping(&self, addr: &str) {
        self.dut
            .exec(&["ping", "-c", "1", "-W", "2", addr])
            .unwrap_or_else(|e| panic!("ping {addr}: {e}"));
    }
}
