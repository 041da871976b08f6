//! [`IllumosOs`]: the `Os` port over illumos DDI services (and the few kernel-private ones
//! listed in [`crate::ddi`]).

use core::cell::UnsafeCell;
use core::ffi::{c_int, c_void};
use core::fmt::{self, Write};
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use kvmport_core::os::{
    EventFd, HeldPage, Lock, LogLevel, Os, PAGE_SIZE, Page, SigMask, UserAddr, WaitQueue,
};
use kvmport_core::{Errno, KResult};

use crate::ddi;

/// Kernel pages the module owns (for the leak report at unload).
static LIVE_PAGES: AtomicUsize = AtomicUsize::new(0);
/// User pages the module holds locked (for the leak report at unload).
static HELD_PAGES: AtomicUsize = AtomicUsize::new(0);

/// Kernel pages not yet released.
pub fn live_pages() -> usize {
    LIVE_PAGES.load(Ordering::Relaxed)
}

/// Locked user pages not yet released.
pub fn held_pages() -> usize {
    HELD_PAGES.load(Ordering::Relaxed)
}

/// The illumos `Os`. Stateless: every service is a kernel function.
#[derive(Debug, Default)]
pub struct IllumosOs;

/// The current thread (`curthread`, through the kernel's `threadp()`).
pub fn curthread() -> *mut ddi::kthread_t {
    // SAFETY: returns the running thread; no side effect.
    unsafe { ddi::threadp() }
}

fn curcpu() -> u32 {
    // SAFETY: `curcpup()` is this CPU's `struct cpu`, whose first member is `cpu_id`; callers
    // that need a stable answer have preemption disabled (the Os contract).
    let id = unsafe {
        ddi::curcpup()
            .cast::<u8>()
            .add(ddi::CPU_ID_OFFSET)
            .cast::<i32>()
            .read()
    };
    u32::try_from(id).unwrap_or(0)
}

// ---------------------------------------------------------------- the ioctl mode

/// The `mode` of each ioctl in progress, by thread: `ddi_copyin`/`ddi_copyout` need it
/// (`FKIOCTL`: the argument is a kernel address), and the core's copies do not carry it.
pub mod mode {
    use super::*;

    const SLOTS: usize = 64;
    /// (thread, mode) pairs; thread 0 is a free slot.
    static SLOTS_THREAD: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
    static SLOTS_MODE: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];

    /// Records `mode` for the calling thread until the guard drops; `None` if every slot is
    /// taken (the ioctl then fails with `EAGAIN`).
    pub fn enter(mode: c_int) -> Option<ModeGuard> {
        let me = curthread() as usize;
        for (i, t) in SLOTS_THREAD.iter().enumerate() {
            if t.compare_exchange(0, me, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                if let Some(m) = SLOTS_MODE.get(i) {
                    m.store(mode, Ordering::Release);
                }
                return Some(ModeGuard(i));
            }
        }
        None
    }

    /// The calling thread's ioctl mode (0: a user address, native data model).
    pub fn current() -> c_int {
        let me = curthread() as usize;
        SLOTS_THREAD
            .iter()
            .zip(SLOTS_MODE.iter())
            .find(|(t, _)| t.load(Ordering::Acquire) == me)
            .map_or(0, |(_, m)| m.load(Ordering::Acquire))
    }

    /// Frees the slot.
    pub struct ModeGuard(usize);

    impl Drop for ModeGuard {
        fn drop(&mut self) {
            if let Some(t) = SLOTS_THREAD.get(self.0) {
                t.store(0, Ordering::Release);
            }
        }
    }
}

// ---------------------------------------------------------------- locks

/// Which kernel lock a [`KLock`] wraps: an adaptive mutex, or a spin mutex (mutex_init(9F)
/// with an interrupt priority above `LOCK_LEVEL`).
pub trait LockKind: Send + Sync + 'static {
    /// The `arg` of `mutex_init`.
    const ARG: usize;
}

/// An adaptive mutex: the holder may sleep (copyin, allocation).
pub struct AdaptiveKind;
/// A spin mutex at `DISP_LEVEL`.
pub struct SpinKind;

impl LockKind for AdaptiveKind {
    const ARG: usize = 0;
}
impl LockKind for SpinKind {
    const ARG: usize = ddi::DISP_LEVEL;
}

