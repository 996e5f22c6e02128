//! The Container Device Interface: vendors' spec files (`/etc/cdi`, `/var/run/cdi`; JSON
//! or YAML, cdiVersion 0.3.0 to 0.8.0) read and checked, devices named
//! `vendor.com/class=name` (or `=all`) resolved, and their container edits applied to a
//! container's OCI spec before the runtime sees it.

pub mod nvidia;
pub mod requests;

pub use requests::{devices_for, DeviceRequest, GPU_KIND};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{EngineError, Result};

/// The spec versions read.
pub const VERSIONS: [&str; 6] = ["0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0"];

/// Where specs are read from, lowest priority first (`BERTH_CDI_SPEC_DIRS`, colon
/// separated, replaces them).
pub fn spec_dirs() -> Vec<PathBuf> {
    match std::env::var("BERTH_CDI_SPEC_DIRS") {
        Ok(d) if !d.is_empty() => d.split(':').map(PathBuf::from).collect(),
        _ => vec![PathBuf::from("/etc/cdi"), PathBuf::from("/var/run/cdi")],
    }
}

/// A spec file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    /// The spec's version.
    pub cdi_version: String,
    /// `vendor.com/class`.
    pub kind: String,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The devices.
    pub devices: Vec<Device>,
    /// Edits for every device of the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_edits: Option<Edits>,
}

/// One device.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Device {
    /// Its name (the part after `=`).
    pub name: String,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Its edits.
    pub container_edits: Edits,
}

/// What a device (or a whole spec) changes in a container.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Edits {
    /// `KEY=VALUE`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Device nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_nodes: Vec<DeviceNode>,
    /// OCI hooks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<Hook>,
    /// Mounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    /// Intel RDT (cache and memory bandwidth allocation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intel_rdt: Option<Value>,
    /// More groups for the container's process.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_gids: Vec<u32>,
    /// Network devices moved into the container (0.8.0): not served.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub net_devices: Vec<Value>,
}

/// A device node.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeviceNode {
    /// Where in the container.
    pub path: String,
    /// The host's node (default: `path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
    /// `c`, `b`, `u` or `p` (default: the host node's).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Major number (default: the host node's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major: Option<i64>,
    /// Minor number (default: the host node's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor: Option<i64>,
    /// Mode bits of the node made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_mode: Option<u32>,
    /// Cgroup access: some of `rwm` (default `rwm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<String>,
    /// Owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

/// An OCI hook.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Hook {
    /// `prestart`, `createRuntime`, `createContainer`, `startContainer`, `poststart`,
    /// `poststop`.
    pub hook_name: String,
    /// The program.
    pub path: String,
    /// Its arguments (from argv[0]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Its environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
}

/// A mount.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Mount {
    /// The host's path.
    pub host_path: String,
    /// Where in the container.
    pub container_path: String,
    /// Mount options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Filesystem type (default `bind`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

const HOOKS: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

fn vendor_ok(v: &str) -> bool {
    !v.is_empty()
        && v.starts_with(|c: char| c.is_ascii_alphabetic())
        && v.ends_with(|c: char| c.is_ascii_alphanumeric())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
}

fn class_ok(c: &str) -> bool {
    !c.is_empty()
        && c.starts_with(|c: char| c.is_ascii_alphabetic())
        && c.ends_with(|c: char| c.is_ascii_alphanumeric())
        && c.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn device_name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.starts_with(|c: char| c.is_ascii_alphanumeric())
        && n.ends_with(|c: char| c.is_ascii_alphanumeric())
        && n.chars().all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c))
}

/// A fully-qualified device name, `vendor.com/class=name`, split (`None` when `s` is not
/// one: a `--device` of a host path).
pub fn parse_name(s: &str) -> Option<(&str, &str, &str)> {
    let (kind, name) = s.split_once('=')?;
    let (vendor, class) = kind.split_once('/')?;
    (vendor_ok(vendor) && class_ok(class) && (name == "all" || device_name_ok(name))).then_some((vendor, class, name))
}

