//! The image commands: `images`, `image ...`, `rmi`, `tag`, `history`, `save`, `load`,
//! `import`, `system df`, with Docker's flags and output (`pull`, `push`, `login` and
//! `logout` are in `registry.rs`).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use berth_engine::images::{Format, Image, ImageStore, RegistryOptions as Options, Removed};
use berth_oci::Reference;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::format::{human_duration, human_size, since, table, Template};
pub use crate::registry::{
    login, logout, pull, pull_quietly_to_stderr, push, LoginArgs, LogoutArgs, PullArgs, PushArgs,
};

/// `berth image ...`.
#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// Build an image from a Dockerfile.
    Build(crate::build::BuildArgs),
    /// List images.
    #[command(visible_alias = "list")]
    Ls(ImagesArgs),
    /// Display detailed information on one or more images.
    Inspect(InspectArgs),
    /// Remove one or more images.
    #[command(visible_alias = "remove")]
    Rm(RmiArgs),
    /// Remove unused images.
    Prune(PruneArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(TagArgs),
    /// Show the history of an image.
    History(HistoryArgs),
    /// Save one or more images to a tar archive.
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN.
    Load(LoadArgs),
    /// Import the contents from a tarball to create a filesystem image.
    Import(ImportArgs),
    /// Download an image from a registry.
    Pull(PullArgs),
    /// Upload an image to a registry.
    Push(PushArgs),
}

/// `images`.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// [REPOSITORY[:TAG]]
    pub reference: Option<String>,
    /// Show all images (intermediate images too).
    #[arg(short, long)]
    pub all: bool,
    /// Show digests.
    #[arg(long)]
    pub digests: bool,
    /// Filter output based on conditions provided (dangling=, reference=, label=).
    #[arg(short, long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a Go template, or `json`.
    #[arg(long)]
    pub format: Option<String>,
    /// Don't truncate output.
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image IDs.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `image inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// IMAGE...
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Format output using a Go template.
    #[arg(short, long)]
    pub format: Option<String>,
}

/// `rmi`.
#[derive(Debug, Args)]
pub struct RmiArgs {
    /// IMAGE...
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Force removal of the image.
    #[arg(short, long)]
    pub force: bool,
    /// Do not delete untagged parents.
    #[arg(long)]
    pub no_prune: bool,
}

/// `image prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (not supported yet beyond none).
    #[arg(long)]
    pub filter: Vec<String>,
}

/// `tag`.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// SOURCE_IMAGE[:TAG]
    pub source: String,
    /// TARGET_IMAGE[:TAG]
    pub target: String,
}

/// `history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// IMAGE
    pub name: String,
    /// Print sizes and dates in human readable format.
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub human: bool,
    /// Don't truncate output.
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Format output using a Go template.
    #[arg(long)]
    pub format: Option<String>,
}

/// `save`.
#[derive(Debug, Args)]
pub struct SaveArgs {
    /// IMAGE...
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Write to a file, instead of STDOUT.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Archive format: docker (default; also an OCI layout) or oci.
    #[arg(long, default_value = "docker")]
    pub format: String,
}

/// `load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN.
    #[arg(short, long)]
    pub input: Option<PathBuf>,
    /// Suppress the load output.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// file|- (a rootfs tar, plain or compressed)
    pub file: String,
    /// [REPOSITORY[:TAG]]
    pub reference: Option<String>,
    /// Apply Dockerfile instruction to the created image.
    #[arg(short, long)]
    pub change: Vec<String>,
    /// Set commit message for imported image.
    #[arg(short, long, default_value = "")]
    pub message: String,
    /// Set platform if server is multi-platform capable.
    #[arg(long)]
    pub platform: Option<String>,
}

/// `system ...`.
#[derive(Debug, Subcommand)]
pub enum SystemCmd {
    /// Show disk usage.
    Df(DfArgs),
    /// Display system-wide information.
    Info {
        /// Format output using a Go template, or `json`.
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Remove unused data.
    Prune {
        /// Remove all unused images not just dangling ones.
        #[arg(short, long)]
        all: bool,
        /// Prune anonymous volumes.
        #[arg(long)]
        volumes: bool,
        /// Do not prompt for confirmation.
        #[arg(short, long)]
        force: bool,
    },
}

/// `system df`.
#[derive(Debug, Args)]
pub struct DfArgs {
    /// Show detailed information on space usage.
    #[arg(short, long)]
    pub verbose: bool,
    /// Format output using a Go template.
    #[arg(long)]
    pub format: Option<String>,
}

/// Opens the store under the data root.
pub fn open(root: &Path) -> anyhow::Result<ImageStore> {
    ImageStore::open(root).with_context(|| format!("opening the image store at {}", root.display()))
}

pub(crate) fn registry_opts() -> Options {
    Options::from_env()
}

pub(crate) fn parse_ref(name: &str) -> anyhow::Result<Reference> {
    Reference::parse(name).map_err(|e| anyhow::anyhow!("{e}"))
}

fn matches_filter(store: &ImageStore, img: &Image, f: &str, tag: Option<&Reference>) -> anyhow::Result<bool> {
    let (k, v) = f
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value): {f}"))?;
    Ok(berth_engine::images::image_matches(store, img, k, v, tag)?)
}

