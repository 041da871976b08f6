//! The illumos amd64 kernel interfaces kvmport uses, declared by the project itself.
//!
//! Sources of each fact (read, not copied): the DDI/DKI manual pages modlinkage(9S),
//! modldrv(9S), dev_ops(9S), cb_ops(9S), devmap(9E), devmap_callback_ctl(9S), devmap_map(9E),
//! devmap_access(9E), devmap_dup(9E), devmap_unmap(9E), ddi_copyin(9F), ddi_umem_alloc(9F),
//! devmap_umem_setup(9F), ddi_devmap_segmap(9F), mutex(9F), condvar(9F), ioctl(9E); and the
//! illumos-gate headers `uts/common/sys/{modctl,devops,ddidevmap,cred,errno,thread,cpuvar}.h`,
//! `uts/intel/sys/hma.h` and `uts/intel/sys/kfpu.h` as summarised in
//! `shared/research/bsd-illumos.md` §2. Layouts are LP64 (amd64); each struct has a size
//! assertion. Facts taken from kernel-private headers (not DDI) are marked **private** and
//! listed as unverified assumptions in docs/illumos.md.

#![allow(non_camel_case_types, missing_docs)]

use core::ffi::{c_char, c_int, c_uint, c_ulong, c_void};

// ---------------------------------------------------------------- basic types

/// `dev_t` (LP64): major in the high 32 bits, minor in the low 32 (`NBITSMINOR64` = 32).
pub type dev_t = u64;
/// `minor_t`.
pub type minor_t = u32;
/// `major_t`.
pub type major_t = u32;
/// `offset_t`, `off_t` (LP64).
pub type offset_t = i64;
/// Opaque kernel objects.
pub enum dev_info {}
pub enum cred_t {}
pub enum as_ {}
/// `struct mod_ops`: only its address is used (`&mod_driverops`).
#[repr(C)]
pub struct mod_ops {
    _opaque: [u8; 0],
}
pub enum modinfo {}
pub enum hma_reg_t {}
pub enum cpuset_t {}
pub enum kthread_t {}
pub enum cpu_t {}
/// `devmap_cookie_t`: an opaque handle of one mapping.
pub type devmap_cookie_t = *mut c_void;
/// `ddi_umem_cookie_t`.
pub type ddi_umem_cookie_t = *mut c_void;
/// `xc_arg_t` (`uintptr_t`).
pub type xc_arg_t = usize;

const NBITSMINOR: u32 = 32;
/// `getmajor(9F)`.
pub const fn getmajor(d: dev_t) -> major_t {
    // CAST: the high 32 bits.
    (d >> NBITSMINOR) as u32
}
/// `getminor(9F)`.
pub const fn getminor(d: dev_t) -> minor_t {
    // CAST: the low 32 bits.
    d as u32
}
/// `makedevice(9F)`.
pub const fn makedevice(maj: major_t, min: minor_t) -> dev_t {
    ((maj as u64) << NBITSMINOR) | min as u64
}

// ---------------------------------------------------------------- module linkage

/// `MODREV_1` (modlinkage(9S)).
pub const MODREV_1: c_int = 1;
/// `DEVO_REV` (dev_ops(9S)).
pub const DEVO_REV: c_int = 4;
/// `CB_REV` (cb_ops(9S)).
pub const CB_REV: c_int = 1;
/// `D_NEW`, `D_MP`, `D_DEVMAP` (cb_ops(9S) `cb_flag`).
pub const D_NEW: c_int = 0;
pub const D_MP: c_int = 0x20;
pub const D_DEVMAP: c_int = 0x100;

/// `struct modlinkage` (modlinkage(9S)): a revision and a NULL-terminated list of linkage
/// structures.
#[repr(C)]
pub struct modlinkage {
    pub ml_rev: c_int,
    pub ml_linkage: [*const c_void; 7],
}

/// `struct modldrv` (modldrv(9S)).
#[repr(C)]
pub struct modldrv {
    pub drv_modops: *const mod_ops,
    pub drv_linkinfo: *const c_char,
    pub drv_dev_ops: *const dev_ops,
}

