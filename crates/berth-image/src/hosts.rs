//! Per-registry settings in containerd's `certs.d` layout: `DIR/HOST/hosts.toml` (or
//! `DIR/_default/hosts.toml`) names mirrors to try before the registry itself, each with
//! its capabilities and TLS settings:
//!
//! ```toml
//! server = "https://registry.example.com"
//!
//! [host."http://127.0.0.1:5055"]
//!   capabilities = ["pull", "resolve"]
//!   skip_verify = true
//!   ca = "/etc/berth/certs.d/registry.example.com/ca.crt"
//! ```
//!
//! A pull tries the hosts in the file's order, then the server (the registry itself when the
//! file names none); one that fails is passed over for the next.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{ImageError, Result};

/// One place to reach a registry at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `scheme://host[:port][/path]`, without a trailing slash: requests go to `BASE/v2/...`
    /// (to `BASE/...` with `override_path`).
    pub base: String,
    /// Pulls may use it.
    pub pull: bool,
    /// Tags may be resolved to digests on it.
    pub resolve: bool,
    /// Pushes may use it.
    pub push: bool,
    /// TLS certificates are not verified.
    pub skip_verify: bool,
    /// Extra CA certificates (PEM files) to trust.
    pub ca: Vec<PathBuf>,
    /// `base` is the API root itself (no `/v2` appended).
    pub override_path: bool,
}

#[derive(Debug, Deserialize)]
struct File {
    server: Option<String>,
    #[serde(default)]
    host: toml::Table,
    #[serde(default)]
    capabilities: Option<Vec<String>>,
    #[serde(default)]
    skip_verify: Option<bool>,
    #[serde(default)]
    ca: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
struct HostEntry {
    capabilities: Option<Vec<String>>,
    skip_verify: Option<bool>,
    ca: Option<toml::Value>,
    override_path: Option<bool>,
}

fn cas(v: Option<&toml::Value>, file: &Path) -> Result<Vec<PathBuf>> {
    let bad = || ImageError::Invalid(format!("{}: ca must be a path or a list of paths", file.display()));
    match v {
        None => Ok(Vec::new()),
        Some(toml::Value::String(s)) => Ok(vec![PathBuf::from(s)]),
        Some(toml::Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map(PathBuf::from).ok_or_else(bad))
            .collect(),
        Some(_) => Err(bad()),
    }
}

fn endpoint(
    base: &str,
    caps: Option<&[String]>,
    skip: bool,
    ca: Vec<PathBuf>,
    override_path: bool,
    file: &Path,
) -> Result<Endpoint> {
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(ImageError::Invalid(format!(
            "{}: host {base:?} must start with http:// or https://",
            file.display()
        )));
    }
    let all = ["pull".to_string(), "resolve".to_string(), "push".to_string()];
    let caps = caps.unwrap_or(&all);
    for c in caps {
        if !all.contains(c) {
            return Err(ImageError::Invalid(format!(
                "{}: unknown capability {c:?} (pull, resolve or push)",
                file.display()
            )));
        }
    }
    let has = |c: &str| caps.iter().any(|x| x == c);
    Ok(Endpoint {
        base: base.trim_end_matches('/').to_string(),
        pull: has("pull"),
        resolve: has("resolve"),
        push: has("push"),
        skip_verify: skip,
        ca,
        override_path,
    })
}

/// The file that configures `host` under `dir`: its own directory's (the port written
/// `host_port_` as containerd also accepts), else `_default`'s; none if neither exists.
fn file_for(dir: &Path, host: &str) -> Option<PathBuf> {
    [host.to_string(), host.replace(':', "_"), "_default".to_string()]
        .iter()
        .map(|d| dir.join(d).join("hosts.toml"))
        .find(|p| p.is_file())
}

/// What a `hosts.toml` says of a registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hosts {
    /// The mirrors in the file's order, then its `server` if it names one.
    pub endpoints: Vec<Endpoint>,
    /// The file names a `server`: the registry itself is not tried after it.
    pub has_server: bool,
}

/// The endpoints configured for `host` under `dir`; none when no file configures it (the
/// registry is then reached as usual).
pub fn endpoints(dir: &Path, host: &str) -> Result<Hosts> {
    let Some(path) = file_for(dir, host) else {
        return Ok(Hosts::default());
    };
    let text =
        std::fs::read_to_string(&path).map_err(|e| ImageError::Invalid(format!("reading {}: {e}", path.display())))?;
    let f: File = toml::from_str(&text).map_err(|e| ImageError::Invalid(format!("{}: {e}", path.display())))?;
    let mut out = Vec::new();
    for (base, v) in &f.host {
        let h: HostEntry = v
            .clone()
            .try_into()
            .map_err(|e| ImageError::Invalid(format!("{}: host {base:?}: {e}", path.display())))?;
        out.push(endpoint(
            base,
            h.capabilities.as_deref(),
            h.skip_verify.unwrap_or(false),
            cas(h.ca.as_ref(), &path)?,
            h.override_path.unwrap_or(false),
            &path,
        )?);
    }
    if let Some(server) = &f.server {
        out.push(endpoint(
            server,
            f.capabilities.as_deref(),
            f.skip_verify.unwrap_or(false),
            cas(f.ca.as_ref(), &path)?,
            false,
            &path,
        )?);
    }
    Ok(Hosts {
        endpoints: out,
        has_server: f.server.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_come_first_in_the_files_order_then_the_server() {
        let dir = std::env::temp_dir().join(format!("berth-hosts-{}", std::process::id()));
        let reg = dir.join("registry.k8s.io");
        std::fs::create_dir_all(&reg).unwrap();
        std::fs::write(
            reg.join("hosts.toml"),
            r#"server = "https://registry.k8s.io"

[host."http://127.0.0.1:5055"]
  capabilities = ["pull", "resolve"]
  skip_verify = true

[host."https://mirror.example.com/v2/k8s"]
  capabilities = ["pull"]
  ca = ["/a.pem", "/b.pem"]
  override_path = true
"#,
        )
        .unwrap();
        let h = endpoints(&dir, "registry.k8s.io").unwrap();
        assert!(h.has_server);
        let e = h.endpoints;
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].base, "http://127.0.0.1:5055");
        assert!(e[0].pull && e[0].resolve && !e[0].push && e[0].skip_verify);
        assert_eq!(e[1].ca, vec![PathBuf::from("/a.pem"), PathBuf::from("/b.pem")]);
        assert!(e[1].override_path && !e[1].resolve);
        assert_eq!(e[2].base, "https://registry.k8s.io");
        assert!(e[2].push);
        // Another host has no file: the registry as usual.
        assert_eq!(endpoints(&dir, "docker.io").unwrap(), Hosts::default());
        // _default covers every host without its own.
        std::fs::create_dir_all(dir.join("_default")).unwrap();
        std::fs::write(dir.join("_default/hosts.toml"), "[host.\"http://127.0.0.1:1\"]\n").unwrap();
        let h = endpoints(&dir, "docker.io").unwrap();
        assert_eq!(h.endpoints[0].base, "http://127.0.0.1:1");
        assert!(!h.has_server);
        // Mistakes name the file.
        std::fs::write(dir.join("_default/hosts.toml"), "[host.\"ftp://x\"]\n").unwrap();
        let err = endpoints(&dir, "docker.io").unwrap_err().to_string();
        assert!(err.contains("hosts.toml") && err.contains("ftp://x"), "{err}");
        std::fs::write(dir.join("_default/hosts.toml"), "server = [\n").unwrap();
        assert!(endpoints(&dir, "quay.io")
            .unwrap_err()
            .to_string()
            .contains("hosts.toml"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
