//! The volume routes.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::{empty, json_body, json_response, query, ApiError, Body, Daemon};

/// `GET /volumes`.
pub async fn volumes(d: &Arc<Daemon>, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let filters = crate::filters(&query(req))?;
    let v = d
        .engine(move |e| {
            let list: Vec<Value> = berth_engine::volumes::filtered(e, &filters)?
                .iter()
                .map(|n| berth_engine::inspect::volume_json(e, n))
                .collect();
            Ok(json!({"Volumes": list, "Warnings": []}))
        })
        .await?;
    Ok(json_response(StatusCode::OK, &v))
}

/// `POST /volumes/create`.
pub async fn volume_create(d: &Arc<Daemon>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let body = json_body(req).await?;
    let driver = body["Driver"].as_str().unwrap_or("local").to_string();
    let name = body["Name"].as_str().map(str::to_string);
    let strmap = |v: &Value, what: &str| -> Result<std::collections::BTreeMap<String, String>, ApiError> {
        match v {
            Value::Null => Ok(Default::default()),
            Value::Object(m) => m
                .iter()
                .map(|(k, x)| match x.as_str() {
                    Some(s) => Ok((k.clone(), s.to_string())),
                    None => Err(ApiError::bad(format!("{what} {k:?}: a string is expected"))),
                })
                .collect(),
            _ => Err(ApiError::bad(format!("{what}: an object is expected"))),
        }
    };
    let meta = berth_engine::volumes::VolumeMeta {
        labels: strmap(&body["Labels"], "label")?,
        options: strmap(&body["DriverOpts"], "driver option")?,
    };
    let v = d
        .engine(move |e| {
            let name = berth_engine::volumes::create_volume(e, name.as_deref(), &driver, &meta)?;
            Ok(berth_engine::inspect::volume_json(e, &name))
        })
        .await?;
    Ok(json_response(StatusCode::CREATED, &v))
}

/// `GET /volumes/{name}`.
pub async fn volume_inspect(d: &Arc<Daemon>, name: String) -> Result<Response<Body>, ApiError> {
    let v = d
        .engine(move |e| {
            if !berth_engine::volumes::list(e)?.contains(&name) {
                return Err(ApiError::not_found(format!("get {name}: no such volume")));
            }
            Ok(berth_engine::inspect::volume_json(e, &name))
        })
        .await?;
    Ok(json_response(StatusCode::OK, &v))
}

/// `DELETE /volumes/{name}`.
pub async fn volume_remove(d: &Arc<Daemon>, name: String) -> Result<Response<Body>, ApiError> {
    d.engine(move |e| {
        if !berth_engine::volumes::list(e)?.contains(&name) {
            return Err(ApiError::not_found(format!("get {name}: no such volume")));
        }
        Ok(berth_engine::volumes::remove(e, &name)?)
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /volumes/prune`: unused anonymous volumes, or every unused volume with the
/// filter `all=true` (as dockerd since API 1.42); `label` filters narrow it.
pub async fn volume_prune(d: &Arc<Daemon>, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let _ = crate::prune_filter(&query(req), &["all", "label"])?;
    let mut filters = crate::filters(&query(req))?;
    let all = filters
        .remove("all")
        .is_some_and(|v| v.iter().any(|x| x == "true" || x == "1"));
    filters.retain(|k, _| k == "label");
    let gone = d
        .engine(move |e| Ok(berth_engine::volumes::prune(e, all, &filters)?))
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"VolumesDeleted": gone, "SpaceReclaimed": 0}),
    ))
}
