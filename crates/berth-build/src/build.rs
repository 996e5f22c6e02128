//! The executor: stages as a graph, each instruction applied to the stage's state (its image
//! config and its layers), filesystem steps (RUN, COPY, ADD, WORKDIR that makes a
//! directory) run on an overlay of the state's snapshots and turned into a layer by diffing
//! the upper directory. Every filesystem step has a cache key chained from its parent's;
//! a hit reuses the recorded layer without running anything.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use berth_image::model::{self, Descriptor};
use berth_image::store::ImageStore;
use berth_oci::{Digest, Reference};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::copy::{self, Dest, Meta};
use crate::ignore::{clean, Ignore};
use crate::parse::{self, Args, Instruction};
use std::sync::Mutex;

use crate::progress::{self as prog, Progress};
use crate::subst;

/// Docker's default PATH for images that set none.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Build arguments every build accepts without an ARG (and keeps out of the history).
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Why a step's change to a rootfs failed: a copy, or anything else the step reports.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// COPY, ADD, WORKDIR and the like.
    #[error(transparent)]
    Copy(#[from] copy::CopyError),
    /// What the step said.
    #[error("{0}")]
    Failed(String),
    /// The runner could not run it.
    #[error("{0}")]
    Runner(RunnerError),
}

impl From<RunnerError> for StepError {
    fn from(e: RunnerError) -> StepError {
        StepError::Runner(e)
    }
}

impl From<String> for StepError {
    fn from(s: String) -> StepError {
        StepError::Failed(s)
    }
}

impl From<&str> for StepError {
    fn from(s: &str) -> StepError {
        StepError::Failed(s.to_string())
    }
}

/// A build error: a message, with the Dockerfile line when one step failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile does not parse.
    #[error("{0}")]
    Parse(#[from] parse::ParseError),
    /// A step failed.
    #[error("{file}:{line}: {message}")]
    Step {
        /// The Dockerfile's name.
        file: String,
        /// Its line.
        line: usize,
        /// What went wrong.
        message: String,
    },
    /// Anything else (options, the store).
    #[error("{0}")]
    Other(String),
}

impl From<berth_image::ImageError> for BuildError {
    fn from(e: berth_image::ImageError) -> Self {
        BuildError::Other(e.to_string())
    }
}

type Result<T> = std::result::Result<T, BuildError>;

/// A mount for one RUN step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where it appears in the container.
    pub destination: String,
    /// A host path to bind, or `None` for a tmpfs.
    pub source: Option<PathBuf>,
    /// Read-only.
    pub read_only: bool,
}

/// One RUN step for a [`StepRunner`].
#[derive(Debug)]
pub struct RunStep<'a> {
    /// The mounted root filesystem (writable; what it changes becomes the layer).
    pub rootfs: &'a Path,
    /// The process.
    pub args: Vec<String>,
    /// Its environment.
    pub env: Vec<String>,
    /// Its working directory.
    pub cwd: String,
    /// `user[:group]`, resolved against the rootfs.
    pub user: String,
    /// `default`, `none` or `host`.
    pub network: String,
    /// Extra mounts (secrets, caches, binds, tmpfs).
    pub mounts: Vec<Mount>,
    /// A scratch directory for the runner's own files (bundle, hosts, resolv.conf).
    pub scratch: &'a Path,
}

/// Why a [`StepRunner`] failed: its own error (the engine's, the image store's), kept
/// whole with its causes.
pub type RunnerError = Box<dyn std::error::Error + Send + Sync>;

