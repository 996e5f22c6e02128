//! ps, update, events, features, spec.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use berth_oci::oci_spec::runtime::LinuxResources;
use berth_runtime::Runtime;
use clap::Args;

/// `ps`.
#[derive(Debug, Args)]
#[command(trailing_var_arg = true)]
pub struct PsArgs {
    /// table or json.
    #[arg(short, long, default_value = "table")]
    format: String,
    /// The container id.
    id: String,
    /// Arguments for ps(1) in table format.
    ps_args: Vec<String>,
}

pub fn ps(rt: &Runtime, a: PsArgs) -> anyhow::Result<ExitCode> {
    let pids = rt.pids(&a.id)?;
    match a.format.as_str() {
        "json" => println!("{}", serde_json::to_string(&pids)?),
        "table" => {
            let args = if a.ps_args.is_empty() {
                vec!["-ef".to_string()]
            } else {
                a.ps_args.clone()
            };
            let out = std::process::Command::new("ps")
                .args(&args)
                .output()
                .context("running ps")?;
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or("");
            let col = header
                .split_whitespace()
                .position(|h| h == "PID")
                .context("ps output has no PID column")?;
            println!("{header}");
            for l in lines {
                let pid = l.split_whitespace().nth(col).and_then(|p| p.parse::<i32>().ok());
                if pid.is_some_and(|p| pids.contains(&p)) {
                    println!("{l}");
                }
            }
        }
        f => bail!("invalid format {f:?}: use table or json"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Resources JSON file (`-` for stdin); the flags below are applied over it.
    #[arg(short, long)]
    resources: Option<PathBuf>,
    /// Memory limit (bytes, or with k/m/g).
    #[arg(long)]
    memory: Option<String>,
    /// Memory soft limit.
    #[arg(long)]
    memory_reservation: Option<String>,
    /// Memory plus swap limit (-1 for unlimited).
    #[arg(long, allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// CPU shares (relative weight).
    #[arg(long)]
    cpu_shares: Option<u64>,
    /// CFS period in microseconds.
    #[arg(long)]
    cpu_period: Option<u64>,
    /// CFS quota in microseconds (-1 for none).
    #[arg(long, allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// CPUs allowed (0-3, 0,1).
    #[arg(long)]
    cpuset_cpus: Option<String>,
    /// Memory nodes allowed.
    #[arg(long)]
    cpuset_mems: Option<String>,
    /// Maximum number of processes (0 or -1 for unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Block IO weight (10-1000).
    #[arg(long)]
    blkio_weight: Option<u16>,
    /// The container id.
    id: String,
}

/// Parses `512`, `64k`, `512m`, `1g`, `-1`.
pub fn parse_bytes(s: &str) -> anyhow::Result<i64> {
    if s.trim() == "-1" {
        return Ok(-1);
    }
    berth_oci::units::parse_size(s).with_context(|| format!("invalid size {s:?}"))
}

pub fn update(rt: &Runtime, a: UpdateArgs) -> anyhow::Result<ExitCode> {
    let mut res: LinuxResources = match &a.resources {
        Some(p) => {
            let mut data = Vec::new();
            if p.as_os_str() == "-" {
                std::io::stdin()
                    .read_to_end(&mut data)
                    .context("reading resources from stdin")?;
            } else {
                data = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            }
            serde_json::from_slice(&data).context("parsing resources JSON")?
        }
        None => LinuxResources::default(),
    };
    if a.memory.is_some() || a.memory_reservation.is_some() || a.memory_swap.is_some() {
        let mut m = res.memory().unwrap_or_default();
        if let Some(v) = &a.memory {
            m.set_limit(Some(parse_bytes(v)?));
        }
        if let Some(v) = &a.memory_reservation {
            m.set_reservation(Some(parse_bytes(v)?));
        }
        if let Some(v) = &a.memory_swap {
            m.set_swap(Some(parse_bytes(v)?));
        }
        res.set_memory(Some(m));
    }
    if a.cpu_shares.is_some()
        || a.cpu_period.is_some()
        || a.cpu_quota.is_some()
        || a.cpuset_cpus.is_some()
        || a.cpuset_mems.is_some()
    {
        let mut c = res.cpu().clone().unwrap_or_default();
        if a.cpu_shares.is_some() {
            c.set_shares(a.cpu_shares);
        }
        if a.cpu_period.is_some() {
            c.set_period(a.cpu_period);
        }
        if a.cpu_quota.is_some() {
            c.set_quota(a.cpu_quota);
        }
        if a.cpuset_cpus.is_some() {
            c.set_cpus(a.cpuset_cpus.clone());
        }
        if a.cpuset_mems.is_some() {
            c.set_mems(a.cpuset_mems.clone());
        }
        res.set_cpu(Some(c));
    }
    if let Some(p) = a.pids_limit {
        let mut pids = berth_oci::oci_spec::runtime::LinuxPids::default();
        pids.set_limit(p);
        res.set_pids(Some(pids));
    }
    if let Some(w) = a.blkio_weight {
        let mut b = res.block_io().clone().unwrap_or_default();
        b.set_weight(Some(w));
        res.set_block_io(Some(b));
    }
    rt.update(&a.id, &res)?;
    Ok(ExitCode::SUCCESS)
}

/// `events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Print one stats record and exit.
    #[arg(long)]
    stats: bool,
    /// Interval between stats records (5s, 500ms).
    #[arg(long, default_value = "5s")]
    interval: String,
    /// The container id.
    id: String,
}

/// `--interval`: a Go duration (`500ms`, `5s`, `1m`), or bare seconds as runc takes them.
fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let d = match s.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 => Some(Duration::from_secs_f64(secs)),
        Ok(_) => None,
        Err(_) => berth_oci::time::parse_go_duration(s),
    };
    match d {
        Some(d) if !d.is_zero() => Ok(d),
        _ => bail!("invalid interval {s:?}"),
    }
}

