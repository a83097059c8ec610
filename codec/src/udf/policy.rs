//! Turning frames in a plan into UDFs, under the process's policy for inline Python.

use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, PartitionEvaluatorArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, ColumnarValue, PartitionEvaluator, ScalarFunctionArgs, ScalarUDF,
    WindowUDF,
};

use super::frame::{UdfFamily, UdfFrame};
use super::functions::{PythonAggregateUdf, PythonRuntime, PythonScalarUdf, PythonWindowUdf};
use super::named::NamedUdfs;
use super::stock::StockPayload;

/// Whether a process accepts Python UDFs pickled inside plans.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InlinePolicy {
    /// Accept inline payloads (unpickling them is running the client's code).
    #[default]
    Allow,
    /// Refuse inline payloads; only UDFs registered by name on executors run.
    Deny,
}

impl std::str::FromStr for InlinePolicy {
    type Err = String;

    fn from_str(value: &str) -> std::result::Result<Self, String> {
        match value {
            "allow" => Ok(Self::Allow),
            "deny" => Ok(Self::Deny),
            other => Err(format!("'{other}' is not a policy: use allow or deny")),
        }
    }
}

/// Turns a UDF in datafusion-python's own inline format into one of our frames. Only the
/// client has one: it runs in the user's process, so unpickling there runs the user's own code.
pub trait ForeignUdfTranslator: std::fmt::Debug + Send + Sync {
    /// Our frame for the stock payload `buf` of UDF `name`.
    fn translate(&self, family: UdfFamily, name: &str, buf: &[u8]) -> Result<UdfFrame>;
}

/// A decoded frame and the runtime that runs it (none on scheduler and client).
type Decoded = (Arc<UdfFrame>, Option<Arc<dyn PythonRuntime>>);

/// The runtime of a UDF this executor refuses to run: every use fails with the refusal.
#[derive(Debug)]
struct Unrunnable(String);

impl PythonRuntime for Unrunnable {
    fn invoke_scalar(&self, _: &Arc<UdfFrame>, _: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Err(DataFusionError::Execution(self.0.clone()))
    }

    fn accumulator(&self, _: &Arc<UdfFrame>, _: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Err(DataFusionError::Execution(self.0.clone()))
    }

    fn partition_evaluator(
        &self,
        _: &Arc<UdfFrame>,
        _: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        Err(DataFusionError::Execution(self.0.clone()))
    }
}

/// Decodes Python UDF frames found in plans into UDFs, and encodes them back.
#[derive(Clone, Debug, Default)]
pub struct UdfDecoder {
    /// Policy for inline payloads.
    pub policy: InlinePolicy,
    /// The runtime that makes UDFs runnable (executors); `None` gives planning stand-ins.
    pub runtime: Option<Arc<dyn PythonRuntime>>,
    /// What this process is, for messages: "scheduler", "executor", "client".
    pub role: &'static str,
    /// Translator of the stock wheel's payloads (client only).
    pub translator: Option<Arc<dyn ForeignUdfTranslator>>,
    /// UDFs registered on this process by name, for frames sent without payload (executors).
    pub named: Arc<NamedUdfs>,
}

impl UdfDecoder {
    /// A decoder that plans with stand-ins (scheduler, client).
    pub fn planning(role: &'static str, policy: InlinePolicy) -> Self {
        Self {
            policy,
            runtime: None,
            role,
            translator: None,
            named: Arc::default(),
        }
    }

    /// The runtime of a UDF decoded now (see [`PythonRuntime::for_decoded_task`]).
    fn task_runtime(&self) -> Option<Arc<dyn PythonRuntime>> {
        let runtime = self.runtime.as_ref()?;
        Some(
            runtime
                .for_decoded_task()
                .unwrap_or_else(|| Arc::clone(runtime)),
        )
    }

