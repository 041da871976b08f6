//! Linux binaries under FreeBSD's Linux emulation: their `ioctl(2)` reaches the
//! linuxulator, which passes commands in a registered range to a handler with the raw Linux
//! command number and argument. kvmport registers `0xAE00..=0xAEFF` when the emulation is
//! loaded.
//!
//! The registration functions live in the emulation module, not in the kernel, and a module
//! only resolves symbols of the kernel and of its declared dependencies; depending on the
//! emulation would force it to load. So they are looked up among the loaded files
//! (`linker_file_foreach` + `linker_file_lookup_symbol`) when `/dev/kvm` is opened, which is
//! outside the kernel linker's lock (a module event handler runs under it), and which every
//! KVM user, Linux binaries included, does first.

use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use crate::kpi;
use crate::os::fdrop;

type RegisterFn = unsafe extern "C" fn(*mut kpi::linux_ioctl_handler) -> c_int;

/// The handler record (the linuxulator links it into its list).
static HANDLER: crate::entry::KernelCell<kpi::linux_ioctl_handler> =
    crate::entry::KernelCell(core::cell::UnsafeCell::new(kpi::linux_ioctl_handler {
        func: Some(linux_ioctl),
        low: 0xae00,
        high: 0xaeff,
    }));

const UNREGISTERED: u8 = 0;
const BUSY: u8 = 1;
const REGISTERED: u8 = 2;
const CLOSED: u8 = 3;

/// Registration state; `CLOSED` after unload began.
static STATE: AtomicU8 = AtomicU8::new(UNREGISTERED);
/// `linux_ioctl_unregister_handler` of the module the handler was registered with.
static UNREGISTER: AtomicUsize = AtomicUsize::new(0);

/// What the lookup found: (register, unregister) addresses.
struct Found {
    register: usize,
    unregister: usize,
}

unsafe extern "C" fn find_in_file(file: *mut c_void, ctx: *mut c_void) -> c_int {
    // SAFETY: `ctx` is the `Found` of `try_register`, alive during linker_file_foreach.
    let found = unsafe { &mut *ctx.cast::<Found>() };
    // SAFETY: looks names up in one loaded file (deps = 0), under the lock the iteration holds.
    let (r, u) = unsafe {
        (
            kpi::linker_file_lookup_symbol(file, c"linux_ioctl_register_handler".as_ptr(), 0),
            kpi::linker_file_lookup_symbol(file, c"linux_ioctl_unregister_handler".as_ptr(), 0),
        )
    };
    if r.is_null() || u.is_null() {
        return 0;
    }
    found.register = r as usize;
    found.unregister = u as usize;
    1
}

/// Registers the handler if the Linux emulation is loaded and it is not registered yet.
/// Preemptible context, outside the kernel linker's lock.
pub fn try_register() {
    if STATE
        .compare_exchange(UNREGISTERED, BUSY, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return;
    }
    let mut found = Found {
        register: 0,
        unregister: 0,
    };
    // SAFETY: iterates the loaded files with our predicate; `found` outlives the call.
    let hit = unsafe { kpi::linker_file_foreach(find_in_file, (&raw mut found).cast()) };
    let mut next = UNREGISTERED;
    if hit != 0 && found.register != 0 {
        // SAFETY: a non-zero address the kernel linker returned for this function name.
        let register = unsafe { core::mem::transmute::<usize, RegisterFn>(found.register) };
        // SAFETY: registers our static handler record.
        if unsafe { register(HANDLER.get()) } == 0 {
            UNREGISTER.store(found.unregister, Ordering::Release);
            next = REGISTERED;
        }
    }
    STATE.store(next, Ordering::Release);
}

/// Removes the handler again (module unload); no registration happens afterwards.
pub fn unregister() {
    loop {
        match STATE.compare_exchange(UNREGISTERED, CLOSED, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return,
            Err(REGISTERED) => break,
            Err(BUSY) => core::hint::spin_loop(),
            Err(_) => return,
        }
    }
    STATE.store(CLOSED, Ordering::Release);
    let f = UNREGISTER.swap(0, Ordering::AcqRel);
    if f != 0 {
        // SAFETY: the unregister function found together with the register function used.
        let unregister = unsafe { core::mem::transmute::<usize, RegisterFn>(f) };
        // SAFETY: unregisters the record registered by `try_register`.
        let _ = unsafe { unregister(HANDLER.get()) };
    }
}

/// The handler: our `/dev/kvm`, VM and vCPU files only (`ENOIOCTL` lets other handlers try).
/// The Linux result goes to `td_retval[0]`, a negative one is returned as the (Linux) errno.
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
        // CAST: -v is a Linux errno in 1..=4095.
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
