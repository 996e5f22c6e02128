//! Kubernetes probes (`kube play`'s liveness, readiness and startup probes), run by the
//! monitor as health checks are: no daemon, no polling between probes. Each probe is a
//! child of the monitor whose exit code is its verdict: an exec probe exec'd into the
//! container ([`crate::health::spawn_exec`]), or, for httpGet, tcpSocket and grpc, a fork of
//! the monitor that enters the container's network namespace and connects (the kubelet
//! connects from the host to the pod's address; from inside, the same address answers, and
//! no route to the pod is needed).
//!
//! The semantics are the kubelet's: a startup probe holds the others back until it
//! succeeds; `failureThreshold` consecutive failures of liveness or startup kill the
//! container (the restart policy then decides); readiness only moves `ready`, after
//! `successThreshold` successes or `failureThreshold` failures in a row.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::model::{KubeConfig, KubeProbe, KubeState, ProbeHandler, ProbeResult};

/// The probe in flight.
#[derive(Debug)]
struct Running {
    pid: i32,
    pidfd: Option<OwnedFd>,
    started: Instant,
    out: OwnedFd,
}

/// One probe of a container, with its streaks.
#[derive(Debug)]
struct Worker {
    kind: &'static str,
    probe: KubeProbe,
    next: Instant,
    running: Option<Running>,
    successes: u32,
    failures: u32,
}

impl Worker {
    fn timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.probe.timeout.max(1)))
    }

    fn period(&self) -> Duration {
        Duration::from_secs(u64::from(self.probe.period.max(1)))
    }
}

/// Runs a container's probes from the monitor's loop.
#[derive(Debug)]
pub struct Prober {
    workers: Vec<Worker>,
    process: serde_json::Value,
    /// The container's init, whose network namespace the network probes enter.
    target: i32,
    began: Instant,
    /// What the kubelet would report; saved by the caller after each change.
    pub state: KubeState,
    /// Set when a failed liveness or startup probe wants the container killed: the grace
    /// its probe gives (none: the container's own).
    kill: Option<Option<u64>>,
    /// The kill was asked for: no more probes in this run.
    killing: bool,
    /// The postStart hook, until it is started.
    post_start: Option<Vec<String>>,
    /// The postStart hook while it runs: no probe runs before it is over.
    hook: Option<Running>,
}

/// `liveness`, `readiness`, `startup`.
const LIVENESS: &str = "liveness";
const READINESS: &str = "readiness";
const STARTUP: &str = "startup";

impl Prober {
    /// The probes of a container whose init (`pid`) started now; `process` is its spec's
    /// process; `previous` what was known of it before this run.
    pub fn new(cfg: &KubeConfig, process: serde_json::Value, pid: i32, previous: Option<KubeState>) -> Prober {
        let now = Instant::now();
        let mut workers = Vec::new();
        for (kind, p) in [
            (STARTUP, &cfg.startup),
            (LIVENESS, &cfg.liveness),
            (READINESS, &cfg.readiness),
        ] {
            if let Some(p) = p {
                workers.push(Worker {
                    kind,
                    probe: p.clone(),
                    next: now + Duration::from_secs(u64::from(p.initial_delay)),
                    running: None,
                    successes: 0,
                    failures: 0,
                });
            }
        }
        let mut state = previous.unwrap_or_default();
        state.started = cfg.startup.is_none();
        state.ready = state.started && cfg.readiness.is_none();
        state.waiting.clear();
        state.probes.clear();
        Prober {
            workers,
            process,
            target: pid,
            began: now,
            state,
            kill: None,
            killing: false,
            post_start: cfg.post_start.clone(),
            hook: None,
        }
    }

    /// Whether a probe of this kind runs now: a startup probe until it succeeds, the
    /// others after; none once the container is being killed.
    fn active(&self, kind: &str) -> bool {
        self.kill.is_none()
            && !self.killing
            && self.post_start.is_none()
            && self.hook.is_none()
            && ((kind == STARTUP) != self.state.started)
    }

