//! Pod networks from CNI plugins (a CRI sandbox's): a network namespace berth makes, wired
//! by the plugins of the first configuration in the CNI directory, and joined by the pod's
//! infra (`ns:PATH`). Teardown runs the plugins' DEL and removes the namespace.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::{run_dir, Engine};
use crate::{EngineError, Result};

/// Where the CNI configuration and plugins are.
#[derive(Debug, Clone)]
pub struct CniOptions {
    /// The configuration directory (`/etc/cni/net.d`).
    pub conf_dir: PathBuf,
    /// The plugin directories, in order (`/opt/cni/bin`, `/usr/lib/cni`).
    pub bin_dirs: Vec<PathBuf>,
}

/// A pod's network, as set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodNetwork {
    /// The attachment's key (the CNI container id).
    pub key: String,
    /// The network's name.
    pub network: String,
    /// The namespace's file.
    pub netns: PathBuf,
    /// The addresses the plugins gave, IPv4 first.
    pub ips: Vec<String>,
}

fn net_err(e: berth_net::NetError) -> EngineError {
    EngineError::Invalid(e.to_string())
}

fn runner(root: &Path, o: &CniOptions) -> berth_net::cni::Cni {
    berth_net::cni::Cni {
        bin_dirs: o.bin_dirs.clone(),
        cache_dir: run_dir(root).join("cni").join("results"),
    }
}

/// The configured network's name, if there is one.
pub fn configured(o: &CniOptions) -> Result<Option<String>> {
    Ok(berth_net::cni::Config::load(&o.conf_dir)
        .map_err(net_err)?
        .map(|c| c.name))
}

fn attachment(key: &str, netns: &Path, args: &[(String, String)], port_mappings: Value) -> berth_net::cni::Attachment {
    let mut rc = serde_json::Map::new();
    if port_mappings.as_array().is_some_and(|a| !a.is_empty()) {
        rc.insert("portMappings".into(), port_mappings);
    }
    berth_net::cni::Attachment {
        container_id: key.to_string(),
        netns: netns.to_path_buf(),
        ifname: "eth0".into(),
        args: args.to_vec(),
        runtime_config: rc,
    }
}

/// A pod network's namespace, made and not yet wired: the infra may join it while
/// [`Prepared::wire`] runs the plugins.
#[derive(Debug)]
pub struct Prepared {
    conf: berth_net::cni::Config,
    key: String,
    /// The namespace's file.
    pub netns: PathBuf,
}

/// Makes the namespace for `key` under the data root `root`; none when no network is
/// configured.
pub fn prepare(root: &Path, o: &CniOptions, key: &str) -> Result<Option<Prepared>> {
    let Some(conf) = berth_net::cni::Config::load(&o.conf_dir).map_err(net_err)? else {
        return Ok(None);
    };
    let netns = run_dir(root).join("cni").join("netns").join(key);
    berth_net::netns::create(&netns).map_err(net_err)?;
    Ok(Some(Prepared {
        conf,
        key: key.to_string(),
        netns,
    }))
}

impl Prepared {
    /// Runs the plugins' ADD on the namespace (`args` as `CNI_ARGS`, `port_mappings` for a
    /// plugin with that capability). The namespace is removed if it fails.
    pub fn wire(
        self,
        root: &Path,
        o: &CniOptions,
        args: &[(String, String)],
        port_mappings: Value,
    ) -> Result<PodNetwork> {
        let a = attachment(&self.key, &self.netns, args, port_mappings);
        let added = berth_net::link::loopback_up(&self.netns).and_then(|()| runner(root, o).add(&self.conf, &a));
        match added {
            Ok(result) => Ok(PodNetwork {
                key: self.key,
                network: self.conf.name,
                ips: berth_net::cni::ips(&result),
                netns: self.netns,
            }),
            Err(e) => {
                berth_net::netns::remove(&self.netns);
                Err(net_err(e))
            }
        }
    }
}

/// Makes a namespace for `key` and runs the plugins' ADD on it ([`prepare`], then
/// [`Prepared::wire`]); none when no network is configured. Nothing is left if it fails.
pub fn setup(
    engine: &Engine,
    o: &CniOptions,
    key: &str,
    args: &[(String, String)],
    port_mappings: Value,
) -> Result<Option<PodNetwork>> {
    match prepare(&engine.root, o, key)? {
        Some(p) => p.wire(&engine.root, o, args, port_mappings).map(Some),
        None => Ok(None),
    }
}

/// Runs the plugins' DEL for a network [`setup`] made and removes its namespace (the
/// namespace goes even if a plugin fails; the first failure is returned).
pub fn teardown(root: &Path, o: &CniOptions, n: &PodNetwork) -> Result<()> {
    // The namespace goes first: the kernel then removes its interfaces (and their host-side
    // peers) itself once its last process is gone, and the plugins' DEL, told of a namespace
    // that no longer exists, releases the addresses and host-side state without waiting for
    // a veth's deletion (the bulk of a bridge DEL: 17-23 ms of its 20-27 here). The CNI spec
    // has DEL succeed when resources are already gone.
    berth_net::netns::remove(&n.netns);
    match berth_net::cni::Config::load(&o.conf_dir).map_err(net_err)? {
        Some(conf) => runner(root, o)
            .del(&conf, &attachment(&n.key, &n.netns, &[], Value::Null))
            .map_err(net_err),
        None => Ok(()),
    }
}
