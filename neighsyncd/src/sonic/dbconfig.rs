//! Where SONiC's databases live: `database_config.json`, or one plain Redis address for labs.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

/// SONiC's default location of the database layout.
pub const DEFAULT_DB_CONFIG: &str = "/var/run/redis/sonic-db/database_config.json";
/// Where multi-ASIC SONiC lists each namespace's database_config.json.
pub const DEFAULT_DB_GLOBAL_CONFIG: &str = "/var/run/redis/sonic-db/database_global.json";

#[derive(Debug, thiserror::Error)]
pub enum DbConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid database_config.json: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("{path}: database {db} is not defined")]
    MissingDb { path: String, db: String },
    #[error("{path}: database {db} names instance {instance}, which is not defined")]
    MissingInstance {
        path: String,
        db: String,
        instance: String,
    },
    #[error("{path}: instance {instance} has neither unix_socket_path nor hostname/port")]
    NoAddress { path: String, instance: String },
    #[error("{path} is not a valid database_global.json: {reason}")]
    GlobalParse { path: String, reason: String },
    #[error("{path} lists no namespace {namespace:?} (it lists {listed:?})")]
    UnknownNamespace {
        path: String,
        namespace: String,
        listed: Vec<String>,
    },
    #[error("redis address {0:?} must look like redis://host:port or unix:///path")]
    BadUrl(String),
}

/// One SONiC database: how to reach it and its number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbEndpoint {
    /// A redis-crate URL selecting the database (`redis://h:p/N` or `unix:///p?db=N`).
    pub url: String,
    pub id: i64,
    pub separator: String,
}

/// The three databases neighsyncd uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbLayout {
    pub appl: DbEndpoint,
    pub config: DbEndpoint,
    pub state: DbEndpoint,
}

#[derive(Deserialize)]
struct Json {
    #[serde(rename = "INSTANCES")]
    instances: HashMap<String, Instance>,
    #[serde(rename = "DATABASES")]
    databases: HashMap<String, Database>,
}

#[derive(Deserialize)]
struct Instance {
    hostname: Option<String>,
    port: Option<u16>,
    unix_socket_path: Option<String>,
}

#[derive(Deserialize)]
struct Database {
    id: i64,
    separator: String,
    instance: String,
}

fn url_for(base: &str, id: i64) -> String {
    if let Some(path) = base.strip_prefix("unix://") {
        format!("unix://{path}?db={id}")
    } else {
        format!("{}/{id}", base.trim_end_matches('/'))
    }
}