    /// How long until something is due (None: nothing ever is).
    pub fn wait(&self) -> Option<Duration> {
        let now = Instant::now();
        if self.post_start.is_some() {
            return Some(Duration::ZERO);
        }
        self.workers
            .iter()
            .filter(|w| w.running.is_some() || self.active(w.kind))
            .map(|w| match &w.running {
                Some(r) => (r.started + w.timeout()).saturating_duration_since(now),
                None => w.next.saturating_duration_since(now),
            })
            .min()
    }

    /// The running probes' pidfds, to poll.
    pub fn fds(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.workers
            .iter()
            .filter_map(|w| w.running.as_ref())
            .chain(self.hook.as_ref())
            .filter_map(|r| r.pidfd.as_ref().map(AsFd::as_fd))
    }

    /// The kill a failed probe asked for, once: `Some(grace)` (the probe's
    /// `terminationGracePeriodSeconds`, or None for the container's stop timeout).
    pub fn take_kill(&mut self) -> Option<Option<u64>> {
        let k = self.kill.take()?;
        self.killing = true;
        Some(k)
    }

    /// Starts the probes that are due, fails those past their timeout; returns whether the
    /// state changed.
    pub fn tick(&mut self, rt: &crate::runtimes::Rt, id: &str, dir: &std::path::Path) -> bool {
        let now = Instant::now();
        let mut changed = false;
        if let Some(argv) = self.post_start.take() {
            match crate::health::spawn_exec(rt, id, dir, &self.process, &argv) {
                Ok((pid, out)) => {
                    self.hook = Some(Running {
                        pid,
                        pidfd: crate::health::pidfd_open(pid),
                        started: now,
                        out,
                    });
                }
                Err(e) => return self.hook_failed(e.to_string()),
            }
            return false;
        }
        for i in 0..self.workers.len() {
            let w = &self.workers[i];
            if let Some(r) = &w.running {
                if now >= r.started + w.timeout() {
                    // The probe this prober started.
                    let _ = berth_runtime::kill(r.pid, libc::SIGKILL);
                    let t = w.probe.timeout.max(1);
                    self.workers[i].running = None;
                    changed |= self.record(i, false, format!("probe timed out after {t}s"));
                }
                continue;
            }
            if !self.active(w.kind) || now < w.next {
                continue;
            }
            let next = now + w.period();
            let spawned = match &w.probe.handler {
                ProbeHandler::Exec { command } => {
                    crate::health::spawn_exec(rt, id, dir, &self.process, command).map_err(|e| e.to_string())
                }
                h => spawn_net(self.target, h, w.timeout()),
            };
            let w = &mut self.workers[i];
            w.next = next;
            match spawned {
                Ok((pid, out)) => {
                    w.running = Some(Running {
                        pid,
                        pidfd: crate::health::pidfd_open(pid),
                        started: now,
                        out,
                    })
                }
                Err(e) => changed |= self.record(i, false, e),
            }
        }
        changed
    }

    /// A reaped child: if it is a probe, records it; returns whether the state changed
    /// (None: not a probe).
    pub fn reaped(&mut self, pid: i32, code: i32) -> Option<bool> {
        if self.hook.as_ref().is_some_and(|h| h.pid == pid) {
            let h = self.hook.take()?;
            let out = crate::health::read_output(h.out);
            if code == 0 {
                return Some(false);
            }
            return Some(self.hook_failed(format!("exited with {code}: {}", out.trim_end())));
        }
        let i = self
            .workers
            .iter()
            .position(|w| w.running.as_ref().is_some_and(|r| r.pid == pid))?;
        let r = self.workers[i].running.take()?;
        let out = crate::health::read_output(r.out);
        let message = if code == 0 || !out.trim().is_empty() {
            out.trim_end().to_string()
        } else {
            format!("command exited with code {code}")
        };
        Some(self.record(i, code == 0, message))
    }

