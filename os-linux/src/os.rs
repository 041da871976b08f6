//! [`LinuxOs`]: the `Os` port over Linux kernel services.

use core::cell::UnsafeCell;
use core::ffi::{c_int, c_uint, c_void};
use core::fmt::{self, Write};
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use kvmport_core::os::{
    EventFd, HeldPage, Lock, LogLevel, Os, PAGE_SIZE, Page, SigMask, UserAddr, UserMmListener,
    UserMmWatch, WaitQueue,
};
use kvmport_core::{Errno, KResult};

use crate::ffi;

/// Kernel pages and pinned user pages the module holds (for the leak report at unload).
static LIVE_PAGES: AtomicUsize = AtomicUsize::new(0);
static HELD_PAGES: AtomicUsize = AtomicUsize::new(0);

/// The C notifier keeps a listener pointer in two pointer-sized words.
const _LISTENER_FITS: () = assert!(
    core::mem::size_of::<*const dyn UserMmListener>() == 2 * core::mem::size_of::<*const u8>()
);

/// (kernel pages, pinned user pages) not yet released.
pub fn live_pages() -> (usize, usize) {
    (
        LIVE_PAGES.load(Ordering::Relaxed),
        HELD_PAGES.load(Ordering::Relaxed),
    )
}

/// The Linux `Os`. Stateless: every service is a kernel function.
#[derive(Debug, Default)]
pub struct LinuxOs;

// ---------------------------------------------------------------- locks

/// Which kernel lock a [`KLock`] wraps.
///
/// # Safety
/// `alloc` must return NULL or a lock of this kind that `free`, `lock` and `unlock` accept.
pub unsafe trait LockKind: Send + Sync + 'static {
    /// Allocates and initialises one (NULL on failure).
    fn alloc() -> *mut c_void;
    /// Destroys and frees it.
    ///
    /// # Safety
    /// `raw` must come from `alloc`, not be held, and not be used again.
    unsafe fn free(raw: *mut c_void);
    /// Takes it.
    ///
    /// # Safety
    /// `raw` must be a live lock from `alloc`.
    unsafe fn lock(raw: *mut c_void);
    /// Releases it.
    ///
    /// # Safety
    /// `raw` must be a live lock from `alloc`, held by the caller.
    unsafe fn unlock(raw: *mut c_void);
    /// Takes it if free, without waiting; whether it was taken.
    ///
    /// # Safety
    /// `raw` must be a live lock from `alloc`.
    unsafe fn try_lock(raw: *mut c_void) -> bool;
}

/// `struct mutex`: a sleeping lock.
pub struct MutexKind;
/// `spinlock_t`.
pub struct SpinKind;

// SAFETY: the four functions are the kp_mutex_* family, which create and operate one mutex.
unsafe impl LockKind for MutexKind {
    fn alloc() -> *mut c_void {
        // SAFETY: kp_mutex_new allocates and initialises a mutex, or returns NULL.
        unsafe { ffi::kp_mutex_new() }
    }
    unsafe fn free(raw: *mut c_void) {
        // SAFETY: the caller passes an unheld mutex from `alloc`, never used again.
        unsafe { ffi::kp_mutex_free(raw) }
    }
    unsafe fn lock(raw: *mut c_void) {
        // SAFETY: the caller passes a live mutex from `alloc`.
        unsafe { ffi::kp_mutex_lock(raw) }
    }
    unsafe fn unlock(raw: *mut c_void) {
        // SAFETY: the caller holds this live mutex.
        unsafe { ffi::kp_mutex_unlock(raw) }
    }
    unsafe fn try_lock(raw: *mut c_void) -> bool {
        // SAFETY: the caller passes a live mutex from `alloc`; mutex_trylock never sleeps.
        unsafe { ffi::kp_mutex_trylock(raw) != 0 }
    }
}

// SAFETY: the four functions are the kp_spin_* family, which create and operate one spinlock.
unsafe impl LockKind for SpinKind {
    fn alloc() -> *mut c_void {
        // SAFETY: kp_spin_new allocates and initialises a spinlock, or returns NULL.
        unsafe { ffi::kp_spin_new() }
    }
    unsafe fn free(raw: *mut c_void) {
        // SAFETY: the caller passes an unheld spinlock from `alloc`, never used again.
        unsafe { ffi::kp_spin_free(raw) }
    }
    unsafe fn lock(raw: *mut c_void) {
        // SAFETY: the caller passes a live spinlock from `alloc`.
        unsafe { ffi::kp_spin_lock(raw) }
    }
    unsafe fn unlock(raw: *mut c_void) {
        // SAFETY: the caller holds this live spinlock.
        unsafe { ffi::kp_spin_unlock(raw) }
    }
    unsafe fn try_lock(raw: *mut c_void) -> bool {
        // SAFETY: the caller passes a live spinlock from `alloc`.
        unsafe { ffi::kp_spin_trylock(raw) != 0 }
    }
}

