//! The vCPU object behind a vCPU fd: register classes through the backend, the run loop and
//! the shared `kvm_run` page.

use alloc::vec::Vec;
use core::mem::offset_of;
use core::sync::atomic::{AtomicU32, Ordering, fence};

use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::abi::ioctl::{
    KVM_ENABLE_CAP, KVM_GET_MP_STATE, KVM_RUN, KVM_SET_MP_STATE, KVM_SET_SIGNAL_MASK, ioc_type,
    ior, iow,
};
use crate::abi::{
    KVM_EXIT_FAIL_ENTRY, KVM_EXIT_HLT, KVM_EXIT_INTERNAL_ERROR, KVM_EXIT_INTR, KVM_EXIT_IO,
    KVM_EXIT_IO_IN, KVM_EXIT_IO_OUT, KVM_EXIT_IRQ_WINDOW_OPEN, KVM_EXIT_MMIO, KVM_EXIT_SHUTDOWN,
    KVMIO, KvmEnableCap, KvmMpState, KvmRun, KvmRunExitFailEntry, KvmRunExitInternal, KvmRunExitIo,
    KvmRunExitMmio, KvmRunExitMsr, KvmSignalMask,
};
use crate::abi::{KVM_EXIT_X86_RDMSR, KVM_EXIT_X86_WRMSR};
use crate::arch::{Arch, Completion, Exit, GuestPage, SyncArea};
use crate::errno::{Errno, KResult};
use crate::ioevent::Bus;
use crate::kalloc::{KArc, vec_push};
use crate::memslot::{Gfn, Memslots};
use crate::os::{HeldPage, Lock, Os, PAGE_SIZE, Page, PreemptGuard, SigMask, UserAddr};
use crate::user;
use crate::vm::MmuSeq;
use crate::vm::Vm;
use crate::{ArchVcpu, Mutex, Platform};

/// `cpu` value of a vCPU that is not in guest mode.
const NOT_RUNNING: u32 = u32::MAX;
/// Request bit: leave guest mode and return to the run loop.
const REQ_KICK: u32 = 1 << 0;

/// Byte offset of the exit union in `kvm_run`.
const EXIT_OFF: usize = offset_of!(KvmRun, exit);

/// Per-vCPU state that other threads touch without the vCPU lock.
#[derive(Debug)]
pub struct VcpuShared {
    cpu: AtomicU32,
    requests: AtomicU32,
}

impl VcpuShared {
    fn kick<O: Os>(&self, os: &O) {
        self.requests.fetch_or(REQ_KICK, Ordering::SeqCst);
        let cpu = self.cpu.load(Ordering::SeqCst);
        if cpu != NOT_RUNNING {
            os.cpu_kick(cpu);
        }
    }
}

/// A handle on one vCPU's kick protocol that a backend may keep (an in-kernel interrupt
/// controller delivering to another vCPU): [`Kicker::kick`] does what [`Vcpu::kick`] does,
/// without a reference on the vCPU.
pub struct Kicker {
    shared: KArc<VcpuShared>,
}

impl Kicker {
    /// Makes the vCPU leave guest mode soon (see [`Vcpu::kick`]). Any context.
    pub fn kick<O: Os>(&self, os: &O) {
        self.shared.kick(os);
    }
}

/// A user-space exit whose access must be completed on the next `KVM_RUN`.
#[derive(Clone, Copy, Debug)]
enum Pending {
    Io { input: bool, size: u8, count: u32 },
    Mmio { read: bool, len: u8 },
    Msr,
}

struct VcpuInner<P: Platform> {
    arch: ArchVcpu<P>,
    pending: Option<Pending>,
    sigmask: Option<SigMask>,
}

/// A virtual CPU. Owned by its VM; reached from user space through a [`VcpuFile`].
pub struct Vcpu<P: Platform> {
    id: u32,
    shared: KArc<VcpuShared>,
    pages: Vec<<P::Os as Os>::Page>,
    inner: Mutex<P, VcpuInner<P>>,
}

