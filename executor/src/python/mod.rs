//! The Python side of the executor: Arrow across the boundary, errors, and the runtime that
//! runs Python UDFs in the main interpreter.

pub mod arrow;
pub mod embed;
pub mod errors;
pub mod interrupt;
pub mod main_lane;
pub mod main_rows;
pub mod runtime;
mod specialize;
pub mod subinterp;
pub mod udf_module;

pub use main_lane::MainInterpreterRuntime;
pub use runtime::ExecutorRuntime;
