//! Stopping the Python code of a task whose job has ended.
//!
//! Ballista cancels a task by aborting its future, which takes effect only at the task's next
//! `.await`. A Python UDF runs synchronously inside one poll, so a UDF that loops forever is
//! never reached; and pull-staged executors (standalone) get no cancellation at all. So every
//! task gets a [`CancelToken`], and while the task runs a watcher thread asks the scheduler
//! about its job every [`WATCH_INTERVAL`] (see `watcher`): once the job is no longer queued
//! or running (cancelled, failed elsewhere, or gone), the token fires. The sub-interpreter
//! pool then stops handing out the call's rows and interrupts the interpreters running them,
//! and the main interpreter raises `KeyboardInterrupt` in the thread running the UDF (see
//! `python::interrupt`).
//!
//! How a UDF finds its task's token: DataFusion and Ballista run a task's operators on tasks
//! they spawn, so nothing flows from the task's future to the UDF call. Instead, Ballista
//! makes a fresh session config for each task ([`mark_task`], the executor's config
//! producer, gives it a [`TaskMarker`] id and a token), and then, on the same thread and
//! before anything else, decodes the task's plan with it: push-staged executors in the
//! `launch_task` handler, pull-staged ones in their poll loop. So UDFs decoded on a thread
//! belong to the config marked last on that thread ([`TaskBound`]); this also reaches
//! aggregate and window UDFs, whose accumulators and evaluators see no config. The stage
//! finds the same token through its config's marker.
//!
//! [`CancellingEngine`] fires the token of a task's config; each call of a bound UDF makes
//! that token the thread's [`current`] one while it runs.

mod watcher;

pub use watcher::WATCH_INTERVAL;

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use ballista_core::serde::protobuf::{ShuffleWritePartition, TaskColumnStats};
use ballista_core::{ConfigProducer, JobId};
use ballista_executor::execution_engine::{ExecutionEngine, QueryStageExecutor};
use datafusion::common::config::{ConfigExtension, ConfigOptions};
use datafusion::common::{Result, extensions_options};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::function::{AccumulatorArgs, PartitionEvaluatorArgs};
use datafusion::logical_expr::{
    Accumulator, ColumnarValue, PartitionEvaluator, ScalarFunctionArgs,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::prelude::SessionConfig;
use pickleball_codec::token::ClusterToken;
use pickleball_codec::udf::{PythonRuntime, UdfFrame};

use crate::scheduler_client::SchedulerAddress;

type Hook = Box<dyn FnOnce() + Send>;

/// Fires once, when the job of the current task has ended; Python code running for the task
/// registers what stops it.
#[derive(Default)]
pub struct CancelToken {
    cancelled: AtomicBool,
    hooks: Mutex<Vec<(u64, Hook)>>,
    next_hook: AtomicU64,
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl CancelToken {
    /// Whether the token has fired.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Fires the token: runs every registered hook once, on this thread (hooks may block
    /// briefly, e.g. to take the GIL, so call this off async worker threads).
    pub fn cancel(&self) {
        if self.cancelled.swap(true, Ordering::AcqRel) {
            return;
        }
        // Run the hooks without the lock, so a hook's owner can deregister concurrently.
        let hooks = std::mem::take(&mut *self.hooks.lock().unwrap_or_else(|e| e.into_inner()));
        for (_, hook) in hooks {
            hook();
        }
    }

    /// Runs `hook` when the token fires (at once if it has). The hook stays registered until
    /// the returned guard drops.
    pub fn on_cancel(&self, hook: impl FnOnce() + Send + 'static) -> HookGuard<'_> {
        let id = self.next_hook.fetch_add(1, Ordering::Relaxed);
        let mut hooks = self.hooks.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_cancelled() {
            drop(hooks);
            hook();
        } else {
            hooks.push((id, Box::new(hook)));
        }
        HookGuard { token: self, id }
    }
}

/// Deregisters a hook of [`CancelToken::on_cancel`] when dropped.
#[derive(Debug)]
pub struct HookGuard<'a> {
    token: &'a CancelToken,
    id: u64,
}

impl Drop for HookGuard<'_> {
    fn drop(&mut self) {
        self.token
            .hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(id, _)| *id != self.id);
    }
}

