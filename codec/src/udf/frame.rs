//! The wire format of one Python UDF: a frame with a header readable without Python.
//!
//! ```text
//! magic      7 bytes   PBPYSCL (scalar) | PBPYAGG (aggregate) | PBPYWIN (window)
//! version    u8        wire version, currently 1
//! python     u8, u8    major and minor version of the Python that pickled the payload
//! header_len u32 LE    length of the header
//! header     protobuf  `UdfHeader`: name, Arrow types, volatility, lane, calling
//!                      convention, payload length and SHA-256
//! payload    bytes     cloudpickle payload (the rest of the frame)
//! ```
//!
//! Decoding checks every length and the payload digest and never panics, whatever the bytes.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, FieldRef, Schema};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::Volatility;
use prost::Message;
use sha2::{Digest, Sha256};

/// Current wire version.
pub const WIRE_VERSION: u8 = 1;

const MAGIC_LEN: usize = 7;
const FIXED_LEN: usize = MAGIC_LEN + 3 + 4;

/// The three kinds of Python UDF.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UdfFamily {
    /// Scalar function (`udf`).
    Scalar,
    /// Aggregate function (`udaf`, Accumulator protocol).
    Aggregate,
    /// Window function (`udwf`, WindowEvaluator protocol).
    Window,
}

impl UdfFamily {
    fn magic(self) -> &'static [u8; MAGIC_LEN] {
        match self {
            UdfFamily::Scalar => b"PBPYSCL",
            UdfFamily::Aggregate => b"PBPYAGG",
            UdfFamily::Window => b"PBPYWIN",
        }
    }

    /// The family whose magic starts `buf`, if any.
    pub fn of(buf: &[u8]) -> Option<Self> {
        [UdfFamily::Scalar, UdfFamily::Aggregate, UdfFamily::Window]
            .into_iter()
            .find(|family| buf.starts_with(family.magic()))
    }
}

impl fmt::Display for UdfFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UdfFamily::Scalar => "scalar",
            UdfFamily::Aggregate => "aggregate",
            UdfFamily::Window => "window",
        })
    }
}

/// Where an executor runs the UDF.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lane {
    /// The executor's main interpreter (pyarrow, numpy and other extensions available).
    Main,
    /// The pool of own-GIL sub-interpreters (builtins only), falling back to main if the
    /// payload cannot load there.
    SubInterpreter,
}

/// How the Python callable is invoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Convention {
    /// datafusion-python's: pyarrow arrays in, a pyarrow array out (or the Accumulator /
    /// WindowEvaluator protocols).
    Pyarrow,
    /// pickleball's row-wise UDFs: Python builtins in, a builtin out, once per row.
    Rows,
}

/// The header of a frame, as protobuf.
#[derive(Clone, PartialEq, Message)]
pub struct UdfHeader {
    /// UDF name as registered by the client.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Argument fields (`arg_0`, `arg_1`, ...).
    #[prost(message, optional, tag = "2")]
    pub input_schema: Option<datafusion_proto::protobuf::Schema>,
    /// A one-field schema holding the return field.
    #[prost(message, optional, tag = "3")]
    pub return_schema: Option<datafusion_proto::protobuf::Schema>,
    /// Aggregate state fields (aggregates only).
    #[prost(message, optional, tag = "4")]
    pub state_schema: Option<datafusion_proto::protobuf::Schema>,
    /// `immutable`, `stable` or `volatile`.
    #[prost(string, tag = "5")]
    pub volatility: String,
    /// `main` or `subinterpreter`.
    #[prost(string, tag = "6")]
    pub lane: String,
    /// `pyarrow` or `rows`.
    #[prost(string, tag = "7")]
    pub convention: String,
    /// Length of the payload in bytes.
    #[prost(uint64, tag = "8")]
    pub payload_len: u64,
    /// SHA-256 of the payload; also the executor's cache key.
    #[prost(bytes = "vec", tag = "9")]
    pub payload_sha256: Vec<u8>,
    /// Window UDFs: planning properties of the evaluator, as [`WindowFlags`] bits.
    #[prost(uint32, tag = "10")]
    pub window_flags: u32,
}