/// An entry point the driver leaves to a kernel default (`nodev`, `nulldev`, ...).
pub type AnyFn = *const c_void;

pub type open_t = unsafe extern "C" fn(*mut dev_t, c_int, c_int, *mut cred_t) -> c_int;
pub type close_t = unsafe extern "C" fn(dev_t, c_int, c_int, *mut cred_t) -> c_int;
pub type ioctl_t =
    unsafe extern "C" fn(dev_t, c_int, isize, c_int, *mut cred_t, *mut c_int) -> c_int;
pub type devmap_t =
    unsafe extern "C" fn(dev_t, devmap_cookie_t, offset_t, usize, *mut usize, c_uint) -> c_int;
pub type segmap_t = unsafe extern "C" fn(
    dev_t,
    offset_t,
    *mut as_,
    *mut *mut c_char,
    offset_t,
    c_uint,
    c_uint,
    c_uint,
    *mut cred_t,
) -> c_int;

/// `struct cb_ops` (cb_ops(9S)), 136 bytes.
#[repr(C)]
pub struct cb_ops {
    pub cb_open: open_t,
    pub cb_close: close_t,
    pub cb_strategy: AnyFn,
    pub cb_print: AnyFn,
    pub cb_dump: AnyFn,
    pub cb_read: AnyFn,
    pub cb_write: AnyFn,
    pub cb_ioctl: ioctl_t,
    pub cb_devmap: devmap_t,
    pub cb_mmap: AnyFn,
    pub cb_segmap: segmap_t,
    pub cb_chpoll: AnyFn,
    pub cb_prop_op: AnyFn,
    pub cb_str: *const c_void,
    pub cb_flag: c_int,
    pub cb_rev: c_int,
    pub cb_aread: AnyFn,
    pub cb_awrite: AnyFn,
}

pub type getinfo_t =
    unsafe extern "C" fn(*mut dev_info, c_int, *mut c_void, *mut *mut c_void) -> c_int;
pub type attach_t = unsafe extern "C" fn(*mut dev_info, c_int) -> c_int;

/// `struct dev_ops` (dev_ops(9S)), 88 bytes.
#[repr(C)]
pub struct dev_ops {
    pub devo_rev: c_int,
    pub devo_refcnt: c_int,
    pub devo_getinfo: getinfo_t,
    pub devo_identify: AnyFn,
    pub devo_probe: AnyFn,
    pub devo_attach: attach_t,
    pub devo_detach: attach_t,
    pub devo_reset: AnyFn,
    pub devo_cb_ops: *const cb_ops,
    pub devo_bus_ops: *const c_void,
    pub devo_power: AnyFn,
    pub devo_quiesce: AnyFn,
}

/// `DDI_ATTACH`, `DDI_DETACH` (attach(9E), detach(9E)).
pub const DDI_ATTACH: c_int = 0;
pub const DDI_DETACH: c_int = 0;
/// `DDI_INFO_DEVT2DEVINFO`, `DDI_INFO_DEVT2INSTANCE` (getinfo(9E)).
pub const DDI_INFO_DEVT2DEVINFO: c_int = 0;
pub const DDI_INFO_DEVT2INSTANCE: c_int = 1;
pub const DDI_SUCCESS: c_int = 0;
pub const DDI_FAILURE: c_int = -1;
/// `S_IFCHR` (ddi_create_minor_node(9F) `spec_type`).
pub const S_IFCHR: c_int = 0x2000;
/// `OTYP_CHR` (open(9E) `otyp`).
pub const OTYP_CHR: c_int = 2;
/// `FREAD`, `FWRITE`, `FEXCL` (open(9E) `flag`).
pub const FREAD: c_int = 0x01;
pub const FWRITE: c_int = 0x02;
pub const FEXCL: c_int = 0x400;
/// `FKIOCTL` (ddi_copyin(9F)): the ioctl came from the kernel; `arg` is a kernel address.
pub const FKIOCTL: c_int = 0x8000_0000_u32 as c_int;
/// `L_MAXMIN32`: the largest minor number a 32-bit `dev32_t` can carry.
pub const L_MAXMIN32: u32 = 0x3ffff;

