//! `berth compose`: a web + db + migration + worker project brought up daemonless, its
//! conditions timed, converged again, scaled, profiled and taken down; the same project
//! under docker-compose 1.29 against `berth daemon`; errors named with file and line.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

use berth_testutil::{require_root, require_tool, TempDir};

use crate::api::Daemon;
use crate::containers::with_busybox;
use crate::images::Berth;

const PROJECT_YAML: &str = r#"
services:
  db:
    image: bb:1
    init: true
    # Healthy only after 2 s: the check looks for a file the command makes then.
    command: sh -c 'sleep 2; mkdir -p /www; echo db-says-hi > /www/index.html; touch /tmp/ready; httpd -f -p 5432 -h /www'
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 300ms
      retries: 50
    volumes:
      - dbdata:/data
    networks:
      back:
        aliases: [database]
  migrate:
    image: bb:1
    command: ["sh", "-c", "sleep 1; echo migrated"]
    depends_on:
      db:
        condition: service_healthy
    networks: [back]
  web:
    image: bb:1
    init: true
    command: >-
      sh -c 'echo "via-name:$$(wget -q -O - http://db:5432/)";
      echo "via-alias:$$(wget -q -O - http://database:5432/)";
      echo "greeting=$$GREETING"; exec sleep 1000'
    environment:
      GREETING: ${GREETING:-unset}
    depends_on:
      db:
        condition: service_healthy
      migrate:
        condition: service_completed_successfully
    networks: [back, front]
  worker:
    image: bb:1
    init: true
    command: ["sleep", "1000"]
    profiles: [workers]
    depends_on:
      web: {condition: service_started, restart: true}
    networks: [back]
networks:
  back: {}
  front: {}
volumes:
  dbdata: {}
"#;

/// Takes the project down (volumes too) when the test ends, however it ends, so no
/// bridge or volume outlives it.
struct Down<'a> {
    b: &'a Berth,
    dir: &'a Path,
    project: String,
}

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = compose_out(self.b, self.dir, &["-p", &self.project, "down", "-v", "-t", "1"], &[]);
    }
}

fn compose_out(b: &Berth, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = b.cmd(&[]);
    c.arg("compose").args(args).current_dir(dir);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// Runs `berth compose ARGS` in `dir`; must succeed. Stdout and stderr.
fn compose(b: &Berth, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (String, String) {
    let o = compose_out(b, dir, args, env);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(o.status.success(), "berth compose {args:?}: {out}{err}");
    (out, err)
}

/// Seconds since midnight of an RFC 3339 UTC time (`...T20:59:09.652984544Z`).
fn seconds(t: &str) -> f64 {
    let time = t.split('T').nth(1).unwrap().trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next().unwrap().parse().unwrap();
    let m: f64 = parts.next().unwrap().parse().unwrap();
    let s: f64 = parts.next().unwrap().parse().unwrap();
    h * 3600.0 + m * 60.0 + s
}

fn state(b: &Berth, name: &str, field: &str) -> String {
    b.ok(&["inspect", "--format", &format!("{{{{.State.{field}}}}}"), name])
        .trim()
        .to_string()
}

/// The project's containers: name -> id.
fn ids(b: &Berth, project: &str) -> std::collections::BTreeMap<String, String> {
    b.ok(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--format",
        "{{.Names}} {{.ID}}",
    ])
    .lines()
    .filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())))
    .collect()
}

/// Where `needle` first appears in `hay` (it must).
fn at(hay: &str, needle: &str) -> usize {
    hay.find(needle).unwrap_or_else(|| panic!("{needle:?} not in:\n{hay}"))
}

