//! UDFs registered on an executor by name, for clients that send UDFs without their code.
//!
//! A client with inlining disabled sends each Python UDF as a frame with its full header and an
//! empty payload. Scheduler and client plan from the header alone; an executor looks the name
//! up here and runs its own registered code under the client's signature.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::common::{DataFusionError, Result};

use super::frame::{Convention, Lane, UdfFamily, UdfFrame};

/// The code of one UDF registered by name on this process.
#[derive(Clone, Debug)]
pub struct NamedUdf {
    /// Python (major, minor) that pickled `payload` (this process's own Python).
    pub python: (u8, u8),
    /// Payload in the same format as inline payloads of `convention`.
    pub payload: Arc<[u8]>,
    /// How the callable is invoked.
    pub convention: Convention,
    /// Preferred lane.
    pub lane: Lane,
}

/// UDFs registered by name, keyed by family and name.
#[derive(Clone, Debug, Default)]
pub struct NamedUdfs {
    entries: HashMap<(UdfFamily, String), NamedUdf>,
}

impl NamedUdfs {
    /// Registers `udf` as the `family` UDF `name`, replacing an earlier one.
    pub fn insert(&mut self, family: UdfFamily, name: impl Into<String>, udf: NamedUdf) {
        self.entries.insert((family, name.into()), udf);
    }

    /// Number of registered UDFs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Registered names, sorted, as `family name` for messages and logs.
    pub fn describe(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .entries
            .keys()
            .map(|(family, name)| format!("{family} {name}"))
            .collect();
        names.sort();
        names
    }

    /// The runnable frame for a by-name `frame` (empty payload): the client's signature with
    /// the registered code. `role` names this process in messages.
    pub fn resolve(&self, frame: &UdfFrame, role: &str) -> Result<UdfFrame> {
        let sig = &frame.signature;
        let key = (sig.family, sig.name.clone());
        let Some(udf) = self.entries.get(&key) else {
            let known = if self.is_empty() {
                "none".to_string()
            } else {
                self.describe().join(", ")
            };
            return Err(DataFusionError::Plan(format!(
                "Python {} UDF '{}' was sent by name (the client disabled inlining with \
                 with_python_udf_inlining(enabled=False)), but this pickleball {role} has no \
                 UDF registered under that name (registered: {known}). Start the executors \
                 with --udf-module <file.py> defining '{}', or enable inlining on the client.",
                sig.family, sig.name, sig.name
            )));
        };
        if udf.convention != sig.convention {
            return Err(DataFusionError::Plan(format!(
                "Python UDF '{}' is a {} UDF on the client but the one registered on this \
                 {role} is a {} UDF; register the same kind of UDF on both sides",
                sig.name,
                convention_name(sig.convention),
                convention_name(udf.convention)
            )));
        }
        let mut signature = sig.clone();
        signature.lane = udf.lane;
        UdfFrame::encode(signature, udf.python, &udf.payload)
    }
}

fn convention_name(convention: Convention) -> &'static str {
    match convention {
        Convention::Pyarrow => "pyarrow (datafusion-python)",
        Convention::Rows => "row-wise (pickleball.udf)",
    }
}