/// `images` / `image ls`.
pub fn images(root: &Path, a: &ImagesArgs) -> anyhow::Result<()> {
    let store = open(root)?;
    let mut filters = a.filter.clone();
    if let Some(r) = &a.reference {
        filters.push(format!("reference={r}"));
    }
    struct Row {
        id: String,
        repo: String,
        tag: String,
        digest: String,
        created: String,
        size: u64,
    }
    let mut rows: Vec<Row> = Vec::new();
    for img in store.list()? {
        let tags: Vec<Option<Reference>> = if img.tags.is_empty() {
            vec![None]
        } else {
            img.tags.iter().cloned().map(Some).collect()
        };
        for t in tags {
            let mut ok = true;
            for f in &filters {
                ok &= matches_filter(&store, &img, f, t.as_ref())?;
            }
            if !ok {
                continue;
            }
            let digest = img
                .digests
                .iter()
                .find(|d| t.as_ref().is_some_and(|t| t.repository() == d.repository()))
                .or(img.digests.first())
                .and_then(|d| d.digest().map(|x| x.to_string()))
                .unwrap_or_else(|| "<none>".into());
            rows.push(Row {
                id: img.row.id.clone(),
                repo: t
                    .as_ref()
                    .map(|t| t.familiar_repository())
                    .unwrap_or_else(|| "<none>".into()),
                tag: t
                    .as_ref()
                    .and_then(|t| t.tag().map(str::to_string))
                    .unwrap_or_else(|| "<none>".into()),
                digest,
                created: berth_engine::images::image_created(&img),
                size: u64::try_from(img.row.size).unwrap_or(0),
            });
        }
    }
    let short = |id: &str| -> String {
        if a.no_trunc {
            id.to_string()
        } else {
            id.trim_start_matches("sha256:").chars().take(12).collect()
        }
    };
    if a.quiet {
        let mut seen = std::collections::HashSet::new();
        for r in &rows {
            if seen.insert(r.id.clone()) {
                println!("{}", short(&r.id));
            }
        }
        return Ok(());
    }
    let as_json = |r: &Row| {
        json!({
            "Containers": "N/A",
            "CreatedAt": r.created,
            "CreatedSince": format!("{} ago", human_duration(since(&r.created))),
            "Digest": r.digest,
            "ID": short(&r.id),
            "Repository": r.repo,
            "SharedSize": "N/A",
            "Size": human_size(r.size),
            "Tag": r.tag,
            "UniqueSize": "N/A",
            "VirtualSize": human_size(r.size),
        })
    };
    if let Some(f) = &a.format {
        if f == "json" {
            for r in &rows {
                println!("{}", as_json(r));
            }
            return Ok(());
        }
        let t = Template::parse(f)?;
        let mut out = String::new();
        if t.is_table() {
            out.push_str(&t.header(&|k| {
                Some(
                    match k {
                        "ID" => "IMAGE ID",
                        "CreatedSince" => "CREATED",
                        "CreatedAt" => "CREATED AT",
                        _ => return None,
                    }
                    .to_string(),
                )
            }));
            out.push('\n');
        }
        for r in &rows {
            out.push_str(&t.render(&as_json(r))?);
            out.push('\n');
        }
        if t.is_table() {
            let lines: Vec<Vec<String>> = out
                .lines()
                .map(|l| l.split('\t').map(str::to_string).collect())
                .collect();
            print!("{}", table(&lines));
        } else {
            print!("{out}");
        }
        return Ok(());
    }
    let mut lines = vec![];
    let mut head = vec!["REPOSITORY".to_string(), "TAG".to_string()];
    if a.digests {
        head.push("DIGEST".into());
    }
    head.extend(["IMAGE ID", "CREATED", "SIZE"].map(str::to_string));
    lines.push(head);
    for r in &rows {
        let mut l = vec![r.repo.clone(), r.tag.clone()];
        if a.digests {
            l.push(r.digest.clone());
        }
        l.push(short(&r.id));
        l.push(format!("{} ago", human_duration(since(&r.created))));
        l.push(human_size(r.size));
        lines.push(l);
    }
    print!("{}", table(&lines));
    Ok(())
}

