//! One own-GIL sub-interpreter on its own OS thread: created on that thread at start-up,
//! serving jobs (a range of rows of one UDF call) from the pool's queue, and ended there.
//!
//! Thread-state protocol (CPython 3.12/3.13):
//! - creation: `PyGILState_Ensure` (a main-interpreter thread state for this thread, with the
//!   main GIL) → `Py_NewInterpreterFromConfig` (detaches the main thread state and makes the
//!   new interpreter's current) → set-up → `PyEval_SaveThread` (detach it) →
//!   `PyEval_RestoreThread(main)` → `PyGILState_Release` (deletes the temporary main thread
//!   state and releases the main GIL). Releasing needs the main thread state current again.
//! - per job: `PyEval_RestoreThread(tstate)` → work → `PyEval_SaveThread()`.
//! - end: `PyEval_RestoreThread(tstate)` → drop our objects → `Py_EndInterpreter` (which
//!   leaves no current thread state).

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::DataFusionError;
use pyo3::ffi;

use super::RowsError;
use super::context::Context;
use super::ffi_util::{Gil, PyObj, Raised, take_exception, unicode};
use super::rows::run_rows;

/// One UDF call, shared by its chunks: cancelling it skips the chunks not yet started.
#[derive(Debug)]
pub(super) struct Call {
    /// Unique in the process (never 0, which means "no call" in [`Worker::running`]).
    pub id: u64,
    pub cancelled: AtomicBool,
}

impl Call {
    pub(super) fn new() -> Arc<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Arc::new(Call {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            cancelled: AtomicBool::new(false),
        })
    }
}

/// What other threads may know of a worker: its interpreter and the call it runs.
#[derive(Debug, Default)]
pub(super) struct Worker {
    interpreter: AtomicPtr<ffi::PyInterpreterState>,
    /// Id of the call whose rows the interpreter is running, 0 when idle.
    running: AtomicU64,
}

unsafe extern "C" {
    /// CPython's queue of calls an interpreter runs at its next eval-breaker check (what
    /// signal handlers use). Internal but exported, with this signature in 3.12 and 3.13; it
    /// may be called from any thread without holding any GIL.
    fn _PyEval_AddPendingCall(
        interp: *mut ffi::PyInterpreterState,
        func: extern "C" fn(*mut c_void) -> c_int,
        arg: *mut c_void,
        flags: c_int,
    ) -> c_int;
}

thread_local! {
    /// On a worker thread: the id of the call being run (0: none).
    static RUNNING: Cell<u64> = const { Cell::new(0) };
}

/// The message of the exception raised in a cancelled UDF.
const CANCELLED: &std::ffi::CStr = c"pickleball: the job was cancelled";

/// Runs on the worker thread, with its interpreter's GIL, when the interpreter next checks its
/// eval breaker: raises `KeyboardInterrupt` if the worker still runs call `arg` (it may have
/// moved on to another call since the request).
extern "C" fn interrupt_if_running(arg: *mut c_void) -> c_int {
    if RUNNING.with(Cell::get) != arg as u64 {
        return 0;
    }
    // SAFETY: pending calls run with the interpreter's GIL held, on its thread.
    unsafe { ffi::PyErr_SetString(ffi::PyExc_KeyboardInterrupt, CANCELLED.as_ptr()) };
    -1
}

impl Worker {
    /// Asks the interpreter to raise `KeyboardInterrupt` in the UDF it runs, if that is still
    /// part of `call` when it notices (at the next bytecode boundary that checks for
    /// interrupts; a blocking C call is not interrupted).
    pub(super) fn interrupt(&self, call: &Call) {
        let interp = self.interpreter.load(Ordering::Acquire);
        if interp.is_null() || self.running.load(Ordering::SeqCst) != call.id {
            return;
        }
        // SAFETY: the interpreter lives as long as its worker thread, which ends it only after
        // the pool's queue closes; the pool (which owns this worker) is alive while a call is
        // in flight. The callback checks the call id on the worker thread itself.
        let queued = unsafe {
            _PyEval_AddPendingCall(interp, interrupt_if_running, call.id as *mut c_void, 0)
        };
        if queued != 0 {
            log::warn!("could not interrupt a sub-interpreter: its pending-call queue is full");
        }
    }
}

/// A range of rows of one UDF call, for one interpreter.
pub(super) struct Job {
    /// The call this chunk belongs to.
    pub call: Arc<Call>,
    /// The UDF's name, for messages.
    pub name: Arc<str>,
    /// The payload's cache key.
    pub digest: [u8; 32],
    /// `cloudpickle.dumps(func)`.
    pub payload: Arc<[u8]>,
    /// All the call's arguments (whole arrays; `rows` selects this job's part).
    pub args: Arc<[ArrayRef]>,
    /// The rows to run, as indexes into `args`.
    pub rows: Range<usize>,
    /// The Arrow type of the results.
    pub return_type: Arc<DataType>,
    /// Index of this chunk within its call, sent back with the result.
    pub chunk: usize,
    /// Where the chunk's outcome goes.
    pub reply: Sender<(usize, Result<ArrayRef, RowsError>)>,
}

