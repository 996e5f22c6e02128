//! The engine's side of `berth build`: RUN steps run as real berth containers (the same spec
//! as `berth run`: namespaces, default capabilities, seccomp, masked paths) on the rootfs the
//! builder mounted, through the built-in runtime in a child process whose output is the
//! step's log. `default` network puts the step on the default bridge, `none` gives it only
//! loopback, `host` shares the host's stack.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};

use berth_build::{RunStep, RunnerError, StepRunner};
// The builder as the CLI (and the API) reach it: through the engine, as the design's crate
// graph says.
pub use berth_build::{build, copy, ignore, lint, progress, Built, Options};
use berth_image::store::ImageStore;
use berth_oci::Reference;

use crate::store::{new_id, Engine, Record};
use crate::volumes::MountSpec;

/// The filesystem of image `id` as a tar (`build --output`), read from a read-only overlay
/// of its layers.
pub fn export_rootfs(store: &ImageStore, id: &str, out: &mut dyn Write) -> crate::Result<()> {
    let img = store.image(id)?;
    let lowers = store.lowers(&img)?;
    let mnt = crate::store::run_dir(store.root())
        .join("build")
        .join(format!("out-{}", std::process::id()));
    std::fs::create_dir_all(&mnt).map_err(crate::io_err("creating", &mnt))?;
    struct Unmount(std::path::PathBuf, bool);
    impl Drop for Unmount {
        fn drop(&mut self) {
            if self.1 {
                let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
            }
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let mut guard = Unmount(mnt.clone(), false);
    if !lowers.is_empty() {
        berth_image::snapshot::mount_overlay(&mnt, &lowers, None)?;
        guard.1 = true;
    }
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    b.append_dir_all(".", &mnt)
        .and_then(|()| b.finish())
        .map_err(crate::io_err("archiving", &mnt))?;
    drop(b);
    drop(guard);
    Ok(())
}

/// Unpacks a build context (a tar, maybe compressed) into `dir`, every path confined there.
pub fn unpack_context(input: impl Read, dir: &Path) -> crate::Result<()> {
    let bad = |e: copy::CopyError| crate::EngineError::Invalid(format!("unpacking the build context: {e}"));
    let ctx = copy::Dest::open(dir).map_err(bad)?;
    let mut r = berth_image::unpack::decompress(input).map_err(crate::io_err("reading", "the build context"))?;
    copy::extract(&mut r, &ctx, "/", None).map_err(bad)
}

/// Pulls a base image the builder lacks.
pub type PullFn<'a> = dyn Fn(&mut ImageStore, &Reference) -> Result<(), RunnerError> + Sync + 'a;

/// The network mode a build's RUN steps get, from Docker's names (`networkmode`,
/// `--network`): `default` (the default bridge), `none` or `host`.
pub fn network_mode(mode: &str) -> crate::Result<String> {
    match mode {
        "" | "default" | "bridge" => Ok("default".into()),
        "none" | "host" => Ok(mode.into()),
        m => Err(crate::EngineError::Invalid(format!(
            "network mode {m:?} is not supported for builds"
        ))),
    }
}

/// Builds an image over data root `root`, as every front end does: base images missing
/// from the store are pulled (registries as the environment configures them), RUN steps run
/// through [`Runner`], the build's scratch space is `<run dir>/build/<scratch_name>` and
/// `--mount=type=cache` directories live in `<root>/build-cache-mounts` (what `o` says of
/// those two is replaced). Each tag is announced as a `tag` event.
pub fn build_image(
    root: &Path,
    store: &mut ImageStore,
    progress: &std::sync::Mutex<progress::Progress>,
    mut o: Options,
    scratch_name: &str,
) -> std::result::Result<Built, berth_build::build::BuildError> {
    let other = |e: crate::EngineError| berth_build::build::BuildError::Runner(Box::new(e));
    // Opened once to make (or migrate) the engine's tables before stage threads open it.
    let engine = Engine::open(root).map_err(other)?;
    let pull = |store: &mut ImageStore, r: &Reference| -> Result<(), RunnerError> {
        let opts = berth_image::pull::PullOptions {
            registry: berth_image::registry::Options::from_env(),
            ..Default::default()
        };
        crate::images::pull(store, r, &opts, &|_| {})?;
        Ok(())
    };
    let runner = Runner {
        root: root.to_path_buf(),
        pull: &pull,
    };
    o.scratch = crate::store::run_dir(root).join("build").join(scratch_name);
    o.cache_mounts = root.join("build-cache-mounts");
    let built = build(store, &runner, progress, &o)?;
    for t in &o.tags {
        crate::events::image(&engine, "tag", &built.id, &t.familiar());
    }
    Ok(built)
}

/// Runs RUN steps for the builder. Stages build in parallel threads, so each step opens
/// the engine (its own database connection) over the data root.
pub struct Runner<'a> {
    /// The data root.
    pub root: std::path::PathBuf,
    /// How to pull.
    pub pull: &'a PullFn<'a>,
}

impl std::fmt::Debug for Runner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").finish_non_exhaustive()
    }
}

