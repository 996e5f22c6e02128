//! The container routes: create, list, inspect, start, stop, kill, wait, remove, rename,
//! pause, update, prune, and what a container reports (`top`, `stats`, `changes`).

use std::sync::Arc;
use std::time::Duration;

use berth_engine::attach::{self as att, Hello};
use berth_engine::store::Status;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::streams::{bridge, channel_body, dbg_api, observe, PendingAttach};
use crate::{empty, flag, json_body, json_response, query, ApiError, Body, Daemon};

pub use crate::create_body::options_from;

/// `POST /containers/create`.
pub async fn create(d: &Arc<Daemon>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let q = query(&req);
    let body = json_body(req).await?;
    let o = options_from(&body, q.get("name").cloned())?;
    berth_engine::ops::check_limits(&o)?;
    let image = o.image.clone();
    let made = d
        .with_images(move |e, s| {
            if s.resolve(&o.image).is_err() {
                return Err(ApiError::not_found(format!("No such image: {image}")));
            }
            Ok(berth_engine::ops::create(e, s, &o)?)
        })
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"Id": made.record.id, "Warnings": made.warnings}),
    ))
}

/// `GET /containers/{id}/json`.
pub async fn inspect(d: &Arc<Daemon>, req: &Request<Incoming>, id: String) -> Result<Response<Body>, ApiError> {
    let size = flag(&query(req), "size");
    let v = d
        .with_images(move |e, s| {
            let r = e.resolve(&id)?;
            let mut v = berth_engine::inspect::inspect_json(e, &r);
            if size {
                let (rw, rootfs) = berth_engine::inspect::container_sizes(e, s, &r);
                v["SizeRw"] = json!(rw);
                v["SizeRootFs"] = json!(rootfs);
            }
            Ok(v)
        })
        .await?;
    Ok(json_response(StatusCode::OK, &v))
}

/// `GET /containers/json`.
pub async fn list(d: &Arc<Daemon>, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let q = query(req);
    let all = flag(&q, "all");
    let limit: Option<usize> = q
        .get("limit")
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|n| *n > 0)
        .and_then(|n| usize::try_from(n).ok());
    let filters =
        berth_engine::list::Filters::from_map(&crate::filters(&q)?).map_err(|e| ApiError::bad(e.to_string()))?;
    let size = flag(&q, "size");
    let v = d
        .with_images(move |e, s| {
            let mut out = Vec::new();
            let opts = berth_engine::list::ListOptions { all, limit, filters };
            for (r, st) in berth_engine::list::containers(e, &opts)? {
                let state = st.status;
                let i = berth_engine::inspect::inspect_json(e, &r);
                let ports: Vec<Value> = st
                    .net
                    .as_ref()
                    .map(|a| {
                        a.ports
                            .iter()
                            .map(|p| json!({"IP": if p.host_ip.is_empty() { "0.0.0.0" } else { &p.host_ip }, "PrivatePort": p.port, "PublicPort": p.host_port, "Type": p.proto}))
                            .collect()
                    })
                    .unwrap_or_default();
                let created = berth_oci::time::parse_rfc3339(&r.created).unwrap_or(0);
                let mut cmd = vec![r.path.clone()];
                cmd.extend(r.args.iter().cloned());
                out.push(json!({
                    "Id": r.id,
                    "Names": [format!("/{}", r.name)],
                    "Image": r.image_name,
                    "ImageID": r.image_id,
                    "Command": cmd.join(" "),
                    "Created": created,
                    "Ports": ports,
                    "Labels": r.labels,
                    "State": state,
                    "Status": berth_engine::inspect::status_text(&st),
                    "HostConfig": {"NetworkMode": if r.network_mode.is_empty() { "default".to_string() } else { r.network_mode.clone() }},
                    "NetworkSettings": {"Networks": i["NetworkSettings"]["Networks"].clone()},
                    "Mounts": i["Mounts"].clone(),
                }));
                if size {
                    if let Some(last) = out.last_mut() {
                        let (rw, rootfs) = berth_engine::inspect::container_sizes(e, s, &r);
                        last["SizeRw"] = json!(rw);
                        last["SizeRootFs"] = json!(rootfs);
                    }
                }
            }
            Ok(out)
        })
        .await?;
    Ok(json_response(StatusCode::OK, &Value::Array(v)))
}

