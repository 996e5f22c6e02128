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
