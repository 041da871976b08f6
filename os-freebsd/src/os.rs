//! [`FreeBsdOs`]: the `Os` port over FreeBSD 14 kernel services.

use core::cell::UnsafeCell;
use core::ffi::{c_char, c_int, c_void};
use core::fmt::{self, Write};
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use kvmport_core::os::{
    EventFd, HeldPage, Lock, LogLevel, Os, PAGE_SIZE, Page, SigMask, UserAddr, WaitQueue,
};
use kvmport_core::{Errno, KResult};

use crate::kpi;

/// Kernel pages and held user pages the module owns (for the leak report at unload).
static LIVE_PAGES: AtomicUsize = AtomicUsize::new(0);
static HELD_PAGES: AtomicUsize = AtomicUsize::new(0);

/// (kernel pages, held user pages) not yet released.
pub fn live_pages() -> (usize, usize) {
    (
        LIVE_PAGES.load(Ordering::Relaxed),
        HELD_PAGES.load(Ordering::Relaxed),
    )
}

/// The FreeBSD `Os`. Stateless: every service is a kernel function.
#[derive(Debug, Default)]
pub struct FreeBsdOs;

/// `curthread`: `pc_curthread`, at `%gs:0`.
pub fn curthread() -> *mut kpi::thread {
    let td: *mut kpi::thread;
    // SAFETY: in the kernel %gs points at this CPU's `struct pcpu`, whose first field is the
    // current thread pointer; reading it has no side effect.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) td, options(nostack, readonly, preserves_flags));
    }
    td
}

/// `curcpu`: `pc_cpuid` of this CPU's `struct pcpu`.
fn curcpu() -> u32 {
    let cpu: u32;
    // SAFETY: as in `curthread`; `pc_cpuid` is a `u_int` at `kpi::PC_CPUID`.
    unsafe {
        core::arch::asm!("mov {:e}, gs:[{off}]", out(reg) cpu, off = const kpi::PC_CPUID,
            options(nostack, readonly, preserves_flags));
    }
    cpu
}

/// `curproc`: `curthread->td_proc`.
pub fn curproc() -> *mut c_void {
    let td = curthread();
    if td.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: `td` is the running thread; `td_proc` is a pointer at `TD_PROC_OFFSET`.
    unsafe {
        td.cast::<u8>()
            .add(kpi::TD_PROC_OFFSET)
            .cast::<*mut c_void>()
            .read()
    }
}

/// The file name passed to the lock functions (they want a C string for `LOCK_DEBUG`).
const LOCK_FILE: *const c_char = c"kvmport".as_ptr();

// ---------------------------------------------------------------- locks

/// Which kernel lock a [`KLock`] wraps.
///
/// # Safety
/// `init` must leave a lock of this kind in the 32 bytes it is given, which `destroy`,
/// `lock` and `unlock` then accept.
pub unsafe trait LockKind: Send + Sync + 'static {
    /// Initialises the lock in place.
    ///
    /// # Safety
    /// `raw` points to `kpi::LOCK_SIZE` zeroed, 8-aligned bytes that never move.
    unsafe fn init(raw: *mut u8);
    /// Destroys it.
    ///
    /// # Safety
    /// `raw` is an initialised, unheld lock that is not used again.
    unsafe fn destroy(raw: *mut u8);
    /// Takes it.
    ///
    /// # Safety
    /// `raw` is an initialised lock.
    unsafe fn lock(raw: *mut u8);
    /// Releases it.
    ///
    /// # Safety
    /// `raw` is an initialised lock held by the caller.
    unsafe fn unlock(raw: *mut u8);
}

/// `struct sx` (a sleepable lock: the holder may copyin/copyout and sleep).
pub struct SxKind;
/// `struct mtx` with `MTX_SPIN`.
pub struct SpinKind;