#[test]
fn compose_web_db_migration_and_workers_follow_their_conditions() {
    require_root!();
    let (b, _img) = with_busybox("compose-app");
    let dir = TempDir::new("compose-app-dir");
    let d = dir.path();
    std::fs::write(d.join("compose.yaml"), PROJECT_YAML).unwrap();
    std::fs::write(d.join(".env"), "GREETING=from-dotenv\n").unwrap();
    let p = format!("capp{}", b.net);
    let _down = Down {
        b: &b,
        dir: d,
        project: p.clone(),
    };
    let (_, err) = compose(&b, d, &["-p", &p, "up", "-d"], &[]);
    // The order the conditions impose, as reported...
    assert!(
        at(&err, &format!("{p}-db-1  Healthy")) < at(&err, &format!("{p}-migrate-1  Started")),
        "{err}"
    );
    assert!(
        at(&err, &format!("{p}-migrate-1  Exited")) < at(&err, &format!("{p}-web-1  Started")),
        "{err}"
    );
    // ...and as timed: migrate starts once db is healthy (2 s after it started), web once
    // migrate finished.
    let db_started = seconds(&state(&b, &format!("{p}-db-1"), "StartedAt"));
    let mig_started = seconds(&state(&b, &format!("{p}-migrate-1"), "StartedAt"));
    let mig_finished = seconds(&state(&b, &format!("{p}-migrate-1"), "FinishedAt"));
    let web_started = seconds(&state(&b, &format!("{p}-web-1"), "StartedAt"));
    // (db's StartedAt is recorded a moment after its process began its 2 s: a margin.)
    assert!(
        mig_started - db_started >= 1.9,
        "migrate started {:.2}s after db",
        mig_started - db_started
    );
    assert!(web_started >= mig_finished, "web started before migrate finished");
    assert_eq!(state(&b, &format!("{p}-migrate-1"), "ExitCode"), "0");
    // The worker's profile is not active: no worker.
    assert!(!ids(&b, &p).keys().any(|n| n.contains("worker")));
    // web reached db by its service name and by its alias; .env filled ${GREETING}.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let logs = loop {
        let (out, _) = compose(&b, d, &["-p", &p, "logs", "web"], &[]);
        if out.contains("greeting=") || std::time::Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(logs.contains("web-1  | via-name:db-says-hi"), "{logs}");
    assert!(logs.contains("via-alias:db-says-hi"), "{logs}");
    assert!(logs.contains("greeting=from-dotenv"), "{logs}");
    let (ps, _) = compose(&b, d, &["-p", &p, "ps"], &[]);
    assert!(ps.contains("(healthy)") && ps.contains(&format!("{p}-web-1")), "{ps}");

    // Up again: nothing is recreated.
    let before = ids(&b, &p);
    let (_, err) = compose(&b, d, &["-p", &p, "up", "-d"], &[]);
    assert!(!err.contains("Recreate") && !err.contains("Creating"), "{err}");
    assert_eq!(ids(&b, &p), before);

    // A changed variable recreates only the service that uses it.
    let (_, err) = compose(&b, d, &["-p", &p, "up", "-d"], &[("GREETING", "changed")]);
    assert!(err.contains(&format!("{p}-web-1  Recreate")), "{err}");
    assert!(!err.contains(&format!("{p}-db-1  Recreate")), "{err}");
    let after = ids(&b, &p);
    assert_ne!(after[&format!("{p}-web-1")], before[&format!("{p}-web-1")]);
    assert_eq!(after[&format!("{p}-db-1")], before[&format!("{p}-db-1")]);
    let env = b.ok(&["inspect", "--format", "{{json .Config.Env}}", &format!("{p}-web-1")]);
    assert!(env.contains("GREETING=changed"), "{env}");

    // A profile turns the worker on; --scale makes three of it, then one.
    compose(
        &b,
        d,
        &["-p", &p, "--profile", "workers", "up", "-d", "--scale", "worker=3"],
        &[("GREETING", "changed")],
    );
    let workers: Vec<String> = ids(&b, &p).into_keys().filter(|n| n.contains("worker")).collect();
    assert_eq!(workers, [1, 2, 3].map(|i| format!("{p}-worker-{i}")));
    for w in &workers {
        assert_eq!(state(&b, w, "Status"), "running");
    }
    compose(
        &b,
        d,
        &["-p", &p, "--profile", "workers", "up", "-d", "--scale", "worker=1"],
        &[("GREETING", "changed")],
    );
    let workers: Vec<String> = ids(&b, &p).into_keys().filter(|n| n.contains("worker")).collect();
    assert_eq!(workers, [format!("{p}-worker-1")]);
    // web recreated: the worker, which asked for it (`restart: true`), restarts in place.
    let worker = format!("{p}-worker-1");
    let started = state(&b, &worker, "StartedAt");
    let worker_id = ids(&b, &p)[&worker].clone();
    let (_, err) = compose(
        &b,
        d,
        &["-p", &p, "--profile", "workers", "up", "-d"],
        &[("GREETING", "again")],
    );
    assert!(
        err.contains(&format!("{p}-web-1  Recreate")) && err.contains(&format!("{worker}  Restarting")),
        "{err}"
    );
    assert_eq!(ids(&b, &p)[&worker], worker_id);
    assert_ne!(state(&b, &worker, "StartedAt"), started);
    compose(
        &b,
        d,
        &["-p", &p, "--profile", "workers", "up", "-d"],
        &[("GREETING", "changed")],
    );

    // exec and a one-off run on the project's network.
    let (out, _) = compose(
        &b,
        d,
        &["-p", &p, "exec", "-T", "web", "sh", "-c", "echo $GREETING"],
        &[],
    );
    assert_eq!(out.trim(), "changed");
    let (out, _) = compose(
        &b,
        d,
        &[
            "-p",
            &p,
            "run",
            "--rm",
            "-T",
            "--no-deps",
            "migrate",
            "wget",
            "-q",
            "-O",
            "-",
            "http://database:5432/",
        ],
        &[],
    );
    assert!(out.contains("db-says-hi"), "{out}");

    // down -v: no container, network or volume of the project is left.
    let (_, err) = compose(&b, d, &["-p", &p, "down", "-v"], &[]);
    // Reverse order: web stops before db.
    assert!(
        at(&err, &format!("{p}-web-1  Removed")) < at(&err, &format!("{p}-db-1  Removed")),
        "{err}"
    );
    assert!(ids(&b, &p).is_empty());
    assert!(!b.ok(&["network", "ls", "--format", "{{.Name}}"]).contains(&p));
    assert!(!b.ok(&["volume", "ls", "-q"]).contains(&p));
}

