//! Registry credentials in Docker's `~/.docker/config.json` (`auths`: base64 `user:password`
//! per registry), so `berth login` and `docker login` share them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::error::{io_err, ImageError, Result};

/// A user name and password (or token).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or personal access token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ***)", self.username)
    }
}

/// The Docker client config file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn config_path() -> PathBuf {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        return PathBuf::from(d).join("config.json");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".docker").join("config.json")
}

/// The key Docker files a registry's credentials under.
pub fn auth_key(registry: &str) -> String {
    if registry == berth_oci::DEFAULT_DOMAIN {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    }
}

fn read(path: &Path) -> Result<Value> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| ImageError::Invalid(format!("{}: malformed JSON: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({})),
        Err(e) => Err(io_err("reading", path)(e)),
    }
}

/// The stored credentials for a registry, if any.
pub fn lookup(path: &Path, registry: &str) -> Result<Option<Credentials>> {
    let v = read(path)?;
    let Some(auths) = v.get("auths").and_then(Value::as_object) else {
        return Ok(None);
    };
    let key = auth_key(registry);
    let entry = auths.get(&key).or_else(|| {
        auths.iter().find_map(|(k, e)| {
            let host = k
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap_or("");
            (host == registry || (registry == berth_oci::DEFAULT_DOMAIN && host == "index.docker.io")).then_some(e)
        })
    });
    let Some(auth) = entry.and_then(|e| e.get("auth")).and_then(Value::as_str) else {
        return Ok(None);
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|e| ImageError::Invalid(format!("{}: bad auth for {key}: {e}", path.display())))?;
    let text = String::from_utf8(raw)
        .map_err(|_| ImageError::Invalid(format!("{}: auth for {key} is not UTF-8", path.display())))?;
    let (u, p) = text
        .split_once(':')
        .ok_or_else(|| ImageError::Invalid(format!("{}: auth for {key} is not user:password", path.display())))?;
    Ok(Some(Credentials {
        username: u.to_string(),
        password: p.to_string(),
    }))
}

/// Stores credentials (keeping every other key of the file), written atomically, mode 0600.
pub fn store(path: &Path, registry: &str, creds: Option<&Credentials>) -> Result<bool> {
    let mut v = read(path)?;
    if !v.is_object() {
        v = json!({});
    }
    let obj = v
        .as_object_mut()
        .ok_or_else(|| ImageError::Invalid("config is not an object".into()))?;
    let auths = obj.entry("auths").or_insert_with(|| json!({}));
    if !auths.is_object() {
        *auths = json!({});
    }
    let map: &mut serde_json::Map<String, Value> = auths
        .as_object_mut()
        .ok_or_else(|| ImageError::Invalid("auths is not an object".into()))?;
    let key = auth_key(registry);
    let changed = match creds {
        Some(c) => {
            let enc = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.password));
            map.insert(key, json!({ "auth": enc }));
            true
        }
        None => map.remove(&key).is_some(),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    }
    let tmp = path.with_extension("json.berth-tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err("writing", &tmp))?;
        let text = serde_json::to_string_pretty(&v).map_err(|e| ImageError::Invalid(e.to_string()))?;
        f.write_all(text.as_bytes()).map_err(io_err("writing", &tmp))?;
        f.sync_all().map_err(io_err("syncing", &tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io_err("renaming into", path))?;
    Ok(changed)
}

/// Parses a `WWW-Authenticate` header: the scheme and its parameters.
pub fn parse_challenge(h: &str) -> (String, BTreeMap<String, String>) {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = BTreeMap::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let Some((k, after)) = s.split_once('=') else { break };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            let mut val = String::new();
            let mut end = q.len();
            let mut esc = false;
            for (i, c) in q.char_indices() {
                if esc {
                    val.push(c);
                    esc = false;
                } else if c == '\\' {
                    esc = true;
                } else if c == '"' {
                    end = i + 1;
                    break;
                } else {
                    val.push(c);
                }
            }
            (val, &q[end.min(q.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        params.insert(k, v);
        s = next.trim_start().trim_start_matches(',').trim_start();
    }
    (scheme.to_ascii_lowercase(), params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        );
        assert_eq!(s, "bearer");
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/busybox:pull,push");
        let (s, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!((s.as_str(), p["realm"].as_str()), ("basic", "Registry Realm"));
    }

    #[test]
    fn store_lookup_and_remove_keep_other_keys() {
        let dir = berth_testutil::TempDir::new("auth");
        let p = dir.path().join("config.json");
        std::fs::write(&p, r#"{"credsStore":"x","auths":{"other:1":{"auth":"YTpi"}}}"#).unwrap();
        let c = Credentials {
            username: "u".into(),
            password: "p:w".into(),
        };
        store(&p, "localhost:5000", Some(&c)).unwrap();
        assert_eq!(lookup(&p, "localhost:5000").unwrap(), Some(c));
        assert_eq!(lookup(&p, "other:1").unwrap().unwrap().username, "a");
        assert!(store(&p, "localhost:5000", None).unwrap());
        assert_eq!(lookup(&p, "localhost:5000").unwrap(), None);
        let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["credsStore"], "x");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