// SAFETY: the four functions are the sx(9) family operating on one `struct sx`.
unsafe impl LockKind for SxKind {
    unsafe fn init(raw: *mut u8) {
        // SAFETY: the caller gives 32 zeroed bytes for a `struct sx`.
        unsafe { kpi::sx_init_flags(raw.cast(), c"kvmport".as_ptr(), 0) }
    }
    unsafe fn destroy(raw: *mut u8) {
        // SAFETY: an initialised, unheld sx (caller).
        unsafe { kpi::sx_destroy(raw.cast()) }
    }
    unsafe fn lock(raw: *mut u8) {
        // SAFETY: an initialised sx (caller); without SX_INTERRUPTIBLE it cannot fail.
        let _ = unsafe { kpi::_sx_xlock(raw.cast(), 0, LOCK_FILE, 0) };
    }
    unsafe fn unlock(raw: *mut u8) {
        // SAFETY: held by the caller.
        unsafe { kpi::_sx_xunlock(raw.cast(), LOCK_FILE, 0) }
    }
}

// SAFETY: the four functions are the mtx(9) spin family operating on one `struct mtx`; they
// take the address of its `mtx_lock` field.
unsafe impl LockKind for SpinKind {
    unsafe fn init(raw: *mut u8) {
        // SAFETY: the caller gives 32 zeroed bytes for a `struct mtx`.
        unsafe {
            kpi::_mtx_init(
                raw.add(kpi::MTX_LOCK_OFFSET).cast(),
                c"kvmport spin".as_ptr(),
                core::ptr::null(),
                kpi::MTX_SPIN,
            )
        }
    }
    unsafe fn destroy(raw: *mut u8) {
        // SAFETY: an initialised, unheld mutex (caller).
        unsafe { kpi::_mtx_destroy(raw.add(kpi::MTX_LOCK_OFFSET).cast()) }
    }
    unsafe fn lock(raw: *mut u8) {
        // SAFETY: an initialised spin mutex (caller).
        unsafe { kpi::__mtx_lock_spin_flags(raw.add(kpi::MTX_LOCK_OFFSET).cast(), 0, LOCK_FILE, 0) }
    }
    unsafe fn unlock(raw: *mut u8) {
        // SAFETY: held by the caller.
        unsafe {
            kpi::__mtx_unlock_spin_flags(raw.add(kpi::MTX_LOCK_OFFSET).cast(), 0, LOCK_FILE, 0)
        }
    }
}

/// The 32 bytes of a kernel lock, out of line so that it never moves.
#[repr(C, align(8))]
struct LockMem([u8; kpi::LOCK_SIZE]);

/// Allocates zeroed memory for one kernel lock, or `ENOMEM`.
fn lock_mem_alloc() -> KResult<NonNull<LockMem>> {
    // SAFETY: a non-zero-sized layout.
    let p = unsafe { alloc::alloc::alloc_zeroed(core::alloc::Layout::new::<LockMem>()) };
    NonNull::new(p.cast::<LockMem>()).ok_or(Errno::ENOMEM)
}

/// Frees memory from [`lock_mem_alloc`].
///
/// # Safety
/// `p` came from `lock_mem_alloc` and is not used again.
unsafe fn lock_mem_free(p: NonNull<LockMem>) {
    // SAFETY: allocated with this layout (caller).
    unsafe { alloc::alloc::dealloc(p.as_ptr().cast(), core::alloc::Layout::new::<LockMem>()) }
}

/// A value behind a kernel lock allocated out of line.
///
/// # Invariants
/// `raw` is an initialised lock of kind `K` owned by this value; `value` is only accessed
/// while it is held.
pub struct KLock<T, K: LockKind> {
    raw: NonNull<LockMem>,
    value: UnsafeCell<T>,
    _kind: core::marker::PhantomData<K>,
}

