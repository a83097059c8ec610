//! Argument objects recycled from one slice of rows to the next: `int`s and ASCII `str`s.
//!
//! A cheap UDF spends a tenth of its time making each row's argument object and freeing it
//! after the call (CPython 3.13 has no free list for `int` or `str`). Once a slice has run, an
//! argument that nobody else holds (reference count 1, in a list only we hold) is
//! unobservable, so instead of freeing it we keep it and write a later row's value into it;
//! CPython itself reuses refcount-1 objects in place the same way (`s += t`). A value is only
//! ever written into an object that held a value of the same shape, so it always fits:
//! - one-digit `int`s (|v| < 2**30, outside the cached small ints), the layout every such
//!   value has;
//! - compact ASCII `str`s that are not interned, reused for a value of the same length (the
//!   cached hash is reset).
//!
//! These layouts are CPython's, not part of its stable API: recycling is compiled for 3.12
//! and 3.13 only and checks the layouts when the interpreter starts; elsewhere every argument
//! is made anew.

use pyo3::ffi;

use super::ffi_util::{Gil, PyObj, int};
use super::py_values::string;

/// At most this many `int`s, and this many `str`s, are kept per interpreter: four slices'
/// worth of one argument. A full `str` stock is emptied before the next slice is taken back.
const KEEP: usize = 4096;

/// Only `str`s of up to this many characters are kept (longer ones cost their copy more than
/// their allocation), in one bucket per length.
const LONGEST_STR: usize = 256;

/// Objects of the interpreter that owns this stock, each held only by the stock.
pub(super) struct Recycled {
    ints: Vec<PyObj>,
    /// `strs[n]`: kept `str`s of length `n`.
    strs: Vec<Vec<PyObj>>,
    kept_strs: usize,
    /// Whether this interpreter's objects have the layouts we write (checked at start-up).
    enabled: bool,
}

impl Recycled {
    /// An empty stock; recycling is enabled only if objects have the layouts we expect.
    pub(super) fn new(py: Gil) -> Self {
        Recycled {
            ints: Vec::new(),
            strs: (0..=LONGEST_STR).map(|_| Vec::new()).collect(),
            kept_strs: 0,
            enabled: layout::matches(py),
        }
    }

    /// `int(v)`: a kept object given the value when one fits, else a new one.
    #[inline]
    pub(super) fn int(&mut self, py: Gil, v: i64) -> Option<PyObj> {
        if layout::one_digit(v)
            && let Some(object) = self.ints.pop()
        {
            // SAFETY: every kept int is a one-digit int held only by the stock (see
            // `reclaim`), so writing a one-digit value is unobservable and fits its memory.
            unsafe { layout::write_int(object.as_ptr(), v) };
            return Some(object);
        }
        int(py, v)
    }

    /// `str(s)`: a kept object of the same length given the text when `s` is ASCII, else a
    /// new one.
    #[inline]
    pub(super) fn str(&mut self, py: Gil, s: &str) -> Option<PyObj> {
        if let Some(bucket) = self.strs.get_mut(s.len())
            && !bucket.is_empty()
            && s.is_ascii()
            && let Some(object) = bucket.pop()
        {
            self.kept_strs -= 1;
            // SAFETY: every kept str is a compact ASCII str of this length held only by the
            // stock (see `reclaim`), so rewriting its text is unobservable and fits.
            unsafe { layout::write_ascii(object.as_ptr(), s.as_bytes()) };
            return Some(object);
        }
        string(py, s)
    }

