//! The `Arch` port: everything the core needs from a CPU's virtualization extension.
//!
//! Shaped like NVMM's `struct nvmm_impl`: identification and per-CPU enablement, capability
//! answers, then `vm_*` and `vcpu_*` operations. One implementation per extension (SVM, VMX,
//! arm64 EL2, POWER HV, SIE), each in its own `arch-*` crate, generic over the [`Os`] so the
//! same backend serves every kernel.
//!
//! Calling contexts: unless a method says otherwise it is called from a preemptible ioctl
//! context, on any CPU, with the VM's or vCPU's lock held as noted.

use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::abi::KvmEnableCap;
use crate::errno::{Errno, KResult};
use crate::memslot::{Gfn, Gpa, SlotChange, SlotLimits};
use crate::os::Os;
use crate::vm::VmInfo;

pub use crate::vcpu::{Kicker, RunCtx};

/// Fixed properties of a backend, read once when a VM is created.
#[derive(Clone, Copy, Debug)]
pub struct ArchLimits {
    /// Most vCPUs in one VM (`KVM_CAP_MAX_VCPUS`).
    pub max_vcpus: u32,
    /// vCPU ids must be below this (`KVM_CAP_MAX_VCPU_ID`).
    pub max_vcpu_ids: u32,
    /// Recommended vCPU count (`KVM_CAP_NR_VCPUS`), before capping at the CPU count.
    pub nr_vcpus: u32,
    /// Memslot limits (address spaces, slots, highest frame, read-only support).
    pub slots: SlotLimits,
    /// Pages of the vCPU mapping: `kvm_run`, then (x86) the PIO data page, then the
    /// coalesced-MMIO ring. `KVM_GET_VCPU_MMAP_SIZE` is this times the page size.
    pub vcpu_mmap_pages: u32,
    /// Page index of the PIO data page in the vCPU mapping, if the architecture has port I/O.
    pub pio_page: Option<u32>,
    /// `kvm_run.kvm_valid_regs`/`kvm_dirty_regs` bits the backend supports (sync regs).
    pub sync_regs: u64,
}

/// A completed port or MMIO access that user space handled, handed back to the backend on
/// the next `KVM_RUN` before anything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// A port access: for `IN`, `size * count` bytes are in the PIO data page at offset 0.
    Io {
        /// Whether it was an `IN` (data to load) rather than an `OUT`.
        input: bool,
        /// Access size in bytes (1, 2 or 4).
        size: u8,
        /// Repetitions (string instructions).
        count: u32,
    },
    /// An MMIO access: for reads, `data[..len]` holds the value user space supplied.
    Mmio {
        /// Whether it was a read.
        read: bool,
        /// Access length, 1 to 8.
        len: u8,
        /// The data field of `kvm_run.mmio` as user space left it.
        data: [u8; 8],
    },
    /// An MSR access user space handled (`KVM_EXIT_X86_RDMSR`/`WRMSR`).
    Msr {
        /// User space set `kvm_run.msr.error`: the guest takes `#GP`.
        error: bool,
        /// `kvm_run.msr.data`: the value to load for a read.
        data: u64,
    },
}

