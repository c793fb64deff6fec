//! Conformance scenarios, recorded the way Holo records its protocol tests: each file in
//! `scenarios/` holds the inputs (`> ` + one JSON object per line) and, after each input, the
//! outputs it must produce (`< ` + one line per output, as `Output`'s `Display` renders it; a
//! write, one line per operation).
//!
//! A `show:` line lists the output kinds the file records (default: `write note synced
//! reconciled`); the others are not compared. `source: auto|ebpf|netlink` is the configured
//! source (default netlink; eBPF events are only the program's once a `source` input attached
//! it). `#` starts a comment. Every input runs at
//! `now` = 1000 ns x its line number, unless it says `"at"`.
//!
//! To record a new scenario, write its inputs and run
//! `NEIGHSYNCD_BLESS=1 cargo test -p neighsyncd --lib engine`: the outputs are written into
//! the file; review the diff like code.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;

use super::*;
use crate::core::appdb_link::AppDbReport;
use crate::core::neigh::{LinkMsg, NeighMsg, nud};
use crate::core::source_health::SourceReport;
use crate::core::state::Batch;

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Step {
    Link {
        ifindex: u32,
        name: String,
        #[serde(default)]
        master: Option<u32>,
        #[serde(default)]
        deleted: bool,
    },
    Neigh {
        /// `new` or `del`.
        kind: String,
        ifindex: u32,
        ip: IpAddr,
        #[serde(default)]
        mac: Option<String>,
        state: String,
        #[serde(default)]
        flags: u32,
        /// A live event's kernel timestamp; absent: an entry of the dump in progress.
        #[serde(default)]
        live: Option<u64>,
    },
    DumpStart {
        ts: u64,
        #[serde(default = "yes")]
        fresh: bool,
    },
    DumpDone,
    Lost(String),
    Malformed(String),
    SwitchedToNetlink {
        since: u64,
    },
    Config {
        #[serde(default)]
        dual_tor: bool,
        #[serde(default)]
        evpn: bool,
        #[serde(default)]
        link_local: Vec<String>,
        #[serde(default)]
        ignore_interfaces: Vec<String>,
    },
    Flush,
    /// The last write landed.
    Written,
    /// The last write failed.
    WriteFailed,
    ReadBack {
        #[serde(default)]
        seed: bool,
        entries: BTreeMap<String, BTreeMap<String, String>>,
    },
    WarmStart,
    WarmTimerFired,
    Source(SourceStep),
    /// `connected`, `unreachable` or `answered`.
    Appdb(String),
    /// The liveness timer.
    Tick,
    AuditDue,
    /// A management API's resync request, by cause.
    ResyncRequested(String),
}

/// What the southbound says of its sources.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum SourceStep {
    Start,
    EbpfLoaded,
    EbpfUnavailable { reason: String, why: String },
    EbpfVerified,
    EbpfVerdictFailed(String),
    EbpfFailed(String),
    NetlinkGaveUp(String),
}

impl SourceStep {
    fn report(self) -> SourceReport {
        match self {
            SourceStep::Start => SourceReport::Start,
            SourceStep::EbpfLoaded => SourceReport::EbpfLoaded,
            SourceStep::EbpfUnavailable { reason, why } => SourceReport::EbpfUnavailable {
                reason: Box::leak(reason.into_boxed_str()),
                why,
            },
            SourceStep::EbpfVerified => SourceReport::EbpfVerdict(Ok(())),
            SourceStep::EbpfVerdictFailed(why) => SourceReport::EbpfVerdict(Err(why)),
            SourceStep::EbpfFailed(why) => SourceReport::EbpfFailed(why),
            SourceStep::NetlinkGaveUp(why) => SourceReport::NetlinkGaveUp(why),
        }
    }
}

fn yes() -> bool {
    true
}

fn state_bits(name: &str) -> u16 {
    match name {
        "NONE" => nud::NONE,
        "INCOMPLETE" => nud::INCOMPLETE,
        "REACHABLE" => nud::REACHABLE,
        "STALE" => nud::STALE,
        "DELAY" => nud::DELAY,
        "PROBE" => nud::PROBE,
        "FAILED" => nud::FAILED,
        "NOARP" => nud::NOARP,
        "PERMANENT" => nud::PERMANENT,
        other => panic!("unknown NUD state {other}"),
    }
}

