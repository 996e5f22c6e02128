//! `kube play` with the kubelet's semantics: probes, restart policies and back-off, init
//! containers, pull policies; each a YAML file played and watched as a user would, through
//! `kube ps` and `pod inspect`.

use std::time::{Duration, Instant};

use berth_testutil::require_root;
use serde_json::Value;

use crate::containers::with_busybox;
use crate::images::Berth;

/// Polls `f` until it gives a value, for at most `secs` seconds.
fn within<T>(secs: u64, what: &str, f: impl Fn() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Plays `yaml` (written into the test's root), which must succeed; the file's path.
fn play(b: &Berth, name: &str, yaml: &str) -> String {
    let path = b.root.path().join(name);
    std::fs::write(&path, yaml).unwrap();
    let path = path.display().to_string();
    let o = b.out(&["kube", "play", &path]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    path
}

/// `kube ps` as `NAME READY STATUS RESTARTS` of pod `name`.
fn kps(b: &Berth, name: &str) -> String {
    b.ok(&[
        "kube",
        "ps",
        "--format",
        "{{.Name}} {{.Ready}} {{.Status}} {{.Restarts}}",
    ])
    .lines()
    .find(|l| l.split(' ').next() == Some(name))
    .unwrap_or("")
    .to_string()
}

/// The kubelet's view of container `ctr` of pod `pod` (from `pod inspect`).
fn container(b: &Berth, pod: &str, ctr: &str) -> Value {
    let v: Value = serde_json::from_str(&b.ok(&["pod", "inspect", pod])).unwrap();
    let v = if v.is_array() { v[0].clone() } else { v };
    v["Containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["Name"] == format!("{pod}-{ctr}"))
        .cloned()
        .unwrap_or(Value::Null)
}

/// Removes what a file made and checks nothing is left.
fn down(b: &Berth, path: &str) {
    let o = b.out(&["kube", "down", path]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(b.ok(&["pod", "ps", "-q"]).trim(), "");
    assert_eq!(b.ok(&["ps", "-aq"]).trim(), "");
}

#[test]
fn a_failing_liveness_probe_restarts_the_container_with_the_kubelets_back_off() {
    require_root!();
    let (b, _img) = with_busybox("kube-live");
    let path = play(
        &b,
        "live.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: live
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: bb:1
    command: ["sh", "-c", "touch /tmp/healthy; sleep 2; rm /tmp/healthy; sleep 1000"]
    livenessProbe:
      exec:
        command: ["cat", "/tmp/healthy"]
      periodSeconds: 1
      failureThreshold: 1
"#,
    );
    assert_eq!(kps(&b, "live"), "live 1/1 Running 0");
    // The probe fails after 2 s: the container is killed (SIGTERM ignored by the shell as
    // PID 1, SIGKILL after the 1 s grace) and restarted at once, the first time.
    let c = within(15, "the first restart", || {
        let c = container(&b, "live", "app");
        (c["RestartCount"] == 1).then_some(c)
    });
    assert_eq!(c["LastState"]["terminated"]["exitCode"], 137, "{c}");
    assert_eq!(c["LastState"]["terminated"]["reason"], "Error", "{c}");
    // The second failure waits out the back-off (10 s): CrashLoopBackOff meanwhile.
    within(15, "CrashLoopBackOff", || {
        (kps(&b, "live") == "live 0/1 CrashLoopBackOff 1").then_some(())
    });
    let c = container(&b, "live", "app");
    assert_eq!(c["ContainerState"]["waiting"]["reason"], "CrashLoopBackOff", "{c}");
    assert_eq!(c["Probes"]["liveness"]["result"], "Failure", "{c}");
    let waited = Instant::now();
    within(20, "the second restart", || {
        (kps(&b, "live") == "live 1/1 Running 2").then_some(())
    });
    assert!(
        waited.elapsed() > Duration::from_secs(5),
        "no back-off: {:?}",
        waited.elapsed()
    );
    down(&b, &path);
}

#[test]
fn readiness_flips_ready_and_a_startup_probe_holds_liveness_back() {
    require_root!();
    let (b, _img) = with_busybox("kube-ready");
    let path = play(
        &b,
        "ready.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: ready
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: bb:1
    command: ["sleep", "1000"]
    readinessProbe:
      exec: {command: ["cat", "/tmp/ready"]}
      periodSeconds: 1
      failureThreshold: 1
  - name: slow
    image: bb:1
    command: ["sleep", "1000"]
    startupProbe:
      exec: {command: ["cat", "/tmp/started"]}
      periodSeconds: 1
      failureThreshold: 60
    livenessProbe:
      exec: {command: ["cat", "/tmp/alive"]}
      periodSeconds: 1
      failureThreshold: 1
"#,
    );
    // Neither is ready: app's probe fails, slow has not started.
    within(10, "a failed readiness probe", || {
        (container(&b, "ready", "app")["Probes"]["readiness"]["result"] == "Failure").then_some(())
    });
    assert_eq!(kps(&b, "ready"), "ready 0/2 Running 0");
    b.ok(&["exec", "ready-app", "touch", "/tmp/ready"]);
    within(10, "ready", || {
        (kps(&b, "ready") == "ready 1/2 Running 0").then_some(())
    });
    b.ok(&["exec", "ready-app", "rm", "/tmp/ready"]);
    within(10, "unready", || {
        (kps(&b, "ready") == "ready 0/2 Running 0").then_some(())
    });
    // While the startup probe fails, the liveness probe (which would fail) does not run.
    std::thread::sleep(Duration::from_secs(2));
    let slow = container(&b, "ready", "slow");
    assert_eq!(slow["RestartCount"], 0, "{slow}");
    assert_eq!(slow["Started"], false, "{slow}");
    assert!(slow["Probes"].get("liveness").is_none(), "{slow}");
    // Once it succeeds, liveness runs, fails, and the container restarts.
    b.ok(&["exec", "ready-slow", "touch", "/tmp/started"]);
    within(15, "the liveness restart", || {
        (container(&b, "ready", "slow")["RestartCount"] == 1).then_some(())
    });
    down(&b, &path);
}

#[test]
fn http_get_and_tcp_socket_probes_reach_the_pods_network() {
    require_root!();
    let (b, _img) = with_busybox("kube-http");
    let path = play(
        &b,
        "http.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: srv
    image: bb:1
    command: ["sh", "-c", "mkdir -p /www; echo ok > /www/healthz; exec httpd -f -p 8080 -h /www"]
    ports:
    - {name: http, containerPort: 8080}
    readinessProbe:
      httpGet: {path: /healthz, port: http, httpHeaders: [{name: X-Probe, value: "1"}]}
      periodSeconds: 1
    # The first probe would otherwise race httpd's listen (probes start with the
    # container, and one failure restarts it).
    livenessProbe:
      tcpSocket: {port: 8080}
      initialDelaySeconds: 1
      periodSeconds: 1
      failureThreshold: 1
  - name: side
    image: bb:1
    command: ["sleep", "1000"]
    readinessProbe:
      httpGet: {path: /missing, port: 8080}
      periodSeconds: 1
      failureThreshold: 1
    livenessProbe:
      tcpSocket: {port: 9}
      initialDelaySeconds: 600
"#,
    );
    within(10, "srv ready", || {
        (container(&b, "web", "srv")["Ready"] == true).then_some(())
    });
    let side = within(10, "side's verdict", || {
        let c = container(&b, "web", "side");
        (c["Probes"]["readiness"]["result"] == "Failure").then_some(c)
    });
    let msg = side["Probes"]["readiness"]["message"].as_str().unwrap_or("");
    assert_eq!(msg, "HTTP probe failed with statuscode: 404", "{side}");
    // The tcpSocket liveness probe passes: no restarts.
    std::thread::sleep(Duration::from_secs(2));
    let srv = container(&b, "web", "srv");
    assert_eq!(srv["Probes"]["liveness"]["result"], "Success", "{srv}");
    assert_eq!(kps(&b, "web"), "web 1/2 Running 0");
    down(&b, &path);
}

#[test]
fn restart_policies_on_exit_codes_zero_and_one() {
    require_root!();
    let (b, _img) = with_busybox("kube-policy");
    let mut yaml = String::new();
    for policy in ["Never", "OnFailure", "Always"] {
        for code in [0, 1] {
            yaml.push_str(&format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {}-{code}\nspec:\n  restartPolicy: {policy}\n  containers:\n  - name: c\n    image: bb:1\n    command: [\"sh\", \"-c\", \"exit {code}\"]\n",
                policy.to_lowercase()
            ));
        }
    }
    let path = play(&b, "policy.yaml", &yaml);
    // One restart at once where the policy wants it, then the back-off holds the next.
    let want = [
        ("never-0", "0/1 Completed 0"),
        ("never-1", "0/1 Error 0"),
        ("onfailure-0", "0/1 Completed 0"),
        ("onfailure-1", "0/1 CrashLoopBackOff 1"),
        ("always-0", "0/1 CrashLoopBackOff 1"),
        ("always-1", "0/1 CrashLoopBackOff 1"),
    ];
    for (pod, status) in want {
        within(10, pod, || (kps(&b, pod) == format!("{pod} {status}")).then_some(()));
    }
    let c = container(&b, "never-1", "c");
    assert_eq!(c["ContainerState"]["terminated"]["exitCode"], 1, "{c}");
    let c = container(&b, "always-0", "c");
    assert_eq!(c["LastState"]["terminated"]["reason"], "Completed", "{c}");
    down(&b, &path);
}

#[test]
fn init_containers_run_first_and_pull_policy_never_refuses_a_missing_image() {
    require_root!();
    let (b, _img) = with_busybox("kube-init");
    let path = play(
        &b,
        "init.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: boot
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: work
    emptyDir: {}
  initContainers:
  - name: first
    image: bb:1
    command: ["sh", "-c", "sleep 1; echo one > /work/f"]
    volumeMounts: [{name: work, mountPath: /work}]
  - name: second
    image: bb:1
    command: ["sh", "-c", "echo two >> /work/f"]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: app
    image: bb:1
    imagePullPolicy: Never
    command: ["sh", "-c", "cat /work/f; sleep 1000"]
    volumeMounts: [{name: work, mountPath: /work}]
"#,
    );
    // kube play returns while the first init container runs.
    let early = kps(&b, "boot");
    assert!(early.starts_with("boot 0/1 Init:"), "{early}");
    within(15, "the app", || {
        (kps(&b, "boot") == "boot 1/1 Running 0").then_some(())
    });
    within(5, "the app's output", || {
        b.ok(&["logs", "boot-app"]).contains("one\ntwo").then_some(())
    });
    let first = container(&b, "boot", "first");
    assert_eq!(first["Init"], true, "{first}");
    assert_eq!(first["ContainerState"]["terminated"]["reason"], "Completed", "{first}");
    down(&b, &path);
    // imagePullPolicy Never and an image that is not here: refused, nothing made.
    let bad = b.root.path().join("never.yaml");
    std::fs::write(
        &bad,
        "kind: Pod\nmetadata:\n  name: nope\nspec:\n  containers:\n  - name: a\n    image: 127.0.0.1:9/absent:1\n    imagePullPolicy: Never\n",
    )
    .unwrap();
    let o = b.out(&["kube", "play", &bad.display().to_string()]);
    assert_eq!(o.status.code(), Some(125));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("ErrImageNeverPull"), "{err}");
    assert_eq!(b.ok(&["pod", "ps", "-q"]).trim(), "");
}

/// `kube jobs`' line for Job `name`, its columns joined by single spaces.
fn job(b: &Berth, name: &str) -> String {
    b.ok(&["kube", "jobs"])
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[test]
fn a_job_runs_its_completions_and_fails_past_its_back_off_limit() {
    require_root!();
    let (b, _img) = with_busybox("kube-job");
    let path = play(
        &b,
        "job.yaml",
        r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: batch
spec:
  completions: 2
  parallelism: 1
  template:
    spec:
      terminationGracePeriodSeconds: 1
      restartPolicy: Never
      containers:
      - name: work
        image: bb:1
        command: ["sh", "-c", "sleep 0.5; echo worked"]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: doomed
spec:
  backoffLimit: 0
  template:
    spec:
      terminationGracePeriodSeconds: 1
      restartPolicy: Never
      containers:
      - name: work
        image: bb:1
        command: ["sh", "-c", "exit 3"]
"#,
    );
    // One pod at a time, until two succeeded.
    within(20, "the job's completion", || {
        (job(&b, "batch") == "batch Complete 2/2 0").then_some(())
    });
    let pods = b.ok(&["kube", "ps", "--format", "{{.Name}} {{.Status}}"]);
    let batch: Vec<&str> = pods.lines().filter(|l| l.starts_with("batch-")).collect();
    assert_eq!(batch.len(), 2, "{pods}");
    assert!(batch.iter().all(|l| l.ends_with(" Completed")), "{pods}");
    // One failure is past a limit of none: the Job failed, its pod kept to look at.
    within(10, "the job's failure", || {
        (job(&b, "doomed") == "doomed Failed (BackoffLimitExceeded) 0/1 1").then_some(())
    });
    assert!(pods.lines().any(|l| l.starts_with("doomed-")) || b.ok(&["kube", "ps"]).contains("doomed-"));
    down(&b, &path);
    assert_eq!(b.ok(&["kube", "jobs"]).lines().count(), 1, "only the heading is left");
}

#[test]
fn hooks_dns_resources_and_the_security_context_apply() {
    require_root!();
    let (b, _img) = with_busybox("kube-hooks");
    let out = b.root.path().join("hook-out");
    // Writable by the pod's user before the pod exists: its postStart hook may run before
    // `play` returns.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let path = play(
        &b,
        "hooks.yaml",
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata:
  name: hooks
spec:
  terminationGracePeriodSeconds: 20
  hostname: myhost
  shareProcessNamespace: true
  hostAliases:
  - ip: 192.0.2.10
    hostnames: [alias.test, other.test]
  dnsConfig:
    nameservers: [192.0.2.53]
    searches: [example.test]
    options: [{{name: ndots, value: "2"}}]
  securityContext:
    runAsUser: 1000
    runAsGroup: 1000
  volumes:
  - name: out
    hostPath: {{path: {out}, type: DirectoryOrCreate}}
  containers:
  - name: app
    image: bb:1
    command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"]
    volumeMounts: [{{name: out, mountPath: /out}}]
    resources:
      requests: {{cpu: 250m}}
      limits: {{cpu: 500m, memory: 64Mi}}
    securityContext:
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities: {{drop: [ALL], add: [NET_BIND_SERVICE]}}
    lifecycle:
      postStart:
        exec: {{command: ["sh", "-c", "echo started > /out/post"]}}
      preStop:
        exec: {{command: ["sh", "-c", "echo stopping > /out/pre"]}}
"#,
            out = out.display()
        ),
    );
    within(10, "the postStart hook", || {
        std::fs::read_to_string(out.join("post")).ok()
    });
    let sh = |cmd: &str| b.ok(&["exec", "hooks-app", "sh", "-c", cmd]);
    assert_eq!(
        sh("id -u; id -g").split_whitespace().collect::<Vec<_>>(),
        ["1000", "1000"]
    );
    assert_eq!(sh("hostname").trim(), "myhost");
    let hosts = sh("cat /etc/hosts");
    assert!(
        hosts
            .lines()
            .any(|l| l.starts_with("192.0.2.10") && l.contains("alias.test")),
        "{hosts}"
    );
    // One PID namespace: the infra's pause is PID 1 here.
    assert!(
        sh("cat /proc/1/cmdline").contains("pause"),
        "{}",
        sh("cat /proc/1/cmdline")
    );
    let resolv = sh("cat /etc/resolv.conf");
    for want in ["nameserver 192.0.2.53", "search example.test", "ndots:2"] {
        assert!(resolv.contains(want), "{want} not in {resolv}");
    }
    assert!(sh("touch /x 2>&1 || true").contains("Read-only"));
    let status = sh("grep -E '^(CapBnd|NoNewPrivs)' /proc/self/status");
    assert!(status.contains("CapBnd:\t0000000000000400"), "{status}");
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    let v: Value = serde_json::from_str(&b.ok(&["inspect", "hooks-app"])).unwrap();
    let hc = &v[0]["HostConfig"];
    assert_eq!(
        (hc["Memory"].as_i64(), hc["NanoCpus"].as_i64(), hc["CpuShares"].as_i64()),
        (Some(64 << 20), Some(500_000_000), Some(256)),
        "{hc}"
    );
    // Down runs the preStop hook, then the stop signal ends it well within the grace.
    let began = Instant::now();
    down(&b, &path);
    assert!(began.elapsed() < Duration::from_secs(10), "{:?}", began.elapsed());
    assert_eq!(std::fs::read_to_string(out.join("pre")).unwrap().trim(), "stopping");
    // runAsNonRoot over an image that runs as root: refused before anything is made.
    let bad = b.root.path().join("root.yaml");
    std::fs::write(
        &bad,
        "kind: Pod\nmetadata:\n  name: nonroot\nspec:\n  securityContext: {runAsNonRoot: true}\n  containers:\n  - name: a\n    image: bb:1\n",
    )
    .unwrap();
    let o = b.out(&["kube", "play", &bad.display().to_string()]);
    assert_eq!(o.status.code(), Some(125));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("runAsNonRoot and image will run as root"), "{err}");
    assert_eq!(b.ok(&["pod", "ps", "-q"]).trim(), "");
}

#[test]
fn sub_paths_mount_inside_their_volume_and_never_out_of_it() {
    require_root!();
    let (b, _img) = with_busybox("kube-subpath");
    // A claim's volume holding a symlink to the host's root, as a container could leave.
    b.ok(&["volume", "create", "claim"]);
    let v: Value = serde_json::from_str(&b.ok(&["volume", "inspect", "claim"])).unwrap();
    let data = std::path::PathBuf::from(v[0]["Mountpoint"].as_str().unwrap());
    std::os::unix::fs::symlink("/", data.join("evil")).unwrap();
    std::fs::write(data.join("marker"), "in-the-volume").unwrap();
    let path = play(
        &b,
        "sub.yaml",
        r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: conf
data:
  app.conf: setting=1
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: claim
spec:
  accessModes: [ReadWriteOnce]
---
apiVersion: v1
kind: Pod
metadata:
  name: sub
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: conf
    configMap: {name: conf}
  - name: claim
    persistentVolumeClaim: {claimName: claim}
  - name: scratch
    emptyDir: {}
  containers:
  - name: app
    image: bb:1
    command: ["sleep", "1000"]
    volumeMounts:
    - {name: conf, mountPath: /etc/app.conf, subPath: app.conf}
    - {name: claim, mountPath: /evil, subPath: evil}
    - {name: scratch, mountPath: /deep, subPath: a/b}
"#,
    );
    let sh = |cmd: &str| b.ok(&["exec", "sub-app", "sh", "-c", cmd]);
    assert_eq!(sh("cat /etc/app.conf"), "setting=1");
    // The symlink resolved inside the volume: its root, not the host's.
    assert_eq!(sh("cat /evil/marker"), "in-the-volume");
    assert!(!sh("ls /evil").contains("proc"), "{}", sh("ls /evil"));
    sh("echo x > /deep/f");
    down(&b, &path);
    // A claim's data outlives the pods.
    assert!(data.join("marker").exists());
    b.ok(&["volume", "rm", "claim"]);
    // A subPath out of its volume is refused.
    let bad = b.root.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "kind: Pod\nmetadata:\n  name: bad\nspec:\n  volumes:\n  - {name: s, emptyDir: {}}\n  containers:\n  - name: a\n    image: bb:1\n    volumeMounts: [{name: s, mountPath: /x, subPath: ../../etc}]\n",
    )
    .unwrap();
    let o = b.out(&["kube", "play", &bad.display().to_string()]);
    assert_eq!(o.status.code(), Some(125));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("without '..'"), "{err}");
    assert_eq!(b.ok(&["pod", "ps", "-q"]).trim(), "");
    assert_eq!(b.ok(&["volume", "ls", "-q"]).trim(), "");
}

