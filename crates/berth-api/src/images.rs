//! The image routes: list, inspect, history, tag, remove, prune, pull, push, save, load,
//! import, and `commit` (a container as an image).

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::request::all_values;
use crate::streams::channel_body;
use crate::{empty, flag, json_response, query, ApiError, Body, Daemon};

/// `GET /images/json`.
pub async fn images(d: &Arc<Daemon>, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let q = query(req);
    // `all` would add intermediate images; berth keeps none (its build cache is not images).
    let _all = crate::flag(&q, "all");
    let filters = crate::filters(&q)?;
    let v = d
        .with_images(move |_, s| {
            let mut out = Vec::new();
            'images: for img in s.list()? {
                let created = img
                    .row
                    .created
                    .as_deref()
                    .and_then(berth_oci::time::parse_rfc3339)
                    .unwrap_or(0);
                let cfg: Value = s
                    .config_bytes(&img)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or(Value::Null);
                // Values of one filter are alternatives, filters all apply; a reference
                // filter lists only the matching tags, as dockerd does.
                for (k, vals) in filters.iter().filter(|(k, _)| *k != "reference") {
                    let mut any = false;
                    for v in vals {
                        any |= berth_engine::images::image_matches(s, &img, k, v, None)
                            .map_err(|e| ApiError::bad(e.to_string()))?;
                    }
                    if !any {
                        continue 'images;
                    }
                }
                let mut tags: Vec<String> = Vec::new();
                for t in &img.tags {
                    let keep = match filters.get("reference") {
                        None => true,
                        Some(refs) => refs.iter().any(|r| {
                            berth_engine::images::image_matches(s, &img, "reference", r, Some(t)).unwrap_or(false)
                        }),
                    };
                    if keep {
                        tags.push(t.familiar());
                    }
                }
                if filters.contains_key("reference") && tags.is_empty() {
                    continue;
                }
                out.push(json!({
                    "Id": img.row.id,
                    "ParentId": "",
                    "RepoTags": tags,
                    "RepoDigests": img.digests.iter().map(|r| r.familiar()).collect::<Vec<_>>(),
                    "Created": created,
                    "Size": img.row.size,
                    "SharedSize": -1,
                    "VirtualSize": img.row.size,
                    "Labels": cfg.pointer("/config/Labels").cloned().unwrap_or(Value::Null),
                    "Containers": -1,
                }));
            }
            Ok(out)
        })
        .await?;
    Ok(json_response(StatusCode::OK, &Value::Array(v)))
}

/// `GET /images/{name}/json`.
pub async fn image_inspect(d: &Arc<Daemon>, name: String) -> Result<Response<Body>, ApiError> {
    let v = d
        .with_images(move |_, s| {
            let img = s
                .resolve(&name)
                .map_err(|_| ApiError::not_found(format!("No such image: {name}")))?;
            Ok(berth_engine::inspect::image_json(s, &img)?)
        })
        .await?;
    Ok(json_response(StatusCode::OK, &v))
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

/// `POST /images/{name}/tag?repo=&tag=`.
pub async fn tag(d: &Arc<Daemon>, req: &Request<Incoming>, name: String) -> Result<Response<Body>, ApiError> {
    let q = query(req);
    let repo = q.get("repo").cloned().unwrap_or_default();
    if repo.is_empty() {
        return Err(ApiError::bad("repository name (repo) is required"));
    }
    let target = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo,
    };
    d.with_images(move |e, s| {
        s.resolve(&name)
            .map_err(|_| ApiError::not_found(format!("No such image: {name}")))?;
        berth_engine::images::tag(e, s, &name, &target)?;
        Ok(())
    })
    .await?;
    Ok(empty(StatusCode::CREATED))
}