/// What runs RUN steps and fetches missing base images: the engine implements it, so the
/// builder needs no dependency on the engine.
pub trait StepRunner: Sync {
    /// Runs one step to its end, sending its output (stdout and stderr) to `out`; returns
    /// the exit code.
    fn run(&self, step: &RunStep<'_>, out: &mut dyn Write) -> std::result::Result<i32, RunnerError>;
    /// Pulls `reference` into the store.
    fn pull(&self, store: &mut ImageStore, reference: &Reference) -> std::result::Result<(), RunnerError>;
}

/// What to build.
#[derive(Debug, Default)]
pub struct Options {
    /// The Dockerfile's name (for messages and history).
    pub file_name: String,
    /// Its text.
    pub dockerfile: String,
    /// The context directory.
    pub context: PathBuf,
    /// `.dockerignore`.
    pub ignore: Ignore,
    /// `--build-arg`.
    pub build_args: BTreeMap<String, String>,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// `-t`.
    pub tags: Vec<Reference>,
    /// `--target`.
    pub target: Option<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull`: fetch base images even when present.
    pub pull: bool,
    /// `--network`: `default`, `none` or `host`.
    pub network: String,
    /// `--secret`: id to content.
    pub secrets: BTreeMap<String, Vec<u8>>,
    /// Working directory for mounts and downloads (removed afterwards).
    pub scratch: PathBuf,
    /// Where RUN --mount=type=cache directories live.
    pub cache_mounts: PathBuf,
}

/// What a build made.
#[derive(Debug, Clone)]
pub struct Built {
    /// The image id (config digest).
    pub id: String,
    /// Steps run, and steps taken from the cache.
    pub steps: (usize, usize),
    /// Build arguments given but never declared.
    pub unused_args: Vec<String>,
}

/// A stage's state: its image config and layers.
#[derive(Debug, Clone)]
struct State {
    key: String,
    /// When the newest layer was made: the time every later history entry and the image
    /// get, so a rebuild from the cache makes the very same image.
    created: String,
    config: Value,
    layers: Vec<Descriptor>,
    diff_ids: Vec<Digest>,
    docker_types: bool,
}

impl State {
    fn c(&mut self) -> &mut serde_json::Map<String, Value> {
        if !self.config.is_object() {
            self.config = json!({});
        }
        let Value::Object(top) = &mut self.config else {
            unreachable!("made an object above")
        };
        let c = top.entry("config").or_insert_with(|| json!({}));
        if !c.is_object() {
            *c = json!({});
        }
        match c {
            Value::Object(m) => m,
            _ => unreachable!("made an object above"),
        }
    }

    fn get(&self, k: &str) -> &Value {
        &self.config["config"][k]
    }

    fn env(&self) -> Vec<String> {
        str_list(self.get("Env"))
    }

    fn chain(&mut self, what: &str) {
        self.key = hash(&[&self.key, what]);
    }
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    format!("{:x}", h.finalize())
}

/// A stage as written.
#[derive(Debug, Clone)]
struct Stage {
    name: Option<String>,
    from: String,
    line: usize,
    instructions: Vec<Instruction>,
}

/// Splits a word list the way Docker does for COPY/ADD/VOLUME/EXPOSE arguments: on
/// whitespace, with quotes grouping and removed.
pub fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                any = true;
            }
            None if c.is_whitespace() => {
                if !cur.is_empty() || any {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            None => cur.push(c),
        }
    }
    if !cur.is_empty() || any {
        out.push(cur);
    }
    out
}

fn env_map(env: &[String]) -> BTreeMap<String, String> {
    env.iter()
        .filter_map(|e| e.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

fn set_env(env: &mut Vec<String>, k: &str, v: &str) {
    let entry = format!("{k}={v}");
    match env.iter_mut().find(|e| e.split_once('=').map(|(n, _)| n) == Some(k)) {
        Some(e) => *e = entry,
        None => env.push(entry),
    }
}

/// Splits a Dockerfile into its global ARGs and stages.
fn stages(df: &parse::Dockerfile) -> (Vec<Instruction>, Vec<Stage>) {
    let mut global = Vec::new();
    let mut out: Vec<Stage> = Vec::new();
    for ins in &df.instructions {
        if ins.keyword == "FROM" {
            let text = ins.text();
            let parts: Vec<&str> = text.split_whitespace().collect();
            out.push(Stage {
                name: parts.get(2).map(|n| n.to_ascii_lowercase()),
                from: parts.first().map(|s| s.to_string()).unwrap_or_default(),
                line: ins.line,
                instructions: Vec::new(),
            });
        } else if let Some(s) = out.last_mut() {
            s.instructions.push(ins.clone());
        } else {
            global.push(ins.clone());
        }
    }
    (global, out)
}

/// The builder over one image store.
struct Builder<'a> {
    store: &'a mut ImageStore,
    runner: &'a dyn StepRunner,
    progress: &'a Mutex<Progress>,
    o: &'a Options,
    escape: char,
    used_args: BTreeSet<String>,
    steps: (usize, usize),
    scratch_n: usize,
    /// This builder's own scratch directory (one per stage thread).
    scratch_root: PathBuf,
}

/// Where a step stands in the build graph: the stages built so far, its own stage's index,
/// and how names resolve to stages.
struct Graph<'g> {
    states: &'g [Option<State>],
    stage: usize,
    index_of: &'g IndexOf<'g>,
}

/// What a stage's thread hands back: its state, the build args it used, its step counts.
type StageOut = (State, BTreeSet<String>, (usize, usize));

/// Finds a stage by name or index among those before a given one.
type IndexOf<'a> = dyn Fn(&str, usize) -> Option<usize> + Sync + 'a;

/// An overlay mounted for a step, unmounted and removed when dropped.
struct Mounted {
    dir: PathBuf,
    rootfs: PathBuf,
    mounted: bool,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.mounted {
            let _ = nix::mount::umount2(&self.rootfs, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Builds the Dockerfile in `o`; tags the result.
pub fn build(
    store: &mut ImageStore,
    runner: &dyn StepRunner,
    progress: &Mutex<Progress>,
    o: &Options,
) -> Result<Built> {
    let df = parse::parse(&o.file_name, &o.dockerfile)?;
    std::fs::create_dir_all(&o.scratch)
        .map_err(|e| BuildError::Other(format!("creating {}: {e}", o.scratch.display())))?;
    let mut b = Builder {
        store,
        runner,
        progress,
        o,
        escape: df.escape,
        used_args: BTreeSet::new(),
        steps: (0, 0),
        scratch_n: 0,
        scratch_root: o.scratch.join("main"),
    };
    let res = b.build_all(&df);
    let _ = std::fs::remove_dir_all(&o.scratch);
    res
}

impl Builder<'_> {
    fn err(&self, line: usize, message: impl std::fmt::Display) -> BuildError {
        BuildError::Step {
            file: self.o.file_name.clone(),
            line,
            message: message.to_string(),
        }
    }

    fn scratch(&mut self, what: &str) -> Result<PathBuf> {
        self.scratch_n += 1;
        let d = self.scratch_root.join(format!("{what}-{}", self.scratch_n));
        std::fs::create_dir_all(&d).map_err(|e| BuildError::Other(format!("creating {}: {e}", d.display())))?;
        Ok(d)
    }

    fn build_all(&mut self, df: &parse::Dockerfile) -> Result<Built> {
        let (global, stages) = stages(df);
        // Global ARGs: the values FROM lines see, and what `ARG NAME` in a stage inherits.
        let mut meta: BTreeMap<String, String> = BTreeMap::new();
        for ins in &global {
            if ins.keyword != "ARG" {
                return Err(self.err(
                    ins.line,
                    format!(
                        "{} must come after a FROM (only ARG may come before the first FROM)",
                        ins.keyword
                    ),
                ));
            }
            for w in words(&ins.text()) {
                let (name, default) = w.split_once('=').map_or((w.as_str(), None), |(n, d)| (n, Some(d)));
                let value = match self.o.build_args.get(name) {
                    Some(v) => Some(v.clone()),
                    None => default
                        .map(|d| subst::expand(d, &meta, self.escape))
                        .transpose()
                        .map_err(|e| self.err(ins.line, e.to_string()))?,
                };
                self.used_args.insert(name.to_string());
                if let Some(v) = value {
                    meta.insert(name.to_string(), v);
                }
            }
        }
        if stages.is_empty() {
            return Err(BuildError::Other(format!(
                "{}: no build stage in the Dockerfile (it needs a FROM)",
                self.o.file_name
            )));
        }
        let target = match &self.o.target {
            Some(t) => stages
                .iter()
                .position(|s| s.name.as_deref() == Some(&t.to_ascii_lowercase()))
                .ok_or_else(|| BuildError::Other(format!("target stage \"{t}\" could not be found")))?,
            None => stages.len() - 1,
        };
        // The stages the target needs (FROM an earlier stage, COPY --from, RUN --mount from=).
        let index_of = |name: &str, before: usize| -> Option<usize> {
            let l = name.to_ascii_lowercase();
            stages[..before]
                .iter()
                .position(|s| s.name.as_deref() == Some(&l))
                .or_else(|| l.parse::<usize>().ok().filter(|i| *i < before))
        };
        let mut needed = BTreeSet::from([target]);
        let mut deps_of: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        let mut todo = vec![target];
        let mut froms: Vec<String> = Vec::new();
        for s in &stages {
            froms.push(subst::expand(&s.from, &meta, self.escape).map_err(|e| self.err(s.line, e.to_string()))?);
        }
        while let Some(i) = todo.pop() {
            let mut deps = Vec::new();
            if let Some(d) = index_of(&froms[i], i) {
                deps.push(d);
            }
            for ins in &stages[i].instructions {
                let mut refs: Vec<String> = ins.flag("from").map(str::to_string).into_iter().collect();
                for (k, v) in &ins.flags {
                    if k == "mount" {
                        refs.extend(
                            v.split(',')
                                .filter_map(|kv| kv.strip_prefix("from="))
                                .map(str::to_string),
                        );
                    }
                }
                for r in refs {
                    match index_of(&r, i) {
                        Some(d) => deps.push(d),
                        None if stages
                            .iter()
                            .any(|s| s.name.as_deref() == Some(&r.to_ascii_lowercase())) =>
                        {
                            return Err(self.err(ins.line, format!("stage \"{r}\" is used before it is defined")))
                        }
                        None => {}
                    }
                }
            }
            deps_of.insert(i, deps.clone());
            for d in deps {
                if needed.insert(d) {
                    todo.push(d);
                }
            }
        }
        // Stages build in waves: every stage whose dependencies are built is ready, and the
        // ready ones build in parallel, each in a thread with its own store connection.
        let mut states: Vec<Option<State>> = vec![None; stages.len()];
        let mut left = needed.clone();
        while !left.is_empty() {
            let ready: Vec<usize> = left
                .iter()
                .copied()
                .filter(|i| deps_of.get(i).is_none_or(|d| d.iter().all(|x| states[*x].is_some())))
                .collect();
            if ready.is_empty() {
                return Err(BuildError::Other("the stages depend on each other in a circle".into()));
            }
            if let [i] = ready[..] {
                let st = self.build_stage(&stages, i, &froms[i], &meta, &states, &index_of)?;
                states[i] = Some(st);
            } else {
                let root = self.store.root().to_path_buf();
                let (runner, progress, o, escape) = (self.runner, self.progress, self.o, self.escape);
                let (stages, froms, meta, shared, index_of) = (&stages, &froms, &meta, &states, &index_of);
                let results: Vec<(usize, Result<StageOut>)> = std::thread::scope(|s| {
                    let handles: Vec<_> = ready
                        .iter()
                        .map(|&i| {
                            let root = root.clone();
                            s.spawn(move || -> Result<StageOut> {
                                let mut store = ImageStore::open(&root)?;
                                let mut b = Builder {
                                    store: &mut store,
                                    runner,
                                    progress,
                                    o,
                                    escape,
                                    used_args: BTreeSet::new(),
                                    steps: (0, 0),
                                    scratch_n: 0,
                                    scratch_root: o.scratch.join(format!("stage-{i}")),
                                };
                                let st = b.build_stage(stages, i, &froms[i], meta, shared, index_of)?;
                                Ok((st, b.used_args, b.steps))
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .zip(ready.iter().copied())
                        .map(|(h, i)| {
                            let r = h
                                .join()
                                .unwrap_or_else(|_| Err(BuildError::Other("a stage's build thread panicked".into())));
                            (i, r)
                        })
                        .collect()
                });
                for (i, r) in results {
                    let (st, used, steps) = r?;
                    states[i] = Some(st);
                    self.used_args.extend(used);
                    self.steps.0 += steps.0;
                    self.steps.1 += steps.1;
                }
            }
            for i in &ready {
                left.remove(i);
            }
        }
        let mut st = states[target]
            .take()
            .ok_or_else(|| BuildError::Other("the target stage was not built".into()))?;
        for (k, v) in &self.o.labels {
            let mut labels = st.get("Labels").as_object().cloned().unwrap_or_default();
            labels.insert(k.clone(), json!(v));
            st.c().insert("Labels".into(), Value::Object(labels));
        }
        let id = self.export(&mut st)?;
        let mut unused: Vec<String> = self
            .o
            .build_args
            .keys()
            .filter(|k| !self.used_args.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
            .cloned()
            .collect();
        unused.sort();
        Ok(Built {
            id,
            steps: self.steps,
            unused_args: unused,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn build_stage(
        &mut self,
        stages: &[Stage],
        i: usize,
        from: &str,
        meta: &BTreeMap<String, String>,
        states: &[Option<State>],
        index_of: &IndexOf<'_>,
    ) -> Result<State> {
        let stage = &stages[i];
        let label = stage.name.clone().unwrap_or_else(|| format!("stage-{i}"));
        let total = stage.instructions.len() + 1;
        let n = prog::lock(self.progress).start(&format!("[{label} 1/{total}] FROM {from}"));
        let mut st = if from.eq_ignore_ascii_case("scratch") {
            State {
                key: "scratch".into(),
                created: "1970-01-01T00:00:00Z".into(),
                config: json!({"architecture": berth_oci::Platform::host().architecture, "os": "linux", "config": {},
                    "rootfs": {"type": "layers", "diff_ids": []}, "history": []}),
                layers: Vec::new(),
                diff_ids: Vec::new(),
                docker_types: false,
            }
        } else if let Some(d) = index_of(from, i) {
            states[d]
                .clone()
                .ok_or_else(|| self.err(stage.line, format!("stage {from} was not built")))?
        } else {
            self.base(from).map_err(|e| self.err(stage.line, e))?
        };
        prog::lock(self.progress).done(n, false);
        if !st.env().iter().any(|e| e.starts_with("PATH=")) {
            let mut env = st.env();
            env.insert(0, DEFAULT_PATH.to_string());
            st.c().insert("Env".into(), json!(env));
        }
        // ONBUILD triggers of the base run first, then are cleared.
        let mut instructions = Vec::new();
        for t in str_list(st.get("OnBuild")) {
            let df = parse::parse(&format!("{} (ONBUILD of {from})", self.o.file_name), &t)?;
            instructions.extend(df.instructions.into_iter().map(|mut x| {
                x.line = stage.line;
                x
            }));
        }
        st.c().remove("OnBuild");
        instructions.extend(stage.instructions.iter().cloned());
        let mut args: BTreeMap<String, String> = BTreeMap::new();
        let total = instructions.len() + 1;
        for (k, ins) in instructions.iter().enumerate() {
            let title = format!("[{label} {}/{total}] {}", k + 2, display(ins));
            let g = Graph {
                states,
                stage: i,
                index_of,
            };
            self.step(&mut st, ins, &mut args, meta, &g, &title)?;
        }
        Ok(st)
    }

    fn base(&mut self, from: &str) -> std::result::Result<State, String> {
        let r = Reference::parse(from).map_err(|e| format!("invalid base image {from:?}: {e}"))?;
        let have = self.store.resolve(from).ok();
        let img = match (have, self.o.pull) {
            (Some(img), false) => img,
            _ => {
                self.runner.pull(self.store, &r).map_err(|e| e.to_string())?;
                self.store.resolve(from).map_err(|e| e.to_string())?
            }
        };
        let manifest = self.store.manifest(&img).map_err(|e| e.to_string())?;
        let config: Value = serde_json::from_slice(&self.store.config_bytes(&img).map_err(|e| e.to_string())?)
            .map_err(|e| format!("image config of {from}: {e}"))?;
        let diff_ids: Vec<Digest> = str_list(&config["rootfs"]["diff_ids"])
            .iter()
            .map(|d| d.parse().map_err(|e| format!("image config of {from}: {e}")))
            .collect::<std::result::Result<_, _>>()?;
        Ok(State {
            key: format!("from {}", img.row.id),
            created: config["created"].as_str().unwrap_or("1970-01-01T00:00:00Z").to_string(),
            config,
            layers: manifest.layers.clone(),
            diff_ids,
            docker_types: manifest.media_type.as_deref() == Some(model::DOCKER_MANIFEST),
        })
    }

    fn vars(&self, st: &State, args: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut v = args.clone();
        v.extend(env_map(&st.env()));
        v
    }

    fn expand(&self, st: &State, args: &BTreeMap<String, String>, s: &str, line: usize) -> Result<String> {
        subst::expand(s, &self.vars(st, args), self.escape).map_err(|e| self.err(line, e.to_string()))
    }

    fn history(&self, st: &mut State, created_by: String, empty: bool) {
        let mut h = json!({"created": st.created, "created_by": created_by, "comment": "buildkit.dockerfile.v0"});
        if empty {
            h["empty_layer"] = json!(true);
        }
        match st.config["history"].as_array_mut() {
            Some(a) => a.push(h),
            None => st.config["history"] = json!([h]),
        }
    }

    fn shell(&self, st: &State) -> Vec<String> {
        let s = str_list(st.get("Shell"));
        if s.is_empty() {
            vec!["/bin/sh".into(), "-c".into()]
        } else {
            s
        }
    }

    fn resolve_dest(&self, st: &State, dest: &str) -> String {
        if dest.starts_with('/') {
            return dest.to_string();
        }
        let wd = st.get("WorkingDir").as_str().unwrap_or("").to_string();
        let base = if wd.is_empty() { "/".to_string() } else { wd };
        let mut joined = format!("{}/{}", base.trim_end_matches('/'), dest);
        if dest.ends_with('/') || dest == "." {
            joined.push('/');
        }
        joined
    }

    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        st: &mut State,
        ins: &Instruction,
        args: &mut BTreeMap<String, String>,
        meta: &BTreeMap<String, String>,
        g: &Graph<'_>,
        title: &str,
    ) -> Result<()> {
        let line = ins.line;
        let kw = ins.keyword.as_str();
        let text = ins.text();
        match kw {
            "RUN" | "COPY" | "ADD" => {}
            "WORKDIR" => {}
            _ => {
                let n = prog::lock(self.progress).start(title);
                prog::lock(self.progress).done(n, false);
            }
        }
        match kw {
            "ENV" => {
                let expanded = self.expand(st, args, &text, line)?;
                let kvs = parse::key_values(&expanded, self.escape).map_err(|(_, m)| self.err(line, m))?;
                let mut env = st.env();
                for (k, v) in &kvs {
                    set_env(&mut env, k, v);
                }
                st.c().insert("Env".into(), json!(env));
                let shown: Vec<String> = kvs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                st.chain(&format!("ENV {}", shown.join(" ")));
                self.history(st, format!("ENV {}", shown.join(" ")), true);
            }
            "ARG" => {
                for w in words(&text) {
                    let (name, default) = w.split_once('=').map_or((w.as_str(), None), |(n, d)| (n, Some(d)));
                    self.used_args.insert(name.to_string());
                    let value = match self.o.build_args.get(name) {
                        Some(v) => Some(v.clone()),
                        None => match default {
                            Some(d) => Some(self.expand(st, args, d, line)?),
                            None => meta.get(name).cloned(),
                        },
                    };
                    match value {
                        Some(v) => {
                            st.chain(&format!("ARG {name}={v}"));
                            args.insert(name.to_string(), v);
                        }
                        None => {
                            args.remove(name);
                            st.chain(&format!("ARG {name}"));
                        }
                    }
                }
                self.history(st, format!("ARG {text}"), true);
            }
            "LABEL" => {
                let expanded = self.expand(st, args, &text, line)?;
                let kvs = parse::key_values(&expanded, self.escape).map_err(|(_, m)| self.err(line, m))?;
                let mut labels = st.get("Labels").as_object().cloned().unwrap_or_default();
                for (k, v) in &kvs {
                    labels.insert(k.clone(), json!(v));
                }
                st.c().insert("Labels".into(), Value::Object(labels));
                let shown: Vec<String> = kvs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                self.history(st, format!("LABEL {}", shown.join(" ")), true);
            }
            "MAINTAINER" => {
                st.config["author"] = json!(text);
                self.history(st, format!("MAINTAINER {text}"), true);
            }
            "EXPOSE" => {
                let expanded = self.expand(st, args, &text, line)?;
                let mut ports = st.get("ExposedPorts").as_object().cloned().unwrap_or_default();
                for p in words(&expanded) {
                    let (num, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                    let proto = proto.to_ascii_lowercase();
                    let ok = |x: &str| x.parse::<u16>().is_ok_and(|v| v > 0);
                    let range_ok = match num.split_once('-') {
                        Some((a, b)) => ok(a) && ok(b),
                        None => ok(num),
                    };
                    if !range_ok || !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
                        return Err(self.err(line, format!("invalid containerPort: {p}")));
                    }
                    ports.insert(format!("{num}/{proto}"), json!({}));
                }
                st.c().insert("ExposedPorts".into(), Value::Object(ports));
                self.history(st, format!("EXPOSE map[{}]", expanded), true);
            }
            "VOLUME" => {
                let list = match &ins.args {
                    Args::Exec(v) => v
                        .iter()
                        .map(|x| self.expand(st, args, x, line))
                        .collect::<Result<Vec<_>>>()?,
                    Args::Shell(s) => words(&self.expand(st, args, s, line)?),
                };
                let mut vols = st.get("Volumes").as_object().cloned().unwrap_or_default();
                for v in list {
                    if v.trim().is_empty() {
                        return Err(self.err(line, "VOLUME specified can not be an empty string"));
                    }
                    vols.insert(v, json!({}));
                }
                st.c().insert("Volumes".into(), Value::Object(vols));
                self.history(st, format!("VOLUME [{text}]"), true);
            }
            "USER" => {
                let u = self.expand(st, args, &text, line)?;
                st.c().insert("User".into(), json!(u));
                st.chain(&format!("USER {u}"));
                self.history(st, format!("USER {u}"), true);
            }
            "STOPSIGNAL" => {
                let s = self.expand(st, args, &text, line)?;
                st.c().insert("StopSignal".into(), json!(s));
                self.history(st, format!("STOPSIGNAL {s}"), true);
            }
            "SHELL" => {
                if let Args::Exec(v) = &ins.args {
                    st.c().insert("Shell".into(), json!(v));
                    st.chain(&format!("SHELL {v:?}"));
                }
                self.history(st, format!("SHELL {text}"), true);
            }
            "CMD" | "ENTRYPOINT" => {
                let v = match &ins.args {
                    Args::Exec(v) => v.clone(),
                    Args::Shell(s) => {
                        let mut sh = self.shell(st);
                        sh.push(s.clone());
                        sh
                    }
                };
                if kw == "ENTRYPOINT" {
                    st.c().insert("Entrypoint".into(), json!(v));
                    // An ENTRYPOINT resets a CMD that came from the base image.
                    if !st.config["config"].get("__cmd_set").is_some_and(|x| x == &json!(true)) {
                        st.c().insert("Cmd".into(), Value::Null);
                    }
                } else {
                    st.c().insert("Cmd".into(), json!(v));
                    st.c().insert("__cmd_set".into(), json!(true));
                }
                self.history(
                    st,
                    format!("{kw} {}", serde_json::to_string(&v).unwrap_or_default()),
                    true,
                );
            }
            "HEALTHCHECK" => {
                let first = text.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
                let hc = if first == "NONE" {
                    json!({"Test": ["NONE"]})
                } else {
                    let test = match &ins.args {
                        Args::Exec(v) => {
                            let mut t = vec!["CMD".to_string()];
                            t.extend(v.iter().cloned());
                            t
                        }
                        Args::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
                    };
                    let mut hc = json!({"Test": test});
                    for (flag, field) in [
                        ("interval", "Interval"),
                        ("timeout", "Timeout"),
                        ("start-period", "StartPeriod"),
                        ("start-interval", "StartInterval"),
                    ] {
                        if let Some(v) = ins.flag(flag) {
                            let d = berth_oci::time::parse_go_duration(v)
                                .ok_or_else(|| self.err(line, format!("--{flag}: invalid duration {v:?}")))?;
                            hc[field] = json!(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
                        }
                    }
                    if let Some(r) = ins.flag("retries") {
                        let n: i64 = r
                            .parse()
                            .map_err(|_| self.err(line, format!("--retries: invalid number {r:?}")))?;
                        hc["Retries"] = json!(n);
                    }
                    hc
                };
                st.c().insert("Healthcheck".into(), hc);
                self.history(st, format!("HEALTHCHECK {text}"), true);
            }
            "ONBUILD" => {
                let mut list = str_list(st.get("OnBuild"));
                let expanded = self.expand(st, args, &text, line)?;
                list.push(expanded);
                st.c().insert("OnBuild".into(), json!(list));
                self.history(st, format!("ONBUILD {text}"), true);
            }
            "WORKDIR" => {
                let w = self.expand(st, args, &text, line)?;
                let wd = if w.starts_with('/') {
                    w.clone()
                } else {
                    let cur = st.get("WorkingDir").as_str().unwrap_or("/").to_string();
                    format!("{}/{}", cur.trim_end_matches('/'), w)
                };
                let wd = format!("/{}", clean(&wd));
                st.c().insert("WorkingDir".into(), json!(wd));
                st.chain(&format!("WORKDIR {wd}"));
                // The directory is made in a layer only when it is missing.
                let exists =
                    self.with_rootfs_ro(st, |root| Ok(Dest::open(root).map(|d| d.is_dir(&wd)).unwrap_or(false)))?;
                if exists {
                    let n = prog::lock(self.progress).start(title);
                    prog::lock(self.progress).done(n, false);
                    self.history(st, format!("WORKDIR {wd}"), true);
                } else {
                    let key = hash(&[&st.key, "mkdir"]);
                    let user = st.get("User").as_str().unwrap_or("").to_string();
                    self.layer_step(st, key, format!("WORKDIR {wd}"), title, line, |_, root, _| {
                        let d = Dest::open(root)?;
                        let owner = if user.is_empty() {
                            None
                        } else {
                            copy::resolve_owner(&d, &user).ok()
                        };
                        Ok(d.mkdir_all(&wd, owner)?)
                    })?;
                }
            }
            "RUN" => self.run(st, ins, args, g, title)?,
            "COPY" | "ADD" => self.copy(st, ins, args, g, title)?,
            other => return Err(self.err(line, format!("unknown instruction: {other}"))),
        }
        Ok(())
    }

    /// Mounts a state's layers read-only somewhere and calls `f` with the path.
    fn with_rootfs_ro<T>(&mut self, st: &State, f: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
        let dir = self.scratch("ro")?;
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(&rootfs)
            .map_err(|e| BuildError::Other(format!("creating {}: {e}", rootfs.display())))?;
        let mut m = Mounted {
            dir,
            rootfs: rootfs.clone(),
            mounted: false,
        };
        let lowers = self.lowers(st)?;
        if !lowers.is_empty() {
            berth_image::snapshot::mount_overlay(&rootfs, &lowers, None)?;
            m.mounted = true;
        }
        let r = f(&rootfs);
        drop(m);
        r
    }

    fn lowers(&self, st: &State) -> Result<Vec<PathBuf>> {
        let chains = model::chain_ids(&st.diff_ids);
        Ok(chains.iter().rev().map(|c| self.store.snapshots.path(c)).collect())
    }

    /// A filesystem step: reuse the cached layer for `key`, or mount the state writable, run
    /// `apply`, and record the upper directory as a new layer.
    fn layer_step(
        &mut self,
        st: &mut State,
        key: String,
        created_by: String,
        title: &str,
        line: usize,
        apply: impl FnOnce(&mut Self, &Path, usize) -> std::result::Result<(), StepError>,
    ) -> Result<()> {
        let n = prog::lock(self.progress).start(title);
        let started = Instant::now();
        if !self.o.no_cache {
            if let Some((layer, diff_id, created)) = self.cached(&key)? {
                prog::lock(self.progress).done(n, true);
                self.steps.1 += 1;
                st.created = created;
                st.layers.push(layer);
                st.diff_ids.push(diff_id);
                st.key = key;
                self.history(st, created_by, false);
                return Ok(());
            }
        }
        self.steps.0 += 1;
        let dir = self.scratch("step")?;
        let (upper, work, rootfs) = (dir.join("upper"), dir.join("work"), dir.join("rootfs"));
        for d in [&upper, &work, &rootfs] {
            std::fs::create_dir_all(d).map_err(|e| BuildError::Other(format!("creating {}: {e}", d.display())))?;
        }
        let mut lowers = self.lowers(st)?;
        if lowers.is_empty() {
            let empty = dir.join("empty");
            std::fs::create_dir_all(&empty)
                .map_err(|e| BuildError::Other(format!("creating {}: {e}", empty.display())))?;
            lowers.push(empty);
        }
        let mut m = Mounted {
            dir: dir.clone(),
            rootfs: rootfs.clone(),
            mounted: false,
        };
        berth_image::snapshot::mount_overlay(&rootfs, &lowers, Some((&upper, &work)))?;
        m.mounted = true;
        let applied = apply(self, &rootfs, n);
        let _ = nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH);
        m.mounted = false;
        if let Err(e) = applied {
            prog::lock(self.progress).fail(n, &e.to_string());
            return Err(self.err(line, e));
        }
        let tmp = dir.join("layer.tar");
        let (diff_id, size) = {
            let mut f = std::fs::File::create(&tmp)
                .map_err(|e| BuildError::Other(format!("creating {}: {e}", tmp.display())))?;
            berth_image::diff::diff(&upper, &mut f)?
        };
        let mut f =
            std::fs::File::open(&tmp).map_err(|e| BuildError::Other(format!("opening {}: {e}", tmp.display())))?;
        let (digest, _) = self.store.content.put_stream(&mut f)?;
        drop(m);
        let layer = Descriptor::new(
            if st.docker_types {
                model::DOCKER_LAYER
            } else {
                model::OCI_LAYER
            },
            digest.clone(),
            size,
        );
        let mut ids = st.diff_ids.clone();
        ids.push(diff_id.clone());
        let chains = model::chain_ids(&ids);
        let chain = chains
            .last()
            .cloned()
            .ok_or_else(|| BuildError::Other("no chain id".into()))?;
        let parent = chains.len().checked_sub(2).map(|p| chains[p].clone());
        self.store.unpack_layer(&layer, &diff_id, &chain, parent.as_ref())?;
        st.created = berth_image::store::now();
        let result = json!({"layer": layer, "diff_id": diff_id.to_string(), "created": st.created});
        self.store
            .cache_put(&key, &result.to_string(), &[digest.to_string(), chain.to_string()])?;
        st.layers.push(layer);
        st.diff_ids.push(diff_id);
        st.key = key;
        self.history(st, created_by, false);
        prog::lock(self.progress).done_in(n, started.elapsed());
        Ok(())
    }

    fn cached(&self, key: &str) -> Result<Option<(Descriptor, Digest, String)>> {
        let Some(r) = self.store.db.cache_get(key)? else {
            return Ok(None);
        };
        let v: Value = serde_json::from_str(&r).map_err(|e| BuildError::Other(format!("build cache entry: {e}")))?;
        let layer: Descriptor = serde_json::from_value(v["layer"].clone())
            .map_err(|e| BuildError::Other(format!("build cache entry: {e}")))?;
        let diff_id: Digest = v["diff_id"]
            .as_str()
            .unwrap_or("")
            .parse()
            .map_err(|e| BuildError::Other(format!("build cache entry: {e}")))?;
        let created = v["created"].as_str().unwrap_or("1970-01-01T00:00:00Z").to_string();
        Ok(self
            .store
            .content
            .has(&layer.digest)
            .then_some((layer, diff_id, created)))
    }

    fn run(
        &mut self,
        st: &mut State,
        ins: &Instruction,
        args: &BTreeMap<String, String>,
        g: &Graph<'_>,
        title: &str,
    ) -> Result<()> {
        let line = ins.line;
        let shell = self.shell(st);
        let argv = match &ins.args {
            Args::Exec(v) => v.clone(),
            Args::Shell(s) => {
                let mut script = s.clone();
                if let Some(h) = ins.heredocs.first() {
                    let marker_only = s
                        .trim()
                        .trim_start_matches("<<-")
                        .trim_start_matches("<<")
                        .trim_matches(['"', '\''])
                        == h.name;
                    if marker_only && ins.heredocs.len() == 1 {
                        script = h.content.clone();
                    } else {
                        // The shell reads the heredocs itself.
                        script.push('\n');
                        for h in &ins.heredocs {
                            script.push_str(&h.content);
                            script.push_str(&h.name);
                            script.push('\n');
                        }
                    }
                }
                let mut v = shell.clone();
                v.push(script);
                v
            }
        };
        let mut env = st.env();
        let mut declared: Vec<String> = Vec::new();
        for (k, v) in args {
            if !env
                .iter()
                .any(|e| e.split_once('=').map(|(n, _)| n) == Some(k.as_str()))
            {
                env.push(format!("{k}={v}"));
            }
            declared.push(format!("{k}={v}"));
        }
        for p in PROXY_ARGS {
            if let Some(v) = self.o.build_args.get(p) {
                if !args.contains_key(p) {
                    env.push(format!("{p}={v}"));
                }
            }
        }
        let network = ins
            .flag("network")
            .unwrap_or(if self.o.network.is_empty() {
                "default"
            } else {
                &self.o.network
            })
            .to_string();
        if !["default", "none", "host"].contains(&network.as_str()) {
            return Err(self.err(
                line,
                format!("unsupported network mode {network:?} (default, none or host)"),
            ));
        }
        // Mounts: what they are goes into the key; a secret's content never does.
        let mut mounts: Vec<(String, BTreeMap<String, String>)> = Vec::new();
        for (k, v) in &ins.flags {
            if k != "mount" {
                continue;
            }
            let mut m: BTreeMap<String, String> = BTreeMap::new();
            for kv in v.split(',') {
                let (a, b) = kv.split_once('=').unwrap_or((kv, "true"));
                m.insert(a.trim().to_ascii_lowercase(), b.trim().to_string());
            }
            let ty = m.get("type").cloned().unwrap_or_else(|| "bind".into());
            mounts.push((ty, m));
        }
        let user = st.get("User").as_str().unwrap_or("").to_string();
        let cwd = st
            .get("WorkingDir")
            .as_str()
            .filter(|w| !w.is_empty())
            .unwrap_or("/")
            .to_string();
        let mount_desc: Vec<String> = mounts
            .iter()
            .map(|(t, m)| {
                let keep: Vec<String> = m.iter().map(|(a, b)| format!("{a}={b}")).collect();
                format!("{t}:{}", keep.join(","))
            })
            .collect();
        let key = hash(&[
            &st.key,
            "RUN",
            &serde_json::to_string(&argv).unwrap_or_default(),
            &env.join("\n"),
            &user,
            &cwd,
            &network,
            &mount_desc.join(";"),
        ]);
        // BuildKit's history shape: `RUN |N A=1 B=2 /bin/sh -c ...` (declared build args only).
        let prefix = if declared.is_empty() {
            String::new()
        } else {
            format!("|{} {} ", declared.len(), declared.join(" "))
        };
        let created_by = format!("RUN {prefix}{} # buildkit", argv.join(" "));
        let secrets = self.o.secrets.clone();
        let cache_root = self.o.cache_mounts.clone();
        let context = self.o.context.clone();
        let mut sources: Vec<(usize, State)> = Vec::new();
        for (i, (_, m)) in mounts.iter().enumerate() {
            if let Some(f) = m.get("from") {
                let d = (g.index_of)(f, g.stage)
                    .ok_or_else(|| self.err(line, format!("--mount from={f}: no such stage")))?;
                let s = g.states[d]
                    .clone()
                    .ok_or_else(|| self.err(line, format!("stage {f} was not built")))?;
                sources.push((i, s));
            }
        }
        self.layer_step(st, key, created_by, title, line, |b, rootfs, n| {
            let scratch = b.scratch("run").map_err(|e| e.to_string())?;
            let mut guards: Vec<Mounted> = Vec::new();
            let mut out_mounts = Vec::new();
            for (i, (ty, m)) in mounts.iter().enumerate() {
                let target = m
                    .get("target")
                    .or_else(|| m.get("dst"))
                    .or_else(|| m.get("destination"))
                    .cloned();
                match ty.as_str() {
                    "secret" => {
                        let id = m
                            .get("id")
                            .cloned()
                            .or_else(|| target.as_ref().map(|t| t.rsplit('/').next().unwrap_or("").to_string()))
                            .unwrap_or_default();
                        let Some(data) = secrets.get(&id) else {
                            if m.get("required").is_some_and(|r| r == "true") {
                                return Err(
                                    format!("secret {id} not found (give it with --secret id={id},src=FILE)").into(),
                                );
                            }
                            continue;
                        };
                        let file = scratch.join(format!("secret-{i}"));
                        {
                            use std::os::unix::fs::OpenOptionsExt;
                            let mut f = std::fs::OpenOptions::new()
                                .write(true)
                                .create_new(true)
                                .mode(0o400)
                                .open(&file)
                                .map_err(|e| format!("secret {id}: {e}"))?;
                            f.write_all(data).map_err(|e| format!("secret {id}: {e}"))?;
                        }
                        out_mounts.push(Mount {
                            destination: target.unwrap_or_else(|| format!("/run/secrets/{id}")),
                            source: Some(file),
                            read_only: true,
                        });
                    }
                    "cache" => {
                        let target = target.ok_or("--mount=type=cache needs a target")?;
                        let id = m.get("id").cloned().unwrap_or_else(|| target.clone());
                        let dir = cache_root.join(hash(&[&id]));
                        std::fs::create_dir_all(&dir).map_err(|e| format!("cache mount {id}: {e}"))?;
                        out_mounts.push(Mount {
                            destination: target,
                            source: Some(dir),
                            read_only: false,
                        });
                    }
                    "tmpfs" => {
                        let target = target.ok_or("--mount=type=tmpfs needs a target")?;
                        out_mounts.push(Mount {
                            destination: target,
                            source: None,
                            read_only: false,
                        });
                    }
                    "bind" => {
                        let target = target.ok_or("--mount=type=bind needs a target")?;
                        let src = m.get("source").or_else(|| m.get("src")).cloned().unwrap_or_default();
                        let root = match sources.iter().find(|(j, _)| *j == i) {
                            Some((_, s)) => {
                                let dir = b.scratch("bind").map_err(|e| e.to_string())?;
                                let r = dir.join("rootfs");
                                std::fs::create_dir_all(&r).map_err(|e| e.to_string())?;
                                let lowers = b.lowers(s).map_err(|e| e.to_string())?;
                                let mut g = Mounted {
                                    dir,
                                    rootfs: r.clone(),
                                    mounted: false,
                                };
                                if !lowers.is_empty() {
                                    berth_image::snapshot::mount_overlay(&r, &lowers, None)
                                        .map_err(|e| e.to_string())?;
                                    g.mounted = true;
                                }
                                guards.push(g);
                                r
                            }
                            None => context.clone(),
                        };
                        // Resolved inside its root, then bound through the descriptor's path.
                        let rootfd = berth_safepath::open_root(&root).map_err(|e| e.to_string())?;
                        let fd = berth_safepath::resolve(std::os::fd::AsFd::as_fd(&rootfd), Path::new(&src), false)
                            .map_err(|e| format!("--mount source {src:?}: {e}"))?;
                        let real = std::fs::read_link(berth_safepath::proc_fd_path(std::os::fd::AsFd::as_fd(&fd)))
                            .map_err(|e| e.to_string())?;
                        let rw = m.get("rw").or_else(|| m.get("readwrite")).is_some_and(|v| v == "true");
                        out_mounts.push(Mount {
                            destination: target,
                            source: Some(real),
                            read_only: !rw,
                        });
                    }
                    other => return Err(format!("unsupported mount type {other:?}").into()),
                }
            }
            let step = RunStep {
                rootfs,
                args: argv.clone(),
                env: env.clone(),
                cwd: cwd.clone(),
                user: user.clone(),
                network: network.clone(),
                mounts: out_mounts.clone(),
                scratch: &scratch,
            };
            // Mount points the runtime makes for this step (and that were not there) are
            // taken out again, so they never reach the layer.
            let mut points: Vec<String> = vec![
                "/proc".into(),
                "/dev".into(),
                "/sys".into(),
                "/etc/hosts".into(),
                "/etc/resolv.conf".into(),
                "/etc/hostname".into(),
            ];
            points.extend(out_mounts.iter().map(|m| m.destination.clone()));
            let dest = Dest::open(rootfs)?;
            let missing: Vec<Vec<String>> = points.iter().map(|p| missing_chain(&dest, p)).collect();
            let code = {
                let mut sink = Progress::sink(b.progress, n);
                b.runner.run(&step, &mut sink)?
            };
            for chain in missing.iter().rev() {
                for p in chain.iter().rev() {
                    remove_point(rootfs, p);
                }
            }
            drop(guards);
            let _ = std::fs::remove_dir_all(&scratch);
            if code != 0 {
                return Err(format!(
                    "process \"{}\" did not complete successfully: exit code: {code}",
                    argv.join(" ")
                )
                .into());
            }
            Ok(())
        })
    }

    fn copy(
        &mut self,
        st: &mut State,
        ins: &Instruction,
        args: &BTreeMap<String, String>,
        g: &Graph<'_>,
        title: &str,
    ) -> Result<()> {
        let line = ins.line;
        let kw = ins.keyword.as_str();
        let mut list = match &ins.args {
            Args::Exec(v) => v
                .iter()
                .map(|x| self.expand(st, args, x, line))
                .collect::<Result<Vec<_>>>()?,
            Args::Shell(s) => words(&self.expand(st, args, s, line)?),
        };
        if ins.flag("parents").is_some() {
            return Err(self.err(line, format!("{kw} --parents is not supported by berth's builder")));
        }
        let dest_raw = list
            .pop()
            .ok_or_else(|| self.err(line, format!("{kw} requires at least two arguments")))?;
        let dest = self.resolve_dest(st, &dest_raw);
        let chown = ins.flag("chown").map(|c| self.expand(st, args, c, line)).transpose()?;
        let chmod = ins
            .flag("chmod")
            .map(copy::parse_chmod)
            .transpose()
            .map_err(|e| self.err(line, e))?;
        let from = ins.flag("from").map(|f| self.expand(st, args, f, line)).transpose()?;
        // Heredocs become files named after their terminator.
        let mut inline: Vec<(String, Vec<u8>)> = Vec::new();
        let mut sources: Vec<String> = Vec::new();
        for s in list {
            if let Some(name) = s.strip_prefix("<<") {
                let name = name.trim_start_matches('-').trim_matches(['"', '\'']);
                let h = ins
                    .heredocs
                    .iter()
                    .find(|h| h.name == name)
                    .ok_or_else(|| self.err(line, format!("heredoc {name} has no body")))?;
                let body = if h.quoted {
                    h.content.clone()
                } else {
                    self.expand(st, args, &h.content, line)?
                };
                inline.push((h.name.clone(), body.into_bytes()));
            } else {
                sources.push(s);
            }
        }
        let mut urls: Vec<String> = Vec::new();
        if kw == "ADD" {
            sources.retain(|s| {
                let url = s.starts_with("http://") || s.starts_with("https://");
                if url {
                    urls.push(s.clone());
                }
                !url
            });
            if !urls.is_empty() && (urls.len() + sources.len() + inline.len()) > 1 && !dest.ends_with('/') {
                return Err(self.err(line, "When using ADD with more than one source file, the destination must be a directory and end with a /"));
            }
        } else if let Some(c) = ins.flag("checksum") {
            return Err(self.err(line, format!("--checksum={c} is only for ADD")));
        }
        let mut ignore = if from.is_some() {
            Ignore::default()
        } else {
            self.o.ignore.clone()
        };
        if let Some(ex) = ins.flag("exclude") {
            let mut text = String::new();
            for (k, v) in &ins.flags {
                if k == "exclude" {
                    text.push_str(v);
                    text.push('\n');
                }
            }
            let extra = Ignore::parse(&text).map_err(|e| self.err(line, format!("--exclude={ex}: {e}")))?;
            ignore = ignore.merged(&extra);
        }
        // Where sources come from: the context, or another stage's or an image's files.
        let from_state = match &from {
            None => None,
            Some(f) => match (g.index_of)(f, g.stage) {
                Some(d) => Some(
                    g.states[d]
                        .clone()
                        .ok_or_else(|| self.err(line, format!("stage {f} was not built")))?,
                ),
                None => Some(self.base(f).map_err(|e| self.err(line, format!("--from={f}: {e}")))?),
            },
        };
        let mut _src_guard: Option<Mounted> = None;
        let src_root: PathBuf = match &from_state {
            None => self.o.context.clone(),
            Some(s) => {
                let dir = self.scratch("from")?;
                let r = dir.join("rootfs");
                std::fs::create_dir_all(&r).map_err(|e| BuildError::Other(e.to_string()))?;
                let lowers = self.lowers(s)?;
                let mut g = Mounted {
                    dir,
                    rootfs: r.clone(),
                    mounted: false,
                };
                if !lowers.is_empty() {
                    berth_image::snapshot::mount_overlay(&r, &lowers, None)?;
                    g.mounted = true;
                }
                _src_guard = Some(g);
                r
            }
        };
        let collected =
            copy::collect(&src_root, &sources, &ignore).map_err(|e| self.err(line, format!("{kw} failed: {e}")))?;
        let sum = copy::checksum(&src_root, &collected).map_err(|e| self.err(line, e))?;
        // Remote sources are fetched first: their content is part of the key.
        let mut fetched: Vec<(String, PathBuf)> = Vec::new();
        for u in &urls {
            let dir = self.scratch("url")?;
            let file = dir.join("download");
            fetch(u, &file, ins.flag("checksum")).map_err(|e| self.err(line, e))?;
            let name = u
                .split(['?', '#'])
                .next()
                .unwrap_or(u)
                .rsplit('/')
                .next()
                .filter(|n| !n.is_empty())
                .unwrap_or("index.html")
                .to_string();
            fetched.push((name, file));
        }
        let mut fetched_sums = Vec::new();
        for (n, f) in &fetched {
            fetched_sums.push(format!("{n}:{}", file_sha(f).map_err(|e| self.err(line, e))?));
        }
        let inline_sums: Vec<String> = inline
            .iter()
            .map(|(n, b)| format!("{n}:{}", hash(&[&String::from_utf8_lossy(b)])))
            .collect();
        let flags: Vec<String> = ins.flags.iter().map(|(k, v)| format!("--{k}={v}")).collect();
        let key = hash(&[
            &st.key,
            kw,
            &flags.join(" "),
            &sources.join(" "),
            &dest,
            &sum,
            &fetched_sums.join(" "),
            &inline_sums.join(" "),
        ]);
        let created_by = format!(
            "{kw} {}{} {} # buildkit",
            flags.iter().map(|f| format!("{f} ")).collect::<String>(),
            inline
                .iter()
                .map(|(n, _)| format!("<<{n}"))
                .chain(sources.iter().cloned())
                .chain(urls.iter().cloned())
                .collect::<Vec<_>>()
                .join(" "),
            dest_raw
        );
        let is_add = kw == "ADD";
        let from_context = from.is_none();
        self.layer_step(st, key, created_by, title, line, |_, rootfs, _| {
            let out = Dest::open(rootfs)?;
            let owner = match &chown {
                Some(c) => Some(copy::resolve_owner(&out, c)?),
                None if from_context => Some((0, 0)),
                None => None,
            };
            let meta = Meta { owner, mode: chmod };
            let own = owner.unwrap_or((0, 0));
            let total = collected.len() + inline.len() + fetched.len();
            let dir_dest = dest.ends_with('/') || total > 1;
            if dir_dest {
                out.mkdir_all(&dest, owner)?;
            }
            let target_of = |name: &str| {
                if dir_dest || out.is_dir(&dest) {
                    format!("{}/{name}", dest.trim_end_matches('/'))
                } else {
                    dest.clone()
                }
            };
            for (name, body) in &inline {
                out.write_file(&target_of(name), &mut &body[..], chmod.unwrap_or(0o644), own, None)?;
            }
            for (name, file) in &fetched {
                let mut f = std::fs::File::open(file).map_err(|e| format!("reading {name}: {e}"))?;
                out.write_file(&target_of(name), &mut f, chmod.unwrap_or(0o600), own, None)?;
            }
            if is_add {
                // Local archives are unpacked into the destination; other files copied.
                let mut plain = Vec::new();
                for s in &collected {
                    if !s.is_dir {
                        if let Some(mut r) = archive_reader(&src_root, &s.rel)? {
                            out.mkdir_all(&dest, owner)?;
                            copy::extract(&mut r, &out, &dest, chown.as_ref().map(|_| own))?;
                            continue;
                        }
                    }
                    plain.push(s.clone());
                }
                if !plain.is_empty() {
                    copy::copy(&src_root, &plain, &out, &dest, meta)?;
                }
                Ok(())
            } else {
                Ok(copy::copy(&src_root, &collected, &out, &dest, meta)?)
            }
        })?;
        Ok(())
    }

    /// Writes the final image: config, manifest, tags.
    fn export(&mut self, st: &mut State) -> Result<String> {
        let n = prog::lock(self.progress).start("exporting to image");
        st.c().remove("__cmd_set");
        st.config["created"] = json!(st.created);
        st.config["rootfs"] =
            json!({"type": "layers", "diff_ids": st.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()});
        let cfg_bytes = serde_json::to_vec(&st.config).map_err(|e| BuildError::Other(e.to_string()))?;
        let img = self
            .store
            .add_local_image(&cfg_bytes, &st.layers, st.docker_types, &self.o.tags)?;
        prog::lock(self.progress).line(n, &format!("writing image {}", img.row.id));
        for t in &self.o.tags {
            prog::lock(self.progress).line(n, &format!("naming to {t}"));
        }
        prog::lock(self.progress).done(n, false);
        Ok(img.row.id)
    }
}

/// The components of `path` that do not exist yet (outermost first).
fn missing_chain(dest: &Dest, path: &str) -> Vec<String> {
    let c = clean(path);
    let mut out = Vec::new();
    let mut sofar = String::new();
    for comp in c.split('/').filter(|s| !s.is_empty()) {
        sofar = if sofar.is_empty() {
            comp.to_string()
        } else {
            format!("{sofar}/{comp}")
        };
        if !out.is_empty() || !dest.exists(&sofar) {
            out.push(sofar.clone());
        }
    }
    out
}

/// Removes a mount point the runtime made (an empty file or an empty directory), confined to
/// the rootfs.
fn remove_point(rootfs: &Path, rel: &str) {
    let Ok(root) = berth_safepath::open_root(rootfs) else {
        return;
    };
    let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    let Ok(pfd) = berth_safepath::open(
        std::os::fd::AsFd::as_fd(&root),
        Path::new(dir),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
    ) else {
        return;
    };
    let is_dir = nix::sys::stat::fstatat(&pfd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
        .unwrap_or(false);
    if is_dir {
        // Only when empty: what the step itself wrote there stays.
        let _ = nix::unistd::unlinkat(&pfd, name, nix::unistd::UnlinkatFlags::RemoveDir);
    } else if let Ok(st) = nix::sys::stat::fstatat(&pfd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        if st.st_size == 0 {
            let _ = nix::unistd::unlinkat(&pfd, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
        }
    }
}

/// The instruction as the progress shows it.
fn display(ins: &Instruction) -> String {
    let flags: String = ins
        .flags
        .iter()
        .map(|(k, v)| {
            if v.is_empty() {
                format!("--{k} ")
            } else {
                format!("--{k}={v} ")
            }
        })
        .collect();
    let args = match &ins.args {
        Args::Exec(v) => serde_json::to_string(v).unwrap_or_default(),
        Args::Shell(s) => s.clone(),
    };
    let mut t = format!("{} {flags}{args}", ins.keyword);
    if let Some(h) = ins.heredocs.first() {
        let first = h.content.lines().next().unwrap_or("");
        t = format!("{t} ({first}...)");
    }
    t
}

fn file_sha(p: &Path) -> std::result::Result<String, String> {
    let mut f = std::fs::File::open(p).map_err(|e| format!("reading {}: {e}", p.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| format!("reading {}: {e}", p.display()))?;
    Ok(format!("sha256:{:x}", h.finalize()))
}

/// Downloads `url` to `file`, checking `--checksum` when given.
fn fetch(url: &str, file: &Path, checksum: Option<&str>) -> std::result::Result<(), String> {
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(300))
        .build()
        .map_err(|e| format!("ADD {url}: {e}"))?;
    let mut resp = client.get(url).send().map_err(|e| format!("ADD {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("ADD {url}: invalid response status {}", resp.status()));
    }
    let mut f = std::fs::File::create(file).map_err(|e| format!("ADD {url}: {e}"))?;
    resp.copy_to(&mut f).map_err(|e| format!("ADD {url}: {e}"))?;
    if let Some(want) = checksum {
        let got = file_sha(file)?;
        if got != want {
            return Err(format!("ADD {url}: digest mismatch {got}: {want}"));
        }
    }
    Ok(())
}

/// A decompressed reader over a context file when it is a tar archive (plain, gzip, bzip2,
/// xz or zstd), else `None`.
fn archive_reader(root: &Path, rel: &str) -> std::result::Result<Option<Box<dyn Read>>, String> {
    let open = || -> std::result::Result<std::fs::File, String> {
        let rootfd = berth_safepath::open_root(root).map_err(|e| e.to_string())?;
        let fd = berth_safepath::open(
            std::os::fd::AsFd::as_fd(&rootfd),
            Path::new(rel),
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NOFOLLOW,
        )
        .map_err(|e| format!("opening {rel}: {e}"))?;
        Ok(std::fs::File::from(fd))
    };
    let mut head = [0u8; 6];
    let n = open()?.read(&mut head).map_err(|e| format!("reading {rel}: {e}"))?;
    let head = &head[..n];
    let f = open()?;
    let mut r: Box<dyn Read> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(std::io::BufReader::new(f)))
    } else if head.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(std::io::BufReader::new(f)))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(xz_reader(f)?)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::new(f).map_err(|e| format!("reading {rel}: {e}"))?)
    } else {
        Box::new(f)
    };
    // A tar has "ustar" at offset 257 of its first header.
    let mut block = vec![0u8; 512];
    let mut got = 0;
    while got < 512 {
        match r.read(&mut block[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(_) => return Ok(None),
        }
    }
    if got < 512 || &block[257..262] != b"ustar" {
        return Ok(None);
    }
    Ok(Some(Box::new(std::io::Cursor::new(block).chain(r))))
}

fn xz_reader(f: std::fs::File) -> std::result::Result<std::io::Cursor<Vec<u8>>, String> {
    let mut out = Vec::new();
    lzma_rs::xz_decompress(&mut std::io::BufReader::new(f), &mut out).map_err(|e| format!("xz: {e}"))?;
    Ok(std::io::Cursor::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_and_unquote() {
        assert_eq!(words(r#"a "b c" 'd' "" e"#), vec!["a", "b c", "d", "", "e"]);
        assert_eq!(words("  x   y "), vec!["x", "y"]);
    }
}
