//! The tokio runtime behind the Python client, rebuilt after `fork`.
//!
//! A forked child inherits the parent's runtime object but none of its worker threads, so a
//! future spawned on it would never run. We remember the pid that built the runtime and build a
//! fresh one when the current pid differs. The parent's runtime is leaked in the child on
//! purpose: dropping it would try to join threads that do not exist there.

use std::sync::{Arc, Mutex};

use tokio::runtime::Runtime;

static RUNTIME: Mutex<Option<(u32, Arc<Runtime>)>> = Mutex::new(None);

/// The runtime for this process, built on first use and again after a fork.
pub fn runtime() -> Arc<Runtime> {
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    match slot.as_ref() {
        Some((owner, rt)) if *owner == pid => rt.clone(),
        _ => {
            if let Some(stale) = slot.take() {
                std::mem::forget(stale);
            }
            let rt = Arc::new(build_runtime("pickleball-client"));
            *slot = Some((pid, rt.clone()));
            rt
        }
    }
}

/// A multi-threaded runtime with Ballista's customary large stacks (deep plans recurse).
pub fn build_runtime(name: &str) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(name)
        .thread_stack_size(32 * 1024 * 1024)
        .build()
        .expect("building a tokio runtime")
}
