//! Attaching, terminals and the rest of `run`'s process options end to end: `-i` stdin,
//! `-t` with a real pty driven from a pty the test owns (size, resize, detach keys),
//! `attach`, `start -ai`, `--sig-proxy`, `exec -it`, `restart`, `--init`, `--log-opt`,
//! and external OCI runtimes through `--runtime`.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_testutil::require_root;

use crate::containers::{inspect, with_busybox};
use crate::images::Berth;

/// A berth command whose stdio is the slave of a pty this test holds the master of.
struct Pty {
    master: OwnedFd,
    child: Child,
    seen: String,
}

impl Pty {
    fn spawn(b: &Berth, args: &[&str], rows: u16, cols: u16) -> Pty {
        let ws = nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let p = nix::pty::openpty(Some(&ws), None).unwrap();
        let mut c = b.cmd(args);
        c.stdin(Stdio::from(p.slave.try_clone().unwrap()))
            .stdout(Stdio::from(p.slave.try_clone().unwrap()))
            .stderr(Stdio::from(p.slave.try_clone().unwrap()));
        // SAFETY: only async-signal-safe calls between fork and exec: a new session whose
        // controlling terminal is the pty on stdin.
        unsafe {
            c.pre_exec(|| {
                libc::setsid();
                libc::ioctl(0, libc::TIOCSCTTY, 0);
                Ok(())
            });
        }
        let child = c.spawn().unwrap();
        drop(p.slave);
        nix::fcntl::fcntl(&p.master, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK)).unwrap();
        Pty {
            master: p.master,
            child,
            seen: String::new(),
        }
    }

    fn write(&self, s: &[u8]) {
        nix::unistd::write(&self.master, s).unwrap();
    }

    /// Reads until `needle` has appeared in what was read since the last call.
    fn expect(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        loop {
            if let Some(i) = self.seen.find(needle) {
                self.seen.drain(..i + needle.len());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} never appeared; got {:?}",
                self.seen
            );
            let mut fds = [nix::poll::PollFd::new(
                self.master.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16));
            if let Ok(n) = nix::unistd::read(&self.master, &mut buf) {
                self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    }

    fn resize(&self, rows: u16, cols: u16) {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a valid winsize; the kernel signals the foreground group.
        let rc = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        assert_eq!(rc, 0);
    }

    fn wait(mut self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        loop {
            // Keep draining, so the child never blocks on a full pty.
            let _ = nix::unistd::read(&self.master, &mut buf);
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "berth did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn wait_running(b: &Berth, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    // The container may not exist yet: its `run` was only just spawned.
    let running = || {
        let o = b.out(&["inspect", "-f", "{{.State.Running}}", name]);
        String::from_utf8_lossy(&o.stdout).trim() == "true"
    };
    while !running() {
        assert!(Instant::now() < deadline, "{name} never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn stdin_attach_start_ai_and_signal_proxy() {
    require_root!();
    let (b, _d) = with_busybox("stdin");
    // run -i: our stdin reaches the container, and its end closes the container's stdin.
    let mut c = b.cmd(&["run", "--rm", "-i", "bb:1", "sh", "-c", "cat; echo done"]);
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"line one\nline two\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout), "line one\nline two\ndone\n");
    // Without -i the container's stdin is empty, whatever ours holds.
    let mut c = b.cmd(&["run", "--rm", "bb:1", "sh", "-c", "cat; echo end"]);
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"ignored\n").unwrap();
    assert_eq!(
        String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout),
        "end\n"
    );

    // create -i, then start -ai, twice: each start reads its own input and exits with the
    // container's code.
    b.ok(&[
        "create",
        "-i",
        "--name",
        "reader",
        "bb:1",
        "sh",
        "-c",
        "read x; echo got $x; exit 4",
    ]);
    for word in ["first", "second"] {
        let mut child = b
            .cmd(&["start", "-ai", "reader"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{word}\n").as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(4));
        assert_eq!(String::from_utf8_lossy(&o.stdout), format!("got {word}\n"));
    }
    // attach follows a running container's output to its end and takes its code.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "later",
        "bb:1",
        "sh",
        "-c",
        "sleep 1; echo late; echo errline >&2; exit 6",
    ]);
    let o = b.out(&["attach", "later"]);
    assert_eq!(o.status.code(), Some(6));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "late\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "errline\n");
    // Attaching to a stopped container is refused, as Docker does.
    let o = b.out(&["attach", "later"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("You cannot attach to a stopped container"));
    assert_eq!(b.out(&["start", "-a", "later", "reader"]).status.code(), Some(125));

    // --sig-proxy (on by default): a SIGTERM to the foreground berth reaches the container.
    let child = b
        .cmd(&[
            "run",
            "--name",
            "proxied",
            "bb:1",
            "sh",
            "-c",
            "trap 'echo got TERM; exit 4' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_running(&b, "proxied");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.ok(&["logs", "proxied"]).contains("ready") {
        assert!(Instant::now() < deadline, "the trap was never set");
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "ready\ngot TERM\n");
    b.ok(&["rm", "-f", "reader", "later", "proxied"]);
}

#[test]
fn terminals_resize_detach_and_exec_it() {
    require_root!();
    let (b, _d) = with_busybox("tty");
    // run -it: a real terminal of our size, following our resizes; the exit code comes back.
    let mut p = Pty::spawn(&b, &["run", "--rm", "-it", "bb:1", "sh"], 30, 100);
    p.write(b"stty size; tty\n");
    p.expect("30 100");
    p.expect("/dev/pts/0");
    p.resize(50, 132);
    std::thread::sleep(Duration::from_millis(300));
    p.write(b"stty size\n");
    p.expect("50 132");
    p.write(b"exit 7\n");
    assert_eq!(p.wait(), 7);

    // Detach with ctrl-p ctrl-q: berth returns 0 and the container runs on; attach again.
    let mut p = Pty::spawn(&b, &["run", "-it", "--name", "shell", "bb:1", "sh"], 24, 80);
    p.write(b"echo attached-$((40+2))\n");
    p.expect("attached-42");
    p.write(&[0x10, 0x11]);
    assert_eq!(p.wait(), 0);
    assert_eq!(inspect(&b, "shell")["State"]["Running"], true);
    assert_eq!(inspect(&b, "shell")["Config"]["Tty"], true);
    // exec -it gets a terminal of its own, sized like ours.
    let mut p = Pty::spawn(
        &b,
        &["exec", "-it", "shell", "sh", "-c", "tty; stty size; exit 3"],
        33,
        90,
    );
    p.expect("/dev/pts/");
    p.expect("33 90");
    assert_eq!(p.wait(), 3);
    // exec -t without -i: output, no input.
    let o = b.out(&["exec", "-t", "shell", "sh", "-c", "test -t 1 && echo is-a-tty"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("is-a-tty"));
    // -it without a terminal is refused as Docker does.
    let o = b.out(&["exec", "-it", "shell", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("the input device is not a TTY"));
    let mut p = Pty::spawn(&b, &["attach", "shell"], 24, 80);
    p.write(b"echo again-$((1+1))\n");
    p.expect("again-2");
    p.write(b"exit 3\n");
    assert_eq!(p.wait(), 3);
    assert_eq!(inspect(&b, "shell")["State"]["ExitCode"], 3);
    // The terminal's output is in the log too.
    assert!(b.ok(&["logs", "shell"]).contains("attached-42"));
    b.ok(&["rm", "shell"]);
}

#[test]
fn restart_init_and_log_opts() {
    require_root!();
    let (b, _d) = with_busybox("init");
    // restart: stopped (TERM, then KILL after -t) and started again.
    b.ok(&["run", "-d", "--name", "svc", "bb:1", "sleep", "300"]);
    let first = inspect(&b, "svc")["State"]["StartedAt"].clone();
    let first_pid = inspect(&b, "svc")["State"]["Pid"].clone();
    assert_eq!(b.ok(&["restart", "-t", "1", "svc"]), "svc\n");
    let st = inspect(&b, "svc")["State"].clone();
    assert_eq!(st["Running"], true);
    assert_ne!(st["StartedAt"], first);
    assert_ne!(st["Pid"], first_pid);
    b.ok(&["rm", "-f", "svc"]);

    // Without --init, PID 1 (here sleep) leaves orphans unreaped and ignores SIGTERM.
    let orphan = "sh -c 'sleep 0.1 &'; exec sleep 300";
    b.ok(&["run", "-d", "--name", "plain", "bb:1", "sh", "-c", orphan]);
    b.ok(&["run", "-d", "--init", "--name", "inited", "bb:1", "sh", "-c", orphan]);
    std::thread::sleep(Duration::from_millis(800));
    let zombies = |name: &str| {
        b.ok(&["exec", name, "ps", "-o", "stat"])
            .lines()
            .filter(|l| l.trim_start().starts_with('Z'))
            .count()
    };
    assert_eq!(zombies("plain"), 1, "no init: the orphan stays a zombie");
    assert_eq!(zombies("inited"), 0, "--init reaps it");
    let ps = b.ok(&["exec", "inited", "ps", "-o", "pid,comm"]);
    assert!(
        ps.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "berth-init"]),
        "{ps}"
    );
    // Its command line shows nothing of the host (the monitor's argv, the data root).
    let cmdline = b.ok(&["exec", "inited", "cat", "/proc/1/cmdline"]);
    assert_eq!(cmdline.trim_end_matches('\0'), "berth-init", "{cmdline:?}");
    assert_eq!(inspect(&b, "inited")["HostConfig"]["Init"], true);
    // The init passes SIGTERM on: the command ends by it (143), not by the SIGKILL (137).
    b.ok(&["stop", "-t", "5", "inited"]);
    assert_eq!(inspect(&b, "inited")["State"]["ExitCode"], 143);
    b.ok(&["stop", "-t", "1", "plain"]);
    assert_eq!(inspect(&b, "plain")["State"]["ExitCode"], 137);
    // Exit codes and start failures come through the init unchanged.
    assert_eq!(
        b.out(&["run", "--rm", "--init", "bb:1", "sh", "-c", "exit 5"])
            .status
            .code(),
        Some(5)
    );
    assert_eq!(
        b.out(&["run", "--rm", "--init", "bb:1", "nosuch"]).status.code(),
        Some(127)
    );
    // The same init as a binary (what external runtimes run): berth invoked as berth-init.
    let dir = berth_testutil::TempDir::new("init-bin");
    let link = dir.path().join("berth-init");
    std::os::unix::fs::symlink(crate::berth_bin(), &link).unwrap();
    let o = Command::new(&link).args(["--", "sh", "-c", "exit 9"]).output().unwrap();
    assert_eq!(o.status.code(), Some(9));
    b.ok(&["rm", "-f", "plain", "inited"]);

    // --log-opt: rotation at max-size, max-file files kept.
    b.ok(&[
        "run",
        "--name",
        "chatty",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=2",
        "bb:1",
        "sh",
        "-c",
        "i=0; while [ $i -lt 400 ]; do echo line-$i; i=$((i+1)); done",
    ]);
    let dir = b
        .root
        .path()
        .join("containers")
        .join(inspect(&b, "chatty")["Id"].as_str().unwrap());
    let mut logs: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("json.log"))
        .collect();
    logs.sort();
    assert_eq!(logs, ["json.log", "json.log.1"]);
    for l in &logs {
        assert!(
            std::fs::metadata(dir.join(l)).unwrap().len() <= 2048 + 200,
            "{l} is over max-size"
        );
    }
    let out = b.ok(&["logs", "chatty"]);
    assert!(
        out.ends_with("line-399\n") && !out.contains("line-0\n"),
        "older lines rotated away"
    );
    let lc = inspect(&b, "chatty")["HostConfig"]["LogConfig"].clone();
    assert_eq!(lc["Config"]["max-size"], "2k");
    assert_eq!(lc["Config"]["max-file"], "2");
    b.ok(&["rm", "chatty"]);
    for bad in ["max-size=0", "max-file=0", "nonsense=1", "max-size"] {
        let o = b.out(&["run", "--rm", "--log-opt", bad, "bb:1", "true"]);
        assert_eq!(o.status.code(), Some(125), "{bad}");
    }
    assert_eq!(b.ok(&["ps", "-aq"]), "", "bad options made nothing");
}

#[test]
fn external_runtimes_take_the_same_path() {
    require_root!();
    let (b, _d) = with_busybox("ext-rt");
    let o = b.out(&[
        "run",
        "--rm",
        "--runtime",
        "runc",
        "bb:1",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
    // Stdin and a terminal (runc hands the pty over its console socket).
    let mut child = b
        .cmd(&["run", "--rm", "-i", "--runtime", "runc", "bb:1", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"via runc\n").unwrap();
    assert_eq!(
        String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout),
        "via runc\n"
    );
    let mut p = Pty::spawn(&b, &["run", "--rm", "-it", "--runtime", "runc", "bb:1", "sh"], 27, 85);
    p.write(b"stty size\n");
    p.expect("27 85");
    p.write(b"exit 2\n");
    assert_eq!(p.wait(), 2);
    // Detached: exec, limits in its cgroup, stats, top, pause, stop, rm.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "viarunc",
        "--runtime",
        "runc",
        "-m",
        "64m",
        "bb:1",
        "sleep",
        "300",
    ]);
    assert_eq!(inspect(&b, "viarunc")["HostConfig"]["Runtime"], "runc");
    assert_eq!(b.ok(&["exec", "viarunc", "echo", "exec-ok"]), "exec-ok\n");
    assert_eq!(b.out(&["exec", "viarunc", "sh", "-c", "exit 9"]).status.code(), Some(9));
    let limit = b.ok(&["exec", "viarunc", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]);
    assert_eq!(limit.trim(), (64u64 << 20).to_string());
    assert!(b.ok(&["stats", "--no-stream", "viarunc"]).contains("64MiB"));
    assert!(b.ok(&["top", "viarunc"]).contains("sleep 300"));
    b.ok(&["pause", "viarunc"]);
    assert_eq!(inspect(&b, "viarunc")["State"]["Status"], "paused");
    b.ok(&["unpause", "viarunc"]);
    b.ok(&["stop", "-t", "1", "viarunc"]);
    assert_eq!(inspect(&b, "viarunc")["State"]["ExitCode"], 137);
    b.ok(&["rm", "viarunc"]);
    // runc's state is gone with the container.
    let left = std::fs::read_dir(b.root.path().join("run/runtimes/runc"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0);
    // Unknown runtimes are refused before anything is made; --init needs a static berth
    // for an external runtime (the test build is dynamic) and says so.
    let o = b.out(&["run", "--rm", "--runtime", "no-such-runtime", "bb:1", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown or invalid runtime name: no-such-runtime"));
    let o = b.out(&["run", "--rm", "--init", "--runtime", "runc", "bb:1", "true"]);
    if o.status.success() {
        // A static build runs berth-init under runc too.
        assert!(crate::berth_bin().exists());
    } else {
        assert_eq!(o.status.code(), Some(125));
        assert!(String::from_utf8_lossy(&o.stderr).contains("statically linked"));
    }
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

#[test]
fn logs_options_env_files_signals_and_listing() {
    require_root!();
    let (b, d) = with_busybox("logs-opts");
    // Three lines a second apart; the log keeps their times.
    b.ok(&[
        "run",
        "--name",
        "talker",
        "bb:1",
        "sh",
        "-c",
        "echo one; sleep 1; echo two >&2; sleep 1; echo three",
    ]);
    assert_eq!(b.ok(&["logs", "--tail", "2", "talker"]), "three\n");
    let o = b.out(&["logs", "-n", "2", "talker"]);
    assert_eq!(String::from_utf8_lossy(&o.stderr), "two\n");
    let stamped = b.ok(&["logs", "-t", "talker"]);
    let (first_time, first_line) = stamped.lines().next().unwrap().split_once(' ').unwrap();
    assert_eq!(first_line, "one");
    assert!(first_time.ends_with('Z') && first_time.contains('T'), "{first_time}");
    // --since a moment after the first line: only the later ones; --until: only the first.
    let after_first = {
        let t = first_time.trim_end_matches('Z');
        let (secs, frac) = t.split_once('.').unwrap_or((t, "0"));
        format!("{secs}.{}Z", frac.chars().map(|_| '9').collect::<String>())
    };
    let o = b.out(&["logs", "--since", &after_first, "talker"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "three\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "two\n");
    assert_eq!(b.ok(&["logs", "--until", &after_first, "talker"]), "one\n");
    // logs -f follows a running container to its end.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "slow",
        "bb:1",
        "sh",
        "-c",
        "echo a; sleep 1; echo b",
    ]);
    assert_eq!(b.ok(&["logs", "-f", "slow"]), "a\nb\n");

    // --env-file and -e NAME (taken from our environment), merged over the image's Env.
    let envf = d.path().join("env.list");
    std::fs::write(&envf, "# comment\nFROM_FILE=file\nOVERRIDE=file\n").unwrap();
    let o = b
        .cmd(&[
            "run",
            "--rm",
            "--env-file",
            envf.to_str().unwrap(),
            "-e",
            "OVERRIDE=flag",
            "-e",
            "PASSED",
            "bb:1",
            "sh",
            "-c",
            "echo $FROM_FILE $OVERRIDE $PASSED $FROM_IMAGE",
        ])
        .env("PASSED", "through")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "file flag through yes\n");

    // --stop-signal and --stop-timeout; kill -s.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "usr1",
        "--stop-signal",
        "SIGUSR1",
        "bb:1",
        "sh",
        "-c",
        "trap 'exit 11' USR1; while true; do sleep 0.1; done",
    ]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        "--stop-timeout",
        "1",
        "bb:1",
        "sleep",
        "300",
    ]);
    // Started under nohup (SIGHUP ignored in berth): the container still gets the default
    // disposition, so its shell can trap HUP.
    let base = b.cmd(&[
        "run",
        "-d",
        "--name",
        "hup",
        "bb:1",
        "sh",
        "-c",
        "trap 'exit 12' HUP; while true; do sleep 0.1; done",
    ]);
    let mut c = Command::new("nohup");
    c.arg(base.get_program()).args(base.get_args());
    for (k, v) in base.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    let st = c
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(inspect(&b, "usr1")["Config"]["StopSignal"], "SIGUSR1");
    b.ok(&["stop", "usr1"]);
    assert_eq!(inspect(&b, "usr1")["State"]["ExitCode"], 11);
    let t = Instant::now();
    b.ok(&["stop", "stubborn"]);
    assert!(t.elapsed() < Duration::from_secs(8), "--stop-timeout 1 was not used");
    assert_eq!(inspect(&b, "stubborn")["State"]["ExitCode"], 137);
    b.ok(&["kill", "-s", "HUP", "hup"]);
    b.ok(&["wait", "hup"]);
    assert_eq!(inspect(&b, "hup")["State"]["ExitCode"], 12);

    // exec -d/-e/-w/-u.
    b.ok(&["run", "-d", "--name", "target", "bb:1", "sleep", "300"]);
    b.ok(&["exec", "-d", "target", "sh", "-c", "echo made > /tmp/bg"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.out(&["exec", "target", "cat", "/tmp/bg"]).stdout != b"made\n" {
        assert!(Instant::now() < deadline, "exec -d never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = b.ok(&[
        "exec",
        "-e",
        "X=1",
        "-w",
        "/tmp",
        "-u",
        "nobody",
        "target",
        "sh",
        "-c",
        "echo $X $(pwd) $(id -u)",
    ]);
    assert_eq!(o, "1 /tmp 65534\n");

    // ps: --no-trunc ids, -s sizes, and live stats redraw.
    let full = inspect(&b, "target")["Id"].as_str().unwrap().to_string();
    assert!(b.ok(&["ps", "--no-trunc"]).contains(&full));
    b.ok(&["exec", "target", "sh", "-c", "head -c 300000 /dev/zero > /fill"]);
    let sized = b.ok(&[
        "ps",
        "-s",
        "--filter",
        "name=target",
        "--format",
        "{{.Names}} {{.Size}}",
    ]);
    assert!(sized.starts_with("target 30") && sized.contains("virtual"), "{sized}");
    assert!(b.ok(&["ps", "-s"]).lines().next().unwrap().ends_with("SIZE"));
    let mut live = b.cmd(&["stats", "target"]).stdout(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    live.kill().unwrap();
    let out = String::from_utf8_lossy(&live.wait_with_output().unwrap().stdout).into_owned();
    assert!(out.matches("target").count() >= 2, "stats did not refresh: {out}");
    b.ok(&["rm", "-f", "talker", "slow", "usr1", "stubborn", "hup", "target"]);
}
