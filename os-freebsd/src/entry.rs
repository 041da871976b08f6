//! The kernel's entry points into `kvmport.ko`: the module metadata and event handler, the
//! `/dev/kvm` cdevsw, the `fileops` of VM and vCPU files, and the Linux-emulation ioctl hook.
//!
//! Every command arrives inside the wrapper ioctl [`KVMPORT_IOCTL`] (`{linux_cmd, arg, ret}`),
//! because FreeBSD's `sys_ioctl` reinterprets Linux-encoded command numbers; the wrapper is
//! dispatched through the core exactly as Linux dispatches the bare command, and `ret` carries
//! the Linux result (a value, a new fd, or `-errno` with a Linux error number).

use core::ffi::{c_int, c_ulong, c_void};
use core::mem::ManuallyDrop;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use kvmport_core::{Errno, KArc, Outcome, System, VcpuFile, Vm};

use crate::FreeBsdPlatform;
use crate::kpi;
use crate::os::{FreeBsdOs, curproc, fdrop, log_args};

type P = FreeBsdPlatform;

/// The wrapper command's argument (`struct kvmport_ioctl` in `include/kvmport_freebsd.h`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KvmportIoctl {
    /// The Linux command number.
    pub linux_cmd: u32,
    /// Zero.
    pub pad: u32,
    /// The Linux argument.
    pub arg: u64,
    /// The Linux result: `>= 0`, or `-errno` (Linux numbering).
    pub ret: i64,
}

const _: () = assert!(size_of::<KvmportIoctl>() == 24);

/// `_IOWR('k', 1, struct kvmport_ioctl)`: `IOC_INOUT | 24 << 16 | 'k' << 8 | 1`.
pub const KVMPORT_IOCTL: u32 = 0xc000_0000 | (24 << 16) | ((b'k' as u32) << 8) | 1;
const _: () = assert!(KVMPORT_IOCTL == 0xc018_6b01);

/// The module's `System` (`KArc::into_raw`), set by MOD_LOAD, taken by MOD_UNLOAD.
static SYSTEM: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
/// The `/dev/kvm` cdev.
static CDEV: AtomicPtr<kpi::cdev> = AtomicPtr::new(core::ptr::null_mut());
/// Opens of `/dev/kvm` plus VM and vCPU files alive: unload is refused while non-zero.
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// A `static` the kernel may write (sysinit links, cdevsw flags, malloc statistics).
#[repr(transparent)]
pub struct KernelCell<T>(pub core::cell::UnsafeCell<T>);
// SAFETY: only the kernel writes these, under its own locks, before or outside our use.
unsafe impl<T> Sync for KernelCell<T> {}
impl<T> KernelCell<T> {
    /// The raw pointer the kernel is given.
    pub const fn get(&self) -> *mut T {
        self.0.get()
    }
}

/// A pointer in a linker set or a metadata record.
#[repr(transparent)]
pub struct SetPtr<T>(pub *const T);
// SAFETY: the pointees are immutable statics or kernel-owned cells.
unsafe impl<T> Sync for SetPtr<T> {}

/// A read-only record holding pointers.
#[repr(transparent)]
pub struct Rec<T>(pub T);
// SAFETY: never written after link time.
unsafe impl<T> Sync for Rec<T> {}

// ---------------------------------------------------------------- module metadata

static KERNEL_DEPEND: kpi::mod_depend = kpi::mod_depend {
    md_ver_minimum: kpi::FREEBSD_VERSION_MIN,
    md_ver_preferred: kpi::FREEBSD_VERSION_MIN,
    md_ver_maximum: kpi::FREEBSD_VERSION_MAX,
};
static MODULE_VERSION: kpi::mod_version = kpi::mod_version { mv_version: 1 };

static MODULE_DATA: Rec<kpi::moduledata> = Rec(kpi::moduledata {
    name: c"kvmport".as_ptr(),
    evhand: Some(kvmport_modevent),
    priv_: core::ptr::null_mut(),
});

static MD_DEPEND: Rec<kpi::mod_metadata> = Rec(kpi::mod_metadata {
    md_version: kpi::MDT_STRUCT_VERSION,
    md_type: kpi::MDT_DEPEND,
    md_data: (&raw const KERNEL_DEPEND).cast(),
    md_cval: c"kernel".as_ptr(),
});
static MD_MODULE: Rec<kpi::mod_metadata> = Rec(kpi::mod_metadata {
    md_version: kpi::MDT_STRUCT_VERSION,
    md_type: kpi::MDT_MODULE,
    md_data: (&raw const MODULE_DATA).cast(),
    md_cval: c"kvmport".as_ptr(),
});
static MD_VERSION: Rec<kpi::mod_metadata> = Rec(kpi::mod_metadata {
    md_version: kpi::MDT_STRUCT_VERSION,
    md_type: kpi::MDT_VERSION,
    md_data: (&raw const MODULE_VERSION).cast(),
    md_cval: c"kvmport".as_ptr(),
});

