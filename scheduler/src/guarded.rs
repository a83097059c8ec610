//! Serving a scheduler that requires the cluster token.
//!
//! Ballista's `start_grpc_service_with_listener` mounts its routes with no place for a check,
//! so a token-guarded scheduler mounts the same services itself: the scheduler's gRPC API
//! and the REST API behind the token check, the `/healthz` and `/readyz` probes (which reveal
//! nothing and are polled by orchestrators that hold no token) in front of it. The embedded
//! Flight proxy and Flight SQL are not mounted: results are fetched from the executors.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ballista_core::error::{BallistaError, Result};
use ballista_core::serde::protobuf::scheduler_grpc_server::SchedulerGrpcServer;
use ballista_scheduler::scheduler_server::SchedulerServer;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use pickleball_codec::token::{AUTHORIZATION, ClusterToken, REFUSED, USER_AGENT};
use tokio::net::TcpListener;
use tonic::service::RoutesBuilder;

type Scheduler = SchedulerServer<LogicalPlanNode, PhysicalPlanNode>;

/// Serves `scheduler` on `listener`, admitting only requests that carry `token`.
pub(crate) async fn serve_with_token(
    listener: TcpListener,
    scheduler: Scheduler,
    token: ClusterToken,
) -> Result<()> {
    let config = scheduler.state.config.clone();
    let grpc = SchedulerGrpcServer::new(scheduler.clone())
        .max_encoding_message_size(config.grpc_server_max_encoding_message_size as usize)
        .max_decoding_message_size(config.grpc_server_max_decoding_message_size as usize);
    let mut routes = RoutesBuilder::default();
    routes.add_service(grpc);
    let scheduler = Arc::new(scheduler);
    let guarded = ballista_scheduler::api::get_routes(scheduler.clone())
        .merge(routes.routes().into_axum_router())
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(token),
            require_token,
        ));
    let probes = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(scheduler);
    let app = probes
        .merge(guarded)
        .into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .await
        .map_err(BallistaError::from)
}

/// Passes requests carrying the token on; refuses the others, as a gRPC `Unauthenticated`
/// status for gRPC calls (so clients show the message) and a 401 for the REST API.
async fn require_token(
    State(token): State<Arc<ClusterToken>>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let header = |name: &str| headers.get(name).map(|v| v.as_bytes());
    if token.admits(header(AUTHORIZATION), header(USER_AGENT)) {
        return next.run(request).await;
    }
    let grpc = headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    log::warn!(
        "refused a {} request to {} without the cluster token",
        if grpc { "gRPC" } else { "REST" },
        request.uri().path()
    );
    if grpc {
        tonic::Status::unauthenticated(REFUSED)
            .into_http::<axum::body::Body>()
            .into_response()
    } else {
        (StatusCode::UNAUTHORIZED, format!("{REFUSED}\n")).into_response()
    }
}

/// Ballista's readiness probe: 200 once enough executors registered, else 503.
async fn readyz(State(scheduler): State<Arc<Scheduler>>) -> Response {
    if scheduler.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}
