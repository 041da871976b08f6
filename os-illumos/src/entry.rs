//! The kernel's entry points into the `kvm` driver: `_init/_fini/_info`, the module linkage
//! (modlinkage → modldrv → dev_ops → cb_ops), attach/detach, the cloning open, ioctl with
//! Linux command numbers, and the devmap/segmap of a vCPU's pages.
//!
//! **File descriptors: cloned minors.** illumos has no DDI to make an anonymous file, so the
//! driver cannot return a new fd from `KVM_CREATE_VM`/`KVM_CREATE_VCPU` as Linux does. Instead
//! every open of `/dev/kvm` is a clone: it gets a fresh minor number with its own state, which
//! starts as a system fd. The client crate turns `KVM_CREATE_VM` (on a system fd) and
//! `KVM_CREATE_VCPU` (on a VM fd) into: open `/dev/kvm` again, then [`KVMPORT_CLONE`] on the
//! new fd naming the old fd's device number; the driver runs the command on the old fd's
//! object and binds the VM or vCPU it made to the new minor. The program gets the new fd, so
//! it is written once for all three kernels. Issued directly, those two commands fail with
//! `ENOTTY`. Every other command is the Linux command, unchanged.

use core::ffi::{c_char, c_int, c_uint, c_void};
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use kvmport_core::abi::ioctl::{KVM_CREATE_VCPU, KVM_CREATE_VM};
use kvmport_core::os::{Lock, PAGE_SIZE};
use kvmport_core::{Errno, KArc, Outcome, System, VcpuFile, Vm};

use crate::IllumosPlatform;
use crate::ddi::{self, errno};
use crate::os::{AdaptiveKind, IllumosOs, KLock, log_args, mode};

type P = IllumosPlatform;

/// The clone command's argument (`struct kvmport_clone`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KvmportClone {
    /// `KVM_CREATE_VM` or `KVM_CREATE_VCPU`.
    pub linux_cmd: u32,
    /// Zero.
    pub pad: u32,
    /// The device number (`st_rdev`) of the fd the command is meant for.
    pub src_dev: u64,
    /// The command's argument (machine type or vCPU id).
    pub arg: u64,
}

const _: () = assert!(size_of::<KvmportClone>() == 24);

/// `_IOW('k', 0x10, struct kvmport_clone)` in Linux's encoding (the driver sees the raw
/// number): write direction, 24 bytes, type `'k'`, number 0x10. Linux KVM uses type 0xAE
/// only, so it cannot collide.
pub const KVMPORT_CLONE: u32 = (1 << 30) | (24 << 16) | ((b'k' as u32) << 8) | 0x10;
const _: () = assert!(KVMPORT_CLONE == 0x4018_6b10);

/// A `static` handed to the kernel (it may keep pointers into it).
#[repr(transparent)]
pub struct Rec<T>(pub T);
// SAFETY: never written after link time (the kernel reads them, `devo_refcnt` is written
// by the kernel under its own locks).
unsafe impl<T> Sync for Rec<T> {}

// ---------------------------------------------------------------- state

/// `Box::new` that reports allocation failure instead of aborting.
fn try_box<T>(v: T) -> Result<alloc::boxed::Box<T>, Errno> {
    let layout = core::alloc::Layout::new::<T>();
    if layout.size() == 0 {
        return Err(Errno::EINVAL);
    }
    // SAFETY: a non-zero-sized layout.
    let p = unsafe { alloc::alloc::alloc(layout) }.cast::<T>();
    if p.is_null() {
        return Err(Errno::ENOMEM);
    }
    // SAFETY: fresh memory for one `T`, then owned by the box (same layout, global allocator).
    unsafe {
        p.write(v);
        Ok(alloc::boxed::Box::from_raw(p))
    }
}

/// What a minor (one open of `/dev/kvm`) is.
enum Obj {
    /// A system fd.
    Sys,
    /// A VM fd.
    Vm(KArc<Vm<P>>),
    /// A vCPU fd.
    Vcpu(KArc<VcpuFile<P>>),
}

