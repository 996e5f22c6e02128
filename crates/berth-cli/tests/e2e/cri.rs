//! The CRI server (`berth cri`) driven by the project's own client (the k8s-cri crate's
//! tonic clients), as a kubelet or crictl drives it: sandboxes, containers, exec, images.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use berth_cri::client::{connect, cri, Client};
use berth_testutil::images::{Auth, Registry};
use berth_testutil::{require_root, require_tool};

use crate::containers::with_busybox;
use crate::images::Berth;

/// A `berth cri` server on a socket in the test's data root, SIGTERMed (by its pid) and
/// reaped on drop.
struct Server {
    child: std::process::Child,
    socket: std::path::PathBuf,
    rt: tokio::runtime::Runtime,
}

impl Server {
    fn start(b: &Berth) -> Server {
        Server::start_with(b, &[])
    }

    /// A server with `extra` flags; without `--cni-conf-dir`, an empty one (the host's
    /// `/etc/cni/net.d` may hold another tool's network): sandboxes on berth's bridge.
    fn start_with(b: &Berth, extra: &[&str]) -> Server {
        Server::start_env(b, extra, &[])
    }

    /// `start_with`, the server's environment added to.
    fn start_env(b: &Berth, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let socket = b.root.path().join("cri.sock");
        let listen = format!("unix://{}", socket.display());
        let no_cni = b.root.path().join("no-cni");
        std::fs::create_dir_all(&no_cni).unwrap();
        let no_cni = no_cni.display().to_string();
        let mut args = vec!["cri", "--listen", &listen];
        if !extra.contains(&"--cni-conf-dir") {
            args.extend_from_slice(&["--cni-conf-dir", &no_cni]);
        }
        args.extend_from_slice(extra);
        let child = b.cmd(&args).envs(env.iter().copied()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "berth cri never listened on {}",
                socket.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Server { child, socket, rt }
    }

    fn client(&self) -> Client {
        self.rt.block_on(connect(&self.socket)).unwrap()
    }

    fn call<T>(&self, f: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>) -> T {
        self.rt.block_on(f).unwrap().into_inner()
    }

    /// A sandbox's status.
    fn sandbox(&self, c: &mut Client, sid: &str) -> cri::PodSandboxStatus {
        self.call(c.runtime.pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: sid.to_string(),
            verbose: false,
        }))
        .status
        .unwrap()
    }

    /// The image a name or id is, as `ImageStatus` says (none: not in the store).
    fn image(&self, c: &mut Client, name: &str) -> Option<cri::Image> {
        self.call(c.images.image_status(cri::ImageStatusRequest {
            image: Some(spec(name)),
            verbose: false,
        }))
        .image
    }

    fn fail<T: std::fmt::Debug>(
        &self,
        f: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> tonic::Status {
        self.rt.block_on(f).unwrap_err()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: a signal to the server this test started (a positive pid).
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}

fn spec(image: &str) -> cri::ImageSpec {
    cri::ImageSpec {
        image: image.into(),
        ..Default::default()
    }
}

fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn sandbox_config(name: &str, logs: &std::path::Path) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "default".into(),
            attempt: 1,
        }),
        hostname: name.into(),
        log_directory: logs.display().to_string(),
        labels: labels(&[("app", name), ("tier", "test")]),
        annotations: labels(&[("note", "from the test")]),
        linux: Some(cri::LinuxPodSandboxConfig {
            sysctls: labels(&[("kernel.shmmni", "1234"), ("net.ipv4.ping_group_range", "0 0")]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container_config(name: &str, image: &str, args: &[&str]) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        command: vec!["sh".into(), "-c".into()],
        args: args.iter().map(|s| s.to_string()).collect(),
        envs: vec![cri::KeyValue {
            key: "GREETING".into(),
            value: "hello".into(),
        }],
        labels: labels(&[("role", name)]),
        log_path: format!("{name}.log"),
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(cri::LinuxContainerResources {
                oom_score_adj: 500,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn a_sandbox_and_its_container_live_and_go_through_the_cri() {
    require_root!();
    let (b, _img) = with_busybox("cri-life");
    let srv = Server::start(&b);
    let mut c = srv.client();
    let logs = b.root.path().join("pod-logs");

    let v = srv.call(c.runtime.version(cri::VersionRequest::default()));
    assert_eq!(
        (v.runtime_name.as_str(), v.runtime_api_version.as_str()),
        ("berth", "v1")
    );
    let st = srv.call(c.runtime.status(cri::StatusRequest::default()));
    let conds = st.status.unwrap().conditions;
    assert!(conds.iter().all(|c| c.status), "{conds:?}");
    assert_eq!(conds.len(), 2, "{conds:?}");
    let rc = srv.call(c.runtime.runtime_config(cri::RuntimeConfigRequest::default()));
    assert_eq!(rc.linux.unwrap().cgroup_driver, cri::CgroupDriver::Cgroupfs as i32);

    // The image berth imported is the CRI's too.
    let img = srv.image(&mut c, "bb:1").unwrap();
    assert!(img.id.starts_with("sha256:"), "{img:?}");
    assert!(img.repo_tags.iter().any(|t| t.ends_with("bb:1")), "{img:?}");

    // A sandbox: a berth pod whose infra runs.
    let config = sandbox_config("web", &logs);
    let sid = srv
        .call(c.runtime.run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        }))
        .pod_sandbox_id;
    assert_eq!(sid.len(), 64);
    let ps = srv.sandbox(&mut c, &sid);
    assert_eq!(ps.state, cri::PodSandboxState::SandboxReady as i32);
    assert_eq!(ps.metadata.as_ref().unwrap().name, "web");
    assert_eq!(ps.labels, config.labels);
    assert_eq!(ps.annotations, config.annotations);
    let ip = ps.network.unwrap().ip;
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "sandbox ip {ip:?}");
    assert!(b.ok(&["pod", "ps", "-q", "--no-trunc"]).contains(&sid));
    // Another sandbox, to filter against.
    let other = srv
        .call(c.runtime.run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(sandbox_config("db", &logs)),
            runtime_handler: String::new(),
        }))
        .pod_sandbox_id;
    let listed = |f: cri::PodSandboxFilter| -> Vec<String> {
        let mut c = srv.client();
        srv.call(
            c.runtime
                .list_pod_sandbox(cri::ListPodSandboxRequest { filter: Some(f) }),
        )
        .items
        .into_iter()
        .map(|p| p.id)
        .collect()
    };
    assert_eq!(
        listed(cri::PodSandboxFilter {
            label_selector: labels(&[("app", "web")]),
            ..Default::default()
        }),
        vec![sid.clone()]
    );
    assert_eq!(
        listed(cri::PodSandboxFilter {
            id: other[..12].to_string(),
            ..Default::default()
        }),
        vec![other.clone()]
    );

    // Container events from here on, read at the end.
    let mut events = srv.call(c.runtime.get_container_events(cri::GetEventsRequest::default()));
    // A container in it: created, started, exec'd into, stopped.
    let cid = srv
        .call(c.runtime.create_container(cri::CreateContainerRequest {
            pod_sandbox_id: sid.clone(),
            config: Some(container_config(
                "srv",
                "bb:1",
                &["echo $GREETING; trap 'exit 0' TERM; while :; do [ -f /tmp/say ] && { cat /tmp/say; rm /tmp/say; }; sleep 0.1; done"],
            )),
            sandbox_config: Some(config.clone()),
        }))
        .container_id;
    let status = |c: &mut Client| {
        srv.call(c.runtime.container_status(cri::ContainerStatusRequest {
            container_id: cid.clone(),
            verbose: false,
        }))
        .status
        .unwrap()
    };
    let s = status(&mut c);
    assert_eq!(s.state, cri::ContainerState::ContainerCreated as i32);
    assert_eq!(s.metadata.as_ref().unwrap().name, "srv");
    assert_eq!(s.labels, labels(&[("role", "srv")]));
    assert_eq!(s.log_path, logs.join("srv.log").display().to_string());
    srv.call(c.runtime.start_container(cri::StartContainerRequest {
        container_id: cid.clone(),
    }));
    let s = status(&mut c);
    assert_eq!(s.state, cri::ContainerState::ContainerRunning as i32);
    assert!(
        s.started_at > 0 && s.created_at > 0 && s.started_at >= s.created_at,
        "{s:?}"
    );
    // A started container does not start again.
    let e = srv.fail(c.runtime.start_container(cri::StartContainerRequest {
        container_id: cid.clone(),
    }));
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");

    let x = srv.call(c.runtime.exec_sync(cri::ExecSyncRequest {
        container_id: cid.clone(),
        cmd: vec!["sh".into(), "-c".into(), "hostname; echo $GREETING >&2; exit 3".into()],
        timeout: 10,
    }));
    assert_eq!(String::from_utf8_lossy(&x.stdout).trim(), "web");
    assert_eq!(String::from_utf8_lossy(&x.stderr).trim(), "hello");
    assert_eq!(x.exit_code, 3);
    // The pod's sysctls hold in its namespaces; the container's OOM score is its own.
    let x = srv.call(c.runtime.exec_sync(cri::ExecSyncRequest {
        container_id: cid.clone(),
        cmd: vec![
            "cat".into(),
            "/proc/sys/kernel/shmmni".into(),
            "/proc/sys/net/ipv4/ping_group_range".into(),
        ],
        timeout: 10,
    }));
    let out = String::from_utf8_lossy(&x.stdout);
    let got: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(got, ["1234", "0", "0"], "{out}");
    let pid = b.ok(&["inspect", "-f", "{{.State.Pid}}", &cid]);
    let adj = std::fs::read_to_string(format!("/proc/{}/oom_score_adj", pid.trim())).unwrap();
    assert_eq!(adj.trim(), "500");
    let e = srv.fail(c.runtime.exec_sync(cri::ExecSyncRequest {
        container_id: cid.clone(),
        cmd: vec!["sleep".into(), "5".into()],
        timeout: 1,
    }));
    assert_eq!(e.code(), tonic::Code::DeadlineExceeded, "{e:?}");

    // The container's log in the CRI's format, where the kubelet reads it; moved away (a
    // rotation), then reopened at its path.
    let log = logs.join("srv.log");
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    crate::pods::eventually(|| read_log().contains(" stdout F hello\n").then_some(()));
    let first = read_log();
    let line = first.lines().find(|l| l.ends_with(" stdout F hello")).unwrap();
    let stamp = line.split(' ').next().unwrap();
    assert!(
        stamp.len() == 30 && stamp.ends_with('Z') && stamp.contains('T'),
        "{line}"
    );
    std::fs::rename(&log, logs.join("srv.log.1")).unwrap();
    srv.call(c.runtime.reopen_container_log(cri::ReopenContainerLogRequest {
        container_id: cid.clone(),
    }));
    assert!(log.exists(), "reopened");
    srv.call(c.runtime.exec_sync(cri::ExecSyncRequest {
        container_id: cid.clone(),
        cmd: vec!["sh".into(), "-c".into(), "echo again > /tmp/say".into()],
        timeout: 10,
    }));
    crate::pods::eventually(|| read_log().contains(" stdout F again\n").then_some(()));
    assert!(!read_log().contains("hello"), "the new file starts empty");

    // Usage figures, for the container and its sandbox.
    let cs = srv
        .call(c.runtime.container_stats(cri::ContainerStatsRequest {
            container_id: cid.clone(),
        }))
        .stats
        .unwrap();
    assert_eq!(cs.attributes.as_ref().unwrap().id, cid);
    assert!(cs.cpu.unwrap().usage_core_nano_seconds.unwrap().value > 0);
    assert!(cs.memory.unwrap().working_set_bytes.unwrap().value > 0);
    let all = srv
        .call(c.runtime.list_container_stats(cri::ListContainerStatsRequest {
            filter: Some(cri::ContainerStatsFilter {
                pod_sandbox_id: sid.clone(),
                ..Default::default()
            }),
        }))
        .stats;
    assert_eq!(all.len(), 1);
    let ps = srv
        .call(c.runtime.pod_sandbox_stats(cri::PodSandboxStatsRequest {
            pod_sandbox_id: sid.clone(),
        }))
        .stats
        .unwrap();
    let linux = ps.linux.unwrap();
    assert_eq!(linux.containers.len(), 1);
    assert!(linux.process.unwrap().process_count.unwrap().value >= 2);

    let in_sandbox = |c: &mut Client, sandbox: &str| -> Vec<String> {
        srv.call(c.runtime.list_containers(cri::ListContainersRequest {
            filter: Some(cri::ContainerFilter {
                pod_sandbox_id: sandbox.to_string(),
                ..Default::default()
            }),
        }))
        .containers
        .into_iter()
        .map(|c| c.id)
        .collect()
    };
    assert_eq!(in_sandbox(&mut c, &sid), vec![cid.clone()]);
    assert!(in_sandbox(&mut c, &other).is_empty());
    // berth sees the CRI's container as one of its own.
    assert!(b.ok(&["ps", "-q", "--no-trunc"]).contains(&cid));

    srv.call(c.runtime.stop_container(cri::StopContainerRequest {
        container_id: cid.clone(),
        timeout: 10,
    }));
    let s = status(&mut c);
    assert_eq!(s.state, cri::ContainerState::ContainerExited as i32);
    assert_eq!((s.exit_code, s.reason.as_str()), (0, "Completed"), "{s:?}");
    assert!(s.finished_at >= s.started_at, "{s:?}");

    // The sandbox stopped, then removed with its container; both again are no errors.
    for _ in 0..2 {
        srv.call(c.runtime.stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: sid.clone(),
        }));
    }
    let ps = srv.sandbox(&mut c, &sid);
    assert_eq!(ps.state, cri::PodSandboxState::SandboxNotready as i32);
    for id in [&sid, &sid, &other] {
        srv.call(c.runtime.remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: id.clone(),
        }));
    }
    assert!(listed(cri::PodSandboxFilter::default()).is_empty());
    assert_eq!(b.ok(&["pod", "ps", "-q"]), "");
    assert_eq!(b.ok(&["ps", "-aq"]), "");

    // The container's life as events, in order, each with its sandbox (the infra's own
    // are not the CRI's containers).
    let mut seen = Vec::new();
    while seen.last() != Some(&(cri::ContainerEventType::ContainerDeletedEvent as i32)) {
        let next = srv
            .rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(10), events.message()).await })
            .expect("an event within 10 s")
            .unwrap()
            .expect("the stream goes on");
        assert_eq!(next.container_id, cid, "{next:?}");
        if next.container_event_type != cri::ContainerEventType::ContainerDeletedEvent as i32 {
            assert_eq!(next.pod_sandbox_status.as_ref().unwrap().id, sid);
            assert_eq!(next.containers_statuses.len(), 1);
        }
        seen.push(next.container_event_type);
    }
    assert_eq!(
        seen,
        [
            cri::ContainerEventType::ContainerCreatedEvent as i32,
            cri::ContainerEventType::ContainerStartedEvent as i32,
            cri::ContainerEventType::ContainerStoppedEvent as i32,
            cri::ContainerEventType::ContainerDeletedEvent as i32,
        ]
    );
}

