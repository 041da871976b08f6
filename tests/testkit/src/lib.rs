//! Test doubles for driving kvmport's core the way an OS glue would: a hosted `Os` whose
//! "user memory" is an arena registered in this test process (everything else is EFAULT), a
//! scripted `Arch` backend, and an fd table standing in for the kernel's file descriptors.
//! Backends use `Host<TheirArch>` to test through the real dispatchers.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use kvmport_core::abi::KVM_MP_STATE_RUNNABLE;
use kvmport_core::abi::ioctl::{
    KVM_GET_CPUID2, KVM_GET_MSR_INDEX_LIST, KVM_GET_MSRS, KVM_GET_SUPPORTED_CPUID, KVM_SET_CPUID2,
    KVM_SET_IDENTITY_MAP_ADDR, KVM_SET_MSRS, KVM_SET_TSS_ADDR,
};
use kvmport_core::abi::x86::{KvmCpuid2, KvmCpuidEntry2, KvmMsrEntry, KvmMsrList, KvmMsrs};
use kvmport_core::abi::x86::{KvmFpu, KvmRegs, KvmSregs};
use kvmport_core::arch::{ArchLimits, Completion, Exit, GuestPage, RunCtx};
use kvmport_core::fam::{self, TooSmall};
use kvmport_core::memslot::{Gfn, SlotChange, SlotLimits};
use kvmport_core::os::{
    EventFd, HeldPage, Lock, LogLevel, PAGE_SIZE, Page, SigMask, UserAddr, WaitQueue,
};
use kvmport_core::vm::VmInfo;
use kvmport_core::{Arch, Errno, KArc, KResult, Os, Outcome, Platform, System, VcpuFile, Vm};
use zerocopy::{FromBytes, Immutable, IntoBytes};

// ---------------------------------------------------------------- hosted Os

/// Test double: a lock over `std::sync::Mutex`.
pub struct StdLock<T>(Mutex<T>);

impl<T: Send> Lock<T> for StdLock<T> {
    type Guard<'a>
        = MutexGuard<'a, T>
    where
        Self: 'a;
    fn new(value: T) -> KResult<Self> {
        Ok(StdLock(Mutex::new(value)))
    }
    fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        match self.0.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }
}

#[repr(C, align(4096))]
struct PageBuf([std::sync::atomic::AtomicU8; PAGE_SIZE]);

/// Test double: a heap page whose "physical address" is its host address.
pub struct HostPage {
    buf: PageMem,
    live: Arc<AtomicUsize>,
}

/// Where a [`HostPage`] lives: its own allocation, or a page of this thread's contiguous pool
/// (see [`contiguous_pages`]), which is never given back.
enum PageMem {
    Owned(Box<PageBuf>),
    Pool(&'static PageBuf),
}

impl std::ops::Deref for PageMem {
    type Target = PageBuf;
    fn deref(&self) -> &PageBuf {
        match self {
            PageMem::Owned(b) => b,
            PageMem::Pool(p) => p,
        }
    }
}

/// Pages of the contiguous pool of one thread.
const POOL_PAGES: usize = 2048;

thread_local! {
    /// This thread's contiguous pool and the next free index, once asked for.
    static POOL: std::cell::RefCell<Option<(&'static [PageBuf], usize)>> =
        const { std::cell::RefCell::new(None) };
}

/// From now on, pages this thread allocates through the hosted `Os` come from one contiguous,
/// leaked region of 8 MiB (so "physical" addresses are consecutive, as a backend looking for
/// contiguous runs needs), while it lasts. For tests that run the world switch.
pub fn contiguous_pages() {
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        if p.is_none() {
            let v: Vec<PageBuf> = (0..POOL_PAGES)
                .map(|_| PageBuf(std::array::from_fn(|_| Default::default())))
                .collect();
            *p = Some((Box::leak(v.into_boxed_slice()), 0));
        }
    });
}

fn pool_page() -> Option<&'static PageBuf> {
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        let (pages, next) = p.as_mut()?;
        let page = pages.get(*next)?;
        *next += 1;
        Some(page)
    })
}

