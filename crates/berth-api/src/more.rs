//! `top`, `stats`, image tag and delete, `/system/df` and `/events`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::containers::channel_body;
use crate::{empty, flag, json_response, query, ApiError, Body, Daemon};

/// `GET /containers/{id}/top?ps_args=`.
pub async fn top(d: &Arc<Daemon>, req: &Request<Incoming>, id: String) -> Result<Response<Body>, ApiError> {
    let ps_args = query(req).get("ps_args").cloned().unwrap_or_default();
    let (titles, rows) = d
        .engine(move |e| {
            let rid = crate::running_id(e, &id)?;
            Ok(berth_engine::inspect::top(e, &rid, &ps_args)?)
        })
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"Titles": titles, "Processes": rows}),
    ))
}

fn stats_json(
    id: &str,
    name: &str,
    now: (u64, u64, u64, u64),
    pre: (u64, u64, u64, u64),
    sys: (u64, u64),
    ncpu: usize,
) -> Value {
    let (cpu, mem, limit, pids) = now;
    json!({
        "read": berth_oci::time::now(),
        "preread": berth_oci::time::now(),
        "id": id,
        "name": format!("/{name}"),
        "pids_stats": {"current": pids},
        "blkio_stats": {"io_service_bytes_recursive": null, "io_serviced_recursive": null},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": {"cpu_usage": {"total_usage": cpu, "usage_in_kernelmode": 0, "usage_in_usermode": cpu},
            "system_cpu_usage": sys.1, "online_cpus": ncpu, "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}},
        "precpu_stats": {"cpu_usage": {"total_usage": pre.0, "usage_in_kernelmode": 0, "usage_in_usermode": pre.0},
            "system_cpu_usage": sys.0, "online_cpus": ncpu, "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}},
        "memory_stats": {"usage": mem, "limit": limit, "stats": {}},
        "networks": {}
    })
}

/// The host's CPU time in nanoseconds, as dockerd computes `system_cpu_usage`.
fn system_cpu() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = stat
        .lines()
        .next()
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(7)
                .filter_map(|x| x.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    // USER_HZ is 100 on Linux.
    ticks.saturating_mul(10_000_000)
}

/// `GET /containers/{id}/stats` (`stream=false` for one reading).
pub async fn stats(d: &Arc<Daemon>, req: &Request<Incoming>, id: String) -> Result<Response<Body>, ApiError> {
    let q = query(req);
    let stream = crate::flag_or(&q, "stream", true);
    let one_shot = flag(&q, "one-shot");
    let (cid, name) = d
        .engine(move |e| {
            let r = e.resolve(&id)?;
            Ok((r.id.clone(), r.name.clone()))
        })
        .await?;
    let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let sample = |d: Arc<Daemon>, cid: String| async move {
        d.engine(move |e| Ok(berth_engine::inspect::sample(e, &cid).unwrap_or((0, 0, 0, 0))))
            .await
            .unwrap_or((0, 0, 0, 0))
    };
    if !stream {
        let pre = sample(d.clone(), cid.clone()).await;
        let s0 = system_cpu();
        if !one_shot {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let now = sample(d.clone(), cid.clone()).await;
        let v = stats_json(&cid, &name, now, pre, (s0, system_cpu()), ncpu);
        return Ok(json_response(StatusCode::OK, &v));
    }
    let (tx, body) = channel_body();
    let dd = d.clone();
    tokio::spawn(async move {
        let mut pre = sample(dd.clone(), cid.clone()).await;
        let mut s0 = system_cpu();
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = sample(dd.clone(), cid.clone()).await;
            let s1 = system_cpu();
            let v = stats_json(&cid, &name, now, pre, (s0, s1), ncpu);
            if tx.send(Bytes::from(format!("{v}\n"))).await.is_err() {
                return;
            }
            pre = now;
            s0 = s1;
        }
    });
    Ok(crate::streamed(body, HeaderValue::from_static("application/json")))
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

/// `GET /system/df`.
pub async fn df(d: &Arc<Daemon>) -> Result<Response<Body>, ApiError> {
    let v = d
        .with_images(|e, s| {
            let snaps: std::collections::HashMap<String, i64> = s.db.snapshot_sizes()?.into_iter().collect();
            let total: i64 = snaps.values().sum();
            let mut images = Vec::new();
            for img in s.list()? {
                let users = s.db.users_of(&img.row.id)?.len();
                images.push(json!({
                    "Id": img.row.id, "ParentId": "", "RepoTags": img.tags.iter().map(|t| t.familiar()).collect::<Vec<_>>(),
                    "RepoDigests": img.digests.iter().map(|t| t.familiar()).collect::<Vec<_>>(),
                    "Created": img.row.created.as_deref().and_then(berth_oci::time::parse_rfc3339).unwrap_or(0),
                    "Size": img.row.size, "SharedSize": 0, "VirtualSize": img.row.size, "Labels": null, "Containers": users,
                }));
            }
            let mut containers = Vec::new();
            for r in e.all()? {
                let st = e.state(&r.id);
                containers.push(json!({
                    "Id": r.id, "Names": [format!("/{}", r.name)], "Image": r.image_name, "ImageID": r.image_id,
                    "Command": std::iter::once(r.path.clone()).chain(r.args.iter().cloned()).collect::<Vec<_>>().join(" "),
                    "Created": berth_oci::time::parse_rfc3339(&r.created).unwrap_or(0),
                    "State": st.status, "Status": berth_engine::inspect::status_text(&st),
                    "SizeRw": 0, "SizeRootFs": 0, "Labels": r.labels, "Mounts": [], "Ports": [],
                }));
            }
            let mut volumes = Vec::new();
            for n in berth_engine::volumes::list(e)? {
                let mut v = berth_engine::inspect::volume_json(e, &n);
                let refs = berth_engine::volumes::users(e, &n)?.len();
                v["UsageData"] = json!({"Size": -1, "RefCount": refs});
                volumes.push(v);
            }
            Ok(json!({
                "LayersSize": total,
                "Images": images,
                "Containers": containers,
                "Volumes": volumes,
                "BuildCache": [],
            }))
        })
        .await?;
    Ok(json_response(StatusCode::OK, &v))
}

/// `GET /events`: the event log, filtered, from `since` (or from now), until `until` (or for
/// as long as the client listens).
pub async fn events(d: &Arc<Daemon>, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let q = query(req);
    let since = q
        .get("since")
        .filter(|s| !s.is_empty())
        .map(|s| crate::time_nanos(s).ok_or_else(|| ApiError::bad(format!("invalid since: {s}"))))
        .transpose()?;
    let until = q
        .get("until")
        .filter(|s| !s.is_empty())
        .map(|s| crate::time_nanos(s).ok_or_else(|| ApiError::bad(format!("invalid until: {s}"))))
        .transpose()?;
    let filters = crate::filters(&q)?;
    let list = |k: &str| filters.get(k).cloned().unwrap_or_default();
    let (types, actions, containers, labels) = (list("type"), list("event"), list("container"), list("label"));
    let (images, networks, volumes) = (list("image"), list("network"), list("volume"));
    let keep = move |e: &berth_engine::events::Event| {
        let name = e.attributes["name"].as_str().unwrap_or("");
        let of = |kind: &str, wanted: &[String]| {
            wanted.is_empty() || (e.kind == kind && wanted.iter().any(|c| e.id.starts_with(c.as_str()) || c == name))
        };
        let image_ok = images.is_empty()
            || images.iter().any(|i| {
                let of_container = e.attributes["image"].as_str() == Some(i.as_str());
                of_container || (e.kind == "image" && (e.id.starts_with(i.as_str()) || name == i))
            });
        (types.is_empty() || types.contains(&e.kind))
            && action_matches(&actions, &e.action)
            && of("container", &containers)
            && of("network", &networks)
            && of("volume", &volumes)
            && image_ok
            && labels.iter().all(|l| match l.split_once('=') {
                Some((k, v)) => e.attributes[k].as_str() == Some(v),
                None => e.attributes.get(l).is_some(),
            })
    };
    // Without `since`, only what happens from now on.
    let start_seq = match since {
        Some(_) => 0,
        None => {
            d.engine(|e| Ok(berth_engine::events::after(e, 0, 0)?.last().map_or(0, |x| x.seq)))
                .await?
        }
    };
    let (tx, body) = channel_body();
    let dd = d.clone();
    tokio::spawn(async move {
        let mut seq = start_seq;
        let from = since.unwrap_or(0);
        loop {
            let batch = dd
                .engine(move |e| Ok(berth_engine::events::after(e, seq, from)?))
                .await
                .unwrap_or_default();
            for e in batch {
                seq = e.seq;
                if until.is_some_and(|u| e.time_nano > u) {
                    return;
                }
                if keep(&e) && tx.send(line(berth_engine::events::to_json(&e))).await.is_err() {
                    return;
                }
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|t| i64::try_from(t.as_nanos()).unwrap_or(i64::MAX))
                .unwrap_or(0);
            if until.is_some_and(|u| now > u) || tx.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    Ok(crate::streamed(body, HeaderValue::from_static("application/json")))
}

/// dockerd's `event` filter: exact, except that when it names `health_status`, `exec_create`
/// or `exec_start` (actions that carry a detail after a colon) every value matches as a prefix.
fn action_matches(wanted: &[String], action: &str) -> bool {
    if wanted.is_empty() {
        return true;
    }
    let fuzzy = wanted
        .iter()
        .any(|w| matches!(w.as_str(), "health_status" | "exec_create" | "exec_start"));
    wanted.iter().any(|w| {
        if fuzzy {
            action.starts_with(w.as_str())
        } else {
            w == action
        }
    })
}

/// Every value of a repeated query parameter (`names=a&names=b`).
pub(crate) fn all_values(req: &Request<Incoming>, key: &str) -> Vec<String> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .collect()
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

/// A JSON progress line.
fn line(v: Value) -> Bytes {
    Bytes::from(format!("{v}\r\n"))
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
    let credentials = crate::manage::registry_auth(req);
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
    let credentials = crate::manage::registry_auth(req);
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

/// Progress lines as Docker's build stream (`{"stream": "..."}`).
struct StreamLines(tokio::sync::mpsc::Sender<Bytes>, Vec<u8>);

impl std::io::Write for StreamLines {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.1.extend_from_slice(b);
        while let Some(i) = self.1.iter().position(|&c| c == b'\n') {
            let l: Vec<u8> = self.1.drain(..=i).collect();
            let text = String::from_utf8_lossy(&l).into_owned();
            let _ = self.0.blocking_send(line(json!({ "stream": text })));
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What a build request's query asks for.
struct BuildRequest {
    build_args: std::collections::BTreeMap<String, String>,
    labels: std::collections::BTreeMap<String, String>,
    dockerfile: String,
    target: Option<String>,
    /// The RUN steps' network.
    network: String,
    /// The tags as given, and parsed.
    tags: Vec<String>,
    parsed: Vec<berth_oci::Reference>,
    no_cache: bool,
    pull: bool,
    quiet: bool,
}

fn build_request(req: &Request<Incoming>) -> Result<BuildRequest, ApiError> {
    let q = query(req);
    let tags = all_values(req, "t");
    let json_map = |k: &str| -> Result<std::collections::BTreeMap<String, String>, ApiError> {
        match q.get(k).filter(|v| !v.is_empty()) {
            None => Ok(Default::default()),
            Some(v) => {
                let m: serde_json::Map<String, Value> =
                    serde_json::from_str(v).map_err(|e| ApiError::bad(format!("invalid {k}: {e}")))?;
                Ok(m.into_iter()
                    .map(|(k, v)| (k, v.as_str().unwrap_or("").to_string()))
                    .collect())
            }
        }
    };
    let build_args = json_map("buildargs")?;
    let labels = json_map("labels")?;
    let dockerfile = q
        .get("dockerfile")
        .filter(|v| !v.is_empty())
        .cloned()
        .unwrap_or_else(|| "Dockerfile".into());
    let target = q.get("target").filter(|v| !v.is_empty()).cloned();
    let (no_cache, pull, quiet) = (flag(&q, "nocache"), flag(&q, "pull"), flag(&q, "q"));
    let network = berth_engine::build::network_mode(q.get("networkmode").map_or("", String::as_str))?;
    let mut parsed = Vec::new();
    for t in &tags {
        parsed.push(berth_oci::Reference::parse(t).map_err(|e| ApiError::bad(format!("invalid tag {t:?}: {e}")))?);
    }
    Ok(BuildRequest {
        build_args,
        labels,
        dockerfile,
        target,
        network,
        tags,
        parsed,
        no_cache,
        pull,
        quiet,
    })
}

/// `POST /build`: the body is the context (a tar, maybe compressed); the answer is Docker's
/// JSON stream (`stream` lines, `aux.ID`, `Successfully built/tagged`, or `errorDetail`).
pub async fn build(d: &Arc<Daemon>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let b = match build_request(&req) {
        Ok(b) => b,
        Err(e) => return crate::refuse(req.into_body(), e).await,
    };
    // Spool the context, then unpack it confined.
    let id = berth_engine::store::new_id().map_err(ApiError::from)?;
    let tmp = d.root.join("tmp").join(format!("build-{}", &id[..16]));
    let tarf = tmp.with_extension("tar");
    tokio::fs::create_dir_all(&tmp)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if let Err(e) = crate::spool_body(req.into_body(), &tarf).await {
        let _ = tokio::fs::remove_dir_all(&tmp).await;
        return Err(e);
    }
    let (tx, body) = channel_body();
    let root = d.root.clone();
    tokio::task::spawn_blocking(move || {
        let err = |e: berth_engine::EngineError| {
            let e = e.to_string();
            let _ = tx.blocking_send(line(json!({"errorDetail": {"message": e}, "error": e})));
        };
        let res = (|| -> Result<String, berth_engine::EngineError> {
            use berth_engine::EngineError;
            let raw = std::fs::File::open(&tarf).map_err(|e| EngineError::Io {
                op: "opening",
                path: tarf.clone(),
                source: e,
            })?;
            berth_engine::build::unpack_context(raw, &tmp)?;
            let text = std::fs::read_to_string(tmp.join(&b.dockerfile)).map_err(|e| {
                EngineError::Invalid(format!("Cannot locate specified Dockerfile: {}: {e}", b.dockerfile))
            })?;
            let ignore_text = std::fs::read_to_string(tmp.join(format!("{}.dockerignore", b.dockerfile)))
                .or_else(|_| std::fs::read_to_string(tmp.join(".dockerignore")))
                .unwrap_or_default();
            let ignore = berth_engine::build::ignore::Ignore::parse(&ignore_text)
                .map_err(|e| EngineError::Invalid(e.to_string()))?;
            let mut store = berth_engine::images::ImageStore::open(&root)?;
            let mode = if b.quiet {
                berth_engine::build::progress::Mode::Quiet
            } else {
                berth_engine::build::progress::Mode::Plain
            };
            let progress = std::sync::Mutex::new(berth_engine::build::progress::Progress::new(
                mode,
                Box::new(StreamLines(tx.clone(), Vec::new())),
            ));
            let o = berth_engine::build::Options {
                file_name: b.dockerfile.clone(),
                dockerfile: text,
                context: tmp.clone(),
                ignore,
                build_args: b.build_args,
                labels: b.labels,
                tags: b.parsed.clone(),
                target: b.target,
                no_cache: b.no_cache,
                pull: b.pull,
                network: b.network,
                secrets: Default::default(),
                // Set by build_image.
                scratch: Default::default(),
                cache_mounts: Default::default(),
            };
            let scratch = format!("api-{}", &id[..16]);
            let built = berth_engine::build::build_image(&root, &mut store, &progress, o, &scratch)?;
            Ok(built.id)
        })();
        let _ = std::fs::remove_dir_all(&tmp);
        let _ = std::fs::remove_file(&tarf);
        match res {
            Ok(image) => {
                let _ = tx.blocking_send(line(json!({"aux": {"ID": image}})));
                let short = image.trim_start_matches("sha256:").chars().take(12).collect::<String>();
                let _ = tx.blocking_send(line(json!({"stream": format!("Successfully built {short}\n")})));
                for t in &b.tags {
                    let _ = tx.blocking_send(line(json!({"stream": format!("Successfully tagged {t}\n")})));
                }
            }
            Err(e) => err(e),
        }
    });
    Ok(crate::streamed(body, HeaderValue::from_static("application/json")))
}

/// `POST /containers/prune`: stopped containers.
pub async fn container_prune(d: &Arc<Daemon>, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let keep = crate::prune_filter(&query(req), &["label", "label!", "until"])?;
    let gone = d
        .engine(move |e| Ok(berth_engine::ops::prune_matching(e, &|r| keep(&r.labels, &r.created))?))
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"ContainersDeleted": gone, "SpaceReclaimed": 0}),
    ))
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

/// `POST /containers/{id}/rename?name=`.
pub async fn rename(d: &Arc<Daemon>, req: &Request<Incoming>, id: String) -> Result<Response<Body>, ApiError> {
    let name = query(req).get("name").cloned().unwrap_or_default();
    if name.is_empty() {
        return Err(ApiError::bad("name is required"));
    }
    d.engine(move |e| Ok(berth_engine::ops::rename(e, &id, &name)?)).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/pause` and `/unpause`.
pub async fn pause(d: &Arc<Daemon>, id: String, paused: bool) -> Result<Response<Body>, ApiError> {
    d.engine(move |e| {
        let rid = crate::running_id(e, &id)?;
        Ok(berth_engine::ops::set_paused(e, &rid, paused)?)
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `GET /containers/{id}/changes`.
pub async fn changes(d: &Arc<Daemon>, id: String) -> Result<Response<Body>, ApiError> {
    let list = d
        .with_images(move |e, s| {
            Ok(berth_engine::commit::changes(e, s, &id)?
                .into_iter()
                .map(|(k, p)| json!({"Path": p, "Kind": match k { 'C' => 0, 'A' => 1, _ => 2 }}))
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(json_response(StatusCode::OK, &Value::Array(list)))
}
