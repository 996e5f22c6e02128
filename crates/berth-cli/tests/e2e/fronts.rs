//! The CLI and the Docker API are two front ends of one engine: the same question asked
//! through `berth` and through the docker CLI against `berth daemon` gets the same answer.

use std::time::{Duration, Instant};

use berth_testutil::{require_root, require_tool, TempDir};

use crate::api::Daemon;
use crate::containers::with_busybox;
use crate::images::Berth;

fn sorted(out: &str) -> Vec<String> {
    let mut v: Vec<String> = out.lines().map(str::to_string).collect();
    v.sort();
    v
}

/// `ps -q --no-trunc` with `args`, through berth's CLI and through the docker CLI.
fn both(b: &Berth, d: &Daemon, args: &[&str]) -> (Vec<String>, Vec<String>) {
    let mut full = vec!["ps", "-q", "--no-trunc"];
    full.extend_from_slice(args);
    (sorted(&b.ok(&full)), sorted(&d.ok(&full)))
}

#[test]
fn container_filters_answer_the_same_through_the_cli_and_the_api() {
    require_root!();
    require_tool!("docker");
    let (b, _img) = with_busybox("fronts-ps");
    let d = Daemon::start(&b, TempDir::new("fronts-ps-sock"));
    let net = format!("fnet{}", std::process::id());
    b.ok(&["network", "create", &net]);
    let web = b.ok(&[
        "run",
        "-d",
        "--name",
        "f-web",
        "-l",
        "app=web",
        "-l",
        "tier=front",
        "-p",
        "80",
        "bb:1",
        "sleep",
        "300",
    ]);
    let web = web.trim();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "f-db",
        "-l",
        "app=db",
        "-v",
        "fvol:/data",
        "--health-cmd",
        "true",
        "--health-interval",
        "200ms",
        "bb:1",
        "sleep",
        "300",
    ]);
    b.ok(&["create", "--name", "f-made", "-l", "app=web", "bb:1", "true"]);
    let _ = b
        .cmd(&["run", "--name", "f-done", "bb:1", "sh", "-c", "exit 3"])
        .output()
        .unwrap();
    b.ok(&["run", "--name", "f-ok", "bb:1", "true"]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "f-netted",
        "--network",
        &net,
        "bb:1",
        "sleep",
        "300",
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while b.ok(&["ps", "-q", "--filter", "health=healthy"]).trim().is_empty() {
        assert!(Instant::now() < deadline, "f-db never healthy");
        std::thread::sleep(Duration::from_millis(100));
    }

    let id_prefix = &web[..8];
    let network_filter = format!("network={net}");
    let id_filter = format!("id={id_prefix}");
    // (arguments, how many containers Docker's rules give)
    let cases: Vec<(Vec<&str>, usize)> = vec![
        (vec![], 3),
        (vec!["-a"], 6),
        (vec!["--filter", "status=exited"], 2),
        (vec!["--filter", "status=exited", "--filter", "status=created"], 3),
        (vec!["-a", "--filter", "label=app=web"], 2),
        (
            vec!["-a", "--filter", "label=app=web", "--filter", "label=tier=front"],
            1,
        ),
        (vec!["-a", "--filter", "label=app"], 3),
        (vec!["--filter", "name=f-d"], 1),
        (vec!["-a", "--filter", "name=f-d"], 2),
        (vec!["-a", "--filter", "exited=3"], 1),
        (vec!["--filter", "health=healthy"], 1),
        (vec!["--filter", "health=none"], 2),
        (vec!["--filter", &network_filter], 1),
        (vec!["-a", "--filter", "volume=fvol"], 1),
        (vec!["--filter", "publish=80"], 1),
        (vec!["--filter", "publish=80/udp"], 0),
        (vec!["-a", "--filter", "ancestor=bb:1"], 6),
        (vec!["-a", "--filter", "before=f-made"], 2),
        (vec!["-a", "--filter", "since=f-made"], 3),
        (vec!["-a", "--filter", &id_filter], 1),
        (vec!["-a", "--filter", "label=app=web", "--filter", "status=created"], 1),
        (vec!["-l"], 1),
    ];
    for (args, want) in &cases {
        let (cli, api) = both(&b, &d, args);
        assert_eq!(cli, api, "ps {args:?}: the CLI and the API differ");
        assert_eq!(cli.len(), *want, "ps {args:?}: {cli:?}");
    }
    // What neither accepts.
    for bad in ["colour=red", "status=sleeping", "health=fine", "exited=x"] {
        let cli = b.cmd(&["ps", "--filter", bad]).output().unwrap();
        let api = d.docker(&["ps", "--filter", bad]);
        assert!(
            !cli.status.success() && !api.status.success(),
            "--filter {bad} accepted"
        );
        let key = bad.split('=').next().unwrap();
        assert!(String::from_utf8_lossy(&cli.stderr).contains(key), "{cli:?}");
        assert!(String::from_utf8_lossy(&api.stderr).contains(key), "{api:?}");
    }
    b.ok(&["rm", "-f", "f-web", "f-db", "f-made", "f-done", "f-ok", "f-netted"]);
    b.ok(&["network", "rm", &net]);
    b.ok(&["volume", "rm", "fvol"]);
}

