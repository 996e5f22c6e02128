//! A container's environment from its pod's file: plain values, `envFrom`, ConfigMap and
//! Secret keys, and the pod's own fields.

use berth_engine::pods;
use berth_engine::EngineError;
use k8s_openapi::api::core::v1 as core;

use crate::Doc;

/// The ConfigMaps and Secrets of a file, by name, and the namespace of the pod being played.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Data {
    pub(crate) config_maps: std::collections::HashMap<String, std::collections::BTreeMap<String, String>>,
    pub(crate) secrets: std::collections::HashMap<String, std::collections::BTreeMap<String, String>>,
    pub(crate) namespace: String,
    /// The address of the pod being played (its infra's; the host's on its network).
    #[serde(skip)]
    pub(crate) pod_ip: String,
    /// The host's address (`status.hostIP`).
    #[serde(skip)]
    pub(crate) host_ip: String,
}

impl Data {
    pub(crate) fn of(docs: &[Doc]) -> Data {
        let mut d = Data::default();
        for doc in docs {
            match doc {
                Doc::ConfigMap(m) => {
                    let name = m.metadata.name.clone().unwrap_or_default();
                    d.config_maps.insert(name, m.data.clone().unwrap_or_default());
                }
                Doc::Secret(s) => {
                    let name = s.metadata.name.clone().unwrap_or_default();
                    // `data` is base64 in the YAML (the type decodes it), `stringData` plain.
                    let mut v: std::collections::BTreeMap<String, String> = s
                        .data
                        .iter()
                        .flatten()
                        .map(|(k, b)| (k.clone(), String::from_utf8_lossy(&b.0).into_owned()))
                        .collect();
                    v.extend(s.string_data.clone().unwrap_or_default());
                    d.secrets.insert(name, v);
                }
                _ => {}
            }
        }
        d
    }

    /// The host's first IPv4 address that is not loopback (`status.hostIP`).
    pub(crate) fn host_ip() -> String {
        nix::ifaddrs::getifaddrs()
            .ok()
            .and_then(|mut all| {
                all.find_map(|a| {
                    let ip = a.address?.as_sockaddr_in()?.ip();
                    (!ip.is_loopback()).then(|| ip.to_string())
                })
            })
            .unwrap_or_else(|| "127.0.0.1".into())
    }

    /// A key of a ConfigMap (with `secret`, of a Secret); none where `optional` allows it.
    fn key(&self, secret: bool, name: &str, key: &str, optional: bool) -> Result<Option<String>, EngineError> {
        let (kind, all) = if secret {
            ("secret", &self.secrets)
        } else {
            ("configmap", &self.config_maps)
        };
        match all.get(name).and_then(|m| m.get(key)) {
            Some(v) => Ok(Some(v.clone())),
            None if optional => Ok(None),
            None => Err(EngineError::Invalid(format!(
                "{kind} {name:?} has no key {key:?} (it must be in the same file)"
            ))),
        }
    }
}

/// A container's environment: `envFrom` first, then `env` over it, each value plain or from
/// a ConfigMap, a Secret or the pod's own fields.
pub(crate) fn environment(c: &core::Container, pod: &pods::Pod, data: &Data) -> Result<Vec<String>, EngineError> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: String, v: String| {
        env.retain(|(x, _)| *x != k);
        env.push((k, v));
    };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (secret, name, optional) = match (&from.config_map_ref, &from.secret_ref) {
            (Some(m), _) => (false, m.name.clone(), m.optional == Some(true)),
            (None, Some(s)) => (true, s.name.clone(), s.optional == Some(true)),
            (None, None) => continue,
        };
        let all = if secret { &data.secrets } else { &data.config_maps };
        match all.get(&name) {
            Some(m) => {
                for (k, v) in m {
                    set(format!("{prefix}{k}"), v.clone());
                }
            }
            None if optional => {}
            None => {
                return Err(EngineError::Invalid(format!(
                    "container {}: envFrom names {name:?}, which is not in the file",
                    c.name
                )))
            }
        }
    }
    for e in c.env.iter().flatten() {
        let Some(from) = &e.value_from else {
            set(e.name.clone(), e.value.clone().unwrap_or_default());
            continue;
        };
        let v = if let Some(r) = &from.config_map_key_ref {
            data.key(false, &r.name, &r.key, r.optional == Some(true))?
        } else if let Some(r) = &from.secret_key_ref {
            data.key(true, &r.name, &r.key, r.optional == Some(true))?
        } else if let Some(f) = &from.field_ref {
            let key = |p: &str, prefix: &str| {
                p.strip_prefix(prefix)
                    .and_then(|k| k.strip_prefix("['"))
                    .and_then(|k| k.strip_suffix("']"))
                    .map(str::to_string)
            };
            match f.field_path.as_str() {
                "metadata.name" => Some(pod.name.clone()),
                "metadata.namespace" => Some(data.namespace.clone()),
                "metadata.uid" => Some(pod.id.clone()),
                "spec.nodeName" => nix::unistd::gethostname().ok().map(|h| h.to_string_lossy().into_owned()),
                "status.podIP" | "status.podIPs" => Some(data.pod_ip.clone()),
                "status.hostIP" | "status.hostIPs" => Some(data.host_ip.clone()),
                p if key(p, "metadata.labels").is_some() => {
                    key(p, "metadata.labels").and_then(|k| pod.labels.get(&k).cloned())
                }
                p if key(p, "metadata.annotations").is_some() => {
                    key(p, "metadata.annotations").and_then(|k| pod.annotations.get(&k).cloned())
                }
                other => {
                    return Err(EngineError::Invalid(format!(
                        "container {}: env {}: fieldRef {other} is not served (metadata.name, namespace, uid, labels['K'], annotations['K'], spec.nodeName, status.podIP, status.hostIP are)",
                        c.name, e.name
                    )))
                }
            }
        } else {
            return Err(EngineError::Invalid(format!(
                "container {}: env {}: this valueFrom is not served yet",
                c.name, e.name
            )));
        };
        if let Some(v) = v {
            set(e.name.clone(), v);
        }
    }
    Ok(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}
