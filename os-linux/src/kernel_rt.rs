//! What a `no_std` Rust object needs inside the kernel: a global allocator over `kmalloc`
//! and a panic handler. Built only for the kernel target.

use core::alloc::{GlobalAlloc, Layout};
use core::fmt::Write;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::ffi;

/// `kmalloc` guarantees 8-byte alignment, and natural alignment for power-of-two sizes.
const KMALLOC_MIN_ALIGN: usize = 8;

/// The size to ask `kmalloc` for so that the result is aligned for `layout`.
fn kmalloc_size(layout: Layout) -> usize {
    if layout.align() <= KMALLOC_MIN_ALIGN {
        layout.size().max(1)
    } else {
        layout.size().max(layout.align()).next_power_of_two()
    }
}

/// Live allocations made through the global allocator (for the leak report at unload).
static LIVE_ALLOCS: AtomicUsize = AtomicUsize::new(0);

/// Allocations not yet freed.
pub fn live_allocs() -> usize {
    LIVE_ALLOCS.load(Ordering::Relaxed)
}

struct KernelAlloc;

// SAFETY: kmalloc returns memory of at least the requested size, aligned as `kmalloc_size`
// arranges, or NULL; kfree/krealloc accept exactly those pointers.
unsafe impl GlobalAlloc for KernelAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain allocation; NULL on failure is GlobalAlloc's failure value.
        let p: *mut u8 = unsafe { ffi::kp_kmalloc(kmalloc_size(layout)) }.cast();
        if !p.is_null() {
            LIVE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        LIVE_ALLOCS.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc`/`realloc` (GlobalAlloc's contract).
        unsafe { ffi::kp_kfree(ptr.cast()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new) = Layout::from_size_align(new_size, layout.align()) else {
            return core::ptr::null_mut();
        };
        // SAFETY: `ptr` came from this allocator; krealloc keeps the contents and the
        // alignment of power-of-two sizes.
        unsafe { ffi::kp_krealloc(ptr.cast(), kmalloc_size(new)) }.cast()
    }
}

#[global_allocator]
static ALLOCATOR: KernelAlloc = KernelAlloc;

struct PanicBuf {
    buf: [u8; 200],
    len: usize,
}

impl Write for PanicBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

/// Kernel crates deny panicking calls; a panic that still happens is a kvmport bug and is
/// reported as a kernel BUG with its message.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut msg = PanicBuf {
        buf: [0; 200],
        len: 0,
    };
    let _ = write!(msg, "{info}");
    // SAFETY: `buf[..len]` is initialised; kp_bug prints it and does not return.
    unsafe { ffi::kp_bug(msg.buf.as_ptr().cast(), msg.len) }
}