impl<P: Platform> Vcpu<P> {
    pub(crate) fn create(vm: &Vm<P>, id: u32) -> KResult<KArc<Self>> {
        let os = vm.os();
        let limits = vm.system().limits();
        let mut pages = Vec::new();
        for _ in 0..limits.vcpu_mmap_pages.max(1) {
            vec_push(&mut pages, os.page_zalloc()?)?;
        }
        let arch = vm.archi().vcpu_create(os, vm.arch_state(), id)?;
        let inner = Lock::new(VcpuInner {
            arch,
            pending: None,
            sigmask: None,
        })?;
        let shared = KArc::try_new(VcpuShared {
            cpu: AtomicU32::new(NOT_RUNNING),
            requests: AtomicU32::new(0),
        })?;
        KArc::try_new(Vcpu {
            id,
            shared,
            pages,
            inner,
        })
    }

    /// The vCPU's ABI id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The page user space maps at page offset `pgoff` of the vCPU fd (`kvm_run` at 0, then
    /// the PIO data page on x86, then the coalesced-MMIO ring), or `None` past the end.
    pub fn mmap_page(&self, pgoff: u64) -> Option<&<P::Os as Os>::Page> {
        self.pages.get(usize::try_from(pgoff).ok()?)
    }

    /// Makes the vCPU leave guest mode soon: sets a request and, if it is running on another
    /// CPU, interrupts that CPU. Any context.
    pub fn kick(&self, os: &P::Os) {
        self.shared.kick(os);
    }

    fn run_page(&self) -> KResult<&<P::Os as Os>::Page> {
        self.pages.first().ok_or(Errno::EINVAL)
    }
}

/// What a vCPU fd refers to: the vCPU and a reference on its VM (a vCPU fd keeps the VM
/// alive after the VM fd is closed, as on Linux).
pub struct VcpuFile<P: Platform> {
    vm: KArc<Vm<P>>,
    vcpu: KArc<Vcpu<P>>,
}

/// Reads a plain value out of a shared page.
fn page_get<T: FromBytes + IntoBytes>(page: &impl Page, off: usize) -> KResult<T> {
    let mut v = T::new_zeroed();
    if page.read(off, v.as_mut_bytes()) {
        Ok(v)
    } else {
        Err(Errno::EFAULT)
    }
}

/// The `kvm_run` header fields from `ready_for_interrupt_injection` to `apic_base`, written
/// together on every return from `KVM_RUN`.
struct RunHeaderTail {
    ready_for_interrupt_injection: u8,
    if_flag: u8,
    flags: u16,
    cr8: u64,
    apic_base: u64,
}

const _: () = assert!(
    offset_of!(KvmRun, if_flag) == offset_of!(KvmRun, ready_for_interrupt_injection) + 1
        && offset_of!(KvmRun, flags) == offset_of!(KvmRun, ready_for_interrupt_injection) + 2
        && offset_of!(KvmRun, cr8) == offset_of!(KvmRun, ready_for_interrupt_injection) + 4
        && offset_of!(KvmRun, apic_base) == offset_of!(KvmRun, ready_for_interrupt_injection) + 12
);

impl RunHeaderTail {
    /// The 20 bytes as they lie in `kvm_run`.
    fn bytes(&self) -> [u8; 20] {
        let mut b = [0u8; 20];
        let (head, rest) = b.split_at_mut(4);
        head.copy_from_slice(&[
            self.ready_for_interrupt_injection,
            self.if_flag,
            self.flags.to_ne_bytes()[0],
            self.flags.to_ne_bytes()[1],
        ]);
        let (cr8, apic) = rest.split_at_mut(8);
        cr8.copy_from_slice(&self.cr8.to_ne_bytes());
        apic.copy_from_slice(&self.apic_base.to_ne_bytes());
        b
    }
}

/// Writes a plain value into a shared page.
fn page_set<T: IntoBytes + Immutable>(page: &impl Page, off: usize, v: &T) -> KResult<()> {
    if page.write(off, v.as_bytes()) {
        Ok(())
    } else {
        Err(Errno::EFAULT)
    }
}

impl<P: Platform> VcpuFile<P> {
    pub(crate) fn new(vm: KArc<Vm<P>>, vcpu: KArc<Vcpu<P>>) -> Self {
        VcpuFile { vm, vcpu }
    }

    /// The VM.
    pub fn vm(&self) -> &KArc<Vm<P>> {
        &self.vm
    }

    /// The vCPU.
    pub fn vcpu(&self) -> &KArc<Vcpu<P>> {
        &self.vcpu
    }

