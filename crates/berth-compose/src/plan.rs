//! Planning: the dependency graph (start order, cycles named), and the names, labels and
//! config hashes Docker Compose gives containers, networks and volumes, so that either
//! tool sees the other's projects.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use crate::model::{Project, Service};
use crate::ComposeError;

/// `com.docker.compose.project`.
pub const PROJECT: &str = "com.docker.compose.project";
/// `com.docker.compose.service`.
pub const SERVICE: &str = "com.docker.compose.service";
/// `com.docker.compose.container-number`.
pub const NUMBER: &str = "com.docker.compose.container-number";
/// `com.docker.compose.oneoff`: `True` for `run`'s containers.
pub const ONEOFF: &str = "com.docker.compose.oneoff";
/// `com.docker.compose.config-hash`.
pub const CONFIG_HASH: &str = "com.docker.compose.config-hash";
/// `com.docker.compose.project.working_dir`.
pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";
/// `com.docker.compose.project.config_files`.
pub const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
/// `com.docker.compose.version`.
pub const VERSION: &str = "com.docker.compose.version";
/// `com.docker.compose.depends_on`.
pub const DEPENDS_ON: &str = "com.docker.compose.depends_on";
/// `com.docker.compose.image`: the image id the container was made from.
pub const IMAGE: &str = "com.docker.compose.image";
/// `com.docker.compose.network` (on networks).
pub const NETWORK: &str = "com.docker.compose.network";
/// `com.docker.compose.volume` (on volumes).
pub const VOLUME: &str = "com.docker.compose.volume";

/// The version berth's labels carry.
pub const COMPOSE_VERSION: &str = "2.29.0";

/// A service's container `n`: `container_name`, else `PROJECT-SERVICE-N`.
pub fn container_name(project: &str, service: &str, s: &Service, n: u32) -> String {
    match &s.container_name {
        Some(c) => c.clone(),
        None => format!("{project}-{service}-{n}"),
    }
}

/// The hash of what makes a service's containers what they are: a change recreates them.
/// Scale, build, pull policy, profiles and dependencies do not count (as in Docker
/// Compose).
pub fn config_hash(s: &Service) -> String {
    let mut s = s.clone();
    s.build = None;
    s.pull_policy = None;
    s.scale = None;
    s.profiles.clear();
    s.depends_on.clear();
    if let Some(d) = &mut s.deploy {
        d.replicas = None;
    }
    let json = serde_json::to_vec(&s).unwrap_or_default();
    berth_oci::to_hex(&Sha256::digest(&json))
}

/// Labels of a service's container.
pub fn container_labels(p: &Project, service: &str, s: &Service, n: u32, oneoff: bool) -> BTreeMap<String, String> {
    let mut l = s.labels.clone();
    let files: Vec<String> = p.config_files.iter().map(|f| f.display().to_string()).collect();
    l.insert(PROJECT.into(), p.name.clone());
    l.insert(SERVICE.into(), service.into());
    l.insert(NUMBER.into(), n.to_string());
    l.insert(ONEOFF.into(), if oneoff { "True" } else { "False" }.into());
    l.insert(CONFIG_HASH.into(), config_hash(s));
    l.insert(WORKING_DIR.into(), p.working_dir.display().to_string());
    l.insert(CONFIG_FILES.into(), files.join(","));
    l.insert(VERSION.into(), COMPOSE_VERSION.into());
    let deps: Vec<String> = s
        .depends_on
        .iter()
        .map(|(d, c)| format!("{d}:{}:{}", c.condition, c.restart))
        .collect();
    l.insert(DEPENDS_ON.into(), deps.join(","));
    l
}

/// Labels of a project's network or volume (`kind_label` is `NETWORK` or `VOLUME`).
pub fn resource_labels(
    p: &Project,
    kind_label: &str,
    key: &str,
    own: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut l = own.clone();
    l.insert(PROJECT.into(), p.name.clone());
    l.insert(kind_label.into(), key.into());
    l.insert(VERSION.into(), COMPOSE_VERSION.into());
    l
}

/// The services `named` with every service they depend on (those that are enabled).
pub fn with_dependencies(p: &Project, named: &[String]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut todo: Vec<String> = named.to_vec();
    while let Some(s) = todo.pop() {
        if !out.insert(s.clone()) {
            continue;
        }
        if let Some(svc) = p.services.get(&s) {
            todo.extend(svc.depends_on.keys().filter(|d| p.services.contains_key(*d)).cloned());
        }
        if let Some(other) = p
            .services
            .get(&s)
            .and_then(|svc| svc.network_mode.as_deref())
            .and_then(|m| m.strip_prefix("service:"))
        {
            todo.push(other.to_string());
        }
    }
    out
}

