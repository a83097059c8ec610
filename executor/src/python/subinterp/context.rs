//! Per-interpreter Python objects: the classes and functions the conversions and the worker
//! use, imported once when the interpreter starts, and caches of time zones and functions.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CStr;

use pyo3::ffi;

use super::ffi_util::{Gil, PyObj, call1, getattr, import, intern, new_dict, unicode};
use super::recycled::Recycled;
use crate::python::specialize::TWINS_SOURCE;

/// The row loop, in Python: `apply(f, nargs, first, *rest)` calls `f` on each row of the
/// argument lists and returns the results as a list. A comprehension calls a Python UDF
/// without entering the eval loop anew for each row (the callee's frame is pushed inline,
/// unlike a call from C), which saves about a tenth of a trivial UDF's time per row. `first`
/// is an iterator over the first argument (over `None`s for a UDF without arguments) so that,
/// if `f` raises, what is left of it tells the failing row.
const APPLY_SOURCE: &std::ffi::CStr = c"
def apply(f, nargs, first, *rest, zip=zip):
    if nargs == 1:
        return [f(a) for a in first]
    if nargs == 2:
        return [f(a, b) for a, b in zip(first, *rest)]
    if nargs == 3:
        return [f(a, b, c) for a, b, c in zip(first, *rest)]
    if nargs == 0:
        return [f() for _ in first]
    return [f(*args) for args in zip(first, *rest)]
";

/// `source` run in a fresh namespace; its function `name`, or `None` with an exception set.
fn compile_helper(py: Gil, source: &CStr, name: &CStr) -> Option<PyObj> {
    let namespace = new_dict(py)?;
    // SAFETY: the token proves the GIL is held; the source is NUL-terminated and `namespace`
    // a live dict (CPython adds `__builtins__` to it).
    let done = PyObj::owned(py, unsafe {
        ffi::PyRun_String(
            source.as_ptr(),
            ffi::Py_file_input,
            namespace.as_ptr(),
            namespace.as_ptr(),
        )
    })?;
    drop(done);
    // SAFETY: as above; GetItemString returns a borrowed reference or null without an
    // exception, which cannot happen after the source ran.
    PyObj::borrowed(py, unsafe {
        ffi::PyDict_GetItemString(namespace.as_ptr(), name.as_ptr())
    })
}

/// Interned attribute and method names used per row.
pub(super) struct Names {
    pub year: PyObj,
    pub month: PyObj,
    pub day: PyObj,
    pub hour: PyObj,
    pub minute: PyObj,
    pub second: PyObj,
    pub microsecond: PyObj,
    pub days: PyObj,
    pub seconds: PyObj,
    pub microseconds: PyObj,
    pub utcoffset: PyObj,
    pub astimezone: PyObj,
    pub as_tuple: PyObj,
}

/// Everything one interpreter keeps between jobs. Lives on the interpreter's thread and is
/// dropped there, with the interpreter's GIL held, before `Py_EndInterpreter`.
pub(super) struct Context {
    /// `cloudpickle.loads`.
    pub loads: PyObj,
    /// `traceback.format_exception`.
    pub format_exception: PyObj,
    /// `datetime.date`, `.datetime`, `.time`, `.timedelta`, `.timezone`, `timezone.utc`.
    pub date: PyObj,
    pub datetime: PyObj,
    pub time: PyObj,
    pub timedelta: PyObj,
    pub timezone: PyObj,
    pub utc: PyObj,
    /// `decimal.Decimal`.
    pub decimal: PyObj,
    /// [`APPLY_SOURCE`]'s `apply`.
    pub apply: PyObj,
    /// [`TWINS_SOURCE`]'s `twins`.
    pub twins: PyObj,
    pub names: Names,
    /// `zoneinfo.ZoneInfo`, imported on first use of a named time zone.
    zoneinfo: Option<PyObj>,
    /// Time zone objects by Arrow time zone string.
    zones: HashMap<String, PyObj>,
    /// Unpickled UDFs by payload digest.
    pub functions: HashMap<[u8; 32], PyObj>,
    /// Argument objects kept from the last slice of rows for the next ones.
    pub recycled: RefCell<Recycled>,
}

