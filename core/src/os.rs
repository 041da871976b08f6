//! The `Os` port: everything the core needs from a kernel.
//!
//! Modelled on the smallest published port interfaces (NetBSD NVMM's `nvmm_os.h`, HAXM's
//! `hax.h`) and grouped the same way: types, locks, memory, user memory, CPUs, preemption,
//! threads, time, event notification, logging. Methods are named object-then-verb. Kernel
//! objects are opaque associated types; the core never sees a kernel's own names.
//!
//! Contexts named in the docs:
//! - *preemptible*: a normal thread context (an ioctl handler), which may sleep;
//! - *atomic*: preemption or interrupts disabled; must not sleep;
//! - *any CPU*: no assumption about which CPU runs the call.

use core::fmt;
use core::ops::DerefMut;

use crate::errno::{Errno, KResult};

/// The size of a page on every architecture kvmport serves (the KVM ABI's `PAGE_SIZE`).
pub const PAGE_SIZE: usize = 4096;
/// `log2(PAGE_SIZE)`.
pub const PAGE_SHIFT: u32 = 12;

/// An address in the calling process's user address space. Never dereferenced by the core:
/// only [`Os::user_copy_in`] and [`Os::user_copy_out`] touch user memory.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UserAddr(pub u64);

impl UserAddr {
    /// The null user pointer.
    pub const NULL: UserAddr = UserAddr(0);

    /// This address plus `off` bytes, or `EFAULT` on overflow.
    pub fn offset(self, off: u64) -> KResult<UserAddr> {
        self.0.checked_add(off).map(UserAddr).ok_or(Errno::EFAULT)
    }

    /// Whether this is the null pointer.
    pub fn is_null(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Debug for UserAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UVA:{:#x}", self.0)
    }
}

/// A lock supplied by the OS. The core only ever takes it through [`Lock::lock`] and holds the
/// guard for a bounded section.
pub trait Lock<T>: Send + Sync + Sized {
    /// The guard; dropping it releases the lock.
    type Guard<'a>: DerefMut<Target = T>
    where
        Self: 'a;

    /// Creates a lock around `value`. May allocate (kernel locks that must not move live out
    /// of line), hence fallible. Preemptible context.
    fn new(value: T) -> KResult<Self>;

    /// Takes the lock, waiting as long as needed. A sleeping lock may only be taken in a
    /// preemptible context; a spin lock may be taken anywhere and disables preemption while
    /// held.
    fn lock(&self) -> Self::Guard<'_>;

    /// Takes the lock only if that needs no waiting: `None` when it is held. Never sleeps, so
    /// it may be used where sleeping is forbidden (a non-blockable MMU-notifier call). The
    /// default always gives `None`; ports that deliver user-memory invalidations
    /// ([`Os::user_mm_watch`]) implement it.
    fn try_lock(&self) -> Option<Self::Guard<'_>> {
        None
    }
}

/// A zeroed, physically contiguous, page-aligned page of kernel memory owned by the core.
/// Freed when dropped. User space may map it (the `kvm_run` page), so its contents can change
/// at any time: the core reads and writes it only through these copying methods and treats
/// every value read as hostile.
pub trait Page: Send + Sync {
    /// The page's physical address (page aligned).
    fn pa(&self) -> u64;
    /// Copies `buf.len()` bytes starting at byte `off` of the page into `buf`. Returns `false`
    /// (copying nothing) when the range is not inside the page. Any context.
    fn read(&self, off: usize, buf: &mut [u8]) -> bool;
    /// Copies `buf` into the page at byte `off`. Returns `false` (copying nothing) when the
    /// range is not inside the page. Any context.
    fn write(&self, off: usize, buf: &[u8]) -> bool;
}

/// A page of user memory that has been resolved and is held (pinned) so that its physical
/// address stays valid until this value is dropped.
pub trait HeldPage: Send + Sync {
    /// The physical address of the held page.
    fn pa(&self) -> u64;
    /// Whether the page was resolved for writing.
    fn writable(&self) -> bool;
    /// Copies `buf.len()` bytes at byte `off` of the page into `buf` (instruction fetch and
    /// emulation). `false`, copying nothing, when the range is not inside the page. The guest
    /// and user space may change the page at any time. Preemptible context.
    fn read(&self, off: usize, buf: &mut [u8]) -> bool;
    /// Copies `buf` into the page at byte `off`. `false`, copying nothing, when the range is
    /// not inside the page or the page was not resolved for writing. Preemptible context.
    fn write(&self, off: usize, buf: &[u8]) -> bool;
}

