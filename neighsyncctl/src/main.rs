//! `neighsyncctl`: show, watch, stats, resync, health, over neighsyncd's REST API.

use std::io::{BufRead, BufReader};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::Value;

#[derive(Parser)]
#[command(name = "neighsyncctl", version, about = "Look at and steer neighsyncd")]
struct Cli {
    /// The REST API: http(s)://HOST:PORT, or unix:/PATH (the daemon's default).
    #[arg(
        long,
        default_value = "unix:/run/neighsyncd/rest.sock",
        env = "NEIGHSYNCD_API"
    )]
    api: String,
    /// The metrics/health listener (for `health`).
    #[arg(
        long,
        default_value = "http://127.0.0.1:9091",
        env = "NEIGHSYNCD_METRICS"
    )]
    metrics: String,
    /// File with the bearer token (needed for resync, and for reads when they are closed).
    #[arg(long, env = "NEIGHSYNCD_TOKEN_FILE")]
    token_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Neighbors, like SONiC's `show arp` / `show ndp`.
    Show {
        #[arg(long)]
        interface: Option<String>,
        /// IPv4 or IPv6.
        #[arg(long)]
        family: Option<String>,
        #[arg(long)]
        vrf: Option<String>,
        /// Kernel state, e.g. REACHABLE.
        #[arg(long)]
        state: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Live changes (Server-Sent Events), one line each.
    Watch {
        #[arg(long)]
        interface: Option<String>,
        #[arg(long)]
        family: Option<String>,
    },
    /// Counters and gauges.
    Stats,
    /// Force a dump-and-diff resynchronisation.
    Resync,
    /// Readiness, check by check.
    Health,
}

struct Api {
    http: reqwest::blocking::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::blocking::RequestBuilder {
        let mut r = self.http.request(method, url);
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        r
    }

    fn json(&self, method: reqwest::Method, path: &str) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .request(method, &url)
            .send()
            .with_context(|| format!("cannot reach {url}"))?;
        let status = resp.status();
        let body: Value = serde_json::from_str(&resp.text()?).unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{status}: {}", body["message"].as_str().unwrap_or("error"));
        }
        Ok(body)
    }
}

fn query(pairs: &[(&str, &Option<String>)]) -> String {
    let q: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", v.replace(':', "%3A"))))
        .collect();
    if q.is_empty() {
        String::new()
    } else {
        format!("&{}", q.join("&"))
    }
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let token = match &cli.token_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("{}", p.display()))?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let builder = reqwest::blocking::Client::builder().timeout(None);
    let (http, base) = match cli.api.strip_prefix("unix:") {
        Some(path) => (
            builder.unix_socket(path).build()?,
            "http://localhost".to_string(),
        ),
        None => (builder.build()?, cli.api.trim_end_matches('/').to_string()),
    };
    let api = Api { http, base, token };
    match cli.cmd {
        Cmd::Show {
            interface,
            family,
            vrf,
            state,
            json,
        } => {
            let filters = query(&[
                ("interface", &interface),
                ("family", &family),
                ("vrf", &vrf),
                ("state", &state),
            ]);
            let mut all = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let page = token
                    .as_ref()
                    .map(|t| format!("&page_token={}", t.replace(':', "%3A")))
                    .unwrap_or_default();
                let v = api.json(
                    reqwest::Method::GET,
                    &format!("/api/v1/neighbors?page_size=1000{filters}{page}"),
                )?;
                all.extend(v["neighbors"].as_array().cloned().unwrap_or_default());
                match v["next_page_token"].as_str() {
                    Some(t) => token = Some(t.to_string()),
                    None => break,
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
                return Ok(());
            }
            println!(
                "{:<28} {:<18} {:<14} {:<10} {:<11} {:<18} Skipped",
                "Address", "MacAddress", "Iface", "Vrf", "State", "APPL_DB"
            );
            println!("{}", "-".repeat(112));
            for r in &all {
                println!(
                    "{:<28} {:<18} {:<14} {:<10} {:<11} {:<18} {}",
                    text(&r["ip"]),
                    text(&r["kernel_mac"]),
                    text(&r["ifname"]),
                    text(&r["vrf"]),
                    text(&r["kernel_state"]),
                    text(&r["appl_db_mac"]),
                    r["skip_reason"].as_str().unwrap_or("")
                );
            }
            println!("Total number of entries {}", all.len());
        }
        Cmd::Watch { interface, family } => {
            let filters = query(&[("interface", &interface), ("family", &family)]);
            let url = format!(
                "{}/api/v1/events?{}",
                api.base,
                filters.trim_start_matches('&')
            );
            let resp = api
                .request(reqwest::Method::GET, &url)
                .send()
                .with_context(|| format!("cannot reach {url}"))?;
            if !resp.status().is_success() {
                bail!("{}", resp.status());
            }
            let mut event = String::new();
            for line in BufReader::new(resp).lines() {
                let line = line?;
                if let Some(e) = line.strip_prefix("event: ") {
                    event = e.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    let v: Value = serde_json::from_str(d).unwrap_or(Value::Null);
                    match event.as_str() {
                        // The snapshot comes in chunks; its end says how many in all.
                        "snapshot" => {}
                        "snapshot_end" => {
                            println!("snapshot seq {}: {} neighbors", v["seq"], v["count"])
                        }
                        "change" => {
                            let r = &v["record"];
                            println!(
                                "{} {} {} mac {} state {} appl_db {}",
                                v["seq"],
                                text(&v["kind"]),
                                text(&r["key"]),
                                text(&r["kernel_mac"]),
                                text(&r["kernel_state"]),
                                text(&r["appl_db_mac"])
                            );
                        }
                        other => println!("{other}: {d}"),
                    }
                }
            }
        }
        Cmd::Stats => {
            let v = api.json(reqwest::Method::GET, "/api/v1/stats")?;
            if let Value::Object(m) = v {
                for (k, v) in m {
                    match v {
                        Value::Object(labels) => {
                            for (l, x) in labels {
                                println!("{k}{{{l}}} {x}");
                            }
                        }
                        other => println!("{k} {other}"),
                    }
                }
            }
        }
        Cmd::Resync => {
            let v = api.json(reqwest::Method::POST, "/api/v1/resync")?;
            println!("{}", text(&v["status"]));
        }
        Cmd::Health => {
            let url = format!("{}/ready", cli.metrics.trim_end_matches('/'));
            // Its own client: the API's may be bound to a unix socket.
            let resp = reqwest::blocking::Client::builder()
                .build()?
                .get(&url)
                .send()
                .with_context(|| format!("cannot reach {url}"))?;
            let ok = resp.status().is_success();
            let v: Value = serde_json::from_str(&resp.text()?).unwrap_or(Value::Null);
            for c in v["checks"].as_array().cloned().unwrap_or_default() {
                println!(
                    "{:<16} {:<5} since {}",
                    text(&c["name"]),
                    if c["ok"] == true { "ok" } else { "FAIL" },
                    text(&c["since"])
                );
            }
            if !ok {
                bail!("not ready");
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("neighsyncctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
