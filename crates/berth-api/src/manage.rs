//! `update`, `export`, `commit`, image history, `/auth` and `/build/prune`.

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::containers::channel_body;
use crate::{json_body, json_response, query, ApiError, Body, Daemon};

/// A number from an update body: absent, null and 0 all mean "leave it as it is", as
/// the docker CLI sends every field.
fn set_i64(body: &Value, key: &str) -> Result<Option<i64>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(0) => Ok(None),
            Some(n) => Ok(Some(n)),
            None => Err(ApiError::bad(format!(
                "json: cannot unmarshal {v} into Go struct field UpdateConfig.{key} of type int64"
            ))),
        },
    }
}

/// `POST /containers/{id}/update`.
pub async fn update(d: &Arc<Daemon>, req: Request<Incoming>, id: String) -> Result<Response<Body>, ApiError> {
    let body = json_body(req).await?;
    if !body.is_object() {
        return Err(ApiError::bad("an update config object is required"));
    }
    let nano = set_i64(&body, "NanoCpus")?;
    let quota = set_i64(&body, "CpuQuota")?;
    if nano.is_some() && quota.is_some() {
        return Err(ApiError::bad(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ));
    }
    let period = set_i64(&body, "CpuPeriod")?.unwrap_or(100_000).max(1);
    let cpu_quota = match (nano, quota) {
        (Some(n), _) => Some(n / 10_000),
        (None, Some(q)) => Some(q.saturating_mul(100_000) / period),
        _ => None,
    };
    // An empty name leaves the policy as it is (the docker CLI sends one with every update).
    let restart = match body.get("RestartPolicy") {
        Some(p) if p["Name"].as_str().is_some_and(|n| !n.is_empty()) => Some(
            berth_engine::options::RestartPolicy::from_docker(
                p["Name"].as_str().unwrap_or(""),
                p["MaximumRetryCount"].as_i64().unwrap_or(0),
            )
            .map_err(|e| ApiError::bad(e.to_string()))?,
        ),
        _ => None,
    };
    let u = berth_engine::ops::Update {
        memory: set_i64(&body, "Memory")?,
        memory_reservation: set_i64(&body, "MemoryReservation")?,
        memory_swap: set_i64(&body, "MemorySwap")?,
        cpu_quota,
        cpu_shares: set_i64(&body, "CpuShares")?.map(|s| u64::try_from(s).unwrap_or(0)),
        cpuset_cpus: body["CpusetCpus"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        // A pids limit of 0 or -1 lifts it.
        pids_limit: match body.get("PidsLimit") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_i64()
                    .ok_or_else(|| ApiError::bad(format!("invalid PidsLimit {v}")))?,
            ),
        },
        restart,
    };
    d.engine(move |e| Ok(berth_engine::ops::update(e, &id, &u)?)).await?;
    Ok(json_response(StatusCode::OK, &json!({"Warnings": []})))
}

