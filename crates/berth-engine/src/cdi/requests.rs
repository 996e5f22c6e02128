//! Docker's device requests (what `docker run --gpus` sends as `HostConfig.DeviceRequests`)
//! and the CLI's `--gpus`, mapped onto CDI devices: `nvidia.com/gpu=...` for GPUs, the
//! names themselves for the `cdi` driver.

use super::Registry;
use crate::{EngineError, Result};

/// The CDI kind GPUs are requested from.
pub const GPU_KIND: &str = "nvidia.com/gpu";

/// One device request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRequest {
    /// The driver (`""`, `nvidia`, `cdi`).
    pub driver: String,
    /// How many (-1: all).
    pub count: i64,
    /// Which ones (indexes, UUIDs, or CDI names for the `cdi` driver).
    pub device_ids: Vec<String>,
    /// Capability sets; one of them must be met (`[["gpu"]]`).
    pub capabilities: Vec<Vec<String>>,
}

impl DeviceRequest {
    /// `--gpus all|N|device=0,1|count=N,capabilities=...,driver=...`, as the docker CLI
    /// reads it.
    pub fn parse_gpus(s: &str) -> Result<DeviceRequest> {
        let bad = |why: &str| EngineError::Invalid(format!("invalid --gpus {s:?}: {why}"));
        let mut r = DeviceRequest {
            driver: String::new(),
            count: 0,
            device_ids: Vec::new(),
            capabilities: vec![vec!["gpu".into()]],
        };
        // Fields are comma separated, but a quoted `"device=0,1"` keeps its commas.
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        for c in s.chars() {
            match c {
                '"' => quoted = !quoted,
                ',' if !quoted => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        fields.push(cur);
        let mut caps = Vec::new();
        for f in fields.iter().filter(|f| !f.is_empty()) {
            match f.split_once('=') {
                None if f == "all" => r.count = -1,
                None => r.count = f.parse().map_err(|_| bad("not all, a count or key=value"))?,
                Some(("count", "all")) => r.count = -1,
                Some(("count", n)) => r.count = n.parse().map_err(|_| bad("count is not a number"))?,
                Some(("device", ids)) => r.device_ids = ids.split(',').map(str::to_string).collect(),
                Some(("driver", d)) => r.driver = d.to_string(),
                Some(("capabilities", c)) => caps.extend(c.split(',').map(str::to_string)),
                Some(("options", _)) => {}
                Some((k, _)) => return Err(bad(&format!("unexpected key {k:?}"))),
            }
        }
        if r.count != 0 && !r.device_ids.is_empty() {
            return Err(bad("cannot set both count and device"));
        }
        if r.count == 0 && r.device_ids.is_empty() {
            r.count = 1;
        }
        if !caps.is_empty() {
            if !caps.iter().any(|c| c == "gpu") {
                caps.push("gpu".into());
            }
            r.capabilities = vec![caps];
        }
        Ok(r)
    }

    /// The CDI devices that serve this request; a request nothing serves is refused with
    /// Docker's words.
    pub fn cdi_devices(&self, registry: &Registry) -> Result<Vec<String>> {
        if self.driver == "cdi" {
            registry.check_names(&self.device_ids)?;
            return Ok(self.device_ids.clone());
        }
        let gpu = self.driver == "nvidia" || self.capabilities.iter().any(|set| set.iter().any(|c| c == "gpu"));
        let prefix = format!("{GPU_KIND}=");
        let gpus: Vec<String> = registry
            .names()
            .into_iter()
            .filter(|n| n.starts_with(&prefix))
            .filter(|n| n != &format!("{prefix}all"))
            .collect();
        let none = || {
            let caps: Vec<String> = self
                .capabilities
                .iter()
                .map(|set| format!("[{}]", set.join(" ")))
                .collect();
            EngineError::Invalid(format!(
                "could not select device driver \"{}\" with capabilities: [{}] (no CDI device {GPU_KIND} here: `berth cdi generate nvidia` writes them where an NVIDIA driver is installed)",
                self.driver,
                caps.join(" ")
            ))
        };
        if !gpu || gpus.is_empty() {
            return Err(none());
        }
        if !self.device_ids.is_empty() {
            let mut out = Vec::new();
            for id in &self.device_ids {
                let name = format!("{prefix}{id}");
                if !gpus.contains(&name) {
                    return Err(EngineError::Invalid(format!(
                        "no GPU {id:?} here (CDI device {name} is not known)"
                    )));
                }
                out.push(name);
            }
            return Ok(out);
        }
        // By index first (`=0`, `=1`), as nvidia-ctk names them beside their UUIDs.
        let mut indexed: Vec<(u32, String)> = gpus
            .iter()
            .filter_map(|n| n[prefix.len()..].parse::<u32>().ok().map(|i| (i, n.clone())))
            .collect();
        indexed.sort();
        let pool: Vec<String> = if indexed.is_empty() {
            gpus
        } else {
            indexed.into_iter().map(|(_, n)| n).collect()
        };
        if self.count < 0 {
            return Ok(pool);
        }
        let want = usize::try_from(self.count).unwrap_or(0);
        if want > pool.len() {
            return Err(EngineError::Invalid(format!(
                "{want} GPUs requested, {} here",
                pool.len()
            )));
        }
        Ok(pool.into_iter().take(want).collect())
    }
}

/// The CDI devices a container's requests come to.
pub fn devices_for(requests: &[DeviceRequest]) -> Result<Vec<String>> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let registry = Registry::load();
    let mut out = Vec::new();
    for r in requests {
        for d in r.cdi_devices(&registry)? {
            if !out.contains(&d) {
                out.push(d);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpus_flags_parse_as_docker_reads_them() {
        let r = DeviceRequest::parse_gpus("all").unwrap();
        assert_eq!(r.count, -1);
        assert_eq!(r.capabilities, [vec!["gpu".to_string()]]);
        assert_eq!(DeviceRequest::parse_gpus("2").unwrap().count, 2);
        let r = DeviceRequest::parse_gpus("\"device=0,1\",capabilities=compute").unwrap();
        assert_eq!(r.device_ids, ["0", "1"]);
        assert_eq!(r.count, 0);
        assert_eq!(r.capabilities, [vec!["compute".to_string(), "gpu".to_string()]]);
        DeviceRequest::parse_gpus("count=1,device=0").unwrap_err();
        DeviceRequest::parse_gpus("colour=red").unwrap_err();
    }

    #[test]
    fn requests_map_onto_cdi_devices() {
        let mut reg = Registry::default();
        let none = DeviceRequest::parse_gpus("all")
            .unwrap()
            .cdi_devices(&reg)
            .unwrap_err()
            .to_string();
        assert!(
            none.starts_with("could not select device driver \"\" with capabilities: [[gpu]]"),
            "{none}"
        );
        for n in ["0", "1", "GPU-abc", "all"] {
            reg.devices
                .insert(format!("{GPU_KIND}={n}"), (std::path::PathBuf::new(), 0));
        }
        let all = DeviceRequest::parse_gpus("all").unwrap().cdi_devices(&reg).unwrap();
        assert_eq!(all, ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]);
        let one = DeviceRequest::parse_gpus("1").unwrap().cdi_devices(&reg).unwrap();
        assert_eq!(one, ["nvidia.com/gpu=0"]);
        let by_id = DeviceRequest::parse_gpus("device=GPU-abc")
            .unwrap()
            .cdi_devices(&reg)
            .unwrap();
        assert_eq!(by_id, ["nvidia.com/gpu=GPU-abc"]);
        DeviceRequest::parse_gpus("3").unwrap().cdi_devices(&reg).unwrap_err();
        DeviceRequest::parse_gpus("device=7")
            .unwrap()
            .cdi_devices(&reg)
            .unwrap_err();
    }
}
