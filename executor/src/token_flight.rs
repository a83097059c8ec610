//! The executor's Arrow Flight service (shuffle and result fetches) behind the cluster token.

use std::sync::Arc;

use arrow_flight::flight_service_server::FlightServiceServer;
use ballista_core::error::BallistaError;
use ballista_core::utils::create_grpc_server;
use ballista_executor::ArrowFlightServerProvider;
use ballista_executor::flight_service::BallistaFlightService;
use pickleball_codec::session::GRPC_MAX_MESSAGE_BYTES;
use pickleball_codec::token::{AUTHORIZATION, ClusterToken, REFUSED, USER_AGENT};
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Status};

/// Ballista's Flight service, as the executor would start it, admitting only calls that
/// carry `token`.
pub(crate) fn token_checked_flight(token: ClusterToken) -> Arc<ArrowFlightServerProvider> {
    Arc::new(move |work_dir, address, mut shutdown, grpc_config| {
        let token = token.clone();
        tokio::spawn(async move {
            let flight = FlightServiceServer::new(BallistaFlightService::new(work_dir))
                .max_decoding_message_size(GRPC_MAX_MESSAGE_BYTES)
                .max_encoding_message_size(GRPC_MAX_MESSAGE_BYTES);
            let checked = InterceptedService::new(flight, move |request| admit(&token, request));
            log::info!("Arrow Flight service on {address} (token required)");
            create_grpc_server(&grpc_config)
                .add_service(checked)
                .serve_with_shutdown(address, shutdown.recv())
                .await
                .map_err(BallistaError::TonicError)
        })
    })
}

/// Passes `request` on if it carries `token`.
fn admit(token: &ClusterToken, request: Request<()>) -> Result<Request<()>, Status> {
    let metadata = request.metadata();
    let header = |name: &str| metadata.get(name).map(|v| v.as_bytes());
    if token.admits(header(AUTHORIZATION), header(USER_AGENT)) {
        Ok(request)
    } else {
        log::warn!("refused a Flight call without the cluster token");
        Err(Status::unauthenticated(REFUSED))
    }
}