fn mac_bytes(text: &str) -> Vec<u8> {
    if text.is_empty() {
        return Vec::new();
    }
    text.split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
        .collect()
}

fn resync_cause(name: &str) -> ResyncCause {
    ResyncCause::ALL
        .into_iter()
        .find(|c| c.as_str() == name)
        .unwrap_or_else(|| panic!("unknown resync cause {name}"))
}

/// Runs a scenario; returns the file as it should read (with the outputs produced).
fn run(text: &str) -> (String, bool) {
    let mut engine = Engine::new(EngineConfig {
        batch_max: 1000,
        source: match text.lines().find_map(|l| l.trim().strip_prefix("source:")) {
            Some(s) if s.trim() == "ebpf" => Wanted::Ebpf,
            Some(s) if s.trim() == "auto" => Wanted::Auto,
            _ => Wanted::Netlink,
        },
        view: false,
    });
    let mut show: Vec<String> = ["write", "note", "synced", "reconciled"]
        .map(String::from)
        .to_vec();
    let mut out = String::new();
    let mut expected: Vec<String> = Vec::new();
    let mut produced: Vec<String> = Vec::new();
    let mut same = true;
    let mut in_flight: Option<Batch> = None;
    let lines: Vec<&str> = text.lines().collect();
    let compare = |expected: &mut Vec<String>, produced: &mut Vec<String>| {
        let equal = expected == produced;
        expected.clear();
        produced.clear();
        equal
    };
    for (n, line) in lines.iter().enumerate() {
        if let Some(e) = line.strip_prefix("< ") {
            expected.push(e.to_string());
            continue;
        }
        if *line == "<" {
            expected.push(String::new());
            continue;
        }
        // A new input (or the end): what the previous input produced is compared and written.
        same &= compare(&mut expected, &mut produced);
        if let Some(kinds) = line.strip_prefix("show:") {
            show = kinds.split_whitespace().map(String::from).collect();
            engine.report_kernel_side(show.iter().any(|k| k == "kernel"));
        }
        let Some(json) = line.strip_prefix("> ") else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        out.push_str(line);
        out.push('\n');
        let mut value: serde_json::Value =
            serde_json::from_str(json).unwrap_or_else(|e| panic!("line {}: {e}: {json}", n + 1));
        let at = value
            .as_object_mut()
            .and_then(|o| o.remove("at"))
            .and_then(|v| v.as_u64());
        let now = at.unwrap_or((n as u64 + 1) * 1000);
        let step: Step =
            serde_json::from_value(value).unwrap_or_else(|e| panic!("line {}: {e}: {json}", n + 1));
        let input = match step {
            Step::Link {
                ifindex,
                name,
                master,
                deleted,
            } => Input::Kernel(SourceEvent::Link(LinkMsg {
                ifindex,
                name,
                master,
                oper_up: true,
                deleted,
            })),
            Step::Neigh {
                kind,
                ifindex,
                ip,
                mac,
                state,
                flags,
                live,
            } => Input::Kernel(SourceEvent::Neigh(NeighMsg {
                kind: match kind.as_str() {
                    "new" => NeighKind::New,
                    "del" => NeighKind::Del,
                    other => panic!("line {}: kind {other}", n + 1),
                },
                ifindex,
                ip,
                lladdr: crate::core::key::LinkAddr::new(mac.as_deref().map(mac_bytes).as_deref()),
                state: state_bits(&state),
                flags,
                origin: match live {
                    Some(ts_ns) => Origin::Live { ts_ns },
                    None => Origin::Dump,
                },
            })),
            Step::DumpStart { ts, fresh } => {
                Input::Kernel(SourceEvent::DumpStart { ts_ns: ts, fresh })
            }
            Step::DumpDone => Input::Kernel(SourceEvent::DumpDone),
            Step::Lost(cause) => Input::Kernel(SourceEvent::Lost(resync_cause(&cause))),
            Step::Malformed(reason) => {
                Input::Kernel(SourceEvent::Malformed(Box::leak(reason.into_boxed_str())))
            }
            Step::SwitchedToNetlink { since } => Input::SwitchedToNetlink { since_ns: since },
            Step::Config {
                dual_tor,
                evpn,
                link_local,
                ignore_interfaces,
            } => Input::Config(ConfigSnapshot {
                dual_tor,
                evpn,
                link_local: link_local.into_iter().collect(),
                ignore_interfaces: ignore_interfaces.into_iter().collect(),
            }),
            Step::Flush => Input::Flush,
            Step::Written => Input::Written(in_flight.take().expect("a write in flight")),
            Step::WriteFailed => Input::WriteFailed(in_flight.take().expect("a write in flight")),
            Step::ReadBack { seed, entries } => Input::ReadBack {
                entries: entries
                    .into_iter()
                    .map(|(k, f)| {
                        let t = Told::from_fields(&f.into_iter().collect::<HashMap<_, _>>());
                        (NeighKey::from_appl_db(&k), t)
                    })
                    .collect(),
                seed,
            },
            Step::WarmStart => Input::WarmStart,
            Step::WarmTimerFired => Input::WarmTimerFired,
            Step::Source(step) => Input::Source(step.report()),
            Step::Appdb(report) => Input::AppDb(match report.as_str() {
                "connected" => AppDbReport::Connected,
                "unreachable" => AppDbReport::Unreachable,
                "answered" => AppDbReport::Answered,
                other => panic!("line {}: appdb {other}", n + 1),
            }),
            Step::Tick => Input::Tick,
            Step::AuditDue => Input::AuditDue,
            Step::ResyncRequested(cause) => Input::ResyncRequested(resync_cause(&cause)),
        };
        let mut lines = Vec::new();
        for o in engine.handle(now, input) {
            let rendered = o.to_string();
            let kind = rendered.split(' ').next().unwrap_or_default().to_string();
            if let Output::Write(b) = o {
                in_flight = Some(b);
            }
            if show.contains(&kind) {
                lines.push(rendered);
            }
        }
        for rendered in canonical(lines) {
            out.push_str(&format!("< {rendered}\n"));
            produced.push(rendered);
        }
    }
    same &= compare(&mut expected, &mut produced);
    (out, same)
}