fn kzalloc<T>() -> KResult<NonNull<T>> {
    // SAFETY: a non-zero-sized layout.
    let p = unsafe { alloc::alloc::alloc_zeroed(core::alloc::Layout::new::<T>()) };
    NonNull::new(p.cast::<T>()).ok_or(Errno::ENOMEM)
}

/// # Safety
/// `p` came from `kzalloc::<T>` and is not used again.
unsafe fn kfree<T>(p: NonNull<T>) {
    // SAFETY: allocated with this layout (caller).
    unsafe { alloc::alloc::dealloc(p.as_ptr().cast(), core::alloc::Layout::new::<T>()) }
}

/// A value behind a `kmutex_t` allocated out of line (a kernel mutex must not move).
///
/// # Invariants
/// `raw` is an initialised mutex owned by this value; `value` is only accessed while it is
/// held.
pub struct KLock<T, K: LockKind> {
    raw: NonNull<ddi::kmutex_t>,
    value: UnsafeCell<T>,
    _kind: core::marker::PhantomData<K>,
}

// SAFETY: the mutex serialises access to `value`.
unsafe impl<T: Send, K: LockKind> Send for KLock<T, K> {}
// SAFETY: as above.
unsafe impl<T: Send, K: LockKind> Sync for KLock<T, K> {}

/// The guard of a [`KLock`].
pub struct KGuard<'a, T, K: LockKind> {
    lock: &'a KLock<T, K>,
}

impl<T: Send, K: LockKind> Lock<T> for KLock<T, K> {
    type Guard<'a>
        = KGuard<'a, T, K>
    where
        Self: 'a;

    fn new(value: T) -> KResult<Self> {
        let raw = kzalloc::<ddi::kmutex_t>()?;
        // SAFETY: a zeroed kmutex_t that stays put until drop; MUTEX_DRIVER with an
        // interrupt priority (0: adaptive).
        unsafe {
            ddi::mutex_init(
                raw.as_ptr(),
                core::ptr::null(),
                ddi::MUTEX_DRIVER,
                K::ARG as *mut c_void,
            )
        };
        Ok(KLock {
            raw,
            value: UnsafeCell::new(value),
            _kind: core::marker::PhantomData,
        })
    }

    fn lock(&self) -> KGuard<'_, T, K> {
        // SAFETY: initialised (type invariant).
        unsafe { ddi::mutex_enter(self.raw.as_ptr()) };
        KGuard { lock: self }
    }
}

impl<T, K: LockKind> Drop for KLock<T, K> {
    fn drop(&mut self) {
        // SAFETY: no guard outlives the lock, so it is unheld; destroyed and freed once.
        unsafe {
            ddi::mutex_destroy(self.raw.as_ptr());
            kfree(self.raw);
        }
    }
}

impl<T, K: LockKind> Deref for KGuard<'_, T, K> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while the lock is held.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T, K: LockKind> DerefMut for KGuard<'_, T, K> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T, K: LockKind> Drop for KGuard<'_, T, K> {
    fn drop(&mut self) {
        // SAFETY: held by this thread while the guard exists.
        unsafe { ddi::mutex_exit(self.lock.raw.as_ptr()) };
    }
}

// ---------------------------------------------------------------- pages

/// A zeroed page from `ddi_umem_alloc`, freed on drop. Its cookie is what devmap maps into a
/// process (the vCPU's `kvm_run` and friends).
///
/// # Invariants
/// `va` is a page-aligned `PAGE_SIZE` allocation with `cookie`, owned by this value.
pub struct KPage {
    va: NonNull<u8>,
    cookie: ddi::ddi_umem_cookie_t,
}

// SAFETY: plain kernel memory; accessed only through volatile byte copies.
unsafe impl Send for KPage {}
// SAFETY: as above.
unsafe impl Sync for KPage {}

impl KPage {
    /// The `ddi_umem_cookie_t` for devmap_umem_setup(9F).
    pub fn cookie(&self) -> ddi::ddi_umem_cookie_t {
        self.cookie
    }
}

impl Page for KPage {
    fn pa(&self) -> u64 {
        // SAFETY: `kas.a_hat` is the kernel's hat; `va` is a mapped kernel address.
        let pfn = unsafe {
            let hat = (&raw const ddi::kas)
                .cast::<u8>()
                .add(ddi::AS_A_HAT_OFFSET)
                .cast::<*mut c_void>()
                .read();
            ddi::hat_getpfnum(hat, self.va.as_ptr().cast())
        };
        (pfn as u64) << 12
    }

