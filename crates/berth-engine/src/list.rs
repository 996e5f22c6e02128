//! The container list, for every front end: Docker's filters (`docker ps --filter`, the
//! `filters` of `GET /containers/json`) parsed and checked once, and the listing itself.
//!
//! Docker's rules: values of one key are alternatives, except `label`, whose values must all
//! match; different keys must all match. A `status` filter lists stopped containers too, as
//! `--all` and a limit do. An unknown key, or a value a key cannot take, is an error naming it.

use std::collections::BTreeMap;

use crate::store::{Engine, Record, State, Status};
use crate::{EngineError, Result};

/// The filter keys `docker ps` accepts.
const KEYS: &[&str] = &[
    "ancestor",
    "before",
    "expose",
    "exited",
    "health",
    "id",
    "isolation",
    "is-task",
    "label",
    "name",
    "network",
    "publish",
    "since",
    "status",
    "volume",
];

/// The values a `health` filter may name.
const HEALTH: &[&str] = &["starting", "healthy", "unhealthy", "none"];

/// Checked container filters: each key with its values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(BTreeMap<String, Vec<String>>);

impl Filters {
    /// Adds `key=value`, refusing what Docker refuses.
    pub fn add(&mut self, key: &str, value: &str) -> Result<()> {
        if !KEYS.contains(&key) {
            return Err(EngineError::Invalid(format!("invalid filter '{key}'")));
        }
        let bad = || EngineError::Invalid(format!("invalid filter '{key}={value}'"));
        match key {
            "status" if Status::parse(value).is_none() => {
                return Err(EngineError::Invalid(format!(
                    "invalid filter 'status={value}': must be one of created, restarting, running, removing, paused, exited, dead"
                )))
            }
            "health" if !HEALTH.contains(&value) => {
                return Err(EngineError::Invalid(format!(
                    "unrecognized filter value for health: {value}: must be one of {}",
                    HEALTH.join(", ")
                )))
            }
            "exited" if value.parse::<i32>().is_err() => return Err(bad()),
            "is-task" if value != "true" && value != "false" => return Err(bad()),
            "publish" | "expose" if port_key(value).is_none() => return Err(bad()),
            _ => {}
        }
        self.0.entry(key.to_string()).or_default().push(value.to_string());
        Ok(())
    }

    /// From the CLI's `--filter KEY=VALUE` arguments.
    pub fn from_args(args: &[String]) -> Result<Filters> {
        let mut f = Filters::default();
        for a in args {
            let (k, v) = a
                .split_once('=')
                .ok_or_else(|| EngineError::Invalid(format!("bad format of filter (expected name=value): {a}")))?;
            f.add(k, v)?;
        }
        Ok(f)
    }

    /// From the API's decoded `filters` (key to values).
    pub fn from_map<'a>(map: impl IntoIterator<Item = (&'a String, &'a Vec<String>)>) -> Result<Filters> {
        let mut f = Filters::default();
        for (k, vals) in map {
            for v in vals {
                f.add(k, v)?;
            }
        }
        Ok(f)
    }

    /// Whether a key is present.
    pub fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// Whether the container matches every key. `marks` holds the creation times of the
    /// containers `before` and `since` name.
    fn matches(&self, engine: &Engine, r: &Record, st: &State, marks: &Marks) -> bool {
        self.0.iter().all(|(key, vals)| {
            let one = |v: &String| matches_one(engine, key, v, r, st, marks);
            if key == "label" {
                vals.iter().all(one)
            } else {
                vals.iter().any(one)
            }
        })
    }
}

/// The creation times `before` and `since` compare with.
#[derive(Debug, Default)]
struct Marks {
    before: Vec<String>,
    since: Vec<String>,
}

/// `80`, `80/tcp`, `53/udp`: the `port/proto` key Docker's port maps use.
fn port_key(v: &str) -> Option<String> {
    let (port, proto) = v.split_once('/').unwrap_or((v, "tcp"));
    let port: u16 = port.parse().ok()?;
    matches!(proto, "tcp" | "udp" | "sctp").then(|| format!("{port}/{proto}"))
}