// SAFETY: the lock serialises access to `value`; the kernel lock is usable from any CPU.
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
        let raw = lock_mem_alloc()?;
        // SAFETY: 32 zeroed, 8-aligned bytes that stay put until `drop`.
        unsafe { K::init(raw.as_ptr().cast()) };
        Ok(KLock {
            raw,
            value: UnsafeCell::new(value),
            _kind: core::marker::PhantomData,
        })
    }

    fn lock(&self) -> KGuard<'_, T, K> {
        // SAFETY: `raw` is initialised (type invariant).
        unsafe { K::lock(self.raw.as_ptr().cast()) };
        KGuard { lock: self }
    }
}

impl<T, K: LockKind> Drop for KLock<T, K> {
    fn drop(&mut self) {
        // SAFETY: no guard outlives the lock, so it is unheld; destroyed and freed once.
        unsafe {
            K::destroy(self.raw.as_ptr().cast());
            lock_mem_free(self.raw);
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
        unsafe { K::unlock(self.lock.raw.as_ptr().cast()) };
    }
}

// ---------------------------------------------------------------- pages

/// A zeroed, wired kernel page from `kmem_malloc`, freed on drop.
///
/// # Invariants
/// `va` is a page-aligned `PAGE_SIZE` allocation owned by this value.
pub struct KPage {
    va: NonNull<u8>,
}

// SAFETY: plain wired memory; accessed only through volatile byte copies.
unsafe impl Send for KPage {}
// SAFETY: as above.
unsafe impl Sync for KPage {}

impl Page for KPage {
    fn pa(&self) -> u64 {
        // SAFETY: `va` is a mapped kernel address (type invariant).
        unsafe { kpi::pmap_kextract(self.va.as_ptr() as usize) }
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
        // SAFETY: allocated by kmem_malloc with this size; freed once.
        unsafe { kpi::kmem_free(self.va.as_ptr().cast(), PAGE_SIZE) }
    }
}

/// A user page held through the VM system (`vm_fault_quick_hold_pages`), unheld on drop.
pub struct KHeld {
    page: NonNull<kpi::vm_page>,
    pa: u64,
    write: bool,
}

// SAFETY: a held `vm_page` may be released from any thread.
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
    /// Not yet: copying through the direct map (`PHYS_TO_DMAP`) needs the loader harness to
    /// model it first. Until then MMIO and string I/O emulation on FreeBSD end the run with
    /// an emulation failure instead of touching guest memory.
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
        let mut m = self.page.as_ptr();
        // SAFETY: one page held once by `user_page_hold`, released once here.
        unsafe { kpi::vm_page_unhold_pages(&mut m, 1) }
    }
}

// ---------------------------------------------------------------- wait queues, eventfds

/// A sleep channel with its interlock (`struct mtx`, `MTX_DEF`).
pub struct KWaitQueue {
    mtx: NonNull<LockMem>,
}

// SAFETY: msleep/wakeup are made for use from any thread.
unsafe impl Send for KWaitQueue {}
// SAFETY: as above.
unsafe impl Sync for KWaitQueue {}

impl KWaitQueue {
    fn lock_word(&self) -> *mut usize {
        // SAFETY: `mtx` is a live 32-byte `struct mtx`; `mtx_lock` is inside it.
        unsafe {
            self.mtx
                .as_ptr()
                .cast::<u8>()
                .add(kpi::MTX_LOCK_OFFSET)
                .cast()
        }
    }
}

impl WaitQueue for KWaitQueue {
    fn new() -> KResult<Self> {
        let mtx = lock_mem_alloc()?;
        let q = KWaitQueue { mtx };
        // SAFETY: 32 zeroed bytes that stay put until drop.
        unsafe {
            kpi::_mtx_init(
                q.lock_word(),
                c"kvmport wait".as_ptr(),
                core::ptr::null(),
                kpi::MTX_DEF,
            )
        };
        Ok(q)
    }