    fn read(&self, off: usize, buf: &mut [u8]) -> bool {
        if off.checked_add(buf.len()).is_none_or(|end| end > PAGE_SIZE) {
            return false;
        }
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: `off + i < PAGE_SIZE`; volatile because user space may map the page.
            *b = unsafe { self.va.as_ptr().add(off + i).read_volatile() };
        }
        true
    }

    fn write(&self, off: usize, buf: &[u8]) -> bool {
        if off.checked_add(buf.len()).is_none_or(|end| end > PAGE_SIZE) {
            return false;
        }
        for (i, b) in buf.iter().enumerate() {
            // SAFETY: as in `read`.
            unsafe { self.va.as_ptr().add(off + i).write_volatile(*b) };
        }
        true
    }
}

impl Drop for KPage {
    fn drop(&mut self) {
        LIVE_PAGES.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: the cookie of our allocation, freed once (devmap mappings hold a vCPU
        // reference, so no mapping of the page outlives it).
        unsafe { ddi::ddi_umem_free(self.cookie) }
    }
}

/// A user page locked with ddi_umem_lock(9F) (unlocked on drop).
///
/// # Invariants
/// `cookie` is the live cookie of one locked page, unlocked once, in `drop`; `pa` is that
/// page's physical address, stable while it is locked.
pub struct KHeld {
    cookie: NonNull<c_void>,
    pa: u64,
    write: bool,
}

// SAFETY: a locked-memory cookie may be unlocked from any thread.
unsafe impl Send for KHeld {}
// SAFETY: immutable after creation.
unsafe impl Sync for KHeld {}

impl HeldPage for KHeld {
    fn pa(&self) -> u64 {
        self.pa
    }
    fn writable(&self) -> bool {
        self.write
    }
    /// Not yet: copying needs a kernel mapping of the frame (the kpm segment,
    /// `hat_kpm_pfn2va`), which the loader harness does not model; as on FreeBSD, MMIO and
    /// string I/O emulation then end the run with an emulation failure instead of touching
    /// guest memory.
    fn read(&self, _off: usize, _buf: &mut [u8]) -> bool {
        false
    }
    /// Not yet; see [`KHeld::read`].
    fn write(&self, _off: usize, _buf: &[u8]) -> bool {
        false
    }
}

impl Drop for KHeld {
    fn drop(&mut self) {
        HELD_PAGES.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: the cookie of our lock, unlocked once (type invariant).
        unsafe { ddi::ddi_umem_unlock(self.cookie.as_ptr()) }
    }
}

// ---------------------------------------------------------------- wait queues, eventfds

/// A condition variable with its mutex.
pub struct KWaitQueue {
    m: NonNull<ddi::kmutex_t>,
    cv: NonNull<ddi::kcondvar_t>,
}

// SAFETY: condvar(9F) and mutex(9F) are made for use from any thread.
unsafe impl Send for KWaitQueue {}
// SAFETY: as above.
unsafe impl Sync for KWaitQueue {}

impl WaitQueue for KWaitQueue {
    fn new() -> KResult<Self> {
        let m = kzalloc::<ddi::kmutex_t>()?;
        let cv = match kzalloc::<ddi::kcondvar_t>() {
            Ok(c) => c,
            Err(e) => {
                // SAFETY: ours, never initialised.
                unsafe { kfree(m) };
                return Err(e);
            }
        };
        // SAFETY: zeroed, out-of-line objects that stay put until drop.
        unsafe {
            ddi::mutex_init(
                m.as_ptr(),
                core::ptr::null(),
                ddi::MUTEX_DRIVER,
                core::ptr::null_mut(),
            );
            ddi::cv_init(
                cv.as_ptr(),
                core::ptr::null(),
                ddi::CV_DRIVER,
                core::ptr::null_mut(),
            );
        }
        Ok(KWaitQueue { m, cv })
    }

    fn wait_until(&self, done: &dyn Fn() -> bool) -> KResult<()> {
        // SAFETY: initialised; cv_wait_sig drops and retakes the mutex atomically and
        // returns 0 when a signal interrupted the wait.
        unsafe {
            ddi::mutex_enter(self.m.as_ptr());
            let mut r = Ok(());
            while !done() {
                if ddi::cv_wait_sig(self.cv.as_ptr(), self.m.as_ptr()) == 0 {
                    r = Err(Errno::EINTR);
                    break;
                }
            }
            ddi::mutex_exit(self.m.as_ptr());
            r
        }
    }

