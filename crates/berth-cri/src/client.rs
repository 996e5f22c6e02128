//! A client of the CRI over a unix socket (the k8s-cri crate's tonic clients): what the
//! project's tests and `bench/cri.sh` drive a CRI server with, berth's or containerd's.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

pub use k8s_cri::v1 as cri;

/// Both services over one connection.
#[derive(Debug, Clone)]
pub struct Client {
    /// The RuntimeService.
    pub runtime: RuntimeServiceClient<Channel>,
    /// The ImageService.
    pub images: ImageServiceClient<Channel>,
}

/// Connects to the CRI server on the unix socket `path` (a path, or `unix://PATH`).
pub async fn connect(path: &Path) -> Result<Client, tonic::transport::Error> {
    let p = path.to_string_lossy();
    let path = PathBuf::from(p.strip_prefix("unix://").unwrap_or(&p));
    // The URI is a placeholder: every connection goes to the socket.
    let channel = Endpoint::from_static("http://[::]:50051")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
        }))
        .await?;
    Ok(Client {
        runtime: RuntimeServiceClient::new(channel.clone()),
        images: ImageServiceClient::new(channel),
    })
}