    /// The postStart hook failed: the container is killed, as the kubelet kills it.
    fn hook_failed(&mut self, message: String) -> bool {
        self.state.probes.insert(
            "postStart".into(),
            ProbeResult {
                result: "Failure".into(),
                message: format!("FailedPostStartHook: {message}"),
                time: berth_image::store::now(),
            },
        );
        self.kill = Some(None);
        true
    }

    /// One probe's result, with the thresholds applied.
    fn record(&mut self, i: usize, success: bool, message: String) -> bool {
        let before = (self.state.ready, self.state.started, self.kill.is_some());
        let w = &mut self.workers[i];
        if success {
            w.successes += 1;
            w.failures = 0;
        } else {
            w.failures += 1;
            w.successes = 0;
        }
        let (kind, successes, failures) = (w.kind, w.successes, w.failures);
        let passed = successes >= w.probe.success_threshold.max(1);
        let failed = failures >= w.probe.failure_threshold.max(1);
        let grace = w.probe.termination_grace;
        let result = if success { "Success" } else { "Failure" };
        let message = if success { String::new() } else { message };
        let prev = self.state.probes.get(kind);
        let flipped = prev.is_none_or(|p| p.result != result);
        // A failure for another reason is written down too, keeping its time.
        let reworded = prev.is_some_and(|p| p.message != message);
        if flipped || reworded {
            let time = match prev.filter(|_| !flipped) {
                Some(p) => p.time.clone(),
                None => berth_image::store::now(),
            };
            self.state.probes.insert(
                kind.to_string(),
                ProbeResult {
                    result: result.into(),
                    message,
                    time,
                },
            );
        }
        match kind {
            STARTUP if passed => {
                self.state.started = true;
                self.state.ready = !self.workers.iter().any(|w| w.kind == READINESS);
                // The others start now, once their initial delay from the start is over.
                let now = Instant::now();
                for w in &mut self.workers {
                    if w.kind != STARTUP {
                        w.next = (self.began + Duration::from_secs(u64::from(w.probe.initial_delay))).max(now);
                    }
                }
            }
            STARTUP | LIVENESS if failed => self.kill = Some(grace),
            READINESS if passed => self.state.ready = true,
            READINESS if failed => self.state.ready = false,
            _ => {}
        }
        flipped || reworded || before != (self.state.ready, self.state.started, self.kill.is_some())
    }
}

/// Starts a network probe: a fork of the monitor that enters the network namespace of
/// `target` and runs `handler`; its exit code is the verdict, what it writes the message.
fn spawn_net(target: i32, handler: &ProbeHandler, timeout: Duration) -> Result<(i32, OwnedFd), String> {
    let ns =
        std::fs::File::open(format!("/proc/{target}/ns/net")).map_err(|e| format!("the container's network: {e}"))?;
    let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the monitor is single-threaded; the child only probes and _exits.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            drop(out_r);
            let own = std::fs::metadata("/proc/self/ns/net").map(|m| std::os::unix::fs::MetadataExt::ino(&m));
            let theirs = ns.metadata().map(|m| std::os::unix::fs::MetadataExt::ino(&m));
            let host_network = matches!((own, theirs), (Ok(a), Ok(b)) if a == b);
            let outcome = nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("entering the container's network: {e}"))
                .and_then(|()| {
                    let pod = if host_network { None } else { pod_address() };
                    run_net(handler, pod, timeout)
                });
            let (code, msg) = match outcome {
                Ok(m) => (0, m),
                Err(m) => (1, m),
            };
            let mut f = std::fs::File::from(out_w);
            let _ = f.write_all(msg.as_bytes());
            // SAFETY: _exit ends the forked probe without the monitor's destructors.
            unsafe { libc::_exit(code) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(out_w);
            let _ = nix::fcntl::fcntl(&out_r, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
            Ok((child.as_raw(), out_r))
        }
        Err(e) => Err(format!("fork: {e}")),
    }
}

/// The pod's address, seen from inside its network namespace: its first IPv4 address
/// that is not loopback.
fn pod_address() -> Option<IpAddr> {
    nix::ifaddrs::getifaddrs().ok()?.find_map(|a| {
        let ip = a.address?.as_sockaddr_in()?.ip();
        (!ip.is_loopback()).then_some(IpAddr::V4(ip))
    })
}

