//! An in-process cluster: one scheduler and N executors on loopback, on a runtime of their own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballista_core::config::TaskSchedulingPolicy;
use datafusion::common::{DataFusionError, Result};
use pickleball_codec::token::ClusterToken;
use pickleball_executor::PollWaker;
use pickleball_executor::scheduler_client::SchedulerAddress;
use pickleball_scheduler::{BoundScheduler, SchedulerArgs};

use tokio::runtime::Runtime;

use crate::rest::SchedulerHttp;
use crate::runtime::build_runtime;

/// A running in-process cluster. Dropping it stops scheduler and executors.
pub struct Standalone {
    runtime: Option<Runtime>,
    addr: SocketAddr,
}

impl Standalone {
    /// Starts a scheduler on `bind_host:port` (0: any free port) and `executors` executors with
    /// `vcores` task slots each (0: every core), and waits until all of them are registered.
    /// With `token`, the scheduler and the executors' Flight services require it.
    pub fn start(
        bind_host: &str,
        port: u16,
        executors: usize,
        vcores: usize,
        token: Option<ClusterToken>,
    ) -> Result<Self> {
        let runtime = build_runtime("pickleball-standalone");
        let mut args = SchedulerArgs {
            bind_host: bind_host.to_string(),
            bind_port: port,
            scheduling_policy: Some(TaskSchedulingPolicy::PullStaged),
            token: token.clone(),
            ..SchedulerArgs::default()
        };
        args.external_host = "localhost".to_string();
        let mut config = args.to_config().map_err(to_df)?;
        config.min_ready_executors = executors.max(1);
        let addr = runtime.block_on(async {
            let waker = PollWaker::start();
            let notified = Arc::clone(&waker);
            config.on_work_available = Some(Arc::new(move |_| notified.work_available()));
            let bound = BoundScheduler::bind(config)
                .await
                .map_err(to_df)?
                .require_token(token.clone());
            let addr = bound.local_addr().map_err(to_df)?;
            tokio::spawn(async move {
                if let Err(e) = bound.serve().await {
                    log::error!("standalone scheduler stopped: {e}");
                }
            });
            let url = format!("http://127.0.0.1:{}", addr.port());
            for _ in 0..executors.max(1) {
                let scheduler = SchedulerAddress::new(url.clone(), token.clone());
                pickleball_executor::spawn_in_process(scheduler, vcores, &waker)
                    .await
                    .map_err(to_df)?;
            }
            wait_until_ready(addr.port(), Duration::from_secs(30)).await?;
            Ok::<_, DataFusionError>(addr)
        })?;
        Ok(Self {
            runtime: Some(runtime),
            addr,
        })
    }

    /// The scheduler's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Stops scheduler and executors.
    pub fn stop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        self.stop();
    }
}

fn to_df(e: ballista_core::error::BallistaError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Waits until the scheduler's `/readyz` answers 200 (enough executors registered).
async fn wait_until_ready(port: u16, limit: Duration) -> Result<()> {
    let start = Instant::now();
    let scheduler = SchedulerHttp {
        host: "127.0.0.1".into(),
        port,
        token: None,
    };
    while start.elapsed() < limit {
        if matches!(scheduler.request("GET", "/readyz").await, Ok((200, _))) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(DataFusionError::Execution(format!(
        "the standalone cluster did not become ready within {limit:?}"
    )))
}
