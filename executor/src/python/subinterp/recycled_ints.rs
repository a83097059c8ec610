//! Argument `int`s recycled from one slice of rows to the next.
//!
//! A cheap integer UDF spends a tenth of its time making each row's argument `int` and
//! freeing it after the call (CPython 3.13 has no free list for `int`). Once a slice has
//! run, an argument that nobody else holds (reference count 1, in a list only we hold) is
//! unobservable, so instead of freeing it we keep it and write the next row's value into
//! it; CPython itself reuses refcount-1 objects in place the same way (`str +=`). Only
//! one-digit `int`s are kept (|v| < 2**30, not the cached small ints), the layout every such
//! value has, so a value always fits the object it is written into.
//!
//! The layout (`_PyLongValue`: a tag with the sign and digit count, then 30-bit digits) is
//! CPython's, not part of its stable API: recycling is compiled for 3.12 and 3.13 only and
//! checks the layout when the interpreter starts; elsewhere every `int` is made anew.

use pyo3::ffi;

use super::ffi_util::{Gil, PyObj, int};

/// At most this many objects are kept per interpreter (32 bytes each): four slices' worth
/// of one argument.
const KEEP: usize = 4096;

/// `int`s of the interpreter that owns this stock, each held only by the stock.
pub(super) struct IntStock {
    kept: Vec<PyObj>,
    /// Whether this interpreter's `int`s have the layout we write (checked at start-up).
    enabled: bool,
}

impl IntStock {
    /// An empty stock; recycling is enabled only if `int`s have the layout we expect.
    pub(super) fn new(py: Gil) -> Self {
        IntStock {
            kept: Vec::new(),
            enabled: layout::matches(py),
        }
    }

    /// `int(v)`: a kept object given the value when it fits one, else a new one.
    #[inline]
    pub(super) fn int(&mut self, py: Gil, v: i64) -> Option<PyObj> {
        if layout::one_digit(v)
            && let Some(object) = self.kept.pop()
        {
            // SAFETY: every kept object is a one-digit int held only by the stock (see
            // `reclaim`), so writing a one-digit value is unobservable and fits its memory.
            unsafe { layout::write(object.as_ptr(), v) };
            return Some(object);
        }
        int(py, v)
    }

    /// Takes back the one-digit `int`s of `list` that only the list holds, putting `None` in
    /// their place. `list` must be a list only the caller holds, about to be dropped.
    pub(super) fn reclaim(&mut self, py: Gil, list: &PyObj) {
        // SAFETY: the token proves the GIL is held; `list` is live.
        let only_ours = unsafe {
            ffi::PyList_CheckExact(list.as_ptr()) != 0 && ffi::Py_REFCNT(list.as_ptr()) == 1
        };
        if !self.enabled || !only_ours {
            return;
        }
        // SAFETY: as above; a list only we hold cannot change size or items behind our back.
        let len = unsafe { ffi::PyList_GET_SIZE(list.as_ptr()) };
        for i in 0..len {
            if self.kept.len() >= KEEP {
                return;
            }
            // SAFETY: `i` is in bounds; the item is borrowed from the live list.
            let item = unsafe { ffi::PyList_GET_ITEM(list.as_ptr(), i) };
            // SAFETY: `item` is a live object.
            if unsafe { ffi::Py_REFCNT(item) != 1 || !layout::is_one_digit_int(item) } {
                continue;
            }
            let none = PyObj::none(py).into_raw();
            // SAFETY: the list's reference to `item` moves into the stock and `None` takes its
            // slot (SET_ITEM steals the reference to `None` and does not release `item`).
            unsafe { ffi::PyList_SET_ITEM(list.as_ptr(), i, none) };
            self.kept
                .push(PyObj::owned(py, item).expect("a list item is not null"));
        }
    }
}

