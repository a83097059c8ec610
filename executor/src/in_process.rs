//! Executors inside the client's process, for `pickleball.standalone()`.
//!
//! They pull tasks (no gRPC server of their own and no signal handlers, so Ctrl-C still
//! interrupts Python, not the cluster). Ballista's pull loop sleeps 50 ms between idle polls and
//! reports finished tasks only on its next poll, which costs about 100 ms per stage. A
//! [`PollWaker`] removes that: the in-process scheduler wakes the loops when it has new work,
//! and a timer that watches the task slots wakes them when a task finishes; for a short while
//! after either the loops poll every millisecond, so the task is reported and the next stage
//! starts at once. While tasks run and nothing changes they do not poll (each poll is a gRPC
//! call that would take CPU from the tasks). Idle loops poll once a second, and an idle
//! cluster's timer looks at the slots only every [`IDLE_TICK`] until work is announced.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ballista_core::error::{BallistaError, Result};
use ballista_core::ids::new_instance_id;
use ballista_core::serde::BallistaCodec;
use ballista_core::serde::protobuf::ExecutorRegistration;
use ballista_core::serde::scheduler::{
    ExecutorOperatingSystemSpecification, ExecutorSpecification,
};
use ballista_core::utils::{GrpcServerConfig, create_grpc_server, create_grpc_server_incoming};
use ballista_core::{BALLISTA_PROTOCOL_VERSION, RuntimeProducer};
use ballista_executor::execution_engine::DefaultExecutionEngine;
use ballista_executor::execution_loop::poll_loop;
use ballista_executor::executor::Executor;
use ballista_executor::health::ExecutorHealth;
use ballista_executor::metrics::LoggingMetricsCollector;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use pickleball_codec::session::GRPC_MAX_MESSAGE_BYTES;
use pickleball_codec::udf::InlinePolicy;
use pickleball_codec::{PythonLogicalCodec, PythonPhysicalCodec};
use tokio::sync::{Notify, Semaphore};

use crate::cancellation::CancellingEngine;
use crate::scheduler_client::SchedulerAddress;
use crate::{function_registry, udf_decoder, vcores_or_all};

/// How often the timer looks at the task slots, and how often hot loops poll: the delay
/// between a task finishing and the scheduler knowing.
const TICK: Duration = Duration::from_millis(1);

/// How long loops stay hot after the scheduler announced work or a task finished: long enough
/// for the scheduler to plan the next stage (a few ms) and for tasks that start and end
/// between two ticks to be reported.
const HOT: Duration = Duration::from_millis(50);

/// How often the timer looks at the slots while no task runs and no work was announced: an
/// idle standalone context costs a wake-up every 100 ms instead of every millisecond. (Tasks
/// start after the scheduler announces work, which wakes the timer at once.)
const IDLE_TICK: Duration = Duration::from_millis(100);

/// Wakes the poll loops of in-process executors; see the module documentation.
#[derive(Debug, Default)]
pub struct PollWaker {
    loops: Mutex<Vec<LoopHandle>>,
    /// Until when the loops poll every tick, and the tasks running at the last tick.
    state: Mutex<WakerState>,
    /// Wakes the timer from an idle wait when work is announced (or the waker is dropped).
    timer: Arc<Notify>,
}

/// What the timer found at a tick.
#[derive(Debug, PartialEq, Eq)]
enum Tick {
    /// Work was announced or a task finished lately: the loops should poll.
    Hot,
    /// Tasks run: watch for one to finish.
    Watching,
    /// Nothing runs and nothing was announced.
    Idle,
}

#[derive(Debug, Default)]
struct WakerState {
    hot_until: Option<Instant>,
    running: usize,
}

#[derive(Debug)]
struct LoopHandle {
    notify: Arc<Notify>,
    slots: Arc<Semaphore>,
    vcores: usize,
}

impl Drop for PollWaker {
    fn drop(&mut self) {
        self.timer.notify_one();
    }
}

impl PollWaker {
    /// A waker with no loops yet; it starts its timer on the current tokio runtime.
    pub fn start() -> Arc<Self> {
        let waker = Arc::new(Self::default());
        let weak = Arc::downgrade(&waker);
        let timer = Arc::clone(&waker.timer);
        tokio::spawn(async move {
            while let Some(waker) = weak.upgrade() {
                let tick = waker.tick();
                if tick == Tick::Hot {
                    waker.wake_all();
                }
                // Not held while waiting, so dropping the waker ends the timer.
                drop(waker);
                if tick == Tick::Idle {
                    let _ = tokio::time::timeout(IDLE_TICK, timer.notified()).await;
                } else {
                    tokio::time::sleep(TICK).await;
                }
            }
        });
        waker
    }

