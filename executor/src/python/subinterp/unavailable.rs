//! The pool's stand-in on Pythons older than 3.12, which lack own-GIL sub-interpreters: it
//! never starts, so the executor runs row-wise UDFs in the main interpreter.

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result};

use super::{RowsError, own_gil_unsupported};
use crate::cancellation::CancelToken;

/// A sub-interpreter pool that cannot exist on this Python: [`SubInterpreterPool::start`]
/// always fails, so no value of it is ever made.
#[derive(Debug)]
pub struct SubInterpreterPool {
    never: std::convert::Infallible,
}

impl SubInterpreterPool {
    /// Fails: this executor's Python has no own-GIL sub-interpreters.
    pub fn start(_size: usize) -> Result<Self> {
        // The Python this executor was built against, which is the one it links.
        let (major, minor) = env!("PICKLEBALL_PYTHON_VERSION")
            .split_once('.')
            .and_then(|(major, minor)| Some((major.parse().ok()?, minor.parse().ok()?)))
            .unwrap_or((0, 0));
        Err(own_gil_unsupported(major, minor).unwrap_or_else(|| {
            DataFusionError::Internal(format!(
                "this executor was built without sub-interpreters for Python {major}.{minor}"
            ))
        }))
    }

    /// The number of interpreters.
    pub fn size(&self) -> usize {
        match self.never {}
    }

    /// Never called: no pool exists.
    #[allow(clippy::too_many_arguments)]
    pub fn call_rows(
        &self,
        _name: &str,
        _digest: [u8; 32],
        _payload: &Arc<[u8]>,
        _args: &[ArrayRef],
        _num_rows: usize,
        _return_type: &DataType,
        _cancel: Option<&CancelToken>,
    ) -> Result<ArrayRef, RowsError> {
        match self.never {}
    }

    /// Nothing to stop.
    pub fn shutdown(&mut self) {
        match self.never {}
    }
}
