//! A client for the OCI distribution protocol: manifests and blobs over HTTPS (plain HTTP
//! for registries marked insecure or on loopback when they do not speak TLS), with
//! anonymous, basic and bearer-token authentication (the Docker Hub flow: a 401 names a
//! token realm, the client fetches a token for the scope and retries).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use berth_oci::Digest;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION, RANGE, WWW_AUTHENTICATE};
use reqwest::StatusCode;

use crate::auth::{parse_challenge, Credentials};
use crate::content::BlobWriter;
use crate::error::{ImageError, Result};
use crate::model;

/// Media types a manifest GET accepts.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Registries (host[:port]) where plain HTTP is allowed.
    pub insecure: Vec<String>,
    /// Where credentials come from (Docker's config.json).
    pub auth_file: Option<std::path::PathBuf>,
    /// Credentials given with the request (the daemon's `X-Registry-Auth`, `/auth`); they
    /// take precedence over the config file.
    pub credentials: Option<crate::auth::Credentials>,
    /// containerd's `certs.d` directory: `HOST/hosts.toml` names mirrors and TLS settings
    /// per registry ([`crate::hosts`]).
    pub hosts_dir: Option<std::path::PathBuf>,
}

/// Where per-registry settings are read from unless `BERTH_REGISTRY_CONFIG` says.
pub const DEFAULT_HOSTS_DIR: &str = "/etc/berth/certs.d";

impl Options {
    /// Options from the environment: `BERTH_INSECURE_REGISTRIES` (comma separated) and the
    /// Docker config file.
    pub fn from_env() -> Options {
        let insecure = std::env::var("BERTH_INSECURE_REGISTRIES")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let hosts_dir = std::env::var_os("BERTH_REGISTRY_CONFIG")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::PathBuf::from(DEFAULT_HOSTS_DIR));
        Options {
            insecure,
            auth_file: Some(crate::auth::config_path()),
            credentials: None,
            hosts_dir: Some(hosts_dir),
        }
    }
}

/// One registry.
#[derive(Debug)]
pub struct Registry {
    http: Client,
    host: String,
    base: String,
    creds: Option<Credentials>,
    /// Authorization header values by scope.
    tokens: Mutex<HashMap<String, String>>,
    /// `base` is the API root: paths are given without their `/v2`.
    override_path: bool,
}

/// A fetched manifest or index.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Raw bytes (their digest is the manifest's digest).
    pub bytes: Vec<u8>,
    /// Media type.
    pub media_type: String,
    /// Digest of the bytes.
    pub digest: Digest,
}

/// The HTTP client for a registry: optionally without certificate checks, or trusting extra
/// CA certificates (PEM files).
fn http_client(host: &str, skip_verify: bool, cas: &[std::path::PathBuf]) -> Result<Client> {
    let mut b = Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
        .danger_accept_invalid_certs(skip_verify);
    for ca in cas {
        let pem = std::fs::read(ca).map_err(|err| reg_err(host, format!("reading CA {}: {err}", ca.display())))?;
        let cert =
            reqwest::Certificate::from_pem(&pem).map_err(|err| reg_err(host, format!("CA {}: {err}", ca.display())))?;
        b = b.add_root_certificate(cert);
    }
    b.build()
        .map_err(|err| reg_err(host, format!("creating HTTP client: {err}")))
}

/// The credentials for `host`: the request's, else the config file's.
fn credentials(host: &str, opts: &Options) -> Result<Option<Credentials>> {
    match (&opts.credentials, &opts.auth_file) {
        (Some(c), _) => Ok(Some(c.clone())),
        (None, Some(p)) => crate::auth::lookup(p, host),
        (None, None) => Ok(None),
    }
}

fn is_loopback(host: &str) -> bool {
    let h = host
        .rsplit_once(':')
        .map(|(h, p)| if p.bytes().all(|b| b.is_ascii_digit()) { h } else { host })
        .unwrap_or(host);
    h == "localhost" || h.starts_with("127.") || h == "[::1]"
}

impl Registry {
    /// A client for `host` (a reference's domain).
    pub fn new(host: &str, opts: &Options) -> Result<Registry> {
        let endpoint = if host == berth_oci::DEFAULT_DOMAIN {
            "registry-1.docker.io".to_string()
        } else {
            host.to_string()
        };
        let http = http_client(host, false, &[])?;
        let creds = credentials(host, opts)?;
        let insecure = opts.insecure.iter().any(|i| i == host) || is_loopback(host);
        let base = if insecure {
            // Docker's rule for insecure registries: HTTPS if it answers, else plain HTTP.
            let https = format!("https://{endpoint}");
            let probe = http.get(format!("{https}/v2/")).timeout(Duration::from_secs(5)).send();
            if probe.is_ok() {
                https
            } else {
                format!("http://{endpoint}")
            }
        } else {
            format!("https://{endpoint}")
        };
        Ok(Registry {
            http,
            host: host.to_string(),
            base,
            creds,
            tokens: Mutex::new(HashMap::new()),
            override_path: false,
        })
    }

