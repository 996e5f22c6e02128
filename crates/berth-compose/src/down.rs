//! Taking a project down: containers stopped in reverse dependency order (each wave
//! together) and removed, then its networks and, with `-v`, its volumes and images.

use std::collections::BTreeSet;

use berth_engine::model::Record;
use berth_engine::store::Engine;

use crate::model::Project;
use crate::plan::{self, order};
use crate::up::{containers_of, remove_container, Ctx};
use crate::ComposeError;

/// `down`'s options.
#[derive(Debug, Clone, Default)]
pub struct DownOptions {
    /// `-v`: named volumes of the project and anonymous volumes of its containers.
    pub volumes: bool,
    /// `--rmi local|all`.
    pub rmi: Option<String>,
    /// `-t`.
    pub timeout: Option<u64>,
    /// `--remove-orphans` (containers of services no longer in the files: always removed
    /// here, as their project is going).
    pub remove_orphans: bool,
}

/// `down`: the project's containers stopped in reverse dependency order and removed,
/// its networks removed, and with `-v` its volumes.
pub fn down(ctx: &mut Ctx<'_>, p: &Project, o: &DownOptions) -> Result<(), ComposeError> {
    let all = containers_of(ctx.engine, &p.name, None, true)?;
    let known: Vec<String> = p.services.keys().cloned().collect();
    let mut waves = order(p, &known)?;
    waves.reverse();
    // Containers of services the files do not know (orphans, other profiles, `run`'s)
    // go first.
    let mut groups: Vec<Vec<Record>> = vec![all
        .iter()
        .filter(|r| {
            r.labels.get(plan::ONEOFF).map(String::as_str) == Some("True")
                || !known.contains(r.labels.get(plan::SERVICE).unwrap_or(&String::new()))
        })
        .cloned()
        .collect()];
    for wave in &waves {
        groups.push(
            all.iter()
                .filter(|r| r.labels.get(plan::ONEOFF).map(String::as_str) != Some("True"))
                .filter(|r| wave.contains(r.labels.get(plan::SERVICE).unwrap_or(&String::new())))
                .cloned()
                .collect(),
        );
    }
    for g in &groups {
        // Each wave stops together: SIGTERM to all, then wait.
        for r in g {
            if ctx.engine.state(&r.id).running() {
                (ctx.progress)("Container", &r.name, "Stopping");
                let sig = r.stop_signal.clone();
                let _ = berth_engine::ops::kill(ctx.engine, &r.id, &sig);
            }
        }
        remove_together(ctx, g, o.timeout, o.volumes)?;
    }
    // Networks: the project's by label, and those the files name (not external).
    let mut nets: BTreeSet<String> = berth_engine::networks::list(ctx.engine)?
        .into_iter()
        .filter(|n| n.labels.get(plan::PROJECT) == Some(&p.name))
        .map(|n| n.name)
        .collect();
    nets.extend(p.networks.values().filter(|n| !n.external).map(|n| n.name.clone()));
    let nets: Vec<String> = nets
        .into_iter()
        .filter(|n| berth_engine::networks::get(ctx.engine, n).is_ok())
        .collect();
    // A bridge's removal waits on the kernel (tens of milliseconds): the networks go on
    // threads of their own while the volumes are removed here.
    let root = ctx.engine.root.clone();
    let progress = ctx.progress;
    std::thread::scope(|sc| -> Result<(), ComposeError> {
        let handles: Vec<_> = nets
            .iter()
            .map(|n| {
                let root = root.clone();
                sc.spawn(move || -> Result<(), ComposeError> {
                    let engine = Engine::open(&root)?;
                    progress("Network", n, "Removing");
                    berth_engine::networks::remove(&engine, n)?;
                    progress("Network", n, "Removed");
                    Ok(())
                })
            })
            .collect();
        let vols = if o.volumes { remove_volumes(ctx, p) } else { Ok(()) };
        for h in handles {
            h.join()
                .unwrap_or_else(|_| Err(ComposeError::Project("a removal thread panicked".into())))?;
        }
        vols
    })?;
    if let Some(rmi) = &o.rmi {
        let mut imgs = BTreeSet::new();
        for (name, s) in &p.services {
            if rmi == "all" || s.image.is_none() {
                imgs.insert(s.image_name(&p.name, name));
            }
        }
        for img in imgs {
            if ctx.images.resolve(&img).is_err() {
                continue;
            }
            (ctx.progress)("Image", &img, "Removing");
            berth_engine::images::remove(ctx.engine, ctx.images, &img, false)?;
            (ctx.progress)("Image", &img, "Removed");
        }
    }
    Ok(())
}

/// `down -v`'s volumes: the project's by label, and those the files name (not external).
fn remove_volumes(ctx: &Ctx<'_>, p: &Project) -> Result<(), ComposeError> {
    let present = berth_engine::volumes::list(ctx.engine)?;
    let mut vols: BTreeSet<String> = present
        .iter()
        .filter(|v| berth_engine::volumes::meta(ctx.engine, v).labels.get(plan::PROJECT) == Some(&p.name))
        .cloned()
        .collect();
    vols.extend(
        p.volumes
            .values()
            .filter(|v| !v.external && present.contains(&v.name))
            .map(|v| v.name.clone()),
    );
    for v in vols {
        (ctx.progress)("Volume", &v, "Removing");
        berth_engine::volumes::remove(ctx.engine, &v)?;
        (ctx.progress)("Volume", &v, "Removed");
    }
    Ok(())
}

/// Stops and removes containers together, each on a thread with an engine handle of its
/// own (the waits for their exits and the teardowns overlap).
pub(crate) fn remove_together(
    ctx: &Ctx<'_>,
    rs: &[Record],
    timeout: Option<u64>,
    volumes: bool,
) -> Result<(), ComposeError> {
    if rs.len() < 2 {
        return rs.iter().try_for_each(|r| remove_container(ctx, r, timeout, volumes));
    }
    let root = ctx.engine.root.clone();
    let progress = ctx.progress;
    std::thread::scope(|sc| {
        let handles: Vec<_> = rs
            .iter()
            .map(|r| {
                let root = root.clone();
                sc.spawn(move || -> Result<(), ComposeError> {
                    let engine = Engine::open(&root)?;
                    crate::up::stop_and_remove(&engine, progress, r, timeout, volumes)
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or_else(|_| Err(ComposeError::Project("a removal thread panicked".into())))
        })
    })
}
