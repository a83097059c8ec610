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
//! thread, up to [`PER_CLASS`] freed blocks in each 256-byte size class from 513 to 8,192
//! bytes and hand them out again. Every block still comes from, and finally goes back to, the
//! allocator that was there before (glibc's `malloc`): a kept block is a glibc block, so
//! `realloc` and a free on any thread keep working, and other threads only pay a check of a
//! thread-local flag. The wrapper is only installed over the default raw allocator (no
//! context); with `PYTHONMALLOC=debug`, `-X dev` or `tracemalloc` running it stays out.

/// Blocks kept per size class and thread (at most ~1 MiB a thread in all).
pub(crate) const PER_CLASS: usize = 8;

#[cfg(all(Py_3_12, not(Py_GIL_DISABLED), target_os = "linux", target_env = "gnu"))]
mod imp {
    use std::cell::UnsafeCell;
    use std::ffi::c_void;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    use pyo3::ffi::{self, PyMemAllocatorDomain, PyMemAllocatorEx};

    use super::PER_CLASS;

    /// The size classes: class `c` holds blocks of at least `(c + 1) * CLASS` usable bytes.
    const CLASS: usize = 256;
    /// Smallest request served from the stock: larger than pymalloc's own limit.
    const MIN: usize = 513;
    /// Largest request served from the stock.
    const MAX: usize = 8192;
    const CLASSES: usize = MAX / CLASS;

    unsafe extern "C" {
        /// glibc: the usable size of a block `malloc` returned (at least what was asked).
        fn malloc_usable_size(ptr: *mut c_void) -> usize;
    }

    /// The raw allocator the wrapper forwards to.
    struct Previous(PyMemAllocatorEx);
    // SAFETY: the allocator's functions are thread-safe (the raw domain's contract) and its
    // context is null (checked before installing).
    unsafe impl Sync for Previous {}
    unsafe impl Send for Previous {}

    static PREVIOUS: OnceLock<Previous> = OnceLock::new();
    /// Blocks handed out again, over all threads (published after each job).
    static REUSED: AtomicU64 = AtomicU64::new(0);

    /// One thread's kept blocks.
    struct Stock {
        enabled: bool,
        counts: [u8; CLASSES],
        blocks: [[*mut c_void; PER_CLASS]; CLASSES],
        reused: u64,
    }