#[test]
fn kube_generate_writes_yaml_that_plays_back() {
    require_root!();
    let (b, _img) = with_busybox("kube-gen");
    let port = crate::pods::free_port();
    b.ok(&[
        "pod",
        "create",
        "--name",
        "gen",
        "-p",
        &format!("127.0.0.1:{port}:8080"),
    ]);
    b.ok(&[
        "run",
        "-d",
        "--pod",
        "gen",
        "--name",
        "gen-web",
        "-e",
        "GREETING=hi",
        "--memory",
        "64m",
        "--read-only",
        "--stop-timeout",
        "1",
        "bb:1",
        "sh",
        "-c",
        "echo $GREETING; exec httpd -f -p 8080 -h /",
    ]);
    let yaml = b.ok(&["kube", "generate", "gen"]);
    let doc: Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(doc["kind"], "Pod", "{yaml}");
    let c = &doc["spec"]["containers"][0];
    assert_eq!(c["name"], "web", "{yaml}");
    assert_eq!(c["env"][0]["name"], "GREETING", "{yaml}");
    assert_eq!(c["ports"][0]["hostPort"], port, "{yaml}");
    assert_eq!(c["resources"]["limits"]["memory"], "67108864", "{yaml}");
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true, "{yaml}");
    b.ok(&["pod", "rm", "-f", "gen"]);
    let path = play(&b, "gen.yaml", &yaml);
    within(10, "the played-back pod", || {
        (kps(&b, "gen") == "gen 1/1 Running 0").then_some(())
    });
    within(5, "its output", || {
        b.ok(&["logs", "gen-web"]).contains("hi").then_some(())
    });
    let got = b.ok(&["exec", "gen-web", "wget", "-qO-", "http://127.0.0.1:8080/etc/hostname"]);
    assert_eq!(got.trim(), "gen");
    down(&b, &path);
    // A container outside a pod: a Pod of its own, NAME-pod.
    b.ok(&["run", "-d", "--name", "solo", "bb:1", "sleep", "1000"]);
    let yaml = b.ok(&["kube", "generate", "solo"]);
    let doc: Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(doc["metadata"]["name"], "solo-pod", "{yaml}");
    // No entrypoint in the image: the command is the container's args.
    assert_eq!(
        doc["spec"]["containers"][0]["args"],
        serde_json::json!(["sleep", "1000"]),
        "{yaml}"
    );
    b.ok(&["rm", "-f", "solo"]);
    let missing = b.out(&["kube", "generate", "nothing-here"]);
    assert_eq!(missing.status.code(), Some(125));
}

#[test]
fn host_pid_and_ipc_are_the_hosts() {
    require_root!();
    let (b, _img) = with_busybox("kube-hostns");
    let path = play(
        &b,
        "hostns.yaml",
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: hostns
spec:
  terminationGracePeriodSeconds: 1
  hostPID: true
  hostIPC: true
  containers:
  - name: c
    image: bb:1
    command: ["sleep", "1000"]
"#,
    );
    for ns in ["pid", "ipc"] {
        let inside = b.ok(&["exec", "hostns-c", "readlink", &format!("/proc/self/ns/{ns}")]);
        let host = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        assert_eq!(inside.trim(), host.display().to_string(), "{ns}");
    }
    down(&b, &path);
}
