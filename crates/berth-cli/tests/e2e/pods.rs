//! Shared namespaces: `--pid`, `--ipc`, `--uts` and `--network container:X`, which pods
//! are made of.

use berth_testutil::require_root;

use crate::containers::with_busybox;

#[test]
fn pid_ipc_and_uts_namespaces_are_joined_from_another_container_or_the_host() {
    require_root!();
    let (b, _img) = with_busybox("nsmodes");
    b.ok(&[
        "run",
        "-d",
        "--name",
        "ns-holder",
        "--hostname",
        "holder",
        "bb:1",
        "sleep",
        "300",
    ]);
    let ns = |args: &[&str], which: &str| {
        let mut a = args.to_vec();
        a.extend_from_slice(&["readlink", which]);
        b.ok(&a).trim().to_string()
    };
    let held = |which: &str| ns(&["exec", "ns-holder"], which);
    let run = |flags: &[&str], which: &str| {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(flags);
        a.push("bb:1");
        ns(&a, which)
    };
    // Joined: the same namespace as the holder's; not joined: another one.
    for (flag, which) in [
        ("--pid", "/proc/self/ns/pid"),
        ("--ipc", "/proc/self/ns/ipc"),
        ("--uts", "/proc/self/ns/uts"),
    ] {
        if flag != "--uts" {
            assert_eq!(run(&[flag, "container:ns-holder"], which), held(which), "{flag}");
        }
        assert_ne!(run(&[], which), held(which), "{flag}");
        let host = std::fs::read_link(which).unwrap();
        assert_eq!(run(&[flag, "host"], which), host.display().to_string(), "{flag} host");
    }
    // In the holder's PID namespace its sleep is PID 1.
    let cmd = b.ok(&[
        "run",
        "--rm",
        "--pid",
        "container:ns-holder",
        "bb:1",
        "cat",
        "/proc/1/cmdline",
    ]);
    assert!(cmd.starts_with("sleep"), "{cmd:?}");
    // The holder's hostname through its UTS namespace, via the network mode's partner flag.
    let name = b.ok(&[
        "run",
        "--rm",
        "--uts",
        "container:ns-holder",
        "--network",
        "container:ns-holder",
        "bb:1",
        "hostname",
    ]);
    assert_eq!(name.trim(), "holder");
    let e = b.fails(&["run", "--rm", "--pid", "container:nosuch", "bb:1", "true"]);
    assert!(e.contains("nosuch"), "{e}");
    let e = b.fails(&["run", "--rm", "--ipc", "bogus", "bb:1", "true"]);
    assert!(e.contains("--ipc"), "{e}");
    b.ok(&["rm", "-f", "ns-holder"]);
}