// The linker-set entries exist only in the kernel build: in a host build (clippy, `cargo test
// --all-targets`) `#[used]` would keep every kernel import alive and the link would fail.
#[cfg_attr(target_os = "none", used, unsafe(link_section = "set_modmetadata_set"))]
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
static SET_MD_DEPEND: SetPtr<Rec<kpi::mod_metadata>> = SetPtr(&raw const MD_DEPEND);
#[cfg_attr(target_os = "none", used, unsafe(link_section = "set_modmetadata_set"))]
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
static SET_MD_MODULE: SetPtr<Rec<kpi::mod_metadata>> = SetPtr(&raw const MD_MODULE);
#[cfg_attr(target_os = "none", used, unsafe(link_section = "set_modmetadata_set"))]
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
static SET_MD_VERSION: SetPtr<Rec<kpi::mod_metadata>> = SetPtr(&raw const MD_VERSION);

/// `MALLOC_DEFINE(M_KVMPORT, "kvmport", ...)`: the type every allocation of the module uses.
pub static M_KVMPORT: KernelCell<kpi::malloc_type> =
    KernelCell(core::cell::UnsafeCell::new(kpi::malloc_type {
        ks_next: core::ptr::null_mut(),
        ks_version: kpi::M_VERSION,
        ks_shortdesc: c"kvmport".as_ptr(),
        ks_mti: [0; 11],
    }));

unsafe extern "C" fn sysinit_malloc(data: *const c_void) {
    // SAFETY: `data` is M_KVMPORT (our sysinit record).
    unsafe { kpi::malloc_init(data) }
}
unsafe extern "C" fn sysuninit_malloc(data: *const c_void) {
    // SAFETY: as above; runs after MOD_UNLOAD freed everything.
    unsafe { kpi::malloc_uninit(data) }
}
unsafe extern "C" fn sysinit_module(data: *const c_void) {
    // SAFETY: `data` is MODULE_DATA; this is DECLARE_MODULE's registration.
    unsafe { kpi::module_register_init(data) }
}

static SI_MALLOC: KernelCell<kpi::sysinit> =
    KernelCell(core::cell::UnsafeCell::new(kpi::sysinit {
        subsystem: kpi::SI_SUB_KMEM,
        order: kpi::SI_ORDER_THIRD,
        next: core::ptr::null_mut(),
        func: sysinit_malloc,
        udata: M_KVMPORT.get().cast_const().cast(),
    }));
static SU_MALLOC: KernelCell<kpi::sysinit> =
    KernelCell(core::cell::UnsafeCell::new(kpi::sysinit {
        subsystem: kpi::SI_SUB_KMEM,
        order: kpi::SI_ORDER_ANY,
        next: core::ptr::null_mut(),
        func: sysuninit_malloc,
        udata: M_KVMPORT.get().cast_const().cast(),
    }));
static SI_MODULE: KernelCell<kpi::sysinit> =
    KernelCell(core::cell::UnsafeCell::new(kpi::sysinit {
        subsystem: kpi::SI_SUB_DRIVERS,
        order: kpi::SI_ORDER_MIDDLE,
        next: core::ptr::null_mut(),
        func: sysinit_module,
        udata: (&raw const MODULE_DATA).cast(),
    }));

#[cfg_attr(target_os = "none", used, unsafe(link_section = "set_sysinit_set"))]
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
static SET_SI_MALLOC: SetPtr<kpi::sysinit> = SetPtr(SI_MALLOC.get().cast_const());
#[cfg_attr(target_os = "none", used, unsafe(link_section = "set_sysinit_set"))]
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
static SET_SI_MODULE: SetPtr<kpi::sysinit> = SetPtr(SI_MODULE.get().cast_const());
#[cfg_attr(target_os = "none", used, unsafe(link_section = "set_sysuninit_set"))]
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
static SET_SU_MALLOC: SetPtr<kpi::sysinit> = SetPtr(SU_MALLOC.get().cast_const());

// ---------------------------------------------------------------- errno translation

/// A Linux errno the core returned, as FreeBSD numbers it (for MOD_LOAD and ioctl(2) itself).
fn to_freebsd(e: Errno) -> c_int {
    match e.raw() {
        11 => 35, // EAGAIN
        95 => 45, // EOPNOTSUPP
        38 => 78, // ENOSYS
        n if n <= 34 => n,
        _ => kpi::EINVAL,
    }
}

// ---------------------------------------------------------------- module events

/// The `/dev/kvm` switch table (the kernel writes `d_flags` and its private fields).
static KVM_CDEVSW: KernelCell<kpi::cdevsw> = KernelCell(core::cell::UnsafeCell::new(kpi::cdevsw {
    d_version: kpi::D_VERSION,
    d_flags: 0,
    d_name: c"kvm".as_ptr(),
    d_open: Some(kvm_open),
    d_fdopen: core::ptr::null(),
    d_close: Some(kvm_close),
    d_read: core::ptr::null(),
    d_write: core::ptr::null(),
    d_ioctl: Some(kvm_ioctl),
    d_poll: core::ptr::null(),
    d_mmap: core::ptr::null(),
    d_strategy: core::ptr::null(),
    d_dump: core::ptr::null(),
    d_kqfilter: core::ptr::null(),
    d_purge: core::ptr::null(),
    d_mmap_single: core::ptr::null(),
    d_spare0: [0; 3],
    d_spare1: [core::ptr::null_mut(); 3],
    d_devs: core::ptr::null_mut(),
    d_spare2: 0,
    d_gianttrick: core::ptr::null_mut(),
}));

