//! `berth build`, `berth lint` and `berth builder prune`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use berth_engine::build::ignore::Ignore;
use berth_engine::build::lint;
use berth_engine::build::progress::{Mode, Progress};
use berth_oci::Reference;
use clap::{Args, Subcommand};

use crate::containers::Exit;

/// `build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The build context: a directory, or `-` for a tar (or a lone Dockerfile) on stdin.
    context: String,
    /// Name of the Dockerfile (default: PATH/Dockerfile; `-` reads it from stdin).
    #[arg(short, long)]
    file: Option<String>,
    /// Name and optionally a tag (`name:tag`); may be given more than once.
    #[arg(short, long)]
    tag: Vec<String>,
    /// Set build-time variables (`NAME=value`, or `NAME` to take it from the environment).
    #[arg(long = "build-arg")]
    build_arg: Vec<String>,
    /// Set metadata for the image.
    #[arg(long)]
    label: Vec<String>,
    /// Set the target build stage to build.
    #[arg(long)]
    target: Option<String>,
    /// Do not use the cache when building the image.
    #[arg(long)]
    no_cache: bool,
    /// Always attempt to pull the base images.
    #[arg(long)]
    pull: bool,
    /// Networking mode for the RUN instructions (`default`, `none`, `host`).
    #[arg(long, default_value = "default")]
    network: String,
    /// Secret to expose to the build (`id=mysecret[,src=/local/secret]` or `id=x,env=VAR`).
    #[arg(long)]
    secret: Vec<String>,
    /// SSH agent socket or keys to expose to the build (not supported).
    #[arg(long)]
    ssh: Vec<String>,
    /// Type of progress output (`auto`, `plain`, `tty`, `quiet`).
    #[arg(long, default_value = "auto")]
    progress: String,
    /// Write the image ID to the file.
    #[arg(long)]
    iidfile: Option<PathBuf>,
    /// Suppress the build output and print the image ID on success.
    #[arg(short, long)]
    quiet: bool,
    /// Output destination (`type=local,dest=DIR` or `type=tar,dest=FILE|-`).
    #[arg(short, long)]
    output: Option<String>,
    /// Check the Dockerfile with the linter and build nothing.
    #[arg(long)]
    check: bool,
    /// Set the target platform (only the host's is built).
    #[arg(long)]
    platform: Option<String>,
    /// Accepted for compatibility with the classic builder (intermediate containers are
    /// always removed).
    #[arg(long, hide = true)]
    rm: Option<Option<bool>>,
    /// Accepted for compatibility with the classic builder.
    #[arg(long, hide = true)]
    force_rm: bool,
}

/// `lint`.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// The Dockerfile (`-` for stdin).
    file: String,
    /// Output format: `text` or `json`.
    #[arg(long, default_value = "text")]
    format: String,
    /// Rule ids to leave out (may repeat, or comma-separated).
    #[arg(long)]
    ignore: Vec<String>,
}

/// `builder` subcommands.
#[derive(Debug, Subcommand)]
pub enum BuilderCmd {
    /// Remove the build cache.
    Prune {
        /// Remove all build cache (the default; accepted for compatibility).
        #[arg(short, long)]
        all: bool,
        /// Do not prompt for confirmation.
        #[arg(short, long)]
        force: bool,
    },
}

fn read_stdin() -> anyhow::Result<Vec<u8>> {
    let mut v = Vec::new();
    std::io::stdin().read_to_end(&mut v).context("reading stdin")?;
    Ok(v)
}

/// `lint FILE`.
pub fn lint_cmd(a: &LintArgs) -> anyhow::Result<()> {
    let (name, text) = if a.file == "-" {
        ("-".to_string(), String::from_utf8_lossy(&read_stdin()?).into_owned())
    } else {
        (
            a.file.clone(),
            std::fs::read_to_string(&a.file).with_context(|| format!("reading {}", a.file))?,
        )
    };
    let ignored: Vec<String> = a
        .ignore
        .iter()
        .flat_map(|s| s.split(',').map(|x| x.trim().to_string()))
        .collect();
    report(&name, &text, &a.format, &ignored)
}

