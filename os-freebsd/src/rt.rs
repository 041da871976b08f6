//! What a `no_std` Rust object needs inside the FreeBSD kernel: a global allocator over
//! malloc(9) with the module's own malloc type, and a panic handler. Kernel target only.

use core::alloc::{GlobalAlloc, Layout};
use core::fmt::Write;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::entry::M_KVMPORT;
use crate::kpi;

/// malloc(9) returns at least 16-byte aligned memory, and power-of-two sizes up to a page
/// naturally aligned (UMA's malloc zones), larger ones page-aligned.
const MALLOC_MIN_ALIGN: usize = 16;

fn malloc_size(layout: Layout) -> usize {
    if layout.align() <= MALLOC_MIN_ALIGN {
        layout.size().max(1)
    } else {
        layout.size().max(layout.align()).next_power_of_two()
    }
}

static LIVE_ALLOCS: AtomicUsize = AtomicUsize::new(0);

/// Allocations not yet freed.
pub fn live_allocs() -> usize {
    LIVE_ALLOCS.load(Ordering::Relaxed)
}

struct KernelAlloc;

// SAFETY: malloc(9) with M_NOWAIT returns NULL or at least `malloc_size` bytes aligned as
// described above; free(9) accepts exactly those pointers with the same type.
unsafe impl GlobalAlloc for KernelAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain allocation of our type; NULL is the failure value.
        let p: *mut u8 =
            unsafe { kpi::malloc(malloc_size(layout), M_KVMPORT.get(), kpi::M_NOWAIT) }.cast();
        if !p.is_null() {
            LIVE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`, zeroed by the kernel.
        let p: *mut u8 = unsafe {
            kpi::malloc(
                malloc_size(layout),
                M_KVMPORT.get(),
                kpi::M_NOWAIT | kpi::M_ZERO,
            )
        }
        .cast();
        if !p.is_null() {
            LIVE_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        LIVE_ALLOCS.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this type.
        unsafe { kpi::free(ptr.cast(), M_KVMPORT.get()) }
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

/// Kernel crates deny panicking calls; a panic that still happens is a kvmport bug and
/// becomes a kernel panic with its message.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut msg = PanicBuf {
        buf: [0; 200],
        len: 0,
    };
    let _ = write!(msg, "{info}");
    // CAST: len <= 200.
    let len = msg.len as core::ffi::c_int;
    // SAFETY: "%.*s" prints `len` initialised bytes; panic(9) does not return.
    unsafe { kpi::panic(c"kvmport: %.*s".as_ptr(), len, msg.buf.as_ptr()) }
}
