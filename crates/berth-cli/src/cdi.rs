//! `berth cdi`: the Container Device Interface's devices here (`list`), a spec for the
//! NVIDIA driver (`generate nvidia`), and the hook such a spec runs (`hook
//! update-ldcache`, started by the runtime).

use clap::Subcommand;

use crate::containers::Exit;

/// `cdi`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum CdiCmd {
    /// List the CDI devices the spec directories define (/etc/cdi, /var/run/cdi).
    List {
        /// Print `json`.
        #[arg(long)]
        format: Option<String>,
    },
    /// Write a CDI spec for a vendor's driver installed here (nvidia).
    Generate {
        /// The vendor: nvidia.
        vendor: String,
        /// Write it to this file (default: standard output); `.json` writes JSON.
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
    /// A hook that CDI specs run (started by the runtime, the container's state on stdin).
    #[command(hide = true)]
    Hook {
        /// `update-ldcache`.
        name: String,
        /// Folders the container's loader cache must list.
        #[arg(long)]
        folder: Vec<String>,
    },
}

/// `cdi`.
pub fn cdi(c: &CdiCmd) -> anyhow::Result<()> {
    match c {
        CdiCmd::List { format } => {
            let r = berth_engine::cdi::Registry::load();
            for e in &r.errors {
                eprintln!("WARNING: {e}");
            }
            if format.as_deref() == Some("json") {
                println!("{}", serde_json::json!(r.names()));
            } else {
                for n in r.names() {
                    println!("{n}");
                }
            }
            Ok(())
        }
        CdiCmd::Generate { vendor, output } => {
            if vendor != "nvidia" {
                return Err(Exit(1, format!("unknown vendor {vendor:?}: nvidia")).into());
            }
            let spec = berth_engine::cdi::nvidia::generate(&berth_engine::cdi::nvidia::Sources::default())
                .map_err(|e| Exit(1, e.to_string()))?;
            let json = output
                .as_ref()
                .is_some_and(|o| o.extension().is_some_and(|e| e == "json"));
            let text = if json {
                serde_json::to_string_pretty(&spec)? + "\n"
            } else {
                spec.to_yaml().map_err(|e| Exit(1, e.to_string()))?
            };
            match output {
                Some(o) => {
                    if let Some(dir) = o.parent().filter(|d| !d.as_os_str().is_empty()) {
                        std::fs::create_dir_all(dir)?;
                    }
                    std::fs::write(o, text)?;
                    eprintln!("wrote {} ({} devices)", o.display(), spec.devices.len());
                }
                None => print!("{text}"),
            }
            Ok(())
        }
        CdiCmd::Hook { name, folder } => hook(name, folder),
    }
}

/// Runs a hook: the container's state is on stdin.
pub fn hook(name: &str, folders: &[String]) -> anyhow::Result<()> {
    if name != "update-ldcache" {
        return Err(Exit(1, format!("unknown CDI hook {name:?}: update-ldcache")).into());
    }
    let mut state = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut state)?;
    berth_engine::cdi::nvidia::update_ldcache(&state, folders).map_err(|e| Exit(1, e.to_string()))?;
    Ok(())
}
