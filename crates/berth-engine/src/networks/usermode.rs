//! User-mode networking, which needs no privilege on the host: `pasta` (Debian's `passt`
//! package; the rootless default, as in Podman 5) or `slirp4netns` connects a container's
//! own network namespace to the host's through a TAP device, with the host's sockets doing
//! the traffic. Published ports are host sockets of the helper forwarded into the
//! namespace, so they work from the host's loopback too.
//!
//! The monitor makes the namespace (a file under the runtime directory, as for bridges),
//! starts the helper on it before the container starts and records its pid in the
//! container's directory; the helper ends with the namespace (pasta watches the file) or is
//! killed by that pid when the container stops.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{free_port, netns_path, wanted_ports, write_hosts, Attachment, Published};
use crate::model::NetworkMode;
use crate::store::{Engine, Record};
use crate::{EngineError, Result};

/// The slirp4netns network: the container's fixed address and gateway.
const SLIRP_IP: &str = "10.0.2.100";
const SLIRP_GATEWAY: &str = "10.0.2.2";

pub(crate) fn helper(name: &'static str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            EngineError::Invalid(match name {
                "pasta" => "pasta was not found in PATH: rootless containers network through it; install the passt \
                            package (apt-get install passt), or use --network slirp4netns or --network none"
                    .to_string(),
                _ => format!(
                    "{name} was not found in PATH: install it (apt-get install {name}), or use another --network"
                ),
            })
        })
}

/// Checks a user-mode network option at create time (the helper is there, the options are
/// known).
pub fn check(mode: &NetworkMode) -> Result<()> {
    match mode {
        NetworkMode::Pasta(_) => {
            helper("pasta")?;
        }
        NetworkMode::Slirp4netns(opts) => {
            helper("slirp4netns")?;
            slirp_options(opts)?;
        }
        _ => {}
    }
    Ok(())
}

/// slirp4netns options Podman takes: `mtu=N`, `allow_host_loopback=true|false`,
/// `enable_ipv6=true|false`.
fn slirp_options(opts: &[String]) -> Result<Vec<String>> {
    let mut args = vec!["--mtu=65520".to_string(), "--disable-host-loopback".to_string()];
    for o in opts {
        match o.split_once('=') {
            Some(("mtu", n)) if n.parse::<u32>().is_ok() => args[0] = format!("--mtu={n}"),
            Some(("allow_host_loopback", "true")) => args.retain(|a| a != "--disable-host-loopback"),
            Some(("allow_host_loopback", "false")) => {}
            Some(("enable_ipv6", "true")) => args.push("--enable-ipv6".into()),
            Some(("enable_ipv6", "false")) => {}
            _ => {
                return Err(EngineError::Invalid(format!(
                    "invalid slirp4netns option {o:?}: known are mtu=N, allow_host_loopback=BOOL, enable_ipv6=BOOL"
                )))
            }
        }
    }
    Ok(args)
}

/// The lowest port an unprivileged process may bind on the host.
pub(crate) fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}

fn pid_file(engine: &Engine, id: &str) -> PathBuf {
    engine.dir(id).join("netns-helper.pid")
}

/// Rootless, a host port below `floor` (the sysctl's) is refused.
pub(crate) fn check_host_port(host_port: u16, floor: u16) -> Result<()> {
    if crate::rootless::is_rootless() && host_port < floor {
        return Err(EngineError::Invalid(format!(
            "rootless containers cannot publish host port {host_port}: ports below {floor} are privileged \
             (net.ipv4.ip_unprivileged_port_start); publish a port >= {floor}, or have root lower that sysctl"
        )));
    }
    Ok(())
}

/// The ports to publish, host ports chosen; rootless, a privileged host port is refused.
fn ports(r: &Record) -> Result<Vec<Published>> {
    let floor = unprivileged_port_start();
    let mut out = Vec::new();
    for (host_ip, host_port, port, proto) in wanted_ports(r)? {
        let host_port = match host_port {
            Some(h) => h,
            None => free_port(proto)?,
        };
        check_host_port(host_port, floor)?;
        out.push(Published {
            host_ip: host_ip.map_or("0.0.0.0".to_string(), |i| i.to_string()),
            host_port,
            proto: proto.as_str().into(),
            port,
        });
    }
    Ok(out)
}

/// Attaches a container on `pasta` or `slirp4netns`: its namespace, the helper, the
/// published ports.
pub fn attach(engine: &Engine, r: &Record) -> Result<Attachment> {
    let mode = r.network();
    release(engine, r);
    let ns = netns_path(engine, &r.id);
    berth_net::netns::create(&ns).map_err(super::net_err)?;
    let made = (|| -> Result<Attachment> {
        let ports = ports(r)?;
        let (network, ip, prefix, gateway) = match &mode {
            NetworkMode::Slirp4netns(opts) => {
                start_slirp(engine, r, &ns, opts, &ports)?;
                ("slirp4netns", SLIRP_IP.to_string(), 24, SLIRP_GATEWAY.to_string())
            }
            NetworkMode::Pasta(extra) => {
                start_pasta(engine, r, &ns, extra, &ports)?;
                ("pasta", String::new(), 0, String::new())
            }
            m => return Err(EngineError::Invalid(format!("{m:?} is not a user-mode network"))),
        };
        if let Ok(addr) = ip.parse() {
            write_hosts(engine, r, addr, SLIRP_GATEWAY.parse().unwrap_or(addr))?;
        }
        Ok(Attachment {
            network: network.into(),
            network_id: String::new(),
            ip,
            prefix,
            gateway,
            mac: String::new(),
            veth: String::new(),
            ports,
            dns_upstream: Vec::new(),
            egress: None,
        })
    })();
    if made.is_err() {
        release(engine, r);
    }
    made
}

