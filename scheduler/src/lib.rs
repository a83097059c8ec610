//! pickleball's scheduler: a Ballista scheduler wired with pickleball's codecs.
//!
//! The scheduler splits plans into stages and re-encodes them for executors. It never runs
//! Python and never links CPython: everything it needs to read from a plan is in
//! [`pickleball_codec`].

use std::net::SocketAddr;
use std::sync::Arc;

use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::error::{BallistaError, Result};
use ballista_core::utils::default_session_builder;
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use pickleball_codec::session::{
    GRPC_MAX_MESSAGE_BYTES, parse_scheduling_policy, pickleball_session_config,
    with_pickleball_codecs,
};
use pickleball_codec::token::{ClusterToken, scheduling_policy};
use pickleball_codec::udf::{InlinePolicy, UdfDecoder};
use pickleball_codec::{PythonLogicalCodec, PythonPhysicalCodec};
use tokio::net::TcpListener;

mod guarded;
pub mod job_ids;

/// Command-line flags of `pickleball-scheduler` and `pickleball scheduler`.
///
/// Names mirror Ballista's scheduler; every flag can also be set with a `PICKLEBALL_*`
/// environment variable.
#[derive(clap::Args, Debug, Clone)]
pub struct SchedulerArgs {
    /// Local address to bind to.
    #[arg(long, env = "PICKLEBALL_BIND_HOST", default_value = "0.0.0.0")]
    pub bind_host: String,
    /// Port of the scheduler (gRPC, REST API and health probes share it); 0 picks a free one.
    #[arg(long, env = "PICKLEBALL_BIND_PORT", default_value_t = 50050)]
    pub bind_port: u16,
    /// Host name or IP that executors and clients use to reach this scheduler.
    #[arg(long, env = "PICKLEBALL_EXTERNAL_HOST", default_value = "localhost")]
    pub external_host: String,
    /// Attempts of a task before the job fails.
    #[arg(long, env = "PICKLEBALL_TASK_MAX_FAILURES", default_value_t = 4)]
    pub task_max_failures: usize,
    /// Attempts of a stage before the job fails.
    #[arg(long, env = "PICKLEBALL_STAGE_MAX_FAILURES", default_value_t = 4)]
    pub stage_max_failures: usize,
    /// Seconds without a heartbeat before an executor is considered dead and its work redone
    /// (executors beat every 5 s by default; Ballista's own default is 180).
    #[arg(
        long,
        env = "PICKLEBALL_EXECUTOR_TIMEOUT_SECONDS",
        default_value_t = 30
    )]
    pub executor_timeout_seconds: u64,
    /// How often (seconds) the scheduler looks for dead executors.
    #[arg(
        long,
        env = "PICKLEBALL_EXPIRE_DEAD_EXECUTOR_INTERVAL_SECONDS",
        default_value_t = 5
    )]
    pub expire_dead_executor_interval_seconds: u64,
    /// `push-staged` (lower latency; the default without a token) or `pull-staged` (the
    /// default, and the only choice, with a token); executors must use the same policy.
    #[arg(long, env = "PICKLEBALL_SCHEDULING_POLICY", value_parser = parse_scheduling_policy)]
    pub scheduling_policy: Option<TaskSchedulingPolicy>,
    /// `deny` refuses plans carrying pickled Python UDFs (unpickling is running code); UDFs
    /// must then be registered on executors and sent by name.
    #[arg(long, env = "PICKLEBALL_PYTHON_UDFS", default_value = "allow")]
    pub python_udfs: InlinePolicy,
    /// Shared secret of the cluster: clients and executors must present the same one (see
    /// the README's security section). Prefer the environment variable: flags show in `ps`.
    #[arg(long, env = "PICKLEBALL_TOKEN", hide_env_values = true, value_parser = ClusterToken::new)]
    pub token: Option<ClusterToken>,
}

