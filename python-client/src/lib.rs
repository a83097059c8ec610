//! The native part of the `pickleball` Python package (`pickleball._internal`).
//!
//! The Python layer stays thin: planning is the stock `datafusion` wheel's; this module takes
//! the plan bytes, runs them on a Ballista cluster and hands back Arrow data.

mod cli;
mod cluster;
mod jobs;
mod plan;
mod rest;
mod runtime;
mod standalone;
mod translate;

use pyo3::prelude::*;

#[pymodule]
fn _internal(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp_millis()
        .try_init();
    m.add_class::<cluster::Cluster>()?;
    m.add_class::<cluster::ResultStream>()?;
    m.add(
        "ExecutionError",
        m.py().get_type::<cluster::ExecutionError>(),
    )?;
    m.add("MEMORY_PLACEHOLDER_ROOT", plan::MEMORY_PLACEHOLDER_ROOT)?;
    m.add_function(wrap_pyfunction!(stop_subinterpreters, m)?)?;
    m.add_function(wrap_pyfunction!(suspend_subinterpreters, m)?)?;
    m.add("BALLISTA_VERSION", ballista_core::BALLISTA_VERSION)?;
    m.add("DATAFUSION_VERSION", datafusion::DATAFUSION_VERSION)?;
    m.add_function(wrap_pyfunction!(cli::run_scheduler, m)?)?;
    m.add_function(wrap_pyfunction!(cli::run_executor, m)?)?;
    m.add_function(wrap_pyfunction!(cli::run_standalone, m)?)?;
    Ok(())
}

/// Ends the sub-interpreters of this process's in-process executors; registered with `atexit`,
/// because CPython must not finalize while they run.
#[pyfunction]
fn stop_subinterpreters(py: Python<'_>) {
    py.detach(|| pickleball_executor::python_runtime(0).stop_pool());
}

/// Ends the sub-interpreters of this process's in-process executors until the next row-wise
/// UDF; registered to run before `fork()`, which CPython 3.13 does not survive with
/// sub-interpreters alive.
#[pyfunction]
fn suspend_subinterpreters(py: Python<'_>) {
    py.detach(|| pickleball_executor::python_runtime(0).suspend_pool());
}