// ---------------------------------------------------------------- devmap

/// `DEVMAP_OPS_REV` (devmap_callback_ctl(9S)).
pub const DEVMAP_OPS_REV: c_int = 1;
/// `PROT_READ | PROT_WRITE | PROT_USER` (`sys/mman.h`); `PROT_EXEC` 4 is not offered.
pub const PROT_READ: c_uint = 1;
pub const PROT_WRITE: c_uint = 2;
pub const PROT_USER: c_uint = 8;
/// `DDI_UMEM_NOSLEEP` (ddi_umem_alloc(9F)).
pub const DDI_UMEM_NOSLEEP: c_int = 1;
/// `DEVMAP_DEFAULTS` (devmap_umem_setup(9F) `flags`).
pub const DEVMAP_DEFAULTS: c_uint = 0;

pub type devmap_map_t = unsafe extern "C" fn(
    devmap_cookie_t,
    dev_t,
    c_uint,
    offset_t,
    usize,
    *mut *mut c_void,
) -> c_int;
pub type devmap_access_t =
    unsafe extern "C" fn(devmap_cookie_t, *mut c_void, offset_t, usize, c_uint, c_uint) -> c_int;
pub type devmap_dup_t =
    unsafe extern "C" fn(devmap_cookie_t, *mut c_void, devmap_cookie_t, *mut *mut c_void) -> c_int;
pub type devmap_unmap_t = unsafe extern "C" fn(
    devmap_cookie_t,
    *mut c_void,
    offset_t,
    usize,
    devmap_cookie_t,
    *mut *mut c_void,
    devmap_cookie_t,
    *mut *mut c_void,
);

/// `struct devmap_callback_ctl` (devmap_callback_ctl(9S)), 40 bytes.
#[repr(C)]
pub struct devmap_callback_ctl {
    pub devmap_rev: c_int,
    pub devmap_map: Option<devmap_map_t>,
    pub devmap_access: Option<devmap_access_t>,
    pub devmap_dup: Option<devmap_dup_t>,
    pub devmap_unmap: Option<devmap_unmap_t>,
}

// ---------------------------------------------------------------- locks

/// `kmutex_t`: one pointer-sized word (`sys/mutex.h`, LP64).
#[repr(C, align(8))]
pub struct kmutex_t(pub [u64; 1]);
/// `kcondvar_t`: an `ushort_t` (`sys/condvar.h`).
#[repr(C, align(2))]
pub struct kcondvar_t(pub [u16; 1]);
/// `MUTEX_DRIVER` (mutex_init(9F)); with an interrupt priority above `LOCK_LEVEL` (10) as
/// its argument the mutex is a spin mutex.
pub const MUTEX_DRIVER: c_int = 4;
/// `DISP_LEVEL` (11): the priority kvmport's spin locks use (above `LOCK_LEVEL`).
pub const DISP_LEVEL: usize = 11;
/// `CV_DRIVER` (condvar(9F)).
pub const CV_DRIVER: c_int = 1;
/// `KM_SLEEP`, `KM_NOSLEEP` (kmem_alloc(9F)).
pub const KM_SLEEP: c_int = 0;
pub const KM_NOSLEEP: c_int = 1;
/// `CE_CONT`, `CE_NOTE`, `CE_WARN` (cmn_err(9F)).
pub const CE_CONT: c_int = 0;
pub const CE_NOTE: c_int = 1;
pub const CE_WARN: c_int = 2;
/// `KFPU_NO_STATE` (`sys/kfpu.h`): FPU use bracketed by kpreempt_disable.
pub const KFPU_NO_STATE: c_uint = 0x01;
/// `JUSTLOOKING` (issig()).
pub const JUSTLOOKING: c_int = 0;
/// `KPREEMPT_SYNC` (kpreempt(): preempt now if the dispatcher asked for it).
pub const KPREEMPT_SYNC: c_int = -1;