/// Why the backend's `vcpu_run` returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exit {
    /// Port I/O for user space. For `OUT`, `size * count` bytes are already in the PIO data
    /// page at offset 0; for `IN`, user space fills them.
    Io {
        /// Port number.
        port: u16,
        /// Access size in bytes (1, 2 or 4).
        size: u8,
        /// `OUT` rather than `IN`.
        out: bool,
        /// Repetitions (1 unless a string instruction).
        count: u32,
    },
    /// MMIO for user space (no memslot, or a write to a read-only slot).
    Mmio {
        /// Guest physical address accessed.
        gpa: Gpa,
        /// Access length, 1 to 8.
        len: u8,
        /// The value written, or `None` for a read.
        write: Option<[u8; 8]>,
    },
    /// The guest executed `HLT` (exits to user space without an in-kernel interrupt chip).
    Hlt,
    /// The guest triple-faulted or otherwise asked to be shut down.
    Shutdown,
    /// A host interrupt, kick or reschedule ended the run; nothing for user space. The core
    /// checks for signals and enters again.
    Interrupted,
    /// User space asked for an interrupt window and it is now open.
    IrqWindowOpen,
    /// The hardware refused to enter the guest (invalid state); `reason` is backend-defined.
    FailEntry {
        /// Hardware failure reason.
        reason: u64,
    },
    /// The backend met something it cannot handle (`KVM_EXIT_INTERNAL_ERROR`).
    InternalError {
        /// `KVM_INTERNAL_ERROR_*` sub-error.
        suberror: u32,
        /// With `KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON`: the hardware exit code, which
        /// user space gets as `data[0]` with the host CPU as `data[1]` (`ndata` 2), as KVM
        /// reports it.
        exit_code: Option<u64>,
    },
    /// An instruction could not be emulated (`KVM_EXIT_INTERNAL_ERROR` with
    /// `KVM_INTERNAL_ERROR_EMULATION` and the instruction bytes, as KVM reports it).
    EmulationFailure(crate::abi::KvmRunExitEmulationFailure),
    /// A guest-debug event for user space (`KVM_EXIT_DEBUG`).
    Debug(crate::abi::KvmRunExitDebug),
    /// An x86 `RDMSR`/`WRMSR` the backend refuses, for user space
    /// (`KVM_CAP_X86_USER_SPACE_MSR`); completed with [`Completion::Msr`].
    Msr {
        /// `WRMSR` rather than `RDMSR`.
        write: bool,
        /// `KVM_MSR_EXIT_REASON_*`.
        reason: u32,
        /// MSR index.
        index: u32,
        /// The value written (0 for a read).
        data: u64,
    },
}

/// The `kvm_run.s` area (sync regs) of a vCPU, for a backend to import from and export to.
pub struct SyncArea<'a, P: crate::os::Page> {
    page: &'a P,
    base: usize,
    len: usize,
}

impl<'a, P: crate::os::Page> SyncArea<'a, P> {
    pub(crate) fn new(page: &'a P, base: usize, len: usize) -> Self {
        SyncArea { page, base, len }
    }

    /// Reads a `T` at byte `off` of the area (`EFAULT` outside it).
    pub fn read<T: FromBytes + IntoBytes>(&self, off: usize) -> KResult<T> {
        let mut v = T::new_zeroed();
        let n = core::mem::size_of::<T>();
        if off.checked_add(n).is_none_or(|e| e > self.len)
            || !self.page.read(self.base + off, v.as_mut_bytes())
        {
            return Err(Errno::EFAULT);
        }
        Ok(v)
    }

    /// Writes `v` at byte `off` of the area (`EFAULT` outside it).
    pub fn write<T: IntoBytes + Immutable>(&self, off: usize, v: &T) -> KResult<()> {
        let b = v.as_bytes();
        if off.checked_add(b.len()).is_none_or(|e| e > self.len)
            || !self.page.write(self.base + off, b)
        {
            return Err(Errno::EFAULT);
        }
        Ok(())
    }
}

/// The `kvm_run` fields refreshed on every return from `KVM_RUN`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunFlags {
    /// The guest's interrupt flag (`RFLAGS.IF` on x86).
    pub if_flag: bool,
    /// An interrupt queued now (`KVM_INTERRUPT`) would be taken at the next entry: interrupts
    /// enabled, no interrupt shadow, and no event still being delivered.
    pub ready_for_interrupt_injection: bool,
    /// The task-priority register (CR8 on x86).
    pub cr8: u64,
    /// The APIC base MSR.
    pub apic_base: u64,
}

/// How a guest frame resolves, as seen by a backend handling a nested page fault.
#[derive(Debug)]
pub enum GuestPage<H> {
    /// RAM: the held host page and whether the guest may write it.
    Ram {
        /// The held page.
        page: H,
        /// False for read-only slots.
        writable: bool,
        /// Dirty logging is on: map read-only until the guest writes, so writes are seen.
        log_dirty: bool,
    },
    /// No slot covers the frame, or the access is a write to a read-only slot: emulate it as
    /// MMIO.
    Mmio,
}