    /// A client for `host` reached at a configured endpoint (a mirror, or the server a
    /// `hosts.toml` names), with the endpoint's TLS settings.
    pub fn at(host: &str, e: &crate::hosts::Endpoint, opts: &Options) -> Result<Registry> {
        let http = http_client(host, e.skip_verify, &e.ca)?;
        let creds = credentials(host, opts)?;
        Ok(Registry {
            http,
            host: host.to_string(),
            base: e.base.clone(),
            creds,
            tokens: Mutex::new(HashMap::new()),
            override_path: e.override_path,
        })
    }

    /// The clients a pull of `host` tries in order: the endpoints its `hosts.toml` allows
    /// to pull (mirrors first, then the file's server), then the registry itself unless the
    /// file names a server.
    pub fn for_pull(host: &str, opts: &Options) -> Result<Vec<Registry>> {
        let configured = match &opts.hosts_dir {
            Some(dir) => crate::hosts::endpoints(dir, host)?,
            None => crate::hosts::Hosts::default(),
        };
        let mut out = configured
            .endpoints
            .iter()
            .filter(|e| e.pull)
            .map(|e| Registry::at(host, e, opts))
            .collect::<Result<Vec<_>>>()?;
        if !configured.has_server {
            out.push(Registry::new(host, opts)?);
        }
        Ok(out)
    }

    /// The registry's host name as references spell it.
    pub fn host(&self) -> &str {
        &self.host
    }

    fn url(&self, path: &str) -> String {
        match path.strip_prefix("/v2").filter(|_| self.override_path) {
            Some(rest) => format!("{}{rest}", self.base),
            None => format!("{}{}", self.base, path),
        }
    }