/// `DELETE /images/{name}`.
pub async fn image_remove(d: &Arc<Daemon>, req: &Request<Incoming>, name: String) -> Result<Response<Body>, ApiError> {
    let force = flag(&query(req), "force");
    let out = d
        .with_images(move |e, s| {
            s.resolve(&name)
                .map_err(|_| ApiError::not_found(format!("No such image: {name}")))?;
            let done = berth_engine::images::remove(e, s, &name, force)?;
            Ok(done
                .into_iter()
                .map(|r| match r {
                    berth_engine::images::Removed::Untagged(t) => json!({"Untagged": t}),
                    berth_engine::images::Removed::Deleted(id) => json!({"Deleted": id}),
                })
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(json_response(StatusCode::OK, &Value::Array(out)))
}

/// `POST /images/prune`: dangling images, or with `dangling=false` every unused one.
pub async fn image_prune(d: &Arc<Daemon>, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let q = query(req);
    // Only `dangling` narrows an image prune here; other filters are refused rather than
    // ignored, which would prune more than asked.
    let _ = crate::prune_filter(&q, &["dangling"])?;
    let all = q
        .get("filters")
        .and_then(|f| serde_json::from_str::<Value>(f).ok())
        .is_some_and(|f| {
            let v = &f["dangling"];
            v.as_array().is_some_and(|a| a.iter().any(|x| x == "false" || x == "0"))
                || v.as_object()
                    .is_some_and(|o| o.contains_key("false") || o.contains_key("0"))
        });
    let (removed, bytes) = d
        .with_images(move |e, s| Ok(berth_engine::images::prune(e, s, all)?))
        .await?;
    let list: Vec<Value> = removed
        .into_iter()
        .map(|r| match r {
            berth_engine::images::Removed::Untagged(t) => json!({"Untagged": t}),
            berth_engine::images::Removed::Deleted(id) => json!({"Deleted": id}),
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"ImagesDeleted": list, "SpaceReclaimed": bytes}),
    ))
}

/// A JSON progress line.
pub(crate) fn line(v: Value) -> Bytes {
    Bytes::from(format!("{v}\r\n"))
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

/// `POST /images/create?fromImage=&tag=`: a pull, with Docker's JSON progress stream.
pub async fn pull(d: &Arc<Daemon>, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let q = query(req);
    let from = q.get("fromImage").cloned().unwrap_or_default();
    if from.is_empty() {
        return Err(ApiError::bad(
            "fromImage is required (importing with fromSrc is not supported)",
        ));
    }
    let name = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) if t.starts_with("sha256:") => format!("{from}@{t}"),
        Some(t) => format!("{from}:{t}"),
        None => from.clone(),
    };
    let r = berth_oci::Reference::parse(&name).map_err(|e| ApiError::bad(format!("invalid reference format: {e}")))?;
    let credentials = crate::images::registry_auth(req);
    let (tx, body) = channel_body();
    let root = d.root.clone();
    tokio::task::spawn_blocking(move || {
        let send = |v: Value| {
            let _ = tx.blocking_send(line(v));
        };
        let tagname = r.tag().unwrap_or("latest").to_string();
        send(json!({"status": format!("Pulling from {}", r.path()), "id": tagname}));
        let res = (|| -> Result<berth_engine::images::Pulled, berth_engine::EngineError> {
            let mut store = berth_engine::images::ImageStore::open(&root)?;
            let opts = berth_engine::images::PullOptions {
                registry: berth_engine::images::RegistryOptions {
                    credentials,
                    ..berth_engine::images::RegistryOptions::from_env()
                },
                ..Default::default()
            };
            berth_engine::images::pull(&mut store, &r, &opts, &|e| match e {
                berth_engine::images::PullEvent::Exists(dg) => {
                    send(json!({"status": "Already exists", "progressDetail": {}, "id": dg.short()}))
                }
                berth_engine::images::PullEvent::Downloaded(dg) => {
                    send(json!({"status": "Download complete", "progressDetail": {}, "id": dg.short()}))
                }
                berth_engine::images::PullEvent::Extracted(dg) => {
                    send(json!({"status": "Pull complete", "progressDetail": {}, "id": dg.short()}))
                }
                _ => {}
            })
        })();
        match res {
            Ok(p) => {
                send(json!({"status": format!("Digest: {}", p.digest)}));
                let what = if p.fetched {
                    "Downloaded newer image for"
                } else {
                    "Image is up to date for"
                };
                send(json!({"status": format!("Status: {what} {}", r.familiar())}));
            }
            Err(e) => {
                let e = e.to_string();
                send(json!({"errorDetail": {"message": e}, "error": e}));
            }
        }
    });
    Ok(crate::streamed(body, HeaderValue::from_static("application/json")))
}