    /// Takes back the recyclable objects of `list` that only the list holds, putting `None`
    /// in their place. `list` must be a list only the caller holds, about to be dropped.
    pub(super) fn reclaim(&mut self, py: Gil, list: &PyObj) {
        // SAFETY: the token proves the GIL is held; `list` is live.
        let only_ours = unsafe {
            ffi::PyList_CheckExact(list.as_ptr()) != 0 && ffi::Py_REFCNT(list.as_ptr()) == 1
        };
        if !self.enabled || !only_ours {
            return;
        }
        if self.kept_strs >= KEEP {
            // Full: of lengths the arguments no longer have, most likely. Start afresh.
            self.strs.iter_mut().for_each(Vec::clear);
            self.kept_strs = 0;
        }
        // SAFETY: as above; a list only we hold cannot change size or items behind our back.
        let len = unsafe { ffi::PyList_GET_SIZE(list.as_ptr()) };
        for i in 0..len {
            // SAFETY: `i` is in bounds; the item is borrowed from the live list.
            let item = unsafe { ffi::PyList_GET_ITEM(list.as_ptr(), i) };
            // SAFETY: `item` is live.
            let Some(bin) = (unsafe { self.bin_for(item) }) else {
                continue;
            };
            let none = PyObj::none(py).into_raw();
            // SAFETY: the list's reference to `item` moves to the stock and `None` takes its
            // slot (SET_ITEM steals the reference to `None` and does not release `item`).
            unsafe { ffi::PyList_SET_ITEM(list.as_ptr(), i, none) };
            let item = PyObj::owned(py, item).expect("a list item is not null");
            match bin {
                Bin::Int => self.ints.push(item),
                Bin::Str(n) => {
                    self.strs[n].push(item);
                    self.kept_strs += 1;
                }
            }
        }
    }

    /// Where `object` goes if it is recyclable, only referenced once and there is room.
    ///
    /// # Safety
    /// The GIL is held and `object` is live.
    #[inline]
    unsafe fn bin_for(&self, object: *mut ffi::PyObject) -> Option<Bin> {
        // SAFETY: per the contract.
        unsafe {
            if ffi::Py_REFCNT(object) != 1 {
                return None;
            }
            if layout::is_one_digit_int(object) {
                return (self.ints.len() < KEEP).then_some(Bin::Int);
            }
            let n = layout::recyclable_str_len(object)?;
            (n <= LONGEST_STR && self.kept_strs < KEEP).then_some(Bin::Str(n))
        }
    }
}

/// Where a reclaimed object is kept.
enum Bin {
    Int,
    /// A `str` of this length.
    Str(usize),
}

/// CPython 3.12/3.13's layouts of `int` and of compact ASCII `str`.
#[cfg(all(Py_3_12, not(Py_3_14), not(Py_GIL_DISABLED)))]
mod layout {
    use pyo3::ffi;

    use super::super::ffi_util::{Gil, PyObj, call1, clear_error, getattr, import, int, unicode};

    /// `PyLongObject`: a tag (digit count << 3 | sign: 0 positive, 1 zero, 2 negative), then
    /// 30-bit digits in `u32`s.
    #[repr(C)]
    struct Long {
        head: ffi::PyObject,
        tag: usize,
        digit: u32,
    }

    const DIGIT_MASK: i64 = (1 << 30) - 1;
    const ONE_DIGIT_POSITIVE: usize = 1 << 3;
    const ONE_DIGIT_NEGATIVE: usize = 1 << 3 | 2;

    /// `PyASCIIObject`, followed by the text and a NUL.
    #[repr(C)]
    struct Ascii {
        head: ffi::PyObject,
        length: ffi::Py_ssize_t,
        hash: ffi::Py_hash_t,
        state: u32,
    }