/// Runs a network handler against the pod (`pod`: its address; none: loopback).
pub(crate) fn run_net(handler: &ProbeHandler, pod: Option<IpAddr>, timeout: Duration) -> Result<String, String> {
    let addr = |host: &str, port: u16| -> Result<SocketAddr, String> {
        if host.is_empty() {
            return Ok(SocketAddr::new(pod.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)), port));
        }
        std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
            .map_err(|e| format!("resolving {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host}: no address"))
    };
    match handler {
        ProbeHandler::TcpSocket { host, port } => {
            let a = addr(host, *port)?;
            dial(a, timeout).map(|_| String::new())
        }
        ProbeHandler::HttpGet {
            host,
            port,
            path,
            headers,
        } => http_get(addr(host, *port)?, path, headers, timeout),
        ProbeHandler::Grpc { port, service } => grpc_check(addr("", *port)?, service, timeout),
        ProbeHandler::Exec { .. } => Err("an exec probe is not a network probe".into()),
    }
}

/// A TCP connection within `timeout`, or the kubelet's words for why not.
fn dial(a: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    let s = TcpStream::connect_timeout(&a, timeout).map_err(|e| format!("dial tcp {a}: connect: {e}"))?;
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    Ok(s)
}

/// An HTTP/1.1 GET: a status from 200 to 399 is success.
fn http_get(a: SocketAddr, path: &str, headers: &[(String, String)], timeout: Duration) -> Result<String, String> {
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let url = format!("http://{a}{path}");
    let mut s = dial(a, timeout).map_err(|e| format!("Get \"{url}\": {e}"))?;
    let mut req = format!("GET {path} HTTP/1.1\r\n");
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    if !has("host") {
        req.push_str(&format!("Host: {a}\r\n"));
    }
    if !has("user-agent") {
        req.push_str("User-Agent: kube-probe/1.33\r\n");
    }
    if !has("accept") {
        req.push_str("Accept: */*\r\n");
    }
    for (k, v) in headers {
        if k.contains(['\r', '\n', ':']) || v.contains(['\r', '\n']) {
            return Err(format!("header {k:?}: not a valid header"));
        }
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(|e| format!("Get \"{url}\": {e}"))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") && head.len() < 1024 {
        match s.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => head.push(byte[0]),
            Err(e) => return Err(format!("Get \"{url}\": {e}")),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .filter(|_| line.starts_with("HTTP/"))
        .ok_or_else(|| format!("Get \"{url}\": malformed HTTP response {:?}", line.trim_end()))?;
    if (200..400).contains(&code) {
        Ok(String::new())
    } else {
        Err(format!("HTTP probe failed with statuscode: {code}"))
    }
}

/// HPACK's integer with an `n`-bit prefix, after `first`'s high bits.
fn hpack_int(out: &mut Vec<u8>, first: u8, n: u32, v: usize) {
    let max = (1usize << n) - 1;
    let low = |x: usize| u8::try_from(x & 0xff).unwrap_or(0);
    if v < max {
        out.push(first | low(v));
        return;
    }
    out.push(first | low(max));
    let mut v = v - max;
    while v >= 128 {
        out.push(low(v % 128) | 0x80);
        v /= 128;
    }
    out.push(low(v));
}

/// One HTTP/2 frame.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap_or(0).to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The gRPC health-checking protocol's `Check` over HTTP/2 without TLS: `SERVING` is
/// success. Only what a probe needs is spoken: one stream, headers as literals, the
/// response message read from its DATA frames (the trailers are not decoded).
fn grpc_check(a: SocketAddr, service: &str, timeout: Duration) -> Result<String, String> {
    let mut s = dial(a, timeout)?;
    let mut headers = Vec::new();
    for (k, v) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/grpc.health.v1.Health/Check"),
        (":authority", &a.to_string()),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("user-agent", "kube-probe/1.33"),
    ] {
        // A literal field without indexing, new name.
        headers.push(0);
        hpack_int(&mut headers, 0, 7, k.len());
        headers.extend_from_slice(k.as_bytes());
        hpack_int(&mut headers, 0, 7, v.len());
        headers.extend_from_slice(v.as_bytes());
    }
    // HealthCheckRequest { service = 1 }.
    let mut msg = Vec::new();
    if !service.is_empty() {
        msg.push(0x0a);
        hpack_int(&mut msg, 0, 7, service.len());
        msg.extend_from_slice(service.as_bytes());
    }
    let mut data = vec![0u8];
    data.extend_from_slice(&u32::try_from(msg.len()).unwrap_or(0).to_be_bytes());
    data.extend_from_slice(&msg);
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(h2_frame(4, 0, 0, &[]));
    out.extend(h2_frame(1, 0x4, 1, &headers));
    out.extend(h2_frame(0, 0x1, 1, &data));
    let io = |e: std::io::Error| format!("rpc error: {e}");
    s.write_all(&out).map_err(io)?;
    let mut body = Vec::new();
    loop {
        let mut h = [0u8; 9];
        if s.read_exact(&mut h).is_err() {
            break;
        }
        let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
        if len > 1 << 20 {
            return Err("rpc error: frame too large".into());
        }
        let (kind, flags) = (h[3], h[4]);
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).map_err(io)?;
        match kind {
            // SETTINGS from the server: acknowledged.
            4 if flags & 1 == 0 => s.write_all(&h2_frame(4, 1, 0, &[])).map_err(io)?,
            // PING: answered.
            6 if flags & 1 == 0 => s.write_all(&h2_frame(6, 1, 0, &payload)).map_err(io)?,
            0 if stream == 1 => {
                // PADDED: a length byte first, that many bytes of padding last.
                let data = if flags & 0x8 != 0 {
                    let pad = usize::from(payload.first().copied().unwrap_or(0));
                    payload.get(1..payload.len().saturating_sub(pad)).unwrap_or(&[])
                } else {
                    &payload[..]
                };
                body.extend_from_slice(data);
                if flags & 1 != 0 {
                    break;
                }
            }
            1 if stream == 1 && flags & 1 != 0 => break,
            3 if stream == 1 => return Err("rpc error: the server reset the stream".into()),
            7 => return Err("rpc error: the server went away".into()),
            _ => {}
        }
    }
    // The response message: a flag byte, a length, HealthCheckResponse { status = 1 }.
    let status = body
        .get(5..)
        .and_then(|m| m.windows(2).find(|w| w[0] == 0x08).map(|w| w[1]))
        .unwrap_or(if body.len() >= 5 { 0 } else { u8::MAX });
    match status {
        1 => Ok(String::new()),
        u8::MAX => Err("rpc error: no response (is the health service served?)".into()),
        n => {
            let name = match n {
                0 => "UNKNOWN",
                2 => "NOT_SERVING",
                3 => "SERVICE_UNKNOWN",
                _ => "UNKNOWN",
            };
            Err(format!("service unhealthy (responded with \"{name}\")"))
        }
    }
}

