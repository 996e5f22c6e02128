//! Typed pieces of a container's options: what `-p`, `--restart`, `--network`, `--ulimit`,
//! `--health-*` and `--log-opt` mean, whatever front end they came from.
//!
//! Each front end makes these from its own syntax: the CLI parses its flags with the
//! `parse` functions here (which `compose` files share), the API deserializes Docker's
//! JSON into them. What is allowed is checked once, by `create`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use berth_net::nft::Proto;
use serde::Deserialize;

pub use crate::model::{NamespaceMode, NetworkMode};
use crate::{EngineError, Result};

/// A restart policy (`--restart`, `HostConfig.RestartPolicy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Never restart.
    #[default]
    No,
    /// Always, unless stopped by hand (then again when the daemon starts).
    Always,
    /// After a non-zero exit, at most this many times (0: no limit).
    OnFailure(u32),
    /// Always, unless stopped by hand.
    UnlessStopped,
}

impl RestartPolicy {
    /// `--restart no|always|on-failure[:N]|unless-stopped`.
    pub fn parse(p: &str) -> Result<RestartPolicy> {
        let (name, max) = match p.split_once(':') {
            Some((n, m)) => {
                let max = m
                    .parse::<i64>()
                    .map_err(|_| EngineError::Invalid(format!("invalid restart policy format: {p:?}")))?;
                (n, max)
            }
            None => (p, 0),
        };
        RestartPolicy::from_docker(name, max)
    }

    /// Docker's `{"Name": ..., "MaximumRetryCount": ...}`, checked as dockerd checks it.
    pub fn from_docker(name: &str, max: i64) -> Result<RestartPolicy> {
        if max < 0 {
            return Err(EngineError::Invalid(
                "invalid restart policy: maximum retry count cannot be negative".into(),
            ));
        }
        if max > 0 && name != "on-failure" {
            return Err(EngineError::Invalid(
                "invalid restart policy: maximum retry count can only be used with 'on-failure'".into(),
            ));
        }
        Ok(match name {
            "" | "no" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => RestartPolicy::OnFailure(u32::try_from(max).unwrap_or(u32::MAX)),
            other => {
                return Err(EngineError::Invalid(format!(
                    "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
                )))
            }
        })
    }

    /// Docker's name for it.
    pub fn name(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure(_) => "on-failure",
            RestartPolicy::UnlessStopped => "unless-stopped",
        }
    }

    /// The retry limit (0 for all but `on-failure:N`).
    pub fn max_retries(self) -> u32 {
        match self {
            RestartPolicy::OnFailure(n) => n,
            _ => 0,
        }
    }
}

/// An inclusive range of ports.
pub type PortRange = (u16, u16);

/// One `-p`: host address and ports (either may be left to the engine), container
/// ports, protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// The host address (`None`: all of them).
    pub host_ip: Option<Ipv4Addr>,
    /// The host ports (`None`: any free one).
    pub host_ports: Option<PortRange>,
    /// The container's ports.
    pub container_ports: PortRange,
    /// The protocol.
    pub proto: Proto,
}

/// One wanted port: host address (`None`: all), host port (`None`: any free one),
/// container port, protocol.
pub type Wanted = (Option<Ipv4Addr>, Option<u16>, u16, Proto);