/// `logs` with `args`: (stdout, stderr) through berth's CLI and through the docker CLI.
fn logs_both(b: &Berth, d: &Daemon, args: &[&str]) -> ((String, String), (String, String)) {
    let mut full = vec!["logs"];
    full.extend_from_slice(args);
    let text = |o: std::process::Output| {
        assert!(o.status.success(), "logs {args:?}: {o:?}");
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    (text(b.cmd(&full).output().unwrap()), text(d.docker(&full)))
}

#[test]
fn logs_answer_the_same_through_the_cli_and_the_api() {
    require_root!();
    require_tool!("docker");
    let (b, _img) = with_busybox("fronts-logs");
    let d = Daemon::start(&b, TempDir::new("fronts-logs-sock"));
    b.ok(&[
        "run",
        "--name",
        "f-talk",
        "bb:1",
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; sleep 0.01; done",
    ]);
    // Each record's time, from the log itself.
    let stamped = b.ok(&["logs", "-t", "f-talk"]);
    let times: Vec<String> = stamped
        .lines()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(times.len(), 5, "{stamped}");
    let mut all_times = Vec::new();
    let o = b.cmd(&["logs", "-t", "f-talk"]).output().unwrap();
    for l in String::from_utf8_lossy(&o.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&o.stderr).lines())
    {
        all_times.push(l.split(' ').next().unwrap().to_string());
    }
    all_times.sort();
    let third = all_times[4].clone(); // the fifth record: out3
    let cases: Vec<Vec<&str>> = vec![
        vec!["f-talk"],
        vec!["--tail", "3", "f-talk"],
        vec!["--tail", "0", "f-talk"],
        vec!["-t", "--tail", "2", "f-talk"],
        vec!["--since", &third, "f-talk"],
        vec!["--until", &third, "f-talk"],
        vec!["--since", &third, "--until", &third, "f-talk"],
        vec!["--since", "1h", "f-talk"],
    ];
    for args in &cases {
        let (cli, api) = logs_both(&b, &d, args);
        assert_eq!(cli, api, "logs {args:?}: the CLI and the API differ");
    }
    let (full, _) = logs_both(&b, &d, &["f-talk"]);
    assert_eq!(full.0, "out1\nout2\nout3\nout4\nout5\n");
    assert_eq!(full.1, "err1\nerr2\nerr3\nerr4\nerr5\n");
    let (until, _) = logs_both(&b, &d, &["--until", &third, "f-talk"]);
    assert!(until.0.ends_with("out3\n"), "until includes its own instant: {until:?}");
    let (since, _) = logs_both(&b, &d, &["--since", &third, "f-talk"]);
    assert!(
        since.0.starts_with("out3\n"),
        "since includes its own instant: {since:?}"
    );

    // Following a running container: both see every line and end when it stops.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "f-slow",
        "bb:1",
        "sh",
        "-c",
        "echo a; sleep 1; echo b; echo c >&2",
    ]);
    let cli = std::thread::scope(|s| {
        let cli = s.spawn(|| b.cmd(&["logs", "-f", "f-slow"]).output().unwrap());
        let api = d.docker(&["logs", "-f", "f-slow"]);
        let cli = cli.join().unwrap();
        assert_eq!(cli.stdout, api.stdout);
        assert_eq!(cli.stderr, api.stderr);
        cli
    });
    assert_eq!(String::from_utf8_lossy(&cli.stdout), "a\nb\n");
    assert_eq!(String::from_utf8_lossy(&cli.stderr), "c\n");
    // A time neither can read.
    assert!(!b
        .cmd(&["logs", "--since", "5€", "f-talk"])
        .output()
        .unwrap()
        .status
        .success());
    assert!(!d.docker(&["logs", "--since", "5€", "f-talk"]).status.success());
    b.ok(&["rm", "-f", "f-talk", "f-slow"]);
}