impl Obj {
    fn try_clone(&self) -> Result<Obj, Errno> {
        Ok(match self {
            Obj::Sys => Obj::Sys,
            Obj::Vm(v) => Obj::Vm(v.try_clone()?),
            Obj::Vcpu(v) => Obj::Vcpu(v.try_clone()?),
        })
    }
}

/// The open minors and the next minor number to try.
struct Minors {
    list: alloc::vec::Vec<(u32, Obj)>,
    next: u32,
}

type MinorTable = KLock<Minors, AdaptiveKind>;

/// The driver's state from attach to detach.
struct Driver {
    dip: *mut ddi::dev_info,
    hma: *mut ddi::hma_reg_t,
    sys: KArc<System<P>>,
    minors: MinorTable,
}

/// The attached driver (`Box::into_raw`), or NULL.
static DRIVER: AtomicPtr<Driver> = AtomicPtr::new(core::ptr::null_mut());
/// vCPU mappings alive (each holds a vCPU reference): detach is refused while non-zero.
static MAPS: AtomicUsize = AtomicUsize::new(0);

fn driver() -> Option<&'static Driver> {
    let p = DRIVER.load(Ordering::Acquire);
    // SAFETY: the driver lives from attach to detach, and detach is refused while any minor
    // is open or mapped, so no entry point that reaches here outlives it.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// The clone of a minor's object, or `None` for an unknown minor.
fn lookup(minor: u32) -> Result<Option<Obj>, Errno> {
    let Some(d) = driver() else { return Ok(None) };
    let g = d.minors.lock();
    match g.list.iter().find(|(m, _)| *m == minor) {
        Some((_, o)) => o.try_clone().map(Some),
        None => Ok(None),
    }
}

// ---------------------------------------------------------------- module linkage

static KVM_CB_OPS: Rec<ddi::cb_ops> = Rec(ddi::cb_ops {
    cb_open: kvm_open,
    cb_close: kvm_close,
    cb_strategy: ddi::nodev as ddi::AnyFn,
    cb_print: ddi::nodev as ddi::AnyFn,
    cb_dump: ddi::nodev as ddi::AnyFn,
    cb_read: ddi::nodev as ddi::AnyFn,
    cb_write: ddi::nodev as ddi::AnyFn,
    cb_ioctl: kvm_ioctl,
    cb_devmap: kvm_devmap,
    cb_mmap: ddi::nodev as ddi::AnyFn,
    cb_segmap: kvm_segmap,
    cb_chpoll: ddi::nochpoll as ddi::AnyFn,
    cb_prop_op: ddi::ddi_prop_op as ddi::AnyFn,
    cb_str: core::ptr::null(),
    cb_flag: ddi::D_NEW | ddi::D_MP | ddi::D_DEVMAP,
    cb_rev: ddi::CB_REV,
    cb_aread: ddi::nodev as ddi::AnyFn,
    cb_awrite: ddi::nodev as ddi::AnyFn,
});

/// A `static` the kernel writes (`devo_refcnt` of the dev_ops): kept in a writable section.
#[repr(transparent)]
pub struct KernelCell<T>(pub core::cell::UnsafeCell<T>);
// SAFETY: only the kernel writes it, under its own locks.
unsafe impl<T> Sync for KernelCell<T> {}

static KVM_DEV_OPS: KernelCell<ddi::dev_ops> =
    KernelCell(core::cell::UnsafeCell::new(ddi::dev_ops {
        devo_rev: ddi::DEVO_REV,
        devo_refcnt: 0,
        devo_getinfo: kvm_getinfo,
        devo_identify: ddi::nulldev as ddi::AnyFn,
        devo_probe: ddi::nulldev as ddi::AnyFn,
        devo_attach: kvm_attach,
        devo_detach: kvm_detach,
        devo_reset: ddi::nodev as ddi::AnyFn,
        devo_cb_ops: &KVM_CB_OPS.0,
        devo_bus_ops: core::ptr::null(),
        devo_power: ddi::nodev as ddi::AnyFn,
        devo_quiesce: ddi::ddi_quiesce_not_needed as ddi::AnyFn,
    }));

