//! The curl and neighsyncctl commands docs/API.md shows, run as written against a daemon in a
//! lab namespace. Only what names this host is set: `$S` (the REST socket the doc assigns) and
//! the token file's path. A stream (`events`, `watch`) is watched for 3 s.

use std::process::Command;
use std::time::Duration;

use neighsyncd_tests::daemon::{Daemon, binary};
use neighsyncd_tests::netns::Lab;
use neighsyncd_tests::redis_server::RedisServer;
use neighsyncd_tests::{require_lab, require_tool, wait};

const DOC_TOKEN: &str = "/etc/neighsyncd/api-token";

/// The command lines of each block docs/API.md marks as run by this file.
fn doc_blocks() -> Vec<Vec<String>> {
    let doc = std::fs::read_to_string(neighsyncd_tests::root().join("docs/API.md")).unwrap();
    let lines: Vec<&str> = doc.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.trim() != "<!-- cmd: run by tests/tests/api_docs.rs -->" {
            continue;
        }
        let block: Vec<String> = lines[i + 1..]
            .iter()
            .skip_while(|l| l.trim().is_empty())
            .take_while(|l| l.starts_with("    ") || l.trim().is_empty())
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        out.push(block);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_curl_and_neighsyncctl_commands_in_the_api_docs_work() {
    let test = "the_curl_and_neighsyncctl_commands_in_the_api_docs_work";
    require_lab(test);
    for tool in ["curl", "jq"] {
        require_tool(tool, test);
    }
    let blocks = doc_blocks();
    let (curls, ctls): (Vec<String>, Vec<String>) = blocks
        .into_iter()
        .flatten()
        .filter(|l| !l.starts_with("S="))
        .partition(|l| l.starts_with("curl "));
    assert!(
        curls.len() >= 4 && ctls.len() >= 6,
        "docs/API.md's blocks: {curls:?} {ctls:?}"
    );

    let redis = RedisServer::start();
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let (sock, token) = (dir.path().join("rest.sock"), dir.path().join("api-token"));
    std::fs::write(&token, "s3cret\n").unwrap();
    let listen = format!("unix:{}", sock.display());
    let token_arg = token.display().to_string();
    let d = Daemon::start(
        &lab.dut,
        &redis,
        &["--rest-listen", &listen, "--api-token-file", &token_arg],
    );
    d.wait_ready(&lab.dut).await;
    lab.dut
        .ip("neigh add 10.0.0.2 lladdr 02:00:00:00:00:02 dev Ethernet0 nud permanent");
    lab.dut
        .ip("neigh add 192.168.0.9 lladdr 02:00:00:00:00:09 dev Vlan1000 nud permanent");
    wait::until(
        "both neighbors in APPL_DB",
        Duration::from_secs(10),
        async || {
            let n = d.metric(&lab.dut, "neighsyncd_neighbors", "family=\"IPv4\"");
            if n >= 2.0 {
                Ok(())
            } else {
                Err(format!("{n}"))
            }
        },
    )
    .await;

    let ctl_dir = binary()
        .with_file_name("neighsyncctl")
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let run = |line: &str| {
        let streams = line.contains("/events") || line.contains(" watch ");
        let line = line.replace(DOC_TOKEN, &token_arg);
        let script = if streams {
            format!("timeout 3 {line}")
        } else {
            line.clone()
        };
        let out = Command::new("ip")
            .args(["netns", "exec", lab.dut.name(), "bash", "-c", &script])
            .env("S", &sock)
            .env("NEIGHSYNCD_API", &listen)
            .env(
                "PATH",
                format!("{ctl_dir}:{}", std::env::var("PATH").unwrap_or_default()),
            )
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let ok = if streams {
            out.status.code() == Some(124)
        } else {
            out.status.success()
        };
        assert!(ok, "`{line}` exited {}: {text}", out.status);
        assert!(
            !text.contains("\"code\"") && !text.contains("neighsyncctl:"),
            "`{line}` reported an error: {text}"
        );
        text
    };
    for line in &curls {
        let out = run(line);
        if line.contains("/events") {
            assert!(out.contains("snapshot_end"), "`{line}`: {out}");
        } else if line.contains("/resync") {
            assert!(out.contains("resync requested"), "`{line}`: {out}");
        } else if line.contains("/neighbors/Ethernet0/10.0.0.2") {
            assert!(out.contains("Ethernet0:10.0.0.2"), "`{line}`: {out}");
        } else if line.contains("interface=Vlan1000") {
            assert!(out.contains("Vlan1000:192.168.0.9"), "`{line}`: {out}");
        }
    }
    for line in &ctls {
        let out = run(line);
        let verb = line
            .split_whitespace()
            .find(|w| !w.starts_with('-') && *w != "neighsyncctl" && !w.starts_with('/'));
        match verb {
            Some("arp") => assert!(
                out.contains("10.0.0.2") && out.contains("Total number of entries"),
                "`{line}`: {out}"
            ),
            Some("watch") => assert!(out.contains("snapshot seq"), "`{line}`: {out}"),
            Some("resync") => assert!(out.contains("resync requested"), "`{line}`: {out}"),
            Some("health") => assert!(out.contains("ok"), "`{line}`: {out}"),
            _ => {}
        }
    }
}
