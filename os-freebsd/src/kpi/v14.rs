//! FreeBSD 14.x amd64: the kernel functions, variables and structure layouts `kvmport.ko` uses.
//!
//! Where each fact comes from (FreeBSD stable/14 `sys/`; *verify* marks a fact that was taken
//! from memory or a secondary source and should be checked against the target release's
//! headers before a real `kldload`):
//! - `sys/module.h`: `mod_metadata`, `moduledata`, `mod_depend`, `mod_version`, `MDT_*`, `MOD_*`.
//! - `sys/kernel.h`: `sysinit` (14.x has the `STAILQ_ENTRY next` field: 32 bytes), `SI_SUB_*`,
//!   `SI_ORDER_*`.
//! - `sys/malloc.h`: `malloc_type` (112 bytes; `M_VERSION` 2020110501), `M_NOWAIT`, `M_WAITOK`,
//!   `M_ZERO`; `malloc_init`/`malloc_uninit` are the `MALLOC_DEFINE` sysinit functions.
//! - `sys/conf.h`: `cdevsw` (184 bytes, `D_VERSION_04` = 0x5c48c353), `make_dev_args` (64 bytes),
//!   `MAKEDEV_*`, the `d_open`/`d_close`/`d_ioctl` signatures, `devfs_{set,get}_cdevpriv`.
//! - `sys/file.h`: `struct file` (the first fields: `f_flag`, `f_count`, `f_data`, `f_ops`),
//!   `struct fileops` (18 function pointers then `fo_flags`), the `fo_*_t` signatures, `fdrop`
//!   (an inline `refcount_release(&fp->f_count)` that calls `_fdrop` on the last reference),
//!   `DTYPE_*`, `DFLAG_PASSABLE`; `sys/filedesc.h`: `falloc_noinstall`, `finstall`, `fget`.
//! - `sys/_lock.h`, `sys/_mutex.h`, `sys/_sx.h`: `struct mtx` and `struct sx` are 32 bytes
//!   (`lock_object` of 24 bytes, then the lock word). Modules are built with `LOCK_DEBUG`, so
//!   the out-of-line `__mtx_lock_flags`/`_sx_xlock` entry points with file/line are used;
//!   the mutex functions take `&m->mtx_lock` (offset 24), the sx functions the `struct sx`.
//! - `sys/systm.h`: `critical_enter()`/`critical_exit()` are `critical_enter_KBI()`/
//!   `critical_exit_KBI()` for modules; `copyin`, `copyout`, `printf`, `panic`, `sig_intr`
//!   (*verify*: `kern_sig.c`), `should_yield`, `maybe_yield`.
//! - `sys/pcpu.h` (stable/14): `%gs:0` is `pc_curthread`; `pc_cpuid` is at offset 60 (after
//!   five pointers, `pc_sched`, `pc_switchtime` and `pc_switchticks`).
//! - `sys/proc.h`: `td_proc` is the second pointer of `struct thread` (offset 8); the
//!   `td_retval` offset derived from the field order and the KBI asserts `kern_thread.c`
//!   keeps for stable branches (see [`TD_RETVAL_OFFSET`]). The process's address space comes
//!   from `vmspace_acquire_ref`/`vmspace_free` (`vm/vm_extern.h`), whose `struct vmspace`
//!   starts with its `struct vm_map` (`vm/vm_map.h`).
//! - `sys/smp.h`: `smp_rendezvous`, `mp_maxid`, `mp_ncpus`; amd64 `ipi_cpu` with `IPI_AST` = 0
//!   (`x86/include/apicvar.h`: the first bitmap IPI).
//! - `sys/sglist.h`, `vm/vm_pager.h`, `vm/vm_extern.h`: `sglist_alloc`, `sglist_append_phys`,
//!   `sglist_free`, `vm_pager_allocate(OBJT_SG, ...)` (`vm/vm.h`: `OBJT_SG` = 6),
//!   `vm_mmap_object`, `vm_object_deallocate`, `vm_fault_quick_hold_pages`,
//!   `vm_page_unhold_pages`; `kmem_malloc`/`kmem_free` take and return `vm_offset_t` in 14
//!   (declared here as pointers: the same register); `vm/vm_page.h`: `phys_addr` at offset 48 of `struct vm_page`
//!   (after the 16-byte `plinks` union, `listq`, `object`, `pindex`; read in an older release,
//!   *verify* for 14); `vm/vm_extern.h`: `kmem_malloc`/`kmem_free`; amd64 `pmap_kextract`.
//! - `sys/eventfd.h`: `eventfd_get(struct file *)`, `eventfd_put`, `eventfd_signal` (the
//!   kernel eventfd interface LinuxKPI uses, 14.x; *verify*).
//! - `sys/vnode.h`: `v_type` and `v_rdev` of `struct vnode` (see [`VNODE_V_RDEV_OFFSET`]).
//! - `sys/linker.h`: `linker_file_foreach(predicate, context)` (takes the kernel linker lock,
//!   so it is not called from module events) and `linker_file_lookup_symbol(file, name,
//!   deps)`.
//! - `compat/linux/linux_ioctl.h`: `struct linux_ioctl_handler { func, low, high }`,
//!   `linux_ioctl_register_handler`, `struct linux_ioctl_args { fd, cmd, arg }` (*verify*: the
//!   padding of `linux_ioctl_args` follows the linuxulator's generated `linux_proto.h`).
#![allow(
    non_camel_case_types,
    missing_docs,
    reason = "C names and one-line facts, documented in the module header"
)]

