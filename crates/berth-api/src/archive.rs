//! `docker cp` through the API: `HEAD|GET /containers/{id}/archive?path=` (stat, and a tar
//! of the path) and `PUT` (a tar unpacked into a directory of the container). Both go
//! through the engine's confined copies (`berth_engine::cp`), staged in a scratch
//! directory under the data root.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::streams::channel_body;
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
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, v.to_string())
}

/// Writes into the response body's channel (from a blocking thread).
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

/// `HEAD` and `GET /containers/{id}/archive?path=`: the path's stat in
/// `X-Docker-Container-Path-Stat`, and (GET) a tar of it, streamed as it is read from the
/// container (its top entry named as dockerd names it).
pub async fn get(d: &Arc<Daemon>, req: &Request<Incoming>, id: String) -> Result<Response<Body>, ApiError> {
    let path = query(req).get("path").cloned().unwrap_or_default();
    if path.is_empty() {
        return Err(ApiError::bad("path is required"));
    }
    let head = req.method() == Method::HEAD;
    let name = berth_engine::cp::archive_name(&path);
    let (id2, src) = (id.clone(), path.clone());
    let st = d
        .engine(move |e| {
            let r = e.resolve(&id2)?;
            Ok(berth_engine::cp::stat(e, &r.id, &src)?)
        })
        .await?;
    let stat = path_stat(&st, if name == "." { "/" } else { &name });
    if head {
        let mut r = empty(StatusCode::OK);
        r.headers_mut().insert(
            "X-Docker-Container-Path-Stat",
            HeaderValue::from_str(&stat).map_err(internal)?,
        );
        return Ok(r);
    }
    let (tx, body) = channel_body();
    let d2 = d.clone();
    // The body streams while the archive is walked; an error past the headers can only cut
    // the stream short, which the client sees as a truncated tar.
    tokio::spawn(async move {
        let _ = d2
            .engine(move |e| {
                let mut w = std::io::BufWriter::with_capacity(64 * 1024, ChanWriter(tx));
                let res = berth_engine::cp::archive(e, &id, &path, &mut w);
                let _ = std::io::Write::flush(&mut w);
                Ok(res.is_ok())
            })
            .await;
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

/// `PUT /containers/{id}/archive?path=DIR`: the body, a tar, is spooled, then unpacked
/// confined into `DIR` in the container (owners root unless `copyUIDGID`).
pub async fn put(d: &Arc<Daemon>, req: Request<Incoming>, id: String) -> Result<Response<Body>, ApiError> {
    let q = query(&req);
    let path = q.get("path").cloned().unwrap_or_default();
    if path.is_empty() {
        return Err(ApiError::bad("path is required"));
    }
    let keep_owners = crate::flag(&q, "copyUIDGID");
    let tarf = scratch(d, "cp-in")?.with_extension("tar");
    if let Some(dir) = tarf.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(internal)?;
    }
    if let Err(e) = crate::spool_body(req.into_body(), &tarf).await {
        let _ = std::fs::remove_file(&tarf);
        return Err(e);
    }
    let tarf2 = tarf.clone();
    let res = d
        .engine(move |e| {
            let r = e.resolve(&id)?;
            let mut t = std::fs::File::open(&tarf2).map_err(internal)?;
            Ok(berth_engine::cp::extract_in(e, &r.id, &mut t, &path, keep_owners)?)
        })
        .await;
    let _ = std::fs::remove_file(&tarf);
    res?;
    Ok(empty(StatusCode::OK))
}
