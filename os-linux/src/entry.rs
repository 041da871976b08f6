//! The functions `kvmport_main.c` calls. Each converts between C and the core: objects cross
//! as opaque pointers made by `KArc::into_raw`, results as `long` (a value or `-errno`).

use core::ffi::{c_int, c_long, c_uint, c_ulong, c_void};
use core::mem::ManuallyDrop;
use core::sync::atomic::{AtomicPtr, Ordering};

use kvmport_core::os::UserMmListener;
use kvmport_core::{KArc, Outcome, System, VcpuFile, Vm};

use crate::LinuxPlatform;
use crate::os::LinuxOs;

type P = LinuxPlatform;

/// Object kinds returned to C (must match `KP_*` in kvmport_main.c).
const KIND_NEW_VM: c_int = 1;
const KIND_NEW_VCPU: c_int = 2;

/// The module's `System`, as `KArc::into_raw`; set by init, taken by exit.
static SYSTEM: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Creates the `System` (probe and enable the backend on every CPU). 0 or `-errno`.
#[unsafe(no_mangle)]
pub extern "C" fn kvmport_rs_init() -> c_int {
    match System::<P>::new(LinuxOs) {
        Ok(sys) => {
            SYSTEM.store(KArc::into_raw(sys).cast_mut(), Ordering::Release);
            0
        }
        Err(e) => {
            crate::os::log_args(0, format_args!("kvmport: backend unavailable: {e}"));
            -e.raw()
        }
    }
}

/// Drops the module's reference on the `System` (the C side has unregistered the device, and
/// the module cannot be unloaded while any fd is open).
#[unsafe(no_mangle)]
pub extern "C" fn kvmport_rs_exit() {
    let p = SYSTEM.swap(core::ptr::null_mut(), Ordering::AcqRel);
    if !p.is_null() {
        // SAFETY: `p` came from `KArc::into_raw` in init and is taken back once, here.
        drop(unsafe { KArc::<System<P>>::from_raw(p) });
    }
    #[cfg(target_os = "none")]
    let allocs = crate::kernel_rt::live_allocs();
    #[cfg(not(target_os = "none"))]
    let allocs = 0;
    let (pages, held) = crate::os::live_pages();
    // The harness requires all three to be zero after unload.
    crate::os::log_args(
        2,
        format_args!(
            "kvmport: unloaded; outstanding: {allocs} allocations, {pages} pages, {held} held pages"
        ),
    );
}

/// Enables the backend on a CPU coming online (hotplug). Runs on that CPU, preemption off.
#[unsafe(no_mangle)]
pub extern "C" fn kvmport_rs_cpu_online(cpu: c_uint) -> c_int {
    let p = SYSTEM.load(Ordering::Acquire);
    if p.is_null() {
        return 0;
    }
    // SAFETY: the static owns the reference; hotplug callbacks are removed before exit.
    let sys = unsafe { KArc::<System<P>>::borrow_raw(p.cast()) };
    match sys.cpu_online(cpu) {
        Ok(()) => 0,
        Err(e) => -e.raw(),
    }
}

/// Disables the backend on a CPU going offline (hotplug). Runs on that CPU, preemption off.
#[unsafe(no_mangle)]
pub extern "C" fn kvmport_rs_cpu_offline(cpu: c_uint) {
    let p = SYSTEM.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: as in `kvmport_rs_cpu_online`.
        unsafe { KArc::<System<P>>::borrow_raw(p.cast()) }.cpu_offline(cpu);
    }
}

/// Borrows an object behind a pointer from `KArc::into_raw` as a `KArc` without taking over
/// its reference.
///
/// # Safety
/// `p` must come from `KArc::<T>::into_raw` and its reference must stay owned by the caller's
/// caller (the static, or a file's private data) for the duration of the borrow.
unsafe fn borrow_arc<T>(p: *const c_void) -> ManuallyDrop<KArc<T>> {
    // SAFETY: by the caller's contract; ManuallyDrop keeps the count unchanged.
    ManuallyDrop::new(unsafe { KArc::from_raw(p.cast()) })
}

/// Writes an outcome to C: a value, or a new object and its kind.
///
/// # Safety
/// `obj` and `kind` must be valid for writes.
unsafe fn deliver(out: Outcome<P>, obj: *mut *mut c_void, kind: *mut c_int) -> c_long {
    let (ptr, k) = match out {
        Outcome::Value(v) => return v as c_long,
        Outcome::Vm(vm) => (KArc::into_raw(vm), KIND_NEW_VM),
        Outcome::Vcpu(v) => (KArc::into_raw(v), KIND_NEW_VCPU),
    };
    // SAFETY: the caller guarantees both pointers are writable.
    unsafe {
        *obj = ptr.cast_mut().cast();
        *kind = k;
    }
    0
}