use core::ffi::{c_char, c_int, c_uint, c_ulong, c_void};

// ----------------------------------------------------------------- opaque kernel objects

/// `struct thread`.
pub enum thread {}
/// `struct cdev`.
pub enum cdev {}
/// `struct ucred`.
pub enum ucred {}
/// `struct vm_map`.
pub enum vm_map {}
/// `struct vm_object`.
pub enum vm_object {}
/// `struct vm_page`.
pub enum vm_page {}
/// `struct sglist`.
pub enum sglist {}
/// `struct eventfd`.
pub enum eventfd {}
/// `struct stat` (only written through [`STAT_SIZE`] and [`STAT_MODE_OFFSET`]).
pub enum stat {}
/// `struct knote`, `struct uio`, `struct kinfo_file`, `struct filedesc` (never touched).
pub enum opaque {}

// ----------------------------------------------------------------- sys/module.h

pub const MDT_DEPEND: c_int = 1;
pub const MDT_MODULE: c_int = 2;
pub const MDT_VERSION: c_int = 3;
pub const MDT_STRUCT_VERSION: c_int = 1;
pub const MOD_LOAD: c_int = 0;
pub const MOD_UNLOAD: c_int = 1;
pub const MOD_SHUTDOWN: c_int = 2;
pub const MOD_QUIESCE: c_int = 3;

pub type modeventhand_t = unsafe extern "C" fn(*mut c_void, c_int, *mut c_void) -> c_int;

#[repr(C)]
pub struct moduledata {
    pub name: *const c_char,
    pub evhand: Option<modeventhand_t>,
    pub priv_: *mut c_void,
}
#[repr(C)]
pub struct mod_depend {
    pub md_ver_minimum: c_int,
    pub md_ver_preferred: c_int,
    pub md_ver_maximum: c_int,
}
#[repr(C)]
pub struct mod_version {
    pub mv_version: c_int,
}
#[repr(C)]
pub struct mod_metadata {
    pub md_version: c_int,
    pub md_type: c_int,
    pub md_data: *const c_void,
    pub md_cval: *const c_char,
}

/// The `__FreeBSD_version` range this module line accepts (`MODULE_DEPEND(kernel, ...)`).
pub const FREEBSD_VERSION_MIN: c_int = 1_400_000;
pub const FREEBSD_VERSION_MAX: c_int = 1_499_999;

// ----------------------------------------------------------------- sys/kernel.h

pub const SI_SUB_KMEM: u32 = 0x180_0000;
pub const SI_SUB_DRIVERS: u32 = 0x310_0000;
pub const SI_ORDER_THIRD: u32 = 0x3;
pub const SI_ORDER_MIDDLE: u32 = 0x100_0000;
pub const SI_ORDER_ANY: u32 = 0xfff_ffff;

pub type sysinit_cfunc_t = unsafe extern "C" fn(*const c_void);

/// `struct sysinit` of 14.x: the kernel links entries through `next`, so it must be writable.
#[repr(C)]
pub struct sysinit {
    pub subsystem: u32,
    pub order: u32,
    pub next: *mut sysinit,
    pub func: sysinit_cfunc_t,
    pub udata: *const c_void,
}

