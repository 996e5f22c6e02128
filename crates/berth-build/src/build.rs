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

mod error;
mod instructions;
mod steps;

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

pub(crate) use error::io_err;
pub use error::{BuildError, RunnerError, SourceError, StepError};

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
    std::fs::create_dir_all(&o.scratch).map_err(io_err("creating", &o.scratch))?;
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
        std::fs::create_dir_all(&d).map_err(io_err("creating", &d))?;
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
            return Err(BuildError::Invalid(format!(
                "{}: no build stage in the Dockerfile (it needs a FROM)",
                self.o.file_name
            )));
        }
        let target = match &self.o.target {
            Some(t) => stages
                .iter()
                .position(|s| s.name.as_deref() == Some(&t.to_ascii_lowercase()))
                .ok_or_else(|| BuildError::Invalid(format!("target stage \"{t}\" could not be found")))?,
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
                return Err(BuildError::Invalid(
                    "the stages depend on each other in a circle".into(),
                ));
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
                                .unwrap_or_else(|_| Err(BuildError::Invalid("a stage's build thread panicked".into())));
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
            .ok_or_else(|| BuildError::Invalid("the target stage was not built".into()))?;
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

    fn base(&mut self, from: &str) -> std::result::Result<State, SourceError> {
        let r = Reference::parse(from).map_err(|e| SourceError::Reference {
            image: from.to_string(),
            message: e.to_string(),
        })?;
        let have = self.store.resolve(from).ok();
        let img = match (have, self.o.pull) {
            (Some(img), false) => img,
            _ => {
                self.runner.pull(self.store, &r).map_err(SourceError::Pull)?;
                self.store.resolve(from)?
            }
        };
        let manifest = self.store.manifest(&img)?;
        let config_err = |message: String| SourceError::Config {
            image: from.to_string(),
            message,
        };
        let config: Value =
            serde_json::from_slice(&self.store.config_bytes(&img)?).map_err(|e| config_err(e.to_string()))?;
        let diff_ids: Vec<Digest> = str_list(&config["rootfs"]["diff_ids"])
            .iter()
            .map(|d| d.parse().map_err(|e: berth_oci::DigestError| config_err(e.to_string())))
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

    /// Writes the final image: config, manifest, tags.
    fn export(&mut self, st: &mut State) -> Result<String> {
        let n = prog::lock(self.progress).start("exporting to image");
        st.c().remove("__cmd_set");
        st.config["created"] = json!(st.created);
        st.config["rootfs"] =
            json!({"type": "layers", "diff_ids": st.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()});
        let cfg_bytes = serde_json::to_vec(&st.config)
            .map_err(|e| BuildError::Invalid(format!("the image config does not serialize: {e}")))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_and_unquote() {
        assert_eq!(words(r#"a "b c" 'd' "" e"#), vec!["a", "b c", "d", "", "e"]);
        assert_eq!(words("  x   y "), vec!["x", "y"]);
    }
}