#[test]
fn compose_config_merges_files_and_errors_name_file_line_and_key() {
    require_root!();
    let b = Berth::new("compose-config");
    let dir = TempDir::new("compose-config-dir");
    let d = dir.path();
    std::fs::write(d.join("compose.yaml"), PROJECT_YAML).unwrap();
    std::fs::write(
        d.join("override.yaml"),
        "services:\n  web:\n    command: [sleep, '5']\n    environment:\n      EXTRA: ${EXTRA:-x}\n    ports: ['8080:80', '127.0.0.1:9090:90/udp']\n  db:\n    extends:\n      file: base.yaml\n      service: common\n",
    )
    .unwrap();
    std::fs::write(
        d.join("base.yaml"),
        "services:\n  common:\n    image: base:1\n    labels: [tier=data]\n    stop_grace_period: 3s\n",
    )
    .unwrap();
    let (out, _) = compose(
        &b,
        d,
        &["-f", "compose.yaml", "-f", "override.yaml", "-p", "cfg", "config"],
        &[("GREETING", "hi")],
    );
    let v: serde_yaml::Value = serde_yaml::from_str(&out).unwrap();
    let web = &v["services"]["web"];
    assert_eq!(v["name"], "cfg");
    assert_eq!(
        web["command"],
        serde_yaml::from_str::<serde_yaml::Value>("[sleep, '5']").unwrap()
    );
    assert_eq!(web["environment"]["GREETING"], "hi");
    assert_eq!(web["environment"]["EXTRA"], "x");
    assert_eq!(web["ports"][0]["published"], "8080");
    assert_eq!(web["ports"][1]["protocol"], "udp");
    assert_eq!(web["ports"][1]["host_ip"], "127.0.0.1");
    assert_eq!(web["depends_on"]["db"]["condition"], "service_healthy");
    // db: the override's extends adds what base.yaml's service has; db's own keys stay.
    let db = &v["services"]["db"];
    assert_eq!(db["image"], "base:1");
    assert_eq!(db["labels"]["tier"], "data");
    assert_eq!(db["stop_grace_period"], "3s");
    assert_eq!(db["volumes"][0]["type"], "volume");
    assert_eq!(db["volumes"][0]["source"], "dbdata");
    assert_eq!(v["networks"]["back"]["name"], "cfg_back");
    assert_eq!(v["volumes"]["dbdata"]["name"], "cfg_dbdata");
    assert!(
        v["services"].get("worker").is_none(),
        "a disabled profile's service is left out"
    );
    let (out, _) = compose(&b, d, &["--profile", "workers", "config", "--services"], &[]);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["db", "migrate", "web", "worker"]);

    let fails = |file: &str, text: &str| {
        std::fs::write(d.join(file), text).unwrap();
        let o = compose_out(&b, d, &["-f", file, "config"], &[]);
        assert!(!o.status.success(), "{file} should be refused");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = fails("unknown.yaml", "services:\n  a:\n    image: bb:1\n    comand: [x]\n");
    assert!(
        e.contains("unknown.yaml") && e.contains("`comand`") && e.contains("line 4"),
        "{e}"
    );
    let e = fails("broken.yaml", "services:\n  a:\n    image: [bb\n");
    assert!(e.contains("broken.yaml") && e.contains("line "), "{e}");
    let e = fails(
        "missing.yaml",
        "services:\n  a:\n    image: bb:${TAG:?TAG must be set}\n",
    );
    assert!(
        e.contains("required variable TAG is missing a value: TAG must be set"),
        "{e}"
    );
    let e = fails(
        "cycle.yaml",
        "services:\n  a: {image: bb:1, depends_on: [b]}\n  b: {image: bb:1, depends_on: [c]}\n  c: {image: bb:1, depends_on: [a]}\n",
    );
    assert!(e.contains("dependency cycle detected: a -> b -> c -> a"), "{e}");
    let e = fails("undefined.yaml", "services:\n  a: {image: bb:1, networks: [nope]}\n");
    assert!(e.contains("undefined network nope"), "{e}");
}