/// What a service waits for: its enabled dependencies, and the service whose network it
/// shares (started).
pub fn dependencies(p: &Project, s: &Service) -> Vec<(String, String)> {
    let mut deps: Vec<(String, String)> = s
        .depends_on
        .iter()
        .filter(|(d, _)| p.services.contains_key(*d))
        .map(|(d, c)| (d.clone(), c.condition.clone()))
        .collect();
    if let Some(other) = s.network_mode.as_deref().and_then(|m| m.strip_prefix("service:")) {
        if !deps.iter().any(|(d, _)| d == other) {
            deps.push((other.to_string(), "service_started".into()));
        }
    }
    deps
}

/// The services in start order, as waves: each wave depends only on earlier ones (so a
/// wave's services may start together). A cycle is an error that names it.
pub fn order(p: &Project, services: &[String]) -> Result<Vec<Vec<String>>, ComposeError> {
    let wanted: BTreeSet<String> = services.iter().cloned().collect();
    // Cycles first, by a depth-first walk that keeps its path.
    fn visit(p: &Project, s: &str, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> Result<(), ComposeError> {
        if let Some(i) = path.iter().position(|x| x == s) {
            let mut cycle = path[i..].to_vec();
            cycle.push(s.to_string());
            return Err(ComposeError::Project(format!(
                "dependency cycle detected: {}",
                cycle.join(" -> ")
            )));
        }
        if done.contains(s) {
            return Ok(());
        }
        path.push(s.to_string());
        if let Some(svc) = p.services.get(s) {
            for (d, _) in dependencies(p, svc) {
                visit(p, &d, path, done)?;
            }
        }
        path.pop();
        done.insert(s.to_string());
        Ok(())
    }
    let mut done = BTreeSet::new();
    for s in &wanted {
        visit(p, s, &mut Vec::new(), &mut done)?;
    }
    let mut placed: BTreeSet<String> = BTreeSet::new();
    let mut waves = Vec::new();
    while placed.len() < wanted.len() {
        let wave: Vec<String> = wanted
            .iter()
            .filter(|s| !placed.contains(*s))
            .filter(|s| {
                p.services.get(*s).is_none_or(|svc| {
                    dependencies(p, svc)
                        .iter()
                        .all(|(d, _)| placed.contains(d) || !wanted.contains(d))
                })
            })
            .cloned()
            .collect();
        if wave.is_empty() {
            break;
        }
        placed.extend(wave.iter().cloned());
        waves.push(wave);
    }
    Ok(waves)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Dependency;

    fn project(deps: &[(&str, &[&str])]) -> Project {
        let mut services = BTreeMap::new();
        for (name, on) in deps {
            let mut s = Service::default();
            for d in *on {
                s.depends_on.insert(
                    d.to_string(),
                    Dependency {
                        condition: "service_started".into(),
                        required: true,
                        restart: false,
                    },
                );
            }
            services.insert(name.to_string(), s);
        }
        let mut p = Project::named("p");
        p.services = services;
        p
    }

    #[test]
    fn waves_follow_dependencies_and_cycles_are_named() {
        let p = project(&[
            ("web", &["db", "cache"]),
            ("db", &[]),
            ("cache", &[]),
            ("worker", &["web"]),
        ]);
        let all: Vec<String> = p.services.keys().cloned().collect();
        assert_eq!(
            order(&p, &all).unwrap(),
            [vec!["cache", "db"], vec!["web"], vec!["worker"]]
        );
        assert_eq!(
            with_dependencies(&p, &["web".into()]).into_iter().collect::<Vec<_>>(),
            ["cache", "db", "web"]
        );
        let p = project(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"])]);
        let e = order(&p, &["a".into()]).unwrap_err().to_string();
        assert_eq!(e, "dependency cycle detected: a -> b -> c -> a");
    }

    #[test]
    fn the_hash_ignores_scale_and_dependencies() {
        let mut s = Service {
            image: Some("a".into()),
            ..Service::default()
        };
        let h = config_hash(&s);
        s.scale = Some(3);
        s.depends_on.insert("x".into(), Dependency::default());
        assert_eq!(config_hash(&s), h);
        s.environment.insert("A".into(), Some("1".into()));
        assert_ne!(config_hash(&s), h);
    }
}
