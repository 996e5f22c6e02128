//! The event log (what `docker events` reads): one row per container, image, network or volume
//! event, written by whichever berth process made it happen (the CLI, the daemon, a
//! monitor), kept for a day.

use rusqlite::params;
use serde_json::{json, Value};

use crate::store::{Engine, Record};
use crate::Result;

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Its row (ascending).
    pub seq: i64,
    /// Nanoseconds since the epoch.
    pub time_nano: i64,
    /// `container`, `network`, `volume`.
    pub kind: String,
    /// `create`, `start`, `die`, `destroy`...
    pub action: String,
    /// The object's id (a volume's name).
    pub id: String,
    /// Attributes (name, image, exitCode, signal...).
    pub attributes: Value,
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Records an event; a failure to record never fails the operation.
pub fn record(engine: &Engine, kind: &str, action: &str, id: &str, attributes: Value) {
    let t = now_nanos();
    let _ = engine.conn().execute(
        "INSERT INTO events(time_nano, kind, action, actor, attributes) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![t, kind, action, id, attributes.to_string()],
    );
    // Older than a day: gone. Checked every 256th event, not on every start and exit.
    if engine.conn().last_insert_rowid() % 256 == 0 {
        let _ = engine.conn().execute(
            "DELETE FROM events WHERE time_nano < ?1",
            params![t - 86_400_000_000_000],
        );
    }
}

/// Records a container event with Docker's attributes (name, image, labels, and `extra`).
pub fn container(engine: &Engine, r: &Record, action: &str, extra: &[(&str, String)]) {
    let mut a = json!({"name": r.name, "image": r.image_name});
    for (k, v) in &r.labels {
        a[k] = json!(v);
    }
    for (k, v) in extra {
        a[*k] = json!(v);
    }
    record(engine, "container", action, &r.id, a);
}

/// Records an image event: `id` is the image id or the reference acted on, `name` the
/// reference (Docker's `name` attribute).
pub fn image(engine: &Engine, action: &str, id: &str, name: &str) {
    record(engine, "image", action, id, json!({"name": name}));
}

/// Events after row `after` and at or after `since_nano`, oldest first.
pub fn after(engine: &Engine, after: i64, since_nano: i64) -> Result<Vec<Event>> {
    let mut st = engine.conn().prepare(
        "SELECT seq, time_nano, kind, action, actor, attributes FROM events WHERE seq > ?1 AND time_nano >= ?2 ORDER BY seq",
    )?;
    let rows = st.query_map(params![after, since_nano], |r| {
        Ok(Event {
            seq: r.get(0)?,
            time_nano: r.get(1)?,
            kind: r.get(2)?,
            action: r.get(3)?,
            id: r.get(4)?,
            attributes: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or(Value::Null),
        })
    })?;
    Ok(rows.filter_map(std::result::Result::ok).collect())
}

/// Docker's JSON for an event.
pub fn to_json(e: &Event) -> Value {
    let mut v = json!({
        "Type": e.kind,
        "Action": e.action,
        "Actor": {"ID": e.id, "Attributes": e.attributes},
        "scope": "local",
        "time": e.time_nano / 1_000_000_000,
        "timeNano": e.time_nano,
    });
    // The old top-level fields, which Docker still sends for container and image events.
    if e.kind == "container" || e.kind == "image" {
        v["status"] = json!(e.action);
        v["id"] = json!(e.id);
        if let Some(from) = e.attributes.get("image") {
            v["from"] = from.clone();
        }
    }
    v
}