    /// Dispatches a command on a vCPU fd. Commands of another ioctl type and unknown commands
    /// get `EINVAL`, as on Linux.
    pub fn ioctl(&self, cmd: u32, arg: u64) -> KResult<i64> {
        let vm = &*self.vm;
        vm.check_owner()?;
        if ioc_type(cmd) != KVMIO {
            return Err(Errno::EINVAL);
        }
        let os = vm.os();
        let arch = vm.archi();
        let ptr = UserAddr(arg);
        type A<P> = <P as Platform>::Arch;
        type O<P> = <P as Platform>::Os;
        let get_regs = ior::<<A<P> as Arch<O<P>>>::Regs>(0x81);
        let set_regs = iow::<<A<P> as Arch<O<P>>>::Regs>(0x82);
        let get_sregs = ior::<<A<P> as Arch<O<P>>>::Sregs>(0x83);
        let set_sregs = iow::<<A<P> as Arch<O<P>>>::Sregs>(0x84);
        let get_fpu = ior::<<A<P> as Arch<O<P>>>::Fpu>(0x8c);
        let set_fpu = iow::<<A<P> as Arch<O<P>>>::Fpu>(0x8d);

        if cmd == KVM_RUN {
            if arg != 0 {
                return Err(Errno::EINVAL);
            }
            return self.run();
        }
        let mut inner = self.vcpu.inner.lock();
        let inner = &mut *inner;
        match cmd {
            c if c == get_regs => user::write(os, ptr, &arch.vcpu_get_regs(&inner.arch)?)?,
            c if c == set_regs => arch.vcpu_set_regs(&mut inner.arch, &user::read(os, ptr)?)?,
            c if c == get_sregs => user::write(os, ptr, &arch.vcpu_get_sregs(&inner.arch)?)?,
            c if c == set_sregs => arch.vcpu_set_sregs(&mut inner.arch, &user::read(os, ptr)?)?,
            c if c == get_fpu => user::write(os, ptr, &arch.vcpu_get_fpu(&inner.arch)?)?,
            c if c == set_fpu => arch.vcpu_set_fpu(&mut inner.arch, &user::read(os, ptr)?)?,
            KVM_GET_MP_STATE => {
                let mp_state = arch.vcpu_get_mp_state(&inner.arch)?;
                user::write(os, ptr, &KvmMpState { mp_state })?
            }
            KVM_SET_MP_STATE => {
                let s: KvmMpState = user::read(os, ptr)?;
                arch.vcpu_set_mp_state(&mut inner.arch, s.mp_state)?
            }
            KVM_ENABLE_CAP => {
                let cap: KvmEnableCap = user::read(os, ptr)?;
                if cap.flags != 0 {
                    return Err(Errno::EINVAL);
                }
                arch.vcpu_enable_cap(os, &mut inner.arch, &cap)?
            }
            KVM_SET_SIGNAL_MASK => {
                inner.sigmask = if ptr.is_null() {
                    None
                } else {
                    let head: KvmSignalMask = user::read(os, ptr)?;
                    if head.len as usize != core::mem::size_of::<SigMask>() {
                        return Err(Errno::EINVAL);
                    }
                    let off = core::mem::size_of::<KvmSignalMask>() as u64;
                    let mut mask = SigMask::default();
                    os.user_copy_in(&mut mask.0, ptr.offset(off)?)?;
                    Some(mask)
                };
            }
            _ => {
                return match arch.vcpu_ioctl(os, vm.arch_state(), &mut inner.arch, cmd, arg) {
                    Some(r) => r,
                    None => Err(Errno::EINVAL),
                };
            }
        }
        Ok(0)
    }