/// Each container's (service, number, one-off) and the label keys the project's
/// containers carry.
fn shape(b: &Berth, project: &str) -> (BTreeSet<(String, String, String)>, BTreeSet<String>) {
    let mut rows = BTreeSet::new();
    let mut keys = BTreeSet::new();
    for id in ids(b, project).into_values() {
        let v: serde_json::Value =
            serde_json::from_str(&b.ok(&["inspect", "--format", "{{json .Config.Labels}}", &id])).unwrap();
        let l = v.as_object().unwrap();
        let get = |k: &str| l.get(k).and_then(|x| x.as_str()).unwrap_or_default().to_string();
        rows.insert((
            get("com.docker.compose.service"),
            get("com.docker.compose.container-number"),
            get("com.docker.compose.oneoff"),
        ));
        keys.extend(l.keys().filter(|k| k.starts_with("com.docker.compose.")).cloned());
    }
    (rows, keys)
}

#[test]
fn compose_projects_pass_between_berth_and_docker_compose() {
    require_root!();
    require_tool!("docker-compose");
    let (b, _img) = with_busybox("compose-peer");
    let daemon = Daemon::start(&b, TempDir::new("compose-peer-sock"));
    let dir = TempDir::new("compose-peer-dir");
    let d = dir.path();
    // docker-compose 1.29 predates `depends_on`'s `restart`.
    std::fs::write(d.join("compose.yaml"), PROJECT_YAML.replace(", restart: true", "")).unwrap();
    let p = format!("cpeer{}", b.net);
    let _down = Down {
        b: &b,
        dir: d,
        project: p.clone(),
    };
    let docker_compose = |args: &[&str]| daemon.docker_compose(d, &p, args);
    let base = [
        "com.docker.compose.project",
        "com.docker.compose.service",
        "com.docker.compose.container-number",
        "com.docker.compose.oneoff",
        "com.docker.compose.config-hash",
        "com.docker.compose.version",
    ];
    // docker-compose brings it up; berth sees it and takes it down.
    docker_compose(&["up", "-d"]);
    let (theirs, their_keys) = shape(&b, &p);
    let (ps, _) = compose(&b, d, &["-p", &p, "ps", "-a", "--services"], &[]);
    assert_eq!(
        ps.lines().collect::<BTreeSet<_>>(),
        ["db", "migrate", "web"].into_iter().collect()
    );
    compose(&b, d, &["-p", &p, "down", "-v"], &[]);
    assert!(ids(&b, &p).is_empty());
    assert!(!b.ok(&["network", "ls", "--format", "{{.Name}}"]).contains(&p));
    assert!(!b.ok(&["volume", "ls", "-q"]).contains(&p));
    // berth brings it up: the same containers and labels; docker-compose takes it down.
    compose(&b, d, &["-p", &p, "up", "-d"], &[]);
    let (ours, our_keys) = shape(&b, &p);
    assert_eq!(ours, theirs);
    for k in base {
        assert!(
            their_keys.contains(k) && our_keys.contains(k),
            "{k}: {their_keys:?} / {our_keys:?}"
        );
    }
    let ps = docker_compose(&["ps"]);
    for svc in ["db", "web"] {
        assert!(
            ps.lines()
                .any(|l| l.contains(&format!("{p}-{svc}-1")) && l.contains("Up")),
            "{ps}"
        );
    }
    docker_compose(&["down", "-v"]);
    assert!(ids(&b, &p).is_empty());
    assert!(!b.ok(&["network", "ls", "--format", "{{.Name}}"]).contains(&p));
    assert!(!b.ok(&["volume", "ls", "-q"]).contains(&p));
}

