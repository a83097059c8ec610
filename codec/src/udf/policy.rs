//! Turning frames in a plan into UDFs, under the process's policy for inline Python.

use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{AggregateUDF, ScalarUDF, WindowUDF};

use super::frame::{UdfFamily, UdfFrame};
use super::functions::{PythonAggregateUdf, PythonRuntime, PythonScalarUdf, PythonWindowUdf};

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

/// The stock datafusion-python wheel's own inline format, which we never accept directly.
const STOCK_PREFIXES: [&[u8]; 3] = [b"DFPYUDF", b"DFPYUDA", b"DFPYUDW"];

/// Turns a UDF in datafusion-python's own inline format into one of our frames. Only the
/// client has one: it runs in the user's process, so unpickling there runs the user's own code.
pub trait ForeignUdfTranslator: std::fmt::Debug + Send + Sync {
    /// Our frame for the stock payload `buf` of UDF `name`.
    fn translate(&self, family: UdfFamily, name: &str, buf: &[u8]) -> Result<UdfFrame>;
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
}

impl UdfDecoder {
    /// A decoder that plans with stand-ins (scheduler, client).
    pub fn planning(role: &'static str, policy: InlinePolicy) -> Self {
        Self {
            policy,
            runtime: None,
            role,
            translator: None,
        }
    }

    fn frame(&self, name: &str, buf: &[u8], family: UdfFamily) -> Result<Option<Arc<UdfFrame>>> {
        if STOCK_PREFIXES.iter().any(|p| buf.starts_with(p)) {
            if let Some(translator) = &self.translator {
                return Ok(Some(Arc::new(translator.translate(family, name, buf)?)));
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
        if self.policy == InlinePolicy::Deny && !frame.payload().is_empty() {
            return Err(DataFusionError::Plan(format!(
                "Python UDF '{name}' arrived inline (pickled inside the plan) and this \
                 pickleball {} runs with --python-udfs deny, because unpickling runs the \
                 sender's code. To run it, start scheduler and executors with \
                 --python-udfs allow on a network where only trusted clients reach them, or \
                 express '{name}' in SQL / built-in functions.",
                self.role_name()
            )));
        }
        Ok(Some(Arc::new(frame)))
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
        Ok(self.frame(name, buf, UdfFamily::Scalar)?.map(|frame| {
            Arc::new(ScalarUDF::new_from_impl(PythonScalarUdf::new(
                frame,
                self.runtime.clone(),
            )))
        }))
    }

    /// An aggregate UDF for `buf`, or `None` when `buf` is not one of our frames.
    pub fn aggregate(&self, name: &str, buf: &[u8]) -> Result<Option<Arc<AggregateUDF>>> {
        Ok(self.frame(name, buf, UdfFamily::Aggregate)?.map(|frame| {
            Arc::new(AggregateUDF::new_from_impl(PythonAggregateUdf::new(
                frame,
                self.runtime.clone(),
            )))
        }))
    }

    /// A window UDF for `buf`, or `None` when `buf` is not one of our frames.
    pub fn window(&self, name: &str, buf: &[u8]) -> Result<Option<Arc<WindowUDF>>> {
        Ok(self.frame(name, buf, UdfFamily::Window)?.map(|frame| {
            Arc::new(WindowUDF::new_from_impl(PythonWindowUdf::new(
                frame,
                self.runtime.clone(),
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
