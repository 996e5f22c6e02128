//! Test images made offline: OCI image layouts built in code from hand-made layer tars
//! (gzip, zstd or plain), single- or multi-platform, and a launcher for a private
//! `docker-registry` on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::TempDir;

/// `sha256:<hex>` of some bytes.
pub fn digest(data: &[u8]) -> String {
    let h = Sha256::digest(data);
    let mut s = String::from("sha256:");
    for b in h {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A layer ready for a manifest.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The blob as stored.
    pub blob: Vec<u8>,
    /// Digest of the uncompressed tar.
    pub diff_id: String,
    /// Its media type.
    pub media_type: &'static str,
}

impl Layer {
    /// An uncompressed layer.
    pub fn plain(tar: Vec<u8>) -> Layer {
        Layer {
            diff_id: digest(&tar),
            blob: tar,
            media_type: "application/vnd.oci.image.layer.v1.tar",
        }
    }

    /// A gzip layer.
    pub fn gzip(tar: &[u8]) -> Layer {
        Layer {
            diff_id: digest(tar),
            blob: crate::tars::gzip(tar),
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
        }
    }

    /// A zstd layer.
    pub fn zstd(tar: &[u8]) -> Layer {
        Layer {
            diff_id: digest(tar),
            blob: zstd::encode_all(tar, 3).expect("zstd"),
            media_type: "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// An OCI image layout directory being filled.
#[derive(Debug)]
pub struct Layout {
    /// The directory.
    pub dir: PathBuf,
    index: Vec<Value>,
}

impl Layout {
    /// An empty layout in `dir`.
    pub fn new(dir: &Path) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).expect("layout dir");
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
        Layout {
            dir: dir.to_path_buf(),
            index: Vec::new(),
        }
    }

    /// Stores a blob; returns its descriptor.
    pub fn blob(&self, media_type: &str, data: &[u8]) -> Value {
        let d = digest(data);
        std::fs::write(self.dir.join("blobs/sha256").join(&d[7..]), data).expect("blob");
        json!({"mediaType": media_type, "digest": d, "size": data.len()})
    }

    /// Stores an image (config + layers + manifest) for `arch`; returns the manifest's
    /// descriptor (not yet in the index).
    pub fn image(&self, arch: &str, layers: &[Layer], cmd: &[&str]) -> Value {
        let config = json!({
            "architecture": arch,
            "os": "linux",
            "created": "2026-01-01T00:00:00Z",
            "config": {"Cmd": cmd, "Env": ["PATH=/bin"], "Labels": {"berth.test": arch}},
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
            "history": layers.iter().map(|_| json!({"created": "2026-01-01T00:00:00Z", "created_by": "test layer"})).collect::<Vec<_>>(),
        });
        let cfg = self.blob(
            "application/vnd.oci.image.config.v1+json",
            &serde_json::to_vec(&config).expect("json"),
        );
        let ls: Vec<Value> = layers.iter().map(|l| self.blob(l.media_type, &l.blob)).collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": cfg,
            "layers": ls,
        });
        let mut d = self.blob(
            "application/vnd.oci.image.manifest.v1+json",
            &serde_json::to_vec(&manifest).expect("json"),
        );
        d["platform"] = json!({"architecture": arch, "os": "linux"});
        d
    }

    /// Adds a manifest (or index) descriptor to index.json under a tag.
    pub fn tag(&mut self, mut desc: Value, tag: &str) {
        desc["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        self.index.push(desc);
        let idx = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": self.index});
        std::fs::write(self.dir.join("index.json"), serde_json::to_vec(&idx).expect("json")).expect("index");
    }

    /// Stores an image index over several manifests; returns its descriptor.
    pub fn index(&self, manifests: &[Value]) -> Value {
        let idx =
            json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
        self.blob(
            "application/vnd.oci.image.index.v1+json",
            &serde_json::to_vec(&idx).expect("json"),
        )
    }

    /// The layout as a tar archive (what `berth load` reads).
    pub fn archive(&self, out: &Path) {
        let o = Command::new("tar")
            .arg("-C")
            .arg(&self.dir)
            .arg("-cf")
            .arg(out)
            .arg(".")
            .output()
            .expect("tar");
        assert!(o.status.success(), "tar: {}", String::from_utf8_lossy(&o.stderr));
    }
}

/// How a test registry authenticates.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    /// Anyone may pull and push.
    Open,
    /// htpasswd basic auth for this user and password.
    Basic(&'a str, &'a str),
    /// Bearer tokens from a token server (started beside it) that wants these basic
    /// credentials: the Docker Hub flow.
    Token(&'a str, &'a str),
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A private registry (Debian's `docker-registry`) on 127.0.0.1 and a free port, open or
/// with basic or token auth; it and its token server are killed by pid on drop.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    token_server: Option<Child>,
    /// Its data, config and log.
    pub dir: TempDir,
    /// `127.0.0.1:PORT`.
    pub host: String,
}

impl Registry {
    /// Starts one.
    pub fn start(test: &str, auth: Auth<'_>) -> Registry {
        let dir = TempDir::new(&format!("{test}-registry"));
        let host = format!("127.0.0.1:{}", free_port());
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
            dir.path().join("data").display()
        );
        let mut token_server = None;
        match auth {
            Auth::Open => {}
            Auth::Basic(u, p) => {
                let o = Command::new("htpasswd")
                    .args(["-Bbn", u, p])
                    .output()
                    .expect("htpasswd");
                assert!(o.status.success());
                std::fs::write(dir.path().join("htpasswd"), &o.stdout).expect("htpasswd file");
                cfg.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                    dir.path().join("htpasswd").display()
                ));
            }
            Auth::Token(u, p) => {
                let script = dir.path().join("token_server.py");
                std::fs::write(&script, include_str!("token_server.py")).expect("token server script");
                let cert = dir.path().join("token.pem");
                let tport = free_port();
                let child = Command::new("python3")
                    .arg(&script)
                    .arg(tport.to_string())
                    .arg(&cert)
                    .args(["berth-test-issuer", u, p])
                    .stdin(Stdio::null())
                    .spawn()
                    .expect("starting the token server");
                token_server = Some(child);
                let deadline = Instant::now() + Duration::from_secs(20);
                while !(cert.exists() && std::net::TcpStream::connect(("127.0.0.1", tport)).is_ok()) {
                    assert!(Instant::now() < deadline, "token server did not start");
                    std::thread::sleep(Duration::from_millis(50));
                }
                cfg.push_str(&format!(
                    "auth:\n  token:\n    realm: http://127.0.0.1:{tport}/token\n    service: berth-test-registry\n    issuer: berth-test-issuer\n    rootcertbundle: {}\n",
                    cert.display()
                ));
            }
        }
        std::fs::write(dir.path().join("config.yml"), cfg).expect("config");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting docker-registry");
        let r = Registry {
            child,
            token_server,
            dir,
            host,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(&r.host).is_ok() {
                return r;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("registry did not start: {}", r.log());
    }

    /// The registry's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(t) = &mut self.token_server {
            let _ = t.kill();
            let _ = t.wait();
        }
    }
}
