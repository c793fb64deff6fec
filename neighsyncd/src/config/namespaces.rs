//! Which SONiC namespaces a daemon serves (`namespace`): the one it is in, one it enters, or
//! several it serves from where it was started, each with its databases.

use super::{ConfigError, Options, invalid, set};
use crate::sonic::dbconfig::DbLayout;

/// One SONiC namespace a daemon serves, and its databases.
#[derive(Debug, Clone)]
pub struct Served {
    pub name: String,
    pub db: DbLayout,
}

/// `namespace`: none (the namespace the daemon is in), one (entered), or several / `all`
/// (served from here). Returns the one entered, the several served, and the databases of the
/// first.
pub(super) fn namespaces(
    o: &Options,
) -> Result<(Option<String>, Vec<Served>, DbLayout), ConfigError> {
    let mut names: Vec<String> = o
        .namespace
        .iter()
        .flatten()
        .filter(|n| !n.is_empty())
        .cloned()
        .collect();
    let global = || set(o.db_global_config.clone(), "db_global_config");
    let all = names.iter().any(|n| n == "all");
    if all {
        if names.len() > 1 {
            return Err(invalid("namespace", "`all` stands alone"));
        }
        names = DbLayout::global_namespaces(&global()?)?;
        if names.is_empty() {
            return Err(invalid(
                "namespace",
                "`all`: the global database config lists no ASIC namespace",
            ));
        }
    }
    for (i, ns) in names.iter().enumerate() {
        if ns.contains('/') || ns == "." || ns == ".." {
            return Err(invalid(
                "namespace",
                format!("{ns:?} is not a namespace name"),
            ));
        }
        if names[..i].contains(ns) {
            return Err(invalid("namespace", format!("{ns:?} is named twice")));
        }
    }
    if names.len() > crate::core::key::PARTITIONS {
        return Err(invalid(
            "namespace",
            format!(
                "{} namespaces: one process serves at most {}",
                names.len(),
                crate::core::key::PARTITIONS
            ),
        ));
    }
    let several = all || names.len() > 1;
    if several && o.redis.is_some() {
        return Err(invalid(
            "redis",
            "several namespaces each have their databases: take them from db_global_config",
        ));
    }
    if several {
        let global = global()?;
        let served = names
            .into_iter()
            .map(|name| {
                let db = DbLayout::from_sonic_global(&global, &name)?;
                Ok(Served { name, db })
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let db = served
            .first()
            .map(|s| s.db.clone())
            .ok_or_else(|| invalid("namespace", "no namespace to serve"))?;
        return Ok((None, served, db));
    }
    let namespace = names.pop();
    let db = match (&o.redis, &namespace) {
        (Some(url), _) => DbLayout::from_url(url).map_err(|e| invalid("redis", e.to_string()))?,
        (None, Some(ns)) => DbLayout::from_sonic_global(&global()?, ns)?,
        (None, None) => DbLayout::from_sonic_file(&set(o.db_config.clone(), "db_config")?)?,
    };
    Ok((namespace, Vec::new(), db))
}
