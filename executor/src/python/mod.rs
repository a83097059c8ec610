//! The Python side of the executor.

pub mod arrow;
