//! Python UDFs inside plans: the wire format and the UDF implementations that carry it.
//!
//! The same three UDF types ([`PythonScalarUdf`], [`PythonAggregateUdf`], [`PythonWindowUdf`])
//! are used everywhere. On the scheduler they are opaque stand-ins: they plan correctly from the
//! frame's header (types, volatility) and re-encode byte for byte. On executors a
//! [`PythonRuntime`] is attached and they run.

mod frame;
mod functions;
mod policy;

pub use frame::{
    Convention, Lane, UdfFamily, UdfFrame, UdfHeader, UdfSignature, WIRE_VERSION, parse_volatility,
};
pub use functions::{PythonAggregateUdf, PythonRuntime, PythonScalarUdf, PythonWindowUdf};
pub use policy::{InlinePolicy, UdfDecoder, encode_frame, frame_of};