/// A value behind a kernel lock allocated out of line (kernel locks must not move).
///
/// # Invariants
/// `raw` is a live lock of kind `K`, owned by this value; `value` is only accessed while it is
/// held (through a [`KGuard`]).
pub struct KLock<T, K: LockKind> {
    raw: NonNull<c_void>,
    value: UnsafeCell<T>,
    _kind: core::marker::PhantomData<K>,
}

// SAFETY: the lock serialises all access to `value`, so sharing a KLock between threads only
// ever moves `T` between them (`T: Send`); the raw lock is a kernel object usable from any CPU.
unsafe impl<T: Send, K: LockKind> Send for KLock<T, K> {}
// SAFETY: as above.
unsafe impl<T: Send, K: LockKind> Sync for KLock<T, K> {}

/// The guard of a [`KLock`]; releases it when dropped.
pub struct KGuard<'a, T, K: LockKind> {
    lock: &'a KLock<T, K>,
}

impl<T: Send, K: LockKind> Lock<T> for KLock<T, K> {
    type Guard<'a>
        = KGuard<'a, T, K>
    where
        Self: 'a;

    fn new(value: T) -> KResult<Self> {
        let raw = NonNull::new(K::alloc()).ok_or(Errno::ENOMEM)?;
        Ok(KLock {
            raw,
            value: UnsafeCell::new(value),
            _kind: core::marker::PhantomData,
        })
    }

    fn lock(&self) -> KGuard<'_, T, K> {
        // SAFETY: `raw` is this KLock's live lock (type invariant).
        unsafe { K::lock(self.raw.as_ptr()) };
        KGuard { lock: self }
    }

    fn try_lock(&self) -> Option<KGuard<'_, T, K>> {
        // SAFETY: `raw` is this KLock's live lock (type invariant).
        unsafe { K::try_lock(self.raw.as_ptr()) }.then_some(KGuard { lock: self })
    }
}

impl<T, K: LockKind> Drop for KLock<T, K> {
    fn drop(&mut self) {
        // SAFETY: no guard can outlive the lock it borrows, so it is not held; it is freed once.
        unsafe { K::free(self.raw.as_ptr()) };
    }
}

impl<T, K: LockKind> Deref for KGuard<'_, T, K> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while the lock is held, so no other reference to the
        // value is live.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T, K: LockKind> DerefMut for KGuard<'_, T, K> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference through the guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T, K: LockKind> Drop for KGuard<'_, T, K> {
    fn drop(&mut self) {
        // SAFETY: a guard exists only while its lock is held by this thread.
        unsafe { K::unlock(self.lock.raw.as_ptr()) };
    }
}

// ---------------------------------------------------------------- pages

/// A zeroed kernel page (`get_zeroed_page`), freed on drop.
///
/// # Invariants
/// `va` is the kernel address of a page-aligned, `PAGE_SIZE`-byte allocation owned by this value.
pub struct KPage {
    va: NonNull<u8>,
}

// SAFETY: the page is plain memory owned by this value; all access goes through volatile
// byte copies, which are fine from any thread.
unsafe impl Send for KPage {}
// SAFETY: as above.
unsafe impl Sync for KPage {}

impl KPage {
    /// The page's kernel virtual address (for the mmap fault handler).
    pub fn va(&self) -> *mut c_void {
        self.va.as_ptr().cast()
    }
}

impl Page for KPage {
    fn pa(&self) -> u64 {
        // SAFETY: `va` is a live direct-map address (type invariant).
        unsafe { ffi::kp_virt_to_phys(self.va()) }
    }

