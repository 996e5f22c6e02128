//! `berth kube play` and `kube down` of Pod YAML, driven as a user would.

use berth_testutil::require_root;

use crate::containers::with_busybox;
use crate::pods::eventually;

#[test]
fn a_played_pods_containers_share_localhost_and_down_leaves_nothing() {
    require_root!();
    let (b, _img) = with_busybox("kube-play");
    let yaml = b.root.path().join("pod.yaml");
    std::fs::write(
        &yaml,
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: duo
  labels:
    app: duo
spec:
  terminationGracePeriodSeconds: 1
  restartPolicy: Never
  containers:
  - name: web
    image: bb:1
    command: ["sh", "-c"]
    args: ["echo from-web > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]
  - name: client
    image: bb:1
    command: ["sh", "-c", "until wget -qO- http://127.0.0.1:8080/index.html > /tmp/got; do sleep 0.1; done; echo $GREETING; sleep 1000"]
    env:
    - name: GREETING
      value: hello-kube
---
apiVersion: v1
kind: Service
metadata:
  name: later
"#,
    )
    .unwrap();
    let yaml = yaml.display().to_string();
    let o = b.out(&["kube", "play", &yaml]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("Pod:\n") && out.contains("Containers:\n"), "{out}");
    // A kind not served is said, not dropped silently.
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("kind Service is not served yet"), "{err}");
    assert_eq!(
        b.ok(&["pod", "ps", "--format", "{{.Name}} {{.Status}}"]).trim(),
        "duo Running"
    );
    // The two containers, named as Podman names them, talk over the pod's localhost.
    let got = eventually(|| {
        let o = b.out(&["exec", "duo-client", "cat", "/tmp/got"]);
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    });
    assert_eq!(got.trim(), "from-web");
    eventually(|| b.ok(&["logs", "duo-client"]).contains("hello-kube").then_some(()));
    // Playing it again is refused: the pod exists. With --replace, it is made anew.
    assert!(!b.out(&["kube", "play", &yaml]).status.success());
    let before = b.ok(&["pod", "inspect", "--format", "{{.Id}}", "duo"]);
    let o = b.out(&["kube", "play", "--replace", &yaml]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let after = b.ok(&["pod", "inspect", "--format", "{{.Id}}", "duo"]);
    assert_ne!(before.trim(), after.trim());
    assert_eq!(b.ok(&["pod", "ps", "-q"]).lines().count(), 1);
    let o = b.out(&["kube", "down", &yaml]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(b.ok(&["pod", "ps", "-q"]).trim(), "");
    assert_eq!(b.ok(&["ps", "-aq"]).trim(), "");
    // Down again: nothing to remove, no error.
    assert!(b.out(&["kube", "down", &yaml]).status.success());
}

#[test]
fn bad_kube_yaml_is_refused_with_where_and_nothing_made() {
    require_root!();
    let (b, _img) = with_busybox("kube-bad");
    let bad = b.root.path().join("bad.yaml");
    for (text, want) in [
        ("kind: Pod\nmetadata:\n  name: [\n", "line "),
        ("kind: Pod\nspec:\n  containers: 3\n", "document 1 (Pod)"),
        ("metadata: {}\n", "needs a kind"),
        (
            "kind: Pod\nmetadata:\n  name: x\nspec:\n  restartPolicy: Sometimes\n  containers:\n  - name: a\n    image: bb:1\n",
            "restartPolicy",
        ),
        (
            // A registry on loopback nothing listens on: the pull fails here, never outside.
            "kind: Pod\nmetadata:\n  name: x\nspec:\n  containers:\n  - name: a\n    image: 127.0.0.1:9/no-such-image:1\n",
            "no-such-image",
        ),
    ] {
        std::fs::write(&bad, text).unwrap();
        let o = b.out(&["kube", "play", &bad.display().to_string()]);
        assert_eq!(o.status.code(), Some(125), "{text}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{text}: {err}");
        assert_eq!(b.ok(&["pod", "ps", "-q"]).trim(), "", "{text}");
        assert_eq!(b.ok(&["ps", "-aq"]).trim(), "", "{text}");
    }
}

#[test]
fn config_maps_secrets_and_the_pods_fields_become_environment() {
    require_root!();
    let (b, _img) = with_busybox("kube-env");
    let yaml = b.root.path().join("env.yaml");
    std::fs::write(
        &yaml,
        r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  MODE: fast
  LEVEL: "3"
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
data:
  PASSWORD: czNjcjN0
stringData:
  USER: admin
---
apiVersion: v1
kind: Pod
metadata:
  name: envy
  namespace: team
  labels: {app: envy-app}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: bb:1
    command: ["sh", "-c", "env | sort > /tmp/env; sleep 1000"]
    envFrom:
    - configMapRef:
        name: settings
      prefix: CFG_
    env:
    - name: LEVEL
      valueFrom:
        configMapKeyRef: {name: settings, key: LEVEL}
    - name: PASSWORD
      valueFrom:
        secretKeyRef: {name: creds, key: PASSWORD}
    - name: USER
      valueFrom:
        secretKeyRef: {name: creds, key: USER}
    - name: POD_NAME
      valueFrom:
        fieldRef: {fieldPath: metadata.name}
    - name: POD_NAMESPACE
      valueFrom:
        fieldRef: {fieldPath: metadata.namespace}
    - name: POD_IP
      valueFrom:
        fieldRef: {fieldPath: status.podIP}
    - name: APP_LABEL
      valueFrom:
        fieldRef: {fieldPath: "metadata.labels['app']"}
    - name: MAYBE
      valueFrom:
        configMapKeyRef: {name: settings, key: ABSENT, optional: true}
"#,
    )
    .unwrap();
    let yaml = yaml.display().to_string();
    b.ok(&["kube", "play", &yaml]);
    let env = eventually(|| {
        let o = b.out(&["exec", "envy-app", "cat", "/tmp/env"]);
        (o.status.success() && !o.stdout.is_empty()).then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    });
    for want in [
        "CFG_MODE=fast",
        "CFG_LEVEL=3",
        "LEVEL=3",
        "PASSWORD=s3cr3t",
        "USER=admin",
        "POD_NAME=envy",
        "POD_NAMESPACE=team",
    ] {
        assert!(env.lines().any(|l| l == want), "{want} not in {env}");
    }
    assert!(!env.contains("MAYBE="), "{env}");
    assert!(env.lines().any(|l| l == "APP_LABEL=envy-app"), "{env}");
    let ip = env.lines().find_map(|l| l.strip_prefix("POD_IP=")).unwrap_or("");
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{env}");
    let addrs = b.ok(&["exec", "envy-app", "ip", "-4", "-o", "addr"]);
    assert!(addrs.contains(&format!("inet {ip}/")), "{ip} not in {addrs}");
    b.ok(&["kube", "down", &yaml]);
    // A key the file does not have: refused, nothing made.
    let bad = b.root.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "kind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n  - name: a\n    image: bb:1\n    env:\n    - name: K\n      valueFrom:\n        configMapKeyRef: {name: nothere, key: K}\n",
    )
    .unwrap();
    let o = b.out(&["kube", "play", &bad.display().to_string()]);
    assert_eq!(o.status.code(), Some(125));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("\"nothere\" has no key \"K\""), "{err}");
    assert_eq!(b.ok(&["pod", "ps", "-q"]).trim(), "");
    assert_eq!(b.ok(&["ps", "-aq"]).trim(), "");
}

