//! Images as every front end (the CLI, the Docker API) sees them: the operations, each
//! recording its `/events` entry here, so `berth pull`, `tag` and `rmi` are seen by
//! `docker events` as the API's are; and the queries (`images` filters, history).

pub use berth_image::archive::Format;
pub use berth_image::auth::Credentials;
pub use berth_image::pull::{Event as PullEvent, PullOptions, Pulled};
pub use berth_image::push::PushEvent;
pub use berth_image::registry::{Options as RegistryOptions, DEFAULT_HOSTS_DIR};
pub use berth_image::store::{Image, ImageStore, Removed};
pub use berth_image::unpack::decompress;
pub use berth_image::ImageError;
use berth_oci::Reference;
use serde_json::Value;

use crate::store::Engine;
use crate::{events, Result};

/// Pulls `r` into `store` (progress through `progress`) and records `pull`.
pub fn pull(
    store: &mut ImageStore,
    r: &Reference,
    opts: &PullOptions,
    progress: &(dyn Fn(PullEvent) + Sync),
) -> Result<Pulled> {
    let pulled = berth_image::pull::pull(store, r, opts, progress)?;
    if let Ok(e) = Engine::open(store.root()) {
        events::image(&e, "pull", &r.familiar(), &r.familiar());
    }
    Ok(pulled)
}

/// Tags the image `source` as `target` and records `tag`.
pub fn tag(engine: &Engine, store: &mut ImageStore, source: &str, target: &str) -> Result<Reference> {
    let img = store.resolve(source)?;
    let r = store.tag(source, target)?;
    events::image(engine, "tag", &img.row.id, &r.familiar());
    Ok(r)
}

/// Removes `name` (Docker's untag/delete rules) and records `untag` and `delete`.
pub fn remove(engine: &Engine, store: &mut ImageStore, name: &str, force: bool) -> Result<Vec<Removed>> {
    let img = store.resolve(name)?;
    let done = store.remove(name, force)?;
    for d in &done {
        match d {
            Removed::Untagged(t) => events::image(engine, "untag", &img.row.id, t),
            Removed::Deleted(id) => events::image(engine, "delete", id, id),
        }
    }
    Ok(done)
}

/// `image prune`: the dangling images (every one no container uses with `all`); records
/// their `untag` and `delete`; returns what went and the bytes freed.
pub fn prune(engine: &Engine, store: &mut ImageStore, all: bool) -> Result<(Vec<Removed>, u64)> {
    let (done, bytes) = store.prune(all)?;
    for d in &done {
        match d {
            Removed::Untagged(t) => events::image(engine, "untag", t, t),
            Removed::Deleted(id) => events::image(engine, "delete", id, id),
        }
    }
    events::record(
        engine,
        "image",
        "prune",
        "",
        serde_json::json!({"reclaimed": bytes.to_string()}),
    );
    Ok((done, bytes))
}

/// Pushes `name` (progress through `progress`) and records `push`; returns the manifest's
/// digest and size.
pub fn push(
    store: &ImageStore,
    name: &str,
    opts: &RegistryOptions,
    progress: &dyn Fn(PushEvent),
) -> Result<(berth_oci::Digest, usize)> {
    let out = berth_image::push::push(store, name, opts, progress)?;
    if let Ok(e) = Engine::open(store.root()) {
        let familiar = Reference::parse(name).map_or_else(|_| name.to_string(), |r| r.familiar());
        events::image(&e, "push", &familiar, &familiar);
    }
    Ok(out)
}

/// Loads a `docker save` or OCI archive; records `load` for each image; returns Docker's
/// `Loaded image...` lines.
pub fn load(engine: &Engine, store: &mut ImageStore, input: &mut dyn std::io::Read) -> Result<Vec<String>> {
    let lines = berth_image::archive::load(store, input)?;
    for l in &lines {
        if let Some(name) = l
            .strip_prefix("Loaded image: ")
            .or_else(|| l.strip_prefix("Loaded image ID: "))
        {
            events::image(engine, "load", name, name);
        }
    }
    Ok(lines)
}