    fn read(&self, off: usize, buf: &mut [u8]) -> bool {
        if off.checked_add(buf.len()).is_none_or(|end| end > PAGE_SIZE) {
            return false;
        }
        // Whole 8-byte words from an 8-aligned page offset, then single bytes: a byte loop
        // costs about eight times the instructions for a VMCB-sized copy.
        let words = if off % 8 == 0 { buf.len() / 8 } else { 0 };
        let (head, tail) = buf.split_at_mut(words * 8);
        for (i, w) in head.chunks_exact_mut(8).enumerate() {
            // SAFETY: `off + 8 * i + 8 <= PAGE_SIZE` and `off` is 8-aligned, so this is an
            // aligned word inside the owned page; volatile because user space may write the
            // page through its own mapping at any time.
            let v = unsafe {
                self.va
                    .as_ptr()
                    .add(off + 8 * i)
                    .cast::<u64>()
                    .read_volatile()
            };
            w.copy_from_slice(&v.to_ne_bytes());
        }
        let off = off + head.len();
        for (i, b) in tail.iter_mut().enumerate() {
            // SAFETY: `off + i < PAGE_SIZE`, inside the owned page; volatile as above.
            *b = unsafe { self.va.as_ptr().add(off + i).read_volatile() };
        }
        true
    }

    fn write(&self, off: usize, buf: &[u8]) -> bool {
        if off.checked_add(buf.len()).is_none_or(|end| end > PAGE_SIZE) {
            return false;
        }
        let words = if off % 8 == 0 { buf.len() / 8 } else { 0 };
        let (head, tail) = buf.split_at(words * 8);
        for (i, w) in head.chunks_exact(8).enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            // SAFETY: as in `read`: an aligned word inside the owned page.
            unsafe {
                self.va
                    .as_ptr()
                    .add(off + 8 * i)
                    .cast::<u64>()
                    .write_volatile(u64::from_ne_bytes(b))
            };
        }
        let off = off + head.len();
        for (i, b) in tail.iter().enumerate() {
            // SAFETY: as in `read`.
            unsafe { self.va.as_ptr().add(off + i).write_volatile(*b) };
        }
        true
    }
}

impl Drop for KPage {
    fn drop(&mut self) {
        LIVE_PAGES.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: `va` came from kp_page_zalloc and is freed once, here.
        unsafe { ffi::kp_page_free(self.va()) }
    }
}

/// A pinned user page (`pin_user_pages_fast`), unpinned on drop.
pub struct KHeld {
    page: NonNull<c_void>,
    pa: u64,
    write: bool,
}

// SAFETY: a pinned `struct page` may be unpinned from any thread.
unsafe impl Send for KHeld {}
// SAFETY: the value is immutable after creation.
unsafe impl Sync for KHeld {}

impl HeldPage for KHeld {
    fn pa(&self) -> u64 {
        self.pa
    }
    fn writable(&self) -> bool {
        self.write
    }

    fn read(&self, off: usize, buf: &mut [u8]) -> bool {
        self.copy(off, buf.as_mut_ptr(), buf.len(), false)
    }

    fn write(&self, off: usize, buf: &[u8]) -> bool {
        // CAST: the C side only reads from `buf` when copying to the page.
        self.write && self.copy(off, buf.as_ptr().cast_mut(), buf.len(), true)
    }
}

impl KHeld {
    /// Copies between the held page at `off` and `len` bytes at `buf`.
    fn copy(&self, off: usize, buf: *mut u8, len: usize, to_page: bool) -> bool {
        if off.checked_add(len).is_none_or(|end| end > PAGE_SIZE) {
            return false;
        }
        // CAST: both below PAGE_SIZE, checked above.
        let (off, len) = (off as c_uint, len as c_uint);
        // SAFETY: `page` is pinned for this value's lifetime (type invariant); the range is
        // inside the page (checked above) and `buf` is valid for `len` bytes in the direction
        // the copy goes (the callers pass a slice of that length).
        unsafe {
            ffi::kp_held_copy(
                self.page.as_ptr(),
                off,
                buf.cast(),
                len,
                c_int::from(to_page),
            )
        };
        true
    }
}

impl Drop for KHeld {
    fn drop(&mut self) {
        HELD_PAGES.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: `page` was pinned once by kp_pin_user_page and is unpinned once, here; a
        // page pinned for writing is marked dirty (the guest may have written it).
        unsafe { ffi::kp_unpin_user_page(self.page.as_ptr(), c_int::from(self.write)) }
    }
}

// ---------------------------------------------------------------- wait queues and eventfds

/// A `wait_queue_head_t`.
pub struct KWaitQueue {
    raw: NonNull<c_void>,
}