/// Planning properties of a window evaluator, learned on the client (which may call the
/// user's evaluator factory) so the scheduler can plan without Python.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct WindowFlags(pub u32);

impl WindowFlags {
    /// `uses_window_frame()`
    pub const USES_WINDOW_FRAME: u32 = 1;
    /// `supports_bounded_execution()`
    pub const SUPPORTS_BOUNDED_EXECUTION: u32 = 2;
    /// `include_rank()`
    pub const INCLUDE_RANK: u32 = 4;
    /// `is_causal()`
    pub const IS_CAUSAL: u32 = 8;

    /// Whether `flag` is set.
    pub fn has(self, flag: u32) -> bool {
        self.0 & flag != 0
    }
}

/// Everything about a UDF that can be known without Python.
#[derive(Clone, Debug, PartialEq)]
pub struct UdfSignature {
    /// Family of the UDF.
    pub family: UdfFamily,
    /// Name as registered by the client.
    pub name: String,
    /// Argument fields.
    pub inputs: Vec<FieldRef>,
    /// Return field.
    pub returns: FieldRef,
    /// Aggregate state fields (empty for other families).
    pub state: Vec<FieldRef>,
    /// Volatility.
    pub volatility: Volatility,
    /// Execution lane.
    pub lane: Lane,
    /// Calling convention.
    pub convention: Convention,
    /// Window evaluator properties (window UDFs only).
    pub window: WindowFlags,
}

/// A decoded frame: signature, sender's Python version, and the original bytes.
#[derive(Clone, Debug)]
pub struct UdfFrame {
    /// The UDF's signature.
    pub signature: UdfSignature,
    /// Python (major, minor) that pickled the payload.
    pub python: (u8, u8),
    /// SHA-256 of the payload.
    pub digest: [u8; 32],
    bytes: Arc<[u8]>,
    payload_at: usize,
    /// The payload as its own shared buffer, made on first use (see [`UdfFrame::shared_payload`]).
    shared_payload: std::sync::OnceLock<Arc<[u8]>>,
}

impl PartialEq for UdfFrame {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for UdfFrame {}

impl std::hash::Hash for UdfFrame {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.digest.hash(state);
    }
}

fn invalid(what: impl fmt::Display) -> DataFusionError {
    DataFusionError::Plan(format!("invalid pickleball Python UDF frame: {what}"))
}

fn volatility_name(v: Volatility) -> &'static str {
    match v {
        Volatility::Immutable => "immutable",
        Volatility::Stable => "stable",
        Volatility::Volatile => "volatile",
    }
}

/// Parses `immutable`, `stable` or `volatile`.
pub fn parse_volatility(name: &str) -> Result<Volatility> {
    match name {
        "immutable" => Ok(Volatility::Immutable),
        "stable" => Ok(Volatility::Stable),
        "volatile" => Ok(Volatility::Volatile),
        other => Err(invalid(format!("unknown volatility '{other}'"))),
    }
}

fn schema_to_proto(fields: &[FieldRef]) -> Result<datafusion_proto::protobuf::Schema> {
    let schema = Schema::new(fields.to_vec());
    Ok((&schema).try_into()?)
}

fn fields_from_proto(
    proto: &Option<datafusion_proto::protobuf::Schema>,
    what: &str,
) -> Result<Vec<FieldRef>> {
    let Some(proto) = proto else {
        return Ok(vec![]);
    };
    let schema: Schema = proto
        .try_into()
        .map_err(|e| invalid(format!("{what} types: {e}")))?;
    Ok(schema.fields().iter().cloned().collect())
}

