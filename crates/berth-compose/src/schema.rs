//! The Compose Specification's keys, checked against a file as it is read, so that an
//! unknown key is named with its file, line and column (the YAML parser knows where it is;
//! a tree of values no longer does).
//!
//! Only mappings are checked: a key that the specification does not have is an error,
//! except extension keys (`x-...`). Scalars and the shapes of values are checked later,
//! when the model is built.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// What a YAML node may hold.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Node {
    /// Anything.
    Any,
    /// A mapping with these keys (each checked with its node).
    Keys(&'static [(&'static str, Node)]),
    /// A mapping of names the user chose, each value checked with the node.
    Named(&'static Node),
    /// A sequence whose items are checked with the node (a mapping in the same place is
    /// checked with it too: several keys take either form).
    List(&'static Node),
}

use Node::{Any, Keys, List, Named};

const DEPEND: Node = Keys(&[("condition", Any), ("required", Any), ("restart", Any)]);
const HEALTH: Node = Keys(&[
    ("test", Any),
    ("interval", Any),
    ("timeout", Any),
    ("retries", Any),
    ("start_period", Any),
    ("start_interval", Any),
    ("disable", Any),
]);
const BUILD: Node = Keys(&[
    ("context", Any),
    ("dockerfile", Any),
    ("dockerfile_inline", Any),
    ("args", Any),
    ("target", Any),
    ("secrets", List(&FILE_REF)),
    ("labels", Any),
    ("network", Any),
    ("cache_from", Any),
    ("cache_to", Any),
    ("no_cache", Any),
    ("pull", Any),
    ("platforms", Any),
    ("tags", Any),
    ("extra_hosts", Any),
    ("shm_size", Any),
    ("ssh", Any),
    ("additional_contexts", Any),
    ("isolation", Any),
    ("privileged", Any),
]);
const FILE_REF: Node = Keys(&[
    ("source", Any),
    ("target", Any),
    ("uid", Any),
    ("gid", Any),
    ("mode", Any),
]);
const PORT: Node = Keys(&[
    ("name", Any),
    ("target", Any),
    ("published", Any),
    ("host_ip", Any),
    ("protocol", Any),
    ("mode", Any),
    ("app_protocol", Any),
]);
const MOUNT: Node = Keys(&[
    ("type", Any),
    ("source", Any),
    ("target", Any),
    ("read_only", Any),
    ("consistency", Any),
    (
        "bind",
        Keys(&[("propagation", Any), ("create_host_path", Any), ("selinux", Any)]),
    ),
    ("volume", Keys(&[("nocopy", Any), ("subpath", Any)])),
    ("tmpfs", Keys(&[("size", Any), ("mode", Any)])),
]);
const ATTACH: Node = Keys(&[
    ("aliases", Any),
    ("ipv4_address", Any),
    ("ipv6_address", Any),
    ("priority", Any),
    ("link_local_ips", Any),
    ("mac_address", Any),
    ("driver_opts", Any),
]);
const RESOURCES: Node = Keys(&[
    ("cpus", Any),
    ("memory", Any),
    ("pids", Any),
    ("devices", Any),
    ("generic_resources", Any),
]);
const DEPLOY: Node = Keys(&[
    ("mode", Any),
    ("replicas", Any),
    ("resources", Keys(&[("limits", RESOURCES), ("reservations", RESOURCES)])),
    (
        "restart_policy",
        Keys(&[
            ("condition", Any),
            ("delay", Any),
            ("max_attempts", Any),
            ("window", Any),
        ]),
    ),
    ("labels", Any),
    ("endpoint_mode", Any),
    ("placement", Any),
    ("update_config", Any),
    ("rollback_config", Any),
]);
const EXTENDS: Node = Keys(&[("service", Any), ("file", Any)]);

/// A service's keys.
pub(crate) const SERVICE: Node = Keys(&[
    ("annotations", Any),
    ("attach", Any),
    ("blkio_config", Any),
    ("build", BUILD),
    ("cap_add", Any),
    ("cap_drop", Any),
    ("cgroup", Any),
    ("cgroup_parent", Any),
    ("command", Any),
    ("configs", List(&FILE_REF)),
    ("container_name", Any),
    ("cpu_count", Any),
    ("cpu_percent", Any),
    ("cpu_period", Any),
    ("cpu_quota", Any),
    ("cpu_rt_period", Any),
    ("cpu_rt_runtime", Any),
    ("cpu_shares", Any),
    ("cpus", Any),
    ("cpuset", Any),
    ("credential_spec", Any),
    ("depends_on", Named(&DEPEND)),
    ("deploy", DEPLOY),
    ("develop", Any),
    ("device_cgroup_rules", Any),
    ("devices", Any),
    ("dns", Any),
    ("dns_opt", Any),
    ("dns_search", Any),
    ("domainname", Any),
    ("entrypoint", Any),
    (
        "env_file",
        List(&Keys(&[("path", Any), ("required", Any), ("format", Any)])),
    ),
    ("environment", Any),
    ("expose", Any),
    ("extends", EXTENDS),
    ("external_links", Any),
    ("extra_hosts", Any),
    ("gpus", Any),
    ("group_add", Any),
    ("healthcheck", HEALTH),
    ("hostname", Any),
    ("image", Any),
    ("init", Any),
    ("ipc", Any),
    ("isolation", Any),
    ("labels", Any),
    ("label_file", Any),
    ("links", Any),
    ("logging", Keys(&[("driver", Any), ("options", Any)])),
    ("mac_address", Any),
    ("mem_limit", Any),
    ("mem_reservation", Any),
    ("mem_swappiness", Any),
    ("memswap_limit", Any),
    ("network_mode", Any),
    ("networks", Named(&ATTACH)),
    ("oom_kill_disable", Any),
    ("oom_score_adj", Any),
    ("pid", Any),
    ("pids_limit", Any),
    ("platform", Any),
    ("ports", List(&PORT)),
    ("post_start", Any),
    ("pre_stop", Any),
    ("privileged", Any),
    ("profiles", Any),
    ("pull_policy", Any),
    ("read_only", Any),
    ("restart", Any),
    ("runtime", Any),
    ("scale", Any),
    ("secrets", List(&FILE_REF)),
    ("security_opt", Any),
    ("shm_size", Any),
    ("stdin_open", Any),
    ("stop_grace_period", Any),
    ("stop_signal", Any),
    ("storage_opt", Any),
    ("sysctls", Any),
    ("tmpfs", Any),
    ("tty", Any),
    ("ulimits", Any),
    ("user", Any),
    ("userns_mode", Any),
    ("uts", Any),
    ("volumes", List(&MOUNT)),
    ("volumes_from", Any),
    ("working_dir", Any),
]);

const IPAM: Node = Keys(&[
    ("driver", Any),
    (
        "config",
        List(&Keys(&[
            ("subnet", Any),
            ("ip_range", Any),
            ("gateway", Any),
            ("aux_addresses", Any),
        ])),
    ),
    ("options", Any),
]);
const NETWORK: Node = Keys(&[
    ("name", Any),
    ("driver", Any),
    ("driver_opts", Any),
    ("ipam", IPAM),
    ("external", Any),
    ("internal", Any),
    ("attachable", Any),
    ("enable_ipv6", Any),
    ("labels", Any),
]);
const VOLUME: Node = Keys(&[
    ("name", Any),
    ("driver", Any),
    ("driver_opts", Any),
    ("external", Any),
    ("labels", Any),
]);
const SECRET: Node = Keys(&[
    ("name", Any),
    ("file", Any),
    ("environment", Any),
    ("content", Any),
    ("external", Any),
    ("labels", Any),
    ("driver", Any),
    ("driver_opts", Any),
    ("template_driver", Any),
]);
const INCLUDE: Node = Keys(&[("path", Any), ("project_directory", Any), ("env_file", Any)]);

/// A Compose file's top-level keys.
pub(crate) const FILE: Node = Keys(&[
    ("version", Any),
    ("name", Any),
    ("include", List(&INCLUDE)),
    ("services", Named(&SERVICE)),
    ("networks", Named(&NETWORK)),
    ("volumes", Named(&VOLUME)),
    ("secrets", Named(&SECRET)),
    ("configs", Named(&SECRET)),
]);

/// Checks YAML text against `node`: the error names the key's path and its place.
pub(crate) fn check(text: &str, node: Node) -> Result<(), String> {
    for doc in serde_yaml::Deserializer::from_str(text) {
        if let Err(e) = (Check {
            node,
            path: String::new(),
        })
        .deserialize(doc)
        {
            let mut msg = e.to_string();
            // The parser puts the key's path first; the message says it already.
            if let Some(i) = msg.find("unknown key `") {
                msg = msg[i..].to_string();
            }
            if msg.contains(" at line ") {
                return Err(msg);
            }
            // The parser leaves out the place of the very first key: it is found here.
            let line = msg
                .split('`')
                .nth(1)
                .and_then(|k| text.lines().position(|l| l.trim_start().starts_with(&format!("{k}:"))));
            return Err(match (e.location(), line) {
                (Some(l), _) if l.index() > 0 => format!("{msg} at line {} column {}", l.line(), l.column()),
                (_, Some(n)) => format!("{msg} at line {}", n + 1),
                _ => msg,
            });
        }
    }
    Ok(())
}

/// One node being checked, with its path (`services.web`).
struct Check {
    node: Node,
    path: String,
}

impl<'de> DeserializeSeed<'de> for Check {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Check {
    fn child(&self, key: &str, node: Node) -> Check {
        Check {
            node,
            path: if self.path.is_empty() {
                key.to_string()
            } else {
                format!("{}.{key}", self.path)
            },
        }
    }
}

impl<'de> Visitor<'de> for Check {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let item = match self.node {
            List(n) => *n,
            _ => Any,
        };
        let mut i = 0;
        while seq
            .next_element_seed(Check {
                node: item,
                path: format!("{}[{i}]", self.path),
            })?
            .is_some()
        {
            i += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // The key is checked while it is read, so that an error carries the key's place.
        while let Some(name) = map.next_key_seed(KeyCheck {
            node: self.node,
            path: &self.path,
        })? {
            let node = match self.node {
                Any => Any,
                Named(n) | List(n) => *n,
                Keys(keys) => keys.iter().find(|(k, _)| *k == name).map_or(Any, |(_, n)| *n),
            };
            map.next_value_seed(self.child(&name, node))?;
        }
        Ok(())
    }
}

/// A mapping's key, read as a string and checked against the mapping's keys.
struct KeyCheck<'p> {
    node: Node,
    path: &'p str,
}

impl<'de> DeserializeSeed<'de> for KeyCheck<'_> {
    type Value = String;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        // Raised inside the key's own visitor, an error carries the key's place.
        d.deserialize_any(self)
    }
}