// SAFETY: wait queues are designed for use from any thread and context.
unsafe impl Send for KWaitQueue {}
// SAFETY: as above.
unsafe impl Sync for KWaitQueue {}

unsafe extern "C" fn done_trampoline(ctx: *mut c_void) -> c_int {
    // SAFETY: `ctx` is the `&&dyn Fn() -> bool` that `wait_until` passed, alive for the wait.
    let done = unsafe { &*ctx.cast::<&dyn Fn() -> bool>() };
    c_int::from(done())
}

impl WaitQueue for KWaitQueue {
    fn new() -> KResult<Self> {
        // SAFETY: allocates and initialises a wait queue head, or returns NULL.
        let raw = NonNull::new(unsafe { ffi::kp_waitq_new() }).ok_or(Errno::ENOMEM)?;
        Ok(KWaitQueue { raw })
    }

    fn wait_until(&self, done: &dyn Fn() -> bool) -> KResult<()> {
        let mut done = done;
        let ctx = (&mut done as *mut &dyn Fn() -> bool).cast::<c_void>();
        // SAFETY: `raw` is live; `ctx` points to `done`, which outlives the call.
        let r = unsafe { ffi::kp_waitq_wait(self.raw.as_ptr(), done_trampoline, ctx) };
        ffi::to_result(r.into())
    }

    fn wait_until_timeout(&self, done: &dyn Fn() -> bool, timeout_ns: u64) -> KResult<bool> {
        let mut done = done;
        let ctx = (&mut done as *mut &dyn Fn() -> bool).cast::<c_void>();
        let ns = i64::try_from(timeout_ns).unwrap_or(i64::MAX);
        // SAFETY: `raw` is live; `ctx` points to `done`, which outlives the call.
        let r = unsafe { ffi::kp_waitq_wait_timeout(self.raw.as_ptr(), done_trampoline, ctx, ns) };
        ffi::to_result(r.into()).map(|()| r > 0)
    }

    fn wake_all(&self) {
        // SAFETY: `raw` is a live wait queue.
        unsafe { ffi::kp_waitq_wake(self.raw.as_ptr()) }
    }
}

impl Drop for KWaitQueue {
    fn drop(&mut self) {
        // SAFETY: no sleeper can remain: the owner is being dropped.
        unsafe { ffi::kp_waitq_free(self.raw.as_ptr()) }
    }
}

/// A referenced `struct eventfd_ctx`.
pub struct KEventFd {
    ctx: NonNull<c_void>,
}

// SAFETY: eventfd contexts are reference-counted kernel objects usable from any thread.
unsafe impl Send for KEventFd {}
// SAFETY: as above.
unsafe impl Sync for KEventFd {}

impl EventFd for KEventFd {
    fn signal(&self) {
        // SAFETY: `ctx` holds a reference taken by kp_eventfd_get.
        unsafe { ffi::kp_eventfd_signal(self.ctx.as_ptr()) }
    }
    fn same(&self, other: &Self) -> bool {
        self.ctx == other.ctx
    }
}

impl Drop for KEventFd {
    fn drop(&mut self) {
        // SAFETY: drops the reference taken by kp_eventfd_get, once.
        unsafe { ffi::kp_eventfd_put(self.ctx.as_ptr()) }
    }
}

// ---------------------------------------------------------------- the Os

unsafe extern "C" fn each_cpu_trampoline(ctx: *mut c_void, cpu: c_uint) -> c_int {
    // SAFETY: `ctx` is the `&&(dyn Fn ...)` that `cpu_call_all` passed; on_each_cpu waits
    // for every CPU before `cpu_call_all` returns, so it is alive.
    let f = unsafe { &*ctx.cast::<&(dyn Fn(u32) -> KResult<()> + Sync)>() };
    match f(cpu) {
        Ok(()) => 0,
        Err(e) => -e.raw(),
    }
}

/// Formats a log message into a fixed buffer (truncating), so logging never allocates.
struct LineBuf {
    buf: [u8; 256],
    len: usize,
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        if let (Some(dst), Some(src)) = (
            self.buf.get_mut(self.len..self.len + n),
            s.as_bytes().get(..n),
        ) {
            dst.copy_from_slice(src);
            self.len += n;
        }
        Ok(())
    }
}