/// **Private** (`sys/thread.h`): offset of `t_preempt` (a `char`) in `kthread_t`: after
/// `t_link`, `t_stk`, `t_startpc`, `t_bound_cpu` (8 each), `t_affinitycnt`, `t_bind_cpu`
/// (short each), `t_flag`, `t_proc_flag`, `t_schedflag` (ushort each). `kpreempt_disable()` is
/// a macro incrementing it.
pub const T_PREEMPT_OFFSET: usize = 42;
/// **Private** (`sys/cpuvar.h`): `cpu_id` is the first member of `struct cpu`.
pub const CPU_ID_OFFSET: usize = 0;
/// The amd64 user address limit (`USERLIMIT`, `sys/vmparam.h`).
pub const USERLIMIT: u64 = 0xffff_fd80_0000_0000;
/// The page size.
pub const PAGESIZE: usize = 4096;

unsafe extern "C" {
    // Module linkage (mod_install(9F)).
    pub static mod_driverops: mod_ops;
    pub fn mod_install(ml: *const modlinkage) -> c_int;
    pub fn mod_remove(ml: *const modlinkage) -> c_int;
    pub fn mod_info(ml: *const modlinkage, mi: *mut modinfo) -> c_int;
    pub fn nodev() -> c_int;
    pub fn nulldev() -> c_int;
    pub fn nochpoll() -> c_int;
    pub fn ddi_prop_op() -> c_int;
    pub fn ddi_quiesce_not_needed(dip: *mut dev_info) -> c_int;

    // Device nodes.
    pub fn ddi_create_minor_node(
        dip: *mut dev_info,
        name: *const c_char,
        spec_type: c_int,
        minor: minor_t,
        node_type: *const c_char,
        flag: c_int,
    ) -> c_int;
    pub fn ddi_remove_minor_node(dip: *mut dev_info, name: *const c_char);
    pub fn ddi_get_pid() -> c_int;

    // Copies (ddi_copyin(9F)).
    pub fn ddi_copyin(buf: *const c_void, driverbuf: *mut c_void, cn: usize, flags: c_int)
    -> c_int;
    pub fn ddi_copyout(
        driverbuf: *const c_void,
        buf: *mut c_void,
        cn: usize,
        flags: c_int,
    ) -> c_int;

    // Memory.
    pub fn kmem_alloc(size: usize, flag: c_int) -> *mut c_void;
    pub fn kmem_zalloc(size: usize, flag: c_int) -> *mut c_void;
    pub fn kmem_free(p: *mut c_void, size: usize);
    pub fn ddi_umem_alloc(size: usize, flag: c_int, cookie: *mut ddi_umem_cookie_t) -> *mut c_void;
    pub fn ddi_umem_free(cookie: ddi_umem_cookie_t);
    /// **Private** (`vm/hat.h`): the page frame behind a kernel virtual address.
    pub fn hat_getpfnum(hat: *mut c_void, addr: *mut c_void) -> c_ulong;
    /// **Private** (`vm/as.h`): the kernel's address space; `a_hat` at [`AS_A_HAT_OFFSET`].
    pub static kas: [u8; 0];

    // Mappings.
    pub fn devmap_umem_setup(
        dhp: devmap_cookie_t,
        dip: *mut dev_info,
        callbackops: *const devmap_callback_ctl,
        cookie: ddi_umem_cookie_t,
        off: offset_t,
        len: usize,
        maxprot: c_uint,
        flags: c_uint,
        accattrp: *const c_void,
    ) -> c_int;
    pub fn ddi_devmap_segmap(
        dev: dev_t,
        off: offset_t,
        asp: *mut as_,
        addrp: *mut *mut c_char,
        len: offset_t,
        prot: c_uint,
        maxprot: c_uint,
        flags: c_uint,
        cred: *mut cred_t,
    ) -> c_int;
    pub fn devmap_default_access(
        dhp: devmap_cookie_t,
        pvtp: *mut c_void,
        off: offset_t,
        len: usize,
        ty: c_uint,
        rw: c_uint,
    ) -> c_int;

    // Locks and condition variables.
    pub fn mutex_init(m: *mut kmutex_t, name: *const c_char, ty: c_int, arg: *mut c_void);
    pub fn mutex_destroy(m: *mut kmutex_t);
    pub fn mutex_enter(m: *mut kmutex_t);
    pub fn mutex_exit(m: *mut kmutex_t);
    pub fn cv_init(cv: *mut kcondvar_t, name: *const c_char, ty: c_int, arg: *mut c_void);
    pub fn cv_destroy(cv: *mut kcondvar_t);
    pub fn cv_wait_sig(cv: *mut kcondvar_t, m: *mut kmutex_t) -> c_int;
    pub fn cv_broadcast(cv: *mut kcondvar_t);

    // Messages.
    pub fn cmn_err(level: c_int, fmt: *const c_char, ...);
    pub fn panic(fmt: *const c_char, ...) -> !;

    // CPUs, cross calls, preemption (private: `sys/cpuvar.h`, `sys/x_call.h`, `sys/disp.h`).
    pub static max_ncpus: c_int;
    pub fn curcpup() -> *mut cpu_t;
    pub fn threadp() -> *mut kthread_t;
    pub fn kpreempt(asyncspl: c_int);
    pub fn poke_cpu(cpun: c_int);
    pub fn cpuset_alloc(kmflags: c_int) -> *mut cpuset_t;
    pub fn cpuset_free(s: *mut cpuset_t);
    pub fn cpuset_all(s: *mut cpuset_t);
    pub fn xc_sync(
        a1: xc_arg_t,
        a2: xc_arg_t,
        a3: xc_arg_t,
        set: *mut c_ulong,
        func: unsafe extern "C" fn(xc_arg_t, xc_arg_t, xc_arg_t) -> c_int,
    );
    pub fn kernel_fpu_begin(kfpu: *mut c_void, flags: c_uint);
    pub fn kernel_fpu_end(kfpu: *mut c_void, flags: c_uint);
    pub fn issig(why: c_int) -> c_int;
    pub fn gethrtime() -> i64;
    /// **Private** (`sys/x86_archext.h`): the CPU (TSC) frequency in Hz.
    pub static cpu_freq_hz: u64;

    // The hypervisor-management layer (`sys/hma.h`).
    pub fn hma_register(name: *const c_char) -> *mut hma_reg_t;
    pub fn hma_unregister(reg: *mut hma_reg_t);
}