/// The module event handler (`moduledata.evhand`).
///
/// # Safety
/// Called by the kernel's module code with a module event.
pub unsafe extern "C" fn kvmport_modevent(
    _m: *mut c_void,
    what: c_int,
    _arg: *mut c_void,
) -> c_int {
    match what {
        kpi::MOD_LOAD => load(),
        kpi::MOD_UNLOAD => unload(),
        kpi::MOD_QUIESCE => {
            if busy() {
                kpi::EBUSY
            } else {
                0
            }
        }
        kpi::MOD_SHUTDOWN => 0,
        _ => 45, // EOPNOTSUPP
    }
}

/// Whether a file or a user mapping still uses the module (after releasing the mappings that
/// are gone).
fn busy() -> bool {
    let mapped = maps::reap();
    OPEN.load(Ordering::Acquire) != 0 || mapped != 0
}

fn load() -> c_int {
    if let Err(e) = maps::init() {
        return to_freebsd(e);
    }
    let sys = match System::<P>::new(FreeBsdOs) {
        Ok(s) => s,
        Err(e) => {
            log_args(format_args!("kvmport: backend unavailable: {e}"));
            maps::fini();
            return to_freebsd(e);
        }
    };
    SYSTEM.store(KArc::into_raw(sys).cast_mut(), Ordering::Release);
    // SAFETY: a zeroed make_dev_args is initialised by make_dev_args_init_impl; the cdevsw
    // is a static that outlives the device; the name is a plain "%s" argument.
    let r = unsafe {
        let mut args: kpi::make_dev_args = core::mem::zeroed();
        kpi::make_dev_args_init_impl(&mut args, size_of::<kpi::make_dev_args>());
        args.mda_flags = kpi::MAKEDEV_WAITOK | kpi::MAKEDEV_CHECKNAME;
        args.mda_devsw = KVM_CDEVSW.get();
        args.mda_uid = kpi::UID_ROOT;
        args.mda_gid = kpi::GID_WHEEL;
        args.mda_mode = 0o600;
        let mut dev: *mut kpi::cdev = core::ptr::null_mut();
        let r = kpi::make_dev_s(&mut args, &mut dev, c"%s".as_ptr(), c"kvm".as_ptr());
        if r == 0 {
            CDEV.store(dev, Ordering::Release);
        }
        r
    };
    if r != 0 {
        drop_system();
        maps::fini();
        return r;
    }
    log_args(format_args!("kvmport: /dev/kvm ready"));
    0
}

fn drop_system() {
    let p = SYSTEM.swap(core::ptr::null_mut(), Ordering::AcqRel);
    if !p.is_null() {
        // SAFETY: from KArc::into_raw in `load`, taken back once.
        drop(unsafe { KArc::<System<P>>::from_raw(p) });
    }
}

fn unload() -> c_int {
    if busy() {
        return kpi::EBUSY;
    }
    crate::linux::unregister();
    let dev = CDEV.swap(core::ptr::null_mut(), Ordering::AcqRel);
    if !dev.is_null() {
        // SAFETY: our device; destroy_dev waits for threads inside its methods.
        unsafe { kpi::destroy_dev(dev) };
    }
    drop_system();
    maps::fini();
    let (pages, held) = crate::os::live_pages();
    #[cfg(target_os = "none")]
    let allocs = crate::rt::live_allocs();
    #[cfg(not(target_os = "none"))]
    let allocs = 0;
    log_args(format_args!(
        "kvmport: unloaded; outstanding: {allocs} allocations, {pages} pages, {held} held pages"
    ));
    0
}

// ---------------------------------------------------------------- /dev/kvm

/// Per-open state of `/dev/kvm` (devfs cdevpriv): the opening process.
struct OpenState {
    _proc: *mut c_void,
}

unsafe extern "C" fn open_state_dtor(p: *mut c_void) {
    // SAFETY: `p` is the box `kvm_open` gave to devfs_set_cdevpriv; devfs calls this once.
    drop(unsafe { alloc::boxed::Box::from_raw(p.cast::<OpenState>()) });
    OPEN.fetch_sub(1, Ordering::AcqRel);
}

unsafe extern "C" fn kvm_open(
    _dev: *mut kpi::cdev,
    _oflags: c_int,
    _devtype: c_int,
    _td: *mut kpi::thread,
) -> c_int {
    crate::linux::try_register();
    maps::reap();
    // SAFETY: a non-zero-sized layout.
    let p = unsafe { alloc::alloc::alloc(core::alloc::Layout::new::<OpenState>()) };
    if p.is_null() {
        return kpi::ENOMEM;
    }
    // SAFETY: `p` is fresh memory for one OpenState.
    unsafe { p.cast::<OpenState>().write(OpenState { _proc: curproc() }) };
    OPEN.fetch_add(1, Ordering::AcqRel);
    // SAFETY: inside d_open the current file is set; devfs owns `p` from now on and calls the
    // destructor when the file's last reference goes.
    let r = unsafe { kpi::devfs_set_cdevpriv(p.cast(), open_state_dtor) };
    if r != 0 {
        // SAFETY: devfs did not take `p`.
        unsafe { open_state_dtor(p.cast()) };
    }
    r
}