/// Writes a formatted message to the kernel log at `level` (0 error .. 3 debug).
pub fn log_args(level: c_int, args: fmt::Arguments<'_>) {
    let mut line = LineBuf {
        buf: [0; 256],
        len: 0,
    };
    let _ = line.write_fmt(args);
    // SAFETY: `buf[..len]` is initialised; kp_log prints exactly `len` bytes.
    unsafe { ffi::kp_log(level, line.buf.as_ptr().cast(), line.len) }
}

impl Os for LinuxOs {
    type Mutex<T: Send> = KLock<T, MutexKind>;
    type SpinLock<T: Send> = KLock<T, SpinKind>;
    type Page = KPage;
    type HeldPage = KHeld;
    type WaitQueue = KWaitQueue;
    type EventFd = KEventFd;

    fn page_zalloc(&self) -> KResult<KPage> {
        // SAFETY: returns a zeroed page or NULL.
        let va =
            NonNull::new(unsafe { ffi::kp_page_zalloc() }.cast::<u8>()).ok_or(Errno::ENOMEM)?;
        LIVE_PAGES.fetch_add(1, Ordering::Relaxed);
        Ok(KPage { va })
    }

    fn heap_phys_addr(&self, va: *const u8) -> Option<u64> {
        // SAFETY: virt_addr_valid only inspects the address; the translation is read only
        // for direct-map addresses, which kmalloc memory is.
        let pa = unsafe { ffi::kp_heap_virt_to_phys(va.cast()) };
        (pa != u64::MAX).then_some(pa)
    }

    fn user_range_ok(&self, addr: UserAddr, len: u64) -> bool {
        // SAFETY: access_ok only compares numbers.
        unsafe { ffi::kp_access_ok(addr.0, len) != 0 }
    }

    fn user_copy_in(&self, dst: &mut [u8], src: UserAddr) -> KResult<()> {
        // SAFETY: `dst` is a writable kernel buffer of exactly the length passed; copy_from_user
        // validates the user range itself.
        let r = unsafe { ffi::kp_copy_from_user(dst.as_mut_ptr().cast(), src.0, dst.len() as u64) };
        ffi::to_result(r.into())
    }

    fn user_copy_out(&self, dst: UserAddr, src: &[u8]) -> KResult<()> {
        // SAFETY: `src` is a readable kernel buffer of the length passed; copy_to_user
        // validates the user range itself.
        let r = unsafe { ffi::kp_copy_to_user(dst.0, src.as_ptr().cast(), src.len() as u64) };
        ffi::to_result(r.into())
    }

    fn user_page_hold(&self, addr: UserAddr, write: bool) -> KResult<KHeld> {
        let mut page = core::ptr::null_mut();
        let mut pa = 0;
        // SAFETY: the out-pointers are valid locals; the kernel validates `addr`.
        let r = unsafe { ffi::kp_pin_user_page(addr.0, c_int::from(write), &mut page, &mut pa) };
        ffi::to_result(r.into())?;
        let page = NonNull::new(page).ok_or(Errno::EFAULT)?;
        HELD_PAGES.fetch_add(1, Ordering::Relaxed);
        Ok(KHeld { page, pa, write })
    }

    fn user_mm_notifies(&self) -> bool {
        true
    }