/// `module.name` imported, or `None` with an exception set.
fn member(py: Gil, module: &PyObj, name: &std::ffi::CStr) -> Option<PyObj> {
    getattr(py, module.as_ptr(), name)
}

impl Context {
    /// Imports what the interpreter needs; `None` with a Python exception set on failure.
    pub(super) fn new(py: Gil) -> Option<Self> {
        let cloudpickle = import(py, c"cloudpickle")?;
        let traceback = import(py, c"traceback")?;
        let datetime = import(py, c"datetime")?;
        let decimal = import(py, c"decimal")?;
        let timezone = member(py, &datetime, c"timezone")?;
        let names = Names {
            year: intern(py, c"year")?,
            month: intern(py, c"month")?,
            day: intern(py, c"day")?,
            hour: intern(py, c"hour")?,
            minute: intern(py, c"minute")?,
            second: intern(py, c"second")?,
            microsecond: intern(py, c"microsecond")?,
            days: intern(py, c"days")?,
            seconds: intern(py, c"seconds")?,
            microseconds: intern(py, c"microseconds")?,
            utcoffset: intern(py, c"utcoffset")?,
            astimezone: intern(py, c"astimezone")?,
            as_tuple: intern(py, c"as_tuple")?,
        };
        Some(Context {
            loads: member(py, &cloudpickle, c"loads")?,
            format_exception: member(py, &traceback, c"format_exception")?,
            date: member(py, &datetime, c"date")?,
            datetime: member(py, &datetime, c"datetime")?,
            time: member(py, &datetime, c"time")?,
            timedelta: member(py, &datetime, c"timedelta")?,
            utc: member(py, &timezone, c"utc")?,
            timezone,
            decimal: member(py, &decimal, c"Decimal")?,
            apply: compile_helper(py, APPLY_SOURCE, c"apply")?,
            twins: compile_helper(py, TWINS_SOURCE, c"twins")?,
            names,
            zoneinfo: None,
            zones: HashMap::new(),
            functions: HashMap::new(),
            recycled: RefCell::new(Recycled::new(py)),
        })
    }

    /// The `tzinfo` for an Arrow time zone string: `timezone.utc` for UTC, a fixed-offset
    /// `timezone` for `±hh:mm` / `±hhmm` / `±hh`, otherwise `zoneinfo.ZoneInfo(name)`.
    /// `None` with a Python exception set when the zone is unknown.
    pub(super) fn zone(&mut self, py: Gil, tz: &str) -> Option<PyObj> {
        if let Some(found) = self.zones.get(tz) {
            return Some(found.clone_ref(py));
        }
        let zone = match parse_offset(tz) {
            Some(0) => self.utc.clone_ref(py),
            Some(seconds) => {
                let zero = super::ffi_util::int(py, 0)?;
                let secs = super::ffi_util::int(py, seconds)?;
                let delta = super::ffi_util::call(
                    py,
                    self.timedelta.as_ptr(),
                    &[zero.as_ptr(), secs.as_ptr()],
                )?;
                call1(py, self.timezone.as_ptr(), delta.as_ptr())?
            }
            None if tz.eq_ignore_ascii_case("utc") || tz == "Z" => self.utc.clone_ref(py),
            None => {
                if self.zoneinfo.is_none() {
                    let module = import(py, c"zoneinfo")?;
                    self.zoneinfo = Some(member(py, &module, c"ZoneInfo")?);
                }
                let class = self.zoneinfo.as_ref().expect("imported above");
                let name = PyObj::owned(py, unicode(py, tz))?;
                call1(py, class.as_ptr(), name.as_ptr())?
            }
        };
        self.zones.insert(tz.to_owned(), zone.clone_ref(py));
        Some(zone)
    }
}

/// Seconds east of UTC of a fixed-offset Arrow time zone (`+hh:mm`, `-hhmm`, `+hh`).
pub(super) fn parse_offset(tz: &str) -> Option<i64> {
    let (sign, rest) = match tz.as_bytes().first()? {
        b'+' => (1, &tz[1..]),
        b'-' => (-1, &tz[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !matches!(digits.len(), 2 | 4) {
        return None;
    }
    let hours: i64 = digits[..2].parse().ok()?;
    let minutes: i64 = if digits.len() == 4 {
        digits[2..].parse().ok()?
    } else {
        0
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some(sign * (hours * 3600 + minutes * 60))
}