impl SchedulerArgs {
    /// The Ballista scheduler configuration these flags describe, with pickleball's codecs.
    pub fn to_config(&self) -> Result<SchedulerConfig> {
        let token = self.token.clone();
        let scheduling_policy = scheduling_policy(self.scheduling_policy, token.as_ref())
            .map_err(BallistaError::Configuration)?;
        let mut config = SchedulerConfig {
            bind_host: self.bind_host.clone(),
            bind_port: self.bind_port,
            external_host: self.external_host.clone(),
            task_max_failures: self.task_max_failures,
            stage_max_failures: self.stage_max_failures,
            executor_timeout_seconds: self.executor_timeout_seconds,
            expire_dead_executor_interval_seconds: self.expire_dead_executor_interval_seconds,
            no_executors_grace_period_seconds: self.executor_timeout_seconds,
            scheduling_policy,
            grpc_server_max_decoding_message_size: GRPC_MAX_MESSAGE_BYTES as u32,
            grpc_server_max_encoding_message_size: GRPC_MAX_MESSAGE_BYTES as u32,
            grpc_client_max_message_size: GRPC_MAX_MESSAGE_BYTES as u32,
            ..SchedulerConfig::default()
        };
        // Stand-ins plan Python UDFs from their headers; the scheduler never unpickles.
        let udfs = UdfDecoder::planning("scheduler", self.python_udfs);
        config.override_logical_codec = Some(Arc::new(
            PythonLogicalCodec::default().with_udfs(udfs.clone()),
        ));
        config.override_physical_codec = Some(Arc::new(PythonPhysicalCodec::with_udfs(udfs)));
        config.override_config_producer = Some(Arc::new(pickleball_session_config));
        config.override_session_builder = Some(Arc::new(|c| {
            default_session_builder(with_pickleball_codecs(c))
        }));
        config.override_create_grpc_client_endpoint =
            token.as_ref().map(ClusterToken::endpoint_override);
        Ok(config.with_job_id_generator(Arc::new(job_ids::ClockJobIds::default())))
    }
}

impl Default for SchedulerArgs {
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: SchedulerArgs,
        }
        <Wrapper as clap::Parser>::parse_from(["pickleball-scheduler"]).args
    }
}

/// A listener whose accepted connections have Nagle's algorithm off (Linux copies
/// `TCP_NODELAY` from the listening socket). Ballista serves the scheduler through
/// `axum::serve`, which leaves it on: small gRPC answers (task assignments, job status) then
/// wait for the peer's delayed ACK, about 40 ms each.
async fn nodelay_listener(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for candidate in tokio::net::lookup_host(addr).await? {
        let socket = if candidate.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_nodelay(true)?;
        socket.set_reuseaddr(true)?;
        match socket.bind(candidate) {
            Ok(()) => return socket.listen(1024),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("the host name resolves to no address")))
}

/// A scheduler bound to its port and ready to serve.
pub struct BoundScheduler {
    listener: TcpListener,
    config: SchedulerConfig,
    token: Option<ClusterToken>,
}

impl BoundScheduler {
    /// Binds the scheduler's port (an ephemeral one if `bind_port` is 0).
    pub async fn bind(mut config: SchedulerConfig) -> Result<Self> {
        let addr = format!("{}:{}", config.bind_host, config.bind_port);
        let listener = nodelay_listener(&addr).await.map_err(|e| {
            BallistaError::Configuration(format!("cannot bind the scheduler to {addr}: {e}"))
        })?;
        config.bind_port = listener.local_addr()?.port();
        config.validate()?;
        Ok(Self {
            listener,
            config,
            token: None,
        })
    }

    /// Admits only requests carrying `token` (all do when it is `None`).
    pub fn require_token(mut self, token: Option<ClusterToken>) -> Self {
        self.token = token;
        self
    }

    /// The address the scheduler listens on.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves gRPC, the REST API and health probes until the future is dropped or fails.
    pub async fn serve(self) -> Result<()> {
        let config = Arc::new(self.config);
        let cluster = BallistaCluster::new_from_config(&config).await?;
        let scheduler =
            create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, config.clone()).await?;
        log::info!(
            "pickleball scheduler listening on {} (policy {:?}, {})",
            self.listener.local_addr()?,
            config.scheduling_policy,
            if self.token.is_some() {
                "token required"
            } else {
                "no token"
            }
        );
        match self.token {
            Some(token) => guarded::serve_with_token(self.listener, scheduler, token).await,
            None => start_grpc_service_with_listener(self.listener, scheduler).await,
        }
    }
}

/// Runs a scheduler until Ctrl-C or SIGTERM: the body of `pickleball-scheduler`.
pub async fn run_until_signal(args: &SchedulerArgs) -> Result<()> {
    let bound = BoundScheduler::bind(args.to_config()?)
        .await?
        .require_token(args.token.clone());
    tokio::select! {
        result = bound.serve() => result,
        _ = shutdown_signal() => {
            log::info!("scheduler shutting down");
            Ok(())
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