    fn user_mm_watch(&self, listener: &dyn UserMmListener) -> KResult<Option<UserMmWatch>> {
        let mut slot: *mut c_void = core::ptr::null_mut();
        // SAFETY: `slot` is a valid out-pointer; returns NULL or an unregistered notifier.
        let k = NonNull::new(unsafe { ffi::kp_mmn_new(&mut slot) }).ok_or(Errno::ENOMEM)?;
        let ptr: *const (dyn UserMmListener + '_) = listener;
        // SAFETY: only the lifetime bound changes; the core keeps the listener alive and in
        // place until it passes the watch to `user_mm_unwatch`, after which no callback runs
        // (the `Os::user_mm_watch` contract), so the pointer is never used after that.
        let ptr: *const (dyn UserMmListener + 'static) = unsafe { core::mem::transmute(ptr) };
        // SAFETY: `slot` is the notifier's two-word `listener` field (aligned for pointers,
        // LISTENER_FITS), written here before registration and only read by
        // `kvmport_rs_mm_invalidate`.
        unsafe { slot.cast::<*const dyn UserMmListener>().write(ptr) };
        // SAFETY: `k` came from kp_mmn_new; on failure kp_mmn_register frees it.
        let r = unsafe { ffi::kp_mmn_register(k.as_ptr()) };
        ffi::to_result(r.into())?;
        Ok(Some(UserMmWatch(k.as_ptr() as u64)))
    }

    fn user_mm_unwatch(&self, watch: UserMmWatch) {
        // CAST: the value is the notifier pointer made by `user_mm_watch`.
        let k = watch.0 as usize as *mut c_void;
        // SAFETY: `k` is a registered notifier from `user_mm_watch`, handed back once.
        unsafe { ffi::kp_mmn_unregister(k) }
    }

    fn cpu_current(&self) -> u32 {
        // SAFETY: reads the current CPU number.
        unsafe { ffi::kp_cpu_current() }
    }

    fn cpu_count(&self) -> u32 {
        // SAFETY: reads nr_cpu_ids.
        unsafe { ffi::kp_cpu_count() }
    }

    fn cpu_call_all(&self, f: &(dyn Fn(u32) -> KResult<()> + Sync)) -> KResult<()> {
        let mut f = f;
        let ctx = (&mut f as *mut &(dyn Fn(u32) -> KResult<()> + Sync)).cast::<c_void>();
        // SAFETY: `ctx` points to `f`, alive until on_each_cpu (which waits) returns.
        let r = unsafe { ffi::kp_on_each_cpu(each_cpu_trampoline, ctx) };
        ffi::to_result(r.into())
    }

    fn cpu_kick(&self, cpu: u32) {
        // SAFETY: sends a no-op IPI; the C side ignores the caller's own CPU and bad numbers.
        unsafe { ffi::kp_cpu_kick(cpu) }
    }

    fn preempt_disable(&self) {
        // SAFETY: nests; paired by the caller (PreemptGuard).
        unsafe { ffi::kp_preempt_disable() }
    }

    fn preempt_enable(&self) {
        // SAFETY: pairs a preceding preempt_disable.
        unsafe { ffi::kp_preempt_enable() }
    }

    fn fpu_begin(&self) {
        // SAFETY: the backend calls this from task context with preemption disabled and
        // interrupts on, and pairs it with fpu_end (the kernel_fpu_begin contract).
        unsafe { ffi::kp_fpu_begin() }
    }

    fn fpu_end(&self) {
        // SAFETY: pairs a preceding fpu_begin on this CPU.
        unsafe { ffi::kp_fpu_end() }
    }

    fn thread_signal_pending(&self) -> bool {
        // SAFETY: reads the current task's state.
        unsafe { ffi::kp_signal_pending() != 0 }
    }

    fn thread_resched_needed(&self) -> bool {
        // SAFETY: reads the current task's flag.
        unsafe { ffi::kp_need_resched() != 0 }
    }

    fn thread_resched(&self) {
        // SAFETY: called from a preemptible context (the Os contract).
        unsafe { ffi::kp_cond_resched() }
    }

    fn thread_sigmask_swap(&self, mask: SigMask) -> SigMask {
        // SAFETY: sets the current task's blocked mask (SIGKILL/SIGSTOP stay deliverable).
        let old = unsafe { ffi::kp_sigmask_swap(u64::from_ne_bytes(mask.0)) };
        SigMask(old.to_ne_bytes())
    }

    fn process_id(&self) -> u64 {
        // SAFETY: reads current->mm (as Linux KVM compares mm to refuse other processes).
        unsafe { ffi::kp_mm_id() }
    }

    fn time_monotonic_ns(&self) -> u64 {
        // SAFETY: ktime_get_ns is callable from any context.
        unsafe { ffi::kp_time_ns() }
    }

    fn tsc_khz(&self) -> u64 {
        // SAFETY: reads tsc_khz.
        unsafe { ffi::kp_tsc_khz() }
    }

    fn eventfd_get(&self, fd: i32) -> KResult<KEventFd> {
        let mut err = 0;
        // SAFETY: `err` is a valid out-pointer; the kernel validates `fd`.
        let ctx = unsafe { ffi::kp_eventfd_get(fd, &mut err) };
        match NonNull::new(ctx) {
            Some(ctx) => Ok(KEventFd { ctx }),
            None => Err(ffi::to_result(err.into()).err().unwrap_or(Errno::EBADF)),
        }
    }

    fn log(&self, level: LogLevel, args: fmt::Arguments<'_>) {
        let level = match level {
            LogLevel::Error => 0,
            LogLevel::Warn => 1,
            LogLevel::Info => 2,
            LogLevel::Debug => 3,
        };
        log_args(level, args);
    }
}
