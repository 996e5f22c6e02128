//! `GetContainerEvents`: the engine's event log, read as it grows, as the CRI's container
//! events (created, started, stopped, deleted) of the containers the CRI made.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use berth_engine::store::Engine;
use k8s_cri::v1 as cri;
use tonic::Status;

use crate::{container, sandbox, Cri};

/// How often the log is read.
const POLL: Duration = Duration::from_millis(100);

type Item = Result<cri::ContainerEventResponse, Status>;

/// What a subscription knows between reads: the last row seen, and the CRI's containers
/// with their sandboxes (a deleted container's record is gone when its event is read).
struct Cursor {
    seq: i64,
    since: i64,
    known: HashMap<String, String>,
}

fn event_type(action: &str) -> Option<cri::ContainerEventType> {
    Some(match action {
        "create" => cri::ContainerEventType::ContainerCreatedEvent,
        "start" => cri::ContainerEventType::ContainerStartedEvent,
        "die" => cri::ContainerEventType::ContainerStoppedEvent,
        "destroy" => cri::ContainerEventType::ContainerDeletedEvent,
        _ => return None,
    })
}

/// The sandbox of a container the CRI made, read from its record: CRI containers are named
/// `k8s_...` in a pod (its `cri.json` may not be written yet when `create` is read).
fn cri_sandbox(engine: &Engine, id: &str) -> Option<String> {
    let r = engine.resolve(id).ok()?;
    (r.name.starts_with("k8s_") && !r.pod.is_empty() && !r.infra).then_some(r.pod)
}

/// Reads what the log gained since `cur`, as responses.
fn read(engine: &Engine, cur: &mut Cursor) -> Result<Vec<cri::ContainerEventResponse>, Status> {
    let mut out = Vec::new();
    for e in berth_engine::events::after(engine, cur.seq, cur.since).map_err(crate::engine_status)? {
        cur.seq = e.seq;
        if e.kind != "container" {
            continue;
        }
        let Some(kind) = event_type(&e.action) else { continue };
        let sandbox_id = match cur.known.get(&e.id) {
            Some(s) => s.clone(),
            None => match cri_sandbox(engine, &e.id) {
                Some(s) => {
                    cur.known.insert(e.id.clone(), s.clone());
                    s
                }
                None => continue,
            },
        };
        if kind == cri::ContainerEventType::ContainerDeletedEvent {
            cur.known.remove(&e.id);
        }
        out.push(cri::ContainerEventResponse {
            container_id: e.id.clone(),
            container_event_type: kind as i32,
            created_at: e.time_nano,
            pod_sandbox_status: sandbox::status(engine, &sandbox_id).ok(),
            containers_statuses: container::status(engine, &e.id).ok().into_iter().collect(),
        });
    }
    Ok(out)
}

/// A subscription from now on: a task reads the log every [`POLL`] and sends what it finds
/// until the client goes.
pub async fn subscribe(cri: &Arc<Cri>) -> Result<tokio_stream::wrappers::ReceiverStream<Item>, Status> {
    let since = crate::now_nanos();
    let known = cri
        .run(|_, e, _| {
            Ok(container::list(e, None)?
                .into_iter()
                .map(|c| (c.id, c.pod_sandbox_id))
                .collect::<HashMap<_, _>>())
        })
        .await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Item>(64);
    let cri = cri.clone();
    tokio::spawn(async move {
        let mut cur = Some(Cursor { seq: 0, since, known });
        while !tx.is_closed() {
            let Some(mut c) = cur.take() else { break };
            let (got, back) = match cri
                .run(move |_, e, _| {
                    let r = read(e, &mut c);
                    Ok((r, c))
                })
                .await
            {
                Ok(v) => v,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    break;
                }
            };
            cur = Some(back);
            match got {
                Ok(events) => {
                    for ev in events {
                        if tx.send(Ok(ev)).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    break;
                }
            }
            tokio::time::sleep(POLL).await;
        }
    });
    Ok(tokio_stream::wrappers::ReceiverStream::new(rx))
}
