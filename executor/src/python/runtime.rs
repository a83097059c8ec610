//! The executor's Python runtime: picks the lane of each UDF.
//!
//! Row-wise UDFs (`pickleball.udf`) run on the pool of own-GIL sub-interpreters, one per
//! core, unless they asked for the main interpreter or their code cannot load in a
//! sub-interpreter (then they move to the main interpreter, logged once per UDF). Stock
//! datafusion-python UDFs (pyarrow arrays, Accumulator, WindowEvaluator) run in the main
//! interpreter.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};

use datafusion::common::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, PartitionEvaluatorArgs};
use datafusion::logical_expr::{
    Accumulator, ColumnarValue, PartitionEvaluator, ScalarFunctionArgs,
};
use pickleball_codec::udf::{Convention, Lane, PythonRuntime, UdfFrame};

use super::MainInterpreterRuntime;
use super::main_lane::argument_arrays;
use super::main_rows::invoke_rows;
use super::subinterp::{RowsError, SubInterpreterPool};

/// Whether the sub-interpreter pool runs.
#[derive(Debug)]
enum PoolState {
    NotStarted,
    Running(Arc<SubInterpreterPool>),
    /// Size 0, or the interpreters could not start (e.g. Python < 3.12).
    Unavailable,
    Stopped,
}

/// Runs Python UDFs on an executor; see the module documentation.
#[derive(Debug)]
pub struct ExecutorRuntime {
    main: MainInterpreterRuntime,
    /// Size of the sub-interpreter pool, started on first use (0: none).
    pool_size: usize,
    pool: RwLock<PoolState>,
    /// UDF digests already moved to the main interpreter (logged once each).
    moved: Mutex<HashSet<[u8; 32]>>,
}

impl ExecutorRuntime {
    /// A runtime whose row-wise UDFs run on `subinterpreters` sub-interpreters (0: all in
    /// the main interpreter).
    pub fn new(subinterpreters: usize) -> Self {
        Self {
            main: MainInterpreterRuntime::default(),
            pool_size: subinterpreters,
            pool: RwLock::new(PoolState::NotStarted),
            moved: Mutex::default(),
        }
    }

    /// The sub-interpreter pool, started on first use; `None` when there is none.
    pub fn pool(&self) -> Option<Arc<SubInterpreterPool>> {
        if let PoolState::Running(pool) = &*self.pool.read().unwrap_or_else(|e| e.into_inner()) {
            return Some(Arc::clone(pool));
        }
        let mut state = self.pool.write().unwrap_or_else(|e| e.into_inner());
        if let PoolState::NotStarted = *state {
            *state = match self.pool_size {
                0 => PoolState::Unavailable,
                size => match SubInterpreterPool::start(size) {
                    Ok(pool) => {
                        log::info!("started {} Python sub-interpreters", pool.size());
                        PoolState::Running(Arc::new(pool))
                    }
                    Err(e) => {
                        log::warn!(
                            "row-wise Python UDFs will run in the main interpreter, one at a \
                             time: {e}"
                        );
                        PoolState::Unavailable
                    }
                },
            };
        }
        match &*state {
            PoolState::Running(pool) => Some(Arc::clone(pool)),
            _ => None,
        }
    }

    /// Ends the sub-interpreters (once calls in flight return); later row-wise UDFs run in
    /// the main interpreter. Call it before the embedding Python finalizes.
    pub fn stop_pool(&self) {
        self.replace_pool(PoolState::Stopped);
    }

    /// Ends the sub-interpreters (once calls in flight return); the next row-wise UDF starts
    /// new ones. Call it before `fork()`: CPython 3.13's child crashes while deleting the
    /// parent's sub-interpreters (`PyThreadState_Get: ... the GIL is released`).
    pub fn suspend_pool(&self) {
        self.replace_pool(PoolState::NotStarted);
    }

    fn replace_pool(&self, next: PoolState) {
        let mut state = self.pool.write().unwrap_or_else(|e| e.into_inner());
        let previous = match &*state {
            PoolState::Stopped | PoolState::Unavailable => return,
            _ => std::mem::replace(&mut *state, next),
        };
        drop(state);
        // The last reference ends the interpreters, each on its own thread.
        drop(previous);
    }

    fn rows(&self, frame: &Arc<UdfFrame>, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = argument_arrays(&args)?;
        let sig = &frame.signature;
        if sig.lane == Lane::SubInterpreter
            && let Some(pool) = self.pool()
        {
            let payload = frame.shared_payload();
            let cancel = crate::cancellation::current();
            match pool.call_rows(
                &sig.name,
                frame.digest,
                &payload,
                &arrays,
                rows,
                sig.returns.data_type(),
                cancel.as_deref(),
            ) {
                Ok(array) => return Ok(ColumnarValue::Array(array)),
                Err(RowsError::Failed(e)) => return Err(e),
                Err(RowsError::LoadRefused(reason)) => self.note_moved(frame, &reason),
            }
        }
        invoke_rows(&self.main, frame, &arrays, rows).map(ColumnarValue::Array)
    }

    fn note_moved(&self, frame: &UdfFrame, reason: &str) {
        let first = self
            .moved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(frame.digest);
        if first {
            log::info!(
                "Python UDF '{}' runs in the main interpreter (one core at a time): its code \
                 cannot load in a sub-interpreter ({reason})",
                frame.signature.name
            );
        }
    }
}

impl PythonRuntime for ExecutorRuntime {
    fn invoke_scalar(
        &self,
        frame: &Arc<UdfFrame>,
        args: ScalarFunctionArgs,
    ) -> Result<ColumnarValue> {
        match frame.signature.convention {
            Convention::Rows => self.rows(frame, args),
            Convention::Pyarrow => self.main.invoke_scalar(frame, args),
        }
    }

    fn accumulator(
        &self,
        frame: &Arc<UdfFrame>,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn Accumulator>> {
        self.main.accumulator(frame, args)
    }

    fn partition_evaluator(
        &self,
        frame: &Arc<UdfFrame>,
        args: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        self.main.partition_evaluator(frame, args)
    }
}