#[test]
fn exec_answers_the_same_through_the_cli_and_the_api() {
    require_root!();
    require_tool!("docker");
    let (b, _img) = with_busybox("fronts-exec");
    let d = Daemon::start(&b, TempDir::new("fronts-exec-sock"));
    b.ok(&["run", "-d", "--name", "f-up", "-e", "BASE=1", "bb:1", "sleep", "300"]);
    b.ok(&["create", "--name", "f-down", "bb:1", "true"]);
    let run = |cli: bool, args: &[&str], input: Option<&str>| {
        let mut full = vec!["exec"];
        full.extend_from_slice(args);
        let o = if cli {
            let mut c = b.cmd(&full);
            c.stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            let mut child = c.spawn().unwrap();
            let mut stdin = child.stdin.take().unwrap();
            if let Some(i) = input {
                std::io::Write::write_all(&mut stdin, i.as_bytes()).unwrap();
            }
            drop(stdin);
            child.wait_with_output().unwrap()
        } else {
            let mut c = std::process::Command::new("sh");
            let quoted: Vec<String> = full.iter().map(|a| format!("'{a}'")).collect();
            let line = format!("printf %s '{}' | docker {}", input.unwrap_or(""), quoted.join(" "));
            c.args(["-c", &line])
                .env("DOCKER_HOST", format!("unix://{}", d.sock().display()))
                .env("DOCKER_CONFIG", d.config());
            c.output().unwrap()
        };
        (o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let cases: Vec<(Vec<&str>, Option<&str>, Option<i32>)> = vec![
        (vec!["f-up", "sh", "-c", "echo $BASE $FOO; pwd; id -u"], None, Some(0)),
        (
            vec![
                "-e",
                "FOO=bar",
                "-w",
                "/tmp",
                "-u",
                "1000",
                "f-up",
                "sh",
                "-c",
                "echo $BASE $FOO; pwd; id -u",
            ],
            None,
            Some(0),
        ),
        (vec!["-u", "root:0", "f-up", "id", "-g"], None, Some(0)),
        (vec!["f-up", "sh", "-c", "exit 7"], None, Some(7)),
        (vec!["f-up", "/no/such/program"], None, Some(127)),
        (vec!["-u", "nosuchuser", "f-up", "true"], None, Some(126)),
        (vec!["-i", "f-up", "cat"], Some("through stdin\n"), Some(0)),
        (vec!["f-down", "true"], None, Some(1)),
    ];
    for (args, input, code) in &cases {
        let cli = run(true, args, *input);
        let api = run(false, args, *input);
        assert_eq!(cli, api, "exec {args:?}: the CLI and the API differ");
        assert_eq!(cli.0, *code, "exec {args:?}: {cli:?}");
    }
    assert_eq!(run(true, &cases[1].0, None).1, "1 bar\n/tmp\n1000\n");
    b.ok(&["rm", "-f", "f-up", "f-down"]);
}

#[test]
fn create_warnings_reach_both_front_ends() {
    require_root!();
    require_tool!("docker");
    let (b, _img) = with_busybox("fronts-warn");
    let d = Daemon::start(&b, TempDir::new("fronts-warn-sock"));
    let args = ["create", "--network", "host", "-p", "8080:80", "bb:1", "true"];
    let cli = b.cmd(&args).output().unwrap();
    let api = d.docker(&args);
    let want = "WARNING: Published ports are discarded when using host network mode";
    for (who, o) in [("cli", &cli), ("api", &api)] {
        assert!(o.status.success(), "{who}: {o:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains(want), "{who}: {o:?}");
    }
    for o in [cli, api] {
        let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
        b.ok(&["rm", &id]);
    }
}

#[test]
fn builds_take_the_same_defaults_and_events_through_both_front_ends() {
    require_root!();
    require_tool!("docker");
    let (b, _img) = with_busybox("fronts-build");
    let d = Daemon::start(&b, TempDir::new("fronts-build-sock"));
    let ctx = TempDir::new("fronts-build-ctx");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM bb:1\nRUN echo made > /made\nCMD [\"cat\", \"/made\"]\n",
    )
    .unwrap();
    let dir = ctx.path().to_str().unwrap();
    let since = crate::api::now_secs();
    b.ok(&["build", "--network", "none", "-t", "f-built:cli", dir]);
    d.ok(&["build", "--network", "none", "-t", "f-built:api", dir]);
    assert_eq!(b.ok(&["run", "--rm", "f-built:cli"]), "made\n");
    assert_eq!(b.ok(&["run", "--rm", "f-built:api"]), "made\n");
    // Both builds' tags reach the event stream.
    let tags = d.events_since(since, "event=tag", "{{.Actor.Attributes.name}}");
    assert!(tags.contains("f-built:cli") && tags.contains("f-built:api"), "{tags}");
    // A network mode builds cannot use: the same refusal from both.
    let cli = b.cmd(&["build", "--network", "somenet", dir]).output().unwrap();
    let api = d.docker(&["build", "--network", "somenet", dir]);
    for (who, o) in [("cli", &cli), ("api", &api)] {
        assert!(!o.status.success(), "{who}: {o:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("not supported for builds"),
            "{who}: {o:?}"
        );
    }
    b.ok(&["rmi", "f-built:cli", "f-built:api"]);
}

#[test]
fn login_checks_credentials_the_same_through_both_front_ends() {
    require_root!();
    require_tool!("docker");
    require_tool!("docker-registry");
    require_tool!("htpasswd");
    let reg =
        berth_testutil::images::Registry::start("fronts-login", berth_testutil::images::Auth::Basic("alice", "s3cret"));
    let (b, _img) = with_busybox("fronts-login");
    let d = Daemon::start(&b, TempDir::new("fronts-login-sock"));
    let login = |cli: bool, password: &str| -> bool {
        let mut c = if cli {
            b.cmd(&["login", "-u", "alice", "--password-stdin", &reg.host])
        } else {
            let mut c = std::process::Command::new("docker");
            c.args(["login", "-u", "alice", "--password-stdin", &reg.host])
                .env("DOCKER_HOST", format!("unix://{}", d.sock().display()))
                .env("DOCKER_CONFIG", d.config());
            c
        };
        let mut child = c
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), format!("{password}\n").as_bytes()).unwrap();
        let o = child.wait_with_output().unwrap();
        let ok = o.status.success();
        if ok {
            assert!(String::from_utf8_lossy(&o.stdout).contains("Login Succeeded"), "{o:?}");
        }
        ok
    };
    for cli in [true, false] {
        assert!(!login(cli, "nope"), "a wrong password logs in (cli: {cli})");
        assert!(login(cli, "s3cret"), "the right password is refused (cli: {cli})");
    }
}

#[test]
fn create_options_mean_the_same_through_the_cli_and_the_api() {
    require_root!();
    require_tool!("docker");
    let (b, _img) = with_busybox("fronts-opts");
    let d = Daemon::start(&b, TempDir::new("fronts-opts-sock"));
    let host = TempDir::new("fronts-opts-bind");
    let bind = format!("{}:/bound:ro", host.path().display());
    let flags = [
        "-p",
        "127.0.0.1::80/udp",
        "-p",
        "9000-9001:80-81",
        "--restart",
        "on-failure:3",
        "-v",
        bind.as_str(),
        "-v",
        "/anon",
        "--mount",
        "type=tmpfs,target=/t,tmpfs-size=1048576",
        "--tmpfs",
        "/run2:size=64k",
        "--ulimit",
        "nofile=100:200",
        "--device",
        "/dev/null:/dev/nothing:r",
        "--health-cmd",
        "true",
        "--health-interval",
        "5s",
        "--health-retries",
        "2",
        "--log-opt",
        "max-size=1m",
        "--cpus",
        "0.5",
        "--entrypoint",
        "/bin/sh",
        "bb:1",
        "-c",
        "exit 0",
    ];
    let made = |run: &dyn Fn(&[&str]) -> String, name: &str| {
        let mut args = vec!["create", "--name", name];
        args.extend_from_slice(&flags);
        run(&args).trim().to_string()
    };
    let cli = made(&|a| b.ok(a), "f-opts-cli");
    let api = made(&|a| d.ok(a), "f-opts-api");
    let fields = [
        "{{json .HostConfig.PortBindings}}",
        "{{json .HostConfig.RestartPolicy}}",
        "{{json .HostConfig.Ulimits}}",
        "{{json .HostConfig.Devices}}",
        "{{json .HostConfig.LogConfig}}",
        "{{.HostConfig.NanoCpus}} {{.HostConfig.CpuQuota}}",
        "{{json .Config.Healthcheck}}",
        "{{json .Config.Entrypoint}} {{json .Config.Cmd}}",
        "{{range .Mounts}}{{.Type}}:{{.Destination}}:{{.RW}} {{end}}",
    ];
    for f in fields {
        let (c, a) = (b.ok(&["inspect", "-f", f, &cli]), b.ok(&["inspect", "-f", f, &api]));
        assert_eq!(c, a, "{f}");
        assert!(!c.trim().is_empty() && c.trim() != "null", "{f}: {c}");
    }
    assert!(b
        .ok(&["inspect", "-f", "{{json .HostConfig.PortBindings}}", &cli])
        .contains("\"9001\""));
    // A bad value: the same refusal, and nothing made, through both.
    for bad in [
        ["--restart", "always:2"],
        ["--ulimit", "bogus=1"],
        ["-p", "0"],
        ["--health-interval", "500us"],
    ] {
        let mut args = vec!["create"];
        args.extend_from_slice(&bad);
        args.extend_from_slice(&["bb:1", "true"]);
        let (c, a) = (b.cmd(&args).output().unwrap(), d.docker(&args));
        assert!(!c.status.success() && !a.status.success(), "{bad:?}: {c:?} {a:?}");
    }
    b.ok(&["rm", "-v", &cli, &api]);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

#[test]
fn prunes_remove_the_same_and_are_seen_in_events_through_both_front_ends() {
    require_root!();
    require_tool!("docker");
    let (b, _img) = with_busybox("fronts-prune");
    let d = Daemon::start(&b, TempDir::new("fronts-prune-sock"));
    // An anonymous volume left by a removed container, and a named one: a plain prune
    // takes the first alone, through either front end.
    let anon_of = |who: &str| {
        let id = b.ok(&[
            "create",
            "-v",
            "/data",
            "-v",
            &format!("f-named-{who}:/keep"),
            "bb:1",
            "true",
        ]);
        let vol = b.ok(&[
            "inspect",
            "-f",
            "{{range .Mounts}}{{if eq .Destination \"/data\"}}{{.Name}}{{end}}{{end}}",
            id.trim(),
        ]);
        b.ok(&["rm", id.trim()]);
        vol.trim().to_string()
    };
    let (cli_vol, api_vol) = (anon_of("cli"), anon_of("api"));
    let cli = b.ok(&["volume", "prune", "-f"]);
    assert!(cli.contains(&cli_vol) && !cli.contains("f-named"), "{cli}");
    let api_left = anon_of("api2");
    let api = d.ok(&["volume", "prune", "-f"]);
    assert!(api.contains(&api_left) && !api.contains("f-named"), "{api} {api_vol}");
    let names = b.ok(&["volume", "ls", "-q"]);
    assert!(
        names.contains("f-named-cli") && names.contains("f-named-api"),
        "{names}"
    );
    b.ok(&["volume", "rm", "f-named-cli", "f-named-api", "f-named-api2"]);
    // An image pruned through the CLI reaches the API's event stream.
    b.ok(&["tag", "bb:1", "f-prune:1"]);
    b.ok(&["rmi", "bb:1"]);
    let since = crate::api::now_secs();
    b.ok(&["image", "prune", "-a", "-f"]);
    let ev = d.events_since(since, "type=image", "{{.Action}}");
    assert!(ev.contains("delete") || ev.contains("untag"), "{ev}");
}