static MODLDRV: Rec<ddi::modldrv> = Rec(ddi::modldrv {
    drv_modops: &raw const ddi::mod_driverops,
    drv_linkinfo: c"kvmport: KVM for illumos".as_ptr(),
    drv_dev_ops: KVM_DEV_OPS.0.get().cast_const(),
});

/// The module linkage `_init`, `_fini` and `_info` hand to the kernel.
pub static MODLINKAGE: Rec<ddi::modlinkage> = Rec(ddi::modlinkage {
    ml_rev: ddi::MODREV_1,
    ml_linkage: [
        (&raw const MODLDRV).cast(),
        core::ptr::null(),
        core::ptr::null(),
        core::ptr::null(),
        core::ptr::null(),
        core::ptr::null(),
        core::ptr::null(),
    ],
});

/// The modules krtld must load first (the legacy `_depends_on` string, space-separated):
/// none. Everything kvmport imports is in `unix` and `genunix`, which are always loaded,
/// including HMA (`uts/intel/os/hma.c` is part of `unix`).
#[cfg_attr(target_os = "none", unsafe(no_mangle), used)]
#[allow(non_upper_case_globals, reason = "the name krtld looks up")]
pub static _depends_on: [u8; 1] = *b"\0";

/// `_init(9E)`: installs the module.
///
/// # Safety
/// Called once by the kernel's module loader.
#[cfg_attr(target_os = "none", unsafe(no_mangle))]
pub unsafe extern "C" fn _init() -> c_int {
    // SAFETY: our linkage, a static that outlives the module.
    unsafe { ddi::mod_install(&MODLINKAGE.0) }
}

/// `_fini(9E)`: removes the module (the kernel detaches every instance first, which fails
/// while the device is in use) and reports what is left allocated.
///
/// # Safety
/// Called by the kernel's module unloader.
#[cfg_attr(target_os = "none", unsafe(no_mangle))]
pub unsafe extern "C" fn _fini() -> c_int {
    // SAFETY: our linkage.
    let r = unsafe { ddi::mod_remove(&MODLINKAGE.0) };
    if r == 0 {
        let pages = crate::os::live_pages();
        let held = crate::os::held_pages();
        #[cfg(target_os = "none")]
        let allocs = crate::rt::live_allocs();
        #[cfg(not(target_os = "none"))]
        let allocs = 0;
        log_args(format_args!(
            "kvmport: unloaded; outstanding: {allocs} allocations, {pages} pages, {held} locked user pages"
        ));
    }
    r
}

/// `_info(9E)`.
///
/// # Safety
/// Called by the kernel with its `modinfo`.
#[cfg_attr(target_os = "none", unsafe(no_mangle))]
pub unsafe extern "C" fn _info(mi: *mut ddi::modinfo) -> c_int {
    // SAFETY: our linkage and the kernel's modinfo.
    unsafe { ddi::mod_info(&MODLINKAGE.0, mi) }
}

// ---------------------------------------------------------------- attach, detach

unsafe extern "C" fn kvm_getinfo(
    _dip: *mut ddi::dev_info,
    cmd: c_int,
    _arg: *mut c_void,
    result: *mut *mut c_void,
) -> c_int {
    if result.is_null() {
        return ddi::DDI_FAILURE;
    }
    let v = match cmd {
        ddi::DDI_INFO_DEVT2DEVINFO => match driver() {
            Some(d) => d.dip.cast(),
            None => return ddi::DDI_FAILURE,
        },
        // One instance, 0.
        ddi::DDI_INFO_DEVT2INSTANCE => core::ptr::null_mut(),
        _ => return ddi::DDI_FAILURE,
    };
    // SAFETY: the kernel's out-pointer (checked non-null).
    unsafe { result.write(v) };
    ddi::DDI_SUCCESS
}