impl UdfFrame {
    /// Builds a frame for `payload` pickled by Python `python` (major, minor).
    pub fn encode(signature: UdfSignature, python: (u8, u8), payload: &[u8]) -> Result<Self> {
        let digest: [u8; 32] = Sha256::digest(payload).into();
        let header = UdfHeader {
            name: signature.name.clone(),
            input_schema: Some(schema_to_proto(&signature.inputs)?),
            return_schema: Some(schema_to_proto(std::slice::from_ref(&signature.returns))?),
            state_schema: Some(schema_to_proto(&signature.state)?),
            volatility: volatility_name(signature.volatility).to_string(),
            lane: match signature.lane {
                Lane::Main => "main",
                Lane::SubInterpreter => "subinterpreter",
            }
            .to_string(),
            convention: match signature.convention {
                Convention::Pyarrow => "pyarrow",
                Convention::Rows => "rows",
            }
            .to_string(),
            payload_len: payload.len() as u64,
            payload_sha256: digest.to_vec(),
            window_flags: signature.window.0,
        };
        let header = header.encode_to_vec();
        let mut bytes = Vec::with_capacity(FIXED_LEN + header.len() + payload.len());
        bytes.extend_from_slice(signature.family.magic());
        bytes.extend_from_slice(&[WIRE_VERSION, python.0, python.1]);
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&header);
        let payload_at = bytes.len();
        bytes.extend_from_slice(payload);
        Ok(Self {
            signature,
            python,
            digest,
            bytes: bytes.into(),
            payload_at,
            shared_payload: Default::default(),
        })
    }

    /// Parses a frame; `Ok(None)` when `buf` is not a pickleball frame at all.
    pub fn decode(buf: &[u8]) -> Result<Option<Self>> {
        let Some(family) = UdfFamily::of(buf) else {
            return Ok(None);
        };
        if buf.len() < FIXED_LEN {
            return Err(invalid("truncated before the header"));
        }
        let version = buf[MAGIC_LEN];
        if version != WIRE_VERSION {
            return Err(invalid(format!(
                "wire version {version}, but this build reads version {WIRE_VERSION}; \
                 client, scheduler and executors must run the same pickleball version"
            )));
        }
        let python = (buf[MAGIC_LEN + 1], buf[MAGIC_LEN + 2]);
        let header_len =
            u32::from_le_bytes(buf[MAGIC_LEN + 3..FIXED_LEN].try_into().expect("4 bytes")) as usize;
        let header_end = FIXED_LEN
            .checked_add(header_len)
            .filter(|end| *end <= buf.len())
            .ok_or_else(|| invalid("truncated header"))?;
        let header = UdfHeader::decode(&buf[FIXED_LEN..header_end])
            .map_err(|e| invalid(format!("unreadable header: {e}")))?;
        let payload = &buf[header_end..];
        if payload.len() as u64 != header.payload_len {
            return Err(invalid(format!(
                "payload of UDF '{}' is {} bytes, header says {}",
                header.name,
                payload.len(),
                header.payload_len
            )));
        }
        let digest: [u8; 32] = Sha256::digest(payload).into();
        if header.payload_sha256 != digest {
            return Err(invalid(format!(
                "payload of UDF '{}' does not match its digest (corrupted in transit?)",
                header.name
            )));
        }
        let returns = fields_from_proto(&header.return_schema, "return")?;
        let [returns] = <[FieldRef; 1]>::try_from(returns)
            .map_err(|_| invalid("the return schema must have exactly one field"))?;
        let signature = UdfSignature {
            family,
            name: header.name.clone(),
            inputs: fields_from_proto(&header.input_schema, "argument")?,
            returns,
            state: fields_from_proto(&header.state_schema, "state")?,
            volatility: parse_volatility(&header.volatility)?,
            lane: match header.lane.as_str() {
                "main" => Lane::Main,
                "subinterpreter" => Lane::SubInterpreter,
                other => return Err(invalid(format!("unknown lane '{other}'"))),
            },
            convention: match header.convention.as_str() {
                "pyarrow" => Convention::Pyarrow,
                "rows" => Convention::Rows,
                other => return Err(invalid(format!("unknown calling convention '{other}'"))),
            },
            window: WindowFlags(header.window_flags),
        };
        Ok(Some(Self {
            signature,
            python,
            digest,
            bytes: buf.into(),
            payload_at: header_end,
            shared_payload: Default::default(),
        }))
    }

    /// The whole frame, byte for byte as received (re-encoding is verbatim).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The cloudpickle payload.
    pub fn payload(&self) -> &[u8] {
        &self.bytes[self.payload_at..]
    }

    /// The payload as a shared buffer, copied out of the frame once per frame rather than once
    /// per batch (runtimes that hand it to other threads need an owned buffer).
    pub fn shared_payload(&self) -> Arc<[u8]> {
        Arc::clone(
            self.shared_payload
                .get_or_init(|| Arc::from(self.payload())),
        )
    }

    /// Lower-case hex of the payload digest.
    pub fn digest_hex(&self) -> String {
        self.digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The return field.
    pub fn return_field(&self) -> Arc<Field> {
        self.signature.returns.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::DataType;

    fn sample(family: UdfFamily) -> UdfFrame {
        let signature = UdfSignature {
            family,
            name: "clean".into(),
            inputs: vec![
                Arc::new(Field::new("arg_0", DataType::Utf8, true)),
                Arc::new(Field::new("arg_1", DataType::Int64, true)),
            ],
            returns: Arc::new(Field::new("value", DataType::Utf8, true)),
            state: if family == UdfFamily::Aggregate {
                vec![Arc::new(Field::new("sum", DataType::Float64, true))]
            } else {
                vec![]
            },
            volatility: Volatility::Immutable,
            lane: Lane::SubInterpreter,
            convention: Convention::Rows,
            window: WindowFlags(WindowFlags::INCLUDE_RANK),
        };
        UdfFrame::encode(signature, (3, 13), b"\x80\x05payload bytes").unwrap()
    }

    #[test]
    fn round_trips_every_family_byte_for_byte() {
        for family in [UdfFamily::Scalar, UdfFamily::Aggregate, UdfFamily::Window] {
            let frame = sample(family);
            let back = UdfFrame::decode(frame.bytes()).unwrap().unwrap();
            assert_eq!(back.signature, frame.signature);
            assert_eq!(back.python, (3, 13));
            assert_eq!(back.payload(), b"\x80\x05payload bytes");
            assert_eq!(back.bytes(), frame.bytes());
        }
    }

    #[test]
    fn foreign_bytes_are_not_frames() {
        assert!(
            UdfFrame::decode(b"DFPYUDF\x01\x03\x0d...")
                .unwrap()
                .is_none()
        );
        assert!(UdfFrame::decode(b"").unwrap().is_none());
    }

    #[test]
    fn a_flipped_payload_bit_is_detected() {
        let mut bytes = sample(UdfFamily::Scalar).bytes().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let err = UdfFrame::decode(&bytes).unwrap_err().to_string();
        assert!(err.contains("digest") && err.contains("clean"), "{err}");
    }

    #[test]
    fn another_wire_version_names_both() {
        let mut bytes = sample(UdfFamily::Scalar).bytes().to_vec();
        bytes[MAGIC_LEN] = 9;
        let err = UdfFrame::decode(&bytes).unwrap_err().to_string();
        assert!(
            err.contains("wire version 9") && err.contains("version 1"),
            "{err}"
        );
    }

    /// Fuzz-style: random bytes behind a valid magic, every truncation and every single-byte
    /// corruption of a valid frame decode to an error or a frame, never a panic.
    #[test]
    fn decoding_never_panics_on_random_truncated_or_corrupted_frames() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for family in [UdfFamily::Scalar, UdfFamily::Aggregate, UdfFamily::Window] {
            let valid = sample(family).bytes().to_vec();
            for cut in 0..valid.len() {
                assert!(UdfFrame::decode(&valid[..cut]).is_err() || cut < MAGIC_LEN);
            }
            for i in 0..valid.len() {
                let mut bytes = valid.clone();
                bytes[i] = (next() & 0xff) as u8;
                let _ = UdfFrame::decode(&bytes);
            }
            for _ in 0..2000 {
                let len = (next() % 300) as usize;
                let mut bytes = family.magic().to_vec();
                bytes.extend((0..len).map(|_| (next() & 0xff) as u8));
                if bytes.len() > MAGIC_LEN {
                    bytes[MAGIC_LEN] = WIRE_VERSION;
                }
                let _ = UdfFrame::decode(&bytes);
            }
        }
    }
}