// ----------------------------------------------------------------- sys/malloc.h

pub const M_NOWAIT: c_int = 0x0001;
pub const M_WAITOK: c_int = 0x0002;
pub const M_ZERO: c_int = 0x0100;
pub const M_VERSION: c_ulong = 2_020_110_501;

/// `struct malloc_type`: `ks_next`, `ks_version`, `ks_shortdesc`, then the kernel-private
/// `malloc_type_internal` (88 bytes), zeroed.
#[repr(C)]
pub struct malloc_type {
    pub ks_next: *mut malloc_type,
    pub ks_version: c_ulong,
    pub ks_shortdesc: *const c_char,
    pub ks_mti: [u64; 11],
}

// ----------------------------------------------------------------- sys/conf.h

pub const D_VERSION: c_int = 0x5c48_c353;
pub const MAKEDEV_WAITOK: c_int = 0x08;
pub const MAKEDEV_CHECKNAME: c_int = 0x20;
pub const UID_ROOT: u32 = 0;
pub const GID_WHEEL: u32 = 0;

pub type d_open_t = unsafe extern "C" fn(*mut cdev, c_int, c_int, *mut thread) -> c_int;
pub type d_ioctl_t =
    unsafe extern "C" fn(*mut cdev, c_ulong, *mut c_void, c_int, *mut thread) -> c_int;
pub type cdevpriv_dtr_t = unsafe extern "C" fn(*mut c_void);

#[repr(C)]
pub struct cdevsw {
    pub d_version: c_int,
    pub d_flags: c_uint,
    pub d_name: *const c_char,
    pub d_open: Option<d_open_t>,
    pub d_fdopen: *const c_void,
    pub d_close: Option<d_open_t>,
    pub d_read: *const c_void,
    pub d_write: *const c_void,
    pub d_ioctl: Option<d_ioctl_t>,
    pub d_poll: *const c_void,
    pub d_mmap: *const c_void,
    pub d_strategy: *const c_void,
    pub d_dump: *const c_void,
    pub d_kqfilter: *const c_void,
    pub d_purge: *const c_void,
    pub d_mmap_single: *const c_void,
    pub d_spare0: [i32; 3],
    pub d_spare1: [*mut c_void; 3],
    pub d_devs: *mut c_void,
    pub d_spare2: c_int,
    pub d_gianttrick: *mut c_void,
}

#[repr(C)]
pub struct make_dev_args {
    pub mda_size: usize,
    pub mda_flags: c_int,
    pub mda_devsw: *mut cdevsw,
    pub mda_cr: *mut ucred,
    pub mda_uid: u32,
    pub mda_gid: u32,
    pub mda_mode: c_int,
    pub mda_unit: c_int,
    pub mda_si_drv1: *mut c_void,
    pub mda_si_drv2: *mut c_void,
}

// ----------------------------------------------------------------- sys/file.h

/// Offset of `f_count` (a `volatile u_int`) in `struct file`.
pub const FILE_F_COUNT_OFFSET: usize = 4;
/// Offset of `f_data` in `struct file`.
pub const FILE_F_DATA_OFFSET: usize = 8;
/// Offset of `f_ops` in `struct file`.
pub const FILE_F_OPS_OFFSET: usize = 16;
/// Offset of `f_vnode` in `struct file`.
pub const FILE_F_VNODE_OFFSET: usize = 24;
/// Offset of `f_type` (a `short`) in `struct file`.
pub const FILE_F_TYPE_OFFSET: usize = 40;
/// `DTYPE_VNODE`: a file backed by a vnode (a devfs node among others).
pub const DTYPE_VNODE: i16 = 1;
/// `sys/vnode.h` (stable/14): `v_type` is an 8-bit bit-field at the start of `struct vnode`;
/// `VCHR` in `enum vtype`.
pub const VCHR: u8 = 4;
/// Offset of the type-specific union (`v_rdev` for `VCHR`) in `struct vnode`: after
/// `v_type:8`, `v_irflag`, `v_seqc`, `v_nchash`, `v_op`, `v_data`, `v_mount` and the
/// 16-byte `v_nmntvnodes`.
pub const VNODE_V_RDEV_OFFSET: usize = 56;

