//! The cluster store overlay networks are coordinated through (issue #21): a small
//! key-value trait with compare-and-swap creation and leases, and its etcd implementation.
//!
//! The etcd client speaks etcd's v3 API through its JSON gateway (`/v3/kv/range`,
//! `/v3/kv/txn`, `/v3/lease/grant`, ...) over plain HTTP/1.1 with a socket per call:
//! synchronous, so the engine and the monitor stay without an async runtime (the gRPC
//! client, `etcd-client`, needs tokio; ARCHITECTURE.md says why this departs from it).
//!
//! On it: hosts register with their VTEP under a lease (a dead host's entry goes when the
//! lease does), and addresses are allocated by creating their key only if absent, so two
//! hosts racing for one address cannot both get it.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::{EngineError, Result};

/// One key's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
}

/// What overlay networks need of a cluster store.
pub trait Store {
    /// The entries whose keys start with `prefix`, sorted by key.
    fn list(&self, prefix: &str) -> Result<Vec<Entry>>;
    /// Creates `key` only if it does not exist (atomically); whether it did. `lease` 0: none.
    fn create(&self, key: &str, value: &[u8], lease: i64) -> Result<bool>;
    /// Sets `key`.
    fn put(&self, key: &str, value: &[u8], lease: i64) -> Result<()>;
    /// Removes `key` (a missing one is no error).
    fn delete(&self, key: &str) -> Result<()>;
    /// A lease of `ttl` seconds; its id.
    fn grant(&self, ttl: i64) -> Result<i64>;
    /// Renews a lease.
    fn keep_alive(&self, lease: i64) -> Result<()>;
}

/// etcd, at one or more `host:port` endpoints (tried in order).
#[derive(Debug, Clone)]
pub struct Etcd {
    /// The endpoints.
    pub endpoints: Vec<String>,
    /// Each call's limit.
    pub timeout: Duration,
}

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn unb64(v: &Value) -> Vec<u8> {
    v.as_str()
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .unwrap_or_default()
}

/// The end of a prefix's key range: the prefix with its last byte incremented.
fn range_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// A JSON number that etcd's gateway writes as a string (int64).
fn int(v: &Value) -> i64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_i64())
        .unwrap_or(0)
}

impl Etcd {
    /// `etcd://HOST:PORT[,HOST:PORT...]`.
    pub fn parse(url: &str) -> Result<Etcd> {
        let rest = url
            .strip_prefix("etcd://")
            .ok_or_else(|| EngineError::Invalid(format!("cluster store {url:?}: etcd://HOST:PORT[,HOST:PORT...]")))?;
        let endpoints: Vec<String> = rest
            .split(',')
            .map(|e| e.trim().trim_end_matches('/').to_string())
            .filter(|e| !e.is_empty())
            .collect();
        if endpoints.is_empty() || endpoints.iter().any(|e| !e.contains(':')) {
            return Err(EngineError::Invalid(format!(
                "cluster store {url:?}: each endpoint is HOST:PORT"
            )));
        }
        Ok(Etcd {
            endpoints,
            timeout: Duration::from_secs(3),
        })
    }

    /// POSTs `body` to `path` on the first endpoint that answers; the answer's JSON.
    fn call(&self, path: &str, body: &Value) -> Result<Value> {
        let mut errors = Vec::new();
        for ep in &self.endpoints {
            match self.call_one(ep, path, body) {
                Ok(v) => return Ok(v),
                Err(e) => errors.push(format!("{ep}: {e}")),
            }
        }
        Err(EngineError::Invalid(format!(
            "the cluster store is unreachable ({})",
            errors.join("; ")
        )))
    }

