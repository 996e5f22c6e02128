//! The overlay agent: one small process per host (berth as `_overlay ROOT`) that keeps
//! this host in step with the cluster while it runs containers on overlay networks. It
//! registers the host under a lease (a dead host's entry goes with it), and for every
//! overlay network with a container here follows the network's endpoints in the store: each
//! change is programmed on the network's VxLAN device within milliseconds and copied to a
//! file the embedded DNS reads. When the store goes away, what is programmed stays (the
//! containers keep talking) and the followers catch up once it is back. The agent exits a
//! while after the last overlay container here left; `start` brings it back.
//!
//! Containers do not depend on it: an attach programs what the store holds at that moment
//! by itself, and killing the agent changes nothing that is programmed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::overlay::{self, DRIVER, VXLAN};
use crate::store::Engine;
use crate::{EngineError, Result};

/// How long the agent stays with no overlay container here.
const LINGER: Duration = Duration::from_secs(30);

fn dir(engine: &Engine) -> PathBuf {
    engine.run.join("overlay")
}

/// The agent's pid file (for a test or an operator to find it).
pub fn pid_path(engine: &Engine) -> PathBuf {
    dir(engine).join("agent.pid")
}

fn lock(engine: &Engine) -> Result<std::fs::File> {
    let d = dir(engine);
    std::fs::create_dir_all(&d).map_err(crate::io_err("creating", &d))?;
    let p = d.join("agent.lock");
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(crate::io_err("opening", &p))
}

/// Whether container `r` is on an overlay network (first or connected).
pub fn needed(engine: &Engine, r: &crate::store::Record) -> bool {
    let on = |net: &str| super::get(engine, net).is_ok_and(|n| n.driver == DRIVER);
    (!r.network().is_private() && !r.network().is_user_mode() && on(&r.network_mode))
        || super::connections(engine, &r.id).iter().any(|c| on(&c.network_id))
}

/// Starts the agent (berth's binary at `exe`) unless one runs for this root (it holds
/// its lock while it lives).
pub fn ensure(engine: &Engine, exe: &Path) -> Result<()> {
    let f = lock(engine)?;
    match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(free) => drop(free),
        Err(_) => return Ok(()),
    }
    let status = std::process::Command::new(exe)
        .arg("_overlay")
        .arg(&engine.root)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(crate::io_err("starting", "the overlay agent"))?;
    if !status.success() {
        return Err(EngineError::Invalid("the overlay agent failed to start".into()));
    }
    Ok(())
}

/// The agent process: `berth _overlay ROOT`. It leaves its starter at once (a fork whose
/// parent exits, in a session of its own); returns the exit code.
pub fn main(root: &Path) -> i32 {
    // SAFETY: the process is single-threaded here; fork is sound.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => return 0,
        Ok(nix::unistd::ForkResult::Child) => {}
        Err(_) => return 1,
    }
    let _ = nix::unistd::setsid();
    match run(root) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// A network followed: its stop flag and thread.
type Follower = (Arc<AtomicBool>, std::thread::JoinHandle<()>);

fn run(root: &Path) -> Result<()> {
    let engine = Engine::open(root)?;
    let Ok(held) = nix::fcntl::Flock::lock(lock(&engine)?, nix::fcntl::FlockArg::LockExclusiveNonblock) else {
        // Another agent won the race.
        return Ok(());
    };
    let pf = pid_path(&engine);
    std::fs::write(&pf, std::process::id().to_string()).map_err(crate::io_err("writing", &pf))?;
    let (cfg, store) = overlay::cluster()?;
    let host = crate::cluster::hostname().unwrap_or_else(|| cfg.advertise.to_string());
    let ttl = crate::cluster::ttl();
    let lease = crate::cluster::register_host(&store, &host, cfg.advertise, ttl).ok();
    crate::cluster::keep_registered(store.clone(), host, cfg.advertise, ttl, lease);
    let mut followers: BTreeMap<String, Follower> = BTreeMap::new();
    let mut idle_since: Option<Instant> = None;
    loop {
        // The overlay networks with a container here now (their namespace is up).
        let wanted: Vec<super::Network> = super::list(&engine)
            .unwrap_or_default()
            .into_iter()
            .filter(|n| n.driver == DRIVER && overlay::namespace(&engine, n).exists())
            .filter(|n| super::users(&engine, &n.id).is_ok_and(|u| !u.is_empty()))
            .collect();
        for n in &wanted {
            if followers.contains_key(&n.id) {
                continue;
            }
            let stop = Arc::new(AtomicBool::new(false));
            let (store, name, vtep) = (store.clone(), n.name.clone(), cfg.advertise);
            let (ns, mirror) = (overlay::namespace(&engine, n), overlay::mirror_path(&engine, n));
            let flag = stop.clone();
            let t = std::thread::spawn(move || {
                crate::overlay::follow_with(&store, &name, vtep, &ns, VXLAN, &flag, &mut |eps| {
                    overlay::write_mirror(&mirror, eps);
                });
            });
            followers.insert(n.id.clone(), (stop, t));
        }
        let gone: Vec<String> = followers
            .keys()
            .filter(|id| !wanted.iter().any(|n| &n.id == *id))
            .cloned()
            .collect();
        for id in gone {
            if let Some((stop, t)) = followers.remove(&id) {
                stop.store(true, Ordering::SeqCst);
                let _ = t.join();
            }
        }
        if followers.is_empty() {
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= LINGER {
                break;
            }
        } else {
            idle_since = None;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let _ = std::fs::remove_file(&pf);
    drop(held);
    Ok(())
}