unsafe extern "C" fn kvm_close(
    _dev: *mut kpi::cdev,
    _fflag: c_int,
    _devtype: c_int,
    _td: *mut kpi::thread,
) -> c_int {
    0
}

/// Reads the wrapper command from the kernel's copy of the ioctl argument.
///
/// # Safety
/// `data` is the kernel buffer `sys_ioctl` made for a command of 24 bytes (`IOC_INOUT`).
unsafe fn wrapper(cmd: c_ulong, data: *mut c_void) -> Option<*mut KvmportIoctl> {
    // CAST: sys_ioctl passes a 32-bit command.
    if cmd as u32 != KVMPORT_IOCTL || data.is_null() {
        return None;
    }
    Some(data.cast())
}

unsafe extern "C" fn kvm_ioctl(
    _dev: *mut kpi::cdev,
    cmd: c_ulong,
    data: *mut c_void,
    _fflag: c_int,
    td: *mut kpi::thread,
) -> c_int {
    let mut priv_: *mut c_void = core::ptr::null_mut();
    // SAFETY: inside d_ioctl the current file is set; `priv_` is a local.
    if unsafe { kpi::devfs_get_cdevpriv(&mut priv_) } != 0 {
        return kpi::EBADF;
    }
    // SAFETY: `data` comes from sys_ioctl for this command.
    let Some(req) = (unsafe { wrapper(cmd, data) }) else {
        return kpi::ENOTTY;
    };
    // SAFETY: `req` is the kernel's 8-aligned 24-byte buffer.
    let mut r = unsafe { req.read() };
    if r.pad != 0 {
        return kpi::EINVAL;
    }
    let p = SYSTEM.load(Ordering::Acquire);
    r.ret = if p.is_null() {
        -i64::from(Errno::ENODEV.raw())
    } else {
        // SAFETY: the static owns the reference until unload, refused while files are open.
        let sys = ManuallyDrop::new(unsafe { KArc::<System<P>>::from_raw(p) });
        deliver(System::ioctl(&sys, r.linux_cmd, r.arg), td)
    };
    // SAFETY: as above.
    unsafe { req.write(r) };
    0
}

/// Turns a dispatch result into the Linux return value, making an fd for a new object.
fn deliver(out: Result<Outcome<P>, Errno>, td: *mut kpi::thread) -> i64 {
    let made = match out {
        Ok(Outcome::Value(v)) => return v,
        Ok(Outcome::Vm(vm)) => make_file(td, KArc::into_raw(vm), &VM_FILEOPS, release_vm),
        Ok(Outcome::Vcpu(v)) => make_file(td, KArc::into_raw(v), &VCPU_FILEOPS, release_vcpu),
        Err(e) => Err(e),
    };
    match made {
        Ok(fd) => i64::from(fd),
        Err(e) => -i64::from(e.raw()),
    }
}

unsafe fn release_vm(p: *const ()) {
    // SAFETY: a VM reference from KArc::into_raw, released once (caller).
    drop(unsafe { KArc::<Vm<P>>::from_raw(p) });
}

unsafe fn release_vcpu(p: *const ()) {
    // SAFETY: a vCPU reference from KArc::into_raw, released once (caller).
    drop(unsafe { KArc::<VcpuFile<P>>::from_raw(p) });
}

/// Makes a new fd whose file holds `obj` (released by `fo_close`).
fn make_file(
    td: *mut kpi::thread,
    obj: *const (),
    ops: &'static Rec<kpi::fileops>,
    release: unsafe fn(*const ()),
) -> Result<c_int, Errno> {
    let mut fp: *mut kpi::file = core::ptr::null_mut();
    // SAFETY: allocates a file for the current thread into a local.
    let r = unsafe { kpi::falloc_noinstall(td, &mut fp) };
    if r != 0 || fp.is_null() {
        // SAFETY: the object was never attached to a file.
        unsafe { release(obj) };
        return Err(Errno::from_raw(r).unwrap_or(Errno::ENOMEM));
    }
    OPEN.fetch_add(1, Ordering::AcqRel);
    let mut fd: c_int = -1;
    // SAFETY: `fp` is our new file; finit attaches the object and our fileops (from now on
    // `fo_close` releases it); finstall adds a table reference; fdrop gives up ours.
    unsafe {
        kpi::finit(
            fp,
            kpi::FREAD | kpi::FWRITE,
            kpi::DTYPE_DEV,
            obj.cast_mut().cast(),
            &ops.0,
        );
        let r = kpi::finstall(td, fp, &mut fd, kpi::O_CLOEXEC, core::ptr::null_mut());
        fdrop(fp, td);
        if r != 0 {
            return Err(Errno::from_raw(r).unwrap_or(Errno::ENOMEM));
        }
    }
    Ok(fd)
}