    fn wake_all(&self) {
        // SAFETY: taking the mutex orders the wakeup after a sleeper's check of `done`.
        unsafe {
            ddi::mutex_enter(self.m.as_ptr());
            ddi::cv_broadcast(self.cv.as_ptr());
            ddi::mutex_exit(self.m.as_ptr());
        }
    }
}

impl Drop for KWaitQueue {
    fn drop(&mut self) {
        // SAFETY: no sleeper remains (the owner is being dropped); destroyed and freed once.
        unsafe {
            ddi::cv_destroy(self.cv.as_ptr());
            ddi::mutex_destroy(self.m.as_ptr());
            kfree(self.cv);
            kfree(self.m);
        }
    }
}

/// Signals dropped because [`EventFd::signal`] was called with preemption disabled (the
/// core never does; see [`KEventFd`]).
static EVENTFD_SIGNALS_DROPPED: AtomicUsize = AtomicUsize::new(0);

/// Eventfd signals dropped so far (always 0 unless the core's calling context changes).
pub fn eventfd_signals_dropped() -> usize {
    EVENTFD_SIGNALS_DROPPED.load(Ordering::Relaxed)
}

/// Whether the calling thread has preemption disabled (`curthread->t_preempt != 0`).
fn preempt_disabled() -> bool {
    // SAFETY: `t_preempt` of the running thread (see `IllumosOs::preempt_disable`).
    unsafe {
        curthread()
            .cast::<u8>()
            .add(ddi::T_PREEMPT_OFFSET)
            .read_volatile()
            != 0
    }
}

/// An eventfd: a held open file of illumos's eventfd(3C) device. eventfd(3C) opens
/// `/dev/eventfd`, a character driver that clones a minor per eventfd; a write(9E) of 8
/// bytes adds their value to the counter and wakes readers and pollers.
///
/// The registration holds a reference on the **file** (`f_count`), not only on the vnode:
/// the device's close(9E), which frees the eventfd's state, runs when the last file reference
/// goes (`closef`), whatever vnode holds remain; a write after that would reach freed state.
/// The reference is dropped with `closef` (which then closes the device if user space already
/// closed every descriptor of it).
///
/// # Invariants
/// `fp` carries one `f_count` reference taken by [`IllumosOs::eventfd_get`] and given up
/// once, in `drop`; `vp` is its `f_vnode`, a `VCHR` vnode of the `eventfd` driver, and `rdev`
/// that vnode's device number.
pub struct KEventFd {
    fp: NonNull<ddi::file_t>,
    vp: NonNull<ddi::vnode_t>,
    rdev: ddi::dev_t,
}

// SAFETY: a referenced kernel file, usable from any thread.
unsafe impl Send for KEventFd {}
// SAFETY: as above; `signal` only issues a kernel write through the vnode.
unsafe impl Sync for KEventFd {}

impl EventFd for KEventFd {
    /// Adds 1 with an 8-byte kernel write (`VOP_WRITE`, a `UIO_SYSSPACE` uio with
    /// `FNONBLOCK`). The eventfd driver takes an adaptive mutex, so this may block briefly:
    /// the core signals only while holding the VM's sleeping I/O-bus mutex, i.e. from a
    /// preemptible context. Called with preemption disabled, it drops the signal (counted,
    /// warned once) rather than block there. With `FNONBLOCK` a counter already at its
    /// maximum (`0xfffffffffffffffe`) gives `EAGAIN` instead of waiting for a reader: the
    /// counter stays saturated, as Linux's `eventfd_signal` leaves it.
    fn signal(&self) {
        if preempt_disabled() {
            if EVENTFD_SIGNALS_DROPPED.fetch_add(1, Ordering::Relaxed) == 0 {
                log_at(
                    ddi::CE_WARN,
                    format_args!("kvmport: eventfd signal with preemption disabled dropped"),
                );
            }
            return;
        }
        let mut val: u64 = 1;
        let mut iov = ddi::iovec_t {
            iov_base: (&raw mut val).cast(),
            iov_len: size_of::<u64>(),
        };
        let mut uio = ddi::uio_t {
            uio_iov: &raw mut iov,
            uio_iovcnt: 1,
            uio_loffset: 0,
            uio_segflg: ddi::UIO_SYSSPACE,
            // CAST: FWRITE (2) fits the 16-bit field.
            uio_fmode: ddi::FWRITE as u16 | ddi::FNONBLOCK,
            uio_extflg: ddi::UIO_COPY_DEFAULT,
            uio_llimit: i64::MAX,
            // CAST: 8.
            uio_resid: size_of::<u64>() as isize,
        };
        // SAFETY: `vp` is the vnode of a file we hold (type invariant); `uio` describes our
        // 8-byte kernel buffer, alive for the call; preemptible context (checked above).
        let _ = unsafe {
            ddi::fop_write(
                self.vp.as_ptr(),
                &raw mut uio,
                0,
                ddi::kcred,
                core::ptr::null_mut(),
            )
        };
    }

