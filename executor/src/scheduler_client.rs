//! The executor's own connections to its scheduler (besides Ballista's): where it is, with the
//! cluster token it requires.

use ballista_core::error::{BallistaError, Result};
use ballista_core::serde::protobuf::GetJobStatusParams;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use pickleball_codec::token::ClusterToken;
use tonic::transport::{Channel, Endpoint};

/// A scheduler's gRPC address (`http://host:port`) and the token it requires, if any.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SchedulerAddress {
    /// `http://host:port`.
    pub url: String,
    /// Sent with every call when set.
    pub token: Option<ClusterToken>,
}

impl SchedulerAddress {
    /// The scheduler at `url`, called with `token`.
    pub fn new(url: impl Into<String>, token: Option<ClusterToken>) -> Self {
        Self {
            url: url.into(),
            token,
        }
    }

    /// A gRPC client of the scheduler that presents the token.
    pub async fn connect(&self) -> std::result::Result<SchedulerGrpcClient<Channel>, String> {
        let mut endpoint = Endpoint::from_shared(self.url.clone()).map_err(|e| e.to_string())?;
        if let Some(token) = &self.token {
            endpoint = endpoint
                .user_agent(token.user_agent())
                .map_err(|e| e.to_string())?;
        }
        let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
        Ok(SchedulerGrpcClient::new(channel))
    }

    /// Fails with a clear message when the scheduler refuses this executor's token (or its
    /// lack of one), instead of an executor that never gets work.
    pub async fn check_token(&self) -> Result<()> {
        let mut client = self
            .connect()
            .await
            .map_err(|e| BallistaError::GrpcConnectionError(format!("{}: {e}", self.url)))?;
        let probe = GetJobStatusParams {
            job_id: "pickleball-token-check".into(),
        };
        match client.get_job_status(probe).await {
            Err(status) if status.code() == tonic::Code::Unauthenticated => {
                Err(BallistaError::Configuration(format!(
                    "the scheduler at {} refused this executor: {}",
                    self.url,
                    status.message()
                )))
            }
            _ => Ok(()),
        }
    }
}