impl PortSpec {
    /// `-p [ip:][hostPort:]containerPort[/proto]`, ranges allowed on both sides.
    pub fn parse(spec: &str) -> Result<PortSpec> {
        let bad = |why: &str| EngineError::Invalid(format!("invalid publish spec {spec:?}: {why}"));
        let (rest, proto) = match spec.rsplit_once('/') {
            Some((r, p)) => (r, proto(p).ok_or_else(|| bad(&format!("unsupported protocol {p}")))?),
            None => (spec, Proto::Tcp),
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let (ip, host, ctr) = match parts.as_slice() {
            [c] => (None, None, *c),
            [h, c] => (None, Some(*h), *c),
            [i, h, c] => (Some(*i), Some(*h).filter(|h| !h.is_empty()), *c),
            _ => return Err(bad("too many colons")),
        };
        let host_ip = match ip {
            None | Some("" | "0.0.0.0") => None,
            Some(i) => Some(i.parse::<Ipv4Addr>().map_err(|_| bad("bad host address (IPv4 only)"))?),
        };
        let p = PortSpec {
            host_ip,
            host_ports: host
                .map(|h| port_range(h).ok_or_else(|| bad(&format!("bad port {h:?}"))))
                .transpose()?,
            container_ports: port_range(ctr).ok_or_else(|| bad(&format!("bad port {ctr:?}")))?,
            proto,
        };
        if !p.sizes_match() {
            return Err(bad("host and container port ranges differ in size"));
        }
        Ok(p)
    }

    /// One of Docker's `PortBindings`: the key (`80/tcp`) and a binding's `HostIp` and
    /// `HostPort` (each may be empty).
    pub fn from_binding(port: &str, host_ip: &str, host_port: &str) -> Result<PortSpec> {
        let bad = |why: &str| EngineError::Invalid(format!("invalid port binding {port:?}: {why}"));
        let (ctr, p) = port.split_once('/').unwrap_or((port, "tcp"));
        let host_ip = match host_ip {
            "" | "0.0.0.0" => None,
            i => Some(
                i.parse::<Ipv4Addr>()
                    .map_err(|_| bad(&format!("bad host address {i:?} (IPv4 only)")))?,
            ),
        };
        let spec = PortSpec {
            host_ip,
            host_ports: Some(host_port)
                .filter(|h| !h.is_empty())
                .map(|h| port_range(h).ok_or_else(|| bad(&format!("bad host port {h:?}"))))
                .transpose()?,
            container_ports: port_range(ctr).ok_or_else(|| bad(&format!("bad port {ctr:?}")))?,
            proto: proto(p).ok_or_else(|| bad(&format!("unsupported protocol {p}")))?,
        };
        if !spec.sizes_match() {
            return Err(bad("host and container port ranges differ in size"));
        }
        Ok(spec)
    }

    /// A host range is one port, or as many as the container's.
    fn sizes_match(&self) -> bool {
        let (c0, c1) = self.container_ports;
        self.host_ports.is_none_or(|(h0, h1)| h1 - h0 == c1 - c0 || h0 == h1)
    }

    /// The single ports it asks for.
    pub fn wanted(&self) -> Vec<Wanted> {
        let (c0, c1) = self.container_ports;
        (c0..=c1)
            .enumerate()
            .map(|(i, c)| {
                let h = self.host_ports.map(|(h0, h1)| {
                    if h0 == h1 {
                        h0
                    } else {
                        h0 + u16::try_from(i).unwrap_or(0)
                    }
                });
                (self.host_ip, h, c, self.proto)
            })
            .collect()
    }
}

/// The `-p` form, which `PortSpec::parse` reads back (how a record keeps it).
impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let range = |(a, b): PortRange| if a == b { a.to_string() } else { format!("{a}-{b}") };
        match (self.host_ip, self.host_ports) {
            (Some(ip), h) => write!(f, "{ip}:{}:", h.map(range).unwrap_or_default())?,
            (None, Some(h)) => write!(f, "{}:", range(h))?,
            (None, None) => {}
        }
        write!(f, "{}/{}", range(self.container_ports), self.proto.as_str())
    }
}

fn proto(p: &str) -> Option<Proto> {
    match p {
        "tcp" => Some(Proto::Tcp),
        "udp" => Some(Proto::Udp),
        _ => None,
    }
}

/// `N` or `N-M`, ports from 1.
fn port_range(s: &str) -> Option<PortRange> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
    (a != 0 && b >= a).then_some((a, b))
}

/// A resource limit (`--ulimit`, `HostConfig.Ulimits`); -1 is unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ulimit {
    /// The limit's name without `RLIMIT_` (`nofile`).
    pub name: String,
    /// The soft limit.
    pub soft: i64,
    /// The hard limit.
    pub hard: i64,
}

