//! Wire format and Ballista extension codecs for pickleball.
//!
//! Client, scheduler and executors must agree on how a plan is encoded: Ballista does not ship
//! codecs with plans. This crate is the single place that defines our encoding, and it is pure
//! Rust so the scheduler can use it without ever linking CPython.
//!
//! - [`PythonLogicalCodec`] / [`PythonPhysicalCodec`] wrap Ballista's own codecs and add what
//!   pickleball needs on top (today: in-memory tables carried by value inside the plan).
//! - [`memory_table`] is the by-value encoding of in-memory tables.
//! - [`session`] builds Ballista session configs wired with these codecs.

pub mod logical;
pub mod memory_table;
pub mod physical;
pub mod session;
pub mod token;
pub mod udf;

pub use logical::PythonLogicalCodec;
pub use memory_table::DEFAULT_MAX_INLINE_TABLE_BYTES;
pub use physical::PythonPhysicalCodec;