/// A queue a halted vCPU thread sleeps on until another thread wakes it.
pub trait WaitQueue: Send + Sync + Sized {
    /// A new, empty queue. Preemptible context.
    fn new() -> KResult<Self>;
    /// Sleeps until `done()` is true, re-checking it after every wake-up. Returns `EINTR`
    /// if a signal arrives first. Preemptible context.
    fn wait_until(&self, done: &dyn Fn() -> bool) -> KResult<()>;
    /// Like [`WaitQueue::wait_until`], but gives up after about `timeout_ns` nanoseconds:
    /// `Ok(true)` when `done()` became true, `Ok(false)` on the timeout, `EINTR` on a signal.
    /// Preemptible context. The default returns `Ok(false)` at once when `done()` is false
    /// (callers then poll); kernels with timed sleeps override it.
    fn wait_until_timeout(&self, done: &dyn Fn() -> bool, timeout_ns: u64) -> KResult<bool> {
        let _ = timeout_ns;
        Ok(done())
    }
    /// Wakes every sleeper. Any context, including atomic.
    fn wake_all(&self);
}

/// A reference to an eventfd (or the OS's equivalent) taken from a user file descriptor.
pub trait EventFd: Send + Sync {
    /// Adds one to the counter and wakes its readers. Linux and FreeBSD allow any context,
    /// including atomic; the core itself calls it only from a preemptible context (a vCPU
    /// thread after a guest exit, holding the VM's sleeping I/O-bus mutex), which a port
    /// whose signal may block (illumos: a kernel write to the eventfd device) relies on.
    fn signal(&self);
    /// Whether two references name the same underlying eventfd.
    fn same(&self, other: &Self) -> bool;
}

/// Something told when user memory of the process that created it is about to be unmapped or
/// changed (a VM; see [`Os::user_mm_watch`]).
pub trait UserMmListener: Send + Sync {
    /// The process's mapping of user addresses `[start, end)` is about to be unmapped or
    /// changed (`munmap`, `mmap(MAP_FIXED)`, `madvise(MADV_DONTNEED)`, a truncated file, page
    /// migration, ...), or the whole address space is going away (`start` 0, `end`
    /// `u64::MAX`). Before returning, the listener must stop using every page it resolved in
    /// that range: no guest may reach one afterwards, and held pages are released.
    ///
    /// With `blockable` false the call must not sleep (Linux's
    /// `mmu_notifier_range_blockable`): then it returns `EAGAIN` when the work would need to
    /// sleep, and the kernel retries or gives up. Any other error is never returned. Called
    /// in the kernel's memory-management paths, possibly with the process's address-space
    /// lock, a file's mapping lock or a page lock held: the listener takes only its own
    /// locks.
    fn user_range_invalidate(&self, start: u64, end: u64, blockable: bool) -> KResult<()>;

    /// The kernel has finished the change announced by a call of
    /// [`UserMmListener::user_range_invalidate`] with the same range (the old pages are out
    /// of the process's page tables). Called once after each such call, also after one that
    /// returned `EAGAIN`; never sleeps. Until it comes, a page resolved in the range may still
    /// be the old one, so the listener must not start using pages resolved meanwhile.
    fn user_range_invalidate_end(&self, start: u64, end: u64);
}

/// A registration made by [`Os::user_mm_watch`]: a value only the glue interprets, handed
/// back once to [`Os::user_mm_unwatch`].
#[derive(Debug, PartialEq, Eq)]
pub struct UserMmWatch(pub u64);

/// Importance of a log message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    /// Something is wrong with the host or the module.
    Error,
    /// Something unusual that a guest or user may have caused.
    Warn,
    /// Normal operation (load, unload, backend chosen).
    Info,
    /// Detail for developers.
    Debug,
}

/// An opaque signal mask in the form the OS uses for `KVM_SET_SIGNAL_MASK` (the ABI carries
/// eight bytes on every architecture kvmport serves).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SigMask(pub [u8; 8]);