    fn wait_until(&self, done: &dyn Fn() -> bool) -> KResult<()> {
        let chan = self.mtx.as_ptr().cast::<c_void>();
        // SAFETY: the mutex is initialised; `_sleep` drops and retakes it atomically.
        unsafe { kpi::__mtx_lock_flags(self.lock_word(), 0, LOCK_FILE, 0) };
        let mut r = Ok(());
        while !done() {
            // SAFETY: sleeping on our own channel with its interlock held (a `lock_object` at
            // the start of the `struct mtx`); PCATCH makes signals end the sleep.
            let e = unsafe {
                kpi::_sleep(
                    chan,
                    self.mtx.as_ptr().cast(),
                    kpi::PCATCH,
                    c"kvmhlt".as_ptr(),
                    0,
                    0,
                    kpi::C_HARDCLOCK,
                )
            };
            if e != 0 {
                r = Err(Errno::EINTR);
                break;
            }
        }
        // SAFETY: held since the lock above.
        unsafe { kpi::__mtx_unlock_flags(self.lock_word(), 0, LOCK_FILE, 0) };
        r
    }

    /// One timed sleep (`_sleep` with a relative `sbintime_t`): the caller re-checks and
    /// waits again as needed.
    fn wait_until_timeout(&self, done: &dyn Fn() -> bool, timeout_ns: u64) -> KResult<bool> {
        const NS: u64 = 1_000_000_000;
        let secs = (timeout_ns / NS).min(i32::MAX as u64);
        // CAST: secs < 2^31 and the fraction < 2^32, so the sum fits an i64.
        let sbt = ((secs << 32) + (((timeout_ns % NS) << 32) / NS)).max(1) as i64;
        let chan = self.mtx.as_ptr().cast::<c_void>();
        // SAFETY: the mutex is initialised; `_sleep` drops and retakes it atomically.
        unsafe { kpi::__mtx_lock_flags(self.lock_word(), 0, LOCK_FILE, 0) };
        let mut r = Ok(true);
        if !done() {
            // SAFETY: as in `wait_until`; the sleep ends at the latest after `sbt`.
            let e = unsafe {
                kpi::_sleep(
                    chan,
                    self.mtx.as_ptr().cast(),
                    kpi::PCATCH,
                    c"kvmhlt".as_ptr(),
                    sbt,
                    0,
                    kpi::C_HARDCLOCK,
                )
            };
            // EINTR (4) and ERESTART (-1) are signals; EWOULDBLOCK is the timeout.
            r = if e == 4 || e == -1 {
                Err(Errno::EINTR)
            } else {
                Ok(done())
            };
        }
        // SAFETY: held since the lock above.
        unsafe { kpi::__mtx_unlock_flags(self.lock_word(), 0, LOCK_FILE, 0) };
        r
    }

    fn wake_all(&self) {
        // SAFETY: taking the interlock orders the wakeup after a sleeper's check of `done`.
        unsafe {
            kpi::__mtx_lock_flags(self.lock_word(), 0, LOCK_FILE, 0);
            kpi::wakeup(self.mtx.as_ptr().cast());
            kpi::__mtx_unlock_flags(self.lock_word(), 0, LOCK_FILE, 0);
        }
    }
}

impl Drop for KWaitQueue {
    fn drop(&mut self) {
        // SAFETY: no sleeper remains (the owner is being dropped); destroyed and freed once.
        unsafe {
            kpi::_mtx_destroy(self.lock_word());
            lock_mem_free(self.mtx);
        }
    }
}

/// A referenced kernel eventfd.
pub struct KEventFd {
    efd: NonNull<kpi::eventfd>,
}

// SAFETY: eventfds are reference-counted kernel objects usable from any thread.
unsafe impl Send for KEventFd {}
// SAFETY: as above.
unsafe impl Sync for KEventFd {}

impl EventFd for KEventFd {
    fn signal(&self) {
        // SAFETY: we hold a reference from eventfd_get.
        unsafe { kpi::eventfd_signal(self.efd.as_ptr()) }
    }
    fn same(&self, other: &Self) -> bool {
        self.efd == other.efd
    }
}

