//! `POST /build` and `/build/prune`.

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::images::line;
use crate::request::all_values;
use crate::streams::channel_body;
use crate::{flag, json_response, query, ApiError, Body, Daemon};

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

/// `POST /build/prune`: drops the build cache.
pub async fn build_prune(d: &Arc<Daemon>) -> Result<Response<Body>, ApiError> {
    let (_, space) = d.with_images(|_, s| Ok(s.cache_prune()?)).await?;
    // Cache entries are keyed by step digests, not BuildKit record ids: none are listed.
    Ok(json_response(
        StatusCode::OK,
        &json!({"CachesDeleted": [], "SpaceReclaimed": space}),
    ))
}