/// Whether `s` looks like a CDI name (`vendor/class=name`), valid or not.
pub fn is_name(s: &str) -> bool {
    !s.starts_with('/') && s.contains('=') && s.split('=').next().is_some_and(|k| k.contains('/'))
}

impl Edits {
    fn check(&self, at: &str) -> std::result::Result<(), String> {
        for e in &self.env {
            if !e.contains('=') || e.starts_with('=') {
                return Err(format!("{at}.env: {e:?} is not KEY=VALUE"));
            }
        }
        for (i, d) in self.device_nodes.iter().enumerate() {
            if !d.path.starts_with('/') {
                return Err(format!("{at}.deviceNodes[{i}].path: {:?} is not absolute", d.path));
            }
            if let Some(h) = d.host_path.as_ref().filter(|h| !h.starts_with('/')) {
                return Err(format!("{at}.deviceNodes[{i}].hostPath: {h:?} is not absolute"));
            }
            if let Some(t) = d.kind.as_deref().filter(|t| !["c", "b", "u", "p"].contains(t)) {
                return Err(format!("{at}.deviceNodes[{i}].type: {t:?} is not c, b, u or p"));
            }
            if let Some(p) = d
                .permissions
                .as_deref()
                .filter(|p| p.is_empty() || !p.chars().all(|c| "rwm".contains(c)))
            {
                return Err(format!("{at}.deviceNodes[{i}].permissions: {p:?} is not some of rwm"));
            }
        }
        for (i, h) in self.hooks.iter().enumerate() {
            if !HOOKS.contains(&h.hook_name.as_str()) {
                return Err(format!(
                    "{at}.hooks[{i}].hookName: {:?} is not one of {}",
                    h.hook_name,
                    HOOKS.join(", ")
                ));
            }
            if !h.path.starts_with('/') {
                return Err(format!("{at}.hooks[{i}].path: {:?} is not absolute", h.path));
            }
        }
        for (i, m) in self.mounts.iter().enumerate() {
            if !m.host_path.starts_with('/') {
                return Err(format!("{at}.mounts[{i}].hostPath: {:?} is not absolute", m.host_path));
            }
            if !m.container_path.starts_with('/') {
                return Err(format!(
                    "{at}.mounts[{i}].containerPath: {:?} is not absolute",
                    m.container_path
                ));
            }
        }
        if !self.net_devices.is_empty() {
            return Err(format!("{at}.netDevices: network devices are not served"));
        }
        Ok(())
    }
}

impl Spec {
    /// Reads a spec file (`.json`, or `.yaml`/`.yml`); errors name the file and the field.
    pub fn read(path: &Path) -> Result<Spec> {
        let file = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| EngineError::Invalid(format!("CDI spec {file}: {e}")))?;
        let spec: Spec = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| EngineError::Invalid(format!("CDI spec {file}: {e}")))?
        } else {
            serde_yaml::from_str(&text).map_err(|e| EngineError::Invalid(format!("CDI spec {file}: {e}")))?
        };
        spec.check()
            .map_err(|e| EngineError::Invalid(format!("CDI spec {file}: {e}")))?;
        Ok(spec)
    }

    /// The spec as YAML.
    pub fn to_yaml(&self) -> Result<String> {
        serde_yaml::to_string(self).map_err(|e| EngineError::Invalid(format!("writing the CDI spec: {e}")))
    }

    /// Checks what the schema cannot: the version, names, paths, hook names.
    pub fn check(&self) -> std::result::Result<(), String> {
        if !VERSIONS.contains(&self.cdi_version.as_str()) {
            return Err(format!(
                "cdiVersion: {:?} is not supported ({})",
                self.cdi_version,
                VERSIONS.join(", ")
            ));
        }
        let (vendor, class) = self
            .kind
            .split_once('/')
            .ok_or_else(|| format!("kind: {:?} is not vendor.com/class", self.kind))?;
        if !vendor_ok(vendor) || !class_ok(class) {
            return Err(format!("kind: {:?} is not a valid vendor.com/class", self.kind));
        }
        if self.devices.is_empty() {
            return Err("devices: the spec has none".into());
        }
        if let Some(e) = &self.container_edits {
            e.check("containerEdits")?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, d) in self.devices.iter().enumerate() {
            if !device_name_ok(&d.name) {
                return Err(format!("devices[{i}].name: {:?} is not a valid device name", d.name));
            }
            if !seen.insert(&d.name) {
                return Err(format!("devices[{i}].name: {:?} is defined twice", d.name));
            }
            d.container_edits.check(&format!("devices[{i}].containerEdits"))?;
        }
        Ok(())
    }
}