thread_local! {
    /// The token of the UDF call running on this thread.
    static CURRENT: RefCell<Option<Arc<CancelToken>>> = const { RefCell::new(None) };
    /// The token of the config marked last on this thread: the task whose plan this thread
    /// decodes next (weak: the task's stage and UDFs keep it alive).
    static LAST_MARKED: RefCell<Weak<CancelToken>> = const { RefCell::new(Weak::new()) };
}

/// The token of the UDF call running on this thread, if its UDF is bound to a task.
pub fn current() -> Option<Arc<CancelToken>> {
    CURRENT.with(|current| current.borrow().clone())
}

/// Runs `f` with `token` as this thread's [`current`] token (the previous one is restored).
pub fn with_current<T>(token: Option<&Arc<CancelToken>>, f: impl FnOnce() -> T) -> T {
    let previous = CURRENT.with(|current| current.replace(token.cloned()));
    struct Restore(Option<Arc<CancelToken>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT.with(|current| *current.borrow_mut() = previous);
        }
    }
    let _restore = Restore(previous);
    f()
}

/// The token of the task whose plan this thread decodes (see the module documentation); a
/// token of its own, never fired by a task, if no config was marked here.
fn decoding_token() -> Arc<CancelToken> {
    LAST_MARKED
        .with(|slot| slot.borrow().upgrade())
        .unwrap_or_default()
}

extensions_options! {
    /// Identifies the task a session config was made for (executors only; see the module
    /// documentation).
    pub struct TaskMarker {
        /// Key of the task's token in the registry of [`mark_task`]; 0 for none.
        pub id: u64, default = 0
    }
}

impl ConfigExtension for TaskMarker {
    const PREFIX: &'static str = "pickleball_task";
}

/// Tokens of marked task configs, by marker id, with their creation time.
type Marked = HashMap<u64, (Instant, Arc<CancelToken>)>;
static MARKED: std::sync::LazyLock<Mutex<Marked>> = std::sync::LazyLock::new(Mutex::default);

/// Markers nothing holds are forgotten once this old (a config whose plan is being decoded
/// is held by nothing yet; one made for something other than a task never will be).
const UNCLAIMED: Duration = Duration::from_secs(60);

/// The session config of a new task: pickleball's, with a fresh [`TaskMarker`] and its
/// token. The executor's config producer, which Ballista calls once per task.
pub fn task_session_config() -> SessionConfig {
    mark_task(pickleball_codec::session::pickleball_session_config())
}

/// The executor's config producer: [`task_session_config`], whose gRPC channels (the task's
/// shuffle reads from other executors) present the cluster token, if any.
pub fn task_config_producer(token: Option<ClusterToken>) -> ConfigProducer {
    match token {
        Some(token) => Arc::new(move || token.apply_to(task_session_config())),
        None => Arc::new(task_session_config),
    }
}

/// `config` with a fresh [`TaskMarker`] and its token.
pub fn mark_task(config: SessionConfig) -> SessionConfig {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut marked = MARKED.lock().unwrap_or_else(|e| e.into_inner());
    marked.retain(|_, (made, token)| made.elapsed() < UNCLAIMED || Arc::strong_count(token) > 1);
    let token = Arc::default();
    LAST_MARKED.with(|slot| *slot.borrow_mut() = Arc::downgrade(&token));
    marked.insert(id, (Instant::now(), token));
    config.with_option_extension(TaskMarker { id })
}

/// The token of the task whose config `options` belong to.
fn marked_token(options: &ConfigOptions) -> Option<Arc<CancelToken>> {
    let id = options.extensions.get::<TaskMarker>()?.id;
    let marked = MARKED.lock().unwrap_or_else(|e| e.into_inner());
    marked.get(&id).map(|(_, token)| Arc::clone(token))
}

/// An executor's Python runtime whose decoded UDFs are bound to their task's token.
#[derive(Debug)]
pub struct BindsTasks(pub Arc<dyn PythonRuntime>);

