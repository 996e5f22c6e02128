//! `/_ping`, `/version`, `/info`, `/system/df`, `/events` and `/auth`.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::images::line;
use crate::streams::channel_body;
use crate::{full, json_body, json_response, query, ApiError, Body, Daemon, API_VERSION, MIN_API_VERSION};

/// `GET|HEAD /_ping`: `OK` and the headers clients negotiate with.
pub fn ping(m: &Method) -> Response<Body> {
    let mut r = Response::new(full(if m == Method::HEAD { "" } else { "OK" }));
    let h = r.headers_mut();
    h.insert("Content-Type", HeaderValue::from_static("text/plain; charset=utf-8"));
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert("Swarm", HeaderValue::from_static("inactive"));
    h.insert(
        "Cache-Control",
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert("Pragma", HeaderValue::from_static("no-cache"));
    r
}

/// `GET /version`.
pub async fn version(_d: &Arc<Daemon>) -> Result<Response<Body>, ApiError> {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let v = env!("CARGO_PKG_VERSION");
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "Platform": {"Name": "berth"},
            "Components": [{
                "Name": "Engine",
                "Version": v,
                "Details": {"ApiVersion": API_VERSION, "Arch": arch, "BuildTime": "", "Experimental": "false",
                    "GitCommit": "", "GoVersion": "", "KernelVersion": kernel, "MinAPIVersion": MIN_API_VERSION, "Os": "linux"}
            }],
            "Version": v,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": "",
            "Os": "linux",
            "Arch": arch,
            "KernelVersion": kernel,
            "BuildTime": "",
        }),
    ))
}

/// `GET /info`.
pub async fn info(d: &Arc<Daemon>) -> Result<Response<Body>, ApiError> {
    let root = d.root.clone();
    let v = d
        .with_images(move |e, s| Ok(berth_engine::inspect::info_json(e, s, &root)?))
        .await?;
    Ok(json_response(StatusCode::OK, &v))
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