impl Drop for KEventFd {
    fn drop(&mut self) {
        // SAFETY: drops the reference from eventfd_get, once.
        unsafe { kpi::eventfd_put(self.efd.as_ptr()) }
    }
}

/// `fdrop(fp, td)`: the inline `refcount_release(&fp->f_count)` of `sys/file.h`, then
/// `_fdrop` on the last reference.
///
/// # Safety
/// `fp` is a file the caller holds a reference on, given up here.
pub unsafe fn fdrop(fp: *mut kpi::file, td: *mut kpi::thread) {
    // SAFETY: `f_count` is a live, aligned `u_int` of the caller's file; the kernel updates it
    // only atomically.
    let count = unsafe {
        &*fp.cast::<u8>()
            .add(kpi::FILE_F_COUNT_OFFSET)
            .cast::<core::sync::atomic::AtomicU32>()
    };
    if count.fetch_sub(1, Ordering::Release) == 1 {
        core::sync::atomic::fence(Ordering::Acquire);
        // SAFETY: that was the last reference.
        let _ = unsafe { kpi::_fdrop(fp, td) };
    }
}

// ---------------------------------------------------------------- the Os

/// The argument of a rendezvous: the function and the first error (0: none).
struct Rendezvous<'a> {
    f: &'a (dyn Fn(u32) -> KResult<()> + Sync),
    err: AtomicI32,
}