/// `image inspect`.
pub fn inspect(root: &Path, a: &InspectArgs) -> anyhow::Result<()> {
    let store = open(root)?;
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for n in &a.names {
        match store.resolve(n) {
            Ok(img) => out.push(berth_engine::inspect::image_json(&store, &img)?),
            Err(e) => missing.push(e.to_string()),
        }
    }
    crate::views::print_inspected(&out, a.format.as_deref())?;
    if !missing.is_empty() {
        bail!("{}", missing.join("\n"));
    }
    Ok(())
}

/// `rmi`.
pub fn rmi(root: &Path, a: &RmiArgs) -> anyhow::Result<()> {
    let mut store = open(root)?;
    let engine = berth_engine::store::Engine::open(root)?;
    let mut errors = Vec::new();
    for n in &a.names {
        match berth_engine::images::remove(&engine, &mut store, n, a.force) {
            Ok(done) => {
                for d in done {
                    match d {
                        Removed::Untagged(t) => println!("Untagged: {t}"),
                        Removed::Deleted(id) => println!("Deleted: {id}"),
                    }
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(())
}

/// `image prune`.
pub fn prune(root: &Path, a: &PruneArgs) -> anyhow::Result<()> {
    if !a.filter.is_empty() {
        bail!("image prune --filter is not supported yet");
    }
    if !a.force {
        if !std::io::stdin().is_terminal() {
            bail!("image prune: refusing to prompt without a terminal; use --force");
        }
        let what = if a.all {
            "all images without at least one container associated to them"
        } else {
            "all dangling images"
        };
        print!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
        std::io::stdout().flush()?;
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Ok(());
        }
    }
    let reclaimed = prune_images(root, a.all)?;
    println!("Total reclaimed space: {}", human_size(reclaimed));
    Ok(())
}

/// Prunes images (every unused one with `all`) and prints what went; returns the bytes
/// freed.
pub(crate) fn prune_images(root: &Path, all: bool) -> anyhow::Result<u64> {
    let mut store = open(root)?;
    let engine = berth_engine::store::Engine::open(root)?;
    let (done, reclaimed) = berth_engine::images::prune(&engine, &mut store, all)?;
    let lines: Vec<String> = done
        .into_iter()
        .map(|d| match d {
            Removed::Untagged(t) => format!("untagged: {t}"),
            Removed::Deleted(id) => format!("deleted: {id}"),
        })
        .collect();
    crate::views::print_deleted("Images", &lines);
    Ok(reclaimed)
}

/// `tag`.
pub fn tag(root: &Path, a: &TagArgs) -> anyhow::Result<()> {
    let mut store = open(root)?;
    let engine = berth_engine::store::Engine::open(root)?;
    berth_engine::images::tag(&engine, &mut store, &a.source, &a.target)?;
    Ok(())
}

/// `history`.
pub fn history(root: &Path, a: &HistoryArgs) -> anyhow::Result<()> {
    let store = open(root)?;
    let img = store.resolve(&a.name)?;
    let mut rows = Vec::new();
    for h in berth_engine::images::history(&store, &img)? {
        let id = if h.id.starts_with("sha256:") && !a.no_trunc {
            h.id[7..19].to_string()
        } else {
            h.id
        };
        let mut by = h.created_by;
        if !a.no_trunc && by.chars().count() > 45 {
            by = by.chars().take(44).collect::<String>() + "…";
        }
        let size = h.size;
        rows.push(json!({
            "ID": id,
            "CreatedAt": h.created,
            "CreatedSince": if a.human { format!("{} ago", human_duration(since(&h.created))) } else { h.created.clone() },
            "CreatedBy": by,
            "Size": if a.human { human_size(u64::try_from(size).unwrap_or(0)) } else { size.to_string() },
            "Comment": h.comment,
        }));
    }
    if a.quiet {
        for r in &rows {
            println!("{}", r["ID"].as_str().unwrap_or(""));
        }
        return Ok(());
    }
    if let Some(f) = &a.format {
        let t = Template::parse(f)?;
        for r in &rows {
            println!("{}", t.render(r)?);
        }
        return Ok(());
    }
    let mut lines = vec![["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
        .map(str::to_string)
        .to_vec()];
    for r in &rows {
        lines.push(
            ["ID", "CreatedSince", "CreatedBy", "Size", "Comment"]
                .iter()
                .map(|k| r[*k].as_str().unwrap_or("").to_string())
                .collect(),
        );
    }
    print!("{}", table(&lines));
    Ok(())
}

/// `save`.
pub fn save(root: &Path, a: &SaveArgs) -> anyhow::Result<()> {
    let format = match a.format.as_str() {
        "docker" => Format::Docker,
        "oci" => Format::Oci,
        f => bail!("invalid --format {f:?}: want docker or oci"),
    };
    let store = open(root)?;
    let engine = berth_engine::store::Engine::open(root)?;
    match &a.output {
        Some(p) => {
            // Written beside the target and renamed: a failed save leaves no partial file.
            let tmp = p.with_file_name(format!(
                ".{}.berth-tmp",
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ));
            let r = (|| -> anyhow::Result<()> {
                let mut f = std::io::BufWriter::new(
                    std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
                );
                berth_engine::images::save(&engine, &store, &a.names, format, &mut f)?;
                f.into_inner()
                    .map_err(|e| anyhow::anyhow!("writing {}: {e}", tmp.display()))?
                    .sync_all()?;
                std::fs::rename(&tmp, p).with_context(|| format!("renaming into {}", p.display()))?;
                Ok(())
            })();
            if r.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            r
        }
        None => {
            if std::io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            berth_engine::images::save(&engine, &store, &a.names, format, &mut out)?;
            out.flush()?;
            Ok(())
        }
    }
}

/// `load`.
pub fn load(root: &Path, a: &LoadArgs) -> anyhow::Result<()> {
    let mut store = open(root)?;
    let engine = berth_engine::store::Engine::open(root)?;
    let lines = match &a.input {
        Some(p) => {
            let mut f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
            berth_engine::images::load(&engine, &mut store, &mut f)?
        }
        None => {
            if std::io::stdin().is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            berth_engine::images::load(&engine, &mut store, &mut std::io::stdin().lock())?
        }
    };
    if !a.quiet {
        for l in lines {
            println!("{l}");
        }
    }
    Ok(())
}

/// `import`.
pub fn import(root: &Path, a: &ImportArgs) -> anyhow::Result<()> {
    let tag = a.reference.as_deref().map(parse_ref).transpose()?;
    let mut store = open(root)?;
    let mut input: Box<dyn Read> = if a.file == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(&a.file).with_context(|| format!("opening {}", a.file))?)
    };
    let engine = berth_engine::store::Engine::open(root)?;
    let img = berth_engine::images::import(&engine, &mut store, &mut input, &a.change, &a.message, tag.as_ref())?;
    println!("{}", img.row.id);
    Ok(())
}

/// `system df`.
pub fn df(root: &Path, a: &DfArgs) -> anyhow::Result<()> {
    let store = open(root)?;
    let imgs = store.list()?;
    let snaps: BTreeMap<String, i64> = store.db.snapshot_sizes()?.into_iter().collect();
    let total: i64 = snaps.values().sum();
    let mut active_chains = std::collections::HashSet::new();
    let mut active = 0;
    for i in &imgs {
        if !store.db.users_of(&i.row.id)?.is_empty() {
            active += 1;
            active_chains.extend(store.db.chains_of(&i.row.id)?);
        }
    }
    let used: i64 = snaps
        .iter()
        .filter(|(c, _)| active_chains.contains(*c))
        .map(|(_, s)| *s)
        .sum();
    let reclaim = u64::try_from(total - used).unwrap_or(0);
    let total_u = u64::try_from(total).unwrap_or(0);
    let pct = if total > 0 { reclaim * 100 / total_u } else { 0 };
    let rows = [
        json!({"Type": "Images", "TotalCount": imgs.len().to_string(), "Active": active.to_string(), "Size": human_size(total_u), "Reclaimable": format!("{} ({pct}%)", human_size(reclaim))}),
        json!({"Type": "Containers", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"}),
        json!({"Type": "Local Volumes", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"}),
        json!({"Type": "Build Cache", "TotalCount": "0", "Active": "0", "Size": "0B", "Reclaimable": "0B"}),
    ];
    if let Some(f) = &a.format {
        let t = Template::parse(f)?;
        for r in &rows {
            println!("{}", if f == "json" { r.to_string() } else { t.render(r)? });
        }
        return Ok(());
    }
    let mut lines = vec![["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
        .map(str::to_string)
        .to_vec()];
    for r in &rows {
        lines.push(
            ["Type", "TotalCount", "Active", "Size", "Reclaimable"]
                .iter()
                .map(|k| r[*k].as_str().unwrap_or("").to_string())
                .collect(),
        );
    }
    print!("{}", table(&lines));
    if a.verbose {
        println!("\nImages space usage:\n");
        let mut l = vec![["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
            .map(str::to_string)
            .to_vec()];
        for i in &imgs {
            let t = i.tags.first();
            l.push(vec![
                t.map(|t| t.familiar_repository()).unwrap_or_else(|| "<none>".into()),
                t.and_then(|t| t.tag().map(str::to_string))
                    .unwrap_or_else(|| "<none>".into()),
                i.row.id[7..19].to_string(),
                format!("{} ago", human_duration(since(&berth_engine::images::image_created(i)))),
                human_size(u64::try_from(i.row.size).unwrap_or(0)),
            ]);
        }
        print!("{}", table(&l));
    }
    Ok(())
}
