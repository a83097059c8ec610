//! The pool itself: interpreter threads, the shared queue, splitting a call's rows into
//! chunks and reassembling their results.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use datafusion::arrow::array::{Array, ArrayRef, new_empty_array};
use datafusion::arrow::compute::concat;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result};
use pyo3::prelude::*;

use super::callers::Callers;
use super::interpreter::{Call, Job, Queue, Worker, run_worker};
use super::{RowsError, from_python, raw_blocks, to_python};
use crate::cancellation::CancelToken;

/// Rows below which a call is not split further: handing a chunk to another interpreter
/// costs a few microseconds, about as much as running a few dozen rows.
const MIN_ROWS_PER_CHUNK: usize = 256;

/// How often a call waiting for its chunks looks at its cancellation token.
const CANCEL_CHECK: Duration = Duration::from_millis(20);

/// A pool of own-GIL sub-interpreters running row-wise Python UDFs.
pub struct SubInterpreterPool {
    size: usize,
    /// The shared job queue; `None` once shut down.
    sender: Option<Sender<Job>>,
    workers: Vec<(JoinHandle<()>, Arc<Worker>)>,
    /// Digests whose payloads could not load in a sub-interpreter, with the reason.
    refused: Mutex<HashMap<[u8; 32], String>>,
    /// The threads using the interpreters: a call splits only over the interpreters left.
    callers: Callers,
}

impl fmt::Debug for SubInterpreterPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubInterpreterPool")
            .field("size", &self.size)
            .field("running", &self.sender.is_some())
            .finish()
    }
}

/// Modules whose C parts must be initialized by the main interpreter before any
/// sub-interpreter imports them. `decimal`: a known crash otherwise. `datetime` (3.13): its
/// types are static types whose shared parts (e.g. the MRO tuples) would otherwise be
/// allocated by the first sub-interpreter's allocator and freed by another's, which aborts
/// the process when the interpreters end. `zoneinfo` builds on `datetime`.
const MAIN_FIRST: [&str; 3] = ["decimal", "datetime", "zoneinfo"];

/// The main interpreter's `sys.path` (with the venv's site-packages), after importing
/// [`MAIN_FIRST`] there. (This module is built only against Python >= 3.12, the version it
/// then links, so there is no version to check here.)
fn main_sys_path() -> Result<Vec<String>> {
    // SAFETY: Py_IsInitialized may be called at any time, with or without the GIL.
    if unsafe { pyo3::ffi::Py_IsInitialized() } == 0 {
        return Err(DataFusionError::Configuration(
            "sub-interpreters need the embedded Python interpreter to be initialized first \
             (python::embed::initialize)"
                .into(),
        ));
    }
    Python::attach(|py| {
        for module in MAIN_FIRST {
            py.import(module).map_err(|e| {
                DataFusionError::Execution(format!(
                    "importing {module} in the main interpreter before starting \
                     sub-interpreters: {e}"
                ))
            })?;
        }
        // Entries that are not `str` (allowed, but ignored by the import system) are skipped.
        let path = py
            .import("sys")
            .and_then(|sys| sys.getattr("path"))
            .and_then(|path| path.try_iter())
            .map(|entries| {
                entries
                    .filter_map(|entry| entry.ok()?.extract::<String>().ok())
                    .collect()
            });
        path.map_err(|e| DataFusionError::Execution(format!("reading sys.path: {e}")))
    })
}

impl SubInterpreterPool {
    /// Starts `size` interpreters, each on its own OS thread, created one after the other.
    /// Requires the main interpreter to be initialized (`embed::initialize`).
    pub fn start(size: usize) -> Result<Self> {
        if size == 0 {
            return Err(DataFusionError::Configuration(
                "a sub-interpreter pool needs at least one interpreter".into(),
            ));
        }
        let sys_path: Arc<[String]> = main_sys_path()?.into();
        let (sender, receiver) = mpsc::channel();
        let queue: Queue = Arc::new(Mutex::new(receiver));
        let mut pool = SubInterpreterPool {
            size,
            sender: Some(sender),
            workers: Vec::with_capacity(size),
            refused: Mutex::new(HashMap::new()),
            callers: Callers::default(),
        };
        // Interpreters are created one at a time, process-wide (CPython's creation path is
        // delicate; concurrent pools would otherwise interleave).
        static CREATION: Mutex<()> = Mutex::new(());
        // Creating an interpreter takes the main GIL on the worker thread: release it here in
        // case the caller holds it (e.g. when the executor runs inside a Python process).
        Python::attach(|py| {
            if let Err(why) = raw_blocks::install() {
                log::debug!("sub-interpreters do not reuse raw memory blocks: {why}");
            }
            py.detach(|| {
                let _one_at_a_time = CREATION.lock().unwrap_or_else(|e| e.into_inner());
                for index in 0..size {
                    pool.workers.push(spawn_worker(index, &sys_path, &queue)?);
                }
                Ok::<_, DataFusionError>(())
            })
        })?;
        Ok(pool)
    }