fn report(name: &str, text: &str, format: &str, ignored: &[String]) -> anyhow::Result<()> {
    let findings = match lint::lint(name, text) {
        Ok(f) => f,
        Err(e) => vec![lint::Finding {
            rule: "B000",
            severity: lint::Severity::Error,
            line: e.line,
            message: e.to_string(),
        }],
    };
    let findings: Vec<_> = findings
        .into_iter()
        .filter(|f| !ignored.contains(&f.rule.to_string()))
        .collect();
    match format {
        "json" => println!("{}", serde_json::to_string_pretty(&lint::to_json(name, &findings))?),
        "text" => {
            for f in &findings {
                println!("{}:{} {} {}: {}", name, f.line, f.rule, f.severity, f.message);
            }
            if findings.is_empty() {
                println!("{name}: no problems found");
            }
        }
        other => bail!("unknown --format {other:?}: text or json"),
    }
    if findings.iter().any(|f| f.severity == lint::Severity::Error) {
        return Err(Exit(1, String::new()).into());
    }
    Ok(())
}

/// `builder prune`.
pub fn builder(root: &Path, c: &BuilderCmd) -> anyhow::Result<()> {
    match c {
        BuilderCmd::Prune { .. } => {
            let mut store = crate::images::open(root)?;
            let (n, bytes) = store.cache_prune()?;
            let _ = std::fs::remove_dir_all(root.join("build-cache-mounts"));
            println!("Deleted build cache objects: {n}");
            println!("Total reclaimed space: {}", crate::format::human_size(bytes));
            Ok(())
        }
    }
}

/// A context made from stdin lives in a temporary directory removed on drop.
struct TempContext(Option<PathBuf>);

impl Drop for TempContext {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

fn parse_kv_list(items: &[String], what: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    for s in items {
        match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                m.insert(k.to_string(), v.to_string());
            }
            None if !s.is_empty() && what == "build-arg" => {
                // `--build-arg NAME` takes the value from the environment, or is skipped.
                if let Ok(v) = std::env::var(s) {
                    m.insert(s.clone(), v);
                }
            }
            None if !s.is_empty() => {
                m.insert(s.clone(), String::new());
            }
            _ => bail!("invalid --{what} {s:?}: NAME=value expected"),
        }
    }
    Ok(m)
}

fn parse_secrets(items: &[String]) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    for s in items {
        let mut f: BTreeMap<String, String> = BTreeMap::new();
        for kv in s.split(',') {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("invalid --secret {s:?}: key=value pairs expected"))?;
            f.insert(k.trim().to_string(), v.trim().to_string());
        }
        let id = f
            .get("id")
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("invalid --secret {s:?}: id= is required"))?;
        let src = f.get("src").or_else(|| f.get("source")).cloned();
        let env = f.get("env").cloned();
        let data = match (f.get("type").map(String::as_str), src, env) {
            (Some("env"), _, Some(e)) | (None, None, Some(e)) => std::env::var(&e)
                .map_err(|_| anyhow::anyhow!("--secret {id}: environment variable {e} is not set"))?
                .into_bytes(),
            (_, Some(p), _) => std::fs::read(&p).with_context(|| format!("--secret {id}: reading {p}"))?,
            (_, None, None) => match std::env::var(&id) {
                Ok(v) => v.into_bytes(),
                Err(_) => bail!("--secret {id}: give src=FILE or env=VARIABLE"),
            },
            (Some(t), None, Some(_)) => bail!("--secret {id}: unknown type {t:?}"),
        };
        out.insert(id, data);
    }
    Ok(out)
}

