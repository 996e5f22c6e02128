//! `berth build`, `berth lint` and `berth builder prune`, driven as a user would: real
//! Dockerfiles and contexts on disk, RUN steps in real containers, results run with
//! `berth run` and taken apart with `berth save`.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use berth_testutil::TempDir;
use serde_json::Value;

use crate::containers::with_busybox;
use crate::images::Berth;

fn write(dir: &Path, rel: &str, data: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

/// `build` with plain progress; returns (stdout, stderr).
fn build(b: &Berth, args: &[&str]) -> (String, String) {
    let mut a = vec!["build", "--progress", "plain"];
    a.extend_from_slice(args);
    let o = b.out(&a);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(o.status.success(), "berth {a:?} failed: {err}{out}");
    (out, err)
}

/// (steps run, steps cached) from the last line of a build.
fn counts(err: &str) -> (usize, usize) {
    let line = err.lines().rev().find(|l| l.starts_with("Built ")).unwrap();
    let inner = line.rsplit_once('(').unwrap().1;
    let nums: Vec<usize> = inner
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    (nums[0], nums[1])
}

fn no_mounts_under(root: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let r = root.display().to_string();
    let left: Vec<&str> = mounts.lines().filter(|l| l.contains(&r)).collect();
    assert!(left.is_empty(), "mounts left behind: {left:#?}");
}

#[test]
fn multistage_build_with_args_ignore_add_heredoc_and_target() {
    berth_testutil::require_root!();
    let (b, _img) = with_busybox("build-multi");
    let ctx = TempDir::new("build-multi-ctx");
    let c = ctx.path();
    write(c, "app/main.txt", "main source\n");
    write(c, "app/notes.md", "notes\n");
    write(c, "app/keep.md", "kept despite *.md\n");
    write(c, "secret.env", "TOKEN=should-not-be-sent\n");
    write(c, "build/out.o", "object\n");
    write(
        c,
        ".dockerignore",
        "# ignore these\n**/*.md\n!app/keep.md\nsecret.env\nbuild\n",
    );
    // A tar (gzip) for ADD to unpack.
    let t = TempDir::new("build-multi-tar");
    write(t.path(), "pkg/bin/tool", "#!/bin/sh\necho tool ran\n");
    let st = std::process::Command::new("tar")
        .args([
            "-czf",
            c.join("pkg.tar.gz").to_str().unwrap(),
            "-C",
            t.path().to_str().unwrap(),
            "pkg",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    write(
        c,
        "Dockerfile",
        r#"# syntax=docker/dockerfile:1
ARG BASE=bb:1
FROM ${BASE} AS builder
ARG VERSION=1.0
ENV APP_HOME=/opt/app \
    MODE=release
WORKDIR $APP_HOME
COPY app/ ./src/
ADD pkg.tar.gz /opt/
RUN <<EOF
set -e
echo "version ${VERSION} mode ${MODE}" > /opt/app/build-info
ls /opt/app/src | sort | tr '\n' ' ' > /opt/app/listing
EOF
RUN test ! -e /opt/app/src/notes.md && test ! -e /opt/app/secret.env

FROM bb:1 AS runtime
ARG VERSION
LABEL org.example.version=$VERSION
COPY --from=builder /opt/app/build-info /opt/app/listing /srv/
COPY --from=builder --chown=65534:65534 /opt/pkg /srv/pkg
WORKDIR /srv
USER nobody
EXPOSE 8080/tcp
ENTRYPOINT ["sh", "-c"]
CMD ["cat /srv/build-info /srv/listing; id -u; pwd"]

FROM runtime AS debug
USER root
RUN echo never built for --target runtime > /debug
"#,
    );
    let (_, err) = build(
        &b,
        &[
            "-t",
            "multi:1",
            "-t",
            "multi:alias",
            "--target",
            "runtime",
            "--build-arg",
            "VERSION=2.5",
            c.to_str().unwrap(),
        ],
    );
    assert!(!err.contains("never built"), "the debug stage ran: {err}");
    let out = b.ok(&["run", "--rm", "multi:1"]);
    assert_eq!(out, "version 2.5 mode release\nkeep.md main.txt 65534\n/srv\n");
    // The tool came from the unpacked tar, owned as --chown said.
    let out = b.ok(&[
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        "multi:alias",
        "-c",
        "sh /srv/pkg/bin/tool; stat -c %u:%g /srv/pkg/bin/tool",
    ]);
    assert_eq!(out, "tool ran\n65534:65534\n");
    let cfg = b.inspect("multi:1");
    let c2 = &cfg["Config"];
    assert_eq!(c2["User"], "nobody");
    assert_eq!(c2["WorkingDir"], "/srv");
    assert_eq!(c2["Labels"]["org.example.version"], "2.5");
    assert_eq!(c2["Entrypoint"], serde_json::json!(["sh", "-c"]));
    assert!(c2["ExposedPorts"]["8080/tcp"].is_object(), "{c2}");
    assert!(c2["Env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e.as_str().unwrap().starts_with("PATH=")));
    // The runtime stage does not inherit the builder's ENV.
    assert!(!c2["Env"].to_string().contains("APP_HOME"), "{c2}");
    // Nothing the runtime mounted (/proc, /dev, /etc/hosts...) is left in a layer.
    let files = b.ok(&["run", "--rm", "--entrypoint", "sh", "multi:1", "-c", "ls -a /srv"]);
    assert_eq!(
        files.split_whitespace().collect::<Vec<_>>(),
        vec![".", "..", "build-info", "listing", "pkg"]
    );
    // --target debug builds the last stage too.
    build(&b, &["-t", "multi:debug", "--target", "debug", c.to_str().unwrap()]);
    assert_eq!(
        b.ok(&["run", "--rm", "--entrypoint", "cat", "multi:debug", "/debug"]),
        "never built for --target runtime\n"
    );
    no_mounts_under(b.root.path());
}

#[test]
fn cache_hits_and_precise_invalidation() {
    berth_testutil::require_root!();
    let (b, _img) = with_busybox("build-cache");
    let ctx = TempDir::new("build-cache-ctx");
    let c = ctx.path();
    write(c, "a.txt", "alpha\n");
    write(c, "b.txt", "beta\n");
    write(
        c,
        "Dockerfile",
        "FROM bb:1\nRUN echo one > /one\nCOPY a.txt /a.txt\nRUN cat /a.txt > /a-copy\nCOPY b.txt /b.txt\nRUN cat /b.txt > /b-copy\nCMD [\"cat\", \"/a-copy\", \"/b-copy\"]\n",
    );
    let ctx_s = c.to_str().unwrap();
    let (_, err) = build(&b, &["-t", "cached:1", ctx_s]);
    assert_eq!(counts(&err), (5, 0), "{err}");
    let id1 = b.inspect("cached:1")["Id"].clone();
    // Unchanged: every step from the cache, and the very same image.
    let (_, err) = build(&b, &["-t", "cached:1", ctx_s]);
    assert_eq!(counts(&err), (0, 5), "{err}");
    assert_eq!(err.matches("CACHED").count(), 5, "{err}");
    assert_eq!(b.inspect("cached:1")["Id"], id1);
    // A touch (new mtime, same content) keeps the cache.
    std::fs::write(c.join("b.txt"), "beta\n").unwrap();
    assert_eq!(counts(&build(&b, &["-t", "cached:1", ctx_s]).1), (0, 5));
    // b.txt changes: the steps before it stay cached, it and everything after run.
    std::fs::write(c.join("b.txt"), "beta 2\n").unwrap();
    let (_, err) = build(&b, &["-t", "cached:2", ctx_s]);
    assert_eq!(counts(&err), (2, 3), "{err}");
    assert_eq!(b.ok(&["run", "--rm", "cached:2"]), "alpha\nbeta 2\n");
    // a.txt changes: everything from its COPY on.
    std::fs::write(c.join("a.txt"), "alpha 2\n").unwrap();
    assert_eq!(counts(&build(&b, &["-t", "cached:3", ctx_s]).1), (4, 1));
    assert_eq!(b.ok(&["run", "--rm", "cached:3"]), "alpha 2\nbeta 2\n");
    // A build arg used by a RUN is part of its key.
    write(c, "Dockerfile", "FROM bb:1\nARG N=1\nRUN echo $N > /n\n");
    assert_eq!(counts(&build(&b, &["-t", "argd", ctx_s]).1), (1, 0));
    assert_eq!(counts(&build(&b, &["-t", "argd", ctx_s]).1), (0, 1));
    assert_eq!(
        counts(&build(&b, &["-t", "argd", "--build-arg", "N=2", ctx_s]).1),
        (1, 0)
    );
    // --no-cache runs everything.
    assert_eq!(counts(&build(&b, &["-t", "argd", "--no-cache", ctx_s]).1), (1, 0));
    // The cache survives image removal, and builder prune empties it.
    b.ok(&["rmi", "cached:1", "cached:2", "cached:3", "argd"]);
    let out = b.ok(&["builder", "prune", "-f"]);
    assert!(out.contains("Deleted build cache objects"), "{out}");
    write(c, "Dockerfile", "FROM bb:1\nRUN echo one > /one\n");
    assert_eq!(counts(&build(&b, &["-t", "again", ctx_s]).1), (1, 0));
    no_mounts_under(b.root.path());
}

/// Every file in every layer of an image, as (path, content).
fn layer_contents(b: &Berth, image: &str) -> Vec<(String, Vec<u8>)> {
    let dir = TempDir::new("build-save");
    let tar = dir.path().join("img.tar");
    b.ok(&["save", "-o", tar.to_str().unwrap(), image]);
    let mut out = Vec::new();
    let mut outer = tar::Archive::new(std::fs::File::open(&tar).unwrap());
    for e in outer.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        out.push((name.clone(), data.clone()));
        // Layers (plain tars) are opened too.
        let mut inner = tar::Archive::new(&data[..]);
        if let Ok(entries) = inner.entries() {
            for f in entries.flatten() {
                let mut f = f;
                let p = f.path().map(|p| p.display().to_string()).unwrap_or_default();
                let mut d = Vec::new();
                let _ = std::io::Read::read_to_end(&mut f, &mut d);
                out.push((format!("{name}!{p}"), d));
            }
        }
    }
    out
}

#[test]
fn secrets_never_reach_layers_history_or_config() {
    berth_testutil::require_root!();
    let (b, _img) = with_busybox("build-secret");
    let ctx = TempDir::new("build-secret-ctx");
    let c = ctx.path();
    let secret = "s3cr3t-Value-9f8e7d";
    write(c, "pw.txt", secret);
    write(
        c,
        "Dockerfile",
        "FROM bb:1\nRUN --mount=type=secret,id=pw cut -c1-6 /run/secrets/pw > /pw-prefix && cat /run/secrets/pw | wc -c > /len\n\
RUN --mount=type=secret,id=tok,target=/etc/tok,required=true cut -c1-4 /etc/tok > /tok-prefix\nCMD [\"cat\", \"/len\", \"/tok-prefix\", \"/pw-prefix\"]\n",
    );
    let mut cmd = b.cmd(&[
        "build",
        "--progress",
        "plain",
        "--secret",
        &format!("id=pw,src={}", c.join("pw.txt").display()),
        "--secret",
        "id=tok,env=BUILD_TOKEN",
        "-t",
        "sec:1",
        c.to_str().unwrap(),
    ]);
    cmd.env("BUILD_TOKEN", "tokn-abcdef");
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(b.ok(&["run", "--rm", "sec:1"]), "19\ntokn\ns3cr3t\n");
    for (name, data) in layer_contents(&b, "sec:1") {
        let text = String::from_utf8_lossy(&data);
        assert!(
            !text.contains(secret) && !text.contains("tokn-abcdef"),
            "the secret is in {name}"
        );
        let inner = name
            .split_once('!')
            .map(|(_, p)| p.trim_start_matches("./"))
            .unwrap_or("");
        assert!(
            !inner.starts_with("run/secrets") && inner != "etc/tok",
            "a secret mount point is in a layer: {name}"
        );
    }
    let history = b.ok(&["history", "--no-trunc", "sec:1"]);
    let inspect = b.ok(&["image", "inspect", "sec:1"]);
    for t in [&history, &inspect] {
        assert!(!t.contains(secret) && !t.contains("tokn-abcdef"));
    }
    // A required secret that is not given fails a step that runs, naming it (a cached step
    // needs no secret, as in BuildKit).
    write(
        c,
        "Dockerfile",
        "FROM bb:1\nRUN --mount=type=secret,id=tok,required=true true\n",
    );
    let e = b.fails(&["build", "--progress", "plain", "-t", "sec:2", c.to_str().unwrap()]);
    assert!(e.contains("secret tok not found"), "{e}");
    no_mounts_under(b.root.path());
}

#[test]
fn stdin_context_outputs_and_flags() {
    berth_testutil::require_root!();
    let (b, _img) = with_busybox("build-stdin");
    let ctx = TempDir::new("build-stdin-ctx");
    let c = ctx.path();
    write(c, "hello.txt", "hi from a tar context\n");
    write(
        c,
        "docker/App.Dockerfile",
        "FROM bb:1\nCOPY hello.txt /\nLABEL from=file\n",
    );
    // A tar context on stdin, with -f naming a Dockerfile inside it.
    let tar = std::process::Command::new("tar")
        .args(["-c", "-C", c.to_str().unwrap(), "."])
        .output()
        .unwrap()
        .stdout;
    let dir = TempDir::new("build-stdin-out");
    let iid = dir.path().join("iid");
    let mut child = b
        .cmd(&[
            "build",
            "-q",
            "-f",
            "docker/App.Dockerfile",
            "--iidfile",
            iid.to_str().unwrap(),
            "--label",
            "extra=1",
            "-t",
            "stdin:1",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&tar).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "-q prints the id: {id:?}");
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id);
    let cfg = b.inspect("stdin:1");
    assert_eq!(cfg["Id"], Value::String(id));
    assert_eq!(cfg["Config"]["Labels"]["from"], "file");
    assert_eq!(cfg["Config"]["Labels"]["extra"], "1");
    assert_eq!(
        b.ok(&["run", "--rm", "stdin:1", "cat", "/hello.txt"]),
        "hi from a tar context\n"
    );
    // A lone Dockerfile on stdin: no context.
    let mut child = b
        .cmd(&["build", "-q", "-t", "stdin:2", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM bb:1\nRUN echo made > /made\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(b.ok(&["run", "--rm", "stdin:2", "cat", "/made"]), "made\n");
    // --output: the filesystem as a directory and as a tar.
    write(c, "Dockerfile", "FROM scratch\nCOPY hello.txt /out/\n");
    let local = dir.path().join("local");
    b.ok(&[
        "build",
        "-q",
        "--output",
        &format!("type=local,dest={}", local.display()),
        c.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(local.join("out/hello.txt")).unwrap(),
        "hi from a tar context\n"
    );
    let tarf = dir.path().join("o.tar");
    b.ok(&[
        "build",
        "-q",
        "-o",
        &format!("type=tar,dest={}", tarf.display()),
        c.to_str().unwrap(),
    ]);
    let listing = std::process::Command::new("tar")
        .args(["-tf", tarf.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listing.stdout).contains("out/hello.txt"));
    // RUN --network=none has only loopback.
    write(
        c,
        "Dockerfile",
        "FROM bb:1\nRUN --network=none ls /sys/class/net | tr '\\n' ' ' > /ifaces\n",
    );
    b.ok(&["build", "-q", "-t", "net:1", c.to_str().unwrap()]);
    assert_eq!(b.ok(&["run", "--rm", "net:1", "cat", "/ifaces"]), "lo ");
    // An unused build arg is reported.
    let o = b.out(&[
        "build",
        "--progress",
        "plain",
        "--build-arg",
        "NOPE=1",
        "-t",
        "net:2",
        c.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("[\"NOPE\"] were not consumed"));
}

#[test]
fn bad_dockerfiles_and_failing_steps_leave_nothing() {
    berth_testutil::require_root!();
    let (b, _img) = with_busybox("build-bad");
    let ctx = TempDir::new("build-bad-ctx");
    let c = ctx.path();
    let images_before = b.ok(&["images", "-aq"]);
    let cases: &[(&str, &str)] = &[
        (
            "FROM bb:1\nRUN echo ok\nCOPY --frm=x a b\n",
            "Dockerfile:3:6: unknown flag: --frm for COPY",
        ),
        ("FROM bb:1\nFOO bar\n", "Dockerfile:2:1: unknown instruction: FOO"),
        ("RUN echo before any FROM\n", "must come after a FROM"),
        (
            "FROM bb:1\nCOPY missing.txt /\n",
            "\"missing.txt\": not found in the build context",
        ),
        ("FROM bb:1\nRUN exit 3\n", "did not complete successfully: exit code: 3"),
        ("FROM bb:1\nCOPY --from=nostage /x /y\n", "nostage"),
        ("FROM bb:1 AS a\nFROM bb:1\nRUN true\n", ""),
    ];
    for (text, want) in cases {
        write(c, "Dockerfile", text);
        let o = b.out(&["build", "--progress", "plain", "-t", "bad:1", c.to_str().unwrap()]);
        if want.is_empty() {
            assert!(o.status.success());
            b.ok(&["rmi", "bad:1"]);
            continue;
        }
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{text:?}: {err}");
        assert!(err.contains(want), "{text:?}: want {want:?} in {err}");
    }
    assert_eq!(b.ok(&["images", "-aq"]), images_before, "a failed build left an image");
    b.fails(&["image", "inspect", "bad:1"]);
    let run = berth_engine::store::run_dir(b.root.path()).join("build");
    let left: Vec<_> = std::fs::read_dir(&run)
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "scratch left: {left:?}");
    no_mounts_under(b.root.path());
    assert_eq!(b.ok(&["ps", "-aq"]), "", "a step's container was left");
}

#[test]
fn lint_rules_text_json_and_check() {
    let b = Berth::new("build-lint");
    let dir = TempDir::new("build-lint-df");
    let bad = dir.path().join("Dockerfile");
    std::fs::write(
        &bad,
        "FROM debian\nMAINTAINER me\nRUN cd /tmp && apt-get install curl\nCMD ['app']\nEXPOSE 99999\nARG API_TOKEN=abc\n",
    )
    .unwrap();
    let o = b.out(&["lint", bad.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "errors make lint fail: {text}");
    for id in ["B001", "B003", "B006", "B011", "B013", "B015", "B016", "B018"] {
        assert!(text.contains(id), "{id} missing from:\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("{}:5 B016 error", bad.display()))),
        "{text}"
    );
    let o = b.out(&[
        "lint",
        "--format",
        "json",
        "--ignore",
        "B015,B016",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "only warnings left");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = v["findings"].as_array().unwrap();
    assert!(f
        .iter()
        .all(|x| x["rule"] != "B015" && x["rationale"].as_str().is_some_and(|r| !r.is_empty())));
    assert!(f
        .iter()
        .any(|x| x["rule"] == "B006" && x["line"] == 3 && x["severity"] == "warning"));
    // A clean file passes; a broken one is B000 with its position.
    std::fs::write(&bad, "FROM debian:12\nUSER 1000\nENTRYPOINT [\"app\"]\n").unwrap();
    assert!(b.ok(&["lint", bad.to_str().unwrap()]).contains("no problems found"));
    std::fs::write(&bad, "FROM debian:12\nRUN\n").unwrap();
    let o = b.out(&["lint", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("B000"));
    // build --check lints and builds nothing.
    std::fs::write(&bad, "FROM debian:latest\nCMD ['x']\n").unwrap();
    let o = b.out(&["build", "--check", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("B002"));
}

#[test]
fn config_instructions_onbuild_mounts_and_parallel_stages() {
    berth_testutil::require_root!();
    let (b, _img) = with_busybox("build-config");
    let ctx = TempDir::new("build-config-ctx");
    let c = ctx.path();
    write(c, "files/a.conf", "a\n");
    write(c, "files/b.conf", "b\n");
    write(c, "files/c.txt", "c\n");
    write(c, "data/x", "bound\n");
    write(c, "skipme", "x\n");
    // Beside the Dockerfile, its own ignore file wins over .dockerignore.
    write(c, "Custom.Dockerfile.dockerignore", "skipme\n");
    write(c, ".dockerignore", "files\n");
    // Archives in other compressions.
    let t = TempDir::new("build-config-tar");
    write(t.path(), "in-bz2", "bz2\n");
    write(t.path(), "in-xz", "xz\n");
    for (flag, name, file) in [("-cjf", "a.tar.bz2", "in-bz2"), ("-cJf", "a.tar.xz", "in-xz")] {
        let st = std::process::Command::new("tar")
            .args([
                flag,
                c.join(name).to_str().unwrap(),
                "-C",
                t.path().to_str().unwrap(),
                file,
            ])
            .status()
            .unwrap();
        assert!(st.success());
    }
    write(
        c,
        "base.Dockerfile",
        "FROM bb:1\nONBUILD RUN echo triggered > /onbuild\nCMD [\"from-base\"]\nSTOPSIGNAL SIGUSR1\n",
    );
    build(
        &b,
        &[
            "-f",
            c.join("base.Dockerfile").to_str().unwrap(),
            "-t",
            "obase:1",
            c.to_str().unwrap(),
        ],
    );
    write(
        c,
        "Custom.Dockerfile",
        r#"FROM bb:1 AS left
RUN --mount=type=cache,target=/sync,id=sync touch /sync/left; i=0; while [ ! -e /sync/right ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; test -e /sync/right && echo left > /left
FROM bb:1 AS right
RUN --mount=type=cache,target=/sync,id=sync touch /sync/right; i=0; while [ ! -e /sync/left ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; test -e /sync/left && echo right > /right

FROM obase:1
COPY --from=left /left /
COPY --from=right /right /
COPY --chmod=600 files/*.conf /etc/app/
ADD a.tar.bz2 a.tar.xz /unpacked/
RUN --mount=type=bind,source=data,target=/mnt/data cp /mnt/data/x /copied
RUN --mount=type=tmpfs,target=/scratch echo gone > /scratch/f && test -e /scratch/f
SHELL ["/bin/sh", "-ec"]
RUN test "$0" = /bin/sh && echo shell ok > /shell
VOLUME /data
HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD test -e /left
ENTRYPOINT ["sh"]
"#,
    );
    build(
        &b,
        &[
            "-f",
            c.join("Custom.Dockerfile").to_str().unwrap(),
            "-t",
            "cfg:1",
            c.to_str().unwrap(),
        ],
    );
    let out = b.ok(&[
        "run",
        "--rm",
        "cfg:1",
        "-c",
        "cat /onbuild /left /right /etc/app/a.conf /etc/app/b.conf /unpacked/in-bz2 /unpacked/in-xz /copied /shell; \
stat -c %a /etc/app/a.conf; ls /etc/app | tr '\\n' ' '; ls /scratch 2>&1 | wc -l; ls -d /mnt 2>/dev/null | wc -l",
    ]);
    assert_eq!(
        out,
        "triggered\nleft\nright\na\nb\nbz2\nxz\nbound\nshell ok\n600\na.conf b.conf 1\n0\n"
    );
    let cfg = &b.inspect("cfg:1")["Config"];
    // ENTRYPOINT resets the CMD inherited from the base; the triggers are consumed.
    assert!(cfg["Cmd"].is_null(), "{cfg}");
    assert!(
        cfg["OnBuild"].is_null() || cfg["OnBuild"] == serde_json::json!([]),
        "{cfg}"
    );
    assert_eq!(cfg["StopSignal"], "SIGUSR1");
    assert!(cfg["Volumes"]["/data"].is_object());
    assert_eq!(cfg["Shell"], serde_json::json!(["/bin/sh", "-ec"]));
    let hc = &cfg["Healthcheck"];
    assert_eq!(hc["Test"], serde_json::json!(["CMD-SHELL", "test -e /left"]));
    assert_eq!(hc["Interval"], 5_000_000_000u64);
    assert_eq!(hc["Timeout"], 2_000_000_000u64);
    assert_eq!(hc["Retries"], 4);
    let base = &b.inspect("obase:1")["Config"];
    assert_eq!(base["OnBuild"], serde_json::json!(["RUN echo triggered > /onbuild"]));
}

#[test]
fn add_from_a_url_with_a_checksum() {
    berth_testutil::require_root!();
    let (b, _img) = with_busybox("build-url");
    let srv = TempDir::new("build-url-srv");
    std::fs::write(srv.path().join("payload.txt"), "served over http\n").unwrap();
    // A web server on loopback only.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let server = std::process::Command::new("busybox")
        .args([
            "httpd",
            "-f",
            "-p",
            &format!("127.0.0.1:{port}"),
            "-h",
            srv.path().to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _kill = Kill(server);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let ctx = TempDir::new("build-url-ctx");
    let c = ctx.path();
    let sum = "sha256:".to_string()
        + String::from_utf8_lossy(
            &std::process::Command::new("sha256sum")
                .arg(srv.path().join("payload.txt"))
                .output()
                .unwrap()
                .stdout,
        )
        .split_whitespace()
        .next()
        .unwrap();
    write(
        c,
        "Dockerfile",
        &format!("FROM bb:1\nADD --checksum={sum} http://127.0.0.1:{port}/payload.txt /dl/\n"),
    );
    build(&b, &["-t", "url:1", c.to_str().unwrap()]);
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "url:1",
            "sh",
            "-c",
            "cat /dl/payload.txt; stat -c %a /dl/payload.txt"
        ]),
        "served over http\n600\n"
    );
    let bad = "sha256:".to_string() + &"0".repeat(64);
    write(
        c,
        "Dockerfile",
        &format!("FROM bb:1\nADD --checksum={bad} http://127.0.0.1:{port}/payload.txt /dl/\n"),
    );
    let e = b.fails(&["build", "--progress", "plain", "-t", "url:2", c.to_str().unwrap()]);
    assert!(e.contains("digest mismatch"), "{e}");
}

#[test]
fn symlinks_in_the_context_or_the_image_never_escape() {
    berth_testutil::require_root!();
    let (b, _img) = with_busybox("build-escape");
    let ctx = TempDir::new("build-escape-ctx");
    let c = ctx.path();
    let outside = TempDir::new("build-escape-outside");
    std::fs::write(outside.path().join("host-secret"), "host data\n").unwrap();
    // A context symlink to a host file is copied as a link; one to a host directory is
    // resolved inside the context (so it finds nothing).
    std::os::unix::fs::symlink(outside.path().join("host-secret"), c.join("leak")).unwrap();
    std::os::unix::fs::symlink(outside.path(), c.join("dirleak")).unwrap();
    write(c, "payload", "payload\n");
    write(c, "Dockerfile", "FROM bb:1\nCOPY leak /copied-leak\n");
    build(&b, &["-t", "esc:1", c.to_str().unwrap()]);
    let out = b.ok(&[
        "run",
        "--rm",
        "esc:1",
        "sh",
        "-c",
        "readlink /copied-leak; cat /copied-leak 2>&1 | grep -c 'host data'; true",
    ]);
    assert_eq!(out, format!("{}\n0\n", outside.path().join("host-secret").display()));
    write(c, "Dockerfile", "FROM bb:1\nCOPY dirleak/host-secret /x\n");
    let e = b.fails(&["build", "--progress", "plain", c.to_str().unwrap()]);
    assert!(e.contains("not found in the build context"), "{e}");
    // An image whose /target is a symlink to a host path: COPY into it stays in the rootfs.
    let target = outside.path().join("written-by-build");
    write(
        c,
        "Dockerfile",
        &format!("FROM bb:1\nRUN ln -s {} /target && mkdir -p /etc/x && ln -s / /etc/x/up\nCOPY payload /target/p\nCOPY payload /etc/x/up{}/q\n", outside.path().display(), outside.path().display()),
    );
    build(&b, &["-t", "esc:2", c.to_str().unwrap()]);
    assert!(
        !target.exists() && !outside.path().join("p").exists() && !outside.path().join("q").exists(),
        "a COPY wrote outside the rootfs"
    );
    let out = b.ok(&[
        "run",
        "--rm",
        "esc:2",
        "sh",
        "-c",
        &format!("cat {0}/p {0}/q", outside.path().display()),
    ]);
    assert_eq!(out, "payload\npayload\n");
    // ADD of a hostile archive (an entry climbing out with ..) stays inside too.
    let tarf = c.join("evil.tar");
    {
        let mut ar = tar::Builder::new(std::fs::File::create(&tarf).unwrap());
        let data = b"evil\n";
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        let name = format!("../../../../../../{}/evil", outside.path().display());
        let bytes = name.as_bytes();
        h.as_gnu_mut().unwrap().name[..bytes.len()].copy_from_slice(bytes);
        h.set_cksum();
        ar.append(&h, &data[..]).unwrap();
        ar.finish().unwrap();
    }
    write(c, "Dockerfile", "FROM bb:1\nADD evil.tar /unpacked/\n");
    build(&b, &["-t", "esc:3", c.to_str().unwrap()]);
    assert!(!outside.path().join("evil").exists(), "ADD wrote outside the rootfs");
    let out = b.ok(&[
        "run",
        "--rm",
        "esc:3",
        "sh",
        "-c",
        &format!("cat /unpacked{}/evil", outside.path().display()),
    ]);
    assert_eq!(out, "evil\n");
}