#[test]
fn bad_cri_requests_get_errors_and_leave_nothing() {
    require_root!();
    let (b, _img) = with_busybox("cri-bad");
    let srv = Server::start(&b);
    let mut c = srv.client();
    let logs = b.root.path().join("pod-logs");

    // A sandbox without metadata, or with a part of it missing.
    let e = srv.fail(c.runtime.run_pod_sandbox(cri::RunPodSandboxRequest {
        config: Some(cri::PodSandboxConfig::default()),
        runtime_handler: String::new(),
    }));
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    let mut config = sandbox_config("bad", &logs);
    config.metadata.as_mut().unwrap().uid.clear();
    let e = srv.fail(c.runtime.run_pod_sandbox(cri::RunPodSandboxRequest {
        config: Some(config),
        runtime_handler: String::new(),
    }));
    assert!(
        e.code() == tonic::Code::InvalidArgument && e.message().contains("uid"),
        "{e:?}"
    );
    let e = srv.fail(c.runtime.run_pod_sandbox(cri::RunPodSandboxRequest {
        config: Some(sandbox_config("bad", &logs)),
        runtime_handler: "kata".into(),
    }));
    assert!(e.message().contains("kata"), "{e:?}");
    // The same sandbox twice.
    let config = sandbox_config("ok", &logs);
    let sid = srv
        .call(c.runtime.run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        }))
        .pod_sandbox_id;
    let e = srv.fail(c.runtime.run_pod_sandbox(cri::RunPodSandboxRequest {
        config: Some(config.clone()),
        runtime_handler: String::new(),
    }));
    assert_eq!(e.code(), tonic::Code::AlreadyExists, "{e:?}");

    // Containers: an unknown sandbox, no metadata, a missing image, a mount of a host path
    // that is not there, an unknown seccomp profile.
    let create = |c: &mut Client, sandbox: &str, cfg: cri::ContainerConfig| {
        srv.fail(c.runtime.create_container(cri::CreateContainerRequest {
            pod_sandbox_id: sandbox.to_string(),
            config: Some(cfg),
            sandbox_config: Some(config.clone()),
        }))
    };
    let good = container_config("c", "bb:1", &["true"]);
    let e = create(&mut c, "0123456789ab", good.clone());
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    let mut cfg = good.clone();
    cfg.metadata = None;
    assert_eq!(create(&mut c, &sid, cfg).code(), tonic::Code::InvalidArgument);
    let mut cfg = good.clone();
    cfg.image = Some(cri::ImageSpec {
        image: "no/such:image".into(),
        ..Default::default()
    });
    assert_eq!(create(&mut c, &sid, cfg).code(), tonic::Code::NotFound);
    let mut cfg = good.clone();
    cfg.mounts = vec![cri::Mount {
        container_path: "/data".into(),
        host_path: "/no/such/dir".into(),
        ..Default::default()
    }];
    let e = create(&mut c, &sid, cfg);
    assert!(
        e.code() == tonic::Code::InvalidArgument && e.message().contains("/no/such/dir"),
        "{e:?}"
    );
    let mut cfg = good.clone();
    cfg.linux = Some(cri::LinuxContainerConfig {
        security_context: Some(cri::LinuxContainerSecurityContext {
            seccomp: Some(cri::SecurityProfile {
                profile_type: cri::security_profile::ProfileType::Localhost as i32,
                localhost_ref: "/no/such/profile.json".into(),
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let e = create(&mut c, &sid, cfg);
    assert!(
        e.code() == tonic::Code::InvalidArgument && e.message().contains("profile"),
        "{e:?}"
    );
    // Unknown ids: status is NotFound; stop and remove are done already.
    let e = srv.fail(c.runtime.container_status(cri::ContainerStatusRequest {
        container_id: "feedfacefeed".into(),
        verbose: false,
    }));
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    srv.call(c.runtime.stop_container(cri::StopContainerRequest {
        container_id: "feedfacefeed".into(),
        timeout: 1,
    }));
    srv.call(c.runtime.remove_container(cri::RemoveContainerRequest {
        container_id: "feedfacefeed".into(),
    }));
    // An RPC berth does not serve says so.
    let e = srv.fail(
        c.runtime
            .checkpoint_container(cri::CheckpointContainerRequest::default()),
    );
    assert_eq!(e.code(), tonic::Code::Unimplemented, "{e:?}");
    // Nothing half made: the one sandbox and its infra, no container.
    assert_eq!(b.ok(&["pod", "ps", "-q", "--no-trunc"]).trim(), sid);
    assert_eq!(b.ok(&["ps", "-aq"]).lines().count(), 1, "only the infra");
    srv.call(
        c.runtime
            .remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: sid }),
    );
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

#[test]
fn images_pulled_through_the_cri_are_berths() {
    require_root!();
    require_tool!("docker-registry");
    let reg = Registry::start("cri-pull", Auth::Open);
    let (b, _img) = with_busybox("cri-pull");
    let name = format!("{}/test/bb:cri", reg.host);
    b.ok(&["tag", "bb:1", &name]);
    b.ok(&["push", &name]);
    b.ok(&["rmi", &name]);
    let srv = Server::start(&b);
    let mut c = srv.client();
    let spec = spec(&name);
    // Not there yet: no image, and no error.
    assert!(srv.image(&mut c, &name).is_none());
    let pulled = srv
        .call(c.images.pull_image(cri::PullImageRequest {
            image: Some(spec.clone()),
            ..Default::default()
        }))
        .image_ref;
    assert!(pulled.starts_with("sha256:"), "{pulled}");
    assert!(b
        .ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .contains(&format!("{}/test/bb:cri", reg.host)));
    let listed = srv.call(c.images.list_images(cri::ListImagesRequest::default())).images;
    assert!(listed.iter().any(|i| i.id == pulled), "{listed:?}");
    let fs = srv.call(c.images.image_fs_info(cri::ImageFsInfoRequest::default()));
    assert!(fs.image_filesystems[0].used_bytes.as_ref().unwrap().value > 0);
    // A bad reference is refused; removing twice is fine.
    let e = srv.fail(c.images.pull_image(cri::PullImageRequest {
        image: Some(cri::ImageSpec {
            image: "UPPER/case::bad".into(),
            ..Default::default()
        }),
        ..Default::default()
    }));
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    // Five removals at once all succeed, and the image is gone when each returns.
    let clients: Vec<Client> = (0..5).map(|_| srv.client()).collect();
    let results = srv.rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for mut c in clients {
            let id = pulled.clone();
            set.spawn(async move {
                c.images
                    .remove_image(cri::RemoveImageRequest {
                        image: Some(cri::ImageSpec {
                            image: id.clone(),
                            ..Default::default()
                        }),
                    })
                    .await?;
                let left = c
                    .images
                    .image_status(cri::ImageStatusRequest {
                        image: Some(cri::ImageSpec {
                            image: id,
                            ..Default::default()
                        }),
                        verbose: false,
                    })
                    .await?;
                Ok::<_, tonic::Status>(left.into_inner().image.is_none())
            });
        }
        set.join_all().await
    });
    for r in results {
        assert!(r.unwrap(), "the image outlived a removal that returned");
    }
    srv.call(c.images.remove_image(cri::RemoveImageRequest {
        image: Some(cri::ImageSpec {
            image: pulled.clone(),
            ..Default::default()
        }),
    }));
    // As containerd's, a removal takes every name of the image (bb:1 is the same image).
    assert!(!b.ok(&["images", "-q", "--no-trunc"]).contains(&pulled));
    assert!(srv.image(&mut c, &name).is_none());
}

#[test]
fn pulls_go_to_the_mirrors_hosts_toml_names_and_pass_over_one_that_fails() {
    require_root!();
    require_tool!("docker-registry");
    let reg = Registry::start("cri-mirror", Auth::Open);
    let (b, _img) = with_busybox("cri-mirror");
    // The mirror holds registry.k8s.io/pause:3.9 under its path; a dead mirror comes first,
    // and the server is a dead loopback port too, so nothing leaves the machine.
    b.ok(&["tag", "bb:1", &format!("{}/pause:3.9", reg.host)]);
    b.ok(&["push", &format!("{}/pause:3.9", reg.host)]);
    b.ok(&["rmi", &format!("{}/pause:3.9", reg.host)]);
    let certs = b.root.path().join("certs.d");
    std::fs::create_dir_all(certs.join("registry.k8s.io")).unwrap();
    std::fs::write(
        certs.join("registry.k8s.io/hosts.toml"),
        format!(
            "server = \"http://127.0.0.1:1\"\n\n[host.\"http://127.0.0.1:1\"]\n  capabilities = [\"pull\", \"resolve\"]\n\n[host.\"http://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            reg.host
        ),
    )
    .unwrap();
    let srv = Server::start_with(&b, &["--registry-config-path", certs.to_str().unwrap()]);
    let mut c = srv.client();
    let id = srv
        .call(c.images.pull_image(cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: "registry.k8s.io/pause:3.9".into(),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .image_ref;
    let img = srv.image(&mut c, "registry.k8s.io/pause:3.9").unwrap();
    assert_eq!(img.id, id);
    assert!(
        img.repo_tags.contains(&"registry.k8s.io/pause:3.9".to_string()),
        "{img:?}"
    );
    // `berth pull` reads the same files.
    b.ok(&["rmi", "registry.k8s.io/pause:3.9"]);
    let o = b
        .cmd(&["pull", "registry.k8s.io/pause:3.9"])
        .env("BERTH_REGISTRY_CONFIG", &certs)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(b
        .ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .contains("registry.k8s.io/pause:3.9"));
    // With every endpoint dead the pull fails, naming the last one tried.
    std::fs::write(
        certs.join("registry.k8s.io/hosts.toml"),
        "server = \"http://127.0.0.1:1\"\n",
    )
    .unwrap();
    let e = srv.fail(c.images.pull_image(cri::PullImageRequest {
        image: Some(cri::ImageSpec {
            image: "registry.k8s.io/pause:3.10".into(),
            ..Default::default()
        }),
        ..Default::default()
    }));
    assert!(e.message().contains("registry.k8s.io"), "{e:?}");
}

#[test]
fn the_daemon_serves_the_cri_beside_the_docker_api_and_stops_both() {
    require_root!();
    let b = Berth::new("cri-daemon");
    let api = b.root.path().join("api.sock");
    let socket = b.root.path().join("cri.sock");
    // Killed (by its pid) and reaped if the test fails before it stops.
    struct Reaped(std::process::Child);
    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = b
        .cmd(&[
            "daemon",
            "-H",
            &format!("unix://{}", api.display()),
            "--cri-listen",
            &format!("unix://{}", socket.display()),
        ])
        .spawn()
        .map(Reaped)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() || !api.exists() {
        assert!(Instant::now() < deadline, "the daemon never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut c = rt.block_on(connect(&socket)).unwrap();
    let v = rt
        .block_on(c.runtime.version(cri::VersionRequest::default()))
        .unwrap()
        .into_inner();
    assert_eq!(v.runtime_name, "berth");
    drop(c);
    // SIGTERM ends both servers, their sockets gone.
    // SAFETY: a signal to the daemon this test started (a positive pid).
    unsafe { libc::kill(i32::try_from(child.0.id()).unwrap(), libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "the daemon did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!socket.exists() && !api.exists());
}

/// Deletes a bridge a CNI plugin made (by name) when the test ends, even if it fails.
struct BridgeGone(String);

impl Drop for BridgeGone {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.0])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[test]
fn sandboxes_on_a_cni_network_reach_each_other_and_a_host_port() {
    require_root!();
    let plugins = ["/usr/lib/cni", "/opt/cni/bin"];
    if !plugins
        .iter()
        .any(|d| std::path::Path::new(d).join("portmap").is_file())
        && berth_testutil::unmet("cri-cni", "needs the CNI plugins (containernetworking-plugins)")
    {
        return;
    }
    let (b, _img) = with_busybox("cri-cni");
    let pid = std::process::id();
    let bridge = format!("bcri{}", pid % 100_000);
    let _gone = BridgeGone(bridge.clone());
    let subnet = format!("10.198.{}.0/24", pid % 250);
    let conf = b.root.path().join("net.d");
    std::fs::create_dir_all(&conf).unwrap();
    let list = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "berth-cri-test",
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": subnet}]],
                    "dataDir": b.root.path().join("ipam").display().to_string(),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true},
        ],
    });
    std::fs::write(conf.join("10-test.conflist"), list.to_string()).unwrap();
    let srv = Server::start_with(
        &b,
        &[
            "--cni-conf-dir",
            conf.to_str().unwrap(),
            "--cni-bin-dir",
            &plugins.join(","),
        ],
    );
    let mut c = srv.client();
    let logs = b.root.path().join("pod-logs");
    let host_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut web = sandbox_config("cniweb", &logs);
    web.port_mappings = vec![cri::PortMapping {
        protocol: cri::Protocol::Tcp as i32,
        container_port: 8080,
        host_port: i32::from(host_port),
        host_ip: String::new(),
    }];
    let run = |c: &mut Client, config: &cri::PodSandboxConfig, args: &str| -> (String, String) {
        let sid = srv
            .call(c.runtime.run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            }))
            .pod_sandbox_id;
        let cid = srv
            .call(c.runtime.create_container(cri::CreateContainerRequest {
                pod_sandbox_id: sid.clone(),
                config: Some(container_config("main", "bb:1", &[args])),
                sandbox_config: Some(config.clone()),
            }))
            .container_id;
        srv.call(c.runtime.start_container(cri::StartContainerRequest {
            container_id: cid.clone(),
        }));
        (sid, cid)
    };
    let (web_sid, _) = run(
        &mut c,
        &web,
        "mkdir -p /www && echo from-web > /www/index.html && exec httpd -f -p 8080 -h /www",
    );
    let (cli_sid, cli) = run(&mut c, &sandbox_config("cniclient", &logs), "exec sleep 300");
    let ip_of = |c: &mut Client, sid: &str| srv.sandbox(c, sid).network.unwrap().ip;
    let web_ip = ip_of(&mut c, &web_sid);
    let prefix = subnet.trim_end_matches("0/24");
    assert!(web_ip.starts_with(prefix), "{web_ip} not in {subnet}");
    assert!(ip_of(&mut c, &cli_sid).starts_with(prefix));
    // One sandbox reaches the other by its address.
    let fetched = crate::pods::eventually(|| {
        let x = srv.call(c.clone().runtime.exec_sync(cri::ExecSyncRequest {
            container_id: cli.clone(),
            cmd: vec!["wget".into(), "-qO-".into(), format!("http://{web_ip}:8080/")],
            timeout: 5,
        }));
        (x.exit_code == 0).then(|| String::from_utf8_lossy(&x.stdout).to_string())
    });
    assert_eq!(fetched.trim(), "from-web");
    // The host reaches it through its host port (the portmap plugin), at the bridge's
    // gateway address.
    let gateway = format!("{prefix}1");
    let page = crate::pods::eventually(|| {
        let mut s = std::net::TcpStream::connect((gateway.as_str(), host_port)).ok()?;
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        out.contains("from-web").then_some(out)
    });
    assert!(page.contains("200"), "{page}");
    // Removing the sandboxes runs the plugins' DEL: no namespace, cache or lease is left.
    for sid in [&web_sid, &cli_sid] {
        srv.call(c.runtime.stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: sid.clone(),
        }));
        srv.call(c.runtime.remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: sid.clone(),
        }));
    }
    let left = |d: &str| {
        std::fs::read_dir(b.root.path().join("run").join("cni").join(d))
            .map(|r| r.count())
            .unwrap_or(0)
    };
    assert_eq!((left("netns"), left("results")), (0, 0));
    // The portmap plugin's DEL took its rule for the host port away.
    if let Ok(o) = std::process::Command::new("iptables")
        .args(["-t", "nat", "-S"])
        .output()
    {
        let rules = String::from_utf8_lossy(&o.stdout);
        assert!(!rules.contains(&format!("--dport {host_port} ")), "{rules}");
    }
    let leases = std::fs::read_dir(b.root.path().join("ipam/berth-cri-test"))
        .map(|r| {
            r.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("10."))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(leases, 0, "addresses still leased");
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    // The kernel takes the sandboxes' veths off the bridge with their namespaces.
    let on_bridge = || {
        let o = std::process::Command::new("ip")
            .args(["-o", "link", "show", "master", &bridge])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).lines().count()
    };
    crate::pods::eventually(|| (on_bridge() == 0).then_some(()));
}