fn matches_one(engine: &Engine, key: &str, v: &str, r: &Record, st: &State, marks: &Marks) -> bool {
    match key {
        "status" => Status::parse(v) == Some(st.status),
        "name" => r.name.contains(v.trim_start_matches('/')),
        "id" => r.id.starts_with(v),
        "label" => match v.split_once('=') {
            Some((lk, lv)) => r.labels.get(lk).is_some_and(|x| x == lv),
            None => r.labels.contains_key(v),
        },
        "ancestor" => {
            let bare = v.strip_prefix("sha256:").unwrap_or(v);
            r.image_name == v
                || r.image_name == format!("{v}:latest")
                || (!bare.is_empty() && r.image_id.trim_start_matches("sha256:").starts_with(bare))
        }
        "exited" => st.status == Status::Exited && v.parse::<i32>().ok() == Some(st.exit_code),
        "health" => st.health.as_ref().map_or("none", |h| h.status.as_str()) == v,
        "network" => networks_of(engine, r)
            .iter()
            .any(|(name, id)| name == v || (!v.is_empty() && id.starts_with(v))),
        "volume" => r.mounts.iter().any(|m| m.source == v || m.destination == v),
        "publish" => {
            let want = port_key(v);
            r.publish.iter().any(|spec| {
                crate::networks::parse_publish(spec)
                    .map(|ps| ps.iter().any(|p| Some(format!("{}/{}", p.2, p.3.as_str())) == want))
                    .unwrap_or(false)
            })
        }
        "expose" => {
            let want = port_key(v);
            r.exposed_ports.iter().any(|p| port_key(p) == want)
        }
        "before" => marks.before.iter().all(|t| r.created < *t),
        "since" => marks.since.iter().all(|t| r.created > *t),
        "isolation" => v == "default",
        "is-task" => v == "false",
        _ => false,
    }
}

/// The networks a container is on: (name, id).
fn networks_of(engine: &Engine, r: &Record) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if !r.network().is_private() && !r.network_mode.is_empty() {
        let id = crate::networks::get(engine, &r.network_mode)
            .map(|n| n.id)
            .unwrap_or_default();
        out.push((r.network_mode.clone(), id));
    }
    for c in crate::networks::connections(engine, &r.id) {
        let name = crate::networks::get(engine, &c.network_id)
            .map(|n| n.name)
            .unwrap_or_default();
        out.push((name, c.network_id));
    }
    out
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Stopped containers too (`-a`).
    pub all: bool,
    /// At most this many, the newest first; stopped ones count (`-n`, `-l`).
    pub limit: Option<usize>,
    /// Filters.
    pub filters: Filters,
}

/// The containers, newest first, as [`ListOptions`] asks: each record with its state (a
/// frozen container reads `paused`).
pub fn containers(engine: &Engine, o: &ListOptions) -> Result<Vec<(Record, State)>> {
    let mut marks = Marks::default();
    for (key, into) in [("before", &mut marks.before), ("since", &mut marks.since)] {
        for v in o.filters.0.get(key).into_iter().flatten() {
            into.push(engine.resolve(v)?.created);
        }
    }
    let all = o.all || o.limit.is_some() || o.filters.has("status");
    let mut out = Vec::new();
    for r in engine.all()? {
        let mut st = engine.state(&r.id);
        if st.running() && crate::ops::is_paused(engine, &r.id) {
            st.status = Status::Paused;
        }
        let listed = matches!(st.status, Status::Running | Status::Paused | Status::Restarting);
        if !all && !listed {
            continue;
        }
        if !o.filters.matches(engine, &r, &st, &marks) {
            continue;
        }
        out.push((r, st));
        if o.limit.is_some_and(|l| out.len() >= l) {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_checked_as_docker_checks_them() {
        let args = |a: &[&str]| Filters::from_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        args(&["status=running", "label=a=b", "publish=80", "expose=53/udp"]).unwrap();
        let e = args(&["colour=red"]).unwrap_err().to_string();
        assert_eq!(e, "invalid filter 'colour'");
        assert!(args(&["status=sleeping"])
            .unwrap_err()
            .to_string()
            .contains("status=sleeping"));
        assert!(args(&["health=fine"]).unwrap_err().to_string().contains("health"));
        args(&["exited=x"]).unwrap_err();
        args(&["publish=http"]).unwrap_err();
        assert!(args(&["status"])
            .unwrap_err()
            .to_string()
            .contains("expected name=value"));
        let mut m = BTreeMap::new();
        m.insert("label".to_string(), vec!["a".to_string(), "b=c".to_string()]);
        let f = Filters::from_map(&m).unwrap();
        assert_eq!(f.0["label"], ["a", "b=c"]);
        assert_eq!(port_key("80"), Some("80/tcp".into()));
        assert_eq!(port_key("53/udp"), Some("53/udp".into()));
        assert_eq!(port_key("x/tcp"), None);
    }
}