// ---------------------------------------------------------------- VM and vCPU files

/// The object of a VM or vCPU file.
///
/// # Safety
/// `fp` is a live file with our fileops.
unsafe fn file_data(fp: *mut kpi::file) -> *const () {
    // SAFETY: `f_data` of a live file (caller).
    unsafe { (*fp).f_data.cast_const().cast() }
}

unsafe extern "C" fn vm_ioctl(
    fp: *mut kpi::file,
    cmd: c_ulong,
    data: *mut c_void,
    _cred: *mut kpi::ucred,
    td: *mut kpi::thread,
) -> c_int {
    if cmd == kpi::FIONBIO || cmd == kpi::FIOASYNC {
        return 0;
    }
    // SAFETY: from sys_ioctl for this command.
    let Some(req) = (unsafe { wrapper(cmd, data) }) else {
        return kpi::ENOTTY;
    };
    // SAFETY: the kernel's buffer for this command.
    let mut r = unsafe { req.read() };
    if r.pad != 0 {
        return kpi::EINVAL;
    }
    // SAFETY: the file holds this VM reference until fo_close, which cannot run during ioctl.
    let vm = ManuallyDrop::new(unsafe { KArc::<Vm<P>>::from_raw(file_data(fp)) });
    r.ret = deliver(Vm::ioctl(&vm, r.linux_cmd, r.arg), td);
    // SAFETY: as above.
    unsafe { req.write(r) };
    0
}

unsafe extern "C" fn vcpu_ioctl(
    fp: *mut kpi::file,
    cmd: c_ulong,
    data: *mut c_void,
    _cred: *mut kpi::ucred,
    _td: *mut kpi::thread,
) -> c_int {
    if cmd == kpi::FIONBIO || cmd == kpi::FIOASYNC {
        return 0;
    }
    // SAFETY: from sys_ioctl for this command.
    let Some(req) = (unsafe { wrapper(cmd, data) }) else {
        return kpi::ENOTTY;
    };
    // SAFETY: the kernel's buffer for this command.
    let mut r = unsafe { req.read() };
    if r.pad != 0 {
        return kpi::EINVAL;
    }
    // SAFETY: the file holds this reference until fo_close.
    let file = unsafe { KArc::<VcpuFile<P>>::borrow_raw(file_data(fp)) };
    r.ret = match file.ioctl(r.linux_cmd, r.arg) {
        Ok(v) => v,
        Err(e) => -i64::from(e.raw()),
    };
    // SAFETY: as above.
    unsafe { req.write(r) };
    0
}

unsafe extern "C" fn vm_close(fp: *mut kpi::file, _td: *mut kpi::thread) -> c_int {
    // SAFETY: the last reference of the file: its VM reference is released once.
    unsafe { release_vm(file_data(fp)) };
    OPEN.fetch_sub(1, Ordering::AcqRel);
    0
}

unsafe extern "C" fn vcpu_close(fp: *mut kpi::file, _td: *mut kpi::thread) -> c_int {
    // SAFETY: as in `vm_close`.
    unsafe { release_vcpu(file_data(fp)) };
    OPEN.fetch_sub(1, Ordering::AcqRel);
    maps::reap();
    0
}

