//! Entry points of `pickleball scheduler|executor|standalone`, parsed with the same flag
//! definitions as the Rust binaries so both accept exactly the same options.

use clap::Parser;
use pickleball_codec::token::ClusterToken;
use pyo3::exceptions::{PyRuntimeError, PySystemExit};
use pyo3::prelude::*;

use crate::runtime::build_runtime;
use crate::standalone::Standalone;

#[derive(Parser)]
#[command(
    name = "pickleball scheduler",
    about = "Run a pickleball scheduler (never runs Python)"
)]
struct SchedulerCli {
    #[command(flatten)]
    args: pickleball_scheduler::SchedulerArgs,
}

#[derive(Parser)]
#[command(
    name = "pickleball executor",
    about = "Run a pickleball executor in this Python process"
)]
struct ExecutorCli {
    #[command(flatten)]
    args: pickleball_executor::ExecutorArgs,
}

/// Flags of `pickleball standalone`.
#[derive(Parser)]
#[command(
    name = "pickleball standalone",
    about = "Run a scheduler and executors in one process"
)]
struct StandaloneCli {
    /// Local address of the scheduler.
    #[arg(long, env = "PICKLEBALL_BIND_HOST", default_value = "127.0.0.1")]
    bind_host: String,
    /// Scheduler port (0: any free port).
    #[arg(long, env = "PICKLEBALL_BIND_PORT", default_value_t = 50050)]
    bind_port: u16,
    /// Number of in-process executors.
    #[arg(long, default_value_t = 1)]
    executors: usize,
    /// Task slots per executor (0: every core).
    #[arg(long, env = "PICKLEBALL_VCORES", default_value_t = 0)]
    vcores: usize,
    /// Shared secret clients must present (for a --bind-host others can reach).
    #[arg(long, env = "PICKLEBALL_TOKEN", hide_env_values = true, value_parser = ClusterToken::new)]
    token: Option<ClusterToken>,
}

fn parse<T: Parser>(argv: Vec<String>) -> PyResult<T> {
    T::try_parse_from(argv).map_err(|e| {
        let code = if e.use_stderr() { 2 } else { 0 };
        let _ = e.print();
        PySystemExit::new_err(code)
    })
}

fn init_logging() {
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .try_init();
}

/// `pickleball scheduler ARGS...`: serves until Ctrl-C or SIGTERM.
#[pyfunction]
pub fn run_scheduler(py: Python<'_>, argv: Vec<String>) -> PyResult<()> {
    let cli: SchedulerCli = parse(argv)?;
    init_logging();
    py.detach(|| {
        build_runtime("pickleball-scheduler")
            .block_on(pickleball_scheduler::run_until_signal(&cli.args))
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))
    })
}

/// `pickleball executor ARGS...`: runs until Ctrl-C, SIGTERM or a stop from the scheduler.
#[pyfunction]
pub fn run_executor(py: Python<'_>, argv: Vec<String>) -> PyResult<()> {
    let cli: ExecutorCli = parse(argv)?;
    init_logging();
    py.detach(|| {
        build_runtime("pickleball-executor")
            .block_on(pickleball_executor::run_until_signal(&cli.args))
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))
    })
}

/// `pickleball standalone ARGS...`: prints the cluster URL and serves until Ctrl-C or SIGTERM.
#[pyfunction]
pub fn run_standalone(py: Python<'_>, argv: Vec<String>) -> PyResult<()> {
    let cli: StandaloneCli = parse(argv)?;
    init_logging();
    py.detach(|| {
        let cluster = Standalone::start(
            &cli.bind_host,
            cli.bind_port,
            cli.executors,
            cli.vcores,
            cli.token.clone(),
        )
        .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        let host = if cli.bind_host == "0.0.0.0" {
            "localhost"
        } else {
            cli.bind_host.as_str()
        };
        println!(
            "pickleball standalone cluster at df://{host}:{}",
            cluster.port()
        );
        use std::io::Write;
        let _ = std::io::stdout().flush();
        build_runtime("pickleball-signal").block_on(pickleball_scheduler::shutdown_signal());
        drop(cluster);
        Ok(())
    })
}