pub const FREAD: c_uint = 0x0001;
pub const FWRITE: c_uint = 0x0002;
pub const O_CLOEXEC: c_int = 0x0010_0000;
pub const DTYPE_DEV: i16 = 11;
pub const DFLAG_PASSABLE: c_int = 0x01;

/// `struct file`, through its first fields only.
#[repr(C)]
pub struct file {
    pub f_flag: c_uint,
    pub f_count: c_uint,
    pub f_data: *mut c_void,
    pub f_ops: *const fileops,
}

pub type fo_rdwr_t =
    unsafe extern "C" fn(*mut file, *mut opaque, *mut ucred, c_int, *mut thread) -> c_int;
pub type fo_truncate_t = unsafe extern "C" fn(*mut file, i64, *mut ucred, *mut thread) -> c_int;
pub type fo_ioctl_t =
    unsafe extern "C" fn(*mut file, c_ulong, *mut c_void, *mut ucred, *mut thread) -> c_int;
pub type fo_poll_t = unsafe extern "C" fn(*mut file, c_int, *mut ucred, *mut thread) -> c_int;
pub type fo_kqfilter_t = unsafe extern "C" fn(*mut file, *mut opaque) -> c_int;
pub type fo_stat_t = unsafe extern "C" fn(*mut file, *mut stat, *mut ucred, *mut thread) -> c_int;
pub type fo_close_t = unsafe extern "C" fn(*mut file, *mut thread) -> c_int;
pub type fo_chmod_t = unsafe extern "C" fn(*mut file, u16, *mut ucred, *mut thread) -> c_int;
pub type fo_chown_t = unsafe extern "C" fn(*mut file, u32, u32, *mut ucred, *mut thread) -> c_int;
pub type fo_sendfile_t = unsafe extern "C" fn(
    *mut file,
    c_int,
    *mut opaque,
    *mut opaque,
    i64,
    usize,
    *mut i64,
    c_int,
    *mut thread,
) -> c_int;
pub type fo_seek_t = unsafe extern "C" fn(*mut file, i64, c_int, *mut thread) -> c_int;
pub type fo_fill_kinfo_t = unsafe extern "C" fn(*mut file, *mut opaque, *mut opaque) -> c_int;
pub type fo_mmap_t = unsafe extern "C" fn(
    *mut file,
    *mut vm_map,
    *mut usize,
    usize,
    u8,
    u8,
    c_int,
    i64,
    *mut thread,
) -> c_int;
pub type fo_aio_queue_t = unsafe extern "C" fn(*mut file, *mut opaque) -> c_int;

/// `struct fileops` (14.x).
#[repr(C)]
pub struct fileops {
    pub fo_read: Option<fo_rdwr_t>,
    pub fo_write: Option<fo_rdwr_t>,
    pub fo_truncate: Option<fo_truncate_t>,
    pub fo_ioctl: Option<fo_ioctl_t>,
    pub fo_poll: Option<fo_poll_t>,
    pub fo_kqfilter: Option<fo_kqfilter_t>,
    pub fo_stat: Option<fo_stat_t>,
    pub fo_close: Option<fo_close_t>,
    pub fo_chmod: Option<fo_chmod_t>,
    pub fo_chown: Option<fo_chown_t>,
    pub fo_sendfile: Option<fo_sendfile_t>,
    pub fo_seek: Option<fo_seek_t>,
    pub fo_fill_kinfo: Option<fo_fill_kinfo_t>,
    pub fo_mmap: Option<fo_mmap_t>,
    pub fo_aio_queue: Option<fo_aio_queue_t>,
    pub fo_add_seals: *const c_void,
    pub fo_get_seals: *const c_void,
    pub fo_fallocate: *const c_void,
    pub fo_flags: c_int,
}

/// `sizeof(struct stat)` on amd64 since FreeBSD 12 (64-bit inodes) (*verify*).
pub const STAT_SIZE: usize = 224;
/// Offset of `st_mode` (`mode_t`, 16 bits): after `st_dev`, `st_ino`, `st_nlink` (*verify*).
pub const STAT_MODE_OFFSET: usize = 24;

// ----------------------------------------------------------------- errno, ioctl, poll