/// `mmap(vcpu_fd)`: maps the vCPU's pages (`kvm_run`, PIO data, coalesced MMIO) through an
/// OBJT_SG object over their physical addresses. The object is exactly as large as those
/// pages; a mapping may extend beyond it, where an access faults with SIGBUS (`vm_fault`:
/// a page index beyond the object's size is out of bounds), as on Linux. The SG pager has no
/// destructor to tell us when the mapping is gone, so the vCPU's pages are kept alive by
/// [`maps`]: a reference on the vCPU file and on the SG list, released once the list's
/// reference count shows that the VM object (and so every mapping) is gone.
#[allow(clippy::too_many_arguments, reason = "the fo_mmap_t signature")]
unsafe extern "C" fn vcpu_mmap(
    fp: *mut kpi::file,
    map: *mut kpi::vm_map,
    addr: *mut usize,
    size: usize,
    prot: u8,
    cap_maxprot: u8,
    flags: c_int,
    foff: i64,
    td: *mut kpi::thread,
) -> c_int {
    use kvmport_core::os::Page;
    const PAGE: usize = kvmport_core::os::PAGE_SIZE;
    // SAFETY: the file holds this reference until fo_close; the mmap syscall holds the file.
    let file = unsafe { KArc::<VcpuFile<P>>::borrow_raw(file_data(fp)) };
    maps::reap();
    let ok = usize::try_from(foff)
        .ok()
        .and_then(|off| off.checked_add(size))
        .is_some_and(|_| size != 0 && foff as usize % PAGE == 0);
    if !ok {
        return kpi::EINVAL;
    }
    let pages = (0u64..)
        .take_while(|&pg| file.vcpu().mmap_page(pg).is_some())
        .count();
    let Ok(nseg) = c_int::try_from(pages) else {
        return kpi::EINVAL;
    };
    // SAFETY: a new sglist with room for `pages` segments, or NULL.
    let sg = unsafe { kpi::sglist_alloc(nseg, kpi::M_NOWAIT) };
    if sg.is_null() {
        return kpi::ENOMEM;
    }
    for pg in 0..pages {
        let pa = file.vcpu().mmap_page(pg as u64).map_or(0, |p| p.pa());
        // SAFETY: appends one page-sized physical segment to our sglist.
        if pa == 0 || unsafe { kpi::sglist_append_phys(sg, pa, PAGE) } != 0 {
            // SAFETY: ours, not yet given away.
            unsafe { kpi::sglist_free(sg) };
            return kpi::ENOMEM;
        }
    }
    // A reference on the vCPU file for the keep-alive record, and room for the record.
    // SAFETY: the file's reference stays owned by the file; the clone is a new one.
    let keep =
        ManuallyDrop::new(unsafe { KArc::<VcpuFile<P>>::from_raw(file_data(fp)) }).try_clone();
    let Ok(keep) = keep else {
        // SAFETY: ours, not yet given away.
        unsafe { kpi::sglist_free(sg) };
        return kpi::ENOMEM;
    };
    let Some(slot) = maps::reserve() else {
        // SAFETY: as above.
        unsafe { kpi::sglist_free(sg) };
        drop(keep);
        return kpi::ENOMEM;
    };
    // SAFETY: the SG pager takes its own reference on `sg`; ours stays for the record.
    let obj = unsafe {
        kpi::vm_pager_allocate(
            kpi::OBJT_SG,
            sg.cast(),
            // CAST: a handful of pages.
            (pages * PAGE) as i64,
            prot,
            0,
            core::ptr::null_mut(),
        )
    };
    if obj.is_null() {
        // SAFETY: as above.
        unsafe { kpi::sglist_free(sg) };
        drop(keep);
        return kpi::EINVAL;
    }
    // SAFETY: maps our referenced object into the caller's map; on failure the reference
    // is ours to drop.
    let r =
        unsafe { kpi::vm_mmap_object(map, addr, size, prot, cap_maxprot, flags, obj, foff, 0, td) };
    if r != 0 {
        // SAFETY: as above; then our list reference.
        unsafe {
            kpi::vm_object_deallocate(obj);
            kpi::sglist_free(sg);
        }
        drop(keep);
        return r;
    }
    slot.fill(sg, KArc::into_raw(keep));
    0
}

/// Keep-alive records of vCPU mappings: (our reference on the mapping's SG list, a vCPU file
/// reference). `struct sglist` is public (`sys/sglist.h`): `sg_refs` counts our reference and
/// the SG pager object's; at 1 the object, and so every mapping, is gone.
mod maps {
    use super::*;
    use crate::os::{KLock, SxKind};
    use kvmport_core::os::Lock;

    /// One record.
    struct Mapped {
        sg: *mut kpi::sglist,
        file: *const (),
    }

    // SAFETY: the pointers are kernel objects usable from any thread.
    unsafe impl Send for Mapped {}

    /// The records and the number of reserved, not yet filled, places.
    struct Records {
        list: alloc::vec::Vec<Mapped>,
        reserved: usize,
    }

    type List = KLock<Records, SxKind>;

    /// The list (allocated at load, freed at unload).
    static LIST: AtomicPtr<List> = AtomicPtr::new(core::ptr::null_mut());

    /// Creates the list. Module load.
    pub fn init() -> Result<(), Errno> {
        let list = List::new(Records {
            list: alloc::vec::Vec::new(),
            reserved: 0,
        })?;
        let layout = core::alloc::Layout::new::<List>();
        // SAFETY: a non-zero-sized layout.
        let p = unsafe { alloc::alloc::alloc(layout) }.cast::<List>();
        if p.is_null() {
            return Err(Errno::ENOMEM);
        }
        // SAFETY: fresh memory for one List.
        unsafe { p.write(list) };
        LIST.store(p, Ordering::Release);
        Ok(())
    }

    /// Frees the list (unload, after `reap` found it empty).
    pub fn fini() {
        let p = LIST.swap(core::ptr::null_mut(), Ordering::AcqRel);
        if !p.is_null() {
            // SAFETY: from `init`; nothing else uses it after unload started.
            unsafe {
                p.drop_in_place();
                alloc::alloc::dealloc(p.cast(), core::alloc::Layout::new::<List>());
            }
        }
    }

    fn refs(sg: *mut kpi::sglist) -> u32 {
        // SAFETY: `sg_refs` of a live list we hold a reference on; updated atomically.
        unsafe {
            (*sg.cast::<u8>()
                .add(kpi::SGLIST_REFS_OFFSET)
                .cast::<core::sync::atomic::AtomicU32>())
            .load(Ordering::Acquire)
        }
    }