/// Bytes written to it go to a response body.
struct ChannelWriter(tokio::sync::mpsc::Sender<Bytes>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Bytes::copy_from_slice(b))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `GET /containers/{id}/export`: the container's filesystem as a tar stream.
pub async fn export(d: &Arc<Daemon>, id: String) -> Result<Response<Body>, ApiError> {
    let cid = d.engine(move |e| Ok(e.resolve(&id)?.id)).await?;
    let (tx, body) = channel_body();
    let dd = d.clone();
    tokio::spawn(async move {
        let _ = dd
            .engine(move |e| {
                let mut out = std::io::BufWriter::with_capacity(256 * 1024, ChannelWriter(tx));
                berth_engine::commit::export(e, &cid, &mut out)?;
                std::io::Write::flush(&mut out)
                    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
                Ok(())
            })
            .await;
    });
    Ok(crate::streamed(body, HeaderValue::from_static("application/x-tar")))
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=`.
pub async fn commit(d: &Arc<Daemon>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let q = query(&req);
    let container = q.get("container").cloned().unwrap_or_default();
    if container.is_empty() {
        return Err(ApiError::bad("container is required"));
    }
    let tag = crate::repo_tag(&q)?;
    let opts = berth_engine::commit::CommitOptions {
        tag,
        changes: crate::more::all_values(&req, "changes")
            .into_iter()
            .filter(|c| !c.is_empty())
            .collect(),
        message: q.get("comment").cloned().unwrap_or_default(),
        author: q.get("author").cloned().unwrap_or_default(),
        pause: crate::flag_or(&q, "pause", true),
    };
    let id = d
        .with_images(move |e, s| {
            let img = berth_engine::commit::commit(e, s, &container, &opts)?;
            Ok(img.row.id)
        })
        .await?;
    Ok(json_response(StatusCode::CREATED, &json!({"Id": id})))
}

/// `GET /images/{name}/history`.
pub async fn history(d: &Arc<Daemon>, name: String) -> Result<Response<Body>, ApiError> {
    let rows = d
        .with_images(move |_, s| {
            let img = s
                .resolve(&name)
                .map_err(|_| ApiError::not_found(format!("No such image: {name}")))?;
            Ok(berth_engine::images::history(s, &img)?)
        })
        .await?;
    let list: Vec<Value> = rows
        .into_iter()
        .map(|h| {
            json!({
                "Id": h.id,
                "Created": berth_oci::time::parse_rfc3339(&h.created).unwrap_or(0),
                "CreatedBy": h.created_by,
                "Tags": if h.tags.is_empty() { Value::Null } else { json!(h.tags) },
                "Size": h.size,
                "Comment": h.comment,
            })
        })
        .collect();
    Ok(json_response(StatusCode::OK, &Value::Array(list)))
}

/// Credentials from a request's `X-Registry-Auth` header (base64url JSON, as the docker
/// CLI sends it; an empty object means none).
pub fn registry_auth(req: &Request<Incoming>) -> Option<berth_engine::images::Credentials> {
    use base64::Engine as _;
    let h = req.headers().get("X-Registry-Auth")?.to_str().ok()?.trim();
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(h)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h.trim_end_matches('=')))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(h))
        .ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    let username = v["username"].as_str().unwrap_or("").to_string();
    let password = v["password"]
        .as_str()
        .filter(|p| !p.is_empty())
        .or_else(|| v["identitytoken"].as_str())
        .unwrap_or("")
        .to_string();
    (!username.is_empty() || !password.is_empty()).then_some(berth_engine::images::Credentials { username, password })
}

/// `POST /auth`: checks credentials against a registry (the daemon keeps none).
pub async fn auth(req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let body = json_body(req).await?;
    let username = body["username"].as_str().unwrap_or("").to_string();
    let password = body["password"].as_str().unwrap_or("").to_string();
    let server = body["serveraddress"].as_str().unwrap_or("").to_string();
    let host = berth_engine::images::registry_host(&server);
    tokio::task::spawn_blocking(move || {
        let creds = berth_engine::images::Credentials { username, password };
        berth_engine::images::check_login(&host, creds)
            .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, format!("login attempt to {host} failed: {e}")))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(json_response(
        StatusCode::OK,
        &json!({"Status": "Login Succeeded", "IdentityToken": ""}),
    ))
}

/// `POST /build/prune`: drops the build cache.
pub async fn build_prune(d: &Arc<Daemon>) -> Result<Response<Body>, ApiError> {
    let (_, space) = d.with_images(|_, s| Ok(s.cache_prune()?)).await?;
    // Cache entries are keyed by step digests, not BuildKit record ids: none are listed.
    Ok(json_response(
        StatusCode::OK,
        &json!({"CachesDeleted": [], "SpaceReclaimed": space}),
    ))
}

/// `POST /images/create?fromSrc=-&repo=&tag=&changes=&message=`: `docker import` of the tar
/// in the body (a URL source would reach out of this host: refused).
pub async fn import(d: &Arc<Daemon>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let q = query(&req);
    if q.get("fromSrc").map(String::as_str) != Some("-") {
        return Err(ApiError::bad(
            "importing from a URL is not supported: send the archive in the body (fromSrc=-)",
        ));
    }
    let tag = crate::repo_tag(&q)?;
    let changes: Vec<String> = crate::more::all_values(&req, "changes")
        .into_iter()
        .filter(|c| !c.is_empty())
        .collect();
    let message = q.get("message").cloned().unwrap_or_default();
    let id = crate::with_spooled_body(d, "import", req.into_body(), move |e, s, f| {
        let img = berth_engine::images::import(e, s, f, &changes, &message, tag.as_ref())?;
        Ok(img.row.id)
    })
    .await?;
    Ok(crate::streamed(
        crate::full(format!("{}\r\n", json!({ "status": id }))),
        HeaderValue::from_static("application/json"),
    ))
}