pub const EPERM: c_int = 1;
pub const ENOENT: c_int = 2;
pub const EFAULT: c_int = 14;
pub const EBADF: c_int = 9;
pub const EBUSY: c_int = 16;
pub const ENODEV: c_int = 19;
pub const EINVAL: c_int = 22;
pub const ENOTTY: c_int = 25;
pub const ESPIPE: c_int = 29;
pub const ENOMEM: c_int = 12;
/// `ENOIOCTL`: "not mine" from a Linux ioctl handler (`sys/errno.h`, kernel-only, -3).
pub const ENOIOCTL: c_int = -3;
pub const FIONBIO: c_ulong = 0x8004_667e;
pub const FIOASYNC: c_ulong = 0x8004_667d;
pub const POLLIN: c_int = 0x0001;
pub const POLLOUT: c_int = 0x0004;
pub const POLLRDNORM: c_int = 0x0040;
pub const POLLWRNORM: c_int = POLLOUT;

// ----------------------------------------------------------------- locks

pub const MTX_DEF: c_int = 0x0;
pub const MTX_SPIN: c_int = 0x1;
/// Offset of `mtx_lock` in `struct mtx`: the mutex functions take its address.
pub const MTX_LOCK_OFFSET: usize = 24;
/// `sizeof(struct mtx)` and `sizeof(struct sx)`.
pub const LOCK_SIZE: usize = 32;
pub const PCATCH: c_int = 0x100;
/// `C_HARDCLOCK` (`sys/callout.h`).
pub const C_HARDCLOCK: c_int = 0x0100;

// ----------------------------------------------------------------- pcpu, threads, SMP

/// `%gs` offset of `pc_curthread`.
pub const PC_CURTHREAD: usize = 0;
/// `%gs` offset of `pc_cpuid`.
pub const PC_CPUID: usize = 60;
/// Offset of `td_proc` in `struct thread`.
pub const TD_PROC_OFFSET: usize = 8;
/// `IPI_AST` (amd64 bitmap IPI 0).
pub const IPI_AST: c_uint = 0;
/// `SIG_SETMASK` (`sys/signal.h`).
pub const SIG_SETMASK: c_int = 3;

/// `sigset_t`: 128 signal bits.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct sigset_t {
    pub bits: [u32; 4],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct timespec {
    pub tv_sec: i64,
    pub tv_nsec: i64,
}

// ----------------------------------------------------------------- VM

pub const OBJT_SG: u8 = 6;
/// Offset of `sg_refs` (`u_int`, updated by `refcount(9)`) in the public `struct sglist`
/// (`sys/sglist.h`: `sg_segs`, `sg_refs`, `sg_nseg`, `sg_maxseg`).
pub const SGLIST_REFS_OFFSET: usize = 8;
pub const VM_PROT_READ: u8 = 0x01;
pub const VM_PROT_WRITE: u8 = 0x02;
/// Offset of `phys_addr` in `struct vm_page` (*verify*).
pub const VM_PAGE_PHYS_ADDR_OFFSET: usize = 48;
/// `VM_MAXUSER_ADDRESS` with 4-level paging (`amd64/include/vmparam.h`).
pub const VM_MAXUSER_ADDRESS: u64 = 0x0000_8000_0000_0000;

// ----------------------------------------------------------------- linuxulator

/// `struct linux_ioctl_args` as the handler receives it: `fd`, `cmd`, `arg`, each padded to
/// a register (the generated `linux_proto.h` layout) (*verify*).
#[repr(C)]
pub struct linux_ioctl_args {
    pub fd: c_int,
    pub _pad0: c_int,
    pub cmd: c_uint,
    pub _pad1: c_int,
    pub arg: c_ulong,
}
pub type linux_ioctl_function_t = unsafe extern "C" fn(*mut thread, *mut linux_ioctl_args) -> c_int;
#[repr(C)]
pub struct linux_ioctl_handler {
    pub func: Option<linux_ioctl_function_t>,
    pub low: c_int,
    pub high: c_int,
}
/// Offset of `td_retval[0]` (`td_uretoff`) in `struct thread`: derived from stable/14
/// `sys/sys/proc.h`, anchored on `kern_thread.c`'s KBI assert `td_frame` == 0x4a0 (before it:
/// `td_slpcallout`, a 64-byte `struct callout`, and `td_cowgen` with the LP64 hole).
pub const TD_RETVAL_OFFSET: usize = 0x448;

