//! `neighsyncctl`: look at and steer neighsyncd over its REST API: `arp`/`ndp` as SONiC's
//! `show arp`/`show ndp` print them, `show` with both sides, `watch`, `stats`, `resync`,
//! `health`; shell completions and a man page from the same definitions.

mod client;
mod table;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{CommandFactory, Parser, Subcommand};
use neighsyncd_api::{
    Change, FellBehind, HaReply, NeighborPage, NeighborRecord, Ready, ResyncReply, SnapshotEnd,
};
use serde_json::Value;

use crate::client::{Api, Target};
use crate::table::Sonic;

#[derive(Parser)]
#[command(name = "neighsyncctl", version, about = "Look at and steer neighsyncd")]
struct Cli {
    /// The REST API: http://HOST:PORT, https://HOST:PORT, or unix:/PATH (the daemon's default).
    #[arg(
        long,
        global = true,
        default_value = "unix:/run/neighsyncd/rest.sock",
        env = "NEIGHSYNCD_API"
    )]
    api: String,
    /// The metrics/health listener (for `health`): http://HOST:PORT.
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:9091",
        env = "NEIGHSYNCD_METRICS"
    )]
    metrics: String,
    /// File with the bearer token (needed for resync, and for reads when they are closed).
    #[arg(long, global = true, env = "NEIGHSYNCD_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// CA certificates (PEM) to trust for an https:// API; the system's by default.
    #[arg(long, global = true, env = "NEIGHSYNCD_CACERT")]
    cacert: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; with --key.
    #[arg(long, global = true, env = "NEIGHSYNCD_CERT")]
    cert: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS; with --cert.
    #[arg(long, global = true, env = "NEIGHSYNCD_KEY")]
    key: Option<PathBuf>,
    /// Seconds a request may take, connecting included (`watch`: connecting only).
    #[arg(
        long,
        global = true,
        default_value_t = 10.0,
        env = "NEIGHSYNCD_TIMEOUT"
    )]
    timeout: f64,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// IPv4 neighbors, exactly as SONiC's `show arp` prints them.
    Arp {
        /// Only this address.
        address: Option<String>,
        /// Only neighbors on this interface.
        #[arg(long = "iface", short = 'i')]
        iface: Option<String>,
    },
    /// IPv6 neighbors, exactly as SONiC's `show ndp` prints them.
    Ndp {
        /// Only this address.
        address: Option<String>,
        /// Only neighbors on this interface.
        #[arg(long = "iface", short = 'i')]
        iface: Option<String>,
    },
    /// Every neighbor with both sides: the kernel's and APPL_DB's, and why one was skipped.
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
        /// Multi-ASIC: the SONiC namespace (a daemon serves one).
        #[arg(long)]
        namespace: Option<String>,
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
    /// Force a dump-and-diff resynchronisation (needs the token).
    Resync,
    /// Readiness, check by check; fails when the daemon is not ready.
    Health,
    /// Hot standby (`--ha`): this daemon's role, the lease's holder, its age and its token.
    Ha,
    /// A shell completion script, on standard output.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The man page (roff), on standard output.
    Man,
}

/// Every neighbor matching `filters`, page by page.
fn neighbors(api: &Api, filters: &[(&str, &str)]) -> anyhow::Result<Vec<NeighborRecord>> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut q = filters.to_vec();
        q.push(("page_size", "1000"));
        if let Some(t) = &token {
            q.push(("page_token", t));
        }
        let page: NeighborPage = api.get("/api/v1/neighbors", &q)?;
        all.extend(page.neighbors);
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => return Ok(all),
        }
    }
}

fn filters<'a>(pairs: &[(&'a str, &'a Option<String>)]) -> Vec<(&'a str, &'a str)> {
    pairs
        .iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (*k, v)))
        .collect()
}

