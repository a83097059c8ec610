//! The executor's Arrow Flight service (shuffle and result fetches), behind the cluster token
//! when there is one.

use std::sync::Arc;

use arrow_flight::flight_service_server::FlightServiceServer;
use ballista_core::error::BallistaError;
use ballista_core::utils::create_grpc_server;
use ballista_executor::ArrowFlightServerProvider;
use ballista_executor::flight_service::BallistaFlightService;
use pickleball_codec::session::GRPC_MAX_MESSAGE_BYTES;
use pickleball_codec::token::{AUTHORIZATION, ClusterToken, REFUSED, USER_AGENT};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Status};

/// Ballista's Flight service serving the shuffle files under `work_dir`, admitting only calls
/// that carry `token` (all calls without one).
pub(crate) fn flight_service(
    work_dir: String,
    token: Option<ClusterToken>,
) -> InterceptedService<FlightServiceServer<BallistaFlightService>, TokenCheck> {
    let flight = FlightServiceServer::new(BallistaFlightService::new(work_dir))
        .max_decoding_message_size(GRPC_MAX_MESSAGE_BYTES)
        .max_encoding_message_size(GRPC_MAX_MESSAGE_BYTES);
    InterceptedService::new(flight, TokenCheck(token))
}

/// Admits calls that carry the token (all calls when there is none).
#[derive(Clone)]
pub(crate) struct TokenCheck(Option<ClusterToken>);

impl Interceptor for TokenCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        admit(self.0.as_ref(), request)
    }
}

/// The executor's Flight server, as Ballista would start it, behind `token`.
pub(crate) fn token_checked_flight(token: ClusterToken) -> Arc<ArrowFlightServerProvider> {
    Arc::new(move |work_dir, address, mut shutdown, grpc_config| {
        let service = flight_service(work_dir, Some(token.clone()));
        tokio::spawn(async move {
            log::info!("Arrow Flight service on {address} (token required)");
            create_grpc_server(&grpc_config)
                .add_service(service)
                .serve_with_shutdown(address, shutdown.recv())
                .await
                .map_err(BallistaError::TonicError)
        })
    })
}

/// Passes `request` on if it carries `token`, or if there is no token.
fn admit(token: Option<&ClusterToken>, request: Request<()>) -> Result<Request<()>, Status> {
    let Some(token) = token else {
        return Ok(request);
    };
    let metadata = request.metadata();
    let header = |name: &str| metadata.get(name).map(|v| v.as_bytes());
    if token.admits(header(AUTHORIZATION), header(USER_AGENT)) {
        Ok(request)
    } else {
        log::warn!("refused a Flight call without the cluster token");
        Err(Status::unauthenticated(REFUSED))
    }
}
