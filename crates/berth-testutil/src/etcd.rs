//! An etcd of a test's own: started on loopback with free ports and a data directory of
//! its own, killed by pid when dropped.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::TempDir;

/// A running etcd.
#[derive(Debug)]
pub struct Etcd {
    child: Child,
    /// Its client endpoint as berth takes it: `etcd://127.0.0.1:PORT`.
    pub url: String,
    /// `127.0.0.1:PORT`.
    pub endpoint: String,
    dir: TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two free ports, different: both held until both are known (a port let go at once may
/// come back from the next bind).
fn free_ports() -> (u16, u16) {
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let (a, b) = (bind(), bind());
    let port = |l: &std::net::TcpListener| l.local_addr().map(|a| a.port()).unwrap_or(0);
    (port(&a), port(&b))
}

/// Whether etcd answers `GET /health` on `endpoint`.
fn healthy(endpoint: &str) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(endpoint) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let req = format!("GET /health HTTP/1.1\r\nHost: {endpoint}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.contains("\"health\":\"true\"")
}

impl Etcd {
    /// Starts etcd on loopback and waits until it answers (panics after 20 s, with its
    /// log).
    pub fn start(test: &str) -> Etcd {
        Etcd::start_on(test, "127.0.0.1")
    }

    /// [`Etcd::start`] listening on `ip` (an address of a test's own bridge, for hosts in
    /// namespaces of their own).
    pub fn start_on(test: &str, ip: &str) -> Etcd {
        let dir = TempDir::new(&format!("{test}-etcd"));
        let (client, peer) = free_ports();
        let c = format!("http://{ip}:{client}");
        let p = format!("http://{ip}:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).expect("the etcd log");
        let child = Command::new("etcd")
            .args(["--name", "t", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &c, "--advertise-client-urls", &c])
            .args(["--listen-peer-urls", &p, "--initial-advertise-peer-urls", &p])
            .args(["--initial-cluster", &format!("t={p}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting etcd");
        let endpoint = format!("{ip}:{client}");
        let e = Etcd {
            child,
            url: format!("etcd://{endpoint}"),
            endpoint,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !healthy(&e.endpoint) {
            assert!(
                Instant::now() < deadline,
                "etcd never became healthy: {}",
                std::fs::read_to_string(e.dir.path().join("etcd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        e
    }
}
