//! The network routes.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::{empty, json_body, json_response, query, ApiError, Body, Daemon};

/// `GET /networks`.
pub async fn networks(d: &Arc<Daemon>, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let filters = crate::filters(&query(req))?;
    let v = d
        .engine(move |e| {
            Ok(berth_engine::networks::filtered(e, &filters)?
                .iter()
                .map(|n| berth_engine::inspect::network_json(e, n))
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(json_response(StatusCode::OK, &Value::Array(v)))
}

/// `GET /networks/{id}`.
pub async fn network_inspect(d: &Arc<Daemon>, id: String) -> Result<Response<Body>, ApiError> {
    let v = d
        .engine(move |e| {
            let n = berth_engine::networks::get(e, &id)?;
            Ok(berth_engine::inspect::network_json(e, &n))
        })
        .await?;
    Ok(json_response(StatusCode::OK, &v))
}

/// `POST /networks/create`.
pub async fn network_create(d: &Arc<Daemon>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let body = json_body(req).await?;
    let name = body["Name"].as_str().unwrap_or("").to_string();
    if name.is_empty() {
        return Err(ApiError::bad("network name is required"));
    }
    let driver = body["Driver"].as_str().unwrap_or("bridge").to_string();
    let opts: Vec<String> = body["Options"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    let encrypted = berth_engine::networks::encrypted_option(&driver, opts.iter().map(String::as_str))?;
    let ipam = body["IPAM"]["Config"]
        .as_array()
        .and_then(|a| a.first().cloned())
        .unwrap_or(Value::Null);
    let mut o = berth_engine::networks::CreateOptions {
        name,
        subnet: ipam["Subnet"].as_str().filter(|s| !s.is_empty()).map(str::to_string),
        gateway: ipam["Gateway"].as_str().filter(|s| !s.is_empty()).map(str::to_string),
        internal: body["Internal"].as_bool().unwrap_or(false),
        driver,
        encrypted,
        ..Default::default()
    };
    for (k, v) in body["Labels"].as_object().into_iter().flatten() {
        o.labels.insert(k.clone(), v.as_str().unwrap_or("").to_string());
    }
    let id = d.engine(move |e| Ok(berth_engine::networks::create(e, &o)?.id)).await?;
    Ok(json_response(StatusCode::CREATED, &json!({"Id": id, "Warning": ""})))
}

/// `DELETE /networks/{id}`.
pub async fn network_remove(d: &Arc<Daemon>, id: String) -> Result<Response<Body>, ApiError> {
    d.engine(move |e| {
        berth_engine::networks::remove(e, &id)?;
        Ok(())
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /networks/{id}/connect` and `/disconnect`.
pub async fn network_connect(
    d: &Arc<Daemon>,
    req: Request<Incoming>,
    id: String,
    connect: bool,
) -> Result<Response<Body>, ApiError> {
    let body = json_body(req).await?;
    let container = body["Container"].as_str().unwrap_or("").to_string();
    if container.is_empty() {
        return Err(ApiError::bad("a container is required"));
    }
    let aliases: Vec<String> = body["EndpointConfig"]["Aliases"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let ip = body["EndpointConfig"]["IPAMConfig"]["IPv4Address"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    d.engine(move |e| {
        // docker-compose takes a new container off the network it was created on and puts
        // it back with its aliases, before the first start: for a container that is not
        // running, that pair only sets the aliases (berth cannot yet take a container off
        // its first network).
        let stopped = !e.state(&e.resolve(&container)?.id).running();
        let primary = berth_engine::networks::is_primary(e, &id, &container)?;
        match (connect, stopped && primary) {
            (true, true) => berth_engine::networks::set_primary_endpoint(e, &container, &aliases, ip.as_deref())?,
            (true, false) => berth_engine::networks::connect(e, &id, &container, &aliases, ip.as_deref())?,
            (false, true) => {}
            (false, false) => berth_engine::networks::disconnect(e, &id, &container)?,
        }
        Ok(())
    })
    .await?;
    Ok(empty(StatusCode::OK))
}

/// `POST /networks/prune`: user networks without containers.
pub async fn network_prune(d: &Arc<Daemon>, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let keep = crate::prune_filter(&query(req), &["label", "label!", "until"])?;
    let gone = d
        .engine(move |e| {
            let mut gone = Vec::new();
            for n in berth_engine::networks::list(e)? {
                if ["bridge", "host", "none"].contains(&n.name.as_str()) || !keep(&n.labels, &n.created) {
                    continue;
                }
                if berth_engine::networks::remove(e, &n.name).is_ok() {
                    gone.push(n.name);
                }
            }
            Ok(gone)
        })
        .await?;
    Ok(json_response(StatusCode::OK, &json!({ "NetworksDeleted": gone })))
}
