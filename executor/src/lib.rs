//! pickleball's executor: a Ballista executor wired with pickleball's codecs.
//!
//! The same code runs as the `pickleball-executor` binary (which embeds CPython), inside a
//! Python process through `pickleball executor`, and in-process for `pickleball.standalone()`.

pub mod cancellation;
mod in_process;
pub mod python;
pub mod scheduler_client;
mod token_flight;

pub use in_process::{PollWaker, spawn_in_process};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::error::{BallistaError, Result};
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_executor::execution_engine::DefaultExecutionEngine;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_executor::health::spawn_health_server;
use datafusion::execution::SessionStateBuilder;
use pickleball_codec::session::{GRPC_MAX_MESSAGE_BYTES, parse_scheduling_policy};
use pickleball_codec::token::{ClusterToken, scheduling_policy};
use pickleball_codec::udf::{InlinePolicy, NamedUdfs, UdfDecoder};
use pickleball_codec::{PythonLogicalCodec, PythonPhysicalCodec};
use scheduler_client::SchedulerAddress;

/// Command-line flags of `pickleball-executor` and `pickleball executor`.
///
/// Names mirror Ballista's executor; every flag can also be set with a `PICKLEBALL_*`
/// environment variable.
#[derive(clap::Args, Debug, Clone)]
pub struct ExecutorArgs {
    /// Host name or IP of the scheduler.
    #[arg(long, env = "PICKLEBALL_SCHEDULER_HOST", default_value = "localhost")]
    pub scheduler_host: String,
    /// Port of the scheduler.
    #[arg(long, env = "PICKLEBALL_SCHEDULER_PORT", default_value_t = 50050)]
    pub scheduler_port: u16,
    /// Seconds to keep retrying the scheduler at start-up (0: fail at once).
    #[arg(
        long,
        env = "PICKLEBALL_SCHEDULER_CONNECT_TIMEOUT_SECONDS",
        default_value_t = 30
    )]
    pub scheduler_connect_timeout_seconds: u16,
    /// Local address to bind to.
    #[arg(long, env = "PICKLEBALL_BIND_HOST", default_value = "0.0.0.0")]
    pub bind_host: String,
    /// Host name or IP that the scheduler, other executors and clients use to reach this one.
    #[arg(long, env = "PICKLEBALL_EXTERNAL_HOST")]
    pub external_host: Option<String>,
    /// Arrow Flight port (shuffle and result data).
    #[arg(long, env = "PICKLEBALL_PORT", default_value_t = 50051)]
    pub port: u16,
    /// gRPC port (tasks pushed by the scheduler).
    #[arg(long, env = "PICKLEBALL_GRPC_PORT", default_value_t = 50052)]
    pub grpc_port: u16,
    /// HTTP port of the `/healthz` and `/readyz` probes (0: no probe server).
    #[arg(long, env = "PICKLEBALL_HEALTH_PORT", default_value_t = 50053)]
    pub health_port: u16,
    /// Concurrent tasks (and, by default, Python sub-interpreters); 0 means every core.
    #[arg(long, env = "PICKLEBALL_VCORES", default_value_t = 0)]
    pub vcores: usize,
    /// Directory for shuffle files; a temporary one when unset.
    #[arg(long, env = "PICKLEBALL_WORK_DIR")]
    pub work_dir: Option<String>,
    /// Seconds between heartbeats to the scheduler.
    #[arg(
        long,
        env = "PICKLEBALL_HEARTBEAT_INTERVAL_SECONDS",
        default_value_t = 5
    )]
    pub heartbeat_interval_seconds: u64,
    /// `push-staged` (the default without a token) or `pull-staged` (the default, and the
    /// only choice, with a token); must match the scheduler.
    #[arg(long, env = "PICKLEBALL_SCHEDULING_POLICY", value_parser = parse_scheduling_policy)]
    pub scheduling_policy: Option<TaskSchedulingPolicy>,
    /// The cluster's shared secret, as given to the scheduler: sent on every call, and
    /// required of every Flight call to this executor. Prefer the environment variable:
    /// flags show in `ps`.
    #[arg(long, env = "PICKLEBALL_TOKEN", hide_env_values = true, value_parser = ClusterToken::new)]
    pub token: Option<ClusterToken>,
    /// `deny` refuses to unpickle Python UDFs sent inside plans (unpickling is running the
    /// sender's code); only UDFs registered on this executor by name run.
    #[arg(long, env = "PICKLEBALL_PYTHON_UDFS", default_value = "allow")]
    pub python_udfs: InlinePolicy,
    /// Python file whose top-level datafusion-python UDFs are registered by name, for clients
    /// that send UDFs without their code; repeat for several files.
    #[arg(
        long = "udf-module",
        env = "PICKLEBALL_UDF_MODULES",
        value_delimiter = ','
    )]
    pub udf_modules: Vec<std::path::PathBuf>,
    /// Own-GIL Python sub-interpreters for row-wise UDFs (default: one per vcore; 0: run them
    /// in the main interpreter).
    #[arg(long, env = "PICKLEBALL_SUBINTERPRETERS")]
    pub subinterpreters: Option<usize>,
}

pub(crate) fn vcores_or_all(vcores: usize) -> usize {
    if vcores == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        vcores
    }
}

impl ExecutorArgs {
    /// The scheduler, with the token to present to it.
    pub fn scheduler(&self) -> SchedulerAddress {
        SchedulerAddress::new(
            format!("http://{}:{}", self.scheduler_host, self.scheduler_port),
            self.token.clone(),
        )
    }