impl PythonRuntime for BindsTasks {
    fn invoke_scalar(
        &self,
        frame: &Arc<UdfFrame>,
        args: ScalarFunctionArgs,
    ) -> Result<ColumnarValue> {
        self.0.invoke_scalar(frame, args)
    }

    fn accumulator(
        &self,
        frame: &Arc<UdfFrame>,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn Accumulator>> {
        self.0.accumulator(frame, args)
    }

    fn partition_evaluator(
        &self,
        frame: &Arc<UdfFrame>,
        args: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        self.0.partition_evaluator(frame, args)
    }

    fn for_decoded_task(&self) -> Option<Arc<dyn PythonRuntime>> {
        Some(Arc::new(TaskBound {
            inner: Arc::clone(&self.0),
            token: decoding_token(),
        }))
    }
}

/// A runtime whose calls run with their task's token as the [`current`] one. Accumulators and
/// evaluators keep the token they were created with.
#[derive(Debug)]
struct TaskBound {
    inner: Arc<dyn PythonRuntime>,
    token: Arc<CancelToken>,
}

impl PythonRuntime for TaskBound {
    fn invoke_scalar(
        &self,
        frame: &Arc<UdfFrame>,
        args: ScalarFunctionArgs,
    ) -> Result<ColumnarValue> {
        with_current(Some(&self.token), || self.inner.invoke_scalar(frame, args))
    }

    fn accumulator(
        &self,
        frame: &Arc<UdfFrame>,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn Accumulator>> {
        with_current(Some(&self.token), || self.inner.accumulator(frame, args))
    }

    fn partition_evaluator(
        &self,
        frame: &Arc<UdfFrame>,
        args: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        with_current(Some(&self.token), || {
            self.inner.partition_evaluator(frame, args)
        })
    }
}

/// A Ballista execution engine whose tasks carry a [`CancelToken`] fired when their job ends
/// on the scheduler; stages are otherwise `inner`'s.
pub struct CancellingEngine {
    inner: Arc<dyn ExecutionEngine>,
    scheduler: SchedulerAddress,
}

impl CancellingEngine {
    /// Wraps `inner`; jobs are looked up on `scheduler`.
    pub fn new(inner: Arc<dyn ExecutionEngine>, scheduler: SchedulerAddress) -> Self {
        Self { inner, scheduler }
    }
}

impl fmt::Debug for CancellingEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancellingEngine")
            .field("scheduler", &self.scheduler.url)
            .finish_non_exhaustive()
    }
}

impl ExecutionEngine for CancellingEngine {
    fn create_query_stage_exec(
        &self,
        job_id: JobId,
        stage_id: usize,
        task_id: usize,
        global_output_partition_ids: Vec<usize>,
        plan: Arc<dyn ExecutionPlan>,
        work_dir: &str,
        config: &SessionConfig,
    ) -> Result<Arc<dyn QueryStageExecutor>> {
        // Held by the stage, so the marker stays while the task runs (tasks of one stage
        // launched together share one config).
        let token = marked_token(config.options()).unwrap_or_default();
        let inner = self.inner.create_query_stage_exec(
            job_id.clone(),
            stage_id,
            task_id,
            global_output_partition_ids,
            plan,
            work_dir,
            config,
        )?;
        Ok(Arc::new(CancellingStage {
            inner,
            token,
            job_id,
            scheduler: self.scheduler.clone(),
        }))
    }
}

/// A query stage run with a [`CancelToken`] and a watcher of its job.
#[derive(Debug)]
struct CancellingStage {
    inner: Arc<dyn QueryStageExecutor>,
    /// Fired when the job ends (see the module documentation).
    token: Arc<CancelToken>,
    job_id: JobId,
    scheduler: SchedulerAddress,
}

impl fmt::Display for CancellingStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

/// Fires the token when dropped armed, i.e. when the task's future is dropped unfinished.
struct CancelOnDrop(Option<Arc<CancelToken>>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(token) = self.0.take() {
            watcher::fire_elsewhere(vec![token]);
        }
    }
}

