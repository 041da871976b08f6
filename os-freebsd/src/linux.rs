//! Linux binaries under FreeBSD's Linux emulation: their `ioctl(2)` reaches the
//! linuxulator, which passes commands in a registered range to a handler with the raw Linux
//! command number and argument. kvmport registers `0xAE00..=0xAEFF` when the emulation is
//! loaded; `linux_ioctl_register_handler` is a weak import, so the module also loads without it.

use core::ffi::c_int;

use crate::kpi;
use crate::os::fdrop;

// Weak references to the linuxulator's registration functions, as data words the kernel
// linker fills (0 when no Linux emulation module is loaded).
core::arch::global_asm!(
    ".weak linux_ioctl_register_handler",
    ".weak linux_ioctl_unregister_handler",
    ".pushsection .data.kvmport_linux,\"aw\",@progbits",
    ".p2align 3",
    ".globl kvmport_linux_register_ptr",
    ".hidden kvmport_linux_register_ptr",
    "kvmport_linux_register_ptr: .quad linux_ioctl_register_handler",
    ".globl kvmport_linux_unregister_ptr",
    ".hidden kvmport_linux_unregister_ptr",
    "kvmport_linux_unregister_ptr: .quad linux_ioctl_unregister_handler",
    ".popsection",
);

unsafe extern "C" {
    static kvmport_linux_register_ptr: usize;
    static kvmport_linux_unregister_ptr: usize;
}

type RegisterFn = unsafe extern "C" fn(*mut kpi::linux_ioctl_handler) -> c_int;

/// The handler record (the linuxulator links it into its list).
static HANDLER: crate::entry::KernelCell<kpi::linux_ioctl_handler> =
    crate::entry::KernelCell(core::cell::UnsafeCell::new(kpi::linux_ioctl_handler {
        func: Some(linux_ioctl),
        low: 0xae00,
        high: 0xaeff,
    }));

static REGISTERED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

fn weak_fn(word: *const usize) -> Option<RegisterFn> {
    // SAFETY: a data word of this module, filled by the kernel linker; volatile so the
    // compiler cannot assume a non-zero function address.
    let addr = unsafe { word.read_volatile() };
    if addr == 0 {
        return None;
    }
    // SAFETY: a non-zero value is the address of the kernel function of that name.
    Some(unsafe { core::mem::transmute::<usize, RegisterFn>(addr) })
}

/// Registers the handler if the Linux emulation is loaded.
pub fn register() {
    if let Some(f) = weak_fn(&raw const kvmport_linux_register_ptr) {
        // SAFETY: registers our static handler record.
        if unsafe { f(HANDLER.get()) } == 0 {
            REGISTERED.store(true, core::sync::atomic::Ordering::Release);
        }
    }
}

/// Removes the handler again.
pub fn unregister() {
    if !REGISTERED.swap(false, core::sync::atomic::Ordering::AcqRel) {
        return;
    }
    if let Some(f) = weak_fn(&raw const kvmport_linux_unregister_ptr) {
        // SAFETY: unregisters the record registered above.
        let _ = unsafe { f(HANDLER.get()) };
    }
}

/// The handler: our `/dev/kvm`, VM and vCPU files only (`ENOIOCTL` lets other handlers try). The Linux
/// result goes to `td_retval[0]`, a negative one is returned as the (Linux) errno.
unsafe extern "C" fn linux_ioctl(td: *mut kpi::thread, args: *mut kpi::linux_ioctl_args) -> c_int {
    // SAFETY: the linuxulator passes its argument record.
    let a = unsafe { args.read() };
    let mut fp: *mut kpi::file = core::ptr::null_mut();
    // SAFETY: looks up the fd in the current process into a local.
    if unsafe { kpi::fget(td, a.fd, (&raw const kpi::cap_no_rights).cast(), &mut fp) } != 0 {
        return kpi::ENOIOCTL;
    }
    // SAFETY: `fp` is referenced until fdrop.
    let r = unsafe { crate::entry::linux_dispatch(fp, a.cmd, a.arg, td) };
    // SAFETY: drops fget's reference.
    unsafe { fdrop(fp, td) };
    match r {
        None => kpi::ENOIOCTL,
        Some(v) if v < 0 => (-v) as c_int,
        Some(v) => {
            // SAFETY: `td_retval[0]` of the calling thread (kpi::TD_RETVAL_OFFSET).
            unsafe {
                td.cast::<u8>()
                    .add(kpi::TD_RETVAL_OFFSET)
                    .cast::<i64>()
                    .write(v)
            };
            0
        }
    }
}
