//! `volume ...`: create, ls, inspect, rm, prune.

use std::path::Path;

use crate::containers::{engine, engine_exit, usage, Exit};
use crate::format::table;

/// `volume ...`.
#[derive(Debug, clap::Subcommand)]
pub enum VolumeCmd {
    /// Create a volume.
    Create {
        /// VOLUME name (random when absent).
        name: Option<String>,
        /// Volume driver name (only `local`).
        #[arg(short, long, default_value = "local")]
        driver: String,
        /// Set metadata for a volume (KEY=VALUE).
        #[arg(long)]
        label: Vec<String>,
        /// Set driver specific options (type=, device=, o=).
        #[arg(short, long = "opt")]
        opt: Vec<String>,
    },
    /// List volumes.
    #[command(visible_alias = "list")]
    Ls {
        /// Only display volume names.
        #[arg(short, long)]
        quiet: bool,
        /// Provide filter values (e.g. `label=k=v`, `dangling=true`, `name=x`).
        #[arg(short, long)]
        filter: Vec<String>,
    },
    /// Display detailed information on one or more volumes.
    Inspect {
        /// VOLUME...
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove one or more volumes.
    #[command(visible_alias = "remove")]
    Rm {
        /// VOLUME...
        #[arg(required = true)]
        names: Vec<String>,
        /// Force the removal (accepted; volumes in use are still kept).
        #[arg(short, long)]
        force: bool,
    },
    /// Remove unused anonymous volumes (all unused ones with -a).
    Prune {
        /// Remove all unused volumes, not just anonymous ones.
        #[arg(short, long)]
        all: bool,
        /// Do not prompt for confirmation.
        #[arg(short, long)]
        force: bool,
    },
}

/// `volume ...`.
pub fn volume(root: &Path, cmd: &VolumeCmd) -> anyhow::Result<()> {
    use berth_engine::volumes;
    let e = engine(root)?;
    match cmd {
        VolumeCmd::Create {
            name,
            driver,
            label,
            opt,
        } => {
            let pairs = |v: &[String], what: &str| -> anyhow::Result<std::collections::BTreeMap<String, String>> {
                v.iter()
                    .map(|kv| match kv.split_once('=') {
                        Some((k, v)) => Ok((k.to_string(), v.to_string())),
                        None if what == "label" => Ok((kv.clone(), String::new())),
                        None => Err(usage(format!("invalid {what} {kv:?}: KEY=VALUE expected"))),
                    })
                    .collect()
            };
            let meta = volumes::VolumeMeta {
                labels: pairs(label, "label")?,
                options: pairs(opt, "option")?,
            };
            let n = volumes::create_volume(&e, name.as_deref(), driver, &meta).map_err(engine_exit)?;
            println!("{n}");
        }
        VolumeCmd::Ls { quiet, filter } => {
            let mut filters: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
            for f in filter {
                let (k, v) = f
                    .split_once('=')
                    .ok_or_else(|| usage(format!("bad format of filter (expected name=value): {f}")))?;
                filters.entry(k.to_string()).or_default().push(v.to_string());
            }
            let names = volumes::filtered(&e, &filters).map_err(engine_exit)?;
            if *quiet {
                for n in names {
                    println!("{n}");
                }
            } else {
                let mut lines = vec![vec!["DRIVER".to_string(), "VOLUME NAME".to_string()]];
                lines.extend(names.into_iter().map(|n| vec!["local".to_string(), n]));
                print!("{}", table(&lines));
            }
        }
        VolumeCmd::Inspect { names } => {
            let mut out = Vec::new();
            for n in names {
                if !e.root.join("volumes").join(n).is_dir() {
                    return Err(Exit(1, format!("Error response from daemon: get {n}: no such volume")).into());
                }
                out.push(berth_engine::inspect::volume_json(&e, n));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        VolumeCmd::Rm { names, .. } => {
            let mut errors = Vec::new();
            for n in names {
                match volumes::remove(&e, n) {
                    Ok(()) => println!("{n}"),
                    Err(err) => errors.push(format!("Error response from daemon: {err}")),
                }
            }
            if !errors.is_empty() {
                return Err(Exit(1, errors.join("\n")).into());
            }
        }
        VolumeCmd::Prune { all, force } => {
            if !force {
                return Err(usage(
                    "volume prune: refusing to prompt without a terminal; use --force".into(),
                ));
            }
            let gone = volumes::prune(&e, *all, &Default::default()).map_err(engine_exit)?;
            crate::views::print_deleted("Volumes", &gone);
            println!("Total reclaimed space: 0B");
        }
    }
    Ok(())
}
