//! The executor's own connections to its scheduler (besides Ballista's): where it is, with the
//! cluster token it requires.

use std::time::Duration;

use ballista_core::error::{BallistaError, Result};
use ballista_core::serde::protobuf::GetJobStatusParams;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use pickleball_codec::token::{ClusterToken, REFUSED};
use tonic::transport::{Channel, Endpoint};

/// How long each look at the scheduler may take before start-up fails.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// lack of one), instead of an executor that never gets work; and when this executor has
    /// a token the scheduler does not require (the cluster would be open to anyone, and the
    /// two would not agree on the scheduling policy). The first call carries no token, so a
    /// scheduler that admits anyone (perhaps not the cluster's) never sees the credential.
    pub async fn check_token(&self) -> Result<()> {
        let anonymous = SchedulerAddress::new(self.url.clone(), None);
        let open = !self.refuses(&anonymous).await?;
        let refused = || {
            BallistaError::Configuration(format!(
                "the scheduler at {} refused this executor: {}",
                self.url, REFUSED
            ))
        };
        match (&self.token, open) {
            (Some(_), true) => Err(BallistaError::Configuration(format!(
                "this executor has a cluster token but the scheduler at {} requires none: \
                 start the scheduler with the same PICKLEBALL_TOKEN, or this executor without \
                 one",
                self.url
            ))),
            (None, false) => Err(refused()),
            (Some(_), false) if self.refuses(self).await? => Err(refused()),
            _ => Ok(()),
        }
    }

    /// Whether the scheduler answers a call made as `caller` with `Unauthenticated`; fails
    /// if it does not answer within [`PROBE_TIMEOUT`].
    async fn refuses(&self, caller: &SchedulerAddress) -> Result<bool> {
        let probe = async {
            let mut client = caller
                .connect()
                .await
                .map_err(|e| BallistaError::GrpcConnectionError(format!("{}: {e}", self.url)))?;
            let params = GetJobStatusParams {
                job_id: "pickleball-token-check".into(),
            };
            Ok(matches!(
                client.get_job_status(params).await,
                Err(status) if status.code() == tonic::Code::Unauthenticated
            ))
        };
        tokio::time::timeout(PROBE_TIMEOUT, probe)
            .await
            .unwrap_or_else(|_| {
                Err(BallistaError::GrpcConnectionError(format!(
                    "the scheduler at {} did not answer within {PROBE_TIMEOUT:?}",
                    self.url
                )))
            })
    }
}
