//! The options: flags over the file over the defaults, errors that name their key, and the
//! documents that list the options kept equal to their one declaration.

use super::*;

fn args(extra: &[&str]) -> Args {
    let mut v = vec!["neighsyncd"];
    v.extend_from_slice(extra);
    Args::try_parse_from(v).unwrap()
}

fn file(text: &str) -> Options {
    toml::from_str(text).unwrap()
}

#[test]
fn flags_win_over_the_file_and_defaults_fill_in() {
    let c = Config::merge(
        args(&["--redis", "unix:///tmp/x.sock", "--batch-max", "10"]),
        file("batch_max = 20\naudit_interval = 30\nignore_interfaces = [\"eth0\", \"lo\"]"),
    )
    .unwrap();
    assert_eq!(c.batch_max, 10);
    assert_eq!(c.audit_interval, Some(Duration::from_secs(30)));
    assert_eq!(c.ebpf_watchdog, Duration::from_secs(60));
    assert_eq!(c.netlink_rcvbuf, 16 * 1024 * 1024);
    assert!(c.ignore_interfaces.contains("lo"));
    assert_eq!(c.source, SourceKind::Auto);
    assert_eq!(c.metrics_listen, Some("127.0.0.1:9091".parse().unwrap()));
    // The APIs default to unix sockets: nothing on a SONiC switch can hold them.
    assert_eq!(
        c.rest_listen,
        Some(ListenAddr::Unix("/run/neighsyncd/rest.sock".into()))
    );
    assert_eq!(
        c.grpc_listen,
        Some(ListenAddr::Unix("/run/neighsyncd/grpc.sock".into()))
    );
}

#[test]
fn errors_name_the_key() {
    let cases: &[(&[&str], &str, &str)] = &[
        (&["--redis", "http://x"], "", "redis"),
        (
            &["--redis", "unix:///x", "--netlink-rcvbuf", "10"],
            "",
            "netlink_rcvbuf",
        ),
        (
            &["--redis", "unix:///x", "--batch-max", "0"],
            "",
            "batch_max",
        ),
        (
            &["--redis", "unix:///x"],
            "ebpf_ring_bytes = 5000",
            "ebpf_ring_bytes",
        ),
        (
            &["--redis", "unix:///x"],
            "metrics_listen = \"nowhere\"",
            "metrics_listen",
        ),
        (&["--redis", "unix:///x"], "log_level = \"[[\"", "log_level"),
        // The profile is guarded by the API token: without one it cannot be served.
        (
            &["--redis", "unix:///x", "--profiler", "true"],
            "",
            "profiler",
        ),
    ];
    for (a, f, key) in cases {
        let e = Config::merge(args(a), file(f)).unwrap_err().to_string();
        assert!(e.contains(key), "{e} should name {key}");
    }
    let e = toml::from_str::<Options>("no_such_key = 1")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no_such_key"), "{e}");
}

#[test]
fn audits_are_on_by_default_with_ebpf_only() {
    let audit = |extra: &[&str]| {
        let mut v = vec!["--redis", "unix:///x"];
        v.extend_from_slice(extra);
        Config::merge(args(&v), Options::default())
            .unwrap()
            .audit_interval
    };
    let five_min = Some(Duration::from_secs(options::DEFAULT_EBPF_AUDIT));
    assert_eq!(audit(&[]), five_min);
    assert_eq!(audit(&["--source", "ebpf"]), five_min);
    assert_eq!(audit(&["--source", "netlink"]), None);
    assert_eq!(audit(&["--source", "ebpf", "--audit-interval", "0"]), None);
}

#[test]
fn metrics_can_be_turned_off() {
    let c = Config::merge(
        args(&["--redis", "unix:///x", "--metrics-listen", "off"]),
        Options::default(),
    )
    .unwrap();
    assert_eq!(c.metrics_listen, None);
}

/// deploy/neighsyncd.toml.example has every key and loads with the real loader.
#[test]
fn the_example_config_loads_and_names_every_key() {
    let text = include_str!("../../../deploy/neighsyncd.toml.example");
    let file: Options = toml::from_str(text).expect("example parses (no unknown keys)");
    let c = Config::merge(Args::default(), file).expect("example validates");
    assert_eq!(c.batch_max, 512);
    assert_eq!(c.log_target, LogTarget::Stderr);
    let keys: Vec<&str> = text
        .lines()
        // A key unset by default appears commented out, with an example value.
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .filter(|l| l.contains(" = ") && !l.starts_with('#'))
        .filter_map(|l| l.split(" = ").next())
        .collect();
    for flag in Options::keys() {
        assert!(keys.contains(&flag.as_str()), "example lacks {flag}");
    }
}

