//! Helpers shared by the executor's integration tests: the embedded interpreter with the
//! project's venv, and UDF payloads pickled as a client pickles them.

use std::ffi::CString;
use std::sync::{Arc, OnceLock};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

/// Starts the embedded interpreter once, with the project's venv on `sys.path`.
pub fn init_python() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        pickleball_executor::python::embed::initialize().expect("initialize Python");
        if std::env::var_os("VIRTUAL_ENV").is_some() {
            return; // initialize() added its site-packages
        }
        // scripts/env.sh exports PICKLEBALL_VENV; PYO3_PYTHON (the venv's python) is the
        // build-time fallback.
        let venv = std::env::var("PICKLEBALL_VENV").ok().or_else(|| {
            let python = std::path::Path::new(option_env!("PYO3_PYTHON")?);
            Some(python.parent()?.parent()?.to_string_lossy().into_owned())
        });
        if let Some(venv) = venv {
            Python::attach(|py| {
                let v = py.version_info();
                let site = format!("{venv}/lib/python{}.{}/site-packages", v.major, v.minor);
                py.import("site")?.call_method1("addsitedir", (site,))?;
                PyResult::Ok(())
            })
            .expect("add the venv's site-packages");
        }
    });
}

/// A UDF payload: `source` must define `f`. Returns (sha256 digest, cloudpickle bytes).
pub fn payload(source: &str) -> ([u8; 32], Arc<[u8]>) {
    init_python();
    Python::attach(|py| -> PyResult<_> {
        let globals = PyDict::new(py);
        globals.set_item("__name__", "__main__")?;
        py.run(&CString::new(source).unwrap(), Some(&globals), None)?;
        let f = globals.get_item("f")?.expect("the source defines f");
        let bytes: Vec<u8> = py
            .import("cloudpickle")?
            .call_method1("dumps", (f,))?
            .extract()?;
        let digest: Vec<u8> = py
            .import("hashlib")?
            .call_method1("sha256", (PyBytes::new(py, &bytes),))?
            .call_method0("digest")?
            .extract()?;
        Ok((digest.try_into().unwrap(), bytes.into()))
    })
    .expect("build the payload")
}
