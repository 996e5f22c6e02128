//! `system info` and `system prune`.

use std::path::Path;

use berth_engine::ops;

use crate::containers::{engine, engine_exit, usage};
use crate::format::Template;
use crate::views::iec;

/// `system info`.
pub fn info(root: &Path, format: Option<&str>) -> anyhow::Result<()> {
    let e = engine(root)?;
    let images = crate::images::open(root)?;
    let recs = e.all()?;
    let mut running = 0;
    let mut paused = 0;
    for r in &recs {
        let st = e.state(&r.id);
        if st.running() {
            if ops::is_paused(&e, &r.id) {
                paused += 1;
            } else {
                running += 1;
            }
        }
    }
    let v = berth_engine::inspect::info_json(&e, &images, root)?;
    let (kernel, os, cgv) = (
        v["KernelVersion"].as_str().unwrap_or("").to_string(),
        v["OperatingSystem"].as_str().unwrap_or("").to_string(),
        v["CgroupVersion"].as_str().unwrap_or("").to_string(),
    );
    if let Some(f) = format {
        if f == "json" {
            println!("{v}");
        } else {
            println!("{}", Template::parse(f)?.render(&v)?);
        }
        return Ok(());
    }
    println!("Server:");
    println!(" Containers: {}", v["Containers"]);
    println!("  Running: {running}");
    println!("  Paused: {paused}");
    println!("  Stopped: {}", v["ContainersStopped"]);
    println!(" Images: {}", v["Images"]);
    println!(" Server Version: berth {}", env!("CARGO_PKG_VERSION"));
    println!(" Storage Driver: overlay2");
    println!(" Logging Driver: json-file");
    println!(" Cgroup Driver: {}", v["CgroupManager"].as_str().unwrap_or("cgroupfs"));
    println!(" Cgroup Version: {cgv}");
    println!(" Default Runtime: berth-runtime");
    println!(" Security Options:\n  seccomp\n   Profile: builtin");
    let rootless = v["Rootless"].as_bool().unwrap_or(false);
    if rootless {
        println!("  rootless");
    }
    println!(" Rootless: {rootless}");
    for (name, key) in [("UID", "UIDMap"), ("GID", "GIDMap")] {
        let maps: Vec<String> = v["IDMappings"][key]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| format!("{}:{}:{}", m["container_id"], m["host_id"], m["size"]))
                    .collect()
            })
            .unwrap_or_default();
        println!(" {name} Mappings: {}", maps.join(" "));
    }
    println!(" Network Backend: {}", v["NetworkBackend"].as_str().unwrap_or(""));
    println!(" Kernel Version: {kernel}");
    println!(" Operating System: {os}");
    println!(" OSType: linux");
    println!(" Architecture: {}", std::env::consts::ARCH);
    println!(" CPUs: {}", v["NCPU"]);
    println!(" Total Memory: {}", iec(berth_engine::inspect::host_memory()));
    println!(" Docker Root Dir: {}", root.display());
    Ok(())
}

/// `system prune`: stopped containers, dangling images (all unused with `-a`), and with
/// `--volumes` unused anonymous volumes.
pub fn system_prune(root: &Path, all: bool, volumes: bool, force: bool) -> anyhow::Result<()> {
    if !force {
        return Err(usage(
            "system prune: refusing to prompt without a terminal; use --force".into(),
        ));
    }
    let e = engine(root)?;
    let gone = ops::prune(&e).map_err(engine_exit)?;
    crate::views::print_deleted("Containers", &gone);
    if volumes {
        let gone = berth_engine::volumes::prune(&e, false, &Default::default()).map_err(engine_exit)?;
        crate::views::print_deleted("Volumes", &gone);
    }
    let reclaimed = crate::images::prune_images(root, all)?;
    println!("Total reclaimed space: {}", crate::format::human_size(reclaimed));
    Ok(())
}