/// `POST /images/{name}/push?tag=`: a push, with Docker's JSON progress stream.
pub async fn push(d: &Arc<Daemon>, req: &Request<Incoming>, name: String) -> Result<Response<Body>, ApiError> {
    let q = query(req);
    let full = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{name}:{t}"),
        None => name.clone(),
    };
    let r = berth_oci::Reference::parse(&full).map_err(|e| ApiError::bad(format!("invalid reference format: {e}")))?;
    let root = d.root.clone();
    {
        let full = full.clone();
        d.with_images(move |_, s| {
            s.resolve(&full)
                .map(|_| ())
                .map_err(|_| ApiError::not_found(format!("An image does not exist locally with the tag: {full}")))
        })
        .await?;
    }
    let credentials = crate::images::registry_auth(req);
    let (tx, body) = channel_body();
    tokio::task::spawn_blocking(move || {
        let send = |v: Value| {
            let _ = tx.blocking_send(line(v));
        };
        send(json!({"status": format!("The push refers to repository [{}]", r.repository())}));
        let res = (|| -> Result<(berth_oci::Digest, usize), berth_engine::EngineError> {
            let mut store = berth_engine::images::ImageStore::open(&root)?;
            let (digest, size) = berth_engine::images::push(
                &store,
                &full,
                &berth_engine::images::RegistryOptions {
                    credentials,
                    ..berth_engine::images::RegistryOptions::from_env()
                },
                &|e| match e {
                    berth_engine::images::PushEvent::Exists(dg) => {
                        send(json!({"status": "Layer already exists", "progressDetail": {}, "id": dg.short()}))
                    }
                    berth_engine::images::PushEvent::Mounted(dg, from) => {
                        send(json!({"status": format!("Mounted from {from}"), "progressDetail": {}, "id": dg.short()}))
                    }
                    berth_engine::images::PushEvent::Pushed(dg) => {
                        send(json!({"status": "Pushed", "progressDetail": {}, "id": dg.short()}))
                    }
                },
            )?;
            let img = store.resolve(&full)?;
            store.add_repo_digest(&img.row.id, &r.with_digest(digest.clone()))?;
            Ok((digest, size))
        })();
        match res {
            Ok((digest, size)) => {
                let tag = r.tag().unwrap_or("latest").to_string();
                send(json!({"status": format!("{tag}: digest: {digest} size: {size}")}));
                send(json!({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest.to_string(), "Size": size}}));
            }
            Err(e) => {
                let e = e.to_string();
                send(json!({"errorDetail": {"message": e}, "error": e}));
            }
        }
    });
    Ok(crate::streamed(body, HeaderValue::from_static("application/json")))
}

/// `GET /images/get?names=...` and `GET /images/{name}/get`: a `docker save` archive.
pub async fn save(d: &Arc<Daemon>, req: &Request<Incoming>, name: Option<String>) -> Result<Response<Body>, ApiError> {
    let names = match name {
        Some(n) => vec![n],
        None => all_values(req, "names"),
    };
    if names.is_empty() {
        return Err(ApiError::bad("no image names given"));
    }
    let tmp = d.root.join("tmp").join(format!(
        "save-{}",
        berth_engine::store::new_id().map_err(ApiError::from)?
    ));
    let path = tmp.clone();
    d.with_images(move |e, s| {
        for n in &names {
            s.resolve(n)
                .map_err(|_| ApiError::not_found(format!("reference does not exist: {n}")))?;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        }
        let mut f = std::fs::File::create(&path)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        berth_engine::images::save(e, s, &names, berth_engine::images::Format::Docker, &mut f)?;
        Ok(())
    })
    .await
    .inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    let (tx, body) = channel_body();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        if let Ok(mut f) = tokio::fs::File::open(&tmp).await {
            // Unlinked at once: the open file is all that is left of it.
            let _ = tokio::fs::remove_file(&tmp).await;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                match f.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
    });
    Ok(crate::streamed(body, HeaderValue::from_static("application/x-tar")))
}

/// `POST /images/load`: a `docker save` or OCI archive in the body (spooled to a file, any
/// size); answers with Docker's JSON progress lines.
pub async fn load(d: &Arc<Daemon>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let quiet = flag(&query(&req), "quiet");
    let lines = crate::with_spooled_body(d, "load", req.into_body(), |e, s, f| {
        Ok(berth_engine::images::load(e, s, f)?)
    })
    .await?;
    let mut out = String::new();
    for l in lines {
        if !quiet || !l.is_empty() {
            out.push_str(&json!({ "stream": format!("{l}\n") }).to_string());
            out.push('\n');
        }
    }
    let mut r = Response::new(crate::full(out));
    r.headers_mut()
        .insert("Content-Type", HeaderValue::from_static("application/json"));
    Ok(r)
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
    let changes: Vec<String> = crate::request::all_values(&req, "changes")
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
        changes: crate::request::all_values(&req, "changes")
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
