//! Image operations that every front end (the CLI, the Docker API) runs the same way, each
//! recording its `/events` entry here, so `berth pull`, `tag` and `rmi` are seen by
//! `docker events` as the API's are.

use berth_image::pull::{Event, PullOptions, Pulled};
use berth_image::store::{ImageStore, Removed};
use berth_oci::Reference;

use crate::store::Engine;
use crate::{events, Result};

/// Pulls `r` into `store` (progress through `progress`) and records `pull`.
pub fn pull(
    store: &mut ImageStore,
    r: &Reference,
    opts: &PullOptions,
    progress: &(dyn Fn(Event) + Sync),
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

/// Pushes `name` (progress through `progress`) and records `push`; returns the manifest's
/// digest and size.
pub fn push(
    store: &ImageStore,
    name: &str,
    opts: &berth_image::registry::Options,
    progress: &dyn Fn(berth_image::push::PushEvent),
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