/// `/dev/kvm` ioctl.
///
/// # Safety
/// `obj` and `kind` must be valid for writes; called only between init and exit.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvmport_rs_sys_ioctl(
    cmd: c_uint,
    arg: c_ulong,
    obj: *mut *mut c_void,
    kind: *mut c_int,
) -> c_long {
    let p = SYSTEM.load(Ordering::Acquire);
    if p.is_null() {
        return -c_long::from(kvmport_core::Errno::ENODEV.raw());
    }
    // SAFETY: the static owns the reference until exit, which runs after the device is gone.
    let sys = unsafe { borrow_arc::<System<P>>(p.cast()) };
    match System::ioctl(&sys, cmd, arg) {
        // SAFETY: forwarded from our caller.
        Ok(out) => unsafe { deliver(out, obj, kind) },
        Err(e) => e.to_ret() as c_long,
    }
}

/// VM fd ioctl.
///
/// # Safety
/// `vm` must be a VM fd's private data; `obj` and `kind` valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvmport_rs_vm_ioctl(
    vm: *mut c_void,
    cmd: c_uint,
    arg: c_ulong,
    obj: *mut *mut c_void,
    kind: *mut c_int,
) -> c_long {
    // SAFETY: the file owns this reference until release, which cannot run during an ioctl.
    let vm = unsafe { borrow_arc::<Vm<P>>(vm) };
    match Vm::ioctl(&vm, cmd, arg) {
        // SAFETY: forwarded from our caller.
        Ok(out) => unsafe { deliver(out, obj, kind) },
        Err(e) => e.to_ret() as c_long,
    }
}

/// vCPU fd ioctl.
///
/// # Safety
/// `vcpu` must be a vCPU fd's private data.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvmport_rs_vcpu_ioctl(
    vcpu: *mut c_void,
    cmd: c_uint,
    arg: c_ulong,
) -> c_long {
    // SAFETY: the file owns this reference until release, which cannot run during an ioctl.
    let file = unsafe { KArc::<VcpuFile<P>>::borrow_raw(vcpu.cast()) };
    match file.ioctl(cmd, arg) {
        Ok(v) => v as c_long,
        Err(e) => e.to_ret() as c_long,
    }
}

/// The release of a VM fd (or of a VM whose fd could not be made).
///
/// # Safety
/// `vm` must be a VM reference from `kvmport_rs_sys_ioctl`, released once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvmport_rs_vm_release(vm: *mut c_void) {
    // SAFETY: by the caller's contract, this takes the reference back once.
    drop(unsafe { KArc::<Vm<P>>::from_raw(vm.cast()) });
}

/// The release of a vCPU fd (or of a vCPU whose fd could not be made).
///
/// # Safety
/// `vcpu` must be a vCPU reference from `kvmport_rs_vm_ioctl`, released once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvmport_rs_vcpu_release(vcpu: *mut c_void) {
    // SAFETY: by the caller's contract, this takes the reference back once.
    drop(unsafe { KArc::<VcpuFile<P>>::from_raw(vcpu.cast()) });
}

/// The ABI id of a vCPU (for its fd's name).
///
/// # Safety
/// `vcpu` must be a live vCPU reference.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvmport_rs_vcpu_id(vcpu: *mut c_void) -> c_uint {
    // SAFETY: by the caller's contract.
    unsafe { KArc::<VcpuFile<P>>::borrow_raw(vcpu.cast()) }
        .vcpu()
        .id()
}

/// The kernel address of the page at `pgoff` of the vCPU mapping, or NULL past its end.
///
/// # Safety
/// `vcpu` must be a live vCPU fd's private data.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvmport_rs_vcpu_page(vcpu: *mut c_void, pgoff: c_ulong) -> *mut c_void {
    // SAFETY: the mapping's file holds the reference while its fault handler runs.
    let file = unsafe { KArc::<VcpuFile<P>>::borrow_raw(vcpu.cast()) };
    file.vcpu()
        .mmap_page(pgoff)
        .map_or(core::ptr::null_mut(), |p| p.va())
}

/// An MMU-notifier call of a VM's notifier (`invalidate_range_start`, or `release` for the
/// whole address space): 0, or `-EAGAIN` when `blockable` is 0 and the VM would have to
/// sleep. A blockable call never fails (the kernel warns if it does).
///
/// # Safety
/// `listener` must be the notifier's `listener` field, written by `LinuxOs::user_mm_watch`
/// with a listener the core keeps alive until the notifier is unregistered.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvmport_rs_mm_invalidate(
    listener: *mut c_void,
    start: c_ulong,
    end: c_ulong,
    blockable: c_int,
) -> c_int {
    // SAFETY: by the caller's contract the field holds a live listener pointer.
    let l = unsafe { &*listener.cast::<*const dyn UserMmListener>().read() };
    match l.user_range_invalidate(start, end, blockable != 0) {
        Ok(()) => 0,
        Err(_) if blockable != 0 => 0,
        Err(_) => -kvmport_core::Errno::EAGAIN.raw(),
    }
}

/// The `invalidate_range_end` of a VM's notifier pair (and the end of `release`).
///
/// # Safety
/// As for [`kvmport_rs_mm_invalidate`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvmport_rs_mm_invalidate_end(
    listener: *mut c_void,
    start: c_ulong,
    end: c_ulong,
) {
    // SAFETY: by the caller's contract the field holds a live listener pointer.
    let l = unsafe { &*listener.cast::<*const dyn UserMmListener>().read() };
    l.user_range_invalidate_end(start, end);
}
