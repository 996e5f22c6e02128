//! CNI: network configuration lists read from a directory (`/etc/cni/net.d`), and their
//! plugins run as the CNI specification says. Each plugin is an executable found in the bin
//! directories, given its configuration on stdin and the operation in `CNI_*` environment
//! variables. ADD runs the list in order, each plugin getting the previous one's result;
//! DEL runs it in reverse; CHECK in order with the cached result. The result of an ADD is
//! cached on disk, so a DEL after a restart gives the plugins what they were given.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::{io_err, NetError, Result};

/// A network configuration list (a `.conf` file is a list of its one plugin).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The network's name.
    pub name: String,
    /// The CNI version the list speaks.
    pub cni_version: String,
    /// The plugins' configurations, in order.
    pub plugins: Vec<Value>,
    /// The file it came from.
    pub source: PathBuf,
}

fn invalid(path: &Path, what: impl std::fmt::Display) -> NetError {
    NetError::Invalid(format!("CNI configuration {}: {what}", path.display()))
}

impl Config {
    /// Reads one file: a list (`plugins`) or a single plugin (`type`).
    pub fn read(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(io_err(format!("reading {}", path.display())))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| invalid(path, e))?;
        let name = v["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid(path, "no network name"))?
            .to_string();
        let cni_version = v["cniVersion"].as_str().unwrap_or("0.4.0").to_string();
        let plugins = match v.get("plugins") {
            Some(Value::Array(p)) if !p.is_empty() => p.clone(),
            Some(_) => return Err(invalid(path, "plugins must be a non-empty list")),
            None if v["type"].is_string() => vec![v.clone()],
            None => return Err(invalid(path, "neither plugins nor a type")),
        };
        for p in &plugins {
            let t = p["type"].as_str().unwrap_or("");
            if t.is_empty() || t.contains('/') {
                return Err(invalid(path, format!("plugin type {t:?} is not a plugin's name")));
            }
        }
        Ok(Config {
            name,
            cni_version,
            plugins,
            source: path.to_path_buf(),
        })
    }

    /// The first configuration in `dir` by file name (`.conflist`, `.conf`, `.json`), as
    /// the kubelet's runtimes pick it; none if there is none.
    pub fn load(dir: &Path) -> Result<Option<Config>> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Ok(None);
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(std::result::Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .is_some_and(|x| x == "conflist" || x == "conf" || x == "json")
            })
            .collect();
        files.sort();
        files.first().map(|f| Config::read(f)).transpose()
    }
}

/// One attachment of a container to a network.
#[derive(Debug, Clone)]
pub struct Attachment {
    /// The container (sandbox) id.
    pub container_id: String,
    /// Its network namespace's path.
    pub netns: PathBuf,
    /// The interface to make in it.
    pub ifname: String,
    /// `CNI_ARGS` pairs (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`, ...).
    pub args: Vec<(String, String)>,
    /// Values for plugins that declare the capability (`portMappings`, `dns`, ...).
    pub runtime_config: serde_json::Map<String, Value>,
}

/// Runs plugins from `bin_dirs`, caching results under `cache_dir`.
#[derive(Debug, Clone)]
pub struct Cni {
    /// Where plugin executables are looked for, in order.
    pub bin_dirs: Vec<PathBuf>,
    /// Where ADD results are kept until DEL.
    pub cache_dir: PathBuf,
}

