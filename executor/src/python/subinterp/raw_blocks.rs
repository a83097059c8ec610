//! Reuse of CPython's mid-size raw memory blocks on sub-interpreter threads.
//!
//! CPython serves requests above 512 bytes with the C library's `malloc` (its "raw" domain).
//! Some of them are made and freed on every call of a typical UDF: the regular-expression
//! engine allocates a ~1.1 KiB backtracking stack for every search (so `findall` over a
//! sentence pays one per word), and every `str` or `bytes` longer than ~480 bytes is such a
//! block. glibc's per-thread cache stops at 1,032 bytes, and on a worker thread its arena
//! often ends up serving these from its sorted bins, which costs about three times as much
//! as on the main thread (measured with callgrind: ~2,700 more instructions a row for a
//! regex UDF, 8% of its cost).
//!
//! So the raw domain is wrapped, once per process, by functions that keep, per sub-interpreter
//! thread, up to 8 freed blocks in each 256-byte size class from 513 to 8,192
//! bytes and hand them out again. Every block still comes from, and finally goes back to, the
//! C library's allocator that was there before: a kept block is a glibc block, so `realloc`
//! and a free on any thread keep working, and other threads only pay a check of a
//! thread-local flag. The wrapper is only installed over CPython's default raw allocator (as
//! its preset name tells); with `PYTHONMALLOC=debug`, `-X dev` or `tracemalloc` running when
//! the first pool starts it stays out. A double free by a C extension, which glibc's thread
//! cache may detect, is not detected in the stock.

#[cfg(all(Py_3_12, not(Py_GIL_DISABLED), target_os = "linux", target_env = "gnu"))]
mod imp {
    use std::cell::UnsafeCell;
    use std::ffi::{CStr, c_char, c_void};
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use pyo3::ffi::{self, PyMemAllocatorDomain, PyMemAllocatorEx};

    /// Blocks kept per size class and thread (at most ~1 MiB a thread in all).
    const PER_CLASS: usize = 8;
    /// The size classes: class `c` holds blocks of at least `(c + 1) * CLASS` usable bytes.
    const CLASS: usize = 256;
    /// Smallest request served from the stock: larger than pymalloc's own limit.
    const MIN: usize = 513;
    /// Largest request served from the stock.
    const MAX: usize = 8192;
    const CLASSES: usize = MAX / CLASS;

    unsafe extern "C" {
        fn malloc(size: usize) -> *mut c_void;
        fn calloc(nelem: usize, elsize: usize) -> *mut c_void;
        fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void;
        fn free(ptr: *mut c_void);
        /// glibc: the usable size of a block `malloc` returned (at least what was asked).
        fn malloc_usable_size(ptr: *mut c_void) -> usize;
        /// CPython (exported, internal): the name of the allocators' preset, or NULL when a
        /// domain is hooked or replaced.
        fn _PyMem_GetCurrentAllocatorName() -> *const c_char;
    }

    /// Whether the wrapper is installed.
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    /// Blocks handed out again, over all threads (published after each job).
    static REUSED: AtomicU64 = AtomicU64::new(0);

    /// One thread's kept blocks.
    struct Stock {
        enabled: bool,
        counts: [u8; CLASSES],
        blocks: [[*mut c_void; PER_CLASS]; CLASSES],
        reused: u64,
    }

    impl Stock {
        /// A kept block for a request of class `class`, if there is one.
        fn take(&mut self, class: usize) -> Option<*mut c_void> {
            let count = self.counts[class].checked_sub(1)?;
            self.counts[class] = count;
            self.reused += 1;
            Some(self.blocks[class][usize::from(count)])
        }

        /// Keeps `ptr` (a glibc block) if its class has room.
        fn put(&mut self, ptr: *mut c_void) -> bool {
            // SAFETY: every block of the raw domain came from glibc's malloc (checked before
            // installing: the previous allocator is the default one).
            let usable = unsafe { malloc_usable_size(ptr) };
            // Class 2 (768 bytes) is the smallest a request above 512 bytes asks for.
            if !(3 * CLASS..(CLASSES + 1) * CLASS).contains(&usable) {
                return false;
            }
            // The largest class whose size the block covers.
            let class = usable / CLASS - 1;
            let count = usize::from(self.counts[class]);
            if count == PER_CLASS {
                return false;
            }
            self.blocks[class][count] = ptr;
            self.counts[class] += 1;
            true
        }
    }

    impl Drop for Stock {
        fn drop(&mut self) {
            for (class, count) in self.counts.iter_mut().enumerate() {
                for &block in &self.blocks[class][..usize::from(*count)] {
                    // SAFETY: a block of glibc's malloc that nobody else references.
                    unsafe { free(block) };
                }
                *count = 0;
            }
        }
    }

    thread_local! {
        // UnsafeCell, not RefCell: the allocator functions are not re-entered on a thread
        // (glibc does not call back into Python) and must stay cheap.
        static STOCK: UnsafeCell<Stock> = const {
            UnsafeCell::new(Stock {
                enabled: false,
                counts: [0; CLASSES],
                blocks: [[std::ptr::null_mut(); PER_CLASS]; CLASSES],
                reused: 0,
            })
        };
    }

    // The wrapper's functions. Installed only over CPython's default raw allocator, which
    // calls the C library's functions (asking for at least one byte): so do these.