    /// The Ballista executor configuration these flags describe, with pickleball's codecs.
    /// Runs the `--udf-module` files (Python must be initialized when there are any).
    pub fn to_config(&self) -> Result<ExecutorProcessConfig> {
        let token = self.token.clone();
        let task_scheduling_policy = scheduling_policy(self.scheduling_policy, token.as_ref())
            .map_err(BallistaError::Configuration)?;
        let named = python::udf_module::load(&self.udf_modules)?;
        let mut config = ExecutorProcessConfig {
            scheduler_host: self.scheduler_host.clone(),
            scheduler_port: self.scheduler_port,
            // We wait for the scheduler ourselves (see `wait_for_scheduler`).
            scheduler_connect_timeout_seconds: 0,
            bind_host: self.bind_host.clone(),
            external_host: self.external_host.clone(),
            port: self.port,
            grpc_port: self.grpc_port,
            vcores: vcores_or_all(self.vcores),
            work_dir: self.work_dir.clone(),
            task_scheduling_policy,
            executor_heartbeat_interval_seconds: self.heartbeat_interval_seconds,
            grpc_max_decoding_message_size: GRPC_MAX_MESSAGE_BYTES as u32,
            grpc_max_encoding_message_size: GRPC_MAX_MESSAGE_BYTES as u32,
            print_thread_info: false,
            ..ExecutorProcessConfig::default()
        };
        let udfs = udf_decoder(
            self.python_udfs,
            Arc::new(named),
            self.subinterpreters.unwrap_or(config.vcores),
        );
        config.override_logical_codec = Some(Arc::new(
            PythonLogicalCodec::default().with_udfs(udfs.clone()),
        ));
        config.override_physical_codec = Some(Arc::new(PythonPhysicalCodec::with_udfs(udfs)));
        config.override_config_producer = Some(cancellation::task_config_producer(token.clone()));
        config.override_function_registry = Some(Arc::new(function_registry()));
        // Ballista's default engine with cancellation reaching Python (the engine's shuffle
        // reads open a connection per fetch: Ballista's client pool is private to its crate).
        config.override_execution_engine = Some(Arc::new(cancellation::CancellingEngine::new(
            Arc::new(DefaultExecutionEngine::new()),
            self.scheduler(),
        )));
        if let Some(token) = token {
            config.override_create_grpc_client_endpoint = Some(token.endpoint_override());
            config.override_arrow_flight_service = Some(token_flight::token_checked_flight(token));
        }
        Ok(config)
    }
}

/// The Python runtime of this process, shared by every executor in it (and so one cache of
/// unpickled payloads and one sub-interpreter pool); the first caller sets the pool's size.
pub fn python_runtime(subinterpreters: usize) -> Arc<python::ExecutorRuntime> {
    static RUNTIME: std::sync::OnceLock<Arc<python::ExecutorRuntime>> = std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| Arc::new(python::ExecutorRuntime::new(subinterpreters)))
        .clone()
}

/// How this executor turns Python UDF frames into runnable UDFs.
pub(crate) fn udf_decoder(
    policy: InlinePolicy,
    named: Arc<NamedUdfs>,
    subinterpreters: usize,
) -> UdfDecoder {
    UdfDecoder {
        policy,
        runtime: Some(Arc::new(cancellation::BindsTasks(python_runtime(
            subinterpreters,
        )))),
        role: "executor",
        translator: None,
        named,
    }
}

/// Every function a default DataFusion session knows (nested, unicode, crypto, ...), so
/// that functions referenced by name in plans resolve; Ballista's default registry lacks some
/// (e.g. `make_array`).
pub fn function_registry() -> BallistaFunctionRegistry {
    let state = SessionStateBuilder::new().with_default_features().build();
    BallistaFunctionRegistry::from(&state)
}

/// Runs an executor until Ctrl-C, SIGTERM or a stop request from the scheduler: the body of
/// `pickleball-executor`. Serves `/healthz` and `/readyz` on `health_port` unless it is 0.
pub async fn run_until_signal(args: &ExecutorArgs) -> Result<()> {
    // Before waiting for the scheduler, so a broken --udf-module fails at once.
    let config = args.to_config()?;
    // Start the sub-interpreters now (the runtime and its size come from `to_config`).
    python_runtime(0).pool();
    wait_for_scheduler(
        &args.scheduler_host,
        args.scheduler_port,
        Duration::from_secs(args.scheduler_connect_timeout_seconds.into()),
    )
    .await?;
    args.scheduler().check_token().await?;
    let (stop_health, health_stopped) = tokio::sync::oneshot::channel();
    let health = if args.health_port != 0 {
        let addr: SocketAddr = format!("{}:{}", args.bind_host, args.health_port)
            .parse()
            .map_err(|e| BallistaError::Configuration(format!("invalid health address: {e}")))?;
        Some(spawn_health_server(
            addr,
            config.health.clone(),
            health_stopped,
        ))
    } else {
        None
    };
    let result = start_executor_process(Arc::new(config)).await;
    let _ = stop_health.send(());
    if let Some(handle) = health {
        let _ = handle.await;
    }
    result
}

/// Waits until the scheduler accepts connections, for at most `limit`.
///
/// Ballista 55's own retry loop never ends (it measures elapsed time from a fresh `Instant`),
/// so we wait here and let Ballista connect once.
pub async fn wait_for_scheduler(host: &str, port: u16, limit: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        let attempt = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect((host, port)),
        )
        .await;
        let cause = match attempt {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer within 2 s".to_string(),
        };
        if start.elapsed() >= limit {
            return Err(BallistaError::GrpcConnectionError(format!(
                "cannot reach the scheduler at {host}:{port} ({cause}) after {:.0} s; check \
                 --scheduler-host/--scheduler-port and that the scheduler is running",
                limit.as_secs_f64()
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