impl KeyCheck<'_> {
    fn check<E: de::Error>(&self, name: String) -> Result<String, E> {
        if let Keys(keys) = self.node {
            // `<<` merges an anchored mapping in (checked where it is defined).
            if !name.starts_with("x-") && name != "<<" && !keys.iter().any(|(k, _)| *k == name) {
                let at = if self.path.is_empty() {
                    "at the top level".to_string()
                } else {
                    format!("in {}", self.path)
                };
                return Err(E::custom(format_args!(
                    "unknown key `{name}` {at} (additional properties are not allowed)"
                )));
            }
        }
        Ok(name)
    }
}

impl<'de> Visitor<'de> for KeyCheck<'_> {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        self.check(v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        self.check(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        self.check(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        self.check(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        self.check(v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        self.check("null".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_named_with_their_place() {
        check("services:\n  web:\n    image: a\n    x-mine: 1\n", FILE).unwrap();
        let e = check("services:\n  web:\n    image: a\n    imag: b\n", FILE)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown key `imag` in services.web"), "{e}");
        assert!(e.contains("line 4"), "{e}");
        let e = check(
            "services:\n  web:\n    ports:\n      - target: 80\n        publish: 8\n",
            FILE,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`publish` in services.web.ports[0]") && e.contains("line 5"),
            "{e}"
        );
        let e = check("servces: {}\n", FILE).unwrap_err().to_string();
        assert!(e.contains("`servces` at the top level") && e.contains("line 1"), "{e}");
        check(
            "x-svc: &svc\n  image: a\nservices:\n  a:\n    <<: *svc\n    init: true\n",
            FILE,
        )
        .unwrap();
        check(
            "services:\n  a:\n    depends_on: [b]\n    networks: [n]\n    build: .\n  b:\n    depends_on:\n      a: {condition: service_healthy}\n",
            FILE,
        )
        .unwrap();
    }
}