/// Writes `names` as an archive (`docker save`'s or OCI's layout) and records `save` for
/// each.
pub fn save(
    engine: &Engine,
    store: &ImageStore,
    names: &[String],
    format: Format,
    out: &mut dyn std::io::Write,
) -> Result<()> {
    berth_image::archive::save(store, names, format, out)?;
    for n in names {
        let id = store.resolve(n).map_or_else(|_| n.clone(), |i| i.row.id);
        events::image(engine, "save", &id, n);
    }
    Ok(())
}

/// Keeps `credentials` for `server` in the user's registry config (`None` forgets them);
/// returns the key they are kept under.
pub fn remember_login(server: &str, credentials: Option<&Credentials>) -> Result<String> {
    berth_image::auth::store(&berth_image::auth::config_path(), server, credentials)?;
    Ok(berth_image::auth::auth_key(server))
}

/// Imports a filesystem tar as a one-layer image and records `import`.
pub fn import(
    engine: &Engine,
    store: &mut ImageStore,
    input: &mut dyn std::io::Read,
    changes: &[String],
    message: &str,
    tag: Option<&Reference>,
) -> Result<berth_image::store::Image> {
    let img = berth_image::archive::import(store, input, changes, message, tag)?;
    let name = tag.map_or_else(|| img.row.id.clone(), Reference::familiar);
    events::image(engine, "import", &img.row.id, &name);
    Ok(img)
}

/// When an image was made (the zero time when its config does not say).
pub fn image_created(img: &Image) -> String {
    img.row.created.clone().unwrap_or_else(|| "0001-01-01T00:00:00Z".into())
}

/// Whether an image (listed under `tag`, if any) passes one `images` filter `key=value`:
/// `dangling`, `reference` (a glob on the name with and without its tag), `label`
/// (`k` or `k=v`), `before` and `since` (another image).
pub fn image_matches(
    store: &ImageStore,
    img: &Image,
    key: &str,
    value: &str,
    tag: Option<&berth_oci::Reference>,
) -> crate::Result<bool> {
    let v = value;
    Ok(match key {
        "dangling" => match v {
            "true" | "1" => img.tags.is_empty(),
            "false" | "0" => !img.tags.is_empty(),
            _ => return Err(crate::EngineError::Invalid(format!("invalid filter 'dangling={v}'"))),
        },
        "reference" => tag.is_some_and(|t| glob(v, &t.familiar()) || glob(v, &t.familiar_repository())),
        "label" => {
            let cfg = store.config(img)?;
            let labels = cfg
                .config
                .as_ref()
                .and_then(|c| c.get("Labels"))
                .cloned()
                .unwrap_or(Value::Null);
            match v.split_once('=') {
                Some((lk, lv)) => labels.get(lk).and_then(Value::as_str) == Some(lv),
                None => labels.get(v).is_some(),
            }
        }
        "before" | "since" => {
            let other = store.resolve(v)?;
            let (a, b) = (image_created(img), image_created(&other));
            if key == "before" {
                a < b
            } else {
                a > b
            }
        }
        _ => return Err(crate::EngineError::Invalid(format!("invalid filter '{key}'"))),
    })
}

/// Docker's `path.Match` for reference filters: `*`, `?` and classes within a `/`-separated
/// segment, never across one. Segment by segment with the builder's linear matcher, so a
/// pattern of many `*` answers at once (a backtracking matcher is exponential in them).
pub fn glob(pat: &str, s: &str) -> bool {
    let (p, t): (Vec<&str>, Vec<&str>) = (pat.split('/').collect(), s.split('/').collect());
    p.len() == t.len()
        && p.iter()
            .zip(&t)
            .all(|(p, t)| berth_build::ignore::fnmatch(p.as_bytes(), t.as_bytes()))
}