    /// One eventfd is one cloned minor of the eventfd driver: the same device number.
    fn same(&self, other: &Self) -> bool {
        self.rdev == other.rdev
    }
}

impl Drop for KEventFd {
    fn drop(&mut self) {
        // SAFETY: gives up the reference taken in eventfd_get, once (type invariant).
        let _ = unsafe { ddi::closef(self.fp.as_ptr()) };
    }
}

/// Reads a field of type `T` at byte `off` of a kernel object.
///
/// # Safety
/// `base + off` is a readable, aligned `T` of a live object.
unsafe fn field<T: Copy>(base: *mut u8, off: usize) -> T {
    // SAFETY: forwarded to the caller.
    unsafe { base.add(off).cast::<T>().read() }
}

// ---------------------------------------------------------------- logging

/// Formats into a fixed, NUL-terminated buffer (truncating), so logging never allocates.
struct LineBuf {
    buf: [u8; 256],
    len: usize,
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
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

/// Prints a formatted line through cmn_err(9F) at `level`.
pub fn log_at(level: c_int, args: fmt::Arguments<'_>) {
    let mut line = LineBuf {
        buf: [0; 256],
        len: 0,
    };
    let _ = line.write_fmt(args);
    // SAFETY: "%s" prints the NUL-terminated buffer (len < 256, the rest is zero).
    unsafe { ddi::cmn_err(level, c"%s".as_ptr(), line.buf.as_ptr()) };
}

/// Prints a note on the console.
pub fn log_args(args: fmt::Arguments<'_>) {
    log_at(ddi::CE_NOTE, args);
}

// ---------------------------------------------------------------- cross calls

/// The argument of a cross call: the function and the first error (0: none).
struct XCall<'a> {
    f: &'a (dyn Fn(u32) -> KResult<()> + Sync),
    err: AtomicI32,
}

unsafe extern "C" fn xcall_action(
    arg: ddi::xc_arg_t,
    _a2: ddi::xc_arg_t,
    _a3: ddi::xc_arg_t,
) -> c_int {
    // SAFETY: `arg` is the `XCall` of `cpu_call_all`, alive until xc_sync returns.
    let x = unsafe { &*(arg as *const XCall<'_>) };
    if let Err(e) = (x.f)(curcpu()) {
        let _ = x
            .err
            .compare_exchange(0, e.raw(), Ordering::AcqRel, Ordering::Relaxed);
    }
    0
}

impl Os for IllumosOs {
    type Mutex<T: Send> = KLock<T, AdaptiveKind>;
    type SpinLock<T: Send> = KLock<T, SpinKind>;
    type Page = KPage;
    type HeldPage = KHeld;
    type WaitQueue = KWaitQueue;
    type EventFd = KEventFd;

    fn page_zalloc(&self) -> KResult<KPage> {
        let mut cookie: ddi::ddi_umem_cookie_t = core::ptr::null_mut();
        // SAFETY: a page-aligned allocation of one page or NULL; `cookie` is a local.
        let va = unsafe { ddi::ddi_umem_alloc(PAGE_SIZE, ddi::DDI_UMEM_NOSLEEP, &mut cookie) };
        let va = NonNull::new(va.cast::<u8>()).ok_or(Errno::ENOMEM)?;
        // SAFETY: our fresh page (zeroed here rather than relying on the allocator).
        unsafe { core::ptr::write_bytes(va.as_ptr(), 0, PAGE_SIZE) };
        LIVE_PAGES.fetch_add(1, Ordering::Relaxed);
        Ok(KPage { va, cookie })
    }

    fn user_range_ok(&self, addr: UserAddr, len: u64) -> bool {
        let end = addr.0.checked_add(len);
        if mode::current() & ddi::FKIOCTL != 0 {
            return end.is_some();
        }
        end.is_some_and(|end| end <= ddi::USERLIMIT)
    }

    fn user_copy_in(&self, dst: &mut [u8], src: UserAddr) -> KResult<()> {
        // SAFETY: `dst` is a writable kernel buffer of the length passed; ddi_copyin checks
        // the source by the ioctl's mode and fails with -1.
        let r = unsafe {
            ddi::ddi_copyin(
                src.0 as *const c_void,
                dst.as_mut_ptr().cast(),
                dst.len(),
                mode::current(),
            )
        };
        if r == 0 { Ok(()) } else { Err(Errno::EFAULT) }
    }

    fn user_copy_out(&self, dst: UserAddr, src: &[u8]) -> KResult<()> {
        // SAFETY: `src` is a readable kernel buffer; ddi_copyout checks the destination.
        let r = unsafe {
            ddi::ddi_copyout(
                src.as_ptr().cast(),
                dst.0 as *mut c_void,
                src.len(),
                mode::current(),
            )
        };
        if r == 0 { Ok(()) } else { Err(Errno::EFAULT) }
    }

    /// ddi_umem_lock(9F) on the page holding `addr` (read, plus write when asked: a write
    /// lock breaks copy-on-write and fails on a read-only mapping), then its frame: the
    /// cookie's shadow page list (`page_pptonum`), or, when the segment gave none (the range
    /// was soft-locked, its translations locked in the process's hat), `hat_getpfnum` on the
    /// cookie's address space. The lock keeps the frame until drop; illumos makes an unmap of
    /// a locked range wait for the unlock.
    fn user_page_hold(&self, addr: UserAddr, write: bool) -> KResult<KHeld> {
        if addr.0 >= ddi::USERLIMIT {
            return Err(Errno::EFAULT);
        }
        let base = addr.0 & !(PAGE_SIZE as u64 - 1);
        let flags = ddi::DDI_UMEMLOCK_READ | if write { ddi::DDI_UMEMLOCK_WRITE } else { 0 };
        let mut cookie: ddi::ddi_umem_cookie_t = core::ptr::null_mut();
        // SAFETY: a page-aligned user range of one page of the calling process (an ioctl
        // context); `cookie` is a local the kernel fills.
        let r = unsafe { ddi::ddi_umem_lock(base as *mut _, PAGE_SIZE, flags, &mut cookie) };
        let cookie = match (r, NonNull::new(cookie)) {
            (0, Some(c)) => c,
            (ddi::errno::ENOMEM | ddi::errno::EAGAIN, _) => return Err(Errno::ENOMEM),
            _ => return Err(Errno::EFAULT),
        };
        let mut held = KHeld {
            cookie,
            pa: 0,
            write,
        };
        HELD_PAGES.fetch_add(1, Ordering::Relaxed);
        let cb = cookie.as_ptr().cast::<u8>();
        // SAFETY: fields of the live cookie ddi_umem_lock returned (see ddi's offsets).
        let (pparray, asp): (*mut *mut ddi::page_t, *mut u8) = unsafe {
            (
                field(cb, ddi::UMEM_COOKIE_PPARRAY_OFFSET),
                field(cb, ddi::UMEM_COOKIE_ASP_OFFSET),
            )
        };
        let pfn = if !pparray.is_null() {
            // SAFETY: the shadow list of the one locked page: its first entry is that page.
            unsafe {
                let pp = pparray.read();
                if pp.is_null() {
                    ddi::PFN_INVALID
                } else {
                    ddi::page_pptonum(pp)
                }
            }
        } else if !asp.is_null() {
            // SAFETY: the locked process's `struct as` (kept alive by the lock) and its hat;
            // `base` is locked in it.
            unsafe {
                let hat: *mut c_void = field(asp, ddi::AS_A_HAT_OFFSET);
                ddi::hat_getpfnum(hat, base as *mut c_void)
            }
        } else {
            ddi::PFN_INVALID
        };
        // `held` unlocks on the error paths.
        let pa = pfn
            .checked_mul(PAGE_SIZE as u64)
            .filter(|_| pfn != ddi::PFN_INVALID)
            .ok_or(Errno::EFAULT)?;
        held.pa = pa;
        Ok(held)
    }

    fn cpu_current(&self) -> u32 {
        curcpu()
    }

    fn cpu_count(&self) -> u32 {
        // SAFETY: set at boot, read-only afterwards.
        u32::try_from(unsafe { ddi::max_ncpus }).unwrap_or(1).max(1)
    }

    fn cpu_call_all(&self, f: &(dyn Fn(u32) -> KResult<()> + Sync)) -> KResult<()> {
        // SAFETY: a new, empty CPU set or NULL.
        let set = unsafe { ddi::cpuset_alloc(ddi::KM_NOSLEEP) };
        if set.is_null() {
            return Err(Errno::ENOMEM);
        }
        let x = XCall {
            f,
            err: AtomicI32::new(0),
        };
        // SAFETY: `set` is ours; xc_sync runs `xcall_action(&x)` on every CPU in it (with
        // preemption disabled) and returns only after all of them finished, so `x` outlives
        // every use; then the set is freed once.
        unsafe {
            ddi::cpuset_all(set);
            ddi::xc_sync(
                (&x as *const XCall<'_>) as usize,
                0,
                0,
                set.cast(),
                xcall_action,
            );
            ddi::cpuset_free(set);
        }
        match x.err.load(Ordering::Acquire) {
            0 => Ok(()),
            e => Err(Errno::from_raw(e).unwrap_or(Errno::EIO)),
        }
    }

    fn cpu_kick(&self, cpu: u32) {
        if cpu == curcpu() || cpu >= self.cpu_count() {
            return;
        }
        // CAST: cpu < cpu_count, which fits an int.
        // SAFETY: poke_cpu only makes the target CPU enter the kernel (and leave a guest).
        unsafe { ddi::poke_cpu(cpu as c_int) }
    }

    fn virt_host_managed(&self) -> bool {
        // HMA (registered at attach) enables SVM and sets VM_HSAVE_PA on every CPU.
        true
    }

    fn fpu_begin(&self) {
        // SAFETY: called with preemption disabled (the Os contract), which KFPU_NO_STATE
        // requires; paired with fpu_end.
        unsafe { ddi::kernel_fpu_begin(core::ptr::null_mut(), ddi::KFPU_NO_STATE) }
    }

    fn fpu_end(&self) {
        // SAFETY: pairs the kernel_fpu_begin above.
        unsafe { ddi::kernel_fpu_end(core::ptr::null_mut(), ddi::KFPU_NO_STATE) }
    }

    fn preempt_disable(&self) {
        // kpreempt_disable(): `curthread->t_preempt++` (a macro in sys/disp.h).
        // SAFETY: `t_preempt` of the running thread, which only this thread writes.
        unsafe {
            let p = curthread().cast::<u8>().add(ddi::T_PREEMPT_OFFSET);
            p.write_volatile(p.read_volatile().wrapping_add(1));
        }
    }

    fn preempt_enable(&self) {
        // kpreempt_enable(): decrement, then let the dispatcher preempt if it asked to.
        // SAFETY: as above; kpreempt(KPREEMPT_SYNC) checks `cpu_kprunrun` itself.
        unsafe {
            let p = curthread().cast::<u8>().add(ddi::T_PREEMPT_OFFSET);
            let v = p.read_volatile().wrapping_sub(1);
            p.write_volatile(v);
            if v == 0 {
                ddi::kpreempt(ddi::KPREEMPT_SYNC);
            }
        }
    }

    fn thread_signal_pending(&self) -> bool {
        // SAFETY: looks at the current thread's pending signals without acting on them.
        unsafe { ddi::issig(ddi::JUSTLOOKING) != 0 }
    }

    /// illumos preempts kernel threads itself (outside kpreempt_disable sections), so the
    /// run loop never needs to yield by hand.
    fn thread_resched_needed(&self) -> bool {
        false
    }

    fn thread_resched(&self) {}

    /// The eight ABI bytes are the first 64 illumos signals (the first two words of the
    /// native `sigset_t`, as on FreeBSD); the thread's third word is kept. `lwp_sigmask`
    /// returns only words 0 and 1 of the old mask, so the swap unblocks those two words and
    /// then blocks the new ones (word 2 untouched); restoring uses the same two steps.
    fn thread_sigmask_swap(&self, mask: SigMask) -> SigMask {
        let m = u64::from_le_bytes(mask.0);
        // SAFETY: changes only the calling thread's own held signals, as sigprocmask(2)
        // would; no memory is passed.
        let old = unsafe {
            let old = ddi::lwp_sigmask(ddi::SIG_UNBLOCK, u32::MAX, u32::MAX, 0, 0);
            // CAST: splitting 64 bits into two words.
            ddi::lwp_sigmask(ddi::SIG_BLOCK, m as u32, (m >> 32) as u32, 0, 0);
            old
        };
        // CAST: the rval_t's 64 bits: word 0 low, word 1 high.
        SigMask((old as u64).to_le_bytes())
    }

    fn process_id(&self) -> u64 {
        // SAFETY: the calling process's id.
        u64::from(unsafe { ddi::ddi_get_pid() }.unsigned_abs())
    }

    fn time_monotonic_ns(&self) -> u64 {
        // SAFETY: high-resolution monotonic time.
        u64::try_from(unsafe { ddi::gethrtime() }).unwrap_or(0)
    }

    fn tsc_khz(&self) -> u64 {
        // SAFETY: set at boot (TSC calibration), read-only afterwards.
        (unsafe { ddi::cpu_freq_hz }) / 1000
    }

    /// `getf(fd)`: `EBADF` if not open. Then the file must be a character device of the
    /// driver named `eventfd` (`v_type == VCHR`, `getmajor(v_rdev) ==
    /// ddi_name_to_major("eventfd")`), else `EINVAL`. It is held by one more `f_count`
    /// reference (under `f_tlock`, as the kernel's own holders do) before `releasef(fd)`.
    fn eventfd_get(&self, fd: i32) -> KResult<KEventFd> {
        if fd < 0 {
            return Err(Errno::EBADF);
        }
        // SAFETY: a NUL-terminated name; the answer is a number.
        let major = unsafe { ddi::ddi_name_to_major(c"eventfd".as_ptr()) };
        // SAFETY: the calling process's descriptor table; NULL if `fd` is not open.
        let fp = NonNull::new(unsafe { ddi::getf(fd) }).ok_or(Errno::EBADF)?;
        let base = fp.as_ptr().cast::<u8>();
        // SAFETY: `fp` is a live file_t held by getf until releasef; `f_vnode` is set for
        // every open file and the vnode lives as long as the file.
        let vp: *mut ddi::vnode_t = unsafe { field(base, ddi::FILE_F_VNODE_OFFSET) };
        let held = NonNull::new(vp).and_then(|vp| {
            let vb = vp.as_ptr().cast::<u8>();
            // SAFETY: public fields of the live vnode (see ddi::VNODE_V_TYPE_OFFSET).
            let (vtype, rdev): (c_int, ddi::dev_t) = unsafe {
                (
                    field(vb, ddi::VNODE_V_TYPE_OFFSET),
                    field(vb, ddi::VNODE_V_RDEV_OFFSET),
                )
            };
            if vtype != ddi::VCHR || major == ddi::DDI_MAJOR_T_NONE || ddi::getmajor(rdev) != major
            {
                return None;
            }
            let tlock = base
                .wrapping_add(ddi::FILE_F_TLOCK_OFFSET)
                .cast::<ddi::kmutex_t>();
            let count = base.wrapping_add(ddi::FILE_F_COUNT_OFFSET).cast::<c_int>();
            // SAFETY: `f_tlock` protects `f_count` of the live file; one more reference,
            // refused (never wrapped) at the int's limit.
            let ok = unsafe {
                ddi::mutex_enter(tlock);
                let n = count.read();
                let ok = n > 0 && n < c_int::MAX;
                if ok {
                    count.write(n + 1);
                }
                ddi::mutex_exit(tlock);
                ok
            };
            ok.then_some(KEventFd { fp, vp, rdev })
        });
        // SAFETY: ends the getf above (the file stays alive through our reference, if any).
        unsafe { ddi::releasef(fd) };
        held.ok_or(Errno::EINVAL)
    }

    fn log(&self, level: LogLevel, args: fmt::Arguments<'_>) {
        match level {
            LogLevel::Debug => {}
            LogLevel::Warn | LogLevel::Error => log_at(ddi::CE_WARN, args),
            _ => log_args(args),
        }
    }
}