    /// Sends a request built by `build`, authenticating on a 401 and retrying once.
    fn send(&self, scope: &str, build: &dyn Fn() -> RequestBuilder) -> Result<Response> {
        let cached = self.tokens.lock().ok().and_then(|t| t.get(scope).cloned());
        let mut req = build();
        if let Some(h) = &cached {
            req = req.header(AUTHORIZATION, h);
        }
        let resp = req.send().map_err(|e| reg_err(&self.host, describe(&e)))?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let header = self.authenticate(&challenge, scope)?;
        if let Ok(mut t) = self.tokens.lock() {
            t.insert(scope.to_string(), header.clone());
        }
        let resp = build()
            .header(AUTHORIZATION, header)
            .send()
            .map_err(|e| reg_err(&self.host, describe(&e)))?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(ImageError::Registry {
                registry: self.host.clone(),
                message: "unauthorized: authentication required".into(),
                unauthorized: true,
            });
        }
        Ok(resp)
    }

    fn authenticate(&self, challenge: &str, scope: &str) -> Result<String> {
        let (scheme, params) = parse_challenge(challenge);
        let basic = self.creds.as_ref().map(|c| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.password))
            )
        });
        match scheme.as_str() {
            "basic" => basic.ok_or_else(|| ImageError::Registry {
                registry: self.host.clone(),
                message: "unauthorized: authentication required (berth login first)".into(),
                unauthorized: true,
            }),
            "bearer" => {
                let realm = params
                    .get("realm")
                    .ok_or_else(|| reg_err(&self.host, "bearer challenge without a realm".into()))?;
                let mut req = self.http.get(realm.as_str());
                let mut query: Vec<(&str, &str)> = Vec::new();
                if let Some(s) = params.get("service") {
                    query.push(("service", s));
                }
                query.push(("scope", scope));
                req = req.query(&query);
                if let Some(b) = &basic {
                    req = req.header(AUTHORIZATION, b);
                }
                let resp = req
                    .send()
                    .map_err(|e| reg_err(&self.host, format!("token server: {}", describe(&e))))?;
                if !resp.status().is_success() {
                    let unauthorized = matches!(resp.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
                    let message = if unauthorized {
                        format!(
                            "unauthorized: authentication required (the token server at {realm} refused {})",
                            if basic.is_some() {
                                "the stored credentials"
                            } else {
                                "anonymous access; berth login first"
                            }
                        )
                    } else {
                        format!("token server at {realm} answered {}", resp.status())
                    };
                    return Err(ImageError::Registry {
                        registry: self.host.clone(),
                        message,
                        unauthorized,
                    });
                }
                let body =
                    read_limited(resp, 1 << 20).map_err(|e| reg_err(&self.host, format!("token server: {e}")))?;
                let v: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|e| reg_err(&self.host, format!("token server: malformed answer: {e}")))?;
                let token = v
                    .get("token")
                    .or_else(|| v.get("access_token"))
                    .and_then(|t| t.as_str())
                    .ok_or_else(|| reg_err(&self.host, "token server: no token in answer".into()))?;
                Ok(format!("Bearer {token}"))
            }
            _ => Err(ImageError::Registry {
                registry: self.host.clone(),
                message: format!("unauthorized (unsupported challenge {challenge:?})"),
                unauthorized: true,
            }),
        }
    }

    /// Fetches a manifest or index by tag or digest; a digest reference is verified.
    pub fn manifest(&self, repo: &str, reference: &str) -> Result<Fetched> {
        let scope = pull_scope(repo);
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let resp = self.send(&scope, &|| self.http.get(&url).header(ACCEPT, MANIFEST_ACCEPT))?;
        let resp = check(&self.host, resp, &format!("manifest {repo}:{reference}"))?;
        let header_type = content_type(resp.headers());
        let bytes = read_limited(resp, 8 << 20).map_err(|e| reg_err(&self.host, format!("reading manifest: {e}")))?;
        let digest = crate::content::sha256(&bytes);
        if let Ok(want) = reference.parse::<Digest>() {
            if want != digest {
                return Err(ImageError::DigestMismatch {
                    what: format!("manifest {repo}@{want}"),
                    expected: want.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        let media_type = model::sniff_media_type(&bytes)
            .or(header_type)
            .unwrap_or_else(|| model::OCI_MANIFEST.to_string());
        Ok(Fetched {
            bytes,
            media_type,
            digest,
        })
    }

    /// Fetches a small blob (a config) whole, verified.
    pub fn blob_bytes(&self, repo: &str, d: &Digest) -> Result<Vec<u8>> {
        let url = self.url(&format!("/v2/{repo}/blobs/{d}"));
        let resp = self.send(&pull_scope(repo), &|| self.http.get(&url))?;
        let resp = check(&self.host, resp, &format!("blob {d}"))?;
        let bytes = read_limited(resp, 64 << 20).map_err(|e| reg_err(&self.host, format!("reading blob {d}: {e}")))?;
        let got = crate::content::sha256(&bytes);
        if &got != d {
            return Err(ImageError::DigestMismatch {
                what: format!("blob {d}"),
                expected: d.to_string(),
                actual: got.to_string(),
            });
        }
        Ok(bytes)
    }

    /// Streams a blob into `w`, resuming from `w.offset()` with a Range request. Calls
    /// `progress` with the bytes present so far.
    pub fn fetch_blob(&self, repo: &str, d: &Digest, w: &mut BlobWriter, progress: &dyn Fn(u64)) -> Result<()> {
        let url = self.url(&format!("/v2/{repo}/blobs/{d}"));
        let offset = w.offset();
        let resp = self.send(&pull_scope(repo), &|| {
            let r = self.http.get(&url);
            if offset > 0 {
                r.header(RANGE, format!("bytes={offset}-"))
            } else {
                r
            }
        })?;
        if resp.status() == StatusCode::RANGE_NOT_SATISFIABLE {
            w.reset()?;
            return self.fetch_blob(repo, d, w, progress);
        }
        let mut resp = check(&self.host, resp, &format!("blob {d}"))?;
        if resp.status() != StatusCode::PARTIAL_CONTENT && w.offset() > 0 {
            w.reset()?;
        }
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = resp
                .read(&mut buf)
                .map_err(|e| reg_err(&self.host, format!("reading blob {d}: {e}")))?;
            if n == 0 {
                break;
            }
            w.write_all(&buf[..n])
                .map_err(|e| reg_err(&self.host, format!("writing blob {d}: {e}")))?;
            progress(w.offset());
        }
        Ok(())
    }

    /// Streams a whole blob from its first byte into `out` (no verification here: the
    /// caller hashes what it writes).
    pub fn fetch_stream(&self, repo: &str, d: &Digest, out: &mut dyn Write, progress: &dyn Fn(u64)) -> Result<()> {
        let url = self.url(&format!("/v2/{repo}/blobs/{d}"));
        let resp = self.send(&pull_scope(repo), &|| self.http.get(&url))?;
        let mut resp = check(&self.host, resp, &format!("blob {d}"))?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut n = 0u64;
        loop {
            let k = resp
                .read(&mut buf)
                .map_err(|e| reg_err(&self.host, format!("reading blob {d}: {e}")))?;
            if k == 0 {
                break;
            }
            out.write_all(&buf[..k])
                .map_err(|e| reg_err(&self.host, format!("writing blob {d}: {e}")))?;
            n += k as u64;
            progress(n);
        }
        Ok(())
    }

    /// Whether the registry has a blob (HEAD).
    pub fn has_blob(&self, repo: &str, d: &Digest) -> Result<bool> {
        let url = self.url(&format!("/v2/{repo}/blobs/{d}"));
        let resp = self.send(&push_scope(repo), &|| self.http.head(&url))?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(reg_err(&self.host, format!("checking blob {d}: {s}"))),
        }
    }

    /// Tries a cross-repository mount of `d` from `from`; says whether it happened.
    pub fn mount_blob(&self, repo: &str, d: &Digest, from: &str) -> Result<bool> {
        let url = self.url(&format!("/v2/{repo}/blobs/uploads/"));
        let scope = format!("{} repository:{from}:pull", push_scope(repo));
        let resp = self.send(&scope, &|| {
            self.http
                .post(&url)
                .query(&[("mount", d.to_string()), ("from", from.to_string())])
                .header(reqwest::header::CONTENT_LENGTH, "0")
        })?;
        Ok(resp.status() == StatusCode::CREATED)
    }

    /// Uploads a blob in one PUT (POST for a session, then PUT with the digest).
    pub fn upload_blob(&self, repo: &str, d: &Digest, path: &std::path::Path, size: u64) -> Result<()> {
        let scope = push_scope(repo);
        let url = self.url(&format!("/v2/{repo}/blobs/uploads/"));
        let resp = self.send(&scope, &|| {
            self.http.post(&url).header(reqwest::header::CONTENT_LENGTH, "0")
        })?;
        let resp = check(&self.host, resp, &format!("starting upload of {d}"))?;
        let loc = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| reg_err(&self.host, "upload session without a Location".into()))?;
        let mut put = if loc.starts_with("http://") || loc.starts_with("https://") {
            loc.to_string()
        } else {
            self.url(loc)
        };
        put.push(if put.contains('?') { '&' } else { '?' });
        put.push_str(&format!("digest={d}"));
        let resp = self.send(&scope, &|| {
            let body = match std::fs::File::open(path) {
                Ok(f) => reqwest::blocking::Body::sized(f, size),
                Err(_) => reqwest::blocking::Body::from(Vec::new()),
            };
            self.http
                .put(&put)
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(body)
        })?;
        check(&self.host, resp, &format!("uploading {d}"))?;
        Ok(())
    }

    /// Puts a manifest under a tag or digest.
    pub fn put_manifest(&self, repo: &str, reference: &str, bytes: &[u8], media_type: &str) -> Result<()> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let resp = self.send(&push_scope(repo), &|| {
            self.http
                .put(&url)
                .header(CONTENT_TYPE, media_type)
                .body(bytes.to_vec())
        })?;
        check(&self.host, resp, &format!("putting manifest {repo}:{reference}"))?;
        Ok(())
    }

    /// Checks that the credentials work (`berth login`): `GET /v2/`.
    pub fn ping(&self) -> Result<()> {
        let url = self.url("/v2/");
        let resp = self.send("registry:catalog:*", &|| self.http.get(&url))?;
        check(&self.host, resp, "login")?;
        Ok(())
    }
}

fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

fn content_type(h: &HeaderMap) -> Option<String> {
    h.get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or(s).trim().to_string())
}

fn reg_err(host: &str, message: String) -> ImageError {
    ImageError::Registry {
        registry: host.to_string(),
        message,
        unauthorized: false,
    }
}

/// An error with its causes (reqwest hides the interesting part in the source chain).
fn describe(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// Turns a non-success answer into an error that carries the registry's own message.
fn check(host: &str, resp: Response, what: &str) -> Result<Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = read_limited(resp, 64 << 10).unwrap_or_default();
    let detail = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("errors")?.as_array()?.first().map(|e| {
                format!(
                    "{}: {}",
                    e.get("code").and_then(|c| c.as_str()).unwrap_or(""),
                    e.get("message").and_then(|c| c.as_str()).unwrap_or("")
                )
            })
        })
        .unwrap_or_else(|| status.to_string());
    if status == StatusCode::NOT_FOUND {
        return Err(ImageError::NotFound(format!("{what}: not found ({detail})")));
    }
    Err(ImageError::Registry {
        registry: host.to_string(),
        message: format!("{what}: {detail}"),
        unauthorized: status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN,
    })
}

fn read_limited(resp: Response, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut v = Vec::new();
    resp.take(limit + 1).read_to_end(&mut v)?;
    if v.len() as u64 > limit {
        return Err(std::io::Error::other(format!("answer larger than {limit} bytes")));
    }
    Ok(v)
}