/// One step of an image's history, newest first (`docker history`).
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    /// The image id on the newest step, `<missing>` on the others (as Docker shows them).
    pub id: String,
    /// When the step ran (RFC 3339; empty when unknown).
    pub created: String,
    /// The instruction.
    pub created_by: String,
    /// The size of the step's layer in bytes (0 for a metadata step).
    pub size: i64,
    /// The step's comment.
    pub comment: String,
    /// The image's tags, on the newest step only.
    pub tags: Vec<String>,
}

/// An image's history with the size of each step's layer.
pub fn history(store: &ImageStore, img: &Image) -> crate::Result<Vec<HistoryRow>> {
    let cfg = store.config(img)?;
    let snaps: std::collections::BTreeMap<String, i64> = store.db.snapshot_sizes()?.into_iter().collect();
    let chains = berth_image::model::chain_ids(&cfg.rootfs.diff_ids);
    let mut layer = chains.len();
    let mut rows = Vec::new();
    for (i, h) in cfg.history.iter().enumerate().rev() {
        let size = if h.empty_layer {
            0
        } else {
            layer = layer.saturating_sub(1);
            chains
                .get(layer)
                .and_then(|c| snaps.get(&c.to_string()))
                .copied()
                .unwrap_or(0)
        };
        let newest = i + 1 == cfg.history.len();
        rows.push(HistoryRow {
            id: if newest { img.row.id.clone() } else { "<missing>".into() },
            created: h.created.clone().unwrap_or_default(),
            created_by: h.created_by.clone().unwrap_or_default(),
            size,
            comment: h.comment.clone().unwrap_or_default(),
            tags: if newest {
                img.tags.iter().map(berth_oci::Reference::familiar).collect()
            } else {
                Vec::new()
            },
        });
    }
    Ok(rows)
}

/// The registry host a `login` or `logout` names: scheme and path dropped, Docker Hub's
/// aliases (and nothing) as Docker Hub.
pub fn registry_host(server: &str) -> String {
    let s = server.trim_start_matches("https://").trim_start_matches("http://");
    let host = s.split('/').next().unwrap_or(s);
    if host.is_empty() || host == "index.docker.io" || host == "registry-1.docker.io" {
        berth_oci::DEFAULT_DOMAIN.to_string()
    } else {
        host.to_string()
    }
}

/// `login`: whether registry `host` accepts `credentials` (registries configured as the
/// environment says). Storing them is the client's business.
pub fn check_login(host: &str, credentials: berth_image::auth::Credentials) -> Result<()> {
    let opts = berth_image::registry::Options {
        credentials: Some(credentials),
        ..berth_image::registry::Options::from_env()
    };
    berth_image::registry::Registry::new(host, &opts).and_then(|r| r.ping())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reference_globs_match_per_segment_and_in_linear_time() {
        use super::glob;
        assert!(glob("bb*", "bb:1"));
        assert!(glob("library/*", "library/busybox"));
        assert!(!glob("*", "library/busybox"), "* never crosses /");
        assert!(glob("*/*", "library/busybox"));
        assert!(glob("b?:[0-9]", "bb:1"));
        assert!(!glob("bb", "bb:1"));
        // 60 stars against a long name that does not match: a backtracking matcher would
        // not finish this before the heat death of the machine.
        let pat = format!("{}x", "*".repeat(60));
        assert!(!glob(&pat, &"a".repeat(200)));
    }
}

#[cfg(test)]
mod login_tests {
    use super::*;

    #[test]
    fn login_servers_name_registry_hosts_as_docker_does() {
        for hub in [
            "",
            "docker.io",
            "index.docker.io",
            "https://index.docker.io/v1/",
            "registry-1.docker.io",
        ] {
            assert_eq!(registry_host(hub), berth_oci::DEFAULT_DOMAIN, "{hub:?}");
        }
        assert_eq!(registry_host("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
        assert_eq!(registry_host("registry.example:443"), "registry.example:443");
    }
}