/// The pool's job queue, shared by all workers: whichever interpreter is free takes the
/// next chunk.
pub(super) type Queue = Arc<Mutex<Receiver<Job>>>;

/// Creates the interpreter on the current thread, reports the outcome on `ready`, then serves
/// jobs until the queue closes, and ends the interpreter. The body of a worker thread.
pub(super) fn run_worker(
    sys_path: &[String],
    ready: Sender<Result<(), String>>,
    queue: Queue,
    worker: Arc<Worker>,
) {
    super::raw_blocks::keep_on_this_thread();
    let mut interpreter = match Interpreter::create(sys_path) {
        Ok(interpreter) => interpreter,
        Err(message) => {
            let _ = ready.send(Err(message));
            return;
        }
    };
    // SAFETY: `tstate` is a live thread state of the new interpreter.
    let interp = unsafe { ffi::PyThreadState_GetInterpreter(interpreter.tstate) };
    worker.interpreter.store(interp, Ordering::Release);
    let _ = ready.send(Ok(()));
    loop {
        // Hold the queue's lock only while waiting, not while working.
        let job = match queue.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => break,
        };
        // Announce the call before checking whether it was cancelled, while the canceller
        // marks it cancelled before looking at what runs (all SeqCst): at least one of the
        // two sees the other, so a chunk is either skipped or interrupted, never missed.
        worker.running.store(job.call.id, Ordering::SeqCst);
        RUNNING.with(|running| running.set(job.call.id));
        let result = if job.call.cancelled.load(Ordering::SeqCst) {
            Err(super::pool::failed(format!(
                "Python UDF '{}': the job was cancelled",
                job.name
            )))
        } else {
            interpreter.run(&job)
        };
        RUNNING.with(|running| running.set(0));
        worker.running.store(0, Ordering::SeqCst);
        super::raw_blocks::publish_reuse();
        let _ = job.reply.send((job.chunk, result));
    }
    worker
        .interpreter
        .store(std::ptr::null_mut(), Ordering::Release);
    interpreter.end();
}

/// A sub-interpreter whose thread state belongs to the current thread.
struct Interpreter {
    tstate: *mut ffi::PyThreadState,
    /// `None` only after `end`.
    context: Option<Context>,
}

/// The interpreter configuration of PEP 684 isolation: own GIL and allocator, no fork, exec
/// or threads, and only extension modules that declare support for sub-interpreters.
fn isolated_config() -> ffi::PyInterpreterConfig {
    ffi::PyInterpreterConfig {
        use_main_obmalloc: 0,
        allow_fork: 0,
        allow_exec: 0,
        allow_threads: 0,
        allow_daemon_threads: 0,
        check_multi_interp_extensions: 1,
        gil: ffi::PyInterpreterConfig_OWN_GIL,
    }
}

impl Interpreter {
    /// Creates and sets up the interpreter (see the module documentation for the sequence).
    fn create(sys_path: &[String]) -> Result<Self, String> {
        // SAFETY: follows CPython's documented thread-state rules, on a thread
        // that has no thread state yet (a fresh worker thread): GILState_Ensure makes one for
        // the main interpreter; the new interpreter's thread state is current between its
        // creation and SaveThread; the main one is made current again before the release.
        unsafe {
            let gil_state = ffi::PyGILState_Ensure();
            let main_tstate = ffi::PyThreadState_Get();
            let mut tstate: *mut ffi::PyThreadState = std::ptr::null_mut();
            let status = ffi::Py_NewInterpreterFromConfig(&mut tstate, &isolated_config());
            if ffi::PyStatus_Exception(status) != 0 || tstate.is_null() {
                // On failure CPython restores the main thread state as the current one.
                let message = if status.err_msg.is_null() {
                    "Py_NewInterpreterFromConfig failed".to_owned()
                } else {
                    std::ffi::CStr::from_ptr(status.err_msg)
                        .to_string_lossy()
                        .into_owned()
                };
                ffi::PyErr_Clear();
                ffi::PyGILState_Release(gil_state);
                return Err(message);
            }
            let py = Gil::assume();
            let setup = set_sys_path(py, sys_path)
                .and_then(|()| Context::new(py).ok_or_else(|| take_exception(py, None)));
            let result = match setup {
                Ok(context) => {
                    ffi::PyEval_SaveThread();
                    Ok(Interpreter {
                        tstate,
                        context: Some(context),
                    })
                }
                Err(raised) => {
                    ffi::Py_EndInterpreter(tstate);
                    Err(format!(
                        "setting up a sub-interpreter failed: {}: {}\n{}",
                        raised.kind, raised.message, raised.traceback
                    ))
                }
            };
            ffi::PyEval_RestoreThread(main_tstate);
            ffi::PyGILState_Release(gil_state);
            result
        }
    }