#[test]
fn exec_attach_and_port_forward_stream_over_websocket_and_spdy() {
    use berth_cri::client::streaming::{port_forward, spdy_exec, ws_exec};
    require_root!();
    let (b, _img) = with_busybox("cri-stream");
    let srv = Server::start(&b);
    let mut c = srv.client();
    let logs = b.root.path().join("pod-logs");
    let config = sandbox_config("stream", &logs);
    let sid = srv
        .call(c.runtime.run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        }))
        .pod_sandbox_id;
    let run = |c: &mut Client, cfg: cri::ContainerConfig| -> String {
        let id = srv
            .call(c.runtime.create_container(cri::CreateContainerRequest {
                pod_sandbox_id: sid.clone(),
                config: Some(cfg),
                sandbox_config: Some(config.clone()),
            }))
            .container_id;
        srv.call(c.runtime.start_container(cri::StartContainerRequest {
            container_id: id.clone(),
        }));
        id
    };
    let mut web = container_config(
        "web",
        "bb:1",
        &["echo hello-from-web > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"],
    );
    if let Some(r) = web.linux.as_mut().and_then(|l| l.resources.as_mut()) {
        r.cpuset_mems = "0".into();
    }
    let web = run(&mut c, web);
    assert_eq!(b.ok(&["inspect", "-f", "{{.HostConfig.CpusetMems}}", &web]).trim(), "0");
    let mut shell = container_config("shell", "bb:1", &["while read l; do echo got:$l; done; echo bye"]);
    shell.stdin = true;
    shell.stdin_once = true;
    let shell = run(&mut c, shell);
    let exec_url = |c: &mut Client, cmd: &[&str], tty: bool, stdin: bool| -> String {
        srv.call(c.runtime.exec(cri::ExecRequest {
            container_id: web.clone(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            tty,
            stdin,
            stdout: true,
            stderr: !tty,
        }))
        .url
    };

    // Exec over a WebSocket (v5 channels): stdin in, both outputs and the exit code out.
    let url = exec_url(&mut c, &["sh", "-c", "cat; echo err >&2; exit 3"], false, true);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let out = srv.rt.block_on(ws_exec(&url, Some(b"in\n"), None)).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "in\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    assert_eq!(out.status["status"], "Failure", "{}", out.status);
    assert_eq!(out.status["reason"], "NonZeroExitCode");
    assert_eq!(out.status["details"]["causes"][0]["reason"], "ExitCode");
    assert_eq!(out.status["details"]["causes"][0]["message"], "3");
    // A URL is good once.
    let again = srv.rt.block_on(ws_exec(&url, None, None));
    assert!(again.is_err(), "{again:?}");

    // Over SPDY (v4): the same, ending well.
    let url = exec_url(&mut c, &["sh", "-c", "cat; echo out"], false, true);
    let out = srv.rt.block_on(spdy_exec(&url, Some(b"spdy-in\n"))).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "spdy-in\nout\n");
    assert!(out.stderr.is_empty(), "{:?}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status["status"], "Success", "{}", out.status);

    // With a terminal: the client's size reaches the command's terminal.
    let url = exec_url(
        &mut c,
        &[
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do s=$(stty size); [ \"$s\" = '33 111' ] && break; sleep 0.2; done; echo size=$s; tty",
        ],
        true,
        true,
    );
    let out = srv.rt.block_on(ws_exec(&url, None, Some((111, 33)))).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("size=33 111"), "{text:?}");
    assert!(text.contains("/dev/pts/"), "{text:?}");
    assert_eq!(out.status["status"], "Success", "{}", out.status);

    // Attach to the shell: its stdin, and its output until it ends (stdin once: when the
    // client's input ends, so does the container's).
    let url = srv
        .call(c.runtime.attach(cri::AttachRequest {
            container_id: shell.clone(),
            stdin: true,
            tty: false,
            stdout: true,
            stderr: true,
        }))
        .url;
    let out = srv.rt.block_on(ws_exec(&url, Some(b"one\ntwo\n"), None)).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got:one\ngot:two\nbye\n");
    assert_eq!(out.status["status"], "Success", "{}", out.status);

    // Port forwarding, over SPDY and over SPDY in a WebSocket, to the sandbox's loopback.
    for ws in [false, true] {
        let url = srv
            .call(c.runtime.port_forward(cri::PortForwardRequest {
                pod_sandbox_id: sid.clone(),
                port: vec![8080],
            }))
            .url;
        let got = srv
            .rt
            .block_on(port_forward(&url, 8080, b"GET /index.html HTTP/1.0\r\n\r\n", ws))
            .unwrap();
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("HTTP/1.") && text.contains("hello-from-web"),
            "ws {ws}: {text}"
        );
    }
    // And over the kubelet's own WebSocket protocol.
    let url = srv
        .call(c.runtime.port_forward(cri::PortForwardRequest {
            pod_sandbox_id: sid.clone(),
            port: vec![8080],
        }))
        .url;
    let got = srv
        .rt
        .block_on(berth_cri::client::streaming::ws_port_forward(
            &url,
            8080,
            b"GET /index.html HTTP/1.0\r\n\r\n",
        ))
        .unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("hello-from-web"), "{text}");
    // A port nothing listens on: the error stream says so.
    let url = srv
        .call(c.runtime.port_forward(cri::PortForwardRequest {
            pod_sandbox_id: sid.clone(),
            port: vec![9],
        }))
        .url;
    let e = srv
        .rt
        .block_on(port_forward(&url, 9, b"x", false))
        .unwrap_err()
        .to_string();
    assert!(e.contains("error forwarding port 9"), "{e}");

    // Requests that cannot be served are refused before any URL is made.
    let bad = srv.fail(c.runtime.exec(cri::ExecRequest {
        container_id: web.clone(),
        cmd: vec![],
        stdout: true,
        ..Default::default()
    }));
    assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad:?}");
    let bad = srv.fail(c.runtime.exec(cri::ExecRequest {
        container_id: "nosuch".into(),
        cmd: vec!["true".into()],
        stdout: true,
        ..Default::default()
    }));
    assert_eq!(bad.code(), tonic::Code::NotFound, "{bad:?}");
    let bad = srv.fail(c.runtime.attach(cri::AttachRequest {
        container_id: web.clone(),
        stdin: true,
        stdout: true,
        ..Default::default()
    }));
    assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad:?}");
    let bad = srv.fail(c.runtime.port_forward(cri::PortForwardRequest {
        pod_sandbox_id: "nosuch".into(),
        port: vec![80],
    }));
    assert_eq!(bad.code(), tonic::Code::NotFound, "{bad:?}");

    // An image volume: the image's files, read-only, executable.
    let mut with_image = container_config("imgvol", "bb:1", &["sleep 1000"]);
    let img_mount = |readonly: bool| cri::Mount {
        container_path: "/mnt/img".into(),
        readonly,
        image: Some(spec("bb:1")),
        ..Default::default()
    };
    with_image.mounts = vec![img_mount(false)];
    let bad = srv.fail(c.runtime.create_container(cri::CreateContainerRequest {
        pod_sandbox_id: sid.clone(),
        config: Some(with_image.clone()),
        sandbox_config: Some(config.clone()),
    }));
    assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad:?}");
    with_image.mounts = vec![img_mount(true)];
    // And a device, under another name.
    with_image.devices = vec![cri::Device {
        host_path: "/dev/zero".into(),
        container_path: "/dev/xzero".into(),
        permissions: "rw".into(),
    }];
    let imgvol = run(&mut c, with_image);
    let x = srv.call(c.runtime.exec_sync(cri::ExecSyncRequest {
        container_id: imgvol.clone(),
        cmd: vec![
            "sh".into(),
            "-c".into(),
            "/mnt/img/bin/busybox true && echo ran; touch /mnt/img/x 2>&1 || echo refused; head -c 3 /dev/xzero | od -An -tx1".into(),
        ],
        timeout: 10,
    }));
    let out = String::from_utf8_lossy(&x.stdout);
    assert!(
        out.contains("ran") && out.contains("Read-only file system") && out.contains("refused"),
        "{out}"
    );
    assert!(out.contains("00 00 00"), "{out}");

    // Metrics: cAdvisor's names, each with as many labels as its descriptor says, the
    // pod's network and its containers' processes among them.
    let descs = srv
        .call(c.runtime.list_metric_descriptors(cri::ListMetricDescriptorsRequest {}))
        .descriptors;
    let keys: HashMap<String, usize> = descs.iter().map(|d| (d.name.clone(), d.label_keys.len())).collect();
    let all = srv
        .call(c.runtime.list_pod_sandbox_metrics(cri::ListPodSandboxMetricsRequest {}))
        .pod_metrics;
    let pm = all
        .iter()
        .find(|m| m.pod_sandbox_id == sid)
        .expect("the sandbox's metrics");
    assert!(
        pm.metrics
            .iter()
            .any(|m| m.name == "container_network_receive_bytes_total" && m.value.as_ref().unwrap().value > 0),
        "{:?}",
        pm.metrics
    );
    let webm = pm
        .container_metrics
        .iter()
        .find(|m| m.container_id == web)
        .expect("web's metrics");
    let get = |name: &str| {
        webm.metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value.as_ref().unwrap().value)
    };
    assert!(get("container_processes").unwrap() >= 1);
    assert!(get("container_memory_usage_bytes").unwrap() > 0);
    assert!(get("container_start_time_seconds").unwrap() > 1_700_000_000);
    for m in pm.metrics.iter().chain(webm.metrics.iter()) {
        assert_eq!(Some(&m.label_values.len()), keys.get(&m.name), "{}", m.name);
    }

    // ExecSync's timeout takes the command with it.
    let e = srv.fail(c.runtime.exec_sync(cri::ExecSyncRequest {
        container_id: web.clone(),
        cmd: vec!["sleep".into(), "77".into()],
        timeout: 1,
    }));
    assert_eq!(e.code(), tonic::Code::DeadlineExceeded, "{e:?}");
    let x = srv.call(c.runtime.exec_sync(cri::ExecSyncRequest {
        container_id: web.clone(),
        cmd: vec![
            "sh".into(),
            "-c".into(),
            "ps | grep 'sleep 77' | grep -v grep || true".into(),
        ],
        timeout: 10,
    }));
    assert_eq!(
        String::from_utf8_lossy(&x.stdout).trim(),
        "",
        "the timed-out command lives on"
    );

    srv.call(c.runtime.stop_pod_sandbox(cri::StopPodSandboxRequest {
        pod_sandbox_id: sid.clone(),
    }));
    srv.call(
        c.runtime
            .remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: sid }),
    );
}