/// Everything the core needs from a kernel. One value of the implementing type lives for the
/// lifetime of the module; methods take `&self` and may be called from several threads at
/// once.
pub trait Os: Send + Sync + Sized + 'static {
    // ----- Types -----

    /// A sleeping lock (a kernel mutex).
    type Mutex<T: Send>: Lock<T>;
    /// A spin lock, usable in atomic context.
    type SpinLock<T: Send>: Lock<T>;
    /// A page of kernel memory.
    type Page: Page;
    /// A held page of user memory.
    type HeldPage: HeldPage;
    /// A queue for sleeping vCPU threads.
    type WaitQueue: WaitQueue;
    /// A referenced eventfd.
    type EventFd: EventFd;

    // ----- Memory -----

    /// Allocates one zeroed page, or `ENOMEM`. Preemptible context.
    fn page_zalloc(&self) -> KResult<Self::Page>;

    /// The physical address of `va`, which points into memory from the global allocator (a
    /// `Box` the backend owns), or `None` when the glue cannot say. A backend uses it to hand
    /// the processor a structure it also reads and writes as Rust data (the SVM VMCB), instead
    /// of copying to and from a [`Os::page_zalloc`] page; the structure must not cross a page.
    /// Any context.
    fn heap_phys_addr(&self, va: *const u8) -> Option<u64> {
        let _ = va;
        None
    }

    // ----- User memory -----

    /// Whether `[addr, addr + len)` lies wholly inside the user part of the address space
    /// (Linux's `access_ok`): no overflow, below the user/kernel split. Says nothing about
    /// whether the memory is mapped. Any context.
    fn user_range_ok(&self, addr: UserAddr, len: u64) -> bool;

    /// Copies `dst.len()` bytes from user memory at `src` into `dst`. Fails with `EFAULT` if
    /// any byte is not readable (then `dst` may be partly written). Preemptible context of the
    /// process that owns the memory.
    fn user_copy_in(&self, dst: &mut [u8], src: UserAddr) -> KResult<()>;

    /// Copies `src` to user memory at `dst`. Fails with `EFAULT` if any byte is not writable.
    /// Preemptible context of the process that owns the memory.
    fn user_copy_out(&self, dst: UserAddr, src: &[u8]) -> KResult<()>;

    /// Resolves the user page containing `addr` (faulting it in if needed) and holds it so its
    /// physical address stays valid until the returned value is dropped. `EFAULT` if there is
    /// no such mapping or it lacks the access asked for. Preemptible context of the owning
    /// process. When user space later unmaps or changes the mapping, a port with
    /// [`Os::user_mm_watch`] tells the VM, which releases the page. Called with no core lock
    /// held (resolving may take the process's address-space lock, which the kernel holds
    /// while it calls [`UserMmListener::user_range_invalidate`]).
    fn user_page_hold(&self, addr: UserAddr, write: bool) -> KResult<Self::HeldPage>;

    /// Whether this port delivers user-memory invalidations through [`Os::user_mm_watch`]
    /// (Linux: MMU notifiers). The core then reports `KVM_CAP_SYNC_MMU`. Default: `false`.
    fn user_mm_notifies(&self) -> bool {
        false
    }

    /// Registers `listener` to be told ([`UserMmListener::user_range_invalidate`]) whenever
    /// the calling process's user memory is about to be unmapped or changed, until
    /// [`Os::user_mm_unwatch`]. `Ok(None)` when the port has no such notification (then held
    /// pages stay held until a memslot change, and user space must not give back slot
    /// memory while the VM uses it). Preemptible context of the owning process, no core lock
    /// held.
    ///
    /// The core guarantees that `listener` stays alive at the same address until it has
    /// passed the returned watch to [`Os::user_mm_unwatch`]; the glue may keep a pointer to
    /// it until then. Default: `Ok(None)`.
    fn user_mm_watch(&self, listener: &dyn UserMmListener) -> KResult<Option<UserMmWatch>> {
        let _ = listener;
        Ok(None)
    }

    /// Ends a registration of [`Os::user_mm_watch`]. When it returns, no call to the
    /// listener is running or will start. Preemptible context, no core lock held (it may
    /// wait for running calls). Default: nothing.
    fn user_mm_unwatch(&self, watch: UserMmWatch) {
        let _ = watch;
    }

    // ----- CPUs -----

    /// The CPU the caller runs on. Meaningful only with preemption disabled. Any context.
    fn cpu_current(&self) -> u32;
    /// The number of possible CPUs; CPU numbers are below it. Any context.
    fn cpu_count(&self) -> u32;
    /// Runs `f(cpu)` on every online CPU, each call with preemption disabled on that CPU, and
    /// returns the first error. Preemptible context.
    fn cpu_call_all(&self, f: &(dyn Fn(u32) -> KResult<()> + Sync)) -> KResult<()>;
    /// Interrupts `cpu` (an IPI) so that a guest running there exits to the host. Does
    /// nothing if `cpu` is the caller's. Any context.
    fn cpu_kick(&self, cpu: u32);
    /// Whether the host kernel itself enables the virtualization extension on every CPU and
    /// owns its per-CPU setup (illumos: the hypervisor-management layer, HMA, sets `EFER.SVME`
    /// and `VM_HSAVE_PA` for every registered hypervisor). The backend then only checks that
    /// the extension is on and never changes that setup. Default: `false`, the backend
    /// enables it itself.
    fn virt_host_managed(&self) -> bool {
        false
    }

    // ----- Preemption -----

    /// Disables preemption (nests). Any context.
    fn preempt_disable(&self);
    /// Re-enables preemption after [`Os::preempt_disable`]. Any context.
    fn preempt_enable(&self);

    // ----- Floating point -----

    /// Hands the CPU's FPU/SIMD registers (x87, SSE, AVX, `XCR0`) to the caller until
    /// [`Os::fpu_end`]: the OS first saves the calling thread's own values and restores them
    /// before the thread next needs them (Linux: `kernel_fpu_begin_mask`). The backend then
    /// loads the guest's state for the world switch and saves it back afterwards. Call with
    /// preemption disabled, interrupts enabled; not nestable.
    fn fpu_begin(&self);
    /// Ends [`Os::fpu_begin`]. Call with interrupts enabled.
    fn fpu_end(&self);

    // ----- The calling thread -----

    /// Whether a signal is pending for the calling thread. Any context.
    fn thread_signal_pending(&self) -> bool;
    /// Whether the scheduler wants the CPU back. Any context.
    fn thread_resched_needed(&self) -> bool;
    /// Gives the CPU to the scheduler if it wants it. Preemptible context.
    fn thread_resched(&self);
    /// Installs `mask` as the calling thread's blocked-signal mask and returns the previous
    /// one (used around guest execution for `KVM_SET_SIGNAL_MASK`). Preemptible context.
    fn thread_sigmask_swap(&self, mask: SigMask) -> SigMask;
    /// An identifier of the calling process, to refuse use of a VM from another process
    /// (Linux returns `EIO`). Any context.
    fn process_id(&self) -> u64;

    // ----- Time -----

    /// Monotonic time in nanoseconds. Any context.
    fn time_monotonic_ns(&self) -> u64;
    /// The host TSC frequency in kHz (0 if unknown). Any context.
    fn tsc_khz(&self) -> u64;

    // ----- Event notification -----

    /// Takes a reference to the eventfd behind the caller's file descriptor `fd`: `EBADF` if
    /// `fd` is not open, `EINVAL` if it is not an eventfd. Preemptible context.
    fn eventfd_get(&self, fd: i32) -> KResult<Self::EventFd>;

    // ----- Logging -----

    /// Writes a message to the kernel log. Any context.
    fn log(&self, level: LogLevel, args: fmt::Arguments<'_>);
}

/// Disables preemption for as long as the guard lives.
#[must_use]
pub struct PreemptGuard<'a, O: Os> {
    os: &'a O,
}

impl<'a, O: Os> PreemptGuard<'a, O> {
    /// Disables preemption until the guard is dropped.
    pub fn new(os: &'a O) -> Self {
        os.preempt_disable();
        PreemptGuard { os }
    }
}

impl<O: Os> Drop for PreemptGuard<'_, O> {
    fn drop(&mut self) {
        self.os.preempt_enable();
    }
}