// ---------------------------------------------------------------- files, vnodes, eventfds

/// `file_t` (`sys/file.h`): only used through a pointer; the fields read are at the offsets
/// below.
pub enum file_t {}
/// `vnode_t` (`sys/vnode.h`): only used through a pointer.
pub enum vnode_t {}
/// `caller_context_t` (`sys/vnode.h`): always passed as NULL.
pub enum caller_context_t {}

/// **Private** (`sys/file.h`): `f_tlock` (a `kmutex_t`) is the first member of `file_t`; it
/// protects `f_count`.
pub const FILE_F_TLOCK_OFFSET: usize = 0;
/// **Private** (`sys/file.h`): `f_vnode` follows `f_tlock` (8), `f_flag`, `f_flag2` (2 each),
/// aligned to 8.
pub const FILE_F_VNODE_OFFSET: usize = 16;
/// **Private** (`sys/file.h`): `f_count` (an `int`) follows `f_vnode`, `f_offset`, `f_cred`,
/// `f_audit_data` (8 each).
pub const FILE_F_COUNT_OFFSET: usize = 48;
/// `v_type` of `vnode_t`: after `v_lock` (8), `v_flag`, `v_count` (4 each), `v_data`,
/// `v_vfsp`, `v_stream` (8 each). `sys/vnode.h` lists `v_type` and `v_rdev` among the fields
/// "considered public" that any consumer may read.
pub const VNODE_V_TYPE_OFFSET: usize = 40;
/// `v_rdev` (a `dev_t`) of `vnode_t`, after `v_type` (an enum, 4) aligned to 8.
pub const VNODE_V_RDEV_OFFSET: usize = 48;
/// `VCHR` of `enum vtype` (`VNON`, `VREG`, `VDIR`, `VBLK`, `VCHR`, ...).
pub const VCHR: c_int = 4;
/// `FNDELAY`, `FNONBLOCK` (`sys/file.h`): a write must not wait.
pub const FNDELAY: u16 = 0x04;
pub const FNONBLOCK: u16 = 0x80;
/// `DDI_MAJOR_T_NONE`: ddi_name_to_major(9F) found no such driver.
pub const DDI_MAJOR_T_NONE: major_t = u32::MAX;