    /// `KVM_RUN`: complete the last user-space access, then run the guest until an exit for
    /// user space, a signal or `immediate_exit`.
    fn run(&self) -> KResult<i64> {
        let vm = &*self.vm;
        let vcpu = &*self.vcpu;
        let os = vm.os();
        let arch = vm.archi();
        let limits = vm.system().limits();
        let run = vcpu.run_page()?;
        let pio = limits.pio_page.and_then(|p| vcpu.mmap_page(u64::from(p)));
        let mut inner = vcpu.inner.lock();
        let inner = &mut *inner;

        let [valid, dirty]: [u64; 2] = page_get(run, offset_of!(KvmRun, kvm_valid_regs))?;
        if (valid | dirty) & !limits.sync_regs != 0 {
            return Err(Errno::EINVAL);
        }
        let area = SyncArea::new(
            run,
            offset_of!(KvmRun, s),
            core::mem::size_of::<crate::abi::KvmRunSyncArea>(),
        );
        if dirty != 0 {
            arch.vcpu_sync_import(&mut inner.arch, dirty, &area)?;
            page_set(run, offset_of!(KvmRun, kvm_dirty_regs), &0u64)?;
        }
        let cr8: u64 = page_get(run, offset_of!(KvmRun, cr8))?;
        arch.vcpu_import_cr8(&mut inner.arch, cr8)?;
        let mut ctx = RunCtx::<P::Os, P::Arch> {
            os,
            vm: vm.arch_state(),
            vcpu: &mut inner.arch,
            shared: &vcpu.shared,
            slots: vm.slots(),
            mmu: vm.mmu(),
            pio,
            request_interrupt_window: false,
        };
        if let Some(p) = inner.pending.take() {
            let done = match p {
                Pending::Io { input, size, count } => Completion::Io { input, size, count },
                Pending::Msr => {
                    let m: KvmRunExitMsr = page_get(run, EXIT_OFF)?;
                    Completion::Msr {
                        error: m.error != 0,
                        data: m.data,
                    }
                }
                Pending::Mmio { read, len } => {
                    let m: KvmRunExitMmio = page_get(run, EXIT_OFF)?;
                    Completion::Mmio {
                        read,
                        len,
                        data: m.data,
                    }
                }
            };
            arch.vcpu_complete(&mut ctx, done)?;
        }
        let immediate: u8 = page_get(run, offset_of!(KvmRun, immediate_exit))?;
        let result = if immediate != 0 {
            Err(Errno::EINTR)
        } else {
            let saved = inner.sigmask.map(|m| os.thread_sigmask_swap(m));
            let result = Self::run_loop(arch, &mut ctx, vm, run);
            if let Some(old) = saved {
                os.thread_sigmask_swap(old);
            }
            result
        };
        // Refreshed on every return, as KVM does, so a VMM with its own interrupt controller
        // can decide whether to inject.
        // One write for ready_for_interrupt_injection, if_flag, flags (cleared), cr8 and
        // apic_base, which lie together in the header.
        let f = arch.vcpu_run_flags(ctx.vcpu);
        let tail = RunHeaderTail {
            ready_for_interrupt_injection: u8::from(f.ready_for_interrupt_injection),
            if_flag: u8::from(f.if_flag),
            flags: 0,
            cr8: f.cr8,
            apic_base: f.apic_base,
        };
        page_set(
            run,
            offset_of!(KvmRun, ready_for_interrupt_injection),
            &tail.bytes(),
        )?;
        if valid != 0 {
            arch.vcpu_sync_export(ctx.vcpu, valid, &area)?;
        }
        let (ret, pending) = result?;
        inner.pending = pending;
        Ok(ret)
    }

