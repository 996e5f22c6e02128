//! `/_ping`, `/version`, `/info` and the image routes.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::{full, json_response, query, ApiError, Body, Daemon, API_VERSION, MIN_API_VERSION};

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
