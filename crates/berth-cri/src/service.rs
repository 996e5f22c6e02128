//! The gRPC services: each RPC checks its request and runs the engine on the blocking pool.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_server::{ImageService, ImageServiceServer};
use k8s_cri::v1::runtime_service_server::{RuntimeService, RuntimeServiceServer};
use tonic::{Request, Response, Status};

use crate::{container, image, sandbox, stats, Cri};

/// The RuntimeService over a server's state.
#[derive(Debug, Clone)]
pub struct RuntimeServer(pub Arc<Cri>);

/// The ImageService over a server's state.
#[derive(Debug, Clone)]
pub struct ImageServer(pub Arc<Cri>);

pub(crate) fn runtime_server(cri: Arc<Cri>) -> RuntimeServiceServer<RuntimeServer> {
    RuntimeServiceServer::new(RuntimeServer(cri))
}

pub(crate) fn image_server(cri: Arc<Cri>) -> ImageServiceServer<ImageServer> {
    ImageServiceServer::new(ImageServer(cri))
}

type Res<T> = Result<Response<T>, Status>;

/// What `ExecSync` ran: its output and exit code.
async fn exec_sync(cri: &Arc<Cri>, req: cri::ExecSyncRequest) -> Result<cri::ExecSyncResponse, Status> {
    if req.cmd.is_empty() {
        return Err(Status::invalid_argument("ExecSync without a command"));
    }
    let id = req.container_id.clone();
    let id = cri
        .run(move |_, e, _| {
            let (r, _) = container::get(e, &id)?;
            if !e.state(&r.id).running() {
                return Err(Status::failed_precondition(format!(
                    "container {} is not running",
                    r.id
                )));
            }
            Ok(r.id)
        })
        .await?;
    let mut cmd = tokio::process::Command::new(&cri.opts.exe);
    cmd.arg("--root")
        .arg(&cri.opts.root)
        .arg("exec")
        .arg(&id)
        .args(&req.cmd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .map_err(|e| Status::internal(format!("starting exec in {id}: {e}")))?;
    let pid = child.id();
    let out = child.wait_with_output();
    let out = if req.timeout > 0 {
        let limit = Duration::from_secs(u64::try_from(req.timeout).unwrap_or(0));
        match tokio::time::timeout(limit, out).await {
            Ok(o) => o,
            Err(_) => {
                // The command in the container goes too, not only `berth exec`.
                if let Some(pid) = pid {
                    let _ = tokio::task::spawn_blocking(move || crate::proc::kill_tree(pid)).await;
                }
                return Err(Status::deadline_exceeded(format!(
                    "command {:?} in {id} timed out after {}s",
                    req.cmd, req.timeout
                )));
            }
        }
    } else {
        out.await
    };
    let out = out.map_err(|e| Status::internal(format!("exec in {id}: {e}")))?;
    Ok(cri::ExecSyncResponse {
        stdout: out.stdout,
        stderr: out.stderr,
        exit_code: out.status.code().unwrap_or(-1),
    })
}

#[tonic::async_trait]
impl RuntimeService for RuntimeServer {
    async fn version(&self, _req: Request<cri::VersionRequest>) -> Res<cri::VersionResponse> {
        Ok(Response::new(cri::VersionResponse {
            version: "0.1.0".into(),
            runtime_name: crate::RUNTIME_NAME.into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: crate::RUNTIME_API_VERSION.into(),
        }))
    }

    async fn run_pod_sandbox(&self, req: Request<cri::RunPodSandboxRequest>) -> Res<cri::RunPodSandboxResponse> {
        let req = req.into_inner();
        let id = self.0.run(move |c, e, s| sandbox::run(c, e, s, req)).await?;
        Ok(Response::new(cri::RunPodSandboxResponse { pod_sandbox_id: id }))
    }

    async fn stop_pod_sandbox(&self, req: Request<cri::StopPodSandboxRequest>) -> Res<cri::StopPodSandboxResponse> {
        let id = req.into_inner().pod_sandbox_id;
        self.0.run(move |c, e, _| sandbox::stop(c, e, &id)).await?;
        Ok(Response::new(cri::StopPodSandboxResponse {}))
    }

    async fn remove_pod_sandbox(
        &self,
        req: Request<cri::RemovePodSandboxRequest>,
    ) -> Res<cri::RemovePodSandboxResponse> {
        let id = req.into_inner().pod_sandbox_id;
        self.0.run(move |c, e, _| sandbox::remove(c, e, &id)).await?;
        Ok(Response::new(cri::RemovePodSandboxResponse {}))
    }

    async fn pod_sandbox_status(
        &self,
        req: Request<cri::PodSandboxStatusRequest>,
    ) -> Res<cri::PodSandboxStatusResponse> {
        let id = req.into_inner().pod_sandbox_id;
        let status = self.0.run(move |_, e, _| sandbox::status(e, &id)).await?;
        Ok(Response::new(cri::PodSandboxStatusResponse {
            status: Some(status),
            timestamp: crate::now_nanos(),
            ..Default::default()
        }))
    }

    async fn list_pod_sandbox(&self, req: Request<cri::ListPodSandboxRequest>) -> Res<cri::ListPodSandboxResponse> {
        let f = req.into_inner().filter;
        let items = self.0.run(move |_, e, _| sandbox::list(e, f.as_ref())).await?;
        Ok(Response::new(cri::ListPodSandboxResponse { items }))
    }

    async fn create_container(&self, req: Request<cri::CreateContainerRequest>) -> Res<cri::CreateContainerResponse> {
        let req = req.into_inner();
        let id = self.0.run(move |_, e, s| container::create(e, s, req)).await?;
        Ok(Response::new(cri::CreateContainerResponse { container_id: id }))
    }

    async fn start_container(&self, req: Request<cri::StartContainerRequest>) -> Res<cri::StartContainerResponse> {
        let id = req.into_inner().container_id;
        self.0.run(move |c, e, _| container::start(c, e, &id)).await?;
        Ok(Response::new(cri::StartContainerResponse {}))
    }

    async fn stop_container(&self, req: Request<cri::StopContainerRequest>) -> Res<cri::StopContainerResponse> {
        let req = req.into_inner();
        self.0
            .run(move |_, e, _| container::stop(e, &req.container_id, req.timeout))
            .await?;
        Ok(Response::new(cri::StopContainerResponse {}))
    }

    async fn remove_container(&self, req: Request<cri::RemoveContainerRequest>) -> Res<cri::RemoveContainerResponse> {
        let id = req.into_inner().container_id;
        self.0.run(move |_, e, _| container::remove(e, &id)).await?;
        Ok(Response::new(cri::RemoveContainerResponse {}))
    }

    async fn list_containers(&self, req: Request<cri::ListContainersRequest>) -> Res<cri::ListContainersResponse> {
        let f = req.into_inner().filter;
        let containers = self.0.run(move |_, e, _| container::list(e, f.as_ref())).await?;
        Ok(Response::new(cri::ListContainersResponse { containers }))
    }

    async fn container_status(&self, req: Request<cri::ContainerStatusRequest>) -> Res<cri::ContainerStatusResponse> {
        let id = req.into_inner().container_id;
        let status = self.0.run(move |_, e, _| container::status(e, &id)).await?;
        Ok(Response::new(cri::ContainerStatusResponse {
            status: Some(status),
            ..Default::default()
        }))
    }

    async fn update_container_resources(
        &self,
        req: Request<cri::UpdateContainerResourcesRequest>,
    ) -> Res<cri::UpdateContainerResourcesResponse> {
        let req = req.into_inner();
        self.0.run(move |_, e, _| container::update(e, &req)).await?;
        Ok(Response::new(cri::UpdateContainerResourcesResponse {}))
    }

    async fn reopen_container_log(
        &self,
        req: Request<cri::ReopenContainerLogRequest>,
    ) -> Res<cri::ReopenContainerLogResponse> {
        let id = req.into_inner().container_id;
        self.0.run(move |_, e, _| container::reopen_log(e, &id)).await?;
        Ok(Response::new(cri::ReopenContainerLogResponse {}))
    }

    async fn exec_sync(&self, req: Request<cri::ExecSyncRequest>) -> Res<cri::ExecSyncResponse> {
        Ok(Response::new(exec_sync(&self.0, req.into_inner()).await?))
    }

    async fn exec(&self, req: Request<cri::ExecRequest>) -> Res<cri::ExecResponse> {
        let req = req.into_inner();
        let url = self.0.run(move |c, e, _| crate::streaming::exec(c, e, req)).await?;
        Ok(Response::new(cri::ExecResponse { url }))
    }

    async fn attach(&self, req: Request<cri::AttachRequest>) -> Res<cri::AttachResponse> {
        let req = req.into_inner();
        let url = self.0.run(move |c, e, _| crate::streaming::attach(c, e, req)).await?;
        Ok(Response::new(cri::AttachResponse { url }))
    }

    async fn port_forward(&self, req: Request<cri::PortForwardRequest>) -> Res<cri::PortForwardResponse> {
        let req = req.into_inner();
        let url = self
            .0
            .run(move |c, e, _| crate::streaming::port_forward(c, e, req))
            .await?;
        Ok(Response::new(cri::PortForwardResponse { url }))
    }

    async fn container_stats(&self, req: Request<cri::ContainerStatsRequest>) -> Res<cri::ContainerStatsResponse> {
        let id = req.into_inner().container_id;
        let stats = self.0.run(move |_, e, _| stats::container(e, &id)).await?;
        Ok(Response::new(cri::ContainerStatsResponse { stats: Some(stats) }))
    }

    async fn list_container_stats(
        &self,
        req: Request<cri::ListContainerStatsRequest>,
    ) -> Res<cri::ListContainerStatsResponse> {
        let f = req.into_inner().filter;
        let stats = self.0.run(move |_, e, _| stats::containers(e, f.as_ref())).await?;
        Ok(Response::new(cri::ListContainerStatsResponse { stats }))
    }

    async fn pod_sandbox_stats(&self, req: Request<cri::PodSandboxStatsRequest>) -> Res<cri::PodSandboxStatsResponse> {
        let id = req.into_inner().pod_sandbox_id;
        let stats = self.0.run(move |_, e, _| stats::sandbox(e, &id)).await?;
        Ok(Response::new(cri::PodSandboxStatsResponse { stats: Some(stats) }))
    }

    async fn list_pod_sandbox_stats(
        &self,
        req: Request<cri::ListPodSandboxStatsRequest>,
    ) -> Res<cri::ListPodSandboxStatsResponse> {
        let f = req.into_inner().filter;
        let stats = self.0.run(move |_, e, _| stats::sandboxes(e, f.as_ref())).await?;
        Ok(Response::new(cri::ListPodSandboxStatsResponse { stats }))
    }

    async fn update_runtime_config(
        &self,
        _req: Request<cri::UpdateRuntimeConfigRequest>,
    ) -> Res<cri::UpdateRuntimeConfigResponse> {
        // The pod CIDR it carries is for CNI plugins that read it from the runtime; berth's
        // plugins take theirs from their own configuration, so there is nothing to change.
        Ok(Response::new(cri::UpdateRuntimeConfigResponse {}))
    }

    async fn status(&self, _req: Request<cri::StatusRequest>) -> Res<cri::StatusResponse> {
        let condition = |kind: &str| cri::RuntimeCondition {
            r#type: kind.to_string(),
            status: true,
            reason: String::new(),
            message: String::new(),
        };
        Ok(Response::new(cri::StatusResponse {
            status: Some(cri::RuntimeStatus {
                conditions: vec![condition("RuntimeReady"), condition("NetworkReady")],
            }),
            runtime_handlers: vec![cri::RuntimeHandler {
                name: String::new(),
                features: Some(cri::RuntimeHandlerFeatures {
                    recursive_read_only_mounts: true,
                    user_namespaces: false,
                }),
            }],
            features: Some(cri::RuntimeFeatures {
                supplemental_groups_policy: true,
            }),
            ..Default::default()
        }))
    }

    async fn checkpoint_container(
        &self,
        _req: Request<cri::CheckpointContainerRequest>,
    ) -> Res<cri::CheckpointContainerResponse> {
        Err(Status::unimplemented("berth does not checkpoint containers"))
    }

    type GetContainerEventsStream =
        Pin<Box<dyn tokio_stream::Stream<Item = Result<cri::ContainerEventResponse, Status>> + Send + 'static>>;

    async fn get_container_events(&self, _req: Request<cri::GetEventsRequest>) -> Res<Self::GetContainerEventsStream> {
        Ok(Response::new(Box::pin(crate::events::subscribe(&self.0).await?)))
    }

    async fn list_metric_descriptors(
        &self,
        _req: Request<cri::ListMetricDescriptorsRequest>,
    ) -> Res<cri::ListMetricDescriptorsResponse> {
        Ok(Response::new(cri::ListMetricDescriptorsResponse {
            descriptors: crate::metrics::descriptors(),
        }))
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _req: Request<cri::ListPodSandboxMetricsRequest>,
    ) -> Res<cri::ListPodSandboxMetricsResponse> {
        let pod_metrics = self.0.run(|_, e, _| crate::metrics::sandboxes(e)).await?;
        Ok(Response::new(cri::ListPodSandboxMetricsResponse { pod_metrics }))
    }

    async fn runtime_config(&self, _req: Request<cri::RuntimeConfigRequest>) -> Res<cri::RuntimeConfigResponse> {
        // berth writes cgroups itself (cgroupfs), never through systemd.
        Ok(Response::new(cri::RuntimeConfigResponse {
            linux: Some(cri::LinuxRuntimeConfiguration {
                cgroup_driver: cri::CgroupDriver::Cgroupfs as i32,
            }),
        }))
    }
}

#[tonic::async_trait]
impl ImageService for ImageServer {
    async fn list_images(&self, req: Request<cri::ListImagesRequest>) -> Res<cri::ListImagesResponse> {
        let f = req.into_inner().filter;
        let images = self.0.run(move |_, _, s| image::list(s, f.as_ref())).await?;
        Ok(Response::new(cri::ListImagesResponse { images }))
    }

    async fn image_status(&self, req: Request<cri::ImageStatusRequest>) -> Res<cri::ImageStatusResponse> {
        let spec = req.into_inner().image;
        let image = self.0.run(move |_, _, s| image::status(s, spec.as_ref())).await?;
        Ok(Response::new(cri::ImageStatusResponse {
            image,
            ..Default::default()
        }))
    }

    async fn pull_image(&self, req: Request<cri::PullImageRequest>) -> Res<cri::PullImageResponse> {
        let req = req.into_inner();
        let image_ref = self
            .0
            .run(move |c, _, s| image::pull(s, &req, &c.opts.registry_config))
            .await?;
        Ok(Response::new(cri::PullImageResponse { image_ref }))
    }

    async fn remove_image(&self, req: Request<cri::RemoveImageRequest>) -> Res<cri::RemoveImageResponse> {
        let spec = req.into_inner().image;
        self.0.run(move |_, e, s| image::remove(e, s, spec.as_ref())).await?;
        Ok(Response::new(cri::RemoveImageResponse {}))
    }

    async fn image_fs_info(&self, _req: Request<cri::ImageFsInfoRequest>) -> Res<cri::ImageFsInfoResponse> {
        Ok(Response::new(self.0.run(|_, _, s| image::fs_info(s)).await?))
    }
}