const _: () = {
    assert!(size_of::<mod_metadata>() == 24);
    assert!(size_of::<moduledata>() == 24);
    assert!(size_of::<mod_depend>() == 12);
    assert!(size_of::<sysinit>() == 32);
    assert!(size_of::<malloc_type>() == 112);
    assert!(size_of::<cdevsw>() == 184);
    assert!(size_of::<make_dev_args>() == 64);
    assert!(size_of::<fileops>() == 152);
    assert!(core::mem::offset_of!(file, f_count) == FILE_F_COUNT_OFFSET);
    assert!(core::mem::offset_of!(file, f_data) == FILE_F_DATA_OFFSET);
    assert!(core::mem::offset_of!(file, f_ops) == FILE_F_OPS_OFFSET);
    assert!(size_of::<linux_ioctl_args>() == 24);
};

unsafe extern "C" {
    // Module registration (`kern_module.c`) and memory (`kern_malloc.c`).
    pub fn module_register_init(data: *const c_void);
    pub fn malloc_init(data: *const c_void);
    pub fn malloc_uninit(data: *const c_void);
    pub fn malloc(size: usize, ty: *mut malloc_type, flags: c_int) -> *mut c_void;
    pub fn free(p: *mut c_void, ty: *mut malloc_type);
    pub fn kmem_malloc(size: usize, flags: c_int) -> *mut c_void;
    pub fn kmem_free(p: *mut c_void, size: usize);
    pub fn pmap_kextract(va: usize) -> u64;

    // Devices (`kern_conf.c`, `devfs_vnops.c`).
    pub fn make_dev_args_init_impl(args: *mut make_dev_args, sz: usize);
    pub fn make_dev_s(
        args: *mut make_dev_args,
        cdev: *mut *mut cdev,
        fmt: *const c_char,
        ...
    ) -> c_int;
    pub fn destroy_dev(dev: *mut cdev);
    pub fn devfs_set_cdevpriv(p: *mut c_void, dtr: cdevpriv_dtr_t) -> c_int;
    pub fn devfs_get_cdevpriv(p: *mut *mut c_void) -> c_int;

    // Files (`kern_descrip.c`).
    pub fn falloc_noinstall(td: *mut thread, fp: *mut *mut file) -> c_int;
    pub fn finit(fp: *mut file, flag: c_uint, ty: i16, data: *mut c_void, ops: *const fileops);
    pub fn finstall(
        td: *mut thread,
        fp: *mut file,
        fd: *mut c_int,
        flags: c_int,
        fcaps: *mut c_void,
    ) -> c_int;
    pub fn _fdrop(fp: *mut file, td: *mut thread) -> c_int;
    pub fn fget(td: *mut thread, fd: c_int, rights: *const c_void, fp: *mut *mut file) -> c_int;
    pub static cap_no_rights: [u64; 2];

    // User memory (`amd64/support.S`).
    pub fn copyin(uaddr: *const c_void, kaddr: *mut c_void, len: usize) -> c_int;
    pub fn copyout(kaddr: *const c_void, uaddr: *mut c_void, len: usize) -> c_int;

    // Locks and sleeping (`kern_mutex.c`, `kern_sx.c`, `kern_synch.c`).
    pub fn _mtx_init(c: *mut usize, name: *const c_char, ty: *const c_char, opts: c_int);
    pub fn _mtx_destroy(c: *mut usize);
    pub fn __mtx_lock_flags(c: *mut usize, opts: c_int, file: *const c_char, line: c_int);
    pub fn __mtx_unlock_flags(c: *mut usize, opts: c_int, file: *const c_char, line: c_int);
    pub fn __mtx_lock_spin_flags(c: *mut usize, opts: c_int, file: *const c_char, line: c_int);
    pub fn __mtx_unlock_spin_flags(c: *mut usize, opts: c_int, file: *const c_char, line: c_int);
    pub fn sx_init_flags(sx: *mut c_void, name: *const c_char, opts: c_int);
    pub fn sx_destroy(sx: *mut c_void);
    pub fn _sx_xlock(sx: *mut c_void, opts: c_int, file: *const c_char, line: c_int) -> c_int;
    pub fn _sx_xunlock(sx: *mut c_void, file: *const c_char, line: c_int);
    pub fn _sleep(
        chan: *const c_void,
        lock: *mut c_void,
        pri: c_int,
        wmesg: *const c_char,
        sbt: i64,
        pr: i64,
        flags: c_int,
    ) -> c_int;
    pub fn wakeup(chan: *const c_void);

    // CPUs and scheduling (`subr_smp.c`, `amd64/mp_machdep.c`, `kern_switch.c`).
    pub fn smp_rendezvous(
        setup: Option<unsafe extern "C" fn(*mut c_void)>,
        action: Option<unsafe extern "C" fn(*mut c_void)>,
        teardown: Option<unsafe extern "C" fn(*mut c_void)>,
        arg: *mut c_void,
    );
    pub fn ipi_cpu(cpu: c_int, ipi: c_uint);
    pub static mp_maxid: c_uint;
    pub static tsc_freq: u64;
    /// `fpu_kern_enter(9)` (`machine/fpu.h`): with `FPU_KERN_NOCTX` and a null context the
    /// thread's FPU state is saved and the FPU is the caller's, inside a critical section.
    pub fn fpu_kern_enter(td: *mut thread, ctx: *mut c_void, flags: c_uint) -> c_int;
    /// `fpu_kern_leave(9)`.
    pub fn fpu_kern_leave(td: *mut thread, ctx: *mut c_void) -> c_int;
    pub fn critical_enter_KBI();
    pub fn critical_exit_KBI();
    pub fn sig_intr() -> c_int;
    pub fn should_yield() -> c_int;
    pub fn maybe_yield();
    pub fn kern_sigprocmask(
        td: *mut thread,
        how: c_int,
        set: *mut sigset_t,
        oset: *mut sigset_t,
        flags: c_int,
    ) -> c_int;
    pub fn nanouptime(ts: *mut timespec);

    // VM (`vm_pager.c`, `vm_mmap.c`, `vm_object.c`, `vm_fault.c`, `vm_page.c`, `subr_sglist.c`).
    pub fn sglist_alloc(nsegs: c_int, mflags: c_int) -> *mut sglist;
    pub fn sglist_append_phys(sg: *mut sglist, pa: u64, len: usize) -> c_int;
    pub fn sglist_free(sg: *mut sglist);
    pub fn vm_pager_allocate(
        ty: u8,
        handle: *mut c_void,
        size: i64,
        prot: u8,
        off: i64,
        cred: *mut ucred,
    ) -> *mut vm_object;
    pub fn vm_object_deallocate(obj: *mut vm_object);
    pub fn vm_mmap_object(
        map: *mut vm_map,
        addr: *mut usize,
        size: usize,
        prot: u8,
        maxprot: u8,
        flags: c_int,
        obj: *mut vm_object,
        foff: i64,
        writecounted: c_int,
        td: *mut thread,
    ) -> c_int;
    pub fn vm_fault_quick_hold_pages(
        map: *mut vm_map,
        addr: usize,
        len: usize,
        prot: u8,
        ma: *mut *mut vm_page,
        max: c_int,
    ) -> c_int;
    pub fn vm_page_unhold_pages(ma: *mut *mut vm_page, count: c_int);
    pub fn vmspace_acquire_ref(p: *mut c_void) -> *mut c_void;
    pub fn vmspace_free(vm: *mut c_void);

    // eventfd (`sys_eventfd.c`).
    pub fn eventfd_get(fp: *mut file) -> *mut eventfd;
    pub fn eventfd_put(efd: *mut eventfd);
    pub fn eventfd_signal(efd: *mut eventfd);

    // The kernel linker (`kern_linker.c`).
    pub fn linker_file_foreach(
        pred: unsafe extern "C" fn(*mut c_void, *mut c_void) -> c_int,
        ctx: *mut c_void,
    ) -> c_int;
    pub fn linker_file_lookup_symbol(
        file: *mut c_void,
        name: *const c_char,
        deps: c_int,
    ) -> *mut c_void;

    // Console.
    pub fn printf(fmt: *const c_char, ...) -> c_int;
    pub fn panic(fmt: *const c_char, ...) -> !;
}

/// `FPU_KERN_NOCTX` (`sys/amd64/include/fpu.h`): no saved context; valid only with a null
/// `struct fpu_kern_ctx *`.
pub const FPU_KERN_NOCTX: c_uint = 0x0004;