    fn call_one(&self, ep: &str, path: &str, body: &Value) -> std::result::Result<Value, String> {
        let addr = ep
            .to_socket_addrs()
            .map_err(|e| e.to_string())?
            .next()
            .ok_or_else(|| "no address".to_string())?;
        let mut s = TcpStream::connect_timeout(&addr, self.timeout).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(self.timeout)).map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(self.timeout)).map_err(|e| e.to_string())?;
        let payload = body.to_string();
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {ep}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
            payload.len()
        );
        s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        // A streaming answer (keep-alive) stays open: its first message is enough.
        let mut buf = [0u8; 8192];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(e)
                    if !raw.is_empty()
                        && matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    break
                }
                Err(e) => return Err(e.to_string()),
            }
            if path.ends_with("keepalive") && raw.windows(4).any(|w| w == b"\r\n\r\n") && raw.ends_with(b"\n") {
                break;
            }
        }
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| "a malformed answer".to_string())?;
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let status = head.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut body = raw[split + 4..].to_vec();
        if is_chunked(&head) {
            let mut data = Vec::new();
            Dechunk::default().feed(&body, &mut data)?;
            body = data;
        }
        // The first JSON object of the body (a stream's first message).
        let json = serde_json::Deserializer::from_slice(&body)
            .into_iter::<Value>()
            .next()
            .and_then(std::result::Result::ok)
            .filter(Value::is_object)
            .ok_or_else(|| format!("HTTP {status}: no JSON object in the answer"))?;
        if status != "200" {
            return Err(format!(
                "HTTP {status}: {}",
                json["error"].as_str().or(json["message"].as_str()).unwrap_or("")
            ));
        }
        Ok(json.get("result").cloned().unwrap_or(json))
    }
}

impl Store for Etcd {
    fn list(&self, prefix: &str) -> Result<Vec<Entry>> {
        Ok(self.list_at(prefix)?.0)
    }