/// A container's CDI device names, each checked to resolve now: an unknown device is
/// refused when the container is created.
pub fn checked(names: &[String]) -> Result<Vec<String>> {
    if !names.is_empty() {
        Registry::load().check_names(names)?;
    }
    Ok(names.to_vec())
}

/// Every spec here, by kind; later directories win for the same device.
#[derive(Debug, Default)]
pub struct Registry {
    /// `vendor/class=name` -> (the spec's file, its index in `specs`).
    pub devices: BTreeMap<String, (PathBuf, usize)>,
    /// The specs read.
    pub specs: Vec<(PathBuf, Spec)>,
    /// Files that could not be used, with why.
    pub errors: Vec<String>,
}

impl Registry {
    /// Reads the spec directories.
    pub fn load() -> Registry {
        Registry::load_from(&spec_dirs())
    }

    /// Reads `dirs`, lowest priority first.
    pub fn load_from(dirs: &[PathBuf]) -> Registry {
        let mut r = Registry::default();
        for dir in dirs {
            let Ok(rd) = std::fs::read_dir(dir) else { continue };
            let mut files: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "yaml" || e == "yml"))
                .collect();
            files.sort();
            for f in files {
                match Spec::read(&f) {
                    Ok(spec) => {
                        let i = r.specs.len();
                        for d in &spec.devices {
                            r.devices.insert(format!("{}={}", spec.kind, d.name), (f.clone(), i));
                        }
                        r.specs.push((f, spec));
                    }
                    Err(e) => r.errors.push(e.to_string()),
                }
            }
        }
        r
    }

    /// The devices a name stands for (`=all`: every device of its kind), as
    /// (spec index, device index).
    fn resolve(&self, name: &str) -> Result<Vec<(usize, usize)>> {
        let (vendor, class, dev) = parse_name(name)
            .ok_or_else(|| EngineError::Invalid(format!("invalid CDI device name {name:?}: vendor.com/class=name")))?;
        let kind = format!("{vendor}/{class}");
        // `=all` is the device of that name where a spec defines one (nvidia-ctk's do),
        // else every device of the kind.
        let dev = if dev == "all" && self.devices.contains_key(&format!("{kind}=all")) {
            "all!"
        } else {
            dev
        };
        let mut out = Vec::new();
        for (full, (_, si)) in &self.devices {
            let Some((k, d)) = full.split_once('=') else { continue };
            let wanted = match dev {
                "all!" => d == "all",
                "all" => true,
                one => d == one,
            };
            if k != kind || !wanted {
                continue;
            }
            let spec = &self.specs[*si].1;
            if let Some(di) = spec.devices.iter().position(|x| x.name == d) {
                out.push((*si, di));
            }
        }
        if out.is_empty() {
            let why = if self.errors.is_empty() {
                String::new()
            } else {
                format!(" (specs not read: {})", self.errors.join("; "))
            };
            return Err(EngineError::Invalid(format!("unresolvable CDI devices {name}{why}")));
        }
        Ok(out)
    }

    /// Checks that every name resolves.
    pub fn check_names(&self, names: &[String]) -> Result<()> {
        names.iter().try_for_each(|n| self.resolve(n).map(|_| ()))
    }

    /// The device names here, sorted.
    pub fn names(&self) -> Vec<String> {
        self.devices.keys().cloned().collect()
    }

    /// Applies the devices' edits (and their specs' own, once per spec) to an OCI spec.
    pub fn apply(&self, spec: &mut Value, names: &[String]) -> Result<()> {
        let mut picked: Vec<(usize, usize)> = Vec::new();
        for n in names {
            for p in self.resolve(n)? {
                if !picked.contains(&p) {
                    picked.push(p);
                }
            }
        }
        let mut specs_done = Vec::new();
        for (si, di) in picked {
            let (file, s) = &self.specs[si];
            let at = |e: EngineError| EngineError::Invalid(format!("CDI spec {}: {e}", file.display()));
            if !specs_done.contains(&si) {
                specs_done.push(si);
                if let Some(e) = &s.container_edits {
                    apply_edits(spec, e).map_err(at)?;
                }
            }
            apply_edits(spec, &s.devices[di].container_edits).map_err(at)?;
        }
        Ok(())
    }
}