pub fn events(rt: &Runtime, a: EventsArgs) -> anyhow::Result<ExitCode> {
    if a.stats {
        println!("{}", rt.stats(&a.id)?);
        return Ok(ExitCode::SUCCESS);
    }
    let every = parse_duration(&a.interval)?;
    let (_, st, _) = rt.load(&a.id)?;
    let mut ooms = st.cgroup.oom_kills();
    loop {
        match rt.stats(&a.id) {
            Ok(s) => println!("{s}"),
            Err(_) => return Ok(ExitCode::SUCCESS),
        }
        let now = st.cgroup.oom_kills();
        if now > ooms {
            println!("{}", serde_json::json!({"type": "oom", "id": a.id}));
            ooms = now;
        }
        std::thread::sleep(every);
    }
}

pub fn features() -> anyhow::Result<ExitCode> {
    println!(
        "{}",
        serde_json::to_string_pretty(&berth_runtime::features::features())?
    );
    Ok(ExitCode::SUCCESS)
}

/// `spec`.
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// Bundle directory to write config.json into.
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
}

/// `rootless` comes from the global `--rootless` (runc's `spec --rootless` parses the same).
pub fn spec(a: SpecArgs, rootless: bool) -> anyhow::Result<ExitCode> {
    let path = a.bundle.join("config.json");
    if path.exists() {
        bail!("{} already exists: remove it first", path.display());
    }
    let v = berth_runtime::specgen::default_spec(rootless);
    std::fs::write(&path, serde_json::to_string_pretty(&v)?).with_context(|| format!("writing {}", path.display()))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_bytes("512").unwrap(), 512);
        assert_eq!(parse_bytes("64k").unwrap(), 65536);
        assert_eq!(parse_bytes("10M").unwrap(), 10 << 20);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        parse_bytes("lots").unwrap_err();
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        parse_duration("0s").unwrap_err();
    }
}