/// Stops the helper (by the pid it recorded, if that process is still a helper) and
/// removes the namespace. Safe to repeat.
pub fn release(engine: &Engine, r: &Record) {
    let pf = pid_file(engine, &r.id);
    if let Some(pid) = std::fs::read_to_string(&pf)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if pid > 0 && (comm.starts_with("pasta") || comm.starts_with("passt") || comm.starts_with("slirp4netns")) {
            let _ = berth_runtime::kill(pid, libc::SIGTERM);
        }
    }
    let _ = std::fs::remove_file(&pf);
    let _ = std::fs::remove_file(engine.run.join("slirp").join(format!("{}.sock", &r.id[..12])));
    berth_net::netns::remove(&netns_path(engine, &r.id));
}

fn start_pasta(engine: &Engine, r: &Record, ns: &Path, extra: &[String], ports: &[Published]) -> Result<()> {
    let exe = helper("pasta")?;
    let mut cmd = Command::new(exe);
    cmd.args(["--config-net", "--quiet", "--no-map-gw"]);
    cmd.arg("--netns").arg(ns);
    cmd.arg("--pid").arg(pid_file(engine, &r.id));
    let (mut tcp, mut udp) = (0, 0);
    for p in ports {
        let addr = if p.host_ip == "0.0.0.0" {
            String::new()
        } else {
            format!("{}/", p.host_ip)
        };
        let flag = if p.proto == "udp" {
            udp += 1;
            "-u"
        } else {
            tcp += 1;
            "-t"
        };
        cmd.arg(flag).arg(format!("{addr}{}:{}", p.host_port, p.port));
    }
    if tcp == 0 {
        cmd.args(["-t", "none"]);
    }
    if udp == 0 {
        cmd.args(["-u", "none"]);
    }
    // Nothing from the namespace to the host's own ports: a container reaches the host as
    // any other machine would.
    cmd.args(["-T", "none", "-U", "none"]);
    // IPv4 only, as Docker's default bridge, unless the options choose: IPv6's set-up
    // costs pasta half again its start.
    let ip_choice = ["-4", "-6", "--ipv4-only", "--ipv6-only", "--ipv6"];
    if !extra.iter().any(|a| ip_choice.contains(&a.as_str())) {
        cmd.arg("--ipv4-only");
    }
    cmd.args(extra.iter().filter(|a| a.as_str() != "--ipv6"));
    // pasta configures the namespace, then forks into the background and its first
    // process exits: its status says whether the set-up worked. Its messages go to a file
    // (a pipe would stay open in the background process).
    let log_path = engine.dir(&r.id).join("pasta.log");
    let log = std::fs::File::create(&log_path).map_err(crate::io_err("creating", &log_path))?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(crate::io_err("running", "pasta"))?;
    let pending = Pending { child, log: log_path };
    if DEFER.load(std::sync::atomic::Ordering::Relaxed) {
        // The monitor creates the container meanwhile and waits before it starts it.
        PENDING.with(|p| *p.borrow_mut() = Some(pending));
        return Ok(());
    }
    pending.wait()
}

/// A pasta whose set-up is still running.
struct Pending {
    child: std::process::Child,
    log: PathBuf,
}

thread_local! {
    static PENDING: std::cell::RefCell<Option<Pending>> = const { std::cell::RefCell::new(None) };
}