    /// Enters the guest until an exit for user space. Returns the value for `KVM_RUN` and the
    /// access to complete next time.
    fn run_loop(
        arch: &P::Arch,
        ctx: &mut RunCtx<'_, P::Os, P::Arch>,
        vm: &Vm<P>,
        run: &<P::Os as Os>::Page,
    ) -> KResult<(i64, Option<Pending>)> {
        let os = ctx.os;
        let reason_off = offset_of!(KvmRun, exit_reason);
        loop {
            if os.thread_signal_pending() {
                page_set(run, reason_off, &KVM_EXIT_INTR)?;
                return Err(Errno::EINTR);
            }
            if os.thread_resched_needed() {
                os.thread_resched();
            }
            let riw: u8 = page_get(run, offset_of!(KvmRun, request_interrupt_window))?;
            ctx.request_interrupt_window = riw != 0;
            let exit = arch.vcpu_run(ctx)?;
            let (reason, pending) = match exit {
                Exit::Interrupted => continue,
                Exit::Io {
                    port,
                    size,
                    out,
                    count,
                } => {
                    if out && count == 1 && ctx.pio.is_some() {
                        let mut data = [0u8; 4];
                        let n = usize::from(size).min(4);
                        let bytes = data.get_mut(..n).ok_or(Errno::EINVAL)?;
                        if ctx.pio_read(0, bytes) && vm.iobus_write(Bus::Pio, port.into(), bytes) {
                            arch.vcpu_complete(
                                ctx,
                                Completion::Io {
                                    input: false,
                                    size,
                                    count,
                                },
                            )?;
                            continue;
                        }
                    }
                    let pio_page = vm.system().limits().pio_page.unwrap_or(0);
                    let io = KvmRunExitIo {
                        direction: if out { KVM_EXIT_IO_OUT } else { KVM_EXIT_IO_IN },
                        size,
                        port,
                        count,
                        data_offset: u64::from(pio_page) * PAGE_SIZE as u64,
                    };
                    page_set(run, EXIT_OFF, &io)?;
                    (
                        KVM_EXIT_IO,
                        Pending::Io {
                            input: !out,
                            size,
                            count,
                        },
                    )
                }
                Exit::Mmio { gpa, len, write } => {
                    let n = usize::from(len).clamp(1, 8);
                    if let Some(data) = write {
                        let bytes = data.get(..n).ok_or(Errno::EINVAL)?;
                        if vm.iobus_write(Bus::Mmio, gpa.0, bytes) {
                            let done = Completion::Mmio {
                                read: false,
                                len,
                                data,
                            };
                            arch.vcpu_complete(ctx, done)?;
                            continue;
                        }
                    }
                    let mmio = KvmRunExitMmio {
                        phys_addr: gpa.0,
                        data: write.unwrap_or_default(),
                        len: u32::from(len),
                        is_write: u8::from(write.is_some()),
                        ..Default::default()
                    };
                    page_set(run, EXIT_OFF, &mmio)?;
                    (
                        KVM_EXIT_MMIO,
                        Pending::Mmio {
                            read: write.is_none(),
                            len,
                        },
                    )
                }
                Exit::Msr {
                    write,
                    reason,
                    index,
                    data,
                } => {
                    let m = KvmRunExitMsr {
                        reason,
                        index,
                        data,
                        ..Default::default()
                    };
                    page_set(run, EXIT_OFF, &m)?;
                    let r = if write {
                        KVM_EXIT_X86_WRMSR
                    } else {
                        KVM_EXIT_X86_RDMSR
                    };
                    (r, Pending::Msr)
                }
                Exit::Debug(d) => {
                    page_set(run, EXIT_OFF, &d)?;
                    return Self::finish(run, crate::abi::KVM_EXIT_DEBUG);
                }
                Exit::Hlt => return Self::finish(run, KVM_EXIT_HLT),
                Exit::Shutdown => return Self::finish(run, KVM_EXIT_SHUTDOWN),
                Exit::IrqWindowOpen => return Self::finish(run, KVM_EXIT_IRQ_WINDOW_OPEN),
                Exit::FailEntry { reason } => {
                    let f = KvmRunExitFailEntry {
                        hardware_entry_failure_reason: reason,
                        cpu: os.cpu_current(),
                        ..Default::default()
                    };
                    page_set(run, EXIT_OFF, &f)?;
                    return Self::finish(run, KVM_EXIT_FAIL_ENTRY);
                }
                Exit::EmulationFailure(e) => {
                    page_set(run, EXIT_OFF, &e)?;
                    return Self::finish(run, KVM_EXIT_INTERNAL_ERROR);
                }
                Exit::InternalError {
                    suberror,
                    exit_code,
                } => {
                    let mut e = KvmRunExitInternal {
                        suberror,
                        ..Default::default()
                    };
                    if let Some(code) = exit_code {
                        e.ndata = 2;
                        e.data[0] = code;
                        e.data[1] = u64::from(os.cpu_current());
                    }
                    page_set(run, EXIT_OFF, &e)?;
                    return Self::finish(run, KVM_EXIT_INTERNAL_ERROR);
                }
            };
            page_set(run, reason_off, &reason)?;
            return Ok((0, Some(pending)));
        }
    }

    fn finish(run: &<P::Os as Os>::Page, reason: u32) -> KResult<(i64, Option<Pending>)> {
        page_set(run, offset_of!(KvmRun, exit_reason), &reason)?;
        Ok((0, None))
    }
}

/// What a backend sees while running a vCPU: its own state, the VM's memory and the shared
/// pages, and the entry/exit protocol that makes kicks reliable.
pub struct RunCtx<'a, O: Os, A: Arch<O>> {
    os: &'a O,
    vm: &'a A::Vm,
    vcpu: &'a mut A::Vcpu,
    shared: &'a KArc<VcpuShared>,
    slots: &'a O::Mutex<Memslots>,
    mmu: &'a MmuSeq,
    pio: Option<&'a O::Page>,
    request_interrupt_window: bool,
}