fn dash(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

fn sonic_show(
    api: &Api,
    kind: Sonic,
    address: Option<String>,
    iface: Option<String>,
) -> anyhow::Result<()> {
    let family = Some(match kind {
        Sonic::Arp => "IPv4".to_string(),
        Sonic::Ndp => "IPv6".to_string(),
    });
    let mut all = neighbors(api, &filters(&[("interface", &iface), ("family", &family)]))?;
    if let Some(a) = &address {
        let want: std::net::IpAddr = a.parse().with_context(|| format!("{a}: not an address"))?;
        all.retain(|r| r.ip == want);
    }
    println!("{}", table::sonic(kind, &all));
    Ok(())
}

fn watch(api: &Api, interface: Option<String>, family: Option<String>) -> anyhow::Result<()> {
    let q = filters(&[("interface", &interface), ("family", &family)]);
    let resp = api.send(api.request(reqwest::Method::GET, "/api/v1/events", &q))?;
    let mut event = String::new();
    let mut out = std::io::stdout().lock();
    for line in BufReader::new(resp).lines() {
        let line = line.context("the event stream broke")?;
        if let Some(e) = line.strip_prefix("event: ") {
            event = e.to_string();
            continue;
        }
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        match event.as_str() {
            // The snapshot comes in chunks; its end says how many in all.
            "snapshot" => {}
            "snapshot_end" => {
                let e: SnapshotEnd = serde_json::from_str(data)?;
                writeln!(out, "snapshot seq {}: {} neighbors", e.seq, e.count)?;
            }
            "change" => {
                let c: Change = serde_json::from_str(data)?;
                let r = &c.record;
                writeln!(
                    out,
                    "{} {} {} mac {} state {} appl_db {}",
                    c.seq,
                    serde_json::to_value(c.kind)?.as_str().unwrap_or("?"),
                    r.key,
                    dash(&r.kernel_mac),
                    r.kernel_state.as_deref().unwrap_or("-"),
                    dash(&r.appl_db_mac),
                )?;
            }
            "fell_behind" => {
                let f: FellBehind = serde_json::from_str(data)?;
                writeln!(
                    out,
                    "fell {} changes behind; a new snapshot follows",
                    f.missed
                )?;
            }
            other => writeln!(out, "{other}: {data}")?,
        }
        out.flush()?;
    }
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if !(cli.timeout.is_finite() && cli.timeout > 0.0) {
        bail!(
            "--timeout {}: must be a positive number of seconds",
            cli.timeout
        );
    }
    let timeout = Duration::from_secs_f64(cli.timeout);
    let target = |timeout: Option<Duration>| Target {
        api: cli.api.clone(),
        token_file: cli.token_file.clone(),
        cacert: cli.cacert.clone(),
        cert: cli.cert.clone(),
        key: cli.key.clone(),
        timeout,
    };
    match cli.cmd {
        Cmd::Arp { address, iface } => sonic_show(
            &Api::new(&target(Some(timeout)))?,
            Sonic::Arp,
            address,
            iface,
        )?,
        Cmd::Ndp { address, iface } => sonic_show(
            &Api::new(&target(Some(timeout)))?,
            Sonic::Ndp,
            address,
            iface,
        )?,
        Cmd::Show {
            interface,
            family,
            vrf,
            state,
            namespace,
            json,
        } => {
            let api = Api::new(&target(Some(timeout)))?;
            let mut all = neighbors(
                &api,
                &filters(&[
                    ("interface", &interface),
                    ("family", &family),
                    ("vrf", &vrf),
                    ("state", &state),
                    ("namespace", &namespace),
                ]),
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
                return Ok(());
            }
            all.sort_by(|a, b| table::natural_cmp(&a.key, &b.key));
            let rows: Vec<Vec<String>> = all
                .iter()
                .map(|r| {
                    vec![
                        r.ip.to_string(),
                        dash(&r.kernel_mac),
                        r.ifname.clone(),
                        dash(&r.vrf),
                        r.kernel_state.as_deref().unwrap_or("-").to_string(),
                        dash(&r.appl_db_mac),
                        r.skip_reason.as_deref().unwrap_or("-").to_string(),
                    ]
                })
                .collect();
            println!(
                "{}\n{}",
                table::tabulate(
                    &[
                        "Address",
                        "MacAddress",
                        "Iface",
                        "Vrf",
                        "State",
                        "APPL_DB",
                        "Skipped"
                    ],
                    &rows
                ),
                table::total(rows.len())
            );
        }
        Cmd::Watch { interface, family } => watch(&Api::new(&target(None))?, interface, family)?,
        Cmd::Stats => {
            let v: Value = Api::new(&target(Some(timeout)))?.get("/api/v1/stats", &[])?;
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
            let r: ResyncReply = Api::new(&target(Some(timeout)))?.post("/api/v1/resync")?;
            println!("{}", r.status);
        }
        Cmd::Ha => {
            let r: HaReply = Api::new(&target(Some(timeout)))?.get("/api/v1/ha", &[])?;
            let ms = |v: Option<i64>| match v {
                Some(v) => format!("{:.1} s", v as f64 / 1000.0),
                None => "-".into(),
            };
            println!("role          {}", r.role);
            println!("this daemon   {}", r.me);
            println!("leader        {}", r.leader.as_deref().unwrap_or("none"));
            println!(
                "token         {}",
                r.token.map(|t| t.to_string()).unwrap_or_else(|| "-".into())
            );
            println!("lease age     {}", ms(r.lease_age_ms.map(|v| v as i64)));
            println!("expires in    {}", ms(r.lease_expires_in_ms));
        }
        Cmd::Health => {
            // Its own client: the API's may be a unix socket; the metrics listener is plain HTTP.
            let health = Target {
                api: cli.metrics.clone(),
                token_file: None,
                cacert: None,
                cert: None,
                key: None,
                timeout: Some(timeout),
            };
            let api = Api::new(&health)?;
            let resp = api
                .request(reqwest::Method::GET, "/ready", &[])
                .send()
                .with_context(|| format!("cannot reach {}", cli.metrics))?;
            let ready: Ready = serde_json::from_str(&resp.text()?)
                .context("/ready answered something this client cannot read")?;
            if let Some(role) = &ready.role {
                println!("{:<16} {role}", "role");
            }
            for c in &ready.checks {
                println!(
                    "{:<16} {:<5} since {}",
                    c.name,
                    if c.ok { "ok" } else { "FAIL" },
                    c.since
                );
            }
            if !ready.ready {
                bail!("not ready: {}", ready.failed.join(", "));
            }
        }
        Cmd::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "neighsyncctl",
                &mut std::io::stdout(),
            );
        }
        Cmd::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    // reqwest's rustls wants a process-wide crypto provider even for plain HTTP (ring: no C
    // toolchain beyond what the daemon already needs). Installing fails only if one is set.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("neighsyncctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