/// Reads `.dockerignore` (or `<Dockerfile>.dockerignore` beside the Dockerfile).
fn ignore_file(context: &Path, dockerfile: Option<&Path>) -> anyhow::Result<Ignore> {
    let mut candidates = Vec::new();
    if let Some(df) = dockerfile {
        if let Some(name) = df.file_name() {
            let mut n = name.to_os_string();
            n.push(".dockerignore");
            candidates.push(df.with_file_name(n));
        }
    }
    candidates.push(context.join(".dockerignore"));
    for c in candidates {
        match std::fs::read_to_string(&c) {
            Ok(t) => return Ignore::parse(&t).map_err(|e| anyhow::anyhow!("{}: {e}", c.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", c.display())),
        }
    }
    Ok(Ignore::default())
}

/// `build`.
pub fn build(root: &Path, a: &BuildArgs) -> anyhow::Result<()> {
    if !a.ssh.is_empty() {
        bail!("--ssh is not supported by berth's builder");
    }
    if let Some(p) = &a.platform {
        let host = berth_oci::Platform::host();
        let want = berth_oci::Platform::parse(p).ok_or_else(|| anyhow::anyhow!("invalid --platform {p:?}"))?;
        if want.os != host.os || want.architecture != host.architecture {
            bail!(
                "--platform {p}: berth builds only for the host's platform ({}/{})",
                host.os,
                host.architecture
            );
        }
    }
    // Refused before anything is read or pulled.
    let network = berth_engine::build::network_mode(&a.network).map_err(|e| Exit(125, e.to_string()))?;
    let mode = match (a.quiet, a.progress.as_str()) {
        (true, _) | (_, "quiet") => Mode::Quiet,
        (_, "plain") => Mode::Plain,
        (_, "tty") => Mode::Tty,
        (_, "auto") if std::io::stderr().is_terminal() => Mode::Tty,
        (_, "auto") => Mode::Plain,
        (_, p) => bail!("invalid --progress {p:?}: auto, plain, tty or quiet"),
    };
    // The context: a directory, or stdin (a tar, or a lone Dockerfile).
    let mut stdin_dockerfile: Option<String> = None;
    let mut temp = TempContext(None);
    let context: PathBuf = if a.context == "-" {
        let data = read_stdin()?;
        let dir = root.join("tmp").join(format!("context-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        temp.0 = Some(dir.clone());
        let mut r = berth_engine::images::decompress(&data[..]).context("reading the context from stdin")?;
        let mut head = Vec::new();
        (&mut r).take(512).read_to_end(&mut head)?;
        if head.len() == 512 && &head[257..262] == b"ustar" {
            // Entry by entry, every path confined to the directory.
            let d = berth_engine::build::copy::Dest::open(&dir).map_err(|e| anyhow::anyhow!(e))?;
            berth_engine::build::copy::extract(&mut std::io::Cursor::new(head).chain(r), &d, "/", None)
                .map_err(|e| anyhow::anyhow!("unpacking the context from stdin: {e}"))?;
        } else if a.file.as_deref() != Some("-") {
            stdin_dockerfile = Some(String::from_utf8_lossy(&data).into_owned());
        }
        dir
    } else {
        let p = PathBuf::from(&a.context);
        if !p.is_dir() {
            if a.context.starts_with("http://") || a.context.starts_with("https://") || a.context.starts_with("git@") {
                bail!(
                    "a remote build context ({}) is not supported: give a directory or -",
                    a.context
                );
            }
            bail!("unable to prepare context: path {:?} not found", a.context);
        }
        p
    };
    let (file_name, text, df_path) = match (&a.file, stdin_dockerfile) {
        (Some(f), _) if f == "-" => (
            "Dockerfile".to_string(),
            String::from_utf8_lossy(&read_stdin()?).into_owned(),
            None,
        ),
        (_, Some(t)) => ("Dockerfile".to_string(), t, None),
        (Some(f), None) => {
            let p = if a.context == "-" {
                context.join(f)
            } else {
                PathBuf::from(f)
            };
            let t = std::fs::read_to_string(&p).with_context(|| format!("reading the Dockerfile {}", p.display()))?;
            (f.clone(), t, Some(p))
        }
        (None, None) => {
            let p = context.join("Dockerfile");
            let p = if p.exists() { p } else { context.join("dockerfile") };
            let t = std::fs::read_to_string(&p)
                .with_context(|| format!("unable to prepare context: reading the Dockerfile {}", p.display()))?;
            ("Dockerfile".to_string(), t, Some(p))
        }
    };
    if a.check {
        return report(&file_name, &text, "text", &[]);
    }
    let ignore = ignore_file(&context, df_path.as_deref())?;
    let mut tags = Vec::new();
    for t in &a.tag {
        tags.push(Reference::parse(t).map_err(|e| anyhow::anyhow!("invalid tag {t:?}: {e}"))?);
    }
    let output = match &a.output {
        None => None,
        Some(o) => {
            let mut f: BTreeMap<&str, &str> = BTreeMap::new();
            for kv in o.split(',') {
                let (k, v) = kv.split_once('=').unwrap_or(("dest", kv));
                f.insert(k, v);
            }
            let ty = f.get("type").copied().unwrap_or("local");
            let dest = f
                .get("dest")
                .copied()
                .ok_or_else(|| anyhow::anyhow!("--output {o:?}: dest= is required"))?;
            if !["local", "tar"].contains(&ty) {
                bail!("--output type={ty}: local or tar");
            }
            Some((ty.to_string(), dest.to_string()))
        }
    };
    let mut store = crate::images::open(root)?;
    let progress = std::sync::Mutex::new(Progress::new(mode, Box::new(std::io::stderr())));
    let o = berth_engine::build::Options {
        file_name,
        dockerfile: text,
        context: context.clone(),
        ignore,
        build_args: parse_kv_list(&a.build_arg, "build-arg")?,
        labels: parse_kv_list(&a.label, "label")?,
        tags,
        target: a.target.clone(),
        no_cache: a.no_cache,
        pull: a.pull,
        network,
        secrets: parse_secrets(&a.secret)?,
        // Set by build_image.
        scratch: Default::default(),
        cache_mounts: Default::default(),
    };
    let scratch = std::process::id().to_string();
    let built = match berth_engine::build::build_image(root, &mut store, &progress, o, &scratch) {
        Ok(b) => b,
        Err(e) => {
            let p = berth_engine::build::progress::lock(&progress);
            if mode == Mode::Quiet && !p.tail().is_empty() {
                for l in p.tail() {
                    eprintln!("{l}");
                }
            }
            return Err(Exit(1, format!("failed to build: {e}")).into());
        }
    };
    if !built.unused_args.is_empty() {
        eprintln!(
            "[Warning] One or more build-args {:?} were not consumed",
            built.unused_args
        );
    }
    if let Some(f) = &a.iidfile {
        std::fs::write(f, &built.id).with_context(|| format!("writing {}", f.display()))?;
    }
    if let Some((ty, dest)) = output {
        export(&store, &built.id, &ty, &dest)?;
    }
    if a.quiet {
        println!("{}", built.id);
    } else if mode != Mode::Quiet {
        eprintln!(
            "Built {} in {:.1}s ({} steps run, {} cached)",
            &built.id,
            berth_engine::build::progress::lock(&progress).elapsed().as_secs_f64(),
            built.steps.0,
            built.steps.1
        );
    }
    Ok(())
}

/// `--output`: the image's filesystem as a directory or a tar.
fn export(store: &berth_engine::images::ImageStore, id: &str, ty: &str, dest: &str) -> anyhow::Result<()> {
    match (ty, dest) {
        ("tar", "-") => berth_engine::build::export_rootfs(store, id, &mut std::io::stdout().lock())?,
        ("tar", f) => berth_engine::build::export_rootfs(
            store,
            id,
            &mut std::fs::File::create(f).with_context(|| format!("creating {f}"))?,
        )?,
        (_, d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {d}"))?;
            let mut buf = Vec::new();
            berth_engine::build::export_rootfs(store, id, &mut buf)?;
            // The image's own symlinks cannot steer a write out of the destination.
            let out = berth_engine::build::copy::Dest::open(Path::new(d)).map_err(|e| anyhow::anyhow!(e))?;
            berth_engine::build::copy::extract(&mut &buf[..], &out, "/", None)
                .map_err(|e| anyhow::anyhow!("writing {d}: {e}"))?;
        }
    }
    Ok(())
}