    /// Runs one job with the interpreter's GIL held.
    fn run(&mut self, job: &Job) -> Result<ArrayRef, RowsError> {
        // SAFETY: `tstate` belongs to this thread's interpreter and is detached between jobs;
        // the token lives only until the matching SaveThread below.
        let py = unsafe {
            ffi::PyEval_RestoreThread(self.tstate);
            Gil::assume()
        };
        let context = self.context.as_mut().expect("the interpreter is running");
        let result =
            catch_unwind(AssertUnwindSafe(|| run_job(py, context, job))).unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(RowsError::Failed(DataFusionError::Internal(format!(
                    "Python UDF '{}': the sub-interpreter worker panicked: {what}",
                    job.name
                ))))
            });
        // SAFETY: the GIL is still held. No exception may outlive its job (every error path
        // takes it; this is a safety net). Then release the GIL taken above; `py` is not used
        // after this point.
        unsafe {
            ffi::PyErr_Clear();
            ffi::PyEval_SaveThread();
        }
        result
    }

    /// Drops our Python objects and ends the interpreter, on its own thread.
    fn end(mut self) {
        // SAFETY: `tstate` belongs to this thread's interpreter and is detached; the objects
        // are released with its GIL held; Py_EndInterpreter needs it current and leaves no
        // thread state current afterwards.
        unsafe {
            ffi::PyEval_RestoreThread(self.tstate);
            drop(self.context.take());
            ffi::Py_EndInterpreter(self.tstate);
            debug_assert!(ffi::PyThreadState_GetUnchecked().is_null());
        }
    }
}

/// Replaces the new interpreter's `sys.path` with the main interpreter's (which includes the
/// venv's site-packages added at run time).
fn set_sys_path(py: Gil, sys_path: &[String]) -> Result<(), Raised> {
    // SAFETY: the token proves the GIL is held.
    let list =
        PyObj::owned(py, unsafe { ffi::PyList_New(0) }).ok_or_else(|| take_exception(py, None))?;
    for entry in sys_path {
        let item = PyObj::owned(py, unicode(py, entry)).ok_or_else(|| take_exception(py, None))?;
        // SAFETY: the token proves the GIL is held; both objects are live (Append increfs).
        if unsafe { ffi::PyList_Append(list.as_ptr(), item.as_ptr()) } < 0 {
            return Err(take_exception(py, None));
        }
    }
    // SAFETY: the token proves the GIL is held; the name is NUL-terminated; `sys` keeps its
    // own reference to the list.
    if unsafe { ffi::PySys_SetObject(c"path".as_ptr(), list.as_ptr()) } < 0 {
        return Err(take_exception(py, None));
    }
    Ok(())
}

/// The unpickled UDF (cached by digest), then its rows.
fn run_job(py: Gil, context: &mut Context, job: &Job) -> Result<ArrayRef, RowsError> {
    if !context.functions.contains_key(&job.digest) {
        let function = unpickle(py, context, job)?;
        give_versions(py, context, &function);
        context.functions.insert(job.digest, function);
    }
    let function = context.functions[&job.digest].clone_ref(py);
    run_rows(py, context, &function, job)
}

/// Lets calls to `function` be specialized (see [`crate::python::specialize`]). A failure
/// only leaves them unspecialized, so it is cleared.
fn give_versions(py: Gil, context: &Context, function: &PyObj) {
    use crate::python::specialize::{adopt_versions, lacks_version};
    // SAFETY: the token proves this interpreter's GIL is held; `function` is live.
    if !unsafe { lacks_version(function.as_ptr()) } {
        return;
    }
    match super::ffi_util::call1(py, context.twins.as_ptr(), function.as_ptr()) {
        // SAFETY: as above; `pairs` is live.
        Some(pairs) => unsafe { adopt_versions(pairs.as_ptr()) },
        None => super::ffi_util::clear_error(py),
    }
}

/// `cloudpickle.loads(payload)`, which must be callable.
fn unpickle(py: Gil, context: &Context, job: &Job) -> Result<PyObj, RowsError> {
    let name = &job.name;
    // SAFETY: the token proves the GIL is held; the pointer and length describe `payload`.
    let bytes = PyObj::owned(py, unsafe {
        ffi::PyBytes_FromStringAndSize(job.payload.as_ptr().cast(), job.payload.len() as isize)
    });
    let loaded = bytes.and_then(|b| super::ffi_util::call1(py, context.loads.as_ptr(), b.as_ptr()));
    let Some(function) = loaded else {
        let raised = take_exception(py, Some(&context.format_exception));
        if raised.import_error {
            return Err(RowsError::LoadRefused(super::rows::refusal_reason(&raised)));
        }
        return Err(super::rows::raised_error(
            name,
            "unpickling it in a sub-interpreter",
            &raised,
        ));
    };
    // SAFETY: the token proves the GIL is held; `function` is live.
    if unsafe { ffi::PyCallable_Check(function.as_ptr()) } == 0 {
        return Err(RowsError::Failed(DataFusionError::Execution(format!(
            "Python UDF '{name}': its payload unpickled to a {}, which is not callable",
            super::ffi_util::type_name(py, function.as_ptr())
        ))));
    }
    Ok(function)
}
