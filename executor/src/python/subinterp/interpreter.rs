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

use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
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

/// A range of rows of one UDF call, for one interpreter.
pub(super) struct Job {
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
pub(super) fn run_worker(sys_path: &[String], ready: Sender<Result<(), String>>, queue: Queue) {
    let mut interpreter = match Interpreter::create(sys_path) {
        Ok(interpreter) => interpreter,
        Err(message) => {
            let _ = ready.send(Err(message));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    loop {
        // Hold the queue's lock only while waiting, not while working.
        let job = match queue.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => break,
        };
        let result = interpreter.run(&job);
        let _ = job.reply.send((job.chunk, result));
    }
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
        context.functions.insert(job.digest, function);
    }
    let function = context.functions[&job.digest].clone_ref(py);
    run_rows(py, context, &function, job)
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