#[test]
fn a_deployments_replicas_are_pods_named_as_kubernetes_names_them() {
    require_root!();
    let (b, _img) = with_busybox("kube-deploy");
    let yaml = b.root.path().join("deploy.yaml");
    std::fs::write(
        &yaml,
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: srv
        image: bb:1
        command: ["sleep", "1000"]
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: a
        image: bb:1
        command: ["sleep", "1000"]
---
apiVersion: v1
kind: Pod
metadata:
  name: broken
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: a
    image: bb:1
    env:
    - name: X
      valueFrom:
        configMapKeyRef: {name: missing, key: X}
"#,
    )
    .unwrap();
    let yaml_s = yaml.display().to_string();
    // The last pod cannot be made: the whole file is undone, the replicas too.
    let o = b.out(&["kube", "play", &yaml_s]);
    assert_eq!(o.status.code(), Some(125), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(b.ok(&["pod", "ps", "-q"]).trim(), "");
    assert_eq!(b.ok(&["ps", "-aq"]).trim(), "");
    // Without it, three replicas and one daemon pod run.
    let text = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(&yaml, text.split("---\napiVersion: v1\nkind: Pod").next().unwrap()).unwrap();
    b.ok(&["kube", "play", &yaml_s]);
    let names = b.ok(&["pod", "ps", "--format", "{{.Name}} {{.Status}}"]);
    let names: Vec<&str> = names.lines().collect();
    assert_eq!(names.len(), 4, "{names:?}");
    let web: Vec<&str> = names.iter().filter(|n| n.starts_with("web-")).copied().collect();
    assert_eq!(web.len(), 3, "{names:?}");
    for n in &web {
        // web-HASH-SUFFIX: one template hash for all, a suffix each.
        let (name, status) = n.split_once(' ').unwrap();
        let parts: Vec<&str> = name.split('-').collect();
        assert_eq!(
            (parts.len(), parts[1].len(), parts[2].len(), status),
            (3, 10, 5, "Running"),
            "{n}"
        );
        assert_eq!(parts[1], web[0].split('-').nth(1).unwrap());
    }
    assert_eq!(names.iter().filter(|n| n.starts_with("agent-")).count(), 1, "{names:?}");
    b.ok(&["kube", "down", &yaml_s]);
    assert_eq!(b.ok(&["pod", "ps", "-q"]).trim(), "");
    assert_eq!(b.ok(&["ps", "-aq"]).trim(), "");
}

#[test]
fn volumes_empty_dirs_config_maps_secrets_and_host_paths() {
    require_root!();
    let (b, _img) = with_busybox("kube-vol");
    let host = b.root.path().join("host-made");
    let yaml = b.root.path().join("vol.yaml");
    std::fs::write(
        &yaml,
        format!(
            r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: site
data:
  index.html: from-configmap
---
apiVersion: v1
kind: Secret
metadata:
  name: keys
stringData:
  token: t0k3n
---
apiVersion: v1
kind: Pod
metadata:
  name: vols
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: shared
    emptyDir: {{}}
  - name: fast
    emptyDir: {{medium: Memory, sizeLimit: 8Mi}}
  - name: site
    configMap: {{name: site}}
  - name: keys
    secret: {{secretName: keys, items: [{{key: token, path: sub/token}}]}}
  - name: host
    hostPath: {{path: {host}, type: DirectoryOrCreate}}
  containers:
  - name: writer
    image: bb:1
    command: ["sh", "-c", "echo shared-data > /shared/f; echo host-data > /host/f; sleep 1000"]
    volumeMounts:
    - {{name: shared, mountPath: /shared}}
    - {{name: host, mountPath: /host}}
  - name: reader
    image: bb:1
    command: ["sleep", "1000"]
    volumeMounts:
    - {{name: shared, mountPath: /in, readOnly: true}}
    - {{name: fast, mountPath: /fast}}
    - {{name: site, mountPath: /site}}
    - {{name: keys, mountPath: /keys}}
"#,
            host = host.display()
        ),
    )
    .unwrap();
    let yaml = yaml.display().to_string();
    b.ok(&["kube", "play", &yaml]);
    let sh = |c: &str, cmd: &str| {
        let o = b.out(&["exec", c, "sh", "-c", cmd]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // What one container writes, the other reads (read-only there).
    let got = eventually(|| Some(sh("vols-reader", "cat /in/f 2>/dev/null")).filter(|s| !s.is_empty()));
    assert_eq!(got.trim(), "shared-data");
    assert!(sh("vols-reader", "touch /in/x 2>&1").contains("Read-only"));
    assert!(sh("vols-reader", "grep ' /fast ' /proc/mounts").starts_with("tmpfs "));
    assert!(b.ok(&["volume", "ls", "-q"]).lines().any(|v| v == "vols_fast"));
    assert_eq!(sh("vols-reader", "cat /site/index.html"), "from-configmap");
    assert_eq!(sh("vols-reader", "cat /keys/sub/token"), "t0k3n");
    assert!(sh("vols-reader", "touch /site/x 2>&1").contains("Read-only"));
    eventually(|| (std::fs::read_to_string(host.join("f")).ok()?.trim() == "host-data").then_some(()));
    b.ok(&["kube", "down", &yaml]);
    assert_eq!(b.ok(&["ps", "-aq"]).trim(), "");
    assert_eq!(b.ok(&["volume", "ls", "-q"]).trim(), "", "the pod's volumes are left");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("/vols_fast/"), "a tmpfs is left mounted");
    // The host path is the host's: it stays.
    assert!(host.join("f").exists());
}