unsafe extern "C" fn kvm_attach(dip: *mut ddi::dev_info, cmd: c_int) -> c_int {
    if cmd != ddi::DDI_ATTACH || !DRIVER.load(Ordering::Acquire).is_null() {
        return ddi::DDI_FAILURE;
    }
    match attach(dip) {
        Ok(()) => ddi::DDI_SUCCESS,
        Err(e) => {
            log_args(format_args!("kvmport: attach failed: {e}"));
            ddi::DDI_FAILURE
        }
    }
}

fn attach(dip: *mut ddi::dev_info) -> Result<(), Errno> {
    // SAFETY: registers with HMA, which enables SVM on every CPU (or returns NULL when
    // another hypervisor holds it exclusively or the CPU has no usable SVM).
    let hma = unsafe { ddi::hma_register(c"kvmport".as_ptr()) };
    if hma.is_null() {
        return Err(Errno::ENODEV);
    }
    let unregister = || {
        // SAFETY: our registration, given up once.
        unsafe { ddi::hma_unregister(hma) }
    };
    let sys = match System::<P>::new(IllumosOs) {
        Ok(s) => s,
        Err(e) => {
            unregister();
            return Err(e);
        }
    };
    let minors = match MinorTable::new(Minors {
        list: alloc::vec::Vec::new(),
        next: 1,
    }) {
        Ok(m) => m,
        Err(e) => {
            drop(sys);
            unregister();
            return Err(e);
        }
    };
    let d = match try_box(Driver {
        dip,
        hma,
        sys,
        minors,
    }) {
        Ok(d) => d,
        Err(_) => {
            unregister();
            return Err(Errno::ENOMEM);
        }
    };
    // SAFETY: the node is minor 0 of our instance; the strings are static.
    let r = unsafe {
        ddi::ddi_create_minor_node(
            dip,
            c"kvm".as_ptr(),
            ddi::S_IFCHR,
            0,
            c"ddi_pseudo".as_ptr(),
            0,
        )
    };
    if r != ddi::DDI_SUCCESS {
        drop(d);
        unregister();
        return Err(Errno::ENODEV);
    }
    DRIVER.store(alloc::boxed::Box::into_raw(d), Ordering::Release);
    log_args(format_args!("kvmport: /dev/kvm ready (HMA registered)"));
    Ok(())
}

unsafe extern "C" fn kvm_detach(dip: *mut ddi::dev_info, cmd: c_int) -> c_int {
    if cmd != ddi::DDI_DETACH {
        return ddi::DDI_FAILURE;
    }
    let Some(d) = driver() else {
        return ddi::DDI_FAILURE;
    };
    {
        let g = d.minors.lock();
        if !g.list.is_empty() || MAPS.load(Ordering::Acquire) != 0 {
            return ddi::DDI_FAILURE;
        }
    }
    let p = DRIVER.swap(core::ptr::null_mut(), Ordering::AcqRel);
    // SAFETY: from Box::into_raw in attach, taken back once; nothing uses it any more (no
    // minor is open or mapped, and the node goes away next).
    let d = unsafe { alloc::boxed::Box::from_raw(p) };
    // SAFETY: our instance's nodes.
    unsafe { ddi::ddi_remove_minor_node(dip, core::ptr::null()) };
    let hma = d.hma;
    drop(d);
    // SAFETY: our registration, given up once after the System (and its per-CPU use of SVM)
    // is gone.
    unsafe { ddi::hma_unregister(hma) };
    ddi::DDI_SUCCESS
}

// ---------------------------------------------------------------- open, close