    extern "C" fn raw_malloc(_ctx: *mut c_void, size: usize) -> *mut c_void {
        if !(MIN..=MAX).contains(&size) {
            // SAFETY: the C library's allocator.
            return unsafe { malloc(size.max(1)) };
        }
        let class = (size - 1) / CLASS;
        match with_stock(|stock| stock.enabled.then(|| stock.take(class))).flatten() {
            Some(Some(block)) => block,
            // Allocated at the class's full size so that it goes back to the same class.
            // SAFETY: the C library's allocator.
            Some(None) => unsafe { malloc((class + 1) * CLASS) },
            // SAFETY: the C library's allocator.
            None => unsafe { malloc(size) },
        }
    }

    extern "C" fn raw_free(_ctx: *mut c_void, ptr: *mut c_void) {
        if !ptr.is_null() && keep(ptr) {
            return;
        }
        // SAFETY: every block of the raw domain comes from the C library's allocator.
        unsafe { free(ptr) };
    }

    /// Puts `ptr` (a glibc block) in this thread's stock if the thread keeps blocks and its
    /// class has room.
    fn keep(ptr: *mut c_void) -> bool {
        with_stock(|stock| stock.enabled && stock.put(ptr)).unwrap_or(false)
    }

    /// `f` on this thread's stock; `None` once the thread's locals are gone (thread exit).
    fn with_stock<R>(f: impl FnOnce(&mut Stock) -> R) -> Option<R> {
        // SAFETY: this thread's stock, and no other reference to it is live: the allocator
        // functions are not re-entered on a thread (see STOCK).
        STOCK.try_with(|stock| f(unsafe { &mut *stock.get() })).ok()
    }

    extern "C" fn raw_calloc(_ctx: *mut c_void, nelem: usize, elsize: usize) -> *mut c_void {
        let (nelem, elsize) = if nelem == 0 || elsize == 0 {
            (1, 1)
        } else {
            (nelem, elsize)
        };
        // SAFETY: the C library's allocator.
        unsafe { calloc(nelem, elsize) }
    }

    extern "C" fn raw_realloc(_ctx: *mut c_void, ptr: *mut c_void, size: usize) -> *mut c_void {
        // SAFETY: `ptr` is null or a block of the C library's allocator (a kept block is
        // never in use, so never reallocated).
        unsafe { realloc(ptr, size.max(1)) }
    }

    /// Wraps the raw domain, once per process. Call with the main interpreter's GIL held,
    /// before any sub-interpreter of ours exists. Returns why it did not, if it did not.
    pub(crate) fn install() -> Result<(), &'static str> {
        static OUTCOME: OnceLock<Result<(), &'static str>> = OnceLock::new();
        *OUTCOME.get_or_init(|| {
            // SAFETY: reads CPython's allocator presets under its own lock.
            let name = unsafe { _PyMem_GetCurrentAllocatorName() };
            // SAFETY: a static C string when not null.
            let name = (!name.is_null()).then(|| unsafe { CStr::from_ptr(name) });
            // These presets, and only these, leave the raw domain to the C library's malloc.
            if !matches!(
                name.map(CStr::to_bytes),
                Some(b"pymalloc" | b"malloc" | b"mimalloc")
            ) {
                return Err(
                    "Python's raw allocator is hooked (PYTHONMALLOC=debug, -X dev, tracemalloc)",
                );
            }
            let mut wrapper = PyMemAllocatorEx {
                ctx: std::ptr::null_mut(),
                malloc: Some(raw_malloc),
                calloc: Some(raw_calloc),
                realloc: Some(raw_realloc),
                free: Some(raw_free),
            };
            // SAFETY: the wrapper calls the same C library functions as the allocator it
            // replaces and only keeps blocks of that allocator: a wrapper, as the C API allows
            // after initialization. A thread reading the domain while it changes can mix old
            // and new functions, which is harmless for the same reason.
            unsafe {
                ffi::PyMem_SetAllocator(PyMemAllocatorDomain::PYMEM_DOMAIN_RAW, &mut wrapper)
            };
            INSTALLED.store(true, Ordering::Release);
            Ok(())
        })
    }

    /// Makes the current thread keep freed blocks (a sub-interpreter's worker thread). Its
    /// blocks go back to glibc when the thread ends.
    pub(crate) fn keep_on_this_thread() {
        if !INSTALLED.load(Ordering::Acquire) {
            return;
        }
        with_stock(|stock| stock.enabled = true);
    }

    /// Adds the blocks this thread handed out again since the last call to the process total.
    pub(crate) fn publish_reuse() {
        with_stock(|stock| REUSED.fetch_add(std::mem::take(&mut stock.reused), Ordering::Relaxed));
    }

    /// Blocks handed out again, over all threads, as published so far.
    pub fn reused_blocks() -> u64 {
        REUSED.load(Ordering::Relaxed)
    }

    /// Whether raw blocks are reused in this process, or why not.
    pub fn reuse_status() -> Result<(), &'static str> {
        if INSTALLED.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err("not installed (no pool started, or Python's raw allocator is hooked)")
        }
    }
}

#[cfg(not(all(Py_3_12, not(Py_GIL_DISABLED), target_os = "linux", target_env = "gnu")))]
mod imp {
    pub(crate) fn install() -> Result<(), &'static str> {
        Err("needs CPython >= 3.12 with its GIL, on glibc")
    }
    pub(crate) fn keep_on_this_thread() {}
    pub(crate) fn publish_reuse() {}
    /// Blocks handed out again: none on this platform.
    pub fn reused_blocks() -> u64 {
        0
    }
    /// Whether raw blocks are reused: never on this platform.
    pub fn reuse_status() -> Result<(), &'static str> {
        Err("needs CPython >= 3.12 with its GIL, on glibc")
    }
}

pub(crate) use imp::{install, keep_on_this_thread, publish_reuse};
pub use imp::{reuse_status, reused_blocks};