    fn list() -> Option<&'static List> {
        let p = LIST.load(Ordering::Acquire);
        // SAFETY: the list lives from load to unload, and no file operation runs after
        // unload started (it is refused while any is possible).
        (!p.is_null()).then(|| unsafe { &*p })
    }

    /// Releases the records whose mappings are gone; returns how many mappings (and
    /// reservations) remain.
    pub fn reap() -> usize {
        let Some(list) = list() else { return 0 };
        let mut g = list.lock();
        g.list.retain(|m| {
            if refs(m.sg) > 1 {
                return true;
            }
            // SAFETY: our references, released once.
            unsafe {
                kpi::sglist_free(m.sg);
                release_vcpu(m.file);
            }
            false
        });
        if g.list.is_empty() && g.reserved == 0 {
            // Frees the record storage (no allocation for an empty vector).
            g.list.shrink_to_fit();
        }
        g.list.len() + g.reserved
    }

    /// A place for one record, reserved before the mapping is made so that recording it
    /// cannot fail afterwards. Dropping it unfilled gives the place back.
    pub struct Slot(&'static List);

    /// Reserves a place, or `None` on allocation failure.
    pub fn reserve() -> Option<Slot> {
        let list = list()?;
        let mut g = list.lock();
        let want = g.reserved.checked_add(1)?;
        g.list.try_reserve(want).ok()?;
        g.reserved = want;
        Some(Slot(list))
    }

    impl Slot {
        /// Records a mapping's references in the reserved place.
        pub fn fill(self, sg: *mut kpi::sglist, file: *const ()) {
            let list = self.0;
            core::mem::forget(self);
            let mut g = list.lock();
            g.reserved = g.reserved.saturating_sub(1);
            // INVARIANT: capacity >= len + reserved places, so this push does not allocate.
            g.list.push(Mapped { sg, file });
        }
    }

    impl Drop for Slot {
        fn drop(&mut self) {
            let mut g = self.0.lock();
            g.reserved = g.reserved.saturating_sub(1);
        }
    }
}

unsafe extern "C" fn no_mmap(
    _fp: *mut kpi::file,
    _map: *mut kpi::vm_map,
    _addr: *mut usize,
    _size: usize,
    _prot: u8,
    _maxprot: u8,
    _flags: c_int,
    _foff: i64,
    _td: *mut kpi::thread,
) -> c_int {
    kpi::ENODEV
}

unsafe extern "C" fn inval_rdwr(
    _fp: *mut kpi::file,
    _uio: *mut kpi::opaque,
    _cred: *mut kpi::ucred,
    _flags: c_int,
    _td: *mut kpi::thread,
) -> c_int {
    kpi::EINVAL
}

unsafe extern "C" fn inval_truncate(
    _fp: *mut kpi::file,
    _len: i64,
    _cred: *mut kpi::ucred,
    _td: *mut kpi::thread,
) -> c_int {
    kpi::EINVAL
}

unsafe extern "C" fn poll(
    _fp: *mut kpi::file,
    events: c_int,
    _cred: *mut kpi::ucred,
    _td: *mut kpi::thread,
) -> c_int {
    // Linux KVM files have no poll method: the VFS reports them readable and writable.
    events & (kpi::POLLIN | kpi::POLLOUT | kpi::POLLRDNORM | kpi::POLLWRNORM)
}

unsafe extern "C" fn inval_kqfilter(_fp: *mut kpi::file, _kn: *mut kpi::opaque) -> c_int {
    kpi::EINVAL
}

unsafe extern "C" fn stat(
    _fp: *mut kpi::file,
    sb: *mut kpi::stat,
    _cred: *mut kpi::ucred,
    _td: *mut kpi::thread,
) -> c_int {
    // SAFETY: `sb` is the kernel's `struct stat` buffer of STAT_SIZE bytes.
    unsafe {
        core::ptr::write_bytes(sb.cast::<u8>(), 0, kpi::STAT_SIZE);
        sb.cast::<u8>()
            .add(kpi::STAT_MODE_OFFSET)
            .cast::<u16>()
            .write_unaligned(0o600);
    }
    0
}

unsafe extern "C" fn inval_chmod(
    _fp: *mut kpi::file,
    _mode: u16,
    _cred: *mut kpi::ucred,
    _td: *mut kpi::thread,
) -> c_int {
    kpi::EINVAL
}

unsafe extern "C" fn inval_chown(
    _fp: *mut kpi::file,
    _uid: u32,
    _gid: u32,
    _cred: *mut kpi::ucred,
    _td: *mut kpi::thread,
) -> c_int {
    kpi::EINVAL
}

#[allow(clippy::too_many_arguments, reason = "the fo_sendfile_t signature")]
unsafe extern "C" fn inval_sendfile(
    _fp: *mut kpi::file,
    _sockfd: c_int,
    _hdr: *mut kpi::opaque,
    _trl: *mut kpi::opaque,
    _off: i64,
    _n: usize,
    _sent: *mut i64,
    _flags: c_int,
    _td: *mut kpi::thread,
) -> c_int {
    kpi::EINVAL
}

unsafe extern "C" fn no_seek(
    _fp: *mut kpi::file,
    _off: i64,
    _whence: c_int,
    _td: *mut kpi::thread,
) -> c_int {
    kpi::ESPIPE
}