/// The outputs of one input in an order that does not depend on hashing: the operations of a
/// write, and runs of per-key lines (view updates, reconcile lines), are sorted; the order of
/// everything else is the engine's.
fn canonical(lines: Vec<String>) -> Vec<String> {
    let per_key = |l: &str| l.starts_with("kernel ") || l.starts_with("note Reconcile(");
    let mut out: Vec<String> = Vec::new();
    let mut run: Vec<String> = Vec::new();
    for l in lines {
        if let Some(ops) = l.strip_prefix("write | ") {
            // One line per operation, sorted.
            run.sort();
            out.append(&mut run);
            let mut ops: Vec<String> = ops.split(" | ").map(|op| format!("write {op}")).collect();
            ops.sort();
            out.append(&mut ops);
            continue;
        }
        if let Some(keys) = l.strip_prefix("kernel gone | ") {
            run.extend(keys.split(" | ").map(|k| format!("kernel {k} gone")));
            continue;
        }
        if per_key(&l) {
            run.push(l);
        } else {
            run.sort();
            out.append(&mut run);
            out.push(l);
        }
    }
    run.sort();
    out.append(&mut run);
    out
}

#[test]
fn scenarios() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core/engine/scenarios");
    let bless = std::env::var_os("NEIGHSYNCD_BLESS").is_some();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("scenarios dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "scenario"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scenarios in {}", dir.display());
    let mut failed = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read scenario");
        let (actual, same) = run(&text);
        if same {
            continue;
        }
        if bless {
            std::fs::write(file, &actual).expect("write scenario");
        } else {
            failed.push(format!(
                "{}:\n{}",
                file.display(),
                line_diff(&text, &actual)
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "scenarios whose outputs differ (- recorded, + produced; NEIGHSYNCD_BLESS=1 rewrites them):\n{}",
        failed.join("\n")
    );
}

/// The lines that differ, with their line numbers.
fn line_diff(want: &str, got: &str) -> String {
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let mut out = Vec::new();
    for i in 0..w.len().max(g.len()) {
        match (w.get(i), g.get(i)) {
            (Some(a), Some(b)) if a == b => {}
            (a, b) => {
                if let Some(a) = a {
                    out.push(format!("{:4} - {a}", i + 1));
                }
                if let Some(b) = b {
                    out.push(format!("{:4} + {b}", i + 1));
                }
                if out.len() > 40 {
                    break;
                }
            }
        }
    }
    out.join("\n")
}