/// docs/CONFIGURATION.md's table names every option, and only options; each row's default is
/// the declared one (or says it is unset/conditional).
#[test]
fn the_docs_table_is_the_declared_options() {
    let doc = include_str!("../../../docs/CONFIGURATION.md");
    let mut documented: Vec<(String, String)> = Vec::new();
    for row in doc.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (keys, default) = (cells[1], cells[2].trim_matches('`').to_string());
        // "`api_tls_cert`, `api_tls_key`": one row for several keys.
        for k in keys.split(',') {
            documented.push((k.trim().trim_matches('`').to_string(), default.clone()));
        }
    }
    let keys = Options::keys();
    let documented_keys: Vec<&str> = documented.iter().map(|(k, _)| k.as_str()).collect();
    for k in &keys {
        assert!(
            documented_keys.contains(&k.as_str()),
            "docs/CONFIGURATION.md lacks option {k}"
        );
    }
    // The table's rows (also the CONFIG_DB table's) that look like options must be options.
    for (k, default) in &documented {
        if !k.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            continue; // a CONFIG_DB key such as `PEER_SWITCH|*`
        }
        assert!(
            keys.contains(k),
            "docs/CONFIGURATION.md documents {k}, not an option"
        );
        if let Some(d) = Options::default_text(k) {
            let spelled = [d.clone(), format!("{d} ")];
            let bytes = d.parse::<u64>().ok().map(human_bytes);
            assert!(
                spelled.iter().any(|s| default.starts_with(s.as_str()))
                    || bytes.as_deref() == Some(default.as_str())
                    || (d == "none" && default == "[]"),
                "docs/CONFIGURATION.md: {k} defaults to {default:?}, the declaration to {d:?}"
            );
        }
    }
}

/// 16777216 -> "16 MiB" (the table's way of writing sizes).
fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => n.to_string(),
    }
}

/// `--help` shows every default from the one declaration.
#[test]
fn help_shows_the_declared_defaults() {
    let help = Args::command_with_defaults().render_help().to_string();
    assert!(help.contains("[default: 512]"), "{help}");
    assert!(
        help.contains("[default: unix:/run/neighsyncd/rest.sock]"),
        "{help}"
    );
}

/// A database_global.json naming two namespaces' database_config.json, in a temp dir.
fn global_config(dir: &std::path::Path) -> String {
    for (i, port) in [(0, 6380), (1, 6381)] {
        let d = dir.join(format!("redis{i}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("database_config.json"),
            format!(
                r#"{{"INSTANCES": {{"redis": {{"hostname": "127.0.0.1", "port": {port}}}}},
                    "DATABASES": {{"APPL_DB": {{"id": 0, "separator": ":", "instance": "redis"}},
                                  "CONFIG_DB": {{"id": 4, "separator": "|", "instance": "redis"}},
                                  "STATE_DB": {{"id": 6, "separator": "|", "instance": "redis"}}}}}}"#
            ),
        )
        .unwrap();
    }
    let g = dir.join("database_global.json");
    std::fs::write(
        &g,
        r#"{"INCLUDES": [{"include": "redis0/database_config.json"},
                         {"namespace": "asic0", "include": "redis0/database_config.json"},
                         {"namespace": "asic1", "include": "redis1/database_config.json"}]}"#,
    )
    .unwrap();
    g.display().to_string()
}

#[test]
fn one_namespace_is_entered_several_are_served_from_here() {
    let dir = tempfile::tempdir().unwrap();
    let g = global_config(dir.path());
    let one = Config::merge(
        args(&["--namespace", "asic1", "--db-global-config", &g]),
        Options::default(),
    )
    .unwrap();
    assert_eq!(one.namespace.as_deref(), Some("asic1"));
    assert!(one.namespaces.is_empty());
    assert!(one.db.appl.url.contains(":6381"), "{}", one.db.appl.url);
    for several in [
        args(&[
            "--namespace",
            "asic0",
            "--namespace",
            "asic1",
            "--db-global-config",
            &g,
        ]),
        args(&["--namespace", "all", "--db-global-config", &g]),
    ] {
        let c = Config::merge(several, Options::default()).unwrap();
        assert_eq!(c.namespace, None, "several are not entered");
        let served: Vec<(&str, &str)> = c
            .namespaces
            .iter()
            .map(|s| (s.name.as_str(), s.db.appl.url.as_str()))
            .collect();
        assert_eq!(
            served,
            [
                ("asic0", "redis://127.0.0.1:6380/0"),
                ("asic1", "redis://127.0.0.1:6381/0")
            ]
        );
    }
    // The file takes a name or a list.
    let c = Config::merge(
        args(&["--db-global-config", &g]),
        file(r#"namespace = ["asic0", "asic1"]"#),
    )
    .unwrap();
    assert_eq!(c.namespaces.len(), 2);
    let c = Config::merge(
        args(&["--db-global-config", &g]),
        file(r#"namespace = "asic0""#),
    )
    .unwrap();
    assert_eq!(c.namespace.as_deref(), Some("asic0"));
    // Refused, naming why.
    for (bad, why) in [
        (
            vec!["--namespace", "asic0", "--namespace", "asic0"],
            "named twice",
        ),
        (
            vec!["--namespace", "all", "--namespace", "asic0"],
            "stands alone",
        ),
        (
            vec!["--namespace", "asic9", "--namespace", "asic0"],
            "asic9",
        ),
        (
            vec![
                "--namespace",
                "asic0",
                "--namespace",
                "asic1",
                "--redis",
                "redis://x:1",
            ],
            "db_global_config",
        ),
    ] {
        let mut a = bad.clone();
        a.extend(["--db-global-config", &g]);
        let e = Config::merge(args(&a), Options::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(why), "{bad:?}: {e}");
    }
}
