//! `bench/cri.sh`'s client: drives any CRI server (berth's, containerd's) through the
//! project's own client.
//!
//! `cri_bench ENDPOINT IMAGE RUNS PARALLEL HOLD_FILE`:
//! 1. RUNS times, one after another: RunPodSandbox, CreateContainer, StartContainer,
//!    StopContainer, RemoveContainer, StopPodSandbox, RemovePodSandbox; prints the median
//!    and the spread in milliseconds.
//! 2. PARALLEL pods brought up at once (sandbox, container, start); prints the wall time,
//!    then `up`, and waits until HOLD_FILE exists (the script measures memory meanwhile);
//!    then takes them all down at once and prints that wall time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use berth_cri::client::{connect, cri, Client};

fn sandbox(name: &str) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "bench".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: format!("/tmp/cri-bench-logs/{name}"),
        linux: Some(cri::LinuxPodSandboxConfig::default()),
        ..Default::default()
    }
}

fn container(image: &str) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: "main".into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        command: vec!["sleep".into(), "300".into()],
        log_path: "main.log".into(),
        linux: Some(cri::LinuxContainerConfig::default()),
        ..Default::default()
    }
}

/// The time each step of a cycle took, in milliseconds, in the order of [`STEPS`].
type Steps = Vec<f64>;

/// The steps of one pod's cycle.
const STEPS: [&str; 7] = [
    "RunPodSandbox",
    "CreateContainer",
    "StartContainer",
    "StopContainer",
    "RemoveContainer",
    "StopPodSandbox",
    "RemovePodSandbox",
];

/// Brings one pod up; returns its sandbox and container ids.
async fn up(c: &mut Client, name: &str, image: &str) -> (String, String) {
    up_timed(c, name, image, &mut Vec::new()).await
}

async fn up_timed(c: &mut Client, name: &str, image: &str, steps: &mut Steps) -> (String, String) {
    let mut t = Instant::now();
    let mut lap = |steps: &mut Steps| {
        steps.push(ms(t.elapsed()));
        t = Instant::now();
    };
    let config = sandbox(name);
    let sid = c
        .runtime
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .expect("RunPodSandbox")
        .into_inner()
        .pod_sandbox_id;
    lap(steps);
    let cid = c
        .runtime
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: sid.clone(),
            config: Some(container(image)),
            sandbox_config: Some(config),
        })
        .await
        .expect("CreateContainer")
        .into_inner()
        .container_id;
    lap(steps);
    c.runtime
        .start_container(cri::StartContainerRequest {
            container_id: cid.clone(),
        })
        .await
        .expect("StartContainer");
    lap(steps);
    (sid, cid)
}

/// Takes one pod down.
async fn down(c: &mut Client, sid: String, cid: String) {
    down_timed(c, sid, cid, &mut Vec::new()).await;
}

async fn down_timed(c: &mut Client, sid: String, cid: String, steps: &mut Steps) {
    let mut t = Instant::now();
    let mut lap = |steps: &mut Steps| {
        steps.push(ms(t.elapsed()));
        t = Instant::now();
    };
    c.runtime
        .stop_container(cri::StopContainerRequest {
            container_id: cid.clone(),
            timeout: 0,
        })
        .await
        .expect("StopContainer");
    lap(steps);
    c.runtime
        .remove_container(cri::RemoveContainerRequest { container_id: cid })
        .await
        .expect("RemoveContainer");
    lap(steps);
    c.runtime
        .stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: sid.clone(),
        })
        .await
        .expect("StopPodSandbox");
    lap(steps);
    c.runtime
        .remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: sid })
        .await
        .expect("RemovePodSandbox");
    lap(steps);
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, endpoint, image, runs, parallel, hold] = &args[..] else {
        eprintln!("usage: cri_bench ENDPOINT IMAGE RUNS PARALLEL HOLD_FILE");
        std::process::exit(2);
    };
    let runs: usize = runs.parse().expect("RUNS");
    let parallel: usize = parallel.parse().expect("PARALLEL");
    let client = connect(std::path::Path::new(endpoint)).await.expect("connecting");

    let mut times = Vec::new();
    let mut per_step: Vec<Vec<f64>> = vec![Vec::new(); STEPS.len()];
    for i in 0..runs {
        let mut c = client.clone();
        let mut steps = Vec::new();
        let t = Instant::now();
        let (sid, cid) = up_timed(&mut c, &format!("cycle-{i}"), image, &mut steps).await;
        down_timed(&mut c, sid, cid, &mut steps).await;
        times.push(ms(t.elapsed()));
        for (k, v) in steps.into_iter().enumerate() {
            per_step[k].push(v);
        }
    }
    let parts: Vec<String> = STEPS
        .iter()
        .zip(per_step.iter_mut())
        .map(|(name, v)| format!("{name} {:.1}", median(v)))
        .collect();
    println!("cycle steps (medians, ms): {}", parts.join(", "));
    times.sort_by(f64::total_cmp);
    if let (Some(first), Some(last)) = (times.first(), times.last()) {
        println!(
            "cycle median {:.1} ms (min {first:.1}, max {last:.1}, {runs} runs)",
            times[times.len() / 2]
        );
    }

    let t = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..parallel {
        let mut c = client.clone();
        let image = image.clone();
        tasks.push(tokio::spawn(
            async move { up(&mut c, &format!("many-{i}"), &image).await },
        ));
    }
    let mut pods = Vec::new();
    for task in tasks {
        pods.push(task.await.expect("a pod's task"));
    }
    println!("{parallel} pods up at once in {:.1} ms", ms(t.elapsed()));
    println!("up");
    while !std::path::Path::new(hold).exists() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t = Instant::now();
    let mut tasks = Vec::new();
    for (sid, cid) in pods {
        let mut c = client.clone();
        tasks.push(tokio::spawn(async move { down(&mut c, sid, cid).await }));
    }
    for task in tasks {
        task.await.expect("a pod's task");
    }
    println!("{parallel} pods down at once in {:.1} ms", ms(t.elapsed()));
}