/// The kubelet's restart back-off: the first restart at once, then 10 s doubling to
/// 5 min; a run of 10 minutes starts it over. `previous` is the last delay (None: none yet).
pub fn backoff(previous: Option<Duration>, ran: Duration) -> Duration {
    match previous {
        _ if ran >= Duration::from_secs(600) => Duration::ZERO,
        None => Duration::ZERO,
        Some(d) if d.is_zero() => Duration::from_secs(10),
        Some(d) => (d * 2).min(Duration::from_secs(300)),
    }
}

/// The kubelet's reason for how a run ended.
pub fn reason(code: i32, oom: bool) -> &'static str {
    if oom {
        "OOMKilled"
    } else if code == 0 {
        "Completed"
    } else {
        "Error"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(handler: ProbeHandler, success: u32, failure: u32) -> KubeProbe {
        KubeProbe {
            handler,
            initial_delay: 0,
            period: 1,
            timeout: 1,
            success_threshold: success,
            failure_threshold: failure,
            termination_grace: None,
        }
    }

    fn exec() -> ProbeHandler {
        ProbeHandler::Exec {
            command: vec!["true".into()],
        }
    }

    #[test]
    fn backoff_is_the_kubelets() {
        let mut d = None;
        let mut seen = Vec::new();
        for _ in 0..8 {
            let next = backoff(d, Duration::from_secs(1));
            seen.push(next.as_secs());
            d = Some(next);
        }
        assert_eq!(seen, [0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(
            backoff(Some(Duration::from_secs(300)), Duration::from_secs(600)),
            Duration::ZERO
        );
        assert_eq!(reason(0, false), "Completed");
        assert_eq!(reason(137, false), "Error");
        assert_eq!(reason(137, true), "OOMKilled");
    }

    #[test]
    fn startup_gates_and_thresholds_apply() {
        let cfg = KubeConfig {
            startup: Some(probe(exec(), 1, 2)),
            liveness: Some(probe(exec(), 1, 3)),
            readiness: Some(probe(exec(), 2, 1)),
            ..KubeConfig::default()
        };
        let mut p = Prober::new(&cfg, serde_json::json!({}), 1, None);
        assert!(!p.state.started && !p.state.ready);
        assert!(p.active(STARTUP) && !p.active(LIVENESS) && !p.active(READINESS));
        // startup: one failure of two allowed, then success.
        p.record(0, false, "no".into());
        assert!(p.kill.is_none());
        assert!(p.record(0, true, String::new()));
        assert!(p.state.started && !p.state.ready, "ready waits for the readiness probe");
        assert!(!p.active(STARTUP) && p.active(LIVENESS));
        // readiness: two successes to be ready, one failure to be unready.
        p.record(2, true, String::new());
        assert!(!p.state.ready);
        assert!(p.record(2, true, String::new()));
        assert!(p.state.ready);
        assert!(p.record(2, false, "down".into()));
        assert!(!p.state.ready);
        assert_eq!(p.state.probes["readiness"].message, "down");
        // liveness: three failures in a row kill; a success between starts over.
        p.record(1, false, String::new());
        p.record(1, false, String::new());
        p.record(1, true, String::new());
        p.record(1, false, String::new());
        p.record(1, false, String::new());
        assert!(p.kill.is_none());
        p.record(1, false, String::new());
        assert_eq!(p.kill, Some(None));
        assert!(!p.active(LIVENESS), "no probes while it is killed");
    }

    #[test]
    fn without_probes_a_container_is_ready() {
        let p = Prober::new(&KubeConfig::default(), serde_json::json!({}), 1, None);
        assert!(p.state.started && p.state.ready);
        assert!(p.wait().is_none(), "nothing to wake for");
    }

    /// A one-shot server on loopback answering each connection with `reply`.
    fn serve(reply: &'static [u8]) -> (SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
            let mut got = vec![0u8; 4096];
            let n = s.read(&mut got).unwrap_or(0);
            got.truncate(n);
            s.write_all(reply).unwrap();
            got
        });
        (a, h)
    }

    #[test]
    fn http_and_tcp_handlers_judge_as_the_kubelet() {
        let t = Duration::from_secs(2);
        let (a, h) = serve(b"HTTP/1.1 204 No Content\r\n\r\n");
        let headers = vec![("X-Probe".to_string(), "yes".to_string())];
        http_get(a, "healthz?x=1", &headers, t).unwrap();
        let req = String::from_utf8(h.join().unwrap()).unwrap();
        assert!(req.starts_with("GET /healthz?x=1 HTTP/1.1\r\n"), "{req}");
        assert!(
            req.contains("X-Probe: yes\r\n") && req.contains("User-Agent: kube-probe/"),
            "{req}"
        );
        let (a, _h) = serve(b"HTTP/1.1 503 Service Unavailable\r\n\r\n");
        let e = http_get(a, "/", &[], t).unwrap_err();
        assert_eq!(e, "HTTP probe failed with statuscode: 503");
        let (a, _h) = serve(b"garbage\r\n");
        assert!(http_get(a, "/", &[], t).unwrap_err().contains("malformed"));
        // A port nobody listens on: refused, for both handlers.
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let tcp = ProbeHandler::TcpSocket {
            host: "127.0.0.1".into(),
            port: free.port(),
        };
        assert!(run_net(&tcp, None, t).unwrap_err().contains("refused"));
        let (a, _h) = serve(b"");
        let tcp = ProbeHandler::TcpSocket {
            host: String::new(),
            port: a.port(),
        };
        run_net(&tcp, None, t).unwrap();
        let bad = vec![("X\r\nY".to_string(), "1".to_string())];
        http_get(free, "/", &bad, t).unwrap_err();
    }

    /// A gRPC health server on loopback written with the `h2` crate (a full HTTP/2:
    /// HPACK with Huffman, flow control, trailers), answering `status` to every Check.
    fn h2_health_server(status: u8) -> (SocketAddr, std::thread::JoinHandle<String>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        l.set_nonblocking(true).unwrap();
        let h = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(l).unwrap();
                let (sock, _) = l.accept().await.unwrap();
                let mut conn = h2::server::handshake(sock).await.unwrap();
                let (req, mut respond) = conn.accept().await.unwrap().unwrap();
                let path = req.uri().path().to_string();
                let mut body = req.into_body();
                tokio::spawn(async move { while conn.accept().await.is_some() {} });
                while let Some(chunk) = body.data().await {
                    let _ = body.flow_control().release_capacity(chunk.unwrap().len());
                }
                let resp = http::Response::builder()
                    .header("content-type", "application/grpc")
                    .body(())
                    .unwrap();
                let mut send = respond.send_response(resp, false).unwrap();
                send.send_data(bytes::Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status]), false)
                    .unwrap();
                let mut trailers = http::HeaderMap::new();
                trailers.insert("grpc-status", "0".parse().unwrap());
                send.send_trailers(trailers).unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
                path
            })
        });
        (a, h)
    }

    #[test]
    fn grpc_speaks_to_a_real_http2_server() {
        let (a, h) = h2_health_server(1);
        grpc_check(a, "", Duration::from_secs(5)).unwrap();
        assert_eq!(h.join().unwrap(), "/grpc.health.v1.Health/Check");
        let (a, _h) = h2_health_server(2);
        let e = grpc_check(a, "db", Duration::from_secs(5)).unwrap_err();
        assert!(e.contains("NOT_SERVING"), "{e}");
    }

    #[test]
    fn grpc_reads_the_serving_status() {
        // A server's SETTINGS, then DATA with HealthCheckResponse{status: SERVING}.
        let mut reply = h2_frame(4, 0, 0, &[]);
        reply.extend(h2_frame(0, 0x1, 1, &[0, 0, 0, 0, 2, 0x08, 1]));
        let reply: &'static [u8] = Box::leak(reply.into_boxed_slice());
        let (a, h) = serve(reply);
        grpc_check(a, "svc", Duration::from_secs(2)).unwrap();
        let req = h.join().unwrap();
        assert!(req.starts_with(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
        assert!(req.windows(28).any(|w| w == b"/grpc.health.v1.Health/Check"));
        let mut reply = h2_frame(0, 0x1, 1, &[0, 0, 0, 0, 2, 0x08, 2]);
        reply.extend(h2_frame(7, 0, 0, &[0; 8]));
        let reply: &'static [u8] = Box::leak(reply.into_boxed_slice());
        let (a, _h) = serve(reply);
        let e = grpc_check(a, "", Duration::from_secs(2)).unwrap_err();
        assert!(e.contains("NOT_SERVING"), "{e}");
        let mut v = Vec::new();
        hpack_int(&mut v, 0, 7, 300);
        assert_eq!(v, [127, 173, 1]);
    }
}