/// CPython 3.12/3.13's `int` layout: `PyObject_HEAD`, a `uintptr_t` tag (digit count << 3 |
/// sign: 0 positive, 1 zero, 2 negative), then 30-bit digits in `u32`s.
#[cfg(all(Py_3_12, not(Py_3_14), not(Py_GIL_DISABLED)))]
mod layout {
    use pyo3::ffi;

    use super::super::ffi_util::{Gil, int};

    #[repr(C)]
    struct Long {
        head: ffi::PyObject,
        tag: usize,
        digit: u32,
    }

    const DIGIT_MASK: i64 = (1 << 30) - 1;
    const ONE_DIGIT_POSITIVE: usize = 1 << 3;
    const ONE_DIGIT_NEGATIVE: usize = 1 << 3 | 2;

    /// Whether `v` is made as a fresh one-digit `int` (CPython caches -5..=256).
    #[inline]
    pub(super) fn one_digit(v: i64) -> bool {
        (-DIGIT_MASK..=DIGIT_MASK).contains(&v) && !(-5..=256).contains(&v)
    }

    /// Whether `object` is an exact `int` of one digit (zero has none).
    ///
    /// # Safety
    /// The GIL is held and `object` is live.
    #[inline]
    pub(super) unsafe fn is_one_digit_int(object: *mut ffi::PyObject) -> bool {
        // SAFETY: per the contract; the tag is read only from an exact `int`.
        unsafe {
            ffi::PyLong_CheckExact(object) != 0
                && matches!(
                    (*object.cast::<Long>()).tag,
                    ONE_DIGIT_POSITIVE | ONE_DIGIT_NEGATIVE
                )
        }
    }

    /// Gives the one-digit `int` `object` the value `v` (`one_digit(v)`).
    ///
    /// # Safety
    /// The GIL is held and `object` is a one-digit `int` nobody else can observe.
    #[inline]
    pub(super) unsafe fn write(object: *mut ffi::PyObject, v: i64) {
        let long = object.cast::<Long>();
        // SAFETY: per the contract, the object has room for one digit and is ours alone.
        unsafe {
            (*long).tag = if v < 0 {
                ONE_DIGIT_NEGATIVE
            } else {
                ONE_DIGIT_POSITIVE
            };
            (*long).digit = v.unsigned_abs() as u32;
        }
    }

    /// Whether `int`s made by this interpreter have the layout above: 30-bit digits, and the
    /// tag and digit where we read them for a positive and a negative value.
    pub(super) fn matches(py: Gil) -> bool {
        // SAFETY: `PyLong_Type` is a static type object.
        let item_size = unsafe { (*std::ptr::addr_of!(ffi::PyLong_Type)).tp_itemsize };
        if item_size != 4 || std::mem::offset_of!(Long, digit) != 24 {
            return false;
        }
        [1000, -1000].iter().all(|&v| {
            let Some(object) = int(py, v) else {
                super::super::ffi_util::clear_error(py);
                return false;
            };
            // SAFETY: a live one-digit int we just made.
            let long = unsafe { &*object.as_ptr().cast::<Long>() };
            let tag = if v < 0 {
                ONE_DIGIT_NEGATIVE
            } else {
                ONE_DIGIT_POSITIVE
            };
            long.tag == tag && long.digit == 1000
        })
    }
}

/// Other Pythons: nothing is recycled.
#[cfg(not(all(Py_3_12, not(Py_3_14), not(Py_GIL_DISABLED))))]
mod layout {
    use pyo3::ffi;

    use super::super::ffi_util::Gil;

    pub(super) fn one_digit(_v: i64) -> bool {
        false
    }

    pub(super) unsafe fn is_one_digit_int(_object: *mut ffi::PyObject) -> bool {
        false
    }

    pub(super) unsafe fn write(_object: *mut ffi::PyObject, _v: i64) {
        unreachable!("nothing is kept")
    }

    pub(super) fn matches(_py: Gil) -> bool {
        false
    }
}