impl Page for HostPage {
    fn pa(&self) -> u64 {
        &*self.buf as *const PageBuf as u64
    }
    fn read(&self, off: usize, buf: &mut [u8]) -> bool {
        let Some(src) = self.buf.0.get(off..off.saturating_add(buf.len())) else {
            return false;
        };
        for (d, s) in buf.iter_mut().zip(src) {
            *d = s.load(Ordering::Relaxed);
        }
        true
    }
    fn write(&self, off: usize, buf: &[u8]) -> bool {
        let Some(dst) = self.buf.0.get(off..off.saturating_add(buf.len())) else {
            return false;
        };
        for (d, s) in dst.iter().zip(buf) {
            d.store(*s, Ordering::Relaxed);
        }
        true
    }
}

impl Drop for HostPage {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Test double: a held page of the arena.
pub struct HostHeld {
    pa: u64,
    write: bool,
    held: Arc<AtomicUsize>,
}

impl HeldPage for HostHeld {
    fn pa(&self) -> u64 {
        self.pa
    }
    fn writable(&self) -> bool {
        self.write
    }
    /// Reads the arena page (instruction fetch and emulation in world-switch tests).
    fn read(&self, off: usize, buf: &mut [u8]) -> bool {
        if off.checked_add(buf.len()).is_none_or(|end| end > PAGE_SIZE) {
            return false;
        }
        // SAFETY: `pa` is a page of the arena (checked by `user_page_hold`), which outlives the
        // hosted `Os` and so every held page; the range is inside that page.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (self.pa as *const u8).add(off),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        true
    }
    /// Writes the arena page, if held for writing.
    fn write(&self, off: usize, buf: &[u8]) -> bool {
        if !self.write || off.checked_add(buf.len()).is_none_or(|end| end > PAGE_SIZE) {
            return false;
        }
        // SAFETY: as in `read`; the arena is plain memory the test process owns.
        unsafe {
            std::ptr::copy_nonoverlapping(buf.as_ptr(), (self.pa as *mut u8).add(off), buf.len())
        };
        true
    }
}

impl Drop for HostHeld {
    fn drop(&mut self) {
        self.held.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Test double: a wait queue that never sleeps (there is no in-kernel halt yet).
pub struct SpinWait;
impl WaitQueue for SpinWait {
    fn new() -> KResult<Self> {
        Ok(SpinWait)
    }
    fn wait_until(&self, done: &dyn Fn() -> bool) -> KResult<()> {
        while !done() {
            std::thread::yield_now();
        }
        Ok(())
    }
    fn wait_until_timeout(&self, done: &dyn Fn() -> bool, timeout_ns: u64) -> KResult<bool> {
        let end = std::time::Instant::now() + std::time::Duration::from_nanos(timeout_ns);
        while !done() {
            if std::time::Instant::now() >= end {
                return Ok(false);
            }
            std::thread::yield_now();
        }
        Ok(true)
    }
    fn wake_all(&self) {}
}

/// Test double: an eventfd that counts signals.
#[derive(Clone)]
pub struct CountingEventFd(pub Arc<AtomicU64>);
impl EventFd for CountingEventFd {
    fn signal(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Size of the arena that plays user memory: the only memory the hosted `Os` lets the core copy
/// from or to.
pub const ARENA_SIZE: usize = 1 << 20;

/// Shared state of the hosted OS, visible to tests.
#[derive(Default)]
pub struct HostState {
    pub live_pages: Arc<AtomicUsize>,
    pub held_pages: Arc<AtomicUsize>,
    pub signal_pending: AtomicBool,
    pub resched: AtomicBool,
    pub pid: AtomicU64,
    pub cpus: AtomicU32,
    pub kicks: AtomicU32,
    pub preempt_depth: AtomicU32,
    pub sigmask: Mutex<Option<SigMask>>,
    pub eventfds: Mutex<HashMap<i32, Option<CountingEventFd>>>,
    pub log: Mutex<Vec<String>>,
    pub fail_page_alloc: AtomicBool,
    /// What `time_monotonic_ns` returns (tests move it forward).
    pub time_ns: AtomicU64,
}

/// Test double: the hosted `Os`.
pub struct HostedOs {
    /// Address of the first arena byte (page aligned); the arena outlives the `Os`.
    pub arena: u64,
    pub state: Arc<HostState>,
}

impl HostedOs {
    fn arena_range(&self) -> (u64, u64) {
        (self.arena, self.arena + ARENA_SIZE as u64)
    }

    fn check(&self, addr: UserAddr, len: usize) -> KResult<*mut u8> {
        let (start, end) = self.arena_range();
        let last = addr.0.checked_add(len as u64).ok_or(Errno::EFAULT)?;
        if addr.0 < start || last > end {
            return Err(Errno::EFAULT);
        }
        Ok(addr.0 as *mut u8)
    }
}

impl Os for HostedOs {
    type Mutex<T: Send> = StdLock<T>;
    type SpinLock<T: Send> = StdLock<T>;
    type Page = HostPage;
    type HeldPage = HostHeld;
    type WaitQueue = SpinWait;
    type EventFd = CountingEventFd;

    fn page_zalloc(&self) -> KResult<HostPage> {
        if self.state.fail_page_alloc.load(Ordering::SeqCst) {
            return Err(Errno::ENOMEM);
        }
        self.state.live_pages.fetch_add(1, Ordering::SeqCst);
        let buf = match pool_page() {
            Some(p) => PageMem::Pool(p),
            None => PageMem::Owned(Box::new(PageBuf(std::array::from_fn(|_| {
                Default::default()
            })))),
        };
        Ok(HostPage {
            buf,
            live: self.state.live_pages.clone(),
        })
    }

    fn user_range_ok(&self, addr: UserAddr, len: u64) -> bool {
        addr.0
            .checked_add(len)
            .is_some_and(|end| end <= 0x7fff_ffff_f000)
    }

    fn user_copy_in(&self, dst: &mut [u8], src: UserAddr) -> KResult<()> {
        let p = self.check(src, dst.len())?;
        // SAFETY: `check` proved `[p, p + len)` lies inside the arena, which the `Host` keeps
        // alive for longer than the `System` that owns this `Os`; tests do not copy
        // concurrently with the test thread's own arena accesses.
        unsafe { std::ptr::copy_nonoverlapping(p, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    fn user_copy_out(&self, dst: UserAddr, src: &[u8]) -> KResult<()> {
        let p = self.check(dst, src.len())?;
        // SAFETY: as in `user_copy_in`.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), p, src.len()) };
        Ok(())
    }

    fn user_page_hold(&self, addr: UserAddr, write: bool) -> KResult<HostHeld> {
        let page = addr.0 & !(PAGE_SIZE as u64 - 1);
        self.check(UserAddr(page), PAGE_SIZE)?;
        self.state.held_pages.fetch_add(1, Ordering::SeqCst);
        Ok(HostHeld {
            pa: page,
            write,
            held: self.state.held_pages.clone(),
        })
    }

    fn cpu_current(&self) -> u32 {
        0
    }
    fn cpu_count(&self) -> u32 {
        self.state.cpus.load(Ordering::SeqCst)
    }
    fn cpu_call_all(&self, f: &(dyn Fn(u32) -> KResult<()> + Sync)) -> KResult<()> {
        (0..self.cpu_count()).try_for_each(f)
    }
    fn cpu_kick(&self, _cpu: u32) {
        self.state.kicks.fetch_add(1, Ordering::SeqCst);
    }
    fn preempt_disable(&self) {
        self.state.preempt_depth.fetch_add(1, Ordering::SeqCst);
    }
    fn preempt_enable(&self) {
        self.state.preempt_depth.fetch_sub(1, Ordering::SeqCst);
    }
    /// The hosted double never runs guest code, so there is no FPU state to hand over.
    fn fpu_begin(&self) {}
    fn fpu_end(&self) {}
    fn thread_signal_pending(&self) -> bool {
        self.state.signal_pending.load(Ordering::SeqCst)
    }
    fn thread_resched_needed(&self) -> bool {
        self.state.resched.load(Ordering::SeqCst)
    }
    fn thread_resched(&self) {
        self.state.resched.store(false, Ordering::SeqCst);
    }
    fn thread_sigmask_swap(&self, mask: SigMask) -> SigMask {
        let mut cur = self.state.sigmask.lock().unwrap();
        cur.replace(mask).unwrap_or_default()
    }
    fn process_id(&self) -> u64 {
        self.state.pid.load(Ordering::SeqCst)
    }
    fn time_monotonic_ns(&self) -> u64 {
        self.state.time_ns.load(Ordering::SeqCst)
    }
    fn tsc_khz(&self) -> u64 {
        0
    }
    fn eventfd_get(&self, fd: i32) -> KResult<CountingEventFd> {
        match self.state.eventfds.lock().unwrap().get(&fd) {
            None => Err(Errno::EBADF),
            Some(None) => Err(Errno::EINVAL),
            Some(Some(e)) => Ok(e.clone()),
        }
    }
    fn log(&self, level: LogLevel, args: std::fmt::Arguments<'_>) {
        self.state
            .log
            .lock()
            .unwrap()
            .push(format!("{level:?}: {args}"));
    }
}

// ---------------------------------------------------------------- scripted Arch

/// One step of a scripted guest.
#[derive(Clone, Debug)]
pub enum Step {
    /// Return this exit.
    Exit(Exit),
    /// Write these bytes to the PIO page, then return this exit (an `OUT`).
    Out(Vec<u8>, Exit),
    /// Resolve a nested page fault and record the outcome, then return `Interrupted`.
    Fault { gfn: u64, write: bool },
    /// Go through `guest_enter`/`guest_exit` and return `Interrupted` (or report a refused
    /// entry).
    Enter,
    /// Raise a "signal" in the hosted OS, then return `Interrupted`.
    Signal,
    /// Fail with an errno.
    Fail(Errno),
}

/// What the scripted backend saw, for assertions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    Completion(Completion),
    Fault {
        gfn: u64,
        ram: bool,
        writable: bool,
        log_dirty: bool,
    },
    EnterRefused,
    Entered,
    Slots(SlotChange),
    Rearm {
        as_id: u16,
        first: u64,
        count: u64,
    },
    CpuEnable(u32),
    CpuDisable(u32),
    IrqWindowRequested,
}

/// Test double: a backend that replays a script instead of running a guest.
pub struct ScriptedArch {
    pub script: Mutex<VecDeque<Step>>,
    pub seen: Mutex<Vec<Seen>>,
    pub state: Arc<HostState>,
}

/// Per-vCPU state of the scripted backend.
pub struct ScriptedVcpu {
    pub regs: KvmRegs,
    pub sregs: KvmSregs,
    pub fpu: KvmFpu,
    pub mp_state: u32,
    pub cpuid: Vec<KvmCpuidEntry2>,
    pub msrs: HashMap<u32, u64>,
}

/// The MSRs the scripted backend pretends to support.
pub const SUPPORTED_MSRS: [u32; 3] = [0x174, 0x175, 0x176];

pub fn cpuid_leaf(function: u32, eax: u32) -> KvmCpuidEntry2 {
    KvmCpuidEntry2 {
        function,
        eax,
        ..Default::default()
    }
}

impl ScriptedArch {
    pub fn push(&self, step: Step) {
        self.script.lock().unwrap().push_back(step);
    }
    pub fn seen(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
    fn note(&self, s: Seen) {
        self.seen.lock().unwrap().push(s);
    }
}

pub const MAX_GFN: u64 = (1 << 40) - 1;

impl Arch<HostedOs> for ScriptedArch {
    const NAME: &'static str = "scripted";
    type Regs = KvmRegs;
    type Sregs = KvmSregs;
    type Fpu = KvmFpu;
    type Vm = ();
    type Vcpu = ScriptedVcpu;

    fn probe(os: &HostedOs) -> KResult<Self> {
        Ok(ScriptedArch {
            script: Mutex::new(VecDeque::new()),
            seen: Mutex::new(Vec::new()),
            state: os.state.clone(),
        })
    }
    fn cpu_enable(&self, _os: &HostedOs, cpu: u32) -> KResult<()> {
        self.note(Seen::CpuEnable(cpu));
        Ok(())
    }
    fn cpu_disable(&self, _os: &HostedOs, cpu: u32) {
        self.note(Seen::CpuDisable(cpu));
    }
    fn limits(&self) -> ArchLimits {
        ArchLimits {
            max_vcpus: 1024,
            max_vcpu_ids: 4096,
            nr_vcpus: 1024,
            slots: SlotLimits {
                address_spaces: 2,
                slots: 32764,
                max_gfn: MAX_GFN,
                readonly: true,
            },
            vcpu_mmap_pages: 3,
            pio_page: Some(1),
            sync_regs: 0,
        }
    }
    fn check_extension(&self, cap: u64, _vm: Option<&()>) -> Option<i64> {
        // The backend owns KVM_CAP_HLT (1).
        (cap == 1).then_some(1)
    }
    fn system_ioctl(&self, os: &HostedOs, cmd: u32, arg: u64) -> Option<KResult<i64>> {
        let addr = UserAddr(arg);
        match cmd {
            KVM_GET_MSR_INDEX_LIST => Some(
                fam::write::<_, KvmMsrList>(os, addr, &SUPPORTED_MSRS, TooSmall::WriteCount)
                    .map(|()| 0),
            ),
            KVM_GET_SUPPORTED_CPUID => {
                let leaves = [cpuid_leaf(0, 0xd), cpuid_leaf(1, 0x00a0_0f11)];
                Some(fam::write::<_, KvmCpuid2>(os, addr, &leaves, TooSmall::KeepCount).map(|()| 0))
            }
            _ => None,
        }
    }
    fn vm_create(&self, _os: &HostedOs, vm_type: u64) -> KResult<()> {
        if vm_type == 0 {
            Ok(())
        } else {
            Err(Errno::EINVAL)
        }
    }
    fn vm_ioctl(
        &self,
        _: &HostedOs,
        _: &(),
        info: &VmInfo,
        cmd: u32,
        _arg: u64,
    ) -> Option<KResult<i64>> {
        match cmd {
            KVM_SET_TSS_ADDR => Some(Ok(0)),
            KVM_SET_IDENTITY_MAP_ADDR => Some(if info.created_vcpus > 0 {
                Err(Errno::EINVAL)
            } else {
                Ok(0)
            }),
            _ => None,
        }
    }
    fn vm_slots_changed(&self, _os: &HostedOs, _vm: &(), change: SlotChange) {
        self.note(Seen::Slots(change));
    }
    fn vm_dirty_rearm(&self, _os: &HostedOs, _vm: &(), as_id: u16, first: Gfn, count: u64) {
        self.note(Seen::Rearm {
            as_id,
            first: first.0,
            count,
        });
    }
    fn vcpu_create(&self, _os: &HostedOs, _vm: &(), _id: u32) -> KResult<ScriptedVcpu> {
        Ok(ScriptedVcpu {
            regs: KvmRegs {
                rflags: 2,
                ..Default::default()
            },
            sregs: KvmSregs::default(),
            fpu: KvmFpu::default(),
            mp_state: KVM_MP_STATE_RUNNABLE,
            cpuid: Vec::new(),
            msrs: HashMap::new(),
        })
    }
    fn vcpu_get_regs(&self, v: &ScriptedVcpu) -> KResult<KvmRegs> {
        Ok(v.regs)
    }
    fn vcpu_set_regs(&self, v: &mut ScriptedVcpu, regs: &KvmRegs) -> KResult<()> {
        v.regs = *regs;
        v.regs.rflags |= 2;
        Ok(())
    }
    fn vcpu_get_sregs(&self, v: &ScriptedVcpu) -> KResult<KvmSregs> {
        Ok(v.sregs)
    }
    fn vcpu_set_sregs(&self, v: &mut ScriptedVcpu, s: &KvmSregs) -> KResult<()> {
        // One rule of the real thing: CR0.PG without CR0.PE is invalid.
        if s.cr0 & (1 << 31) != 0 && s.cr0 & 1 == 0 {
            return Err(Errno::EINVAL);
        }
        v.sregs = *s;
        Ok(())
    }
    fn vcpu_get_fpu(&self, v: &ScriptedVcpu) -> KResult<KvmFpu> {
        Ok(v.fpu)
    }
    fn vcpu_set_fpu(&self, v: &mut ScriptedVcpu, f: &KvmFpu) -> KResult<()> {
        v.fpu = *f;
        Ok(())
    }
    fn vcpu_get_mp_state(&self, v: &ScriptedVcpu) -> KResult<u32> {
        Ok(v.mp_state)
    }
    fn vcpu_set_mp_state(&self, v: &mut ScriptedVcpu, state: u32) -> KResult<()> {
        // Without an in-kernel interrupt chip only RUNNABLE is accepted (as on x86 Linux).
        if state != KVM_MP_STATE_RUNNABLE {
            return Err(Errno::EINVAL);
        }
        v.mp_state = state;
        Ok(())
    }
    fn vcpu_ioctl(
        &self,
        os: &HostedOs,
        _: &(),
        v: &mut ScriptedVcpu,
        cmd: u32,
        arg: u64,
    ) -> Option<KResult<i64>> {
        let addr = UserAddr(arg);
        Some(match cmd {
            KVM_SET_CPUID2 => fam::read::<_, KvmCpuid2>(os, addr).map(|(_, e)| {
                v.cpuid = e;
                0
            }),
            KVM_GET_CPUID2 => {
                fam::write::<_, KvmCpuid2>(os, addr, &v.cpuid, TooSmall::KeepCount).map(|()| 0)
            }
            // Like Linux: process entries in order, stop at the first unknown MSR, and return
            // how many were done.
            KVM_GET_MSRS | KVM_SET_MSRS => {
                fam::read::<_, KvmMsrs>(os, addr).and_then(|(_, mut e)| {
                    let mut done = 0;
                    for m in e.iter_mut() {
                        if !SUPPORTED_MSRS.contains(&m.index) {
                            break;
                        }
                        if cmd == KVM_SET_MSRS {
                            v.msrs.insert(m.index, m.data);
                        } else {
                            m.data = v.msrs.get(&m.index).copied().unwrap_or(0);
                        }
                        done += 1;
                    }
                    if cmd == KVM_GET_MSRS {
                        let at = UserAddr(arg + std::mem::size_of::<KvmMsrs>() as u64);
                        kvmport_core::user::write_array::<_, KvmMsrEntry>(os, at, &e[..done])?;
                    }
                    Ok(done as i64)
                })
            }
            _ => return None,
        })
    }
    fn vcpu_complete(&self, ctx: &mut RunCtx<'_, HostedOs, Self>, done: Completion) -> KResult<()> {
        if let Completion::Io {
            input: true,
            size,
            count,
        } = done
        {
            // Load the IN data into RAX like a real backend would for a 1-count access.
            let mut b = [0u8; 8];
            let n = (usize::from(size) * count as usize).min(8);
            ctx.pio_read(0, &mut b[..n]);
            ctx.vcpu().regs.rax = u64::from_le_bytes(b);
        }
        if let Completion::Mmio {
            read: true,
            len,
            data,
        } = done
        {
            let mut b = [0u8; 8];
            b[..usize::from(len)].copy_from_slice(&data[..usize::from(len)]);
            ctx.vcpu().regs.rax = u64::from_le_bytes(b);
        }
        self.note(Seen::Completion(done));
        Ok(())
    }
    fn vcpu_run(&self, ctx: &mut RunCtx<'_, HostedOs, Self>) -> KResult<Exit> {
        if ctx.request_interrupt_window() {
            self.note(Seen::IrqWindowRequested);
        }
        let step = self.script.lock().unwrap().pop_front();
        match step {
            // An exhausted script is a test bug: fail loudly but without a panic in the core.
            None => Err(Errno::ENOSYS),
            Some(Step::Exit(e)) => Ok(e),
            Some(Step::Out(bytes, e)) => {
                assert!(ctx.pio_write(0, &bytes));
                Ok(e)
            }
            Some(Step::Fault { gfn, write }) => {
                let seen = match ctx.gfn_resolve(0, Gfn(gfn), write)? {
                    GuestPage::Ram {
                        writable,
                        log_dirty,
                        page,
                    } => {
                        assert_eq!(page.pa() % PAGE_SIZE as u64, 0);
                        Seen::Fault {
                            gfn,
                            ram: true,
                            writable,
                            log_dirty,
                        }
                    }
                    GuestPage::Mmio => Seen::Fault {
                        gfn,
                        ram: false,
                        writable: false,
                        log_dirty: false,
                    },
                };
                self.note(seen);
                Ok(Exit::Interrupted)
            }
            Some(Step::Enter) => {
                let _p = ctx.preempt_disable();
                if ctx.guest_enter() {
                    self.note(Seen::Entered);
                    ctx.guest_exit();
                } else {
                    self.note(Seen::EnterRefused);
                }
                Ok(Exit::Interrupted)
            }
            Some(Step::Signal) => {
                self.state.signal_pending.store(true, Ordering::SeqCst);
                Ok(Exit::Interrupted)
            }
            Some(Step::Fail(e)) => Err(e),
        }
    }
}

/// A platform of the hosted OS and backend `A`.
pub struct TestPlatform<A = ScriptedArch>(std::marker::PhantomData<A>);
impl<A: Arch<HostedOs>> Platform for TestPlatform<A> {
    type Os = HostedOs;
    type Arch = A;
}

// ---------------------------------------------------------------- the fd table

/// What an fd refers to, as the OS glue would keep it.
pub enum File<A: Arch<HostedOs> = ScriptedArch> {
    System,
    Vm(KArc<Vm<TestPlatform<A>>>),
    Vcpu(KArc<VcpuFile<TestPlatform<A>>>),
}

/// The glue stand-in: an fd table over one `System`, and an arena for user memory.
pub struct Host<A: Arch<HostedOs> = ScriptedArch> {
    pub sys: Option<KArc<System<TestPlatform<A>>>>,
    pub files: HashMap<i32, File<A>>,
    pub next_fd: i32,
    pub state: Arc<HostState>,
    /// What the scripted backend saw while the system was created (per-CPU enables).
    pub boot_seen: Vec<Seen>,
    arena: Vec<u8>,
    arena_base: usize,
    arena_used: usize,
}

pub const SYS_FD: i32 = 3;

impl Default for Host<ScriptedArch> {
    fn default() -> Self {
        Self::new()
    }
}

impl Host<ScriptedArch> {
    /// A host with the scripted backend.
    pub fn new() -> Self {
        let mut h = Self::with_arch().expect("system");
        h.boot_seen = h.arch().seen();
        h
    }

    pub fn arch(&self) -> &ScriptedArch {
        self.sys().arch()
    }
}

impl<A: Arch<HostedOs>> Host<A> {
    /// A host whose backend is `A` (probed like a real module load would).
    pub fn with_arch() -> KResult<Self> {
        let state = Arc::new(HostState::default());
        state.cpus.store(2, Ordering::SeqCst);
        state.pid.store(100, Ordering::SeqCst);
        let arena = vec![0u8; ARENA_SIZE + PAGE_SIZE];
        let arena_base = arena.as_ptr().align_offset(PAGE_SIZE);
        let os = HostedOs {
            arena: arena.as_ptr() as u64 + arena_base as u64,
            state: state.clone(),
        };
        let sys = System::<TestPlatform<A>>::new(os)?;
        let mut files = HashMap::new();
        files.insert(SYS_FD, File::System);
        Ok(Host {
            sys: Some(sys),
            files,
            next_fd: 10,
            state,
            boot_seen: Vec::new(),
            arena,
            arena_base,
            arena_used: 0,
        })
    }

    pub fn sys(&self) -> &KArc<System<TestPlatform<A>>> {
        self.sys.as_ref().unwrap()
    }

    /// `ioctl(fd, cmd, arg)` as user space sees it: a value, a new fd number, or an errno.
    pub fn ioctl(&mut self, fd: i32, cmd: u32, arg: u64) -> Result<i64, Errno> {
        let outcome = match self.files.get(&fd).ok_or(Errno::EBADF)? {
            File::System => System::ioctl(self.sys(), cmd, arg)?,
            File::Vm(vm) => Vm::ioctl(vm, cmd, arg)?,
            File::Vcpu(v) => Outcome::Value(v.ioctl(cmd, arg)?),
        };
        Ok(match outcome {
            Outcome::Value(v) => v,
            Outcome::Vm(vm) => self.install(File::Vm(vm)),
            Outcome::Vcpu(v) => self.install(File::Vcpu(v)),
        })
    }

    fn install(&mut self, f: File<A>) -> i64 {
        let fd = self.next_fd;
        self.next_fd += 1;
        self.files.insert(fd, f);
        i64::from(fd)
    }

    pub fn close(&mut self, fd: i32) {
        assert!(self.files.remove(&fd).is_some(), "closing fd {fd} twice");
    }

    pub fn vcpu_file(&self, fd: i32) -> &KArc<VcpuFile<TestPlatform<A>>> {
        match self.files.get(&fd) {
            Some(File::Vcpu(v)) => v,
            _ => panic!("fd {fd} is not a vCPU"),
        }
    }

    /// Reads `T` at byte `off` of the vCPU mapping (what `mmap` would show).
    pub fn run_get<T: FromBytes + IntoBytes>(&self, fd: i32, off: usize) -> T {
        let v = self.vcpu_file(fd);
        let mut out = T::new_zeroed();
        let page = v
            .vcpu()
            .mmap_page((off / PAGE_SIZE) as u64)
            .expect("mapped page");
        assert!(page.read(off % PAGE_SIZE, out.as_mut_bytes()));
        out
    }

    /// Writes `T` at byte `off` of the vCPU mapping.
    pub fn run_set<T: IntoBytes + Immutable>(&self, fd: i32, off: usize, val: &T) {
        let v = self.vcpu_file(fd);
        let page = v
            .vcpu()
            .mmap_page((off / PAGE_SIZE) as u64)
            .expect("mapped page");
        assert!(page.write(off % PAGE_SIZE, val.as_bytes()));
    }

    fn arena_addr(&self) -> u64 {
        self.arena.as_ptr() as u64 + self.arena_base as u64
    }

    fn arena_off(&self, addr: u64) -> usize {
        self.arena_base + (addr - self.arena_addr()) as usize
    }

    /// Allocates `len` bytes of user memory (zeroed), aligned to `align`.
    pub fn alloc(&mut self, len: usize, align: usize) -> u64 {
        let start = self.arena_used.next_multiple_of(align);
        assert!(start + len <= ARENA_SIZE, "arena exhausted");
        self.arena_used = start + len;
        self.arena[self.arena_base + start..self.arena_base + start + len].fill(0);
        self.arena_addr() + start as u64
    }

    /// Allocates the last `len` bytes of user memory: anything past them faults.
    pub fn alloc_at_end(&mut self, len: usize) -> u64 {
        assert!(self.arena_used + len <= ARENA_SIZE, "arena exhausted");
        self.arena_used = ARENA_SIZE;
        self.arena_addr() + (ARENA_SIZE - len) as u64
    }

    /// Copies a value into fresh user memory and returns its address.
    pub fn put<T: IntoBytes + Immutable>(&mut self, v: &T) -> u64 {
        let addr = self.alloc(std::mem::size_of::<T>().max(1), 8);
        self.write(addr, v.as_bytes());
        addr
    }

    pub fn write(&mut self, addr: u64, bytes: &[u8]) {
        let off = self.arena_off(addr);
        self.arena[off..off + bytes.len()].copy_from_slice(bytes);
    }

    pub fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let off = self.arena_off(addr);
        self.arena[off..off + len].to_vec()
    }

    /// Reads a `T` back from user memory.
    pub fn get<T: FromBytes>(&self, addr: u64) -> T {
        T::read_from_bytes(&self.read(addr, std::mem::size_of::<T>())).unwrap()
    }

    /// Registers a fake eventfd under `fd` (or a non-eventfd file when `None`).
    pub fn add_eventfd(&self, fd: i32, efd: Option<CountingEventFd>) {
        self.state.eventfds.lock().unwrap().insert(fd, efd);
    }

    /// A VM fd and one vCPU fd with id 0.
    pub fn vm_and_vcpu(&mut self) -> (i32, i32) {
        let vm = self
            .ioctl(SYS_FD, kvmport_core::abi::ioctl::KVM_CREATE_VM, 0)
            .unwrap() as i32;
        let vcpu = self
            .ioctl(vm, kvmport_core::abi::ioctl::KVM_CREATE_VCPU, 0)
            .unwrap() as i32;
        (vm, vcpu)
    }

    /// Closes everything and drops the system; returns the pages still live (a leak count).
    /// (Fields drop in declaration order, so `sys` and `files` always go before the arena.)
    pub fn shutdown(mut self) -> usize {
        self.files.clear();
        self.sys = None;
        self.state.live_pages.load(Ordering::SeqCst) + self.state.held_pages.load(Ordering::SeqCst)
    }
}