    /// The frame in `buf` and the runtime to run it with; `None` if `buf` is not ours.
    fn frame(&self, name: &str, buf: &[u8], family: UdfFamily) -> Result<Option<Decoded>> {
        if StockPayload::is_stock(buf) {
            if let Some(translator) = &self.translator {
                let frame = translator.translate(family, name, buf)?;
                return Ok(Some((Arc::new(frame), self.task_runtime())));
            }
            return Err(DataFusionError::Plan(format!(
                "Python UDF '{name}' arrived in datafusion-python's own inline format, which \
                 this pickleball {} does not run. Submit the job through pickleball \
                 (pickleball.connect or pickleball.standalone), which re-encodes Python UDFs \
                 in pickleball's format.",
                self.role_name()
            )));
        }
        let Some(frame) = UdfFrame::decode(buf)? else {
            return Ok(None);
        };
        if frame.signature.family != family {
            return Err(DataFusionError::Plan(format!(
                "Python UDF '{name}' is a {} UDF but is used as a {family} UDF",
                frame.signature.family
            )));
        }
        let frame = Arc::new(frame);
        let runnable = if self.policy == InlinePolicy::Deny && !frame.payload().is_empty() {
            Err(DataFusionError::Plan(format!(
                "Python UDF '{name}' arrived inline (pickled inside the plan) and this \
                 pickleball {} runs with --python-udfs deny, because unpickling runs the \
                 sender's code. To run it, start scheduler and executors with \
                 --python-udfs allow on a network where only trusted clients reach them, or \
                 register '{name}' on the executors with --udf-module <file.py> and send it \
                 by name from a client context made with \
                 ctx.with_python_udf_inlining(enabled=False).",
                self.role_name()
            )))
        } else if frame.payload().is_empty() && self.runtime.is_some() {
            // Sent by name: planning needs only the header, running needs the code
            // registered on this process.
            self.named
                .resolve(&frame, self.role_name())
                .map(|resolved| Some(Arc::new(resolved)))
        } else {
            Ok(None)
        };
        match (runnable, &self.runtime) {
            (Ok(resolved), _) => Ok(Some((resolved.unwrap_or(frame), self.task_runtime()))),
            // An executor fails the task when the UDF runs, not while decoding it: Ballista
            // reports decoding failures to the client without their message.
            (Err(refusal), Some(_)) => {
                let unrunnable: Arc<dyn PythonRuntime> = Arc::new(Unrunnable(refusal.to_string()));
                Ok(Some((frame, Some(unrunnable))))
            }
            (Err(refusal), None) => Err(refusal),
        }
    }

    fn role_name(&self) -> &'static str {
        if self.role.is_empty() {
            "process"
        } else {
            self.role
        }
    }

    /// A scalar UDF for `buf`, or `None` when `buf` is not one of our frames.
    pub fn scalar(&self, name: &str, buf: &[u8]) -> Result<Option<Arc<ScalarUDF>>> {
        Ok(self
            .frame(name, buf, UdfFamily::Scalar)?
            .map(|(frame, runtime)| {
                Arc::new(ScalarUDF::new_from_impl(PythonScalarUdf::new(
                    frame, runtime,
                )))
            }))
    }

    /// An aggregate UDF for `buf`, or `None` when `buf` is not one of our frames.
    pub fn aggregate(&self, name: &str, buf: &[u8]) -> Result<Option<Arc<AggregateUDF>>> {
        Ok(self
            .frame(name, buf, UdfFamily::Aggregate)?
            .map(|(frame, runtime)| {
                Arc::new(AggregateUDF::new_from_impl(PythonAggregateUdf::new(
                    frame, runtime,
                )))
            }))
    }

    /// A window UDF for `buf`, or `None` when `buf` is not one of our frames.
    pub fn window(&self, name: &str, buf: &[u8]) -> Result<Option<Arc<WindowUDF>>> {
        Ok(self
            .frame(name, buf, UdfFamily::Window)?
            .map(|(frame, runtime)| {
                Arc::new(WindowUDF::new_from_impl(PythonWindowUdf::new(
                    frame, runtime,
                )))
            }))
    }
}

/// The frame behind a UDF implementation, if it is one of our Python UDFs.
pub fn frame_of(inner: &dyn std::any::Any) -> Option<&Arc<UdfFrame>> {
    inner
        .downcast_ref::<PythonScalarUdf>()
        .map(PythonScalarUdf::frame)
        .or_else(|| {
            inner
                .downcast_ref::<PythonAggregateUdf>()
                .map(PythonAggregateUdf::frame)
        })
        .or_else(|| {
            inner
                .downcast_ref::<PythonWindowUdf>()
                .map(PythonWindowUdf::frame)
        })
}

/// Appends the frame of a Python UDF verbatim; false if `inner` is not one of ours.
pub fn encode_frame(inner: &dyn std::any::Any, buf: &mut Vec<u8>) -> bool {
    frame_of(inner)
        .map(|frame| buf.extend_from_slice(frame.bytes()))
        .is_some()
}