/// A CPU virtualization backend. See the module documentation.
pub trait Arch<O: Os>: Sized + Send + Sync + 'static {
    /// Short name for logs ("svm", "vmx", ...).
    const NAME: &'static str;

    /// The architecture's `struct kvm_regs` (`KVM_GET_REGS`/`KVM_SET_REGS`).
    type Regs: FromBytes + IntoBytes + Immutable;
    /// The architecture's `struct kvm_sregs` (`KVM_GET_SREGS`/`KVM_SET_SREGS`).
    type Sregs: FromBytes + IntoBytes + Immutable;
    /// The architecture's `struct kvm_fpu` (`KVM_GET_FPU`/`KVM_SET_FPU`).
    type Fpu: FromBytes + IntoBytes + Immutable;
    /// Per-VM backend state (stage-2 tables, ASID, ...). Shared by the VM's vCPUs.
    type Vm: Send + Sync;
    /// Per-vCPU backend state (VMCB/VMCS, saved registers). Only touched with the vCPU's
    /// lock held.
    type Vcpu: Send;

    // ----- Identification and per-CPU enablement -----

    /// Checks that the extension is present and usable on this host and prepares global
    /// state. `ENODEV` when absent.
    fn probe(os: &O) -> KResult<Self>;
    /// Enables the extension on `cpu`. Called on that CPU with preemption disabled.
    fn cpu_enable(&self, os: &O, cpu: u32) -> KResult<()>;
    /// Disables the extension on `cpu`. Called on that CPU with preemption disabled.
    fn cpu_disable(&self, os: &O, cpu: u32);
    /// The backend's fixed limits.
    fn limits(&self) -> ArchLimits;

    // ----- Capabilities and system commands -----

    /// The answer to `KVM_CHECK_EXTENSION` for capability number `cap`, if the backend
    /// decides it (otherwise the core answers). `vm` is set when asked on a VM fd.
    fn check_extension(&self, cap: u64, vm: Option<&Self::Vm>) -> Option<i64>;
    /// An architecture command on the system fd (`KVM_GET_MSR_INDEX_LIST`, ...), or `None`
    /// if `cmd` is not one.
    fn system_ioctl(&self, os: &O, cmd: u32, arg: u64) -> Option<KResult<i64>>;

    // ----- VMs -----

    /// Creates the backend state of a new VM of ABI type `vm_type` (`EINVAL` if unknown).
    fn vm_create(&self, os: &O, vm_type: u64) -> KResult<Self::Vm>;
    /// An architecture command on a VM fd, or `None` if `cmd` is not one.
    fn vm_ioctl(
        &self,
        os: &O,
        vm: &Self::Vm,
        info: &VmInfo,
        cmd: u32,
        arg: u64,
    ) -> Option<KResult<i64>>;
    /// `KVM_ENABLE_CAP` on a VM fd for a capability the core does not own.
    fn vm_enable_cap(&self, os: &O, vm: &Self::Vm, cap: &KvmEnableCap) -> KResult<()> {
        let _ = (os, vm, cap);
        Err(Errno::EINVAL)
    }
    /// A memslot changed: drop stage-2 mappings of deleted or moved frames, or write-protect
    /// a slot whose dirty logging was switched on. Called with the memslot lock held.
    fn vm_slots_changed(&self, os: &O, vm: &Self::Vm, change: SlotChange);
    /// The user memory behind guest frames `[first, first + count)` of address space `as_id`
    /// is about to be unmapped or changed by the owning process ([`crate::os::UserMmListener`]):
    /// drop every stage-2 mapping and held page of those frames before returning, waiting for
    /// any vCPU that may be in the guest with them. With `blockable` false this must not
    /// sleep: return `EAGAIN` when it would have to. Called with the memslot lock held.
    /// Default: nothing to do (for a backend that holds no user pages).
    fn vm_user_range_invalidate(
        &self,
        os: &O,
        vm: &Self::Vm,
        as_id: u16,
        first: Gfn,
        count: u64,
        blockable: bool,
    ) -> KResult<()> {
        let _ = (os, vm, as_id, first, count, blockable);
        Ok(())
    }
    /// Dirty bits of `[first, first + count)` were cleared: write-protect those frames again
    /// so the next guest write is seen. Called with the memslot lock held.
    fn vm_dirty_rearm(&self, os: &O, vm: &Self::Vm, as_id: u16, first: Gfn, count: u64);

    // ----- vCPUs -----

    /// Creates the backend state of vCPU `id` (already validated by the core).
    fn vcpu_create(&self, os: &O, vm: &Self::Vm, id: u32) -> KResult<Self::Vcpu>;
    /// `KVM_GET_REGS`.
    fn vcpu_get_regs(&self, vcpu: &Self::Vcpu) -> KResult<Self::Regs>;
    /// `KVM_SET_REGS`, with the backend's validation.
    fn vcpu_set_regs(&self, vcpu: &mut Self::Vcpu, regs: &Self::Regs) -> KResult<()>;
    /// `KVM_GET_SREGS`.
    fn vcpu_get_sregs(&self, vcpu: &Self::Vcpu) -> KResult<Self::Sregs>;
    /// `KVM_SET_SREGS`, with the backend's validation (`EINVAL` for inconsistent state).
    fn vcpu_set_sregs(&self, vcpu: &mut Self::Vcpu, sregs: &Self::Sregs) -> KResult<()>;
    /// `KVM_GET_FPU`.
    fn vcpu_get_fpu(&self, vcpu: &Self::Vcpu) -> KResult<Self::Fpu>;
    /// `KVM_SET_FPU`.
    fn vcpu_set_fpu(&self, vcpu: &mut Self::Vcpu, fpu: &Self::Fpu) -> KResult<()>;
    /// `KVM_GET_MP_STATE`.
    fn vcpu_get_mp_state(&self, vcpu: &Self::Vcpu) -> KResult<u32>;
    /// `KVM_SET_MP_STATE` (`EINVAL` for a state the configuration does not allow).
    fn vcpu_set_mp_state(&self, vcpu: &mut Self::Vcpu, state: u32) -> KResult<()>;
    /// An architecture command on a vCPU fd, or `None` if `cmd` is not one.
    fn vcpu_ioctl(
        &self,
        os: &O,
        vm: &Self::Vm,
        vcpu: &mut Self::Vcpu,
        cmd: u32,
        arg: u64,
    ) -> Option<KResult<i64>>;
    /// `KVM_ENABLE_CAP` on a vCPU fd (flags already checked to be zero).
    fn vcpu_enable_cap(&self, os: &O, vcpu: &mut Self::Vcpu, cap: &KvmEnableCap) -> KResult<()> {
        let _ = (os, vcpu, cap);
        Err(Errno::EINVAL)
    }
    /// The `kvm_run` fields refreshed on every return from `KVM_RUN` (all clear by default).
    fn vcpu_run_flags(&self, vcpu: &Self::Vcpu) -> RunFlags {
        let _ = vcpu;
        RunFlags::default()
    }
    /// `kvm_run.cr8` at the start of every `KVM_RUN` (after the sync-regs import): Linux
    /// loads it as the guest's CR8 when the vCPU has no in-kernel local APIC, and fails the
    /// run with `EINVAL` for a value above 15. The default ignores it.
    fn vcpu_import_cr8(&self, vcpu: &mut Self::Vcpu, cr8: u64) -> KResult<()> {
        let _ = (vcpu, cr8);
        Ok(())
    }
    /// Imports the `kvm_run.s` fields named by `dirty` (only bits of
    /// [`ArchLimits::sync_regs`]) before a run, as the matching `KVM_SET_*` would.
    fn vcpu_sync_import(
        &self,
        vcpu: &mut Self::Vcpu,
        dirty: u64,
        area: &SyncArea<'_, O::Page>,
    ) -> KResult<()> {
        let _ = (vcpu, dirty, area);
        Ok(())
    }
    /// Exports the fields named by `valid` into `kvm_run.s` when `KVM_RUN` returns.
    fn vcpu_sync_export(
        &self,
        vcpu: &Self::Vcpu,
        valid: u64,
        area: &SyncArea<'_, O::Page>,
    ) -> KResult<()> {
        let _ = (vcpu, valid, area);
        Ok(())
    }
    /// Finishes the access of the last user-space exit (load `IN` data, complete an MMIO
    /// read, step past the instruction). Called at the start of the next `KVM_RUN`.
    fn vcpu_complete(&self, ctx: &mut RunCtx<'_, O, Self>, done: Completion) -> KResult<()>;
    /// Runs the guest until an exit the core or user space must see. The backend disables
    /// interrupts around the world switch and announces it with [`RunCtx::guest_enter`] and
    /// [`RunCtx::guest_exit`], so that kicks reach it.
    fn vcpu_run(&self, ctx: &mut RunCtx<'_, O, Self>) -> KResult<Exit>;
}