/// The limits `--ulimit` knows.
const ULIMITS: [&str; 15] = [
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

impl Ulimit {
    /// `--ulimit name=soft[:hard]` (`-1` or `unlimited` for no limit).
    pub fn parse(s: &str) -> Result<Ulimit> {
        let bad = || EngineError::Invalid(format!("invalid ulimit argument: {s}"));
        let (name, v) = s.split_once('=').ok_or_else(bad)?;
        let (soft, hard) = v.split_once(':').unwrap_or((v, v));
        let parse = |x: &str| -> Result<i64> {
            if x == "unlimited" {
                Ok(-1)
            } else {
                x.parse().map_err(|_| bad())
            }
        };
        Ok(Ulimit {
            name: name.to_string(),
            soft: parse(soft)?,
            hard: parse(hard)?,
        })
    }

    /// The limit as a record keeps it (u64::MAX: unlimited), once checked.
    pub fn checked(&self) -> Result<(String, u64, u64)> {
        if !ULIMITS.contains(&self.name.as_str()) {
            return Err(EngineError::Invalid(format!("invalid ulimit type: {}", self.name)));
        }
        let value = |n: i64| match n {
            -1 => Ok(u64::MAX),
            n => u64::try_from(n)
                .map_err(|_| EngineError::Invalid(format!("invalid ulimit {}: {n} is negative", self.name))),
        };
        let (soft, hard) = (value(self.soft)?, value(self.hard)?);
        if soft > hard {
            return Err(EngineError::Invalid(format!(
                "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            )));
        }
        Ok((self.name.clone(), soft, hard))
    }
}

/// A health check asked for at create (`--health-*`, `Config.Healthcheck`); what is not
/// set comes from the image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthOptions {
    /// `["NONE"]` (no check), `["CMD", argv...]` or `["CMD-SHELL", command]`.
    pub test: Option<Vec<String>>,
    /// Between probes.
    pub interval: Option<Duration>,
    /// How long a probe may run.
    pub timeout: Option<Duration>,
    /// Failures in this time after the start do not count.
    pub start_period: Option<Duration>,
    /// Failures in a row that make the container unhealthy.
    pub retries: Option<u32>,
}

/// Where the container's output goes (`--log-driver`, `--log-opt`, `HostConfig.LogConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogConfig {
    /// `json-file` (empty: the default), `local` (kept as json-file) or `none`.
    pub driver: String,
    /// The driver's options.
    pub opts: BTreeMap<String, String>,
}

impl LogConfig {
    /// `--log-opt KEY=VALUE`, each.
    pub fn parse_opts(opts: &[String]) -> Result<BTreeMap<String, String>> {
        opts.iter()
            .map(|o| {
                o.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| EngineError::Invalid(format!("invalid key value pair format in logging opts: {o}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_modes() {
        assert_eq!(NetworkMode::parse("default"), NetworkMode::Bridge);
        assert_eq!(
            NetworkMode::parse("container:web"),
            NetworkMode::Container("web".into())
        );
        assert_eq!(NetworkMode::parse("back"), NetworkMode::Named("back".into()));
        assert!(NetworkMode::parse("host").is_private());
        assert!(!NetworkMode::parse("back").is_private());
    }

    #[test]
    fn restart_policies_as_docker_checks_them() {
        assert_eq!(
            RestartPolicy::parse("on-failure:3").unwrap(),
            RestartPolicy::OnFailure(3)
        );
        assert_eq!(RestartPolicy::parse("no").unwrap(), RestartPolicy::No);
        assert_eq!(RestartPolicy::from_docker("", 0).unwrap(), RestartPolicy::No);
        for bad in ["always:2", "sometimes", "on-failure:x", "on-failure:-1"] {
            RestartPolicy::parse(bad).unwrap_err();
        }
        assert!(RestartPolicy::from_docker("always", 1)
            .unwrap_err()
            .to_string()
            .contains("only be used with 'on-failure'"));
    }

    #[test]
    fn port_specs_read_back_what_they_print() {
        for s in [
            "80",
            "8080:80",
            "127.0.0.1:8080:80/udp",
            "127.0.0.1::80",
            "9000-9001:80-81",
        ] {
            let p = PortSpec::parse(s).unwrap();
            assert_eq!(PortSpec::parse(&p.to_string()).unwrap(), p, "{s}");
        }
        assert_eq!(PortSpec::parse("80").unwrap().to_string(), "80/tcp");
        let b = PortSpec::from_binding("53/udp", "127.0.0.1", "").unwrap();
        assert_eq!(b.to_string(), "127.0.0.1::53/udp");
        assert_eq!(b.wanted(), vec![(Some(Ipv4Addr::LOCALHOST), None, 53, Proto::Udp)]);
        for bad in ["0", "80/sctp", "a:b:c:d", "9000-9002:80-81", "x"] {
            PortSpec::parse(bad).unwrap_err();
        }
        PortSpec::from_binding("80/tcp", "::1", "8080").unwrap_err();
    }

    #[test]
    fn ulimits_are_checked_at_create() {
        let u = Ulimit::parse("nofile=1024:2048").unwrap();
        assert_eq!(u.checked().unwrap(), ("nofile".into(), 1024, 2048));
        assert_eq!(Ulimit::parse("core=-1").unwrap().checked().unwrap().1, u64::MAX);
        Ulimit::parse("nofile").unwrap_err();
        Ulimit::parse("nofile=2048:1024").unwrap().checked().unwrap_err();
        Ulimit::parse("bogus=1").unwrap().checked().unwrap_err();
        let u: Ulimit = serde_json::from_str(r#"{"Name":"nproc","Soft":5,"Hard":6}"#).unwrap();
        assert_eq!(u.checked().unwrap(), ("nproc".into(), 5, 6));
    }

    #[test]
    fn log_opts_are_pairs() {
        let o = LogConfig::parse_opts(&["max-size=1m".into()]).unwrap();
        assert_eq!(o["max-size"], "1m");
        LogConfig::parse_opts(&["max-size".into()]).unwrap_err();
    }
}