unsafe extern "C" fn fill_kinfo(
    _fp: *mut kpi::file,
    _kif: *mut kpi::opaque,
    _fdp: *mut kpi::opaque,
) -> c_int {
    0
}

unsafe extern "C" fn inval_aio(_fp: *mut kpi::file, _job: *mut kpi::opaque) -> c_int {
    kpi::EINVAL
}

const fn fileops(
    ioctl: kpi::fo_ioctl_t,
    close: kpi::fo_close_t,
    mmap: kpi::fo_mmap_t,
) -> kpi::fileops {
    kpi::fileops {
        fo_read: Some(inval_rdwr),
        fo_write: Some(inval_rdwr),
        fo_truncate: Some(inval_truncate),
        fo_ioctl: Some(ioctl),
        fo_poll: Some(poll),
        fo_kqfilter: Some(inval_kqfilter),
        fo_stat: Some(stat),
        fo_close: Some(close),
        fo_chmod: Some(inval_chmod),
        fo_chown: Some(inval_chown),
        fo_sendfile: Some(inval_sendfile),
        fo_seek: Some(no_seek),
        fo_fill_kinfo: Some(fill_kinfo),
        fo_mmap: Some(mmap),
        fo_aio_queue: Some(inval_aio),
        fo_add_seals: core::ptr::null(),
        fo_get_seals: core::ptr::null(),
        fo_fallocate: core::ptr::null(),
        fo_flags: kpi::DFLAG_PASSABLE,
    }
}

/// The `fileops` of a VM file.
pub static VM_FILEOPS: Rec<kpi::fileops> = Rec(fileops(vm_ioctl, vm_close, no_mmap));
/// The `fileops` of a vCPU file.
pub static VCPU_FILEOPS: Rec<kpi::fileops> = Rec(fileops(vcpu_ioctl, vcpu_close, vcpu_mmap));

/// For the Linux-emulation hook: runs `cmd` on our `/dev/kvm`, VM or vCPU file `fp`, or
/// `None` if the file is not ours.
///
/// # Safety
/// `fp` is a live, referenced file.
pub unsafe fn linux_dispatch(
    fp: *mut kpi::file,
    cmd: u32,
    arg: u64,
    td: *mut kpi::thread,
) -> Option<i64> {
    // SAFETY: `f_ops` of a live file (caller).
    let ops = unsafe { (*fp).f_ops };
    // SAFETY: `fp` is live and referenced (caller).
    let is_dev = unsafe { is_kvm_device(fp) };
    if core::ptr::eq(ops, &VM_FILEOPS.0) {
        // SAFETY: our VM file holds this reference while the caller holds the file.
        let vm = ManuallyDrop::new(unsafe { KArc::<Vm<P>>::from_raw(file_data(fp)) });
        Some(deliver(Vm::ioctl(&vm, cmd, arg), td))
    } else if core::ptr::eq(ops, &VCPU_FILEOPS.0) {
        // SAFETY: as above, a vCPU file.
        let f = unsafe { KArc::<VcpuFile<P>>::borrow_raw(file_data(fp)) };
        Some(match f.ioctl(cmd, arg) {
            Ok(v) => v,
            Err(e) => -i64::from(e.raw()),
        })
    } else if is_dev {
        let p = SYSTEM.load(Ordering::Acquire);
        if p.is_null() {
            return Some(-i64::from(Errno::ENODEV.raw()));
        }
        // SAFETY: the static owns the reference until unload, refused while files are open
        // (the caller's file is an open of /dev/kvm).
        let sys = ManuallyDrop::new(unsafe { KArc::<System<P>>::from_raw(p) });
        Some(deliver(System::ioctl(&sys, cmd, arg), td))
    } else {
        None
    }
}

/// Whether `fp` is an open of our `/dev/kvm`: a vnode file whose vnode is a character device
/// with our cdev (`v_rdev`). The file's reference keeps the vnode alive.
///
/// # Safety
/// `fp` is a live, referenced file.
unsafe fn is_kvm_device(fp: *mut kpi::file) -> bool {
    let cdev = CDEV.load(Ordering::Acquire);
    if cdev.is_null() {
        return false;
    }
    let base = fp.cast::<u8>();
    // SAFETY: `f_type` and `f_vnode` of a live file (caller); the vnode, when the type says
    // there is one, is referenced by the file, and `v_type`/`v_rdev` are plain reads.
    unsafe {
        if base.add(kpi::FILE_F_TYPE_OFFSET).cast::<i16>().read() != kpi::DTYPE_VNODE {
            return false;
        }
        let vp = base
            .add(kpi::FILE_F_VNODE_OFFSET)
            .cast::<*const u8>()
            .read();
        if vp.is_null() || vp.read() != kpi::VCHR {
            return false;
        }
        core::ptr::eq(
            vp.add(kpi::VNODE_V_RDEV_OFFSET)
                .cast::<*mut kpi::cdev>()
                .read_volatile(),
            cdev,
        )
    }
}