impl DbLayout {
    /// SONiC's numbering on one plain Redis (labs, tests): APPL_DB 0, CONFIG_DB 4, STATE_DB 6.
    pub fn from_url(url: &str) -> Result<DbLayout, DbConfigError> {
        let base = if let Some(path) = url.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(DbConfigError::BadUrl(url.into()));
            }
            format!("unix://{}", path.split('?').next().unwrap_or(path))
        } else if let Some(rest) = url.strip_prefix("redis://") {
            let hostport = rest.split('/').next().unwrap_or("");
            if hostport.is_empty() {
                return Err(DbConfigError::BadUrl(url.into()));
            }
            format!("redis://{hostport}")
        } else {
            return Err(DbConfigError::BadUrl(url.into()));
        };
        let ep = |id: i64, sep: &str| DbEndpoint {
            url: url_for(&base, id),
            id,
            separator: sep.into(),
        };
        Ok(DbLayout {
            appl: ep(0, ":"),
            config: ep(4, "|"),
            state: ep(6, "|"),
        })
    }

    pub fn from_sonic_file(path: &Path) -> Result<DbLayout, DbConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| DbConfigError::Read {
            path: p.clone(),
            source,
        })?;
        Self::from_sonic_json(&text, &p)
    }

    /// `namespace`'s databases, as swss-common's `SonicDBConfig::initializeGlobalConfig` finds
    /// them: database_global.json's `INCLUDES` name each namespace's database_config.json,
    /// relative to the global file's directory (an entry without `namespace` is the host's).
    pub fn from_sonic_global(path: &Path, namespace: &str) -> Result<DbLayout, DbConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| DbConfigError::Read {
            path: p.clone(),
            source,
        })?;
        let include = global_include(&text, &p, namespace)?;
        let dir = path.parent().unwrap_or_else(|| Path::new(""));
        Self::from_sonic_file(&dir.join(include))
    }

    /// Every ASIC namespace database_global.json lists, in its order (the host's entry, which
    /// has no `namespace`, is not one).
    pub fn global_namespaces(path: &Path) -> Result<Vec<String>, DbConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| DbConfigError::Read {
            path: p.clone(),
            source,
        })?;
        // Asking for a namespace no entry has lists them all.
        match global_include(&text, &p, "\0") {
            Err(DbConfigError::UnknownNamespace { listed, .. }) => {
                Ok(listed.into_iter().filter(|n| !n.is_empty()).collect())
            }
            Err(e) => Err(e),
            Ok(_) => Ok(Vec::new()),
        }
    }

    pub fn from_sonic_json(text: &str, path: &str) -> Result<DbLayout, DbConfigError> {
        let json: Json = serde_json::from_str(text).map_err(|source| DbConfigError::Parse {
            path: path.into(),
            source,
        })?;
        let endpoint = |name: &str| -> Result<DbEndpoint, DbConfigError> {
            let db = json
                .databases
                .get(name)
                .ok_or_else(|| DbConfigError::MissingDb {
                    path: path.into(),
                    db: name.into(),
                })?;
            let inst =
                json.instances
                    .get(&db.instance)
                    .ok_or_else(|| DbConfigError::MissingInstance {
                        path: path.into(),
                        db: name.into(),
                        instance: db.instance.clone(),
                    })?;
            // Like swss-common's DBConnector, prefer the unix socket.
            let base = match (&inst.unix_socket_path, &inst.hostname, inst.port) {
                (Some(sock), _, _) if !sock.is_empty() => format!("unix://{sock}"),
                (_, Some(host), Some(port)) => format!("redis://{host}:{port}"),
                _ => {
                    return Err(DbConfigError::NoAddress {
                        path: path.into(),
                        instance: db.instance.clone(),
                    });
                }
            };
            Ok(DbEndpoint {
                url: url_for(&base, db.id),
                id: db.id,
                separator: db.separator.clone(),
            })
        };
        Ok(DbLayout {
            appl: endpoint("APPL_DB")?,
            config: endpoint("CONFIG_DB")?,
            state: endpoint("STATE_DB")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SONIC: &str = r#"{
        "INSTANCES": {
            "redis": {"hostname": "127.0.0.1", "port": 6379, "unix_socket_path": "/var/run/redis/redis.sock"},
            "redis2": {"hostname": "127.0.0.1", "port": 6380}
        },
        "DATABASES": {
            "APPL_DB": {"id": 0, "separator": ":", "instance": "redis"},
            "CONFIG_DB": {"id": 4, "separator": "|", "instance": "redis"},
            "STATE_DB": {"id": 6, "separator": "|", "instance": "redis2"}
        },
        "VERSION": "1.0"
    }"#;

    #[test]
    fn reads_sonic_layout_preferring_unix_sockets() {
        let l = DbLayout::from_sonic_json(SONIC, "x").unwrap();
        assert_eq!(l.appl.url, "unix:///var/run/redis/redis.sock?db=0");
        assert_eq!(l.config.url, "unix:///var/run/redis/redis.sock?db=4");
        assert_eq!(l.config.separator, "|");
        assert_eq!(l.state.url, "redis://127.0.0.1:6380/6");
    }

    #[test]
    fn names_what_is_missing() {
        let e = DbLayout::from_sonic_json(&SONIC.replace("STATE_DB", "OTHER"), "f.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("STATE_DB"), "{e}");
        let e = DbLayout::from_sonic_json("{", "f.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("f.json"), "{e}");
        let e = DbLayout::from_sonic_json(&SONIC.replace("\"redis2\"}", "\"nope\"}"), "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    fn plain_urls_get_sonic_numbers() {
        let l = DbLayout::from_url("unix:///tmp/r.sock").unwrap();
        assert_eq!(l.appl.url, "unix:///tmp/r.sock?db=0");
        assert_eq!(l.state.url, "unix:///tmp/r.sock?db=6");
        let l = DbLayout::from_url("redis://127.0.0.1:7000").unwrap();
        assert_eq!(l.config.url, "redis://127.0.0.1:7000/4");
        assert!(DbLayout::from_url("http://x").is_err());
        assert!(DbLayout::from_url("unix://relative").is_err());
        assert!(DbLayout::from_url("redis://").is_err());
    }
}

/// The `include` database_global.json gives for `namespace` ("" is the host's).
fn global_include(text: &str, path: &str, namespace: &str) -> Result<String, DbConfigError> {
    let bad = |reason: &str| DbConfigError::GlobalParse {
        path: path.into(),
        reason: reason.into(),
    };
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
    let includes = json
        .get("INCLUDES")
        .and_then(|v| v.as_array())
        .ok_or_else(|| bad("no INCLUDES list"))?;
    let mut listed = Vec::new();
    for entry in includes {
        let ns = entry
            .get("namespace")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let include = entry
            .get("include")
            .and_then(|v| v.as_str())
            .ok_or_else(|| bad("an INCLUDES entry without `include`"))?;
        if ns == namespace {
            return Ok(include.to_string());
        }
        listed.push(ns.to_string());
    }
    Err(DbConfigError::UnknownNamespace {
        path: path.into(),
        namespace: namespace.into(),
        listed,
    })
}

#[cfg(test)]
mod global_tests {
    use super::*;

    /// The layout multi-ASIC SONiC writes: the host's file, then one per ASIC namespace, each
    /// relative to the global file's directory.
    #[test]
    fn each_namespace_gets_the_databases_its_include_names() {
        let dir = tempfile::tempdir().unwrap();
        let write = |rel: &str, sock: &str| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(
                &p,
                format!(
                    r#"{{"INSTANCES": {{"redis": {{"hostname": "127.0.0.1", "port": 6379, "unix_socket_path": "{sock}"}}}},
                        "DATABASES": {{"APPL_DB": {{"id": 0, "separator": ":", "instance": "redis"}},
                                      "CONFIG_DB": {{"id": 4, "separator": "|", "instance": "redis"}},
                                      "STATE_DB": {{"id": 6, "separator": "|", "instance": "redis"}}}},
                        "VERSION": "1.0"}}"#
                ),
            )
            .unwrap();
        };
        write(
            "redis/sonic-db/database_config.json",
            "/var/run/redis/redis.sock",
        );
        write(
            "redis0/sonic-db/database_config.json",
            "/var/run/redis0/redis.sock",
        );
        write(
            "redis1/sonic-db/database_config.json",
            "/var/run/redis1/redis.sock",
        );
        let global = dir.path().join("redis/sonic-db/database_global.json");
        std::fs::write(
            &global,
            r#"{"INCLUDES": [{"include": "database_config.json"},
                             {"namespace": "asic0", "include": "../../redis0/sonic-db/database_config.json"},
                             {"namespace": "asic1", "include": "../../redis1/sonic-db/database_config.json"}],
                "VERSION": "1.0"}"#,
        )
        .unwrap();
        for (ns, sock) in [
            ("", "/var/run/redis/redis.sock"),
            ("asic0", "/var/run/redis0/redis.sock"),
            ("asic1", "/var/run/redis1/redis.sock"),
        ] {
            let l = DbLayout::from_sonic_global(&global, ns).unwrap();
            assert!(l.appl.url.contains(sock), "{ns}: {}", l.appl.url);
            assert_eq!((l.appl.id, l.config.id, l.state.id), (0, 4, 6));
        }
        let e = DbLayout::from_sonic_global(&global, "asic7").unwrap_err();
        assert!(
            e.to_string().contains("asic7") && e.to_string().contains("asic1"),
            "{e}"
        );
    }
}