/// `POST /containers/{id}/start`.
pub async fn start(d: &Arc<Daemon>, id: String) -> Result<Response<Body>, ApiError> {
    let full_id = d
        .engine({
            let id = id.clone();
            move |e| {
                let r = e.resolve(&id)?;
                Ok((r.id.clone(), e.state(&r.id).running()))
            }
        })
        .await?;
    let (cid, running) = full_id;
    if running {
        return Ok(empty(StatusCode::NOT_MODIFIED));
    }
    let mut pending: Vec<PendingAttach> = d
        .pending
        .lock()
        .ok()
        .and_then(|mut m| m.remove(&cid))
        .unwrap_or_default();
    let first = if pending.is_empty() {
        None
    } else {
        Some(pending.remove(0))
    };
    let hello = first.as_ref().map(|p| p.hello).unwrap_or(Hello {
        stdin: false,
        stdout: false,
        stderr: false,
        rows: 0,
        cols: 0,
    });
    let exe = d.exe.clone();
    let stream = d
        .engine({
            let cid = cid.clone();
            move |e| Ok(berth_engine::ops::start_attached(e, &cid, &exe, Some(&hello))?)
        })
        .await
        .inspect_err(|_| d.exited.notify_waiters())?;
    dbg_api(&format!(
        "start {cid}: stream {} first {}",
        stream.is_some(),
        first.is_some()
    ));
    if let Some(stream) = stream {
        if let Ok(mut w) = d.watching.lock() {
            w.insert(cid.clone());
        }
        match first {
            Some(p) => {
                let (dd, c) = (d.clone(), cid.clone());
                tokio::spawn(async move {
                    if let Ok(io) = p.io.await {
                        bridge(dd, c, io, stream, p.tty, p.hello.stdin).await;
                    }
                });
            }
            None => {
                tokio::spawn(observe(d.clone(), cid.clone(), stream));
            }
        }
    }
    // Further attaches made before the start join the running container.
    for p in pending {
        let (dd, c, root) = (d.clone(), cid.clone(), d.root.clone());
        tokio::spawn(async move {
            let Ok(io) = p.io.await else { return };
            let hello = p.hello;
            let dir = berth_engine::store::Engine::open(&root).map(|e| e.dir(&c));
            let Ok(dir) = dir else { return };
            if let Ok(Ok(s)) = tokio::task::spawn_blocking(move || att::connect(&dir, &hello)).await {
                bridge(dd, c, io, s, p.tty, p.hello.stdin).await;
            }
        });
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/stop` and `/restart`.
pub async fn stop(
    d: &Arc<Daemon>,
    req: &Request<Incoming>,
    id: String,
    restart: bool,
) -> Result<Response<Body>, ApiError> {
    let q = query(req);
    let t = q
        .get("t")
        .and_then(|t| t.parse::<i64>().ok())
        .map(|t| u64::try_from(t).unwrap_or(0));
    let signal = q.get("signal").filter(|s| !s.is_empty()).cloned();
    let was_running = d
        .engine({
            let id = id.clone();
            move |e| {
                let r = e.resolve(&id)?;
                let running = e.state(&r.id).running();
                if running {
                    berth_engine::ops::stop(e, &r.id, t, signal.as_deref())?;
                }
                Ok(running)
            }
        })
        .await?;
    if restart {
        return start(d, id).await.map(|_| empty(StatusCode::NO_CONTENT));
    }
    Ok(empty(if was_running {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    }))
}

/// `POST /containers/{id}/kill`.
pub async fn kill(d: &Arc<Daemon>, req: &Request<Incoming>, id: String) -> Result<Response<Body>, ApiError> {
    let q = query(req);
    let signal = q
        .get("signal")
        .filter(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| "KILL".into());
    d.engine(move |e| {
        let r = e.resolve(&id)?;
        if !e.state(&r.id).running() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("Cannot kill container: {id}: Container {} is not running", r.id),
            ));
        }
        Ok(berth_engine::ops::kill(e, &r.id, &signal)?)
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/wait?condition=not-running|next-exit|removed`.
pub async fn wait(d: &Arc<Daemon>, req: &Request<Incoming>, id: String) -> Result<Response<Body>, ApiError> {
    let q = query(req);
    let condition = q.get("condition").cloned().unwrap_or_else(|| "not-running".into());
    if !["not-running", "next-exit", "removed", ""].contains(&condition.as_str()) {
        return Err(ApiError::bad(format!("invalid condition: \"{condition}\"")));
    }
    let (cid, status, code) = d
        .engine({
            let id = id.clone();
            move |e| {
                let r = e.resolve(&id)?;
                let st = e.state(&r.id);
                Ok((r.id, st.status, st.exit_code))
            }
        })
        .await?;
    let running = matches!(status, Status::Running | Status::Restarting);
    if (condition == "not-running" || condition.is_empty()) && !running {
        return Ok(json_response(
            StatusCode::OK,
            &json!({"StatusCode": code, "Error": null}),
        ));
    }
    // The headers go out at once (clients start the container only after they have them);
    // the body follows when the condition is met.
    let (tx, body) = channel_body();
    let d = d.clone();
    tokio::spawn(async move {
        let c = wait_for(&d, &cid, &condition, status, code).await;
        dbg_api(&format!("wait {cid}: {c}"));
        let _ = tx
            .send(Bytes::from(format!("{}\n", json!({"StatusCode": c, "Error": null}))))
            .await;
    });
    Ok(crate::streamed(body, HeaderValue::from_static("application/json")))
}

/// Waits for `condition`; returns the exit code.
async fn wait_for(d: &Arc<Daemon>, cid: &str, condition: &str, status: Status, code: i32) -> i32 {
    // An exit newer than this one ends the wait (a container never started has none).
    let baseline = if status == Status::Created {
        0
    } else {
        d.last_exit(cid).map_or(0, |(g, _)| g)
    };
    loop {
        let notified = d.exited.notified();
        let last = d.last_exit(cid);
        let state = {
            let cid = cid.to_string();
            d.engine(move |e| Ok(e.resolve(&cid).ok().map(|r| e.state(&r.id))))
                .await
                .ok()
                .flatten()
        };
        let newer = last.filter(|(g, _)| *g > baseline).map(|(_, c)| c);
        match (&state, condition) {
            // Removed: its exit code is on its way from the monitor connection.
            (None, _) if newer.is_none() && d.is_watching(cid) => {}
            (None, _) => return newer.or(last.map(|(_, c)| c)).unwrap_or(code),
            (Some(_), "removed") => {}
            (Some(st), _) => {
                if let Some(c) = newer {
                    return c;
                }
                // Started and ended elsewhere (the CLI): the state file tells.
                if st.status == Status::Exited && status != Status::Exited && last.is_none() {
                    return st.exit_code;
                }
            }
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

/// `DELETE /containers/{id}`.
pub async fn remove(d: &Arc<Daemon>, req: &Request<Incoming>, id: String) -> Result<Response<Body>, ApiError> {
    let q = query(req);
    let (force, volumes) = (flag(&q, "force"), flag(&q, "v"));
    d.engine(move |e| {
        let r = e.resolve(&id)?;
        if !force && e.state(&r.id).running() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("cannot remove container \"/{}\": container is running: stop the container before removing or force remove", r.name),
            ));
        }
        berth_engine::ops::remove(e, &r.id, force, volumes)?;
        Ok(())
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
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
    // The engine keeps a quota per 100 ms period.
    let cpu_quota = crate::create_body::nano_cpus(
        set_i64(&body, "NanoCpus")?,
        set_i64(&body, "CpuQuota")?,
        set_i64(&body, "CpuPeriod")?,
    )?
    .map(|n| n / 10_000);
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
        cpuset_mems: body["CpusetMems"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        hugepage_limits: None,
        unified: None,
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