unsafe extern "C" fn rendezvous_action(arg: *mut c_void) {
    // SAFETY: `arg` is the `Rendezvous` of `cpu_call_all`, alive until smp_rendezvous returns.
    let r = unsafe { &*arg.cast::<Rendezvous<'_>>() };
    if let Err(e) = (r.f)(curcpu()) {
        let _ = r
            .err
            .compare_exchange(0, e.raw(), Ordering::AcqRel, Ordering::Relaxed);
    }
}

/// Formats into a fixed buffer (truncating), so logging never allocates.
struct LineBuf {
    buf: [u8; 256],
    len: usize,
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

/// Prints a formatted line on the kernel console.
pub fn log_args(args: fmt::Arguments<'_>) {
    let mut line = LineBuf {
        buf: [0; 256],
        len: 0,
    };
    let _ = line.write_fmt(args);
    // CAST: len <= 256.
    let len = line.len as c_int;
    // SAFETY: "%.*s" prints exactly `len` bytes of the initialised buffer.
    unsafe { kpi::printf(c"%.*s\n".as_ptr(), len, line.buf.as_ptr()) };
}

impl Os for FreeBsdOs {
    type Mutex<T: Send> = KLock<T, SxKind>;
    type SpinLock<T: Send> = KLock<T, SpinKind>;
    type Page = KPage;
    type HeldPage = KHeld;
    type WaitQueue = KWaitQueue;
    type EventFd = KEventFd;

    fn page_zalloc(&self) -> KResult<KPage> {
        // SAFETY: returns a zeroed, wired, page-aligned allocation or NULL.
        let va = unsafe { kpi::kmem_malloc(PAGE_SIZE, kpi::M_NOWAIT | kpi::M_ZERO) };
        let va = NonNull::new(va.cast::<u8>()).ok_or(Errno::ENOMEM)?;
        LIVE_PAGES.fetch_add(1, Ordering::Relaxed);
        Ok(KPage { va })
    }

    fn user_range_ok(&self, addr: UserAddr, len: u64) -> bool {
        addr.0
            .checked_add(len)
            .is_some_and(|end| end <= kpi::VM_MAXUSER_ADDRESS)
    }

    fn user_copy_in(&self, dst: &mut [u8], src: UserAddr) -> KResult<()> {
        // SAFETY: `dst` is a writable kernel buffer of the length passed; copyin validates
        // the user range and fails with EFAULT.
        let r = unsafe { kpi::copyin(src.0 as *const c_void, dst.as_mut_ptr().cast(), dst.len()) };
        if r == 0 { Ok(()) } else { Err(Errno::EFAULT) }
    }

    fn user_copy_out(&self, dst: UserAddr, src: &[u8]) -> KResult<()> {
        // SAFETY: `src` is a readable kernel buffer; copyout validates the user range.
        let r = unsafe { kpi::copyout(src.as_ptr().cast(), dst.0 as *mut c_void, src.len()) };
        if r == 0 { Ok(()) } else { Err(Errno::EFAULT) }
    }

    fn user_page_hold(&self, addr: UserAddr, write: bool) -> KResult<KHeld> {
        let proc_ = curproc();
        if proc_.is_null() || !self.user_range_ok(addr, 1) {
            return Err(Errno::EFAULT);
        }
        // SAFETY: a referenced vmspace of the current process, or NULL if it is exiting.
        let vm = unsafe { kpi::vmspace_acquire_ref(proc_) };
        if vm.is_null() {
            return Err(Errno::EFAULT);
        }
        // The vmspace's first member is its `struct vm_map`.
        let map = vm.cast::<kpi::vm_map>();
        let prot = kpi::VM_PROT_READ | if write { kpi::VM_PROT_WRITE } else { 0 };
        let mut m: *mut kpi::vm_page = core::ptr::null_mut();
        let base = (addr.0 as usize) & !(PAGE_SIZE - 1);
        // SAFETY: holds at most one page of the referenced map into the local `m`; then the
        // vmspace reference is dropped (a held page stays valid on its own).
        let n = unsafe {
            let n = kpi::vm_fault_quick_hold_pages(map, base, PAGE_SIZE, prot, &mut m, 1);
            kpi::vmspace_free(vm);
            n
        };
        let page = NonNull::new(m).filter(|_| n == 1).ok_or(Errno::EFAULT)?;
        // SAFETY: a held page's `phys_addr` is stable while held.
        let pa = unsafe {
            page.as_ptr()
                .cast::<u8>()
                .add(kpi::VM_PAGE_PHYS_ADDR_OFFSET)
                .cast::<u64>()
                .read()
        };
        HELD_PAGES.fetch_add(1, Ordering::Relaxed);
        Ok(KHeld { page, pa, write })
    }

    fn cpu_current(&self) -> u32 {
        curcpu()
    }

    fn cpu_count(&self) -> u32 {
        // SAFETY: `mp_maxid` is set at boot and read-only afterwards.
        unsafe { kpi::mp_maxid }.saturating_add(1)
    }

    fn cpu_call_all(&self, f: &(dyn Fn(u32) -> KResult<()> + Sync)) -> KResult<()> {
        let r = Rendezvous {
            f,
            err: AtomicI32::new(0),
        };
        // SAFETY: every CPU runs `rendezvous_action(&r)` with interrupts off; smp_rendezvous
        // returns only after all of them finished, so `r` outlives every use.
        unsafe {
            kpi::smp_rendezvous(
                None,
                Some(rendezvous_action),
                None,
                (&r as *const Rendezvous<'_>).cast_mut().cast(),
            )
        };
        match r.err.load(Ordering::Acquire) {
            0 => Ok(()),
            e => Err(Errno::from_raw(e).unwrap_or(Errno::EIO)),
        }
    }

    fn cpu_kick(&self, cpu: u32) {
        if cpu == curcpu() || cpu >= self.cpu_count() {
            return;
        }
        // CAST: cpu < cpu_count, which fits an int.
        // SAFETY: an AST IPI only makes the target CPU check for pending work.
        unsafe { kpi::ipi_cpu(cpu as c_int, kpi::IPI_AST) }
    }

    fn fpu_begin(&self) {
        // SAFETY: called from the vCPU thread inside a critical section, paired with
        // fpu_end; FPU_KERN_NOCTX with a null context is the documented no-context form.
        unsafe { kpi::fpu_kern_enter(curthread(), core::ptr::null_mut(), kpi::FPU_KERN_NOCTX) };
    }

    fn fpu_end(&self) {
        // SAFETY: pairs the fpu_kern_enter above on the same thread.
        unsafe { kpi::fpu_kern_leave(curthread(), core::ptr::null_mut()) };
    }

    fn preempt_disable(&self) {
        // SAFETY: nests; paired by PreemptGuard.
        unsafe { kpi::critical_enter_KBI() }
    }

    fn preempt_enable(&self) {
        // SAFETY: pairs a preceding critical_enter.
        unsafe { kpi::critical_exit_KBI() }
    }

    fn thread_signal_pending(&self) -> bool {
        // SAFETY: checks the current thread for a signal or suspension request.
        unsafe { kpi::sig_intr() != 0 }
    }

    fn thread_resched_needed(&self) -> bool {
        // SAFETY: reads the current thread's scheduling state.
        unsafe { kpi::should_yield() != 0 }
    }

    fn thread_resched(&self) {
        // SAFETY: preemptible context (the Os contract).
        unsafe { kpi::maybe_yield() }
    }

    fn thread_sigmask_swap(&self, mask: SigMask) -> SigMask {
        // The eight ABI bytes are the first 64 FreeBSD signals; the rest of the mask is kept.
        let mut old = kpi::sigset_t::default();
        let td = curthread();
        // SAFETY: reads the current mask into a local.
        unsafe { kpi::kern_sigprocmask(td, kpi::SIG_SETMASK, core::ptr::null_mut(), &mut old, 0) };
        let mut new = old;
        let m = u64::from_ne_bytes(mask.0);
        // CAST: splitting 64 bits into two words.
        new.bits[0] = m as u32;
        new.bits[1] = (m >> 32) as u32;
        // SAFETY: sets the current thread's mask from a local (SIGKILL/SIGSTOP stay
        // deliverable: the kernel removes them).
        unsafe { kpi::kern_sigprocmask(td, kpi::SIG_SETMASK, &mut new, core::ptr::null_mut(), 0) };
        let prev = u64::from(old.bits[0]) | (u64::from(old.bits[1]) << 32);
        SigMask(prev.to_ne_bytes())
    }

    fn process_id(&self) -> u64 {
        curproc() as u64
    }

    fn time_monotonic_ns(&self) -> u64 {
        let mut ts = kpi::timespec::default();
        // SAFETY: fills a local.
        unsafe { kpi::nanouptime(&mut ts) };
        // CAST: uptime is non-negative.
        (ts.tv_sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(ts.tv_nsec as u64)
    }

    fn tsc_khz(&self) -> u64 {
        // SAFETY: set at boot (and by calibration), read-only for modules.
        (unsafe { kpi::tsc_freq }) / 1000
    }

    fn eventfd_get(&self, fd: i32) -> KResult<KEventFd> {
        let td = curthread();
        let mut fp: *mut kpi::file = core::ptr::null_mut();
        // SAFETY: looks up `fd` in the current process; `fp` is a local out-pointer.
        let r = unsafe { kpi::fget(td, fd, (&raw const kpi::cap_no_rights).cast(), &mut fp) };
        if r != 0 || fp.is_null() {
            return Err(Errno::EBADF);
        }
        // SAFETY: `fp` is referenced by fget; eventfd_get takes its own reference or
        // returns NULL for a file that is not an eventfd; then our file reference is dropped.
        let efd = unsafe {
            let efd = kpi::eventfd_get(fp);
            fdrop(fp, td);
            efd
        };
        let efd = NonNull::new(efd).ok_or(Errno::EINVAL)?;
        Ok(KEventFd { efd })
    }

    fn log(&self, level: LogLevel, args: fmt::Arguments<'_>) {
        if level != LogLevel::Debug {
            log_args(args);
        }
    }
}
