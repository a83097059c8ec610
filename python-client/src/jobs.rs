//! Cancelling a submitted job from the client: Ctrl-C while waiting for its results, or
//! dropping its result stream unread.
//!
//! Ballista's client API submits a job and streams its results without telling its id, so
//! each submission gets a job name of its own (`ballista.job.name`), and cancelling looks that
//! name up in the scheduler's REST API on the scheduler's port (`GET /api/jobs`, then
//! `PATCH /api/job/{id}`, which is how Ballista's own tools cancel jobs).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use datafusion::common::Result;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionContext;

use crate::rest::SchedulerHttp;

/// Ballista's session setting naming the jobs a session submits.
const JOB_NAME: &str = "ballista.job.name";

/// How long cancelling waits for the scheduler's answers.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(3);

/// A job submitted by this client, to cancel until it finishes.
#[derive(Debug)]
pub struct JobTicket {
    scheduler: SchedulerHttp,
    name: String,
    finished: AtomicBool,
}

impl JobTicket {
    /// A ticket for a job about to be submitted through `ctx` to `scheduler`, and the context
    /// to submit it with (`ctx` plus the job's unique name).
    pub fn issue(
        ctx: &SessionContext,
        scheduler: &SchedulerHttp,
    ) -> Result<(Self, SessionContext)> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let state = ctx.state();
        let mut config = state.config().clone();
        let base = config
            .options()
            .entries()
            .into_iter()
            .find(|entry| entry.key == JOB_NAME)
            .and_then(|entry| entry.value)
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "pickleball".into());
        let name = format!(
            "{base} #{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        config.options_mut().set(JOB_NAME, &name)?;
        let state = SessionStateBuilder::new_from_existing(state)
            .with_config(config)
            .build();
        let ticket = Self {
            scheduler: scheduler.clone(),
            name,
            finished: AtomicBool::new(false),
        };
        Ok((ticket, SessionContext::new_with_state(state)))
    }

    /// The job's name on the scheduler.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Marks the job as finished (its results were read or it failed): nothing to cancel.
    pub fn finish(&self) {
        self.finished.store(true, Ordering::Release);
    }

    /// Cancels the job on the scheduler unless it has finished. Returns whether a queued or
    /// running job was cancelled. Looks a few times, in case the job is still being submitted.
    pub async fn cancel(&self) -> std::result::Result<bool, String> {
        if self.finished.swap(true, Ordering::AcqRel) {
            return Ok(false);
        }
        let attempt = async {
            for _ in 0..5 {
                let (_, body) = self.scheduler.request("GET", "/api/jobs").await?;
                let jobs: Vec<serde_json::Value> = serde_json::from_slice(&body)
                    .map_err(|e| format!("the scheduler's job list is not JSON: {e}"))?;
                let job = jobs
                    .iter()
                    .find(|job| job["job_name"] == self.name.as_str());
                if let Some(job) = job {
                    if !matches!(job["status"].as_str(), Some("Queued" | "Running")) {
                        return Ok(false);
                    }
                    let id = job["job_id"].as_str().unwrap_or_default();
                    let path = format!("/api/job/{id}");
                    let (status, _) = self.scheduler.request("PATCH", &path).await?;
                    return Ok(status == 200);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(false)
        };
        tokio::time::timeout(CANCEL_TIMEOUT, attempt)
            .await
            .unwrap_or_else(|_| Err("the scheduler did not answer in time".into()))
    }
}