    /// The low byte of `state` of a str that is compact ASCII (kind 1 << 2 | compact 1 << 5
    /// | ascii 1 << 6), not interned (bits 0-1) and not static (bit 7).
    const COMPACT_ASCII: u32 = 1 << 2 | 1 << 5 | 1 << 6;

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
    pub(super) unsafe fn write_int(object: *mut ffi::PyObject, v: i64) {
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

    /// The length of `object` if it is an exact, compact ASCII, non-interned `str`.
    ///
    /// # Safety
    /// The GIL is held and `object` is live.
    #[inline]
    pub(super) unsafe fn recyclable_str_len(object: *mut ffi::PyObject) -> Option<usize> {
        // SAFETY: per the contract; the fields are read only from an exact `str`.
        unsafe {
            if ffi::PyUnicode_CheckExact(object) == 0 {
                return None;
            }
            let ascii = &*object.cast::<Ascii>();
            (ascii.state & 0xff == COMPACT_ASCII).then_some(ascii.length as usize)
        }
    }

    /// Gives the compact ASCII `str` `object` the text `text`, of its length.
    ///
    /// # Safety
    /// The GIL is held; `object` is a compact ASCII `str` of `text.len()` characters that
    /// nobody else can observe; `text` is ASCII.
    #[inline]
    pub(super) unsafe fn write_ascii(object: *mut ffi::PyObject, text: &[u8]) {
        // SAFETY: per the contract; the text follows the header, with its NUL kept.
        unsafe {
            let ascii = object.cast::<Ascii>();
            (*ascii).hash = -1;
            let data = ascii.add(1).cast::<u8>();
            std::ptr::copy_nonoverlapping(text.as_ptr(), data, text.len());
        }
    }

    /// Whether this interpreter's objects have the layouts above (see [`ints_match`] and
    /// [`strs_match`]).
    pub(super) fn matches(py: Gil) -> bool {
        let matched = ints_match(py) && strs_match(py);
        clear_error(py);
        matched
    }

    /// `int`s have 30-bit digits, and the tag and digit where we read them, for both signs.
    fn ints_match(py: Gil) -> bool {
        // SAFETY: `PyLong_Type` is a static type object.
        let digit_size = unsafe { (*std::ptr::addr_of!(ffi::PyLong_Type)).tp_itemsize };
        digit_size == 4
            && [1000, -1000].into_iter().all(|v| {
                int(py, v).is_some_and(|object| {
                    let long = object.as_ptr().cast::<Long>();
                    let tag = if v < 0 {
                        ONE_DIGIT_NEGATIVE
                    } else {
                        ONE_DIGIT_POSITIVE
                    };
                    // SAFETY: a live one-digit int; the fields are read through the pointer
                    // (its allocation may be shorter than `Long`'s padded size).
                    unsafe {
                        std::ptr::addr_of!((*long).tag).read() == tag
                            && std::ptr::addr_of!((*long).digit).read() == 1000
                    }
                })
            })
    }

    /// A new ASCII `str` is recyclable, with its text right after the header and its cached
    /// hash where `write_ascii` resets it; a latin-1 `str`, a mortal interned one (as
    /// `sys.intern` makes) and an immortal interned one are not.
    fn strs_match(py: Gil) -> bool {
        let Some(fresh) = PyObj::owned(py, unicode(py, "abc")) else {
            return false;
        };
        // SAFETY: the token proves the GIL is held; `fresh` is live. Hashing caches the hash.
        let hash = unsafe { ffi::PyObject_Hash(fresh.as_ptr()) };
        // SAFETY: as above; `fresh` is a str of 3 characters, at least `Ascii` plus 4 bytes.
        let fresh_fits = unsafe {
            recyclable_str_len(fresh.as_ptr()) == Some(3)
                && ffi::PyUnicode_1BYTE_DATA(fresh.as_ptr())
                    == fresh.as_ptr().cast::<Ascii>().add(1).cast::<u8>()
                && (*fresh.as_ptr().cast::<Ascii>()).hash == hash
        };
        let sys_intern = import(py, c"sys").and_then(|sys| getattr(py, sys.as_ptr(), c"intern"));
        let mortal = sys_intern.and_then(|intern| {
            let name = PyObj::owned(py, unicode(py, "pickleball layout check"))?;
            call1(py, intern.as_ptr(), name.as_ptr())
        });
        // SAFETY: the token proves the GIL is held; the name is NUL-terminated.
        let immortal = PyObj::owned(py, unsafe {
            ffi::PyUnicode_InternFromString(c"pickleball-layout-check".as_ptr())
        });
        let latin1 = PyObj::owned(py, unicode(py, "caf\u{e9}"));
        fresh_fits
            && [mortal, immortal, latin1].into_iter().all(|object| {
                // SAFETY: a live str we just made.
                object.is_some_and(|o| unsafe { recyclable_str_len(o.as_ptr()) }.is_none())
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

    pub(super) unsafe fn write_int(_object: *mut ffi::PyObject, _v: i64) {
        unreachable!("nothing is kept")
    }

    pub(super) unsafe fn recyclable_str_len(_object: *mut ffi::PyObject) -> Option<usize> {
        None
    }

    pub(super) unsafe fn write_ascii(_object: *mut ffi::PyObject, _text: &[u8]) {
        unreachable!("nothing is kept")
    }

    pub(super) fn matches(_py: Gil) -> bool {
        false
    }
}