/// `iovec_t` (`sys/uio.h`, LP64).
#[repr(C)]
pub struct iovec_t {
    pub iov_base: *mut c_char,
    pub iov_len: usize,
}

/// `uio_seg_t`: `UIO_SYSSPACE`, the buffer is kernel memory.
pub const UIO_SYSSPACE: c_int = 1;
/// `UIO_COPY_DEFAULT` (`uio_extflg`).
pub const UIO_COPY_DEFAULT: u16 = 0;

/// `uio_t` (`sys/uio.h`, LP64; `lloff_t` is an 8-byte union).
#[repr(C)]
pub struct uio_t {
    pub uio_iov: *mut iovec_t,
    pub uio_iovcnt: c_int,
    pub uio_loffset: offset_t,
    pub uio_segflg: c_int,
    pub uio_fmode: u16,
    pub uio_extflg: u16,
    pub uio_llimit: offset_t,
    pub uio_resid: isize,
}

unsafe extern "C" {
    // File descriptors (`sys/file.h`; kernel-private but exported by genunix).
    /// The calling process's open file `fd`, held against close until `releasef(fd)`; NULL
    /// if `fd` is not open.
    pub fn getf(fd: c_int) -> *mut file_t;
    /// Ends a `getf(fd)`.
    pub fn releasef(fd: c_int);
    /// Drops one reference (`f_count`) of a file; the last one closes it (`VOP_CLOSE`, which
    /// for a device runs its close(9E)) and releases the vnode. May block.
    pub fn closef(fp: *mut file_t) -> c_int;
    /// `VOP_WRITE` (`sys/vnode.h`): for a character device, specfs passes the uio to the
    /// driver's write(9E), which reads `uio_fmode` for `FNONBLOCK`.
    pub fn fop_write(
        vp: *mut vnode_t,
        uiop: *mut uio_t,
        ioflag: c_int,
        cr: *mut cred_t,
        ct: *mut caller_context_t,
    ) -> c_int;
    /// ddi_name_to_major(9F).
    pub fn ddi_name_to_major(name: *const c_char) -> major_t;
    /// The kernel's credentials (`sys/cred.h`).
    pub static kcred: *mut cred_t;
}

// ---------------------------------------------------------------- locked user memory

/// `DDI_UMEMLOCK_READ`, `DDI_UMEMLOCK_WRITE` (ddi_umem_lock(9F), `sys/ddidevmap.h`).
pub const DDI_UMEMLOCK_READ: c_int = 0x01;
pub const DDI_UMEMLOCK_WRITE: c_int = 0x02;
/// `PFN_INVALID` (`sys/types.h`): `(pfn_t)-1`.
pub const PFN_INVALID: c_ulong = c_ulong::MAX;
/// **Private** (`sys/ddidevmap.h`): in `struct ddi_umem_cookie`, `pparray` (the shadow page
/// list `as_pagelock` filled, or NULL when the segment has none and the range was
/// soft-locked instead) follows `size`, `cvaddr` (8 each), `lock` (a `kmutex_t`, 8) and
/// `type` (a `uint_t`, 4), aligned to 8.
pub const UMEM_COOKIE_PPARRAY_OFFSET: usize = 32;
/// **Private** (`sys/ddidevmap.h`): `asp`, the locked process's address space, after
/// `pparray` and `procp` (8 each).
pub const UMEM_COOKIE_ASP_OFFSET: usize = 48;
/// `page_t`: only used through a pointer.
pub enum page_t {}

unsafe extern "C" {
    /// ddi_umem_lock(9F): locks the calling process's pages `[addr, addr + len)` (page
    /// aligned) for reading and/or writing (`as_pagelock`, faulting them in), or fails
    /// (`EFAULT` for an unmapped or inaccessible range).
    pub fn ddi_umem_lock(
        addr: *mut c_char,
        len: usize,
        flags: c_int,
        cookie: *mut ddi_umem_cookie_t,
    ) -> c_int;
    /// ddi_umem_unlock(9F): unlocks them (the kernel finishes it on its unlock thread).
    pub fn ddi_umem_unlock(cookie: ddi_umem_cookie_t);
    /// **Private** (`vm/page.h`, exported): a page's frame number.
    pub fn page_pptonum(pp: *mut page_t) -> c_ulong;
}

