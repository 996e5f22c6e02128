//! Published ports of a rootless container on a user-defined network. Its bridge is in the
//! user's own network namespace (see `rootless::network_home`), out of the host's reach, so
//! a small forwarder process (berth as `_forward`) listens on the host ports in the host's
//! namespace and, for each connection or datagram, dials the container's address from
//! inside the user's namespace (the part Podman's rootlessport plays).
//!
//! The forwarder binds every host socket first, then enters the user's namespace for good
//! (its listening sockets stay where they were made) and says `ok` on its standard output;
//! a port that cannot be bound is its error there instead. The monitor records its pid in
//! the container's directory and kills it when the container stops.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::model::Published;
use crate::store::Engine;
use crate::{EngineError, Result};

fn pid_file(engine: &Engine, id: &str) -> PathBuf {
    engine.dir(id).join("forward.pid")
}

/// Starts the forwarder of container `id` (address `ip`) for `ports`, from the host's
/// namespace into the one at `netns`.
pub fn spawn(engine: &Engine, id: &str, netns: &Path, ip: Ipv4Addr, ports: &[Published]) -> Result<()> {
    stop(engine, id);
    if ports.is_empty() {
        return Ok(());
    }
    // The running binary (the monitor may run from a sealed copy with no path).
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg("_forward").arg(netns);
    for p in ports {
        cmd.arg(format!("{}/{}/{}/{ip}/{}", p.proto, p.host_ip, p.host_port, p.port));
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(crate::io_err("starting", "the port forwarder"))?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    if line.trim() != "ok" {
        let _ = child.kill();
        let _ = child.wait();
        let why = line.trim();
        return Err(EngineError::Conflict(if why.is_empty() {
            "the port forwarder failed to start".to_string()
        } else {
            why.to_string()
        }));
    }
    let pf = pid_file(engine, id);
    std::fs::write(&pf, child.id().to_string()).map_err(crate::io_err("writing", &pf))?;
    // It lives on with the container; stop() ends it.
    std::mem::forget(child);
    Ok(())
}

/// Stops container `id`'s forwarder, if it runs. Safe to repeat.
pub fn stop(engine: &Engine, id: &str) {
    let pf = pid_file(engine, id);
    if let Some(pid) = std::fs::read_to_string(&pf)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if pid > 0 && cmdline.split(|b| *b == 0).nth(1) == Some(b"_forward") {
            let _ = berth_runtime::kill(pid, libc::SIGKILL);
        }
    }
    let _ = std::fs::remove_file(&pf);
}

/// One forwarding: `PROTO/HOSTIP/HOSTPORT/IP/PORT`.
struct Rule {
    udp: bool,
    host: SocketAddr,
    target: SocketAddr,
}

fn parse_rule(s: &str) -> Option<Rule> {
    let f: Vec<&str> = s.split('/').collect();
    let [proto, hip, hport, ip, port] = f.as_slice() else {
        return None;
    };
    Some(Rule {
        udp: *proto == "udp",
        host: SocketAddr::new(hip.parse().ok()?, hport.parse().ok()?),
        target: SocketAddr::new(ip.parse().ok()?, port.parse().ok()?),
    })
}

enum Bound {
    Tcp(TcpListener, SocketAddr),
    Udp(UdpSocket, SocketAddr),
}

/// The forwarder process: `berth _forward NETNS RULE...`. Returns its exit code.
pub fn main(args: &[String]) -> i32 {
    let say = |msg: &str| println!("{msg}");
    let Some((ns, rules)) = args.split_first() else {
        say("usage: _forward NETNS PROTO/HOSTIP/HOSTPORT/IP/PORT...");
        return 2;
    };
    let mut bound = Vec::new();
    for r in rules {
        let Some(rule) = parse_rule(r) else {
            say(&format!("bad forwarding {r:?}"));
            return 2;
        };
        let b = if rule.udp {
            UdpSocket::bind(rule.host).map(|s| Bound::Udp(s, rule.target))
        } else {
            TcpListener::bind(rule.host).map(|l| Bound::Tcp(l, rule.target))
        };
        match b {
            Ok(b) => bound.push(b),
            Err(e) => {
                say(&format!("Bind for {}:{} failed: {e}", rule.host.ip(), rule.host.port()));
                return 1;
            }
        }
    }
    let entered = std::fs::File::open(ns)
        .map_err(|e| e.to_string())
        .and_then(|f| nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string()));
    if let Err(e) = entered {
        say(&format!("entering {ns}: {e}"));
        return 1;
    }
    say("ok");
    // SAFETY: closing our own standard output, which the caller reads to its end.
    unsafe { libc::close(1) };
    let threads: Vec<_> = bound
        .into_iter()
        .map(|b| {
            std::thread::spawn(move || match b {
                Bound::Tcp(l, target) => serve_tcp(&l, target),
                Bound::Udp(s, target) => serve_udp(&s, target),
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    0
}

fn serve_tcp(l: &TcpListener, target: SocketAddr) {
    for conn in l.incoming() {
        let Ok(client) = conn else { continue };
        std::thread::spawn(move || {
            let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(10)) else {
                return;
            };
            let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                return;
            };
            let up = std::thread::spawn(move || pipe(c2, s2));
            pipe(server, client);
            let _ = up.join();
        });
    }
}

/// Copies `from` to `to` until `from` ends, then ends `to`'s writing half.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// UDP: one socket toward the container per client address, its answers relayed back.
fn serve_udp(s: &UdpSocket, target: SocketAddr) {
    let mut peers: std::collections::HashMap<SocketAddr, UdpSocket> = std::collections::HashMap::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, from)) = s.recv_from(&mut buf) else { continue };
        let up = match peers.entry(from) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let Ok(up) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)) else {
                    continue;
                };
                if up.connect(target).is_err() {
                    continue;
                }
                let (Ok(back), Ok(reply)) = (s.try_clone(), up.try_clone()) else {
                    continue;
                };
                std::thread::spawn(move || {
                    let mut b = vec![0u8; 65536];
                    let _ = reply.set_read_timeout(Some(Duration::from_secs(180)));
                    while let Ok(n) = reply.recv(&mut b) {
                        let _ = back.send_to(&b[..n], from);
                    }
                });
                v.insert(up)
            }
        };
        let _ = up.send(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse() {
        let r = parse_rule("tcp/0.0.0.0/8080/10.90.0.2/80").unwrap();
        assert!(!r.udp);
        assert_eq!(r.host.port(), 8080);
        assert_eq!(r.target.to_string(), "10.90.0.2:80");
        assert!(parse_rule("udp/127.0.0.1/53/10.0.0.1/53").unwrap().udp);
        assert!(parse_rule("tcp/x/1/2/3").is_none());
        assert!(parse_rule("tcp/0.0.0.0/8080").is_none());
    }
}