/// Set by the monitor: pasta's set-up (some 20 ms: a TAP device, addresses, routes) runs
/// while the container is created, and [`await_setup`] waits for it before the start.
static DEFER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Lets [`attach`] return before pasta has configured the namespace (see [`await_setup`]).
pub fn defer_setup() {
    DEFER.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Waits for a deferred pasta set-up; its failure is the container's start failure.
pub fn await_setup() -> Result<()> {
    match PENDING.with(|p| p.borrow_mut().take()) {
        Some(p) => p.wait(),
        None => Ok(()),
    }
}

impl Pending {
    fn wait(mut self) -> Result<()> {
        let status = self.child.wait().map_err(crate::io_err("waiting for", "pasta"))?;
        if status.success() {
            return Ok(());
        }
        let said = std::fs::read_to_string(&self.log).unwrap_or_default();
        let msg = said
            .lines()
            .filter(|l| !l.starts_with("Failed to send") && !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        Err(EngineError::Invalid(format!(
            "pasta failed to set up the network: {}",
            explain(&msg)
        )))
    }
}

/// Adds the likely fix to a helper's complaint.
fn explain(msg: &str) -> String {
    if msg.contains("tun") {
        format!("{msg} (user-mode networking needs /dev/net/tun readable and writable by users, mode 0666 as udev makes it)")
    } else if msg.contains("bind") || msg.contains("in use") {
        format!("{msg} (is the host port already in use?)")
    } else {
        msg.to_string()
    }
}

fn start_slirp(engine: &Engine, r: &Record, ns: &Path, opts: &[String], ports: &[Published]) -> Result<()> {
    let exe = helper("slirp4netns")?;
    let args = slirp_options(opts)?;
    let dir = engine.dir(&r.id);
    // A socket's path has 107 bytes at most: the runtime directory's is short.
    let api = engine.run.join("slirp").join(format!("{}.sock", &r.id[..12]));
    std::fs::create_dir_all(engine.run.join("slirp")).map_err(crate::io_err("creating", engine.run.join("slirp")))?;
    let _ = std::fs::remove_file(&api);
    let log = std::fs::File::create(dir.join("slirp4netns.log"))
        .map_err(crate::io_err("creating", dir.join("slirp4netns.log")))?;
    let (ready_r, ready_w) = nix::unistd::pipe().map_err(|e| crate::io_err("making", "a pipe")(e.into()))?;
    let ready_fd = ready_w.as_raw_fd();
    let mut cmd = Command::new(exe);
    cmd.arg("--configure")
        .args(&args)
        .arg("--netns-type=path")
        .arg(format!("--api-socket={}", api.display()))
        .arg("--ready-fd=3")
        .arg(ns)
        .arg("tap0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    // SAFETY: between fork and exec only async-signal-safe calls: setsid, dup2.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            if libc::dup2(ready_fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(crate::io_err("running", "slirp4netns"))?;
    drop(ready_w);
    let pf = pid_file(engine, &r.id);
    std::fs::write(&pf, child.id().to_string()).map_err(crate::io_err("writing", &pf))?;
    if !wait_ready(ready_r, Duration::from_secs(10)) {
        let _ = child.kill();
        let _ = child.wait();
        let said = std::fs::read_to_string(dir.join("slirp4netns.log")).unwrap_or_default();
        return Err(EngineError::Invalid(format!(
            "slirp4netns failed to set up the network: {}",
            explain(said.trim())
        )));
    }
    // The helper lives on with the container; nothing waits for it here.
    std::mem::forget(child);
    for p in ports {
        add_hostfwd(&api, p)?;
    }
    Ok(())
}

/// Waits for slirp4netns to write to its ready descriptor.
fn wait_ready(fd: OwnedFd, timeout: Duration) -> bool {
    let mut pfd = [nix::poll::PollFd::new(
        std::os::fd::AsFd::as_fd(&fd),
        nix::poll::PollFlags::POLLIN,
    )];
    let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    if !matches!(nix::poll::poll(&mut pfd, ms), Ok(n) if n > 0) {
        return false;
    }
    let mut b = [0u8; 1];
    matches!(std::fs::File::from(fd).read(&mut b), Ok(1))
}

/// Asks slirp4netns (its API socket) to forward a host port into the namespace.
fn add_hostfwd(api: &Path, p: &Published) -> Result<()> {
    let req = serde_json::json!({
        "execute": "add_hostfwd",
        "arguments": {"proto": p.proto, "host_addr": p.host_ip, "host_port": p.host_port, "guest_port": p.port}
    });
    let mut s = std::os::unix::net::UnixStream::connect(api).map_err(crate::io_err("connecting to", api))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    s.write_all(req.to_string().as_bytes())
        .map_err(crate::io_err("writing to", api))?;
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut answer = String::new();
    s.read_to_string(&mut answer).map_err(crate::io_err("reading", api))?;
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
    if v.get("return").is_none() {
        let why = v["error"]["desc"].as_str().unwrap_or(answer.as_str()).to_string();
        return Err(EngineError::Conflict(format!(
            "Bind for {}:{} failed: {why}",
            p.host_ip, p.host_port
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slirp_options_parse_like_podman() {
        assert_eq!(
            slirp_options(&[]).unwrap(),
            vec!["--mtu=65520", "--disable-host-loopback"]
        );
        let a = slirp_options(&["mtu=1500".into(), "allow_host_loopback=true".into()]).unwrap();
        assert_eq!(a, vec!["--mtu=1500"]);
        slirp_options(&["port_handler=rootlesskit".into()]).unwrap_err();
        slirp_options(&["mtu=big".into()]).unwrap_err();
    }

    #[test]
    fn modes_parse() {
        assert_eq!(NetworkMode::parse("pasta"), NetworkMode::Pasta(vec![]));
        assert_eq!(
            NetworkMode::parse("pasta:--ipv4-only,-a,10.0.0.5"),
            NetworkMode::Pasta(vec!["--ipv4-only".into(), "-a".into(), "10.0.0.5".into()])
        );
        assert_eq!(
            NetworkMode::parse("slirp4netns:mtu=1500").user_mode_string().as_deref(),
            Some("slirp4netns:mtu=1500")
        );
        assert!(NetworkMode::parse("pasta").is_user_mode());
        assert!(NetworkMode::parse("pasta").is_private());
    }
}
