//! `docker cp` through the API: `HEAD|GET /containers/{id}/archive?path=` (stat, and a tar
//! of the path) and `PUT` (a tar unpacked into a directory of the container). Both go
//! through the engine's confined copies (`berth_engine::cp`), staged in a scratch
//! directory under the data root.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::containers::channel_body;
use crate::{empty, query, ApiError, Body, Daemon};

fn scratch(d: &Daemon, what: &str) -> Result<PathBuf, ApiError> {
    let id = berth_engine::store::new_id().map_err(ApiError::from)?;
    Ok(d.root.join("tmp").join(format!("{what}-{}", &id[..16])))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// Docker's `X-Docker-Container-Path-Stat` (Go's `os.FileMode` bits for the type).
fn path_stat(st: &berth_engine::cp::PathStat, name: &str) -> String {
    let mut mode = st.mode & 0o7777;
    match st.mode & libc::S_IFMT {
        libc::S_IFDIR => mode |= 1 << 31,
        libc::S_IFLNK => mode |= 1 << 27,
        _ => {}
    }
    let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(st.mtime).unwrap_or(0));
    let v = json!({"name": name, "size": st.size, "mode": mode, "mtime": berth_oci::time::rfc3339(mtime), "linkTarget": st.link});
    base64(v.to_string().as_bytes())
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for (i, shift) in [18, 12, 6, 0].iter().enumerate() {
            if i <= c.len() {
                out.push(T[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `HEAD` and `GET /containers/{id}/archive?path=`.
pub async fn get(d: &Arc<Daemon>, req: &Request<Incoming>, id: String) -> Result<Response<Body>, ApiError> {
    let path = query(req).get("path").cloned().unwrap_or_default();
    if path.is_empty() {
        return Err(ApiError::bad("path is required"));
    }
    let head = req.method() == Method::HEAD;
    let name = Path::new(&path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/".into());
    let (id2, src) = (id.clone(), path.clone());
    let st = d
        .engine(move |e| {
            let r = e.resolve(&id2)?;
            berth_engine::cp::stat(e, &r.id, &src)
                .map_err(|_| ApiError::not_found(format!("Could not find the file {src} in container {id2}")))
        })
        .await?;
    let stat = path_stat(&st, &name);
    if head {
        let mut r = empty(StatusCode::OK);
        r.headers_mut().insert(
            "X-Docker-Container-Path-Stat",
            HeaderValue::from_str(&stat).map_err(internal)?,
        );
        return Ok(r);
    }
    let dir = scratch(d, "cp-out")?;
    let staged = dir.join(if name == "/" { "root" } else { name.as_str() });
    let (dir2, staged2, src) = (dir.clone(), staged.clone(), path.clone());
    let res = d
        .engine(move |e| {
            std::fs::create_dir_all(&dir2).map_err(internal)?;
            let r = e.resolve(&id)?;
            berth_engine::cp::copy_out(e, &r.id, &src, &staged2)
                .map_err(|err| ApiError::not_found(format!("Could not find the file {src} in container {id}: {err}")))
        })
        .await;
    if let Err(e) = res {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    let (tx, body) = channel_body();
    tokio::task::spawn_blocking(move || {
        struct ChanWriter(tokio::sync::mpsc::Sender<Bytes>);
        impl std::io::Write for ChanWriter {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0
                    .blocking_send(Bytes::copy_from_slice(b))
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut b = tar::Builder::new(ChanWriter(tx));
        b.follow_symlinks(false);
        let entry = staged.file_name().map(PathBuf::from).unwrap_or_default();
        let res = if staged.is_dir() {
            b.append_dir_all(&entry, &staged)
        } else {
            b.append_path_with_name(&staged, &entry)
        };
        let _ = res.and_then(|_| b.finish());
        let _ = std::fs::remove_dir_all(&dir);
    });
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert("Content-Type", HeaderValue::from_static("application/x-tar"));
    h.insert(
        "X-Docker-Container-Path-Stat",
        HeaderValue::from_str(&stat).map_err(internal)?,
    );
    Ok(r)
}

/// `PUT /containers/{id}/archive?path=DIR`: the body, a tar, is unpacked (confined) in a
/// scratch directory and copied into `DIR` in the container.
pub async fn put(d: &Arc<Daemon>, req: Request<Incoming>, id: String) -> Result<Response<Body>, ApiError> {
    let path = query(&req).get("path").cloned().unwrap_or_default();
    if path.is_empty() {
        return Err(ApiError::bad("path is required"));
    }
    let dir = scratch(d, "cp-in")?;
    let tarf = dir.with_extension("tar");
    tokio::fs::create_dir_all(&dir).await.map_err(internal)?;
    let cleanup = |dir: &Path, tarf: &Path| {
        let _ = std::fs::remove_dir_all(dir);
        let _ = std::fs::remove_file(tarf);
    };
    if let Err(e) = crate::spool_body(req.into_body(), &tarf).await {
        cleanup(&dir, &tarf);
        return Err(e);
    }
    let (dir2, tarf2) = (dir.clone(), tarf.clone());
    let res = d
        .engine(move |e| {
            let r = e.resolve(&id)?;
            let out = berth_engine::build::copy::Dest::open(&dir2).map_err(internal)?;
            let mut t = std::fs::File::open(&tarf2).map_err(internal)?;
            berth_engine::build::copy::extract(&mut t, &out, "/", None)
                .map_err(|err| ApiError::bad(format!("unpacking the archive: {err}")))?;
            for entry in std::fs::read_dir(&dir2).map_err(internal)? {
                let entry = entry.map_err(internal)?;
                berth_engine::cp::copy_in(e, &r.id, &entry.path(), &path).map_err(|err| {
                    ApiError::not_found(format!("Could not find the file {path} in container {id}: {err}"))
                })?;
            }
            Ok(())
        })
        .await;
    cleanup(&dir, &tarf);
    res?;
    Ok(empty(StatusCode::OK))
}