unsafe extern "C" fn kvm_open(
    devp: *mut ddi::dev_t,
    flag: c_int,
    otyp: c_int,
    _cred: *mut ddi::cred_t,
) -> c_int {
    if devp.is_null() {
        return errno::EINVAL;
    }
    // SAFETY: the kernel's device number, read and (on success) rewritten below.
    let dev = unsafe { devp.read() };
    if ddi::getminor(dev) != 0 || otyp != ddi::OTYP_CHR {
        return errno::ENXIO;
    }
    if flag & ddi::FEXCL != 0 {
        return errno::EINVAL;
    }
    let Some(d) = driver() else {
        return errno::ENXIO;
    };
    let mut g = d.minors.lock();
    if g.list.try_reserve(1).is_err() {
        return errno::ENOMEM;
    }
    // The next free minor in 1..=L_MAXMIN32 (so a 32-bit dev32_t can carry it).
    let mut m = g.next;
    let mut tries = 0u32;
    while g.list.iter().any(|(x, _)| *x == m) {
        m = if m >= ddi::L_MAXMIN32 { 1 } else { m + 1 };
        tries += 1;
        if tries >= ddi::L_MAXMIN32 {
            return errno::ENXIO;
        }
    }
    g.next = if m >= ddi::L_MAXMIN32 { 1 } else { m + 1 };
    g.list.push((m, Obj::Sys));
    // SAFETY: the clone: the kernel opens the new minor from now on.
    unsafe { devp.write(ddi::makedevice(ddi::getmajor(dev), m)) };
    0
}

unsafe extern "C" fn kvm_close(
    dev: ddi::dev_t,
    _flag: c_int,
    _otyp: c_int,
    _cred: *mut ddi::cred_t,
) -> c_int {
    let Some(d) = driver() else { return 0 };
    let obj = {
        let mut g = d.minors.lock();
        let i = g.list.iter().position(|(m, _)| *m == ddi::getminor(dev));
        let obj = i.map(|i| g.list.swap_remove(i).1);
        if g.list.is_empty() {
            // Frees the table's storage (no allocation for an empty vector), so an idle
            // driver holds no memory beyond its fixed state.
            g.list.shrink_to_fit();
        }
        obj
    };
    // The object's reference goes outside the lock (dropping a VM may take a while).
    drop(obj);
    0
}

// ---------------------------------------------------------------- ioctl

fn to_illumos(e: Errno) -> c_int {
    ddi::errno_from_linux(e.raw())
}

/// `ioctl(9E)`: `cmd` is the raw number the process passed (Linux's encoding arrives
/// unchanged), `arg` the raw argument; copies go through ddi_copyin/ddi_copyout with `mode`;
/// the result is `*rvalp`.
unsafe extern "C" fn kvm_ioctl(
    dev: ddi::dev_t,
    cmd: c_int,
    arg: isize,
    mode: c_int,
    _cred: *mut ddi::cred_t,
    rvalp: *mut c_int,
) -> c_int {
    let Some(_mode) = mode::enter(mode) else {
        return 11; // EAGAIN: too many ioctls in progress
    };
    // CAST: the command number is 32 bits; `arg` is a pointer or an integer.
    let (cmd, arg) = (cmd as u32, arg as u64);
    let r = match dispatch(ddi::getminor(dev), cmd, arg) {
        Ok(v) => i32::try_from(v).map_err(|_| errno::EOVERFLOW),
        Err(e) => Err(e),
    };
    match r {
        Ok(v) => {
            if !rvalp.is_null() {
                // SAFETY: the kernel's return-value slot.
                unsafe { rvalp.write(v) };
            }
            0
        }
        Err(e) => e,
    }
}

fn dispatch(minor: u32, cmd: u32, arg: u64) -> Result<i64, c_int> {
    let Some(d) = driver() else {
        return Err(errno::ENXIO);
    };
    let obj = lookup(minor).map_err(to_illumos)?.ok_or(errno::ENXIO)?;
    if cmd == KVMPORT_CLONE {
        return clone_cmd(d, minor, obj, arg);
    }
    let out = match &obj {
        Obj::Sys if cmd == KVM_CREATE_VM => return Err(errno::ENOTTY),
        Obj::Vm(_) if cmd == KVM_CREATE_VCPU => return Err(errno::ENOTTY),
        Obj::Sys => System::ioctl(&d.sys, cmd, arg),
        Obj::Vm(vm) => Vm::ioctl(vm, cmd, arg),
        Obj::Vcpu(f) => f.ioctl(cmd, arg).map(Outcome::Value),
    };
    match out {
        Ok(Outcome::Value(v)) => Ok(v),
        // Not reached (the creating commands were refused above); dropped, not leaked.
        Ok(Outcome::Vm(_) | Outcome::Vcpu(_)) => Err(errno::ENOTTY),
        Err(e) => Err(to_illumos(e)),
    }
}