impl Cni {
    fn find(&self, kind: &str) -> Result<PathBuf> {
        self.bin_dirs
            .iter()
            .map(|d| d.join(kind))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                NetError::Invalid(format!(
                    "CNI plugin {kind:?} is not in {}",
                    self.bin_dirs
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(":")
                ))
            })
    }

    fn cache_file(&self, conf: &Config, a: &Attachment) -> PathBuf {
        self.cache_dir
            .join(format!("{}-{}-{}", conf.name, a.container_id, a.ifname))
    }

    /// Runs one plugin for `command`; returns what it printed (a result for ADD).
    fn exec(
        &self,
        command: &str,
        conf: &Config,
        plugin: &Value,
        a: &Attachment,
        prev: Option<&Value>,
    ) -> Result<Value> {
        let kind = plugin["type"].as_str().unwrap_or("");
        let mut input = plugin.clone();
        input["name"] = json!(conf.name);
        input["cniVersion"] = json!(conf.cni_version);
        if let Some(p) = prev {
            input["prevResult"] = p.clone();
        }
        // Only the runtime values the plugin declares a capability for.
        let mut rc = serde_json::Map::new();
        if let Some(caps) = plugin["capabilities"].as_object() {
            for (k, on) in caps {
                if on.as_bool() == Some(true) {
                    if let Some(v) = a.runtime_config.get(k) {
                        rc.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        if !rc.is_empty() {
            input["runtimeConfig"] = Value::Object(rc);
        }
        let exe = self.find(kind)?;
        let path = std::env::join_paths(&self.bin_dirs).map_err(|e| NetError::Invalid(e.to_string()))?;
        // Plugins refuse arguments they do not know unless told to ignore them, as the
        // kubelet's runtimes tell them.
        let mut args: Vec<String> = a.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if !args.is_empty() {
            args.insert(0, "IgnoreUnknown=1".into());
        }
        let mut child = Command::new(&exe)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &a.container_id)
            .env("CNI_NETNS", &a.netns)
            .env("CNI_IFNAME", &a.ifname)
            .env("CNI_ARGS", args.join(";"))
            .env("CNI_PATH", path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io_err(format!("running CNI plugin {}", exe.display())))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input.to_string().as_bytes())
                .map_err(io_err(format!("writing to CNI plugin {kind}")))?;
        }
        let out = child
            .wait_with_output()
            .map_err(io_err(format!("waiting for CNI plugin {kind}")))?;
        let printed: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if !out.status.success() {
            // The spec's error: {"code", "msg", "details"} on stdout.
            let msg = printed["msg"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string());
            let details = printed["details"].as_str().unwrap_or("");
            return Err(NetError::Invalid(format!(
                "CNI plugin {kind} {command} on network {}: {msg}{}{details}",
                conf.name,
                if details.is_empty() { "" } else { ": " }
            )));
        }
        Ok(printed)
    }

    /// ADD: the list in order; returns the last plugin's result (cached for DEL and
    /// CHECK). If a plugin fails, those before it are deleted again.
    pub fn add(&self, conf: &Config, a: &Attachment) -> Result<Value> {
        let mut prev: Option<Value> = None;
        for (i, p) in conf.plugins.iter().enumerate() {
            match self.exec("ADD", conf, p, a, prev.as_ref()) {
                Ok(r) => prev = Some(r),
                Err(e) => {
                    for q in conf.plugins[..i].iter().rev() {
                        let _ = self.exec("DEL", conf, q, a, prev.as_ref());
                    }
                    return Err(e);
                }
            }
        }
        let result = prev.unwrap_or(Value::Null);
        std::fs::create_dir_all(&self.cache_dir).map_err(io_err(format!("creating {}", self.cache_dir.display())))?;
        // What DEL must give the plugins again (portmap removes nothing without the port
        // mappings), even after a restart.
        let cached = json!({
            "result": result,
            "ifName": a.ifname,
            "networkName": conf.name,
            "args": a.args,
            "runtimeConfig": a.runtime_config,
        });
        let file = self.cache_file(conf, a);
        std::fs::write(&file, cached.to_string()).map_err(io_err(format!("writing {}", file.display())))?;
        Ok(result)
    }

    /// The result ADD cached for this attachment.
    pub fn cached(&self, conf: &Config, a: &Attachment) -> Option<Value> {
        let bytes = std::fs::read(self.cache_file(conf, a)).ok()?;
        serde_json::from_slice::<Value>(&bytes)
            .ok()
            .map(|v| v["result"].clone())
    }

    /// CHECK: the list in order, with the cached result.
    pub fn check(&self, conf: &Config, a: &Attachment) -> Result<()> {
        let prev = self.cached(conf, a).ok_or_else(|| {
            NetError::Invalid(format!(
                "network {}: no cached result for {}",
                conf.name, a.container_id
            ))
        })?;
        for p in &conf.plugins {
            self.exec("CHECK", conf, p, a, Some(&prev))?;
        }
        Ok(())
    }

    /// DEL: the list in reverse, every plugin even after one fails (the first error is
    /// returned), with the arguments and runtime values ADD had where `a` gives none; the
    /// cache goes.
    pub fn del(&self, conf: &Config, a: &Attachment) -> Result<()> {
        let cached: Value = std::fs::read(self.cache_file(conf, a))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        let prev = Some(cached["result"].clone()).filter(|r| !r.is_null());
        let mut a = a.clone();
        if a.args.is_empty() {
            a.args = serde_json::from_value(cached["args"].clone()).unwrap_or_default();
        }
        if a.runtime_config.is_empty() {
            a.runtime_config = cached["runtimeConfig"].as_object().cloned().unwrap_or_default();
        }
        let a = &a;
        let mut first = None;
        for p in conf.plugins.iter().rev() {
            if let Err(e) = self.exec("DEL", conf, p, a, prev.as_ref()) {
                first.get_or_insert(e);
            }
        }
        let _ = std::fs::remove_file(self.cache_file(conf, a));
        first.map_or(Ok(()), Err)
    }
}

/// The addresses a result gives (without their prefix lengths), IPv4 first.
pub fn ips(result: &Value) -> Vec<String> {
    let mut v: Vec<String> = result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip["address"].as_str())
        .map(|a| a.split('/').next().unwrap_or(a).to_string())
        .collect();
    v.sort_by_key(|a| a.contains(':'));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_single_plugins_are_read_and_bad_ones_named() {
        let dir = std::env::temp_dir().join(format!("berth-cni-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("20-single.conf"),
            r#"{"cniVersion":"0.4.0","name":"one","type":"bridge"}"#,
        )
        .unwrap();
        std::fs::write(
            dir.join("10-list.conflist"),
            r#"{"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge"},{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
        )
        .unwrap();
        let c = Config::load(&dir).unwrap().unwrap();
        assert_eq!((c.name.as_str(), c.plugins.len()), ("pods", 2));
        let one = Config::read(&dir.join("20-single.conf")).unwrap();
        assert_eq!(one.plugins[0]["type"], "bridge");
        std::fs::write(dir.join("00-bad.conf"), r#"{"name":"x","type":"../../bin/sh"}"#).unwrap();
        let e = Config::load(&dir).unwrap_err().to_string();
        assert!(e.contains("00-bad.conf") && e.contains("../../bin/sh"), "{e}");
        std::fs::write(dir.join("00-bad.conf"), "{").unwrap();
        assert!(Config::load(&dir).unwrap_err().to_string().contains("00-bad.conf"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(Config::load(Path::new("/no/such/dir")).unwrap(), None);
        assert_eq!(
            ips(&json!({"ips":[{"address":"fd00::2/64"},{"address":"10.1.2.3/24"}]})),
            ["10.1.2.3", "fd00::2"]
        );
    }
}
