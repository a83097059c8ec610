//! UDF implementations backed by a [`UdfFrame`], runnable when a [`PythonRuntime`] is attached.

use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::function::{
    AccumulatorArgs, PartitionEvaluatorArgs, StateFieldsArgs, WindowUDFFieldArgs,
};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, ColumnarValue, PartitionEvaluator, ReturnFieldArgs,
    ScalarFunctionArgs, ScalarUDFImpl, Signature, WindowUDFImpl,
};

use super::coercion::{row_argument_types, signature_of};
use super::frame::{UdfFrame, WindowFlags};

/// What an executor plugs in to run Python UDFs. Implementations cache unpickled payloads by
/// digest, check the sender's Python version and choose the lane.
pub trait PythonRuntime: Debug + Send + Sync {
    /// Runs a scalar UDF on one batch of arguments.
    fn invoke_scalar(
        &self,
        frame: &Arc<UdfFrame>,
        args: ScalarFunctionArgs,
    ) -> Result<ColumnarValue>;
    /// A fresh accumulator of an aggregate UDF.
    fn accumulator(
        &self,
        frame: &Arc<UdfFrame>,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn Accumulator>>;
    /// A fresh partition evaluator of a window UDF.
    fn partition_evaluator(
        &self,
        frame: &Arc<UdfFrame>,
        args: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>>;
    /// The runtime for a UDF decoded now, as part of one task's plan. Executors return one
    /// bound to that task (so that cancelling the task reaches its Python code); `None` keeps
    /// this runtime.
    fn for_decoded_task(&self) -> Option<Arc<dyn PythonRuntime>> {
        None
    }
}

fn no_runtime(frame: &UdfFrame) -> DataFusionError {
    DataFusionError::Execution(format!(
        "Python {} UDF '{}' cannot run in this process: it has no Python runtime (the \
         scheduler never runs Python; executors do)",
        frame.signature.family, frame.signature.name
    ))
}

macro_rules! frame_backed {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug)]
        pub struct $name {
            frame: Arc<UdfFrame>,
            signature: Signature,
            runtime: Option<Arc<dyn PythonRuntime>>,
        }

        impl $name {
            /// A UDF for `frame`; runnable when `runtime` is given, a stand-in otherwise.
            pub fn new(frame: Arc<UdfFrame>, runtime: Option<Arc<dyn PythonRuntime>>) -> Self {
                let signature = signature_of(&frame);
                Self {
                    frame,
                    signature,
                    runtime,
                }
            }

            /// The frame this UDF was decoded from (re-encoded verbatim).
            pub fn frame(&self) -> &Arc<UdfFrame> {
                &self.frame
            }

            // Window UDFs answer planning questions without a runtime, so they do not use it.
            #[allow(dead_code)]
            fn runtime(&self) -> Result<&Arc<dyn PythonRuntime>> {
                self.runtime.as_ref().ok_or_else(|| no_runtime(&self.frame))
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.frame == other.frame
            }
        }

        impl Eq for $name {}

        impl Hash for $name {
            fn hash<H: Hasher>(&self, state: &mut H) {
                self.frame.hash(state);
            }
        }
    };
}

/// The evaluator of a window UDF in a process without Python: it knows the evaluator's
/// planning properties from the header and refuses to evaluate.
#[derive(Debug)]
struct PlanningEvaluator {
    frame: Arc<UdfFrame>,
}

impl PartitionEvaluator for PlanningEvaluator {
    fn is_causal(&self) -> bool {
        self.frame.signature.window.has(WindowFlags::IS_CAUSAL)
    }

    fn supports_bounded_execution(&self) -> bool {
        self.frame
            .signature
            .window
            .has(WindowFlags::SUPPORTS_BOUNDED_EXECUTION)
    }

    fn uses_window_frame(&self) -> bool {
        self.frame
            .signature
            .window
            .has(WindowFlags::USES_WINDOW_FRAME)
    }

    fn include_rank(&self) -> bool {
        self.frame.signature.window.has(WindowFlags::INCLUDE_RANK)
    }

    fn evaluate_all(
        &mut self,
        _values: &[datafusion::arrow::array::ArrayRef],
        _num_rows: usize,
    ) -> Result<datafusion::arrow::array::ArrayRef> {
        Err(no_runtime(&self.frame))
    }
}

frame_backed!(
    PythonScalarUdf,
    "A Python scalar UDF (`udf`, `pickleball.udf`)."
);
frame_backed!(PythonAggregateUdf, "A Python aggregate UDF (`udaf`).");
frame_backed!(PythonWindowUdf, "A Python window UDF (`udwf`).");

impl ScalarUDFImpl for PythonScalarUdf {
    fn name(&self) -> &str {
        &self.frame.signature.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        row_argument_types(&self.frame, arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.frame.signature.returns.data_type().clone())
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(self.frame.return_field())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.runtime()?.invoke_scalar(&self.frame, args)
    }
}

impl AggregateUDFImpl for PythonAggregateUdf {
    fn name(&self) -> &str {
        &self.frame.signature.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.frame.signature.returns.data_type().clone())
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.runtime()?.accumulator(&self.frame, args)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        // Qualify state names with the aggregate's output name, as DataFusion's own
        // aggregates do, so two uses of one UDAF in a query have distinct state columns.
        Ok(self
            .frame
            .signature
            .state
            .iter()
            .map(|field| {
                let name = format!("{}[{}]", args.name, field.name());
                Arc::new(field.as_ref().clone().with_name(name))
            })
            .collect())
    }
}

impl WindowUDFImpl for PythonWindowUdf {
    fn name(&self) -> &str {
        &self.frame.signature.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn partition_evaluator(
        &self,
        args: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        match &self.runtime {
            Some(runtime) => runtime.partition_evaluator(&self.frame, args),
            // The physical planner asks an evaluator for its properties; answer from the
            // header so the scheduler plans without Python.
            None => Ok(Box::new(PlanningEvaluator {
                frame: self.frame.clone(),
            })),
        }
    }

    fn field(&self, args: WindowUDFFieldArgs) -> Result<FieldRef> {
        let returns = self.frame.return_field();
        Ok(Arc::new(returns.as_ref().clone().with_name(args.name())))
    }
}