    /// The scheduler has new work (a job or a stage): poll now, and keep polling for a while.
    pub fn work_available(&self) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .hot_until = Some(Instant::now() + HOT);
        self.timer.notify_one();
        self.wake_all();
    }

    /// Hot for a while after work was announced or a task finished (fewer tasks run than at
    /// the last tick; Ballista frees a task's slot after queueing its status, so the next
    /// poll reports it).
    fn tick(&self) -> Tick {
        let running = self
            .loops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|l| l.vcores.saturating_sub(l.slots.available_permits()))
            .sum();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if running < state.running {
            state.hot_until = Some(now + HOT);
        }
        state.running = running;
        if state.hot_until.is_some_and(|until| now < until) {
            Tick::Hot
        } else if running > 0 {
            Tick::Watching
        } else {
            Tick::Idle
        }
    }

    fn wake_all(&self) {
        for handle in self.loops.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            handle.notify.notify_one();
        }
    }

    fn register(&self, vcores: usize) -> (Arc<Notify>, Arc<Semaphore>) {
        let notify = Arc::new(Notify::new());
        let slots = Arc::new(Semaphore::new(vcores));
        self.loops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(LoopHandle {
                notify: notify.clone(),
                slots: slots.clone(),
                vcores,
            });
        (notify, slots)
    }
}

/// Starts an executor inside this process that pulls tasks from `scheduler`, serving Flight on
/// an ephemeral loopback port (behind the scheduler's token, if any); `waker` drives its
/// polls.
pub async fn spawn_in_process(
    scheduler: SchedulerAddress,
    vcores: usize,
    waker: &PollWaker,
) -> Result<()> {
    let token = scheduler.token.clone();
    let client = scheduler
        .connect()
        .await
        .map_err(|e| {
            BallistaError::GrpcConnectionError(format!(
                "in-process executor cannot reach scheduler {}: {e}",
                scheduler.url
            ))
        })?
        .max_decoding_message_size(GRPC_MAX_MESSAGE_BYTES)
        .max_encoding_message_size(GRPC_MAX_MESSAGE_BYTES);
    let vcores = vcores_or_all(vcores);
    let incoming =
        create_grpc_server_incoming(([127, 0, 0, 1], 0).into(), &GrpcServerConfig::default())?;
    let registration = ExecutorRegistration {
        id: new_instance_id(),
        host: Some("127.0.0.1".to_string()),
        port: u32::from(incoming.local_addr()?.port()),
        // Unused: pull-staged executors serve no task gRPC.
        grpc_port: 0,
        specification: Some(
            ExecutorSpecification::default()
                .with_vcores(vcores as u32)
                .into(),
        ),
        os_info: Some(ExecutorOperatingSystemSpecification::default().into()),
        ballista_protocol_version: BALLISTA_PROTOCOL_VERSION,
    };
    let work_dir = tempfile::Builder::new()
        .prefix("pickleball-executor-")
        .tempdir()?
        // Kept for the life of the process, like Ballista's own work dirs.
        .keep();
    let work_dir = work_dir.to_string_lossy().into_owned();
    let config_producer = crate::cancellation::task_config_producer(token.clone());
    let runtime = Arc::new(RuntimeEnvBuilder::new().build()?);
    let runtime_producer: RuntimeProducer = Arc::new(move |_| Ok(runtime.clone()));
    let executor = Arc::new(Executor::new(
        registration,
        &work_dir,
        runtime_producer,
        config_producer,
        Arc::new(function_registry()),
        Arc::new(LoggingMetricsCollector::default()),
        vcores,
        Arc::new(CancellingEngine::new(
            Arc::new(DefaultExecutionEngine::new()),
            scheduler,
        )),
    ));
    let flight = crate::token_flight::flight_service(work_dir, token);
    tokio::spawn(
        create_grpc_server(&GrpcServerConfig::default())
            .add_service(flight)
            .serve_with_incoming(incoming),
    );
    // One sub-interpreter per task slot (the first executor of the process sizes the pool).
    let udfs = udf_decoder(InlinePolicy::Allow, Arc::default(), vcores);
    let codec: BallistaCodec = BallistaCodec::new(
        Arc::new(PythonLogicalCodec::default().with_udfs(udfs.clone())),
        Arc::new(PythonPhysicalCodec::with_udfs(udfs)),
    );
    let (notify, slots) = waker.register(vcores);
    tokio::spawn(poll_loop(
        client,
        executor,
        codec,
        Some(notify),
        Some(slots),
        ExecutorHealth::new(),
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timer_idles_only_when_nothing_runs_and_nothing_was_announced() {
        let waker = PollWaker::default();
        let (_notify, slots) = waker.register(2);
        assert_eq!(waker.tick(), Tick::Idle);

        waker.work_available();
        assert_eq!(waker.tick(), Tick::Hot);

        let task = slots.clone().try_acquire_owned().expect("a free slot");
        std::thread::sleep(HOT + Duration::from_millis(10));
        assert_eq!(waker.tick(), Tick::Watching);

        // A task ending makes the loops hot again, so its status is reported at once.
        drop(task);
        assert_eq!(waker.tick(), Tick::Hot);
        std::thread::sleep(HOT + Duration::from_millis(10));
        assert_eq!(waker.tick(), Tick::Idle);
    }
}