// ---------------------------------------------------------------- signal masks

/// `SIG_BLOCK`, `SIG_UNBLOCK` (`sys/signal.h`).
pub const SIG_BLOCK: c_int = 1;
pub const SIG_UNBLOCK: c_int = 2;

unsafe extern "C" {
    /// **Private** (the `lwp_sigmask` system call, `uts/common/syscall/sigprocmask.c`,
    /// exported by genunix): changes the calling thread's held signals (`t_hold`, three
    /// 32-bit words: signals 1-32, 33-64, 65-96) by `how` with the given words (SIGKILL and
    /// SIGSTOP are never held), and returns the first two words of the previous mask as an
    /// `rval_t` (word 0 in the low 32 bits on amd64).
    pub fn lwp_sigmask(
        how: c_int,
        bits0: c_uint,
        bits1: c_uint,
        bits2: c_uint,
        bits3: c_uint,
    ) -> i64;
}

/// **Private** (`vm/as.h`): offset of `a_hat` in `struct as`: after `a_contents` (a
/// `kmutex_t`, 8), `a_flags`, `a_vbits` (1 each) and `a_cv` (a `kcondvar_t`, 2), aligned to 8.
pub const AS_A_HAT_OFFSET: usize = 16;

const _: () = assert!(size_of::<cb_ops>() == 136);
const _: () = assert!(size_of::<dev_ops>() == 88);
const _: () = assert!(size_of::<modldrv>() == 24);
const _: () = assert!(size_of::<modlinkage>() == 64);
const _: () = assert!(size_of::<devmap_callback_ctl>() == 40);
const _: () = assert!(size_of::<kmutex_t>() == 8);
const _: () = assert!(size_of::<kcondvar_t>() == 2);
const _: () = assert!(size_of::<iovec_t>() == 16);
const _: () = assert!(size_of::<uio_t>() == 48);
const _: () = assert!(core::mem::offset_of!(uio_t, uio_fmode) == 28);
const _: () = assert!(core::mem::offset_of!(uio_t, uio_resid) == 40);

// ---------------------------------------------------------------- errno

/// illumos error numbers (`sys/errno.h`) where they differ from Linux's or are used here.
pub mod errno {
    use core::ffi::c_int;
    pub const ENXIO: c_int = 6;
    pub const EBADF: c_int = 9;
    pub const EAGAIN: c_int = 11;
    pub const ENOMEM: c_int = 12;
    pub const EFAULT: c_int = 14;
    pub const EBUSY: c_int = 16;
    pub const ENODEV: c_int = 19;
    pub const EINVAL: c_int = 22;
    pub const ENOTTY: c_int = 25;
    pub const EDEADLK: c_int = 45;
    pub const ENOTSUP: c_int = 48;
    pub const ENAMETOOLONG: c_int = 78;
    pub const EOVERFLOW: c_int = 79;
    pub const ENOSYS: c_int = 89;
    pub const EOPNOTSUPP: c_int = 122;
    pub const ENOBUFS: c_int = 132;
    pub const ETIMEDOUT: c_int = 145;
}

/// A Linux error number (as the core returns it) in illumos numbering: 1 to 34 are shared
/// (both inherit them from Version 7 / SVR4), the others KVM returns are mapped by name,
/// anything else becomes `EINVAL`.
pub fn errno_from_linux(linux: i32) -> c_int {
    match linux {
        1..=34 => linux,
        35 => errno::EDEADLK,
        36 => errno::ENAMETOOLONG,
        38 => errno::ENOSYS,
        75 => errno::EOVERFLOW,
        95 => errno::EOPNOTSUPP,
        105 => errno::ENOBUFS,
        110 => errno::ETIMEDOUT,
        _ => errno::EINVAL,
    }
}
