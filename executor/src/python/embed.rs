//! Starting CPython inside the `pickleball-executor` binary.

use pyo3::prelude::*;

/// Initializes the embedded interpreter and releases the GIL. When `VIRTUAL_ENV` is set (an
/// activated venv), its site-packages are added, so UDFs see the same packages as a client
/// running in that venv.
pub fn initialize() -> PyResult<()> {
    Python::initialize();
    Python::attach(|py| {
        // Importing decimal in the main interpreter first avoids a known crash when
        // sub-interpreters import it later.
        py.import("decimal")?;
        if let Ok(venv) = std::env::var("VIRTUAL_ENV") {
            let version = py.version_info();
            let site = format!(
                "{venv}/lib/python{}.{}/site-packages",
                version.major, version.minor
            );
            py.import("site")?.call_method1("addsitedir", (site,))?;
        }
        Ok(())
    })
}