#[async_trait::async_trait]
impl QueryStageExecutor for CancellingStage {
    async fn execute_query_stage(
        &self,
        task_id: usize,
        context: Arc<TaskContext>,
    ) -> Result<Vec<ShuffleWritePartition>> {
        let _watched = watcher::watch(
            self.scheduler.clone(),
            self.job_id.to_string(),
            vec![Arc::clone(&self.token)],
        );
        // Ballista aborts a cancelled task's future (push-staged executors): this drops it,
        // while the operators it spawned may still be running Python.
        let mut aborted = CancelOnDrop(Some(Arc::clone(&self.token)));
        let result = self.inner.execute_query_stage(task_id, context).await;
        aborted.0 = None;
        result
    }

    fn collect_plan_metrics(&self) -> Vec<MetricsSet> {
        self.inner.collect_plan_metrics()
    }

    fn collect_runtime_stats_reports(
        &self,
    ) -> Vec<ballista_core::serde::protobuf::RuntimeStatsReport> {
        self.inner.collect_runtime_stats_reports()
    }

    fn collect_window_state_reports(
        &self,
    ) -> Result<Vec<ballista_core::serde::protobuf::WindowStateReport>> {
        self.inner.collect_window_state_reports()
    }

    fn collect_column_stats(&self) -> Vec<TaskColumnStats> {
        self.inner.collect_column_stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn hooks_run_once_and_only_while_registered() {
        let token = CancelToken::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let kept = {
            let runs = Arc::clone(&runs);
            token.on_cancel(move || {
                runs.fetch_add(1, Ordering::SeqCst);
            })
        };
        let removed = {
            let runs = Arc::clone(&runs);
            token.on_cancel(move || {
                runs.fetch_add(10, Ordering::SeqCst);
            })
        };
        drop(removed);
        assert!(!token.is_cancelled());
        token.cancel();
        token.cancel();
        assert!(token.is_cancelled());
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        drop(kept);
        // Registered after firing: runs at once.
        let late = Arc::clone(&runs);
        let _guard = token.on_cancel(move || {
            late.fetch_add(100, Ordering::SeqCst);
        });
        assert_eq!(runs.load(Ordering::SeqCst), 101);
    }

    #[test]
    fn the_current_token_is_scoped_to_the_call() {
        assert!(current().is_none());
        let token = Arc::new(CancelToken::default());
        let seen = with_current(Some(&token), || {
            let inner = with_current(None, current);
            (current(), inner)
        });
        assert!(Arc::ptr_eq(
            &seen.0.expect("a token inside the scope"),
            &token
        ));
        assert!(seen.1.is_none());
        assert!(current().is_none());
    }

    #[test]
    fn marked_configs_carry_their_token() {
        let config = mark_task(SessionConfig::new());
        let token = marked_token(config.options()).expect("a marked config has a token");
        let again = marked_token(config.clone().options()).expect("clones keep the marker");
        assert!(Arc::ptr_eq(&token, &again));
        let other = mark_task(SessionConfig::new());
        assert!(!Arc::ptr_eq(
            &token,
            &marked_token(other.options()).unwrap()
        ));
        assert!(marked_token(SessionConfig::new().options()).is_none());
    }

    #[test]
    fn plans_decoded_after_a_config_is_marked_belong_to_its_task() {
        // On a thread that marked nothing: a token of its own, which no task fires.
        let orphan = std::thread::spawn(decoding_token).join().unwrap();
        assert!(!orphan.is_cancelled());
        let first = mark_task(SessionConfig::new());
        let first_token = marked_token(first.options()).unwrap();
        assert!(Arc::ptr_eq(&decoding_token(), &first_token));
        assert!(!Arc::ptr_eq(&decoding_token(), &orphan));
        // The next task's config takes over the thread.
        let second = mark_task(SessionConfig::new());
        let second_token = marked_token(second.options()).unwrap();
        assert!(Arc::ptr_eq(&decoding_token(), &second_token));
        // Another thread's marks do not leak here.
        std::thread::spawn(|| mark_task(SessionConfig::new()))
            .join()
            .unwrap();
        assert!(Arc::ptr_eq(&decoding_token(), &second_token));
    }
}