impl<'a, O: Os, A: Arch<O>> RunCtx<'a, O, A> {
    /// The OS port.
    pub fn os(&self) -> &'a O {
        self.os
    }

    /// The backend's VM state.
    pub fn vm(&self) -> &'a A::Vm {
        self.vm
    }

    /// The backend's vCPU state.
    pub fn vcpu(&mut self) -> &mut A::Vcpu {
        self.vcpu
    }

    /// Whether user space set `kvm_run.request_interrupt_window` for this run.
    pub fn request_interrupt_window(&self) -> bool {
        self.request_interrupt_window
    }

    /// A handle that kicks this vCPU, for the backend to keep (`ENOMEM` if the reference
    /// count would overflow).
    pub fn kicker(&self) -> KResult<Kicker> {
        Ok(Kicker {
            shared: self.shared.try_clone()?,
        })
    }

    /// Announces that the guest is about to be entered on the current CPU. Call with
    /// interrupts disabled, just before the world switch. Returns `false` if a kick is
    /// pending: then do not enter, and return [`Exit::Interrupted`].
    pub fn guest_enter(&mut self) -> bool {
        self.shared
            .cpu
            .store(self.os.cpu_current(), Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if self.shared.requests.swap(0, Ordering::SeqCst) & REQ_KICK != 0 {
            self.shared.cpu.store(NOT_RUNNING, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// Announces that the guest has exited. Call right after the world switch.
    pub fn guest_exit(&mut self) {
        self.shared.cpu.store(NOT_RUNNING, Ordering::SeqCst);
    }

    /// Disables preemption for as long as the guard lives.
    pub fn preempt_disable(&self) -> PreemptGuard<'a, O> {
        PreemptGuard::new(self.os)
    }

    /// Copies from the PIO data page (`false` if there is none or the range is outside it).
    pub fn pio_read(&self, off: usize, buf: &mut [u8]) -> bool {
        self.pio.is_some_and(|p| p.read(off, buf))
    }

    /// Copies into the PIO data page (`false` if there is none or the range is outside it).
    pub fn pio_write(&self, off: usize, buf: &[u8]) -> bool {
        self.pio.is_some_and(|p| p.write(off, buf))
    }

    /// The user-memory sequence number to read before [`RunCtx::gfn_resolve`] (see
    /// [`MmuSeq`]).
    pub fn mmu_begin(&self) -> u64 {
        self.mmu.begin()
    }

    /// Whether a page resolved after [`RunCtx::mmu_begin`] gave `begun` must be dropped
    /// instead of mapped (user memory may have changed meanwhile; fault again). Check it
    /// under the lock the backend's [`Arch::vm_user_range_invalidate`] takes.
    pub fn mmu_retry(&self, begun: u64) -> bool {
        self.mmu.retry(begun)
    }

    /// Resolves guest frame `gfn` of address space `as_id` for a nested page fault: RAM
    /// (held, and marked dirty when `write`) or MMIO. `EFAULT` when the slot's user memory
    /// cannot be resolved. Preemptible context.
    pub fn gfn_resolve(
        &self,
        as_id: u16,
        gfn: Gfn,
        write: bool,
    ) -> KResult<GuestPage<O::HeldPage>> {
        let (uaddr, writable, log_dirty) = {
            let slots = self.slots.lock();
            let Some(slot) = slots.lookup(as_id, gfn) else {
                return Ok(GuestPage::Mmio);
            };
            let writable = !slot.flags().readonly();
            if write && !writable {
                return Ok(GuestPage::Mmio);
            }
            let uaddr = slot.gfn_to_uaddr(gfn).ok_or(Errno::EFAULT)?;
            if write {
                slot.mark_dirty(gfn);
            }
            (uaddr, writable, slot.flags().log_dirty())
        };
        // Held with the memslot lock released: resolving may wait for the process's
        // address-space lock, which the kernel holds while it calls
        // `Vm::user_range_invalidate`, which takes the memslot lock. A slot change or an
        // invalidation meanwhile bumps the backend's table generation, so the caller drops
        // this page instead of mapping it.
        let page = self.os.user_page_hold(uaddr, writable)?;
        // The glue's answer is cheap to check, and a misaligned frame would map the wrong page.
        if page.pa() % PAGE_SIZE as u64 != 0 {
            return Err(Errno::EFAULT);
        }
        Ok(GuestPage::Ram {
            page,
            writable,
            log_dirty,
        })
    }
}