    impl Drop for Stock {
        fn drop(&mut self) {
            let Some(previous) = PREVIOUS.get() else {
                return;
            };
            for (class, count) in self.counts.iter_mut().enumerate() {
                for &block in &self.blocks[class][..usize::from(*count)] {
                    free_previous(previous, block);
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

    fn free_previous(previous: &Previous, ptr: *mut c_void) {
        if let Some(free) = previous.0.free {
            free(previous.0.ctx, ptr);
        }
    }

    extern "C" fn malloc(_ctx: *mut c_void, size: usize) -> *mut c_void {
        // SAFETY: installed only after PREVIOUS was set.
        let previous = unsafe { PREVIOUS.get().unwrap_unchecked() };
        let forward = previous.0.malloc.expect("a raw allocator has malloc");
        if !(MIN..=MAX).contains(&size) {
            return forward(previous.0.ctx, size);
        }
        let class = (size - 1) / CLASS;
        let kept = STOCK.try_with(|stock| {
            // SAFETY: this thread's stock; no other reference to it is live (see STOCK).
            let stock = unsafe { &mut *stock.get() };
            if !stock.enabled {
                return None;
            }
            let count = stock.counts[class];
            if count == 0 {
                return Some(std::ptr::null_mut());
            }
            stock.counts[class] = count - 1;
            stock.reused += 1;
            Some(stock.blocks[class][usize::from(count - 1)])
        });
        match kept {
            Ok(Some(block)) if !block.is_null() => block,
            // Allocated at the class's full size so that it goes back to the same class.
            Ok(Some(_)) => forward(previous.0.ctx, (class + 1) * CLASS),
            _ => forward(previous.0.ctx, size),
        }
    }

    extern "C" fn free(_ctx: *mut c_void, ptr: *mut c_void) {
        // SAFETY: installed only after PREVIOUS was set.
        let previous = unsafe { PREVIOUS.get().unwrap_unchecked() };
        if !ptr.is_null() && keep(ptr) {
            return;
        }
        free_previous(previous, ptr);
    }

    /// Puts `ptr` (a glibc block) in this thread's stock if the thread keeps blocks and its
    /// class has room.
    fn keep(ptr: *mut c_void) -> bool {
        STOCK
            .try_with(|stock| {
                // SAFETY: this thread's stock; no other reference to it is live.
                let stock = unsafe { &mut *stock.get() };
                if !stock.enabled {
                    return false;
                }
                // SAFETY: every block of the raw domain came from glibc's malloc (checked
                // before installing: the previous allocator is the default one).
                let usable = unsafe { malloc_usable_size(ptr) };
                // Class 2 (768 bytes) is the smallest a request above 512 bytes asks for.
                if !(3 * CLASS..(CLASSES + 1) * CLASS).contains(&usable) {
                    return false;
                }
                // The largest class whose size the block covers.
                let class = usable / CLASS - 1;
                let count = usize::from(stock.counts[class]);
                if count == PER_CLASS {
                    return false;
                }
                stock.blocks[class][count] = ptr;
                stock.counts[class] += 1;
                true
            })
            .unwrap_or(false)
    }

    extern "C" fn calloc(_ctx: *mut c_void, nelem: usize, elsize: usize) -> *mut c_void {
        // SAFETY: installed only after PREVIOUS was set.
        let previous = unsafe { PREVIOUS.get().unwrap_unchecked() };
        let forward = previous.0.calloc.expect("a raw allocator has calloc");
        forward(previous.0.ctx, nelem, elsize)
    }

    extern "C" fn realloc(_ctx: *mut c_void, ptr: *mut c_void, size: usize) -> *mut c_void {
        // SAFETY: installed only after PREVIOUS was set.
        let previous = unsafe { PREVIOUS.get().unwrap_unchecked() };
        let forward = previous.0.realloc.expect("a raw allocator has realloc");
        forward(previous.0.ctx, ptr, size)
    }

    /// Wraps the raw domain, once per process. Call with the main interpreter's GIL held,
    /// before any sub-interpreter of ours exists. Returns why it did not, if it did not.
    pub(crate) fn install() -> Result<(), &'static str> {
        static OUTCOME: OnceLock<Result<(), &'static str>> = OnceLock::new();
        *OUTCOME.get_or_init(|| {
            let mut current = PyMemAllocatorEx {
                ctx: std::ptr::null_mut(),
                malloc: None,
                calloc: None,
                realloc: None,
                free: None,
            };
            // SAFETY: reads the domain's current functions into `current`.
            unsafe {
                ffi::PyMem_GetAllocator(PyMemAllocatorDomain::PYMEM_DOMAIN_RAW, &mut current)
            };
            let complete = current.malloc.is_some()
                && current.calloc.is_some()
                && current.realloc.is_some()
                && current.free.is_some();
            if !current.ctx.is_null() || !complete {
                return Err(
                    "Python's raw allocator is hooked (PYTHONMALLOC=debug, -X dev or tracemalloc)",
                );
            }
            if PREVIOUS.set(Previous(current)).is_err() {
                return Err("installed twice");
            }
            let mut wrapper = PyMemAllocatorEx {
                ctx: std::ptr::null_mut(),
                malloc: Some(malloc),
                calloc: Some(calloc),
                realloc: Some(realloc),
                free: Some(free),
            };
            // SAFETY: the wrapper forwards every block it does not keep to the allocator it
            // replaces, and only keeps blocks of that allocator: a wrapper, as the C API
            // allows after initialization.
            unsafe {
                ffi::PyMem_SetAllocator(PyMemAllocatorDomain::PYMEM_DOMAIN_RAW, &mut wrapper)
            };
            Ok(())
        })
    }

    /// Makes the current thread keep freed blocks (a sub-interpreter's worker thread). Its
    /// blocks go back to glibc when the thread ends.
    pub(crate) fn keep_on_this_thread() {
        if PREVIOUS.get().is_none() {
            return;
        }
        // SAFETY: this thread's stock; no other reference to it is live.
        let _ = STOCK.try_with(|stock| unsafe { (*stock.get()).enabled = true });
    }

    /// Adds the blocks this thread handed out again since the last call to the process total.
    pub(crate) fn publish_reuse() {
        let _ = STOCK.try_with(|stock| {
            // SAFETY: this thread's stock; no other reference to it is live.
            let stock = unsafe { &mut *stock.get() };
            REUSED.fetch_add(std::mem::take(&mut stock.reused), Ordering::Relaxed);
        });
    }

    /// Blocks handed out again, over all threads, as published so far.
    pub fn reused_blocks() -> u64 {
        REUSED.load(Ordering::Relaxed)
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
}

pub use imp::reused_blocks;
pub(crate) use imp::{install, keep_on_this_thread, publish_reuse};
