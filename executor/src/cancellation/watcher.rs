//! The thread that asks the scheduler whether the jobs of running tasks have ended.
//!
//! It has a runtime of its own on purpose: a task's Python UDF runs synchronously on one of
//! the executor's async worker threads, and while it loops forever that thread polls nothing
//! else. A watcher spawned beside the task on the same runtime could sit behind it (tokio's
//! per-worker LIFO slot is not stolen by other workers) and never fire; this thread cannot be
//! starved that way. It also asks once per job, however many of its tasks run here.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use ballista_core::serde::protobuf::GetJobStatusParams;
use ballista_core::serde::protobuf::job_status::Status;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use tonic::transport::Channel;

use super::CancelToken;
use crate::scheduler_client::SchedulerAddress;

/// How often the jobs of running tasks are looked up on the scheduler.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// How long one lookup may take before the watcher moves on (and asks again next round).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// What a running task asked to be told about.
struct Watched {
    scheduler: SchedulerAddress,
    job_id: String,
    tokens: Vec<Arc<CancelToken>>,
}

/// Watched tasks by registration id; the thread starts with the first registration.
static WATCHED: LazyLock<Mutex<HashMap<u64, Watched>>> = LazyLock::new(|| {
    if let Err(e) = std::thread::Builder::new()
        .name("pickleball-job-watcher".into())
        .spawn(run)
    {
        log::warn!("cannot start the job watcher thread; cancelled jobs' UDFs run on: {e}");
    }
    Mutex::default()
});

/// Stops watching a task when dropped.
#[derive(Debug)]
pub struct WatchGuard(u64);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        watched().remove(&self.0);
    }
}

fn watched() -> std::sync::MutexGuard<'static, HashMap<u64, Watched>> {
    WATCHED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Fires `tokens` once `scheduler` says `job_id` is neither queued nor running, unless the
/// returned guard drops first. An unreachable scheduler is not a reason: the task goes on and
/// the watcher asks again.
pub fn watch(
    scheduler: SchedulerAddress,
    job_id: String,
    tokens: Vec<Arc<CancelToken>>,
) -> WatchGuard {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    watched().insert(
        id,
        Watched {
            scheduler,
            job_id,
            tokens,
        },
    );
    WatchGuard(id)
}

/// The watcher's connections, one per scheduler.
type Clients = HashMap<SchedulerAddress, SchedulerGrpcClient<Channel>>;

/// The watcher thread's body: one round per [`WATCH_INTERVAL`], forever.
fn run() {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            log::warn!("the job watcher cannot start its runtime: {e}");
            return;
        }
    };
    let mut clients = HashMap::new();
    loop {
        std::thread::sleep(WATCH_INTERVAL);
        runtime.block_on(round(&mut clients));
    }
}

/// Looks up each watched job once and fires the tokens of those that ended.
async fn round(clients: &mut Clients) {
    let jobs: HashSet<(SchedulerAddress, String)> = watched()
        .values()
        .map(|w| (w.scheduler.clone(), w.job_id.clone()))
        .collect();
    for (scheduler, job_id) in jobs {
        if has_ended(clients, &scheduler, &job_id).await {
            log::info!("job {job_id} has ended on the scheduler; stopping its Python UDFs");
            let mut fired = Vec::new();
            watched().retain(|_, w| {
                let ended = w.scheduler == scheduler && w.job_id == job_id;
                if ended {
                    fired.append(&mut w.tokens);
                }
                !ended
            });
            fire_elsewhere(fired);
        }
    }
}

/// Whether the scheduler says the job is neither queued nor running (false when it cannot
/// be asked).
async fn has_ended(clients: &mut Clients, scheduler: &SchedulerAddress, job_id: &str) -> bool {
    if !clients.contains_key(scheduler) {
        match tokio::time::timeout(LOOKUP_TIMEOUT, scheduler.connect()).await {
            Ok(Ok(client)) => {
                clients.insert(scheduler.clone(), client);
            }
            _ => return false,
        }
    }
    let client = clients.get_mut(scheduler).expect("connected above");
    let request = client.get_job_status(GetJobStatusParams {
        job_id: job_id.to_owned(),
    });
    let status = match tokio::time::timeout(LOOKUP_TIMEOUT, request).await {
        Ok(Ok(reply)) => reply.into_inner().status.and_then(|s| s.status),
        outcome => {
            log::debug!("looking up job {job_id} on {}: {outcome:?}", scheduler.url);
            clients.remove(scheduler);
            return false;
        }
    };
    !matches!(status, Some(Status::Queued(_) | Status::Running(_)))
}

/// Fires `tokens` on a thread of their own: hooks may wait for a GIL, which must not hold up
/// the watcher's next round.
pub(super) fn fire_elsewhere(tokens: Vec<Arc<CancelToken>>) {
    if tokens.is_empty() {
        return;
    }
    let cancel = move || tokens.iter().for_each(|token| token.cancel());
    if let Err(e) = std::thread::Builder::new()
        .name("pickleball-cancel".into())
        .spawn(cancel)
    {
        log::warn!("cannot start a thread to stop a cancelled job's Python UDFs: {e}");
    }
}