/// [`KVMPORT_CLONE`] on the fresh minor `minor`: runs the creating command on the object of
/// `req.src_dev` and binds the new VM or vCPU to `minor`.
fn clone_cmd(d: &Driver, minor: u32, obj: Obj, arg: u64) -> Result<i64, c_int> {
    if !matches!(obj, Obj::Sys) {
        return Err(errno::EBUSY);
    }
    let mut buf = [0u8; size_of::<KvmportClone>()];
    use kvmport_core::os::Os;
    IllumosOs
        .user_copy_in(&mut buf, kvmport_core::os::UserAddr(arg))
        .map_err(to_illumos)?;
    let word = |i: usize| {
        let mut b = [0u8; 8];
        if let Some(s) = buf.get(i..i + 8) {
            b.copy_from_slice(s);
        }
        u64::from_ne_bytes(b)
    };
    let (w0, src_dev, carg) = (word(0), word(8), word(16));
    // CAST: the two halves of the first word.
    let (linux_cmd, pad) = (w0 as u32, (w0 >> 32) as u32);
    if pad != 0 {
        return Err(errno::EINVAL);
    }
    // The source must be one of our minors (same major as the node being opened is not
    // known here, so the minor is looked up; a foreign major never names our minors).
    let src_minor = ddi::getminor(src_dev);
    if src_minor == minor || src_minor == 0 {
        return Err(errno::EBADF);
    }
    let src = lookup(src_minor).map_err(to_illumos)?.ok_or(errno::EBADF)?;
    let made = match (&src, linux_cmd) {
        (Obj::Sys, KVM_CREATE_VM) => System::ioctl(&d.sys, linux_cmd, carg),
        (Obj::Vm(vm), KVM_CREATE_VCPU) => Vm::ioctl(vm, linux_cmd, carg),
        _ => return Err(errno::EINVAL),
    };
    let new = match made {
        Ok(Outcome::Vm(vm)) => Obj::Vm(vm),
        Ok(Outcome::Vcpu(v)) => Obj::Vcpu(v),
        Ok(Outcome::Value(_)) => return Err(errno::EINVAL),
        Err(e) => return Err(to_illumos(e)),
    };
    let mut g = d.minors.lock();
    match g.list.iter_mut().find(|(m, _)| *m == minor) {
        Some((_, slot @ Obj::Sys)) => {
            *slot = new;
            Ok(0)
        }
        // Closed or bound meanwhile: the new object is dropped (after the lock).
        _ => {
            drop(g);
            drop(new);
            Err(errno::EBUSY)
        }
    }
}

// ---------------------------------------------------------------- devmap, segmap

/// A mapping's private data (`*pvtp`): a vCPU reference that keeps its pages alive, and
/// whether the mapping lies beyond the vCPU's pages (every access fails: `SIGBUS`).
struct MapRef {
    vcpu: KArc<VcpuFile<P>>,
    beyond: bool,
}

fn mapref_new(vcpu: KArc<VcpuFile<P>>, beyond: bool) -> Option<*mut c_void> {
    let b = try_box(MapRef { vcpu, beyond }).ok()?;
    MAPS.fetch_add(1, Ordering::AcqRel);
    Some(alloc::boxed::Box::into_raw(b).cast())
}

