//! `berth network`: create, ls, inspect, rm, prune, in Docker's shapes.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use berth_engine::networks::{self, Network};
use berth_engine::store::Engine;
use clap::Subcommand;
use serde_json::json;

use crate::containers::Exit;
use crate::format::{table, Template};

/// `network` subcommands.
#[derive(Debug, Subcommand)]
pub enum NetworkCmd {
    /// Create a network.
    Create {
        /// NETWORK name.
        name: String,
        /// Driver to manage the network (bridge, overlay).
        #[arg(short, long, default_value = "bridge")]
        driver: String,
        /// Set driver specific options (overlay: encrypted).
        #[arg(short, long = "opt")]
        opt: Vec<String>,
        /// Subnet in CIDR format.
        #[arg(long)]
        subnet: Option<String>,
        /// IPv4 gateway for the subnet.
        #[arg(long)]
        gateway: Option<String>,
        /// Restrict external access to the network.
        #[arg(long)]
        internal: bool,
        /// Set metadata on a network.
        #[arg(long)]
        label: Vec<String>,
    },
    /// List networks.
    #[command(visible_alias = "list")]
    Ls(crate::format::ListArgs),
    /// Display detailed information on one or more networks.
    Inspect {
        /// NETWORK...
        #[arg(required = true)]
        names: Vec<String>,
        /// Format output using a Go template.
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Remove one or more networks.
    #[command(visible_alias = "remove")]
    Rm {
        /// NETWORK...
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Connect a container to a network.
    Connect {
        /// NETWORK
        network: String,
        /// CONTAINER
        container: String,
        /// Add network-scoped alias for the container.
        #[arg(long)]
        alias: Vec<String>,
        /// IPv4 address.
        #[arg(long)]
        ip: Option<String>,
    },
    /// Disconnect a container from a network.
    Disconnect {
        /// NETWORK
        network: String,
        /// CONTAINER
        container: String,
        /// Force the container to disconnect from a network.
        #[arg(short, long)]
        force: bool,
    },
    /// Remove all unused networks.
    Prune {
        /// Do not prompt for confirmation.
        #[arg(short, long)]
        force: bool,
    },
}

fn engine_err(e: berth_engine::EngineError) -> anyhow::Error {
    Exit(1, format!("Error response from daemon: {e}")).into()
}

/// `network ...`.
pub fn network(root: &Path, cmd: &NetworkCmd) -> anyhow::Result<()> {
    let e = Engine::open(root).with_context(|| format!("opening the engine at {}", root.display()))?;
    match cmd {
        NetworkCmd::Create {
            name,
            driver,
            opt,
            subnet,
            gateway,
            internal,
            label,
        } => {
            let encrypted = networks::encrypted_option(driver, opt.iter().map(String::as_str)).map_err(engine_err)?;
            let labels: BTreeMap<String, String> = label
                .iter()
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
                    (k.to_string(), v.to_string())
                })
                .collect();
            let n = networks::create(
                &e,
                &networks::CreateOptions {
                    name: name.clone(),
                    subnet: subnet.clone(),
                    gateway: gateway.clone(),
                    internal: *internal,
                    labels,
                    driver: driver.clone(),
                    encrypted,
                },
            )
            .map_err(engine_err)?;
            println!("{}", n.id);
        }
        NetworkCmd::Ls(crate::format::ListArgs {
            quiet,
            no_trunc,
            format,
            filter,
        }) => {
            let mut filters: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
            for f in filter {
                let (k, v) = f
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value): {f}"))?;
                filters.entry(k.to_string()).or_default().push(v.to_string());
            }
            let all = networks::filtered(&e, &filters).map_err(engine_err)?;
            let id = |n: &Network| {
                if *no_trunc {
                    n.id.clone()
                } else {
                    n.id[..12].to_string()
                }
            };
            if *quiet {
                for n in &all {
                    println!("{}", id(n));
                }
                return Ok(());
            }
            let row = |n: &Network| json!({"ID": id(n), "Name": n.name, "Driver": n.driver, "Scope": n.scope(), "Internal": n.internal.to_string(), "IPv6": "false", "CreatedAt": n.created, "Labels": n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")});
            if let Some(f) = format {
                if f == "json" {
                    for n in &all {
                        println!("{}", row(n));
                    }
                } else {
                    let t = Template::parse(f)?;
                    for n in &all {
                        println!("{}", t.render(&row(n))?);
                    }
                }
                return Ok(());
            }
            let mut lines = vec![["NETWORK ID", "NAME", "DRIVER", "SCOPE"].map(str::to_string).to_vec()];
            for n in &all {
                lines.push(vec![id(n), n.name.clone(), n.driver.clone(), n.scope().into()]);
            }
            print!("{}", table(&lines));
        }
        NetworkCmd::Inspect { names, format } => {
            let mut out = Vec::new();
            let mut missing = Vec::new();
            for n in names {
                match networks::get(&e, n) {
                    Ok(n) => out.push(berth_engine::inspect::network_json(&e, &n)),
                    Err(err) => missing.push(format!("Error response from daemon: {err}")),
                }
            }
            match format {
                Some(f) => {
                    let t = Template::parse(f)?;
                    for v in &out {
                        println!("{}", t.render(v)?);
                    }
                }
                None => println!("{}", serde_json::to_string_pretty(&out)?),
            }
            if !missing.is_empty() {
                return Err(Exit(1, missing.join("\n")).into());
            }
        }
        NetworkCmd::Rm { names } => {
            let mut failed = Vec::new();
            for n in names {
                match networks::remove(&e, n) {
                    Ok(_) => println!("{n}"),
                    Err(err) => failed.push(format!("Error response from daemon: {err}")),
                }
            }
            if !failed.is_empty() {
                return Err(Exit(1, failed.join("\n")).into());
            }
        }
        NetworkCmd::Connect {
            network,
            container,
            alias,
            ip,
        } => networks::connect(&e, network, container, alias, ip.as_deref()).map_err(engine_err)?,
        NetworkCmd::Disconnect { network, container, .. } => {
            networks::disconnect(&e, network, container).map_err(engine_err)?;
        }
        NetworkCmd::Prune { .. } => {
            let mut removed = Vec::new();
            for n in networks::list(&e).map_err(engine_err)? {
                if n.name != networks::DEFAULT && networks::remove(&e, &n.id).is_ok() {
                    removed.push(n.name);
                }
            }
            if !removed.is_empty() {
                println!("Deleted Networks:");
                for n in removed {
                    println!("{n}");
                }
            }
        }
    }
    Ok(())
}
