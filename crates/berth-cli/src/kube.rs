//! `berth kube`: play, down, ps, generate, in Podman's shapes, with `kubectl get pods`'
//! columns for `ps`.

use clap::Subcommand;
use serde_json::json;

use crate::containers::{self, engine_exit, Exit};
use crate::format::{table, Template};

/// `kube`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum KubeCmd {
    /// Create pods from Kubernetes YAML (Pods, Deployments, ReplicaSets, DaemonSets, Jobs,
    /// with their ConfigMaps, Secrets and PersistentVolumeClaims).
    Play {
        /// Remove the pods the file names first, if they exist.
        #[arg(long)]
        replace: bool,
        /// The YAML file, or - for standard input.
        file: String,
    },
    /// Remove the pods a Kubernetes YAML file made.
    Down {
        /// The YAML file, or - for standard input.
        file: String,
    },
    /// Write Kubernetes YAML (a Pod) for a pod or a container, which `kube play` accepts.
    Generate {
        /// The pod or container.
        name: String,
    },
    /// List the Jobs `kube play` started, as `kubectl get jobs` does.
    Jobs,
    /// A Job's driver (started by `kube play`).
    #[command(hide = true)]
    Job {
        /// The Job's name.
        name: String,
    },
    /// List the pods `kube play` made, as `kubectl get pods` does.
    Ps {
        /// Format output using a Go template, or `json`.
        #[arg(long)]
        format: Option<String>,
    },
}

/// The documents of `file` (`-`: standard input).
fn documents(file: &str) -> anyhow::Result<Vec<berth_kube::Doc>> {
    let text = if file == "-" {
        let mut t = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut t)?;
        t
    } else {
        std::fs::read_to_string(file).map_err(|e| Exit(125, format!("reading {file}: {e}")))?
    };
    Ok(berth_kube::parse(file, &text).map_err(|e| Exit(125, e.to_string()))?)
}

/// `kube play`, `kube down`, `kube ps`.
pub fn kube(root: &std::path::Path, c: &KubeCmd) -> anyhow::Result<()> {
    let e = containers::engine(root)?;
    match c {
        KubeCmd::Play { file, replace } => {
            let docs = documents(file)?;
            for w in berth_kube::warnings(&docs) {
                eprintln!("WARNING: {w}");
            }
            if *replace {
                berth_kube::down(&e, &docs).map_err(|err| Exit(125, err.to_string()))?;
            }
            let mut images = crate::images::open(root)?;
            let exe = std::env::current_exe()?;
            let played = berth_kube::play(&e, &mut images, &docs, &exe);
            let played = played.map_err(|err| Exit(125, err.to_string()))?;
            for w in &played.warnings {
                eprintln!("WARNING: {w}");
            }
            // Podman's words: "Container:" for one, "Containers:" for more.
            for (pod, ctrs) in &played.pods {
                println!("Pod:\n{pod}");
                match ctrs.len() {
                    0 => {}
                    1 => println!("Container:"),
                    _ => println!("Containers:"),
                }
                for id in ctrs {
                    println!("{id}");
                }
                println!();
            }
        }
        KubeCmd::Down { file } => {
            let docs = documents(file)?;
            let gone = berth_kube::down(&e, &docs).map_err(|err| Exit(125, err.to_string()))?;
            println!("Pods stopped:");
            for id in &gone {
                println!("{id}");
            }
            println!("Pods removed:");
            for id in &gone {
                println!("{id}");
            }
        }
        KubeCmd::Ps { format } => ps(&e, format.as_deref())?,
        KubeCmd::Generate { name } => {
            let images = crate::images::open(root)?;
            let yaml = berth_kube::generate::generate(&e, &images, name).map_err(|err| Exit(125, err.to_string()))?;
            print!("{yaml}");
        }
        KubeCmd::Jobs => {
            let mut lines = vec![vec![
                "NAME".to_string(),
                "STATUS".into(),
                "COMPLETIONS".into(),
                "FAILED".into(),
            ]];
            for (name, st, completions) in berth_kube::job::list(&e) {
                let status = if st.reason.is_empty() {
                    st.status
                } else {
                    format!("{} ({})", st.status, st.reason)
                };
                lines.push(vec![
                    name,
                    status,
                    format!("{}/{completions}", st.succeeded),
                    st.failed.to_string(),
                ]);
            }
            print!("{}", table(&lines));
        }
        KubeCmd::Job { name } => {
            let mut images = crate::images::open(root)?;
            let exe = std::env::current_exe()?;
            berth_kube::job::drive(&e, &mut images, name, &exe).map_err(|err| Exit(1, err.to_string()))?;
        }
    }
    Ok(())
}

/// `kube ps`: NAME, READY, STATUS, RESTARTS, AGE of each pod `kube play` made.
fn ps(e: &berth_engine::store::Engine, format: Option<&str>) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for p in berth_engine::pods::list(e).map_err(engine_exit)? {
        let members = berth_engine::pods::members(e, &p).map_err(engine_exit)?;
        if !members.iter().any(|r| r.kube.is_some()) {
            continue;
        }
        let s = berth_engine::kstatus::summary(e, &p);
        rows.push(json!({
            "Id": p.id,
            "Name": p.name,
            "Ready": format!("{}/{}", s.ready, s.total),
            "Status": s.status,
            "Restarts": s.restarts,
            "Created": p.created,
        }));
    }
    match format {
        Some("json") => println!("{}", serde_json::to_string_pretty(&rows)?),
        Some(f) => {
            let t = Template::parse(f)?;
            for r in &rows {
                println!("{}", t.render(r)?);
            }
        }
        None => {
            let mut lines = vec![vec![
                "NAME".to_string(),
                "READY".into(),
                "STATUS".into(),
                "RESTARTS".into(),
                "AGE".into(),
            ]];
            for r in &rows {
                let age = crate::format::human_duration(crate::format::since(r["Created"].as_str().unwrap_or("")));
                lines.push(vec![
                    r["Name"].as_str().unwrap_or("").to_string(),
                    r["Ready"].as_str().unwrap_or("").to_string(),
                    r["Status"].as_str().unwrap_or("").to_string(),
                    r["Restarts"].to_string(),
                    age,
                ]);
            }
            print!("{}", table(&lines));
        }
    }
    Ok(())
}