/// # Safety
/// `p` came from [`mapref_new`] and is not used again.
unsafe fn mapref_free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    // SAFETY: from Box::into_raw in mapref_new (caller).
    drop(unsafe { alloc::boxed::Box::from_raw(p.cast::<MapRef>()) });
    MAPS.fetch_sub(1, Ordering::AcqRel);
}

/// # Safety
/// `p` is a live [`MapRef`].
unsafe fn mapref_clone(p: *mut c_void) -> Option<*mut c_void> {
    if p.is_null() {
        return None;
    }
    // SAFETY: live (caller).
    let m = unsafe { &*p.cast::<MapRef>() };
    mapref_new(m.vcpu.try_clone().ok()?, m.beyond)
}

static MAP_CALLBACKS: Rec<ddi::devmap_callback_ctl> = Rec(ddi::devmap_callback_ctl {
    devmap_rev: ddi::DEVMAP_OPS_REV,
    devmap_map: Some(map_map),
    devmap_access: Some(map_access),
    devmap_dup: Some(map_dup),
    devmap_unmap: Some(map_unmap),
});

/// The vCPU bound to `minor`, if it is a vCPU fd.
fn vcpu_of(minor: u32) -> Option<KArc<VcpuFile<P>>> {
    match lookup(minor).ok()?? {
        Obj::Vcpu(v) => Some(v),
        _ => None,
    }
}

/// `segmap(9E)`: only a vCPU fd maps; the rest is the DDI's devmap framework.
unsafe extern "C" fn kvm_segmap(
    dev: ddi::dev_t,
    off: ddi::offset_t,
    asp: *mut ddi::as_,
    addrp: *mut *mut c_char,
    len: ddi::offset_t,
    prot: c_uint,
    maxprot: c_uint,
    flags: c_uint,
    cred: *mut ddi::cred_t,
) -> c_int {
    if vcpu_of(ddi::getminor(dev)).is_none() {
        return errno::ENODEV;
    }
    // CAST: page size fits.
    if off < 0 || off % PAGE_SIZE as i64 != 0 || len <= 0 {
        return errno::EINVAL;
    }
    // SAFETY: forwards the kernel's own arguments to the devmap framework, which calls
    // kvm_devmap for each piece.
    unsafe { ddi::ddi_devmap_segmap(dev, off, asp, addrp, len, prot, maxprot, flags, cred) }
}

/// `devmap(9E)`: maps one page at `off`: the vCPU's page there (`kvm_run`, the PIO data page,
/// the coalesced-MMIO ring), or, beyond them, a page every access to which fails (`SIGBUS`,
/// as on Linux). The kernel calls again for the rest of the range.
unsafe extern "C" fn kvm_devmap(
    dev: ddi::dev_t,
    dhp: ddi::devmap_cookie_t,
    off: ddi::offset_t,
    _len: usize,
    maplen: *mut usize,
    _model: c_uint,
) -> c_int {
    let Some(file) = vcpu_of(ddi::getminor(dev)) else {
        return errno::ENXIO;
    };
    let Ok(off) = u64::try_from(off) else {
        return errno::EINVAL;
    };
    if maplen.is_null() || off % PAGE_SIZE as u64 != 0 {
        return errno::EINVAL;
    }
    let pg = off / PAGE_SIZE as u64;
    // Beyond the vCPU's pages the mapping is backed by its first page, but every access is
    // refused by `map_access`.
    let page = file
        .vcpu()
        .mmap_page(pg)
        .or_else(|| file.vcpu().mmap_page(0));
    let Some(page) = page else {
        return errno::ENXIO;
    };
    // SAFETY: our attached instance's dip, a live page cookie (the vCPU outlives every
    // mapping through MapRef), our static callbacks, one page.
    let r = unsafe {
        ddi::devmap_umem_setup(
            dhp,
            driver().map_or(core::ptr::null_mut(), |d| d.dip),
            &MAP_CALLBACKS.0,
            page.cookie(),
            0,
            PAGE_SIZE,
            ddi::PROT_READ | ddi::PROT_WRITE | ddi::PROT_USER,
            ddi::DEVMAP_DEFAULTS,
            core::ptr::null(),
        )
    };
    if r == 0 {
        // SAFETY: the kernel's out-pointer (checked non-null).
        unsafe { maplen.write(PAGE_SIZE) };
    }
    r
}