#[test]
fn cdi_annotations_bring_their_devices_into_a_cri_container() {
    require_root!();
    let (b, _img) = with_busybox("cri-cdi");
    let vendor = berth_testutil::TempDir::new("cri-cdi-vendor");
    let dirs = crate::cdi::fake_vendor(vendor.path());
    let srv = Server::start_env(&b, &[], &[("BERTH_CDI_SPEC_DIRS", &dirs)]);
    let mut c = srv.client();
    let logs = b.root.path().join("pod-logs");
    let config = sandbox_config("gpu", &logs);
    let sid = srv
        .call(c.runtime.run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        }))
        .pod_sandbox_id;
    let mut cc = container_config("accel", "bb:1", &["sleep 100"]);
    cc.annotations = labels(&[("cdi.k8s.io/accel", "example.test/accel=accel0")]);
    let cid = srv
        .call(c.runtime.create_container(cri::CreateContainerRequest {
            pod_sandbox_id: sid.clone(),
            config: Some(cc),
            sandbox_config: Some(config.clone()),
        }))
        .container_id;
    srv.call(c.runtime.start_container(cri::StartContainerRequest {
        container_id: cid.clone(),
    }));
    let x = srv.call(c.runtime.exec_sync(cri::ExecSyncRequest {
        container_id: cid.clone(),
        cmd: vec![
            "sh".into(),
            "-c".into(),
            "exec 3<>/dev/accel0 && echo \"opened $VENDOR\"".into(),
        ],
        timeout: 10,
    }));
    assert_eq!(String::from_utf8_lossy(&x.stdout).trim(), "opened example", "{x:?}");
    // An unknown device is refused at create.
    let mut cc = container_config("nope", "bb:1", &["true"]);
    cc.annotations = labels(&[("cdi.k8s.io/x", "example.test/accel=accel9")]);
    let e = srv.fail(c.runtime.create_container(cri::CreateContainerRequest {
        pod_sandbox_id: sid.clone(),
        config: Some(cc),
        sandbox_config: Some(config),
    }));
    assert!(e.message().contains("unresolvable CDI devices"), "{e:?}");
    srv.call(c.runtime.stop_pod_sandbox(cri::StopPodSandboxRequest {
        pod_sandbox_id: sid.clone(),
    }));
    srv.call(
        c.runtime
            .remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: sid }),
    );
    assert_eq!(b.ok(&["pod", "ps", "-q"]), "");
}
