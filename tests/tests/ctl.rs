//! neighsyncctl against a running daemon.

use std::process::Command;
use std::time::Duration;

use neighsyncd_tests::daemon::{Daemon, binary, neighsyncctl};
use neighsyncd_tests::netns::Lab;
use neighsyncd_tests::redis_server::RedisServer;
use neighsyncd_tests::{require_lab, wait};

/// neighsyncctl inside the lab, talking to the REST API at `api`.
fn ctl(lab: &Lab, api: &str, args: &[&str]) -> (bool, String) {
    let mut all = vec!["--api", api];
    all.extend_from_slice(args);
    neighsyncctl(&lab.dut, &all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_stats_resync_health() {
    require_lab("show_stats_resync_health");
    let redis = RedisServer::start();
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "ctl-token").unwrap();
    // A socket directory the daemon has to create (as it creates /run/neighsyncd).
    let socket = dir.path().join("run/rest.sock");
    let listen = format!("unix:{}", socket.display());
    let d = Daemon::start(
        &lab.dut,
        &redis,
        &[
            "--api-token-file",
            token.to_str().unwrap(),
            "--rest-listen",
            &listen,
        ],
    );
    let api = listen.as_str();
    d.wait_ready(&lab.dut).await;
    lab.dut
        .ip("neigh add 10.0.0.5 lladdr 02:00:00:00:00:05 dev Ethernet0 nud permanent");
    wait::until("show lists it", Duration::from_secs(10), async || {
        let (ok, out) = ctl(&lab, api, &["show", "--family", "IPv4"]);
        if ok
            && out.contains("10.0.0.5")
            && out.contains("02:00:00:00:00:05")
            && out.contains("Total number of entries")
        {
            Ok(())
        } else {
            Err(out)
        }
    })
    .await;
    let (ok, out) = ctl(&lab, api, &["show", "--interface", "Ethernet0", "--json"]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|r| r["key"] == "Ethernet0:10.0.0.5")
    );
    // A value is a value, not more of the query: `&` in a name filters by that name.
    let (ok, out) = ctl(&lab, api, &["show", "--interface", "Ethernet0&family=IPv4"]);
    assert!(
        !out.contains("10.0.0.5"),
        "the interface filter leaked into the query ({ok}): {out}"
    );
    let (ok, out) = ctl(&lab, api, &["stats"]);
    assert!(ok && out.contains("neighbors{family=IPv4} 1"), "{out}");
    let (ok, out) = ctl(&lab, api, &["resync"]);
    assert!(!ok && out.contains("401"), "resync without a token: {out}");
    let (ok, out) = ctl(
        &lab,
        api,
        &["--token-file", token.to_str().unwrap(), "resync"],
    );
    assert!(ok && out.contains("resync requested"), "{out}");
    let (ok, out) = ctl(&lab, api, &["--metrics", "http://127.0.0.1:9091", "health"]);
    assert!(ok && out.contains("redis") && out.contains("ok"), "{out}");
}

/// `arp` and `ndp` print exactly what SONiC's `show arp` / `show ndp` print (Python tabulate's
/// layout, natural order, the Vlan column, the closing line with its trailing blank).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arp_and_ndp_print_as_show_arp_and_show_ndp_do() {
    require_lab("arp_and_ndp_print_as_show_arp_and_show_ndp_do");
    let redis = RedisServer::start();
    let lab = Lab::new();
    let d = Daemon::start(&lab.dut, &redis, &[]);
    d.wait_ready(&lab.dut).await;
    let api = "http://[::1]:8080";
    for cmd in [
        "neigh add 10.0.0.10 lladdr 02:00:00:00:00:0a dev Ethernet0 nud permanent",
        "neigh add 10.0.0.9 lladdr 02:00:00:00:00:09 dev Ethernet0 nud permanent",
        "neigh add 192.168.0.5 lladdr 02:00:00:00:00:05 dev Vlan1000 nud permanent",
        "neigh add 2004::9 lladdr 02:00:00:00:00:19 dev Ethernet4 nud permanent",
    ] {
        lab.dut.ip(cmd);
    }
    let cases: [(&[&str], &str); 3] = [
        (
            &["arp", "--iface", "Ethernet0"],
            "Address    MacAddress         Iface      Vlan\n\
             ---------  -----------------  ---------  ------\n\
             10.0.0.9   02:00:00:00:00:09  Ethernet0  -\n\
             10.0.0.10  02:00:00:00:00:0a  Ethernet0  -\n\
             Total number of entries 2 \n",
        ),
        (
            &["arp", "-i", "Vlan1000"],
            "Address      MacAddress         Iface      Vlan\n\
             -----------  -----------------  -------  ------\n\
             192.168.0.5  02:00:00:00:00:05  -          1000\n\
             Total number of entries 1 \n",
        ),
        (
            &["ndp", "2004::9"],
            "Address    MacAddress         Iface      Vlan    Status\n\
             ---------  -----------------  ---------  ------  ---------\n\
             2004::9    02:00:00:00:00:19  Ethernet4  -       PERMANENT\n\
             Total number of entries 1 \n",
        ),
    ];
    for (args, want) in cases {
        wait::until(
            &format!("neighsyncctl {}", args.join(" ")),
            Duration::from_secs(10),
            async || {
                let (ok, out) = ctl(&lab, api, args);
                if ok && out == want {
                    Ok(())
                } else {
                    Err(format!("got:\n{out}\nwant:\n{want}"))
                }
            },
        )
        .await;
    }
}

/// A daemon that accepts and never answers: neighsyncctl gives up after `--timeout`, and says so.
#[test]
fn a_request_that_gets_no_answer_times_out() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts, reads nothing, answers nothing, until the test ends.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming().flatten() {
            held.push(c);
        }
    });
    let bin = binary().with_file_name("neighsyncctl");
    let mut child = Command::new(bin)
        .args([
            "--api",
            &format!("http://127.0.0.1:{port}"),
            "--timeout",
            "1",
            "arp",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("neighsyncctl --timeout 1 still waiting after 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "no answer, yet success: {err}");
    assert!(
        err.contains("timed out"),
        "the error does not say why: {err}"
    );
}

/// Shell completions load into bash and complete the subcommands; the man page renders.
#[test]
fn completions_and_man_page_come_from_the_cli_definition() {
    let bin = binary().with_file_name("neighsyncctl");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("neighsyncctl.bash");
    let out = Command::new(&bin)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(&script, &out.stdout).unwrap();
    // Complete `neighsyncctl a<TAB>` as bash would.
    let probe = format!(
        "source {}; COMP_WORDS=(neighsyncctl a); COMP_CWORD=1; COMP_LINE='neighsyncctl a'; COMP_POINT=14; _neighsyncctl neighsyncctl a neighsyncctl; echo \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
    let words = String::from_utf8_lossy(&out.stdout);
    assert!(
        words.split_whitespace().any(|w| w == "arp"),
        "bash completion of `neighsyncctl a`: {words:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for shell in ["zsh", "fish"] {
        let out = Command::new(&bin)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }
    let page = dir.path().join("neighsyncctl.1");
    let out = Command::new(&bin).arg("man").output().unwrap();
    assert!(out.status.success());
    std::fs::write(&page, &out.stdout).unwrap();
    let out = Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("neighsyncctl") && text.contains("completions"),
        "man -l: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