impl StepRunner for Runner<'_> {
    fn pull(&self, store: &mut ImageStore, reference: &Reference) -> Result<(), RunnerError> {
        (self.pull)(store, reference)
    }

    fn run(&self, step: &RunStep<'_>, out: &mut dyn Write) -> Result<i32, RunnerError> {
        let engine = Engine::open(&self.root)?;
        let engine = &engine;
        let id = new_id()?;
        let mut r = Record {
            id: id.clone(),
            hostname: "buildkitsandbox".into(),
            user: step.user.clone(),
            env: step.env.clone(),
            working_dir: step.cwd.clone(),
            path: step.args.first().cloned().unwrap_or_default(),
            args: step.args.iter().skip(1).cloned().collect(),
            network_mode: match step.network.as_str() {
                "host" => "host".into(),
                "none" => "none".into(),
                _ => "bridge".into(),
            },
            cgroup_parent: "/berth-build".into(),
            ..Record::default()
        };
        r.mounts = step
            .mounts
            .iter()
            .map(|m| MountSpec {
                kind: if m.source.is_some() { "bind" } else { "tmpfs" }.into(),
                source: m.source.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                destination: m.destination.clone(),
                read_only: m.read_only,
                options: Vec::new(),
            })
            .collect();
        // The step is a container for the network code (its hosts file, its namespace).
        let dir = engine.dir(&id);
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let _ = step.scratch;
        if r.network() == crate::model::NetworkMode::Bridge {
            crate::networks::ensure_default(engine)?;
        }
        let att = crate::networks::attach(engine, &r)?;
        let res = (|| -> Result<i32, RunnerError> {
            let ip = att
                .as_ref()
                .and_then(|(a, _)| Some((a.ip.parse().ok()?, a.gateway.parse().ok()?)));
            let write = |name: &str, data: String| {
                std::fs::write(dir.join(name), data).map_err(|e| format!("writing {name}: {e}"))
            };
            write("hostname", format!("{}\n", r.hostname))?;
            write("hosts", crate::networks::hosts_file(&r, ip))?;
            write(
                "resolv.conf",
                crate::ops::resolv_conf(
                    &crate::ops::CreateOptions::default(),
                    r.network() != crate::model::NetworkMode::Host,
                )?,
            )?;
            let spec = crate::spec::oci_spec(&r, step.rootfs, &dir, &[step.rootfs.to_path_buf()], &engine.root)?;
            let bundle = dir.join("bundle");
            std::fs::create_dir_all(&bundle).map_err(|e| format!("creating the bundle: {e}"))?;
            std::fs::write(bundle.join("config.json"), spec.to_string())
                .map_err(|e| format!("writing config.json: {e}"))?;
            run_runtime(
                &crate::store::run_dir(&engine.root).join("build-runtime"),
                &bundle,
                &id,
                out,
            )
        })();
        let idle = crate::networks::release(engine, &r, att.as_ref().map(|(a, _)| a), true);
        crate::networks::tear_down_idle(engine, &idle, std::time::Duration::ZERO);
        let _ = std::fs::remove_dir_all(&dir);
        res
    }
}

/// `berth runtime run` in a child with stdout and stderr on one pipe read into `out`.
fn run_runtime(root: &Path, bundle: &Path, id: &str, out: &mut dyn Write) -> Result<i32, RunnerError> {
    let exe = std::env::current_exe().map_err(|e| format!("finding the berth binary: {e}"))?;
    let (rd, wr) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    let wr2: OwnedFd = wr.try_clone().map_err(|e| format!("pipe: {e}"))?;
    let mut child = Command::new(exe)
        .arg("runtime")
        .arg("--root")
        .arg(root)
        .arg("run")
        .arg("--bundle")
        .arg(bundle)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::from(wr))
        .stderr(Stdio::from(wr2))
        .spawn()
        .map_err(|e| format!("starting the runtime: {e}"))?;
    let mut f = std::fs::File::from(rd);
    let mut buf = [0u8; 16 * 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let _ = out.write_all(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading the step's output: {e}").into()),
        }
    }
    let status = child.wait().map_err(|e| format!("waiting for the runtime: {e}"))?;
    Ok(status
        .code()
        .unwrap_or(128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)))
}