#[test]
fn compose_builds_images_mounts_secrets_and_runs_one_offs() {
    require_root!();
    let (b, _img) = with_busybox("compose-build");
    let dir = TempDir::new("compose-build-dir");
    let d = dir.path();
    std::fs::create_dir_all(d.join("app")).unwrap();
    std::fs::write(
        d.join("app/Dockerfile"),
        "FROM bb:1\nARG FLAVOUR=plain\nRUN echo \"built-$FLAVOUR\" > /flavour\nCMD [\"sh\", \"-c\", \"cat /flavour /run/secrets/token /settings.conf; exec sleep 1000\"]\n",
    )
    .unwrap();
    std::fs::write(d.join("token.txt"), "s3cret\n").unwrap();
    std::fs::write(
        d.join("compose.yaml"),
        "services:\n  app:\n    build:\n      context: ./app\n      args: {FLAVOUR: spicy}\n    init: true\n    secrets: [token]\n    configs:\n      - source: settings\n        target: /settings.conf\nsecrets:\n  token: {file: ./token.txt}\nconfigs:\n  settings: {content: \"mode=fast\\n\"}\n",
    )
    .unwrap();
    let p = format!("cbuild{}", b.net);
    let _down = Down {
        b: &b,
        dir: d,
        project: p.clone(),
    };
    let (_, err) = compose(&b, d, &["-p", &p, "up", "-d", "--wait"], &[]);
    assert!(err.contains(&format!("Image {p}-app  Built")), "{err}");
    // The image is the project's, built with the argument; the secret and the config are
    // mounted where the specification puts them.
    b.ok(&["image", "inspect", &format!("{p}-app")]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let logs = loop {
        let (out, _) = compose(&b, d, &["-p", &p, "logs", "--no-log-prefix", "app"], &[]);
        if out.contains("mode=fast") || std::time::Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(
        logs.lines().collect::<Vec<_>>(),
        ["built-spicy", "s3cret", "mode=fast"],
        "{logs}"
    );
    // Up again builds nothing (the image is here); --build builds again.
    let (_, err) = compose(&b, d, &["-p", &p, "up", "-d"], &[]);
    assert!(!err.contains("Building"), "{err}");
    let (_, err) = compose(&b, d, &["-p", &p, "up", "-d", "--build"], &[]);
    assert!(err.contains(&format!("Image {p}-app  Built")), "{err}");
    // A one-off container: labelled as one, removed after with --rm.
    let (out, _) = compose(&b, d, &["-p", &p, "run", "--rm", "-T", "app", "cat", "/flavour"], &[]);
    assert_eq!(out.trim(), "built-spicy");
    let (out, _) = compose(&b, d, &["-p", &p, "run", "-d", "app", "sleep", "100"], &[]);
    let id = out.trim().to_string();
    let labels = b.ok(&["inspect", "--format", "{{json .Config.Labels}}", &id]);
    assert!(labels.contains("\"com.docker.compose.oneoff\":\"True\""), "{labels}");
    // down --rmi local removes the built image (and the one-off container).
    compose(&b, d, &["-p", &p, "down", "--rmi", "local", "-t", "1"], &[]);
    assert!(ids(&b, &p).is_empty());
    assert!(!b.out(&["image", "inspect", &format!("{p}-app")]).status.success());
}

#[test]
fn compose_lifecycle_commands_act_on_the_projects_containers() {
    require_root!();
    let (b, _img) = with_busybox("compose-life");
    let dir = TempDir::new("compose-life-dir");
    let d = dir.path();
    std::fs::write(
        d.join("compose.yaml"),
        "services:\n  web:\n    image: bb:1\n    init: true\n    command: [sleep, '1000']\n    ports: ['80']\n  side:\n    image: bb:1\n    init: true\n    command: [sleep, '1001']\n",
    )
    .unwrap();
    let p = format!("clife{}", b.net);
    let _down = Down {
        b: &b,
        dir: d,
        project: p.clone(),
    };
    let c = |args: &[&str]| {
        let mut all = vec!["-p", p.as_str()];
        all.extend_from_slice(args);
        compose(&b, d, &all, &[]).0
    };
    c(&["up", "-d"]);
    let ls = compose(&b, d, &["ls"], &[]).0;
    assert!(
        ls.lines().any(|l| l.starts_with(&p) && l.contains("running(2)")),
        "{ls}"
    );
    // A published port the engine chose, as `port` reports it.
    let port = c(&["port", "web", "80"]);
    let host_port: u16 = port.trim().rsplit(':').next().unwrap().parse().unwrap();
    assert!(host_port > 0, "{port}");
    assert!(c(&["top", "side"]).contains("sleep 1001"));
    assert!(c(&["images"])
        .lines()
        .any(|l| l.starts_with(&format!("{p}-web-1")) && l.contains("bb")));
    assert_eq!(c(&["ps", "-q"]).lines().count(), 2);
    // stop, then start; restart a service; kill one.
    c(&["stop", "-t", "1"]);
    assert_eq!(state(&b, &format!("{p}-web-1"), "Status"), "exited");
    assert!(!compose(&b, d, &["ls"], &[]).0.contains(&p));
    assert!(compose(&b, d, &["ls", "-a"], &[]).0.contains("exited(2)"));
    c(&["start"]);
    assert_eq!(state(&b, &format!("{p}-side-1"), "Status"), "running");
    let before = state(&b, &format!("{p}-side-1"), "StartedAt");
    c(&["restart", "-t", "1", "side"]);
    assert_ne!(state(&b, &format!("{p}-side-1"), "StartedAt"), before);
    c(&["kill", "web"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while state(&b, &format!("{p}-web-1"), "Status") == "running" && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(state(&b, &format!("{p}-web-1"), "ExitCode"), "137");
    // rm: stopped containers only, unless -s.
    c(&["rm", "-f"]);
    let left: Vec<String> = ids(&b, &p).into_keys().collect();
    assert_eq!(left, [format!("{p}-side-1")]);
    c(&["rm", "-f", "-s"]);
    assert!(ids(&b, &p).is_empty());
}