/// One set of edits applied to an OCI spec (a JSON value).
fn apply_edits(spec: &mut Value, e: &Edits) -> Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    if !e.env.is_empty() {
        let env: Vec<String> = spec["process"]["env"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        spec["process"]["env"] = json!(crate::spec::merge_env(&env, &e.env));
    }
    for d in &e.device_nodes {
        let host = d.host_path.clone().unwrap_or_else(|| d.path.clone());
        let (mut kind, mut major, mut minor, mut mode) = (d.kind.clone(), d.major, d.minor, d.file_mode);
        if kind.is_none() || major.is_none() || minor.is_none() || mode.is_none() {
            let md =
                std::fs::metadata(&host).map_err(|err| EngineError::Invalid(format!("device node {host}: {err}")))?;
            let ft = md.file_type();
            let host_kind = if ft.is_char_device() {
                "c"
            } else if ft.is_block_device() {
                "b"
            } else if ft.is_fifo() {
                "p"
            } else {
                return Err(EngineError::Invalid(format!("{host} is not a device node")));
            };
            kind.get_or_insert_with(|| host_kind.to_string());
            #[allow(clippy::cast_possible_wrap)]
            {
                major.get_or_insert(nix::sys::stat::major(md.rdev()) as i64);
                minor.get_or_insert(nix::sys::stat::minor(md.rdev()) as i64);
            }
            mode.get_or_insert(md.mode() & 0o7777);
        }
        let kind = kind.unwrap_or_else(|| "c".into());
        let node = json!({
            "path": d.path, "type": kind, "major": major, "minor": minor,
            "fileMode": mode, "uid": d.uid.unwrap_or(0), "gid": d.gid.unwrap_or(0),
        });
        push(spec, &["linux", "devices"], node);
        if kind != "p" {
            let rule = json!({"allow": true, "type": if kind == "u" { "c".to_string() } else { kind }, "major": major,
                "minor": minor, "access": d.permissions.clone().unwrap_or_else(|| "rwm".into())});
            push(spec, &["linux", "resources", "devices"], rule);
        }
    }
    for m in &e.mounts {
        let kind = m.kind.clone().unwrap_or_else(|| "bind".into());
        let mut options = m.options.clone();
        if kind == "bind" && !options.iter().any(|o| o == "bind" || o == "rbind") {
            options.push("bind".into());
        }
        push(
            spec,
            &["mounts"],
            json!({"source": m.host_path, "destination": m.container_path, "type": kind, "options": options}),
        );
    }
    for h in &e.hooks {
        let mut hook = json!({"path": h.path});
        if !h.args.is_empty() {
            hook["args"] = json!(h.args);
        }
        if !h.env.is_empty() {
            hook["env"] = json!(h.env);
        }
        if let Some(t) = h.timeout {
            hook["timeout"] = json!(t);
        }
        push(spec, &["hooks", &h.hook_name], hook);
    }
    if !e.additional_gids.is_empty() {
        let mut gids: Vec<u64> = spec["process"]["user"]["additionalGids"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        for g in &e.additional_gids {
            if g != &0 && !gids.contains(&u64::from(*g)) {
                gids.push(u64::from(*g));
            }
        }
        spec["process"]["user"]["additionalGids"] = json!(gids);
    }
    if let Some(rdt) = &e.intel_rdt {
        spec["linux"]["intelRdt"] = rdt.clone();
    }
    Ok(())
}

/// Appends to the array at `path`, made if missing.
fn push(spec: &mut Value, path: &[&str], v: Value) {
    let mut at = spec;
    for k in path {
        at = &mut at[*k];
    }
    if !at.is_array() {
        *at = json!([]);
    }
    if let Some(a) = at.as_array_mut() {
        a.push(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        assert_eq!(parse_name("vendor.com/gpu=0"), Some(("vendor.com", "gpu", "0")));
        assert_eq!(parse_name("nvidia.com/gpu=all"), Some(("nvidia.com", "gpu", "all")));
        assert_eq!(parse_name("/dev/null"), None);
        assert_eq!(parse_name("vendor.com/gpu"), None);
        assert_eq!(parse_name("vendor.com/g pu=0"), None);
        assert!(is_name("vendor.com/gpu=x y"));
        assert!(!is_name("/dev/sda:/dev/xvda"));
    }

    #[test]
    fn specs_are_checked_and_applied() {
        let yaml = "cdiVersion: 0.6.0\nkind: example.com/accel\ncontainerEdits:\n  env: [ACCEL=1]\ndevices:\n- name: a0\n  containerEdits:\n    deviceNodes:\n    - {path: /dev/accel0, hostPath: /dev/null, permissions: rw}\n    mounts:\n    - {hostPath: /usr/lib, containerPath: /opt/lib, options: [ro]}\n    hooks:\n    - {hookName: createContainer, path: /bin/true}\n    additionalGids: [44]\n- name: a1\n  containerEdits:\n    env: [ONE=1]\n";
        let spec: Spec = serde_yaml::from_str(yaml).unwrap();
        spec.check().unwrap();
        let dir = std::env::temp_dir().join(format!("berth-cdi-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("accel.yaml"), yaml).unwrap();
        std::fs::write(
            dir.join("bad.json"),
            "{\"cdiVersion\": \"0.2.0\", \"kind\": \"x.com/y\", \"devices\": []}",
        )
        .unwrap();
        let r = Registry::load_from(std::slice::from_ref(&dir));
        assert_eq!(r.names(), ["example.com/accel=a0", "example.com/accel=a1"]);
        assert!(
            r.errors[0].contains("bad.json") && r.errors[0].contains("cdiVersion"),
            "{:?}",
            r.errors
        );
        let mut oci = json!({"process": {"env": ["PATH=/bin"]}, "linux": {"resources": {"devices": []}}, "mounts": []});
        r.apply(&mut oci, &["example.com/accel=all".into()]).unwrap();
        assert_eq!(oci["process"]["env"], json!(["PATH=/bin", "ACCEL=1", "ONE=1"]));
        assert_eq!(oci["linux"]["devices"][0]["path"], "/dev/accel0");
        assert_eq!(oci["linux"]["devices"][0]["major"], 1);
        assert_eq!(oci["linux"]["devices"][0]["minor"], 3);
        assert_eq!(oci["linux"]["resources"]["devices"][0]["access"], "rw");
        assert_eq!(oci["mounts"][0]["options"], json!(["ro", "bind"]));
        assert_eq!(oci["hooks"]["createContainer"][0]["path"], "/bin/true");
        assert_eq!(oci["process"]["user"]["additionalGids"], json!([44]));
        let e = r
            .apply(&mut oci, &["example.com/accel=a9".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unresolvable CDI devices example.com/accel=a9"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
        // Unknown fields and bad values are named.
        let e = serde_yaml::from_str::<Spec>("cdiVersion: 0.6.0\nkind: a.com/b\ndevices: []\nextra: 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("extra"), "{e}");
        let bad: Spec = serde_yaml::from_str("cdiVersion: 0.6.0\nkind: a.com/b\ndevices:\n- name: x\n  containerEdits:\n    hooks: [{hookName: later, path: /bin/true}]\n").unwrap();
        assert!(bad
            .check()
            .unwrap_err()
            .contains("devices[0].containerEdits.hooks[0].hookName"));
    }
}