    /// The number of interpreters.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Runs a row-wise UDF over `args` (arrays of `num_rows` rows each; with no arguments
    /// the function is called `num_rows` times without arguments), splitting the rows into
    /// contiguous chunks across the interpreters and reassembling the results in order.
    /// `payload` is `cloudpickle.dumps(func)`; `digest` identifies it (each interpreter
    /// unpickles a digest once and keeps the function). Returns an array of `return_type`.
    ///
    /// When `cancel` fires, the call returns at once with an error; its chunks not yet started
    /// are skipped and the interpreters running the others are interrupted.
    #[allow(clippy::too_many_arguments)]
    pub fn call_rows(
        &self,
        name: &str,
        digest: [u8; 32],
        payload: &Arc<[u8]>,
        args: &[ArrayRef],
        num_rows: usize,
        return_type: &DataType,
        cancel: Option<&CancelToken>,
    ) -> Result<ArrayRef, RowsError> {
        let refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(reason) = refused.get(&digest) {
            return Err(RowsError::LoadRefused(reason.clone()));
        }
        drop(refused);
        validate(name, args, num_rows, return_type)?;
        if num_rows == 0 {
            return Ok(new_empty_array(return_type));
        }
        let Some(sender) = &self.sender else {
            return Err(failed(format!(
                "Python UDF '{name}': the sub-interpreter pool is shut down"
            )));
        };
        // Split over the interpreters no other task is using. With one task per interpreter
        // (vcores = pool size) each call then keeps one interpreter and skips the split's
        // hand-offs (a 2-way split of 8192 rows cost ~120 us over an even share); a lone call,
        // such as a stage's last task, still gets them all.
        let chunks = chunk_ranges(num_rows, self.callers.interpreters_for(self.size));
        let _using = self.callers.begin(chunks.len());
        let (reply, results) = mpsc::channel();
        let shared_args: Arc<[ArrayRef]> = args.iter().cloned().collect();
        let name_arc: Arc<str> = name.into();
        let return_type_arc = Arc::new(return_type.clone());
        let call = Call::new();
        for (chunk, rows) in chunks.iter().enumerate() {
            let job = Job {
                call: Arc::clone(&call),
                name: Arc::clone(&name_arc),
                digest,
                payload: Arc::clone(payload),
                args: Arc::clone(&shared_args),
                rows: rows.clone(),
                return_type: Arc::clone(&return_type_arc),
                chunk,
                reply: reply.clone(),
            };
            if sender.send(job).is_err() {
                return Err(failed(format!(
                    "Python UDF '{name}': the sub-interpreter workers have stopped"
                )));
            }
        }
        drop(reply);
        let mut outcomes: Vec<Option<Result<ArrayRef, RowsError>>> =
            chunks.iter().map(|_| None).collect();
        let mut received = 0;
        while received < chunks.len() {
            let next = match cancel {
                None => results.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(_) => results.recv_timeout(CANCEL_CHECK),
            };
            match next {
                Ok((chunk, outcome)) => {
                    outcomes[chunk] = Some(outcome);
                    received += 1;
                }
                Err(RecvTimeoutError::Timeout) => {
                    if cancel.is_some_and(CancelToken::is_cancelled) {
                        return Err(self.cancel_call(name, &call));
                    }
                }
                // A worker died without replying (its sender is then dropped).
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.assemble(name, digest, outcomes)
    }

    /// Skips the chunks of `call` not started yet and interrupts those running; the
    /// interpreters then serve the next calls. Their late replies go nowhere.
    fn cancel_call(&self, name: &str, call: &Call) -> RowsError {
        // SeqCst: pairs with the worker's announce-then-check (see `run_worker`).
        call.cancelled.store(true, Ordering::SeqCst);
        for (_, worker) in &self.workers {
            worker.interrupt(call);
        }
        failed(format!(
            "Python UDF '{name}': the job was cancelled; its Python code was interrupted"
        ))
    }

    /// The chunks' arrays in order, or the call's error: LoadRefused if any chunk was
    /// refused (remembered for the digest), otherwise the first chunk's failure.
    fn assemble(
        &self,
        name: &str,
        digest: [u8; 32],
        outcomes: Vec<Option<Result<ArrayRef, RowsError>>>,
    ) -> Result<ArrayRef, RowsError> {
        let mut arrays = Vec::with_capacity(outcomes.len());
        let mut first_failure = None;
        for outcome in outcomes {
            match outcome {
                Some(Ok(array)) => arrays.push(array),
                Some(Err(RowsError::LoadRefused(reason))) => {
                    self.refused
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(digest, reason.clone());
                    return Err(RowsError::LoadRefused(reason));
                }
                Some(Err(failure)) => {
                    first_failure.get_or_insert(failure);
                }
                None => {
                    first_failure.get_or_insert_with(|| {
                        failed(format!(
                            "Python UDF '{name}': a sub-interpreter worker stopped unexpectedly"
                        ))
                    });
                }
            }
        }
        if let Some(failure) = first_failure {
            return Err(failure);
        }
        if arrays.len() == 1 {
            return Ok(arrays.pop().expect("one array"));
        }
        let parts: Vec<&dyn Array> = arrays.iter().map(|a| a.as_ref()).collect();
        concat(&parts).map_err(|e| {
            failed(format!(
                "Python UDF '{name}': assembling the results of the sub-interpreters: {e}"
            ))
        })
    }

    /// Stops every interpreter (each ends on its own thread) and joins the threads. Calls
    /// already queued are served first. Also done on drop.
    pub fn shutdown(&mut self) {
        // Closing the queue makes each worker end its interpreter and return.
        self.sender = None;
        for (thread, _) in self.workers.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for SubInterpreterPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub(super) fn failed(message: String) -> RowsError {
    RowsError::Failed(DataFusionError::Execution(message))
}

/// Starts worker `index` and waits until its interpreter exists (or failed to start).
fn spawn_worker(
    index: usize,
    sys_path: &Arc<[String]>,
    queue: &Queue,
) -> Result<(JoinHandle<()>, Arc<Worker>)> {
    let (ready, started) = mpsc::channel();
    let sys_path = Arc::clone(sys_path);
    let queue = Arc::clone(queue);
    let worker = Arc::new(Worker::default());
    let shared = Arc::clone(&worker);
    let handle = std::thread::Builder::new()
        .name(format!("pickleball-subinterpreter-{index}"))
        .spawn(move || run_worker(&sys_path, ready, queue, shared))
        .map_err(|e| {
            DataFusionError::Execution(format!("starting a sub-interpreter thread: {e}"))
        })?;
    match started.recv() {
        Ok(Ok(())) => Ok((handle, worker)),
        Ok(Err(message)) => {
            let _ = handle.join();
            Err(DataFusionError::Execution(format!(
                "starting sub-interpreter {index}: {message}"
            )))
        }
        Err(_) => {
            let _ = handle.join();
            Err(DataFusionError::Execution(format!(
                "starting sub-interpreter {index}: its thread ended before reporting"
            )))
        }
    }
}

/// Checks the arguments and return type before anything is queued.
fn validate(
    name: &str,
    args: &[ArrayRef],
    num_rows: usize,
    return_type: &DataType,
) -> Result<(), RowsError> {
    for (k, arg) in args.iter().enumerate() {
        if arg.len() != num_rows {
            return Err(RowsError::Failed(DataFusionError::Internal(format!(
                "Python UDF '{name}': argument {k} has {} rows, expected {num_rows}",
                arg.len()
            ))));
        }
        if let Err(t) = to_python::check(arg.data_type()) {
            return Err(failed(format!(
                "Python UDF '{name}' cannot run in a sub-interpreter: argument {k} has type {}, \
                 and values of type {t} have no conversion to Python objects",
                arg.data_type()
            )));
        }
    }
    if let Err(t) = from_python::check(return_type) {
        return Err(failed(format!(
            "Python UDF '{name}' cannot run in a sub-interpreter: its return type {return_type} \
             contains {t}, which has no conversion from Python objects"
        )));
    }
    Ok(())
}

/// `num_rows` split into at most `interpreters` contiguous, nearly equal ranges of at least
/// `MIN_ROWS_PER_CHUNK` rows (except when there are fewer rows than that).
fn chunk_ranges(num_rows: usize, interpreters: usize) -> Vec<Range<usize>> {
    let count = num_rows
        .div_ceil(MIN_ROWS_PER_CHUNK)
        .min(interpreters)
        .max(1);
    let (base, extra) = (num_rows / count, num_rows % count);
    let mut start = 0;
    (0..count)
        .map(|i| {
            let len = base + usize::from(i < extra);
            let range = start..start + len;
            start += len;
            range
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_all_rows_in_order() {
        for rows in [1, 255, 256, 257, 1000, 8191] {
            for interpreters in 1..6 {
                let chunks = chunk_ranges(rows, interpreters);
                assert!(chunks.len() <= interpreters);
                assert_eq!(chunks.first().unwrap().start, 0);
                assert_eq!(chunks.last().unwrap().end, rows);
                assert!(chunks.windows(2).all(|w| w[0].end == w[1].start));
            }
        }
        assert_eq!(chunk_ranges(1000, 4).len(), 4);
        assert_eq!(chunk_ranges(300, 4).len(), 2);
    }
}