    fn create(&self, key: &str, value: &[u8], lease: i64) -> Result<bool> {
        let v = self.call(
            "/v3/kv/txn",
            &json!({
                "compare": [{"key": b64(key.as_bytes()), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
                "success": [{"request_put": {"key": b64(key.as_bytes()), "value": b64(value), "lease": lease.to_string()}}],
            }),
        )?;
        Ok(v["succeeded"].as_bool().unwrap_or(false))
    }

    fn put(&self, key: &str, value: &[u8], lease: i64) -> Result<()> {
        self.call(
            "/v3/kv/put",
            &json!({"key": b64(key.as_bytes()), "value": b64(value), "lease": lease.to_string()}),
        )?;
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.call("/v3/kv/deleterange", &json!({"key": b64(key.as_bytes())}))?;
        Ok(())
    }

    fn grant(&self, ttl: i64) -> Result<i64> {
        let v = self.call("/v3/lease/grant", &json!({"TTL": ttl.to_string()}))?;
        let id = int(&v["ID"]);
        if id == 0 {
            return Err(EngineError::Invalid(format!("the cluster store granted no lease: {v}")));
        }
        Ok(id)
    }

    fn keep_alive(&self, lease: i64) -> Result<()> {
        let v = self.call("/v3/lease/keepalive", &json!({"ID": lease.to_string()}))?;
        if int(&v["TTL"]) <= 0 {
            return Err(EngineError::Invalid(format!("lease {lease} has expired")));
        }
        Ok(())
    }
}

/// One change under a watched prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A key set (made or changed).
    Put(Entry),
    /// A key removed.
    Delete(String),
}

impl Etcd {
    /// The entries under `prefix` and the store's revision they were read at (a watch from
    /// the next revision misses nothing that came after).
    pub fn list_at(&self, prefix: &str) -> Result<(Vec<Entry>, i64)> {
        let v = self.call(
            "/v3/kv/range",
            &json!({"key": b64(prefix.as_bytes()), "range_end": b64(&range_end(prefix))}),
        )?;
        let mut out: Vec<Entry> = v["kvs"]
            .as_array()
            .map(|kvs| {
                kvs.iter()
                    .map(|kv| Entry {
                        key: String::from_utf8_lossy(&unb64(&kv["key"])).into_owned(),
                        value: unb64(&kv["value"]),
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok((out, int(&v["header"]["revision"])))
    }

    /// Watches `prefix` from revision `from` (0: from now): `on_change` gets each change as
    /// etcd streams it (and `None` after half a second without one, so a caller can stop),
    /// until it returns false. The stream is read from etcd's JSON gateway (`/v3/watch`,
    /// one JSON message per chunk); a broken stream is an error (the caller resyncs and
    /// watches again).
    pub fn watch(&self, prefix: &str, from: i64, on_change: &mut dyn FnMut(Option<Change>) -> bool) -> Result<()> {
        let ep = self
            .endpoints
            .first()
            .ok_or_else(|| EngineError::Invalid("no cluster store endpoint".into()))?;
        let bad = |e: std::io::Error| EngineError::Invalid(format!("watching {prefix} on {ep}: {e}"));
        let addr = ep
            .to_socket_addrs()
            .map_err(bad)?
            .next()
            .ok_or_else(|| EngineError::Invalid(format!("{ep}: no address")))?;
        let mut s = TcpStream::connect_timeout(&addr, self.timeout).map_err(bad)?;
        let mut create = json!({"key": b64(prefix.as_bytes()), "range_end": b64(&range_end(prefix))});
        if from > 0 {
            create["start_revision"] = json!(from.to_string());
        }
        let body = json!({ "create_request": create }).to_string();
        let req = format!(
            "POST /v3/watch HTTP/1.1\r\nHost: {ep}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).map_err(bad)?;
        s.set_read_timeout(Some(Duration::from_millis(500))).map_err(bad)?;
        // The answer's head, then its body (chunked: decoded as it comes) in `pending`.
        let mut head: Option<bool> = None;
        let mut raw = Vec::new();
        let mut dechunk = Dechunk::default();
        let mut pending = Vec::new();
        let mut buf = [0u8; 16384];
        loop {
            let n = match s.read(&mut buf) {
                Ok(n) => n,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    if !on_change(None) {
                        return Ok(());
                    }
                    continue;
                }
                Err(e) => return Err(bad(e)),
            };
            if n == 0 {
                return Err(EngineError::Invalid(format!(
                    "watching {prefix} on {ep}: the stream ended"
                )));
            }
            match head {
                Some(true) => dechunk
                    .feed(&buf[..n], &mut pending)
                    .map_err(|e| EngineError::Invalid(format!("watching {prefix} on {ep}: {e}")))?,
                Some(false) => pending.extend_from_slice(&buf[..n]),
                None => {
                    raw.extend_from_slice(&buf[..n]);
                    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let text = String::from_utf8_lossy(&raw[..split]).into_owned();
                    if text.split_whitespace().nth(1) != Some("200") {
                        return Err(EngineError::Invalid(format!(
                            "watching {prefix} on {ep}: {}",
                            text.lines().next().unwrap_or("")
                        )));
                    }
                    let chunked = is_chunked(&text);
                    head = Some(chunked);
                    let rest = raw.split_off(split + 4);
                    if chunked {
                        dechunk
                            .feed(&rest, &mut pending)
                            .map_err(|e| EngineError::Invalid(format!("watching {prefix} on {ep}: {e}")))?;
                    } else {
                        pending.extend_from_slice(&rest);
                    }
                }
            }
            // Each message is a JSON object on a line of its own.
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let Ok(v) = serde_json::from_slice::<Value>(line.trim_ascii()) else {
                    continue;
                };
                let result = v.get("result").unwrap_or(&v);
                for ev in result["events"].as_array().into_iter().flatten() {
                    let kv = &ev["kv"];
                    let key = String::from_utf8_lossy(&unb64(&kv["key"])).into_owned();
                    let change = if ev["type"].as_str() == Some("DELETE") {
                        Change::Delete(key)
                    } else {
                        Change::Put(Entry {
                            key,
                            value: unb64(&kv["value"]),
                        })
                    };
                    if !on_change(Some(change)) {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// Whether an HTTP answer's head says its body is chunked.
fn is_chunked(head: &str) -> bool {
    head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    })
}

/// HTTP/1.1's chunked transfer coding, decoded as the bytes arrive (a body may be split
/// into chunks anywhere, a JSON message too).
#[derive(Debug, Default)]
struct Dechunk {
    raw: Vec<u8>,
    /// The last chunk came: what follows (trailers, the final CRLF) is not body.
    done: bool,
}

impl Dechunk {
    /// Takes `bytes`; appends what they complete of the body to `out`.
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> std::result::Result<(), String> {
        if self.done {
            return Ok(());
        }
        self.raw.extend_from_slice(bytes);
        loop {
            let Some(eol) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return Ok(());
            };
            let line = String::from_utf8_lossy(&self.raw[..eol]).into_owned();
            let hex = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(hex, 16).map_err(|_| format!("a bad chunk size {hex:?}"))?;
            if size == 0 {
                self.raw.clear();
                self.done = true;
                return Ok(());
            }
            let need = eol + 2 + size + 2;
            if self.raw.len() < need {
                return Ok(());
            }
            out.extend_from_slice(&self.raw[eol + 2..eol + 2 + size]);
            self.raw.drain(..need);
        }
    }
}

/// Where a cluster's keys live.
pub const PREFIX: &str = "/berth/";

/// Registers this host (keyed by its VTEP, unique in the cluster) under a lease of `ttl`
/// seconds: when the host stops renewing it, its entry goes. The lease.
pub fn register_host(store: &dyn Store, host: &str, vtep: Ipv4Addr, ttl: i64) -> Result<i64> {
    let lease = store.grant(ttl)?;
    let value = json!({"name": host, "vtep": vtep.to_string()}).to_string();
    store.put(&format!("{PREFIX}hosts/{vtep}"), value.as_bytes(), lease)?;
    Ok(lease)
}

/// Keeps this host registered, on a thread of its own: every third of `ttl` the lease is
/// renewed and the entry written again (the daemon and the overlay agent may both register
/// a host: the entry lasts while either lives); while the store is away the host keeps
/// trying, and registers again (a new lease) once it is back. `lease`: the one
/// [`register_host`] gave, if it could.
pub fn keep_registered(
    store: Etcd,
    host: String,
    vtep: Ipv4Addr,
    ttl: i64,
    lease: Option<i64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut lease = lease;
        let every = Duration::from_millis(u64::try_from(ttl.max(1) * 1000 / 3).unwrap_or(1000));
        let value = json!({"name": host, "vtep": vtep.to_string()}).to_string();
        loop {
            std::thread::sleep(every);
            lease = match lease {
                Some(l)
                    if store.keep_alive(l).is_ok()
                        && store.put(&format!("{PREFIX}hosts/{vtep}"), value.as_bytes(), l).is_ok() =>
                {
                    Some(l)
                }
                _ => register_host(&store, &host, vtep, ttl).ok(),
            };
        }
    })
}

/// This host's cluster settings: the store and the address other hosts reach it at (its
/// VTEP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `etcd://HOST:PORT[,...]`.
    pub store: String,
    /// The VTEP.
    pub advertise: Ipv4Addr,
}

impl Config {
    /// The store's client.
    pub fn etcd(&self) -> Result<Etcd> {
        Etcd::parse(&self.store)
    }
}

/// The daemon's flags, passed on to the monitors and agents it starts.
pub const STORE_ENV: &str = "BERTH_CLUSTER_STORE";
/// See [`STORE_ENV`].
pub const ADVERTISE_ENV: &str = "BERTH_CLUSTER_ADVERTISE";

/// berth's configuration file: `BERTH_CONFIG`, else `/etc/berth/berth.toml`.
pub fn config_path() -> std::path::PathBuf {
    std::env::var_os("BERTH_CONFIG").map_or_else(|| "/etc/berth/berth.toml".into(), Into::into)
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    cluster: Option<FileCluster>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCluster {
    store: String,
    advertise: String,
}

/// `IP` or `IP:PORT` (the port is VxLAN's own, 4789): the address. `what` names the
/// setting in errors.
fn parse_advertise(adv: &str, what: &str) -> Result<Ipv4Addr> {
    let ip = adv.rsplit_once(':').map_or(adv, |(ip, _)| ip);
    ip.parse()
        .map_err(|_| EngineError::Invalid(format!("{what} {adv:?}: an IPv4 address (optionally with :PORT)")))
}

/// Checks a store and advertise pair given as `what_store` and `what_adv` (flag or file
/// key names for errors). Neither: no cluster.
fn pair(store: Option<&str>, advertise: Option<&str>, what_store: &str, what_adv: &str) -> Result<Option<Config>> {
    match (store, advertise) {
        (None, None) => Ok(None),
        (Some(u), Some(a)) => {
            Etcd::parse(u)?;
            Ok(Some(Config {
                store: u.to_string(),
                advertise: parse_advertise(a, what_adv)?,
            }))
        }
        (Some(_), None) => Err(EngineError::Invalid(format!(
            "{what_store} needs {what_adv} (this host's underlay address)"
        ))),
        (None, Some(_)) => Err(EngineError::Invalid(format!("{what_adv} needs {what_store}"))),
    }
}

/// This host's cluster settings: the daemon's (its flags, in [`STORE_ENV`] and
/// [`ADVERTISE_ENV`]), else the `[cluster]` table of berth's configuration file
/// (`store = "etcd://..."`, `advertise = "IP"`). None: this host is in no cluster.
pub fn config() -> Result<Option<Config>> {
    let (s, a) = (std::env::var(STORE_ENV).ok(), std::env::var(ADVERTISE_ENV).ok());
    if s.is_some() || a.is_some() {
        return pair(s.as_deref(), a.as_deref(), STORE_ENV, ADVERTISE_ENV);
    }
    let path = config_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(crate::io_err("reading", &path)(e)),
    };
    let file: File =
        toml::from_str(&text).map_err(|e| EngineError::Invalid(format!("{}: {}", path.display(), e.message())))?;
    match file.cluster {
        None => Ok(None),
        Some(c) => pair(Some(&c.store), Some(&c.advertise), "cluster.store", "cluster.advertise")
            .map_err(|e| EngineError::Invalid(format!("{}: {e}", path.display()))),
    }
}

/// The lease of a host's registration: `BERTH_CLUSTER_TTL` seconds (for tests), else 15.
pub fn ttl() -> i64 {
    std::env::var("BERTH_CLUSTER_TTL")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(15)
}

/// This host's name, for its registration.
pub fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
}

/// `daemon --cluster-store URL --cluster-advertise IP[:PORT]` (else the configuration
/// file's settings): this host registered with its VTEP (an unreachable store is an error
/// here, before anything is served) and kept registered by a thread while the process runs.
/// The settings go into the environment of what the daemon starts (monitors, the overlay
/// agent). Called while the process has one thread. No cluster: nothing to do.
pub fn join(store: Option<&str>, advertise: Option<&str>) -> Result<()> {
    let cfg = match pair(store, advertise, "--cluster-store", "--cluster-advertise")? {
        Some(c) => {
            std::env::set_var(STORE_ENV, &c.store);
            std::env::set_var(ADVERTISE_ENV, c.advertise.to_string());
            c
        }
        None => match config()? {
            Some(c) => c,
            None => return Ok(()),
        },
    };
    let (url, vtep) = (cfg.store.as_str(), cfg.advertise);
    let etcd = cfg.etcd()?;
    let host = hostname().unwrap_or_else(|| vtep.to_string());
    let ttl = ttl();
    let lease = register_host(&etcd, &host, vtep, ttl)
        .map_err(|e| EngineError::Invalid(format!("cluster store {url}: {e}")))?;
    keep_registered(etcd, host, vtep, ttl, Some(lease));
    Ok(())
}

/// The hosts registered now: (name, VTEP).
pub fn hosts(store: &dyn Store) -> Result<Vec<(String, Ipv4Addr)>> {
    Ok(store
        .list(&format!("{PREFIX}hosts/"))?
        .into_iter()
        .filter_map(|e| {
            let v: Value = serde_json::from_slice(&e.value).ok()?;
            Some((v["name"].as_str()?.to_string(), v["vtep"].as_str()?.parse().ok()?))
        })
        .collect())
}

/// Allocates an address of `network`'s `subnet` for `owner`, across hosts: the first one
/// no host holds, claimed by creating its key only if absent (a lost race moves on to the
/// next). The gateway (the subnet's first host) is never handed out.
pub fn allocate_ip(
    store: &dyn Store,
    network: &str,
    subnet: &berth_net::ipam::Subnet,
    owner: &str,
) -> Result<Ipv4Addr> {
    let prefix = format!("{PREFIX}networks/{network}/ips/");
    let mut taken: BTreeSet<Ipv4Addr> = store
        .list(&prefix)?
        .iter()
        .filter_map(|e| e.key[prefix.len()..].parse().ok())
        .collect();
    taken.insert(subnet.first_host());
    loop {
        let ip = subnet
            .allocate(&taken, network)
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        if store.create(&format!("{prefix}{ip}"), owner.as_bytes(), 0)? {
            return Ok(ip);
        }
        taken.insert(ip);
    }
}

/// Gives an address back.
pub fn release_ip(store: &dyn Store, network: &str, ip: Ipv4Addr) -> Result<()> {
    store.delete(&format!("{PREFIX}networks/{network}/ips/{ip}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_ranges() {
        let e = Etcd::parse("etcd://127.0.0.1:2379,10.0.0.2:2379").unwrap();
        assert_eq!(e.endpoints, ["127.0.0.1:2379", "10.0.0.2:2379"]);
        Etcd::parse("http://x:1").unwrap_err();
        Etcd::parse("etcd://nohost").unwrap_err();
        assert_eq!(range_end("/berth/"), b"/berth0".to_vec());
        assert_eq!(int(&json!("42")), 42);
    }

    #[test]
    fn chunked_bodies_are_decoded_wherever_they_are_split() {
        // A JSON message split across chunks, one chunk size all digits (which once read
        // as a JSON number, and so as an empty list).
        let parts = ["{\"result\":{\"kvs\"", ":[1,2,3]}}\n       "];
        assert_eq!((parts[0].len(), parts[1].len()), (0x10, 0x12));
        let body: Vec<u8> = parts
            .iter()
            .map(|p| format!("{:x}\r\n{p}\r\n", p.len()))
            .chain(["0\r\n\r\n".to_string()])
            .collect::<String>()
            .into_bytes();
        for cut in 0..body.len() {
            let (mut d, mut out) = (Dechunk::default(), Vec::new());
            d.feed(&body[..cut], &mut out).unwrap();
            d.feed(&body[cut..], &mut out).unwrap();
            assert_eq!(out, parts.concat().as_bytes());
        }
        Dechunk::default().feed(b"zz\r\n", &mut Vec::new()).unwrap_err();
        assert!(is_chunked("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"));
    }

    #[test]
    fn an_unreachable_store_is_named() {
        let mut e = Etcd::parse("etcd://127.0.0.1:1").unwrap();
        e.timeout = Duration::from_millis(200);
        let err = e.list("/x").unwrap_err().to_string();
        assert!(
            err.contains("the cluster store is unreachable") && err.contains("127.0.0.1:1"),
            "{err}"
        );
    }
}
