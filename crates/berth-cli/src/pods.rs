//! `berth pod`: create, ls, inspect, start, stop, restart, kill, rm, prune, in Podman's
//! shapes.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use berth_engine::pods::{self, Pod, PodOptions};
use clap::Subcommand;
use serde_json::json;

use crate::containers::{engine, engine_exit, usage, Exit};
use crate::format::{table, Template};

/// `pod` subcommands.
#[derive(Debug, Subcommand)]
pub enum PodCmd {
    /// Create a new empty pod.
    Create(Box<CreateArgs>),
    /// List pods.
    #[command(visible_aliases = ["ls", "list"])]
    Ps(crate::format::ListArgs),
    /// Display information on one or more pods.
    Inspect {
        /// POD...
        #[arg(required = true)]
        names: Vec<String>,
        /// Format output using a Go template, or `json`.
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Start one or more pods.
    Start {
        /// POD...
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Stop one or more pods.
    Stop {
        /// Seconds to wait for each container to stop before killing it.
        #[arg(short = 't', long)]
        time: Option<u64>,
        /// POD...
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Restart one or more pods.
    Restart {
        /// POD...
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Send a signal to the containers of one or more pods.
    Kill {
        /// The signal (default SIGKILL).
        #[arg(short, long, default_value = "SIGKILL")]
        signal: String,
        /// POD...
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Pause every container of one or more pods.
    Pause {
        /// POD...
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Unpause every container of one or more pods.
    Unpause {
        /// POD...
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove one or more pods.
    Rm {
        /// Stop and remove running pods too.
        #[arg(short, long)]
        force: bool,
        /// POD...
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// The processes of a pod's containers, as the host's `ps` shows them.
    Top {
        /// POD
        name: String,
        /// [ps OPTIONS] (default `-ef`)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Resource use of a pod's containers.
    Stats {
        /// POD
        name: String,
        /// Print one sample and end.
        #[arg(long)]
        no_stream: bool,
        /// Format output using a Go template, or `json`.
        #[arg(long)]
        format: Option<String>,
    },
    /// The logs of a pod's containers, one after another (interleaved with `-f`).
    Logs {
        /// POD
        name: String,
        /// Follow log output.
        #[arg(short, long)]
        follow: bool,
        /// Number of lines to show from the end of each container's log ("all").
        #[arg(short = 'n', long, default_value = "all")]
        tail: String,
        /// Show timestamps.
        #[arg(short, long)]
        timestamps: bool,
        /// Show logs since a time (RFC 3339) or a duration ago (42m).
        #[arg(long)]
        since: Option<String>,
        /// Show logs before a time (RFC 3339) or a duration ago (42m).
        #[arg(long)]
        until: Option<String>,
    },
    /// Remove every pod none of whose containers runs.
    Prune {
        /// Do not prompt for confirmation.
        #[arg(short, long)]
        force: bool,
    },
}

/// `pod create` options.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Name of the pod.
    #[arg(short, long)]
    pub name: Option<String>,
    /// Hostname of the pod (default: its name).
    #[arg(long)]
    pub hostname: Option<String>,
    /// The pod's network flags.
    #[command(flatten)]
    pub net: crate::create_args::NetArgs,
    /// Namespaces the containers share: ipc, net, uts, pid, cgroup (default ipc,net,uts).
    #[arg(long, value_delimiter = ',')]
    pub share: Option<Vec<String>>,
    /// Metadata on the pod.
    #[arg(short, long)]
    pub label: Vec<String>,
    /// Restart policy of the pod's containers that set none: no, always,
    /// on-failure[:max-retries], unless-stopped.
    #[arg(long)]
    pub restart: Option<String>,
    /// An image whose command the infra container runs instead of berth's pause.
    #[arg(long)]
    pub infra_image: Option<String>,
    /// The infra container's command (with --infra-image).
    #[arg(long)]
    pub infra_command: Option<String>,
    /// What the pod does when its last container exits: continue or stop.
    #[arg(long)]
    pub exit_policy: Option<String>,
    /// Memory limit of the pod's containers together.
    #[arg(short, long)]
    pub memory: Option<String>,
    /// CPUs the pod's containers share.
    #[arg(long)]
    pub cpus: Option<String>,
    /// Process limit of the pod's containers together.
    #[arg(long)]
    pub pids_limit: Option<i64>,
    /// The cgroup the pod's cgroup is made under.
    #[arg(long)]
    pub cgroup_parent: Option<String>,
}

impl CreateArgs {
    /// The engine's options for these flags.
    pub(crate) fn options(&self) -> anyhow::Result<PodOptions> {
        let mut labels = BTreeMap::new();
        for l in &self.label {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            labels.insert(k.to_string(), v.to_string());
        }
        Ok(PodOptions {
            name: self.name.clone(),
            hostname: self.hostname.clone(),
            labels,
            annotations: Default::default(),
            share: self.share.clone(),
            exit_policy: self.exit_policy.clone(),
            restart: match &self.restart {
                Some(r) => berth_engine::options::RestartPolicy::parse(r).map_err(|e| usage(e.to_string()))?,
                None => berth_engine::options::RestartPolicy::No,
            },
            infra_image: self.infra_image.clone(),
            infra_command: self
                .infra_command
                .as_ref()
                .map(|c| c.split_whitespace().map(str::to_string).collect()),
            cgroup_parent: self.cgroup_parent.clone(),
            infra: {
                let mut o = berth_engine::ops::CreateOptions {
                    memory: crate::create_args::memory_flag(self.memory.as_deref())?,
                    nano_cpus: crate::create_args::cpus_flag(self.cpus.as_deref())?,
                    pids_limit: self.pids_limit.filter(|p| *p > 0).unwrap_or(0),
                    ..Default::default()
                };
                self.net.apply(&mut o)?;
                o
            },
        })
    }
}

fn exe() -> anyhow::Result<std::path::PathBuf> {
    std::env::current_exe().context("finding the berth binary")
}

/// Creates a pod for `run --pod new:NAME` or `pod create`.
pub(crate) fn create_pod(root: &Path, o: &PodOptions) -> anyhow::Result<Pod> {
    let e = engine(root)?;
    let mut images = crate::images::open(root)?;
    pods::create(&e, &mut images, o).map_err(engine_exit)
}

/// Runs `op` on each pod named, printing its id; errors are printed as they come and make
/// the exit code 125.
fn each(names: &[String], op: &dyn Fn(&str) -> Result<Pod, berth_engine::EngineError>) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    for n in names {
        match op(n) {
            Ok(p) => println!("{}", p.id),
            Err(e) => errors.push(format!("Error: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Exit(125, errors.join("\n")).into())
    }
}

/// `berth pod ...`.
pub fn pod(root: &Path, cmd: &PodCmd) -> anyhow::Result<()> {
    match cmd {
        PodCmd::Create(a) => {
            let o = a.options()?;
            if let Some(image) = &o.infra_image {
                crate::create_args::ensure_image(root, image, "missing")?;
            }
            let p = create_pod(root, &o)?;
            println!("{}", p.id);
            Ok(())
        }
        PodCmd::Ps(l) => ps(root, l.quiet, l.no_trunc, l.format.as_deref(), &l.filter),
        PodCmd::Inspect { names, format } => {
            let e = engine(root)?;
            let mut out = Vec::new();
            for n in names {
                let p = pods::get(&e, n).map_err(engine_exit)?;
                out.push(pods::inspect_json(&e, &p));
            }
            crate::views::print_inspected(&out, format.as_deref())
        }
        PodCmd::Start { names } => {
            let (e, exe) = (engine(root)?, exe()?);
            each(names, &|n| pods::start(&e, n, &exe))
        }
        PodCmd::Stop { time, names } => {
            let e = engine(root)?;
            each(names, &|n| pods::stop(&e, n, *time))
        }
        PodCmd::Restart { names } => {
            let (e, exe) = (engine(root)?, exe()?);
            each(names, &|n| {
                pods::stop(&e, n, None)?;
                pods::start(&e, n, &exe)
            })
        }
        PodCmd::Kill { signal, names } => {
            let e = engine(root)?;
            each(names, &|n| pods::kill(&e, n, signal))
        }
        PodCmd::Pause { names } => {
            let e = engine(root)?;
            each(names, &|n| pods::set_paused(&e, n, true))
        }
        PodCmd::Unpause { names } => {
            let e = engine(root)?;
            each(names, &|n| pods::set_paused(&e, n, false))
        }
        PodCmd::Rm { force, names } => {
            let e = engine(root)?;
            each(names, &|n| pods::remove(&e, n, *force))
        }
        PodCmd::Top { name, ps_args } => {
            let e = engine(root)?;
            let p = pods::get(&e, name).map_err(engine_exit)?;
            let mut lines: Vec<Vec<String>> = Vec::new();
            for id in running(&e, &p)? {
                let (titles, rows) = berth_engine::inspect::top(&e, &id, &ps_args.join(" "))
                    .map_err(|err| Exit(1, format!("Error: {err}")))?;
                if lines.is_empty() {
                    lines.push(titles);
                }
                lines.extend(rows);
            }
            print!("{}", table(&lines));
            Ok(())
        }
        PodCmd::Stats {
            name,
            no_stream,
            format,
        } => {
            let e = engine(root)?;
            let p = pods::get(&e, name).map_err(engine_exit)?;
            crate::views::stats(
                root,
                &crate::views::StatsArgs {
                    containers: running(&e, &p)?,
                    no_stream: *no_stream,
                    format: format.clone(),
                },
            )
        }
        PodCmd::Logs {
            name,
            follow,
            tail,
            timestamps,
            since,
            until,
        } => {
            let e = engine(root)?;
            let p = pods::get(&e, name).map_err(engine_exit)?;
            let args = |id: String| crate::containers::LogsArgs {
                container: id,
                follow: *follow,
                tail: tail.clone(),
                timestamps: *timestamps,
                since: since.clone(),
                until: until.clone(),
            };
            let ids: Vec<String> = pods::members(&e, &p)
                .map_err(engine_exit)?
                .into_iter()
                .map(|r| r.id)
                .collect();
            if !follow {
                for id in ids {
                    crate::views::logs(root, &args(id))?;
                }
                return Ok(());
            }
            std::thread::scope(|s| {
                let handles: Vec<_> = ids
                    .into_iter()
                    .map(|id| {
                        let a = args(id);
                        s.spawn(move || crate::views::logs(root, &a))
                    })
                    .collect();
                for h in handles {
                    h.join().map_err(|_| anyhow::anyhow!("a log follower panicked"))??;
                }
                Ok(())
            })
        }
        PodCmd::Prune { force } => {
            if !force {
                return Err(usage(
                    "pod prune: refusing to prompt without a terminal; use --force".into(),
                ));
            }
            let e = engine(root)?;
            for p in pods::prune(&e).map_err(engine_exit)? {
                println!("{}", p.id);
            }
            Ok(())
        }
    }
}

/// The running containers of a pod, its infra first; an error when none runs.
fn running(e: &berth_engine::store::Engine, p: &Pod) -> anyhow::Result<Vec<String>> {
    let ids = pods::running(e, p).map_err(engine_exit)?;
    if ids.is_empty() {
        return Err(Exit(125, format!("Error: pod {} is not running", p.name)).into());
    }
    Ok(ids)
}

/// `pod ps`.
fn ps(root: &Path, quiet: bool, no_trunc: bool, format: Option<&str>, filters: &[String]) -> anyhow::Result<()> {
    let e = engine(root)?;
    let mut rows = Vec::new();
    for p in pods::filtered(&e, filters).map_err(|err| usage(err.to_string()))? {
        let status = pods::status(&e, &p);
        let members = pods::members(&e, &p).map_err(engine_exit)?;
        let short = |id: &str| {
            if no_trunc {
                id.to_string()
            } else {
                id[..12.min(id.len())].to_string()
            }
        };
        rows.push(json!({
            "Id": short(&p.id),
            "Name": p.name,
            "Status": status,
            "Created": p.created,
            "InfraId": short(&p.infra_id),
            "NumberOfContainers": members.len() + 1,
            "Labels": p.labels,
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
        None if quiet => {
            for r in &rows {
                println!("{}", r["Id"].as_str().unwrap_or(""));
            }
        }
        None => {
            let mut lines = vec![vec![
                "POD ID".to_string(),
                "NAME".into(),
                "STATUS".into(),
                "CREATED".into(),
                "INFRA ID".into(),
                "# OF CONTAINERS".into(),
            ]];
            for r in &rows {
                let created = format!(
                    "{} ago",
                    crate::format::human_duration(crate::format::since(r["Created"].as_str().unwrap_or("")))
                );
                lines.push(vec![
                    r["Id"].as_str().unwrap_or("").to_string(),
                    r["Name"].as_str().unwrap_or("").to_string(),
                    r["Status"].as_str().unwrap_or("").to_string(),
                    created,
                    r["InfraId"].as_str().unwrap_or("").to_string(),
                    r["NumberOfContainers"].to_string(),
                ]);
            }
            print!("{}", table(&lines));
        }
    }
    Ok(())
}