/// `devmap_map(9E)`: a new mapping takes a vCPU reference.
unsafe extern "C" fn map_map(
    _dhp: ddi::devmap_cookie_t,
    dev: ddi::dev_t,
    _flags: c_uint,
    off: ddi::offset_t,
    _len: usize,
    pvtp: *mut *mut c_void,
) -> c_int {
    let Some(file) = vcpu_of(ddi::getminor(dev)) else {
        return errno::ENXIO;
    };
    let beyond = u64::try_from(off)
        .ok()
        .is_none_or(|o| file.vcpu().mmap_page(o / PAGE_SIZE as u64).is_none());
    match mapref_new(file, beyond) {
        Some(p) if !pvtp.is_null() => {
            // SAFETY: the kernel's out-pointer.
            unsafe { pvtp.write(p) };
            0
        }
        Some(p) => {
            // SAFETY: ours, not given away.
            unsafe { mapref_free(p) };
            errno::EINVAL
        }
        None => errno::ENOMEM,
    }
}

/// `devmap_access(9E)`: the default fault handling, except beyond the vCPU's pages, where the
/// fault fails (the process gets `SIGBUS`).
unsafe extern "C" fn map_access(
    dhp: ddi::devmap_cookie_t,
    pvtp: *mut c_void,
    off: ddi::offset_t,
    len: usize,
    ty: c_uint,
    rw: c_uint,
) -> c_int {
    // SAFETY: `pvtp` is the MapRef this mapping got from map_map or map_dup.
    if pvtp.is_null() || unsafe { (*pvtp.cast::<MapRef>()).beyond } {
        return errno::EFAULT;
    }
    // SAFETY: the kernel's own arguments.
    unsafe { ddi::devmap_default_access(dhp, pvtp, off, len, ty, rw) }
}

/// `devmap_dup(9E)`: fork copies the mapping; the copy takes its own reference.
unsafe extern "C" fn map_dup(
    _dhp: ddi::devmap_cookie_t,
    pvtp: *mut c_void,
    _new_dhp: ddi::devmap_cookie_t,
    new_pvtp: *mut *mut c_void,
) -> c_int {
    if new_pvtp.is_null() {
        return errno::EINVAL;
    }
    // SAFETY: `pvtp` is live (the original mapping exists).
    match unsafe { mapref_clone(pvtp) } {
        Some(p) => {
            // SAFETY: the kernel's out-pointer.
            unsafe { new_pvtp.write(p) };
            0
        }
        None => errno::ENOMEM,
    }
}

/// `devmap_unmap(9E)`: the pieces that remain after a partial unmap get references of their
/// own; the unmapped mapping's reference goes.
#[allow(clippy::too_many_arguments, reason = "the devmap_unmap(9E) signature")]
unsafe extern "C" fn map_unmap(
    _dhp: ddi::devmap_cookie_t,
    pvtp: *mut c_void,
    _off: ddi::offset_t,
    _len: usize,
    new_dhp1: ddi::devmap_cookie_t,
    new_pvtp1: *mut *mut c_void,
    new_dhp2: ddi::devmap_cookie_t,
    new_pvtp2: *mut *mut c_void,
) {
    for (dhp, out) in [(new_dhp1, new_pvtp1), (new_dhp2, new_pvtp2)] {
        if !dhp.is_null() && !out.is_null() {
            // SAFETY: `pvtp` is still live; the kernel's out-pointer. On allocation failure
            // the piece keeps no reference (NULL): its accesses are then refused.
            unsafe { out.write(mapref_clone(pvtp).unwrap_or(core::ptr::null_mut())) };
        }
    }
    // SAFETY: this mapping's reference, released once.
    unsafe { mapref_free(pvtp) };
}
