//! What a `no_std` Rust object needs inside the illumos kernel: a global allocator over
//! kmem_alloc(9F) and a panic handler. Kernel target only.

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;
use core::fmt::Write;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::ddi;

/// kmem_alloc(9F) returns memory aligned to at least 8 bytes (`KMEM_ALIGN`).
const KMEM_ALIGN: usize = 8;

static LIVE_ALLOCS: AtomicUsize = AtomicUsize::new(0);

/// Allocations not yet freed.
pub fn live_allocs() -> usize {
    LIVE_ALLOCS.load(Ordering::Relaxed)
}

/// The size asked of kmem_alloc: larger alignments over-allocate and keep the original
/// pointer in the word before the aligned block.
fn kmem_size(layout: Layout) -> Option<usize> {
    let size = layout.size().max(1);
    if layout.align() <= KMEM_ALIGN {
        Some(size)
    } else {
        size.checked_add(layout.align())
    }
}

struct KernelAlloc;

// SAFETY: kmem_alloc with KM_NOSLEEP returns NULL or `kmem_size` bytes 8-aligned; larger
// alignments are produced inside a bigger block; kmem_free gets back the same pointer and
// size.
unsafe impl GlobalAlloc for KernelAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(n) = kmem_size(layout) else {
            return core::ptr::null_mut();
        };
        // SAFETY: a plain allocation; NULL is the failure value.
        let p = unsafe { ddi::kmem_alloc(n, ddi::KM_NOSLEEP) }.cast::<u8>();
        if p.is_null() {
            return p;
        }
        LIVE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        if layout.align() <= KMEM_ALIGN {
            return p;
        }
        let base = p as usize;
        let aligned = (base + layout.align()) & !(layout.align() - 1);
        // SAFETY: `aligned - 8 >= base` (align > 8) and `aligned + size <= base + n`.
        unsafe { (aligned as *mut usize).sub(1).write(base) };
        aligned as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(n) = kmem_size(layout) else { return };
        LIVE_ALLOCS.fetch_sub(1, Ordering::Relaxed);
        let base = if layout.align() <= KMEM_ALIGN {
            ptr
        } else {
            // SAFETY: written by `alloc` just before the aligned block.
            unsafe { (ptr as *const usize).sub(1).read() as *mut u8 }
        };
        // SAFETY: the block `alloc` got with this size.
        unsafe { ddi::kmem_free(base.cast::<c_void>(), n) }
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
            if self.len + 1 >= self.buf.len() {
                break;
            }
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = if b == 0 { b'?' } else { b };
                self.len += 1;
            }
        }
        Ok(())
    }
}

/// Kernel crates deny panicking calls; a panic that still happens is a kvmport bug and
/// becomes a kernel panic with its message.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut msg = PanicBuf {
        buf: [0; 200],
        len: 0,
    };
    let _ = write!(msg, "{info}");
    // SAFETY: "%s" prints the NUL-terminated buffer; panic() does not return.
    unsafe { ddi::panic(c"kvmport: %s".as_ptr(), msg.buf.as_ptr()) }
}
