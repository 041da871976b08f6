//! `struct kvm_run` (the mmap'ed vCPU communication page), its exit-reason
//! numbers and the payload structs of its exit union.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::x86::{KvmDebugExitArch, KvmSyncRegs};

/// Exit reason: unknown (see [`KvmRunExitHw`]).
pub const KVM_EXIT_UNKNOWN: u32 = 0;
/// Exit reason: exception ([`KvmRunExitException`]).
pub const KVM_EXIT_EXCEPTION: u32 = 1;
/// Exit reason: port I/O ([`KvmRunExitIo`]).
pub const KVM_EXIT_IO: u32 = 2;
/// Exit reason: hypercall ([`KvmRunExitHypercall`]).
pub const KVM_EXIT_HYPERCALL: u32 = 3;
/// Exit reason: debug event ([`KvmRunExitDebug`]).
pub const KVM_EXIT_DEBUG: u32 = 4;
/// Exit reason: HLT with the irqchip in user space.
pub const KVM_EXIT_HLT: u32 = 5;
/// Exit reason: MMIO ([`KvmRunExitMmio`]).
pub const KVM_EXIT_MMIO: u32 = 6;
/// Exit reason: interrupt window open.
pub const KVM_EXIT_IRQ_WINDOW_OPEN: u32 = 7;
/// Exit reason: triple fault / shutdown.
pub const KVM_EXIT_SHUTDOWN: u32 = 8;
/// Exit reason: VM entry failed ([`KvmRunExitFailEntry`]).
pub const KVM_EXIT_FAIL_ENTRY: u32 = 9;
/// Exit reason: interrupted by a signal.
pub const KVM_EXIT_INTR: u32 = 10;
/// Exit reason: TPR below threshold (unused).
pub const KVM_EXIT_SET_TPR: u32 = 11;
/// Exit reason: TPR access ([`KvmRunExitTprAccess`]).
pub const KVM_EXIT_TPR_ACCESS: u32 = 12;
/// Exit reason: s390 SIE intercept ([`KvmRunExitS390Sieic`]).
pub const KVM_EXIT_S390_SIEIC: u32 = 13;
/// Exit reason: s390 reset (`s390_reset_flags`).
pub const KVM_EXIT_S390_RESET: u32 = 14;
/// Exit reason: ppc DCR access (deprecated).
pub const KVM_EXIT_DCR: u32 = 15;
/// Exit reason: NMI.
pub const KVM_EXIT_NMI: u32 = 16;
/// Exit reason: internal error ([`KvmRunExitInternal`]).
pub const KVM_EXIT_INTERNAL_ERROR: u32 = 17;
/// Exit reason: ppc OSI hypercall ([`KvmRunExitOsi`]).
pub const KVM_EXIT_OSI: u32 = 18;
/// Exit reason: ppc PAPR hypercall ([`KvmRunExitPaprHcall`]).
pub const KVM_EXIT_PAPR_HCALL: u32 = 19;
/// Exit reason: s390 ucontrol fault ([`KvmRunExitS390Ucontrol`]).
pub const KVM_EXIT_S390_UCONTROL: u32 = 20;
/// Exit reason: ppc booke watchdog.
pub const KVM_EXIT_WATCHDOG: u32 = 21;
/// Exit reason: s390 TSCH ([`KvmRunExitS390Tsch`]).
pub const KVM_EXIT_S390_TSCH: u32 = 22;
/// Exit reason: ppc external proxy ([`KvmRunExitEpr`]).
pub const KVM_EXIT_EPR: u32 = 23;
/// Exit reason: system event ([`KvmRunExitSystemEvent`]).
pub const KVM_EXIT_SYSTEM_EVENT: u32 = 24;
/// Exit reason: s390 STSI ([`KvmRunExitS390Stsi`]).
pub const KVM_EXIT_S390_STSI: u32 = 25;
/// Exit reason: IOAPIC EOI with a split irqchip ([`KvmRunExitEoi`]).
pub const KVM_EXIT_IOAPIC_EOI: u32 = 26;
/// Exit reason: Hyper-V ([`KvmHypervExit`]).
pub const KVM_EXIT_HYPERV: u32 = 27;
/// Exit reason: arm64 data abort without valid syndrome ([`KvmRunExitArmNisv`]).
pub const KVM_EXIT_ARM_NISV: u32 = 28;
/// Exit reason: x86 RDMSR ([`KvmRunExitMsr`]).
pub const KVM_EXIT_X86_RDMSR: u32 = 29;
/// Exit reason: x86 WRMSR ([`KvmRunExitMsr`]).
pub const KVM_EXIT_X86_WRMSR: u32 = 30;
/// Exit reason: the dirty ring is full.
pub const KVM_EXIT_DIRTY_RING_FULL: u32 = 31;
/// Exit reason: SEV-ES AP reset hold.
pub const KVM_EXIT_AP_RESET_HOLD: u32 = 32;
/// Exit reason: x86 bus lock.
pub const KVM_EXIT_X86_BUS_LOCK: u32 = 33;
/// Exit reason: Xen ([`KvmXenExit`]).
pub const KVM_EXIT_XEN: u32 = 34;
/// Exit reason: RISC-V SBI call ([`KvmRunExitRiscvSbi`]).
pub const KVM_EXIT_RISCV_SBI: u32 = 35;
/// Exit reason: RISC-V CSR access ([`KvmRunExitRiscvCsr`]).
pub const KVM_EXIT_RISCV_CSR: u32 = 36;
/// Exit reason: x86 notify VM exit ([`KvmRunExitNotify`]).
pub const KVM_EXIT_NOTIFY: u32 = 37;
/// Exit reason: LoongArch IOCSR access (Linux 6.7+; payload as
/// [`KvmRunExitMmio`]).
pub const KVM_EXIT_LOONGARCH_IOCSR: u32 = 38;
/// Exit reason: memory fault user space must resolve (Linux 6.8+;
/// [`KvmRunExitMemoryFault`]).
pub const KVM_EXIT_MEMORY_FAULT: u32 = 39;

/// `KVM_EXIT_IO` direction: in (guest reads).
pub const KVM_EXIT_IO_IN: u8 = 0;
/// `KVM_EXIT_IO` direction: out (guest writes).
pub const KVM_EXIT_IO_OUT: u8 = 1;

/// Internal-error suberror: instruction emulation failed.
pub const KVM_INTERNAL_ERROR_EMULATION: u32 = 1;
/// Internal-error suberror: unexpected simultaneous exceptions.
pub const KVM_INTERNAL_ERROR_SIMUL_EX: u32 = 2;
/// Internal-error suberror: unexpected exit while delivering an event.
pub const KVM_INTERNAL_ERROR_DELIVERY_EV: u32 = 3;
/// Internal-error suberror: unexpected exit reason.
pub const KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON: u32 = 4;
/// Emulation-failure flag: `insn_size`/`insn_bytes` are valid.
pub const KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES: u64 = 1 << 0;

/// s390 reset flag: power-on reset.
pub const KVM_S390_RESET_POR: u64 = 1;
/// s390 reset flag: clear reset.
pub const KVM_S390_RESET_CLEAR: u64 = 2;
/// s390 reset flag: subsystem reset.
pub const KVM_S390_RESET_SUBSYSTEM: u64 = 4;
/// s390 reset flag: CPU initial reset.
pub const KVM_S390_RESET_CPU_INIT: u64 = 8;
/// s390 reset flag: IPL.
pub const KVM_S390_RESET_IPL: u64 = 16;

/// System event: shutdown.
pub const KVM_SYSTEM_EVENT_SHUTDOWN: u32 = 1;
/// System event: reset.
pub const KVM_SYSTEM_EVENT_RESET: u32 = 2;
/// System event: guest crash.
pub const KVM_SYSTEM_EVENT_CRASH: u32 = 3;
/// System event: wakeup.
pub const KVM_SYSTEM_EVENT_WAKEUP: u32 = 4;
/// System event: suspend.
pub const KVM_SYSTEM_EVENT_SUSPEND: u32 = 5;
/// System event: SEV termination request.
pub const KVM_SYSTEM_EVENT_SEV_TERM: u32 = 6;

/// MSR exit reason: invalid MSR access.
pub const KVM_MSR_EXIT_REASON_INVAL: u32 = 1 << 0;
/// MSR exit reason: unknown MSR.
pub const KVM_MSR_EXIT_REASON_UNKNOWN: u32 = 1 << 1;
/// MSR exit reason: denied by the MSR filter.
pub const KVM_MSR_EXIT_REASON_FILTER: u32 = 1 << 2;
/// Notify-exit flag: the VM context is invalid.
pub const KVM_NOTIFY_CONTEXT_INVALID: u32 = 1 << 0;
/// Memory-fault flag: the access was to private memory (Linux 6.8+).
pub const KVM_MEMORY_EXIT_FLAG_PRIVATE: u64 = 1 << 3;

/// Hyper-V exit type: SynIC MSR write.
pub const KVM_EXIT_HYPERV_SYNIC: u32 = 1;
/// Hyper-V exit type: hypercall.
pub const KVM_EXIT_HYPERV_HCALL: u32 = 2;
/// Hyper-V exit type: synthetic debugger MSR.
pub const KVM_EXIT_HYPERV_SYNDBG: u32 = 3;
/// Xen exit type: hypercall.
pub const KVM_EXIT_XEN_HCALL: u32 = 1;

/// Size of the `s` (sync registers) union of `kvm_run`.
pub const SYNC_REGS_SIZE_BYTES: usize = 2048;

byte_union! {
    /// The anonymous exit union of `struct kvm_run` (256 bytes): read it as
    /// the `KvmRunExit*` payload that matches `exit_reason`.
    KvmRunExit, align = 8, size = 256
}

byte_union! {
    /// The `s` union of `struct kvm_run` (2048 bytes): the architecture's
    /// `kvm_sync_regs` (for x86 [`KvmSyncRegs`]) or padding.
    KvmRunSyncArea, align = 8, size = 2048
}

impl KvmRunSyncArea {
    /// The x86 sync registers.
    pub fn x86_regs(&self) -> KvmSyncRegs {
        self.read_or_zeroed()
    }
}

/// `struct kvm_run` as laid out on x86, arm64, ppc and riscv (s390 inserts
/// `psw_mask`/`psw_addr` before the exit union; see `s390x::KvmRun`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct KvmRun {
    /// In: request an exit when interrupts can be injected.
    pub request_interrupt_window: u8,
    /// In: return from `KVM_RUN` immediately with `EINTR`.
    pub immediate_exit: u8,
    /// Padding.
    pub padding1: [u8; 6],
    /// Out: `KVM_EXIT_*`.
    pub exit_reason: u32,
    /// Out: an interrupt can be injected now.
    pub ready_for_interrupt_injection: u8,
    /// Out: RFLAGS.IF.
    pub if_flag: u8,
    /// Out: `KVM_RUN_X86_*` flags.
    pub flags: u16,
    /// In/out: CR8.
    pub cr8: u64,
    /// In/out: APIC base MSR.
    pub apic_base: u64,
    /// The exit union (C anonymous union; its `char padding[256]`).
    pub exit: KvmRunExit,
    /// Register classes valid in `s` (`KVM_SYNC_*`).
    pub kvm_valid_regs: u64,
    /// Register classes user space dirtied in `s`.
    pub kvm_dirty_regs: u64,
    /// Synchronized registers.
    pub s: KvmRunSyncArea,
}

zeroed_default!(KvmRun);

/// `kvm_run.hw` (`KVM_EXIT_UNKNOWN`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRunExitHw {
    /// Hardware exit reason.
    pub hardware_exit_reason: u64,
}

/// `kvm_run.fail_entry` (`KVM_EXIT_FAIL_ENTRY`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRunExitFailEntry {
    /// Hardware entry-failure reason.
    pub hardware_entry_failure_reason: u64,
    /// Physical CPU.
    pub cpu: u32,
    /// Implicit C tail padding.
    pub _pad0: [u8; 4],
}

/// `kvm_run.ex` (`KVM_EXIT_EXCEPTION`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRunExitException {
    /// Exception vector.
    pub exception: u32,
    /// Error code.
    pub error_code: u32,
}

/// `kvm_run.io` (`KVM_EXIT_IO`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRunExitIo {
    /// `KVM_EXIT_IO_IN` or `KVM_EXIT_IO_OUT`.
    pub direction: u8,
    /// Access size in bytes.
    pub size: u8,
    /// Port.
    pub port: u16,
    /// Repetition count (string I/O).
    pub count: u32,
    /// Offset of the data from the start of `kvm_run`.
    pub data_offset: u64,
}

/// `kvm_run.debug` (`KVM_EXIT_DEBUG`, x86 arch part).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRunExitDebug {
    /// Architecture-specific debug exit information.
    pub arch: KvmDebugExitArch,
}

/// `kvm_run.mmio` (`KVM_EXIT_MMIO`; also `iocsr_io` for
/// `KVM_EXIT_LOONGARCH_IOCSR`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRunExitMmio {
    /// Guest-physical address.
    pub phys_addr: u64,
    /// Data (written by the guest, or to be read by it).
    pub data: [u8; 8],
    /// Access length in bytes.
    pub len: u32,
    /// Non-zero for a write.
    pub is_write: u8,
    /// Implicit C tail padding.
    pub _pad0: [u8; 3],
}

/// `kvm_run.hypercall` (`KVM_EXIT_HYPERCALL`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRunExitHypercall {
    /// Hypercall number.
    pub nr: u64,
    /// Arguments.
    pub args: [u64; 6],
    /// Return value.
    pub ret: u64,
    /// Non-zero if the guest was in long mode (6.6+ overlays `u64 flags`
    /// here; read `longmode` and `pad` together for those).
    pub longmode: u32,
    /// Padding.
    pub pad: u32,
}

/// `kvm_run.tpr_access` (`KVM_EXIT_TPR_ACCESS`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRunExitTprAccess {
    /// RIP of the access.
    pub rip: u64,
    /// Non-zero for a write.
    pub is_write: u32,
    /// Padding.
    pub pad: u32,
}

/// `kvm_run.s390_sieic` (`KVM_EXIT_S390_SIEIC`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRunExitS390Sieic {
    /// Interception code.
    pub icptcode: u8,
    /// Implicit C padding.
    pub _pad0: [u8; 1],
    /// Instruction parameter A.
    pub ipa: u16,
    /// Instruction parameter B.
    pub ipb: u32,
}

/// `kvm_run.s390_ucontrol` (`KVM_EXIT_S390_UCONTROL`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRunExitS390Ucontrol {
    /// Translation-exception code.
    pub trans_exc_code: u64,
    /// Program-interruption code.
    pub pgm_code: u32,
    /// Implicit C tail padding.
    pub _pad0: [u8; 4],
}

/// `kvm_run.dcr` (`KVM_EXIT_DCR`, deprecated).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRunExitDcr {
    /// DCR number.
    pub dcrn: u32,
    /// Data.
    pub data: u32,
    /// Non-zero for a write.
    pub is_write: u8,
    /// Implicit C tail padding.
    pub _pad0: [u8; 3],
}

/// `kvm_run.internal` (`KVM_EXIT_INTERNAL_ERROR`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRunExitInternal {
    /// `KVM_INTERNAL_ERROR_*`.
    pub suberror: u32,
    /// Number of valid `data` entries.
    pub ndata: u32,
    /// Extra data.
    pub data: [u64; 16],
}

/// `kvm_run.emulation_failure` (`KVM_EXIT_INTERNAL_ERROR` with
/// `KVM_INTERNAL_ERROR_EMULATION`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRunExitEmulationFailure {
    /// `KVM_INTERNAL_ERROR_EMULATION`.
    pub suberror: u32,
    /// Number of valid 64-bit data words.
    pub ndata: u32,
    /// `KVM_INTERNAL_ERROR_EMULATION_FLAG_*`.
    pub flags: u64,
    /// Number of valid `insn_bytes`.
    pub insn_size: u8,
    /// The failing instruction's bytes.
    pub insn_bytes: [u8; 15],
}

/// `kvm_run.osi` (`KVM_EXIT_OSI`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRunExitOsi {
    /// Guest GPRs.
    pub gprs: [u64; 32],
}

/// `kvm_run.papr_hcall` (`KVM_EXIT_PAPR_HCALL`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRunExitPaprHcall {
    /// Hypercall number.
    pub nr: u64,
    /// Return value.
    pub ret: u64,
    /// Arguments.
    pub args: [u64; 9],
}

/// `kvm_run.s390_tsch` (`KVM_EXIT_S390_TSCH`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRunExitS390Tsch {
    /// Subchannel id.
    pub subchannel_id: u16,
    /// Subchannel number.
    pub subchannel_nr: u16,
    /// I/O interruption parameter.
    pub io_int_parm: u32,
    /// I/O interruption word.
    pub io_int_word: u32,
    /// Instruction parameter B.
    pub ipb: u32,
    /// An interrupt was dequeued.
    pub dequeued: u8,
    /// Implicit C tail padding.
    pub _pad0: [u8; 3],
}

/// `kvm_run.epr` (`KVM_EXIT_EPR`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRunExitEpr {
    /// External proxy register value (in).
    pub epr: u32,
}

/// `kvm_run.system_event` (`KVM_EXIT_SYSTEM_EVENT`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRunExitSystemEvent {
    /// `KVM_SYSTEM_EVENT_*`.
    pub r#type: u32,
    /// Number of valid `data` entries.
    pub ndata: u32,
    /// Event data (C union with the older `u64 flags` = `data[0]`).
    pub data: [u64; 16],
}

impl KvmRunExitSystemEvent {
    /// The union member `flags` (alias of `data[0]`).
    pub const fn flags(&self) -> u64 {
        self.data[0]
    }
}

/// `kvm_run.s390_stsi` (`KVM_EXIT_S390_STSI`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRunExitS390Stsi {
    /// Operand address.
    pub addr: u64,
    /// Access register.
    pub ar: u8,
    /// Reserved.
    pub reserved: u8,
    /// Function code.
    pub fc: u8,
    /// Selector 1.
    pub sel1: u8,
    /// Selector 2.
    pub sel2: u16,
    /// Implicit C tail padding.
    pub _pad0: [u8; 2],
}

/// `kvm_run.eoi` (`KVM_EXIT_IOAPIC_EOI`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRunExitEoi {
    /// The EOI'd vector.
    pub vector: u8,
}

/// `kvm_hyperv_exit.u.synic`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmHypervExitSynic {
    /// The MSR written.
    pub msr: u32,
    /// Padding.
    pub pad2: u32,
    /// SCONTROL value.
    pub control: u64,
    /// SIEFP value.
    pub evt_page: u64,
    /// SIMP value.
    pub msg_page: u64,
}

/// `kvm_hyperv_exit.u.hcall`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmHypervExitHcall {
    /// Hypercall input value.
    pub input: u64,
    /// Result (out).
    pub result: u64,
    /// Parameters.
    pub params: [u64; 2],
}

/// `kvm_hyperv_exit.u.syndbg`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmHypervExitSyndbg {
    /// The MSR written.
    pub msr: u32,
    /// Padding.
    pub pad2: u32,
    /// Control value.
    pub control: u64,
    /// Status value.
    pub status: u64,
    /// Send page.
    pub send_page: u64,
    /// Receive page.
    pub recv_page: u64,
    /// Pending page.
    pub pending_page: u64,
}

byte_union! {
    /// The `u` union of `struct kvm_hyperv_exit` (48 bytes).
    KvmHypervExitU, align = 8, size = 48
}

/// `struct kvm_hyperv_exit` (`kvm_run.hyperv`, `KVM_EXIT_HYPERV`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmHypervExit {
    /// `KVM_EXIT_HYPERV_*`.
    pub r#type: u32,
    /// Padding.
    pub pad1: u32,
    /// Type-specific data.
    pub u: KvmHypervExitU,
}

/// `kvm_xen_exit.u.hcall`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmXenExitHcall {
    /// Non-zero in long mode.
    pub longmode: u32,
    /// Current privilege level.
    pub cpl: u32,
    /// Hypercall number.
    pub input: u64,
    /// Result (in).
    pub result: u64,
    /// Arguments.
    pub params: [u64; 6],
}

byte_union! {
    /// The `u` union of `struct kvm_xen_exit` (72 bytes).
    KvmXenExitU, align = 8, size = 72
}

/// `struct kvm_xen_exit` (`kvm_run.xen`, `KVM_EXIT_XEN`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmXenExit {
    /// `KVM_EXIT_XEN_*`.
    pub r#type: u32,
    /// Implicit C padding.
    pub _pad0: [u8; 4],
    /// Type-specific data.
    pub u: KvmXenExitU,
}

/// `kvm_run.arm_nisv` (`KVM_EXIT_ARM_NISV`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRunExitArmNisv {
    /// ESR_EL2 ISS bits.
    pub esr_iss: u64,
    /// Faulting IPA.
    pub fault_ipa: u64,
}

/// `kvm_run.msr` (`KVM_EXIT_X86_RDMSR` / `KVM_EXIT_X86_WRMSR`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRunExitMsr {
    /// User space to kernel: non-zero injects #GP.
    pub error: u8,
    /// Padding.
    pub pad: [u8; 7],
    /// `KVM_MSR_EXIT_REASON_*`.
    pub reason: u32,
    /// MSR index.
    pub index: u32,
    /// Value written, or to be read.
    pub data: u64,
}

/// `kvm_run.riscv_sbi` (`KVM_EXIT_RISCV_SBI`; `unsigned long` fields, shown
/// for a 64-bit host).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRunExitRiscvSbi {
    /// SBI extension id.
    pub extension_id: u64,
    /// SBI function id.
    pub function_id: u64,
    /// Arguments.
    pub args: [u64; 6],
    /// Return values.
    pub ret: [u64; 2],
}

/// `kvm_run.riscv_csr` (`KVM_EXIT_RISCV_CSR`; 64-bit host).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRunExitRiscvCsr {
    /// CSR number.
    pub csr_num: u64,
    /// New value.
    pub new_value: u64,
    /// Write mask.
    pub write_mask: u64,
    /// Value to return.
    pub ret_value: u64,
}

/// `kvm_run.notify` (`KVM_EXIT_NOTIFY`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRunExitNotify {
    /// `KVM_NOTIFY_CONTEXT_INVALID`.
    pub flags: u32,
}

/// `kvm_run.memory_fault` (`KVM_EXIT_MEMORY_FAULT`, Linux 6.8+).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRunExitMemoryFault {
    /// `KVM_MEMORY_EXIT_FLAG_*`.
    pub flags: u64,
    /// Guest-physical address.
    pub gpa: u64,
    /// Size of the faulting range.
    pub size: u64,
}

assert_size! {
    KvmRunExit => 256,
    KvmRunSyncArea => 2048,
    KvmRun => 2352,
    KvmRunExitHw => 8,
    KvmRunExitFailEntry => 16,
    KvmRunExitException => 8,
    KvmRunExitIo => 16,
    KvmRunExitDebug => 32,
    KvmRunExitMmio => 24,
    KvmRunExitHypercall => 72,
    KvmRunExitTprAccess => 16,
    KvmRunExitS390Sieic => 8,
    KvmRunExitS390Ucontrol => 16,
    KvmRunExitDcr => 12,
    KvmRunExitInternal => 136,
    KvmRunExitEmulationFailure => 32,
    KvmRunExitOsi => 256,
    KvmRunExitPaprHcall => 88,
    KvmRunExitS390Tsch => 20,
    KvmRunExitEpr => 4,
    KvmRunExitSystemEvent => 136,
    KvmRunExitS390Stsi => 16,
    KvmRunExitEoi => 1,
    KvmHypervExitSynic => 32,
    KvmHypervExitHcall => 32,
    KvmHypervExitSyndbg => 48,
    KvmHypervExitU => 48,
    KvmHypervExit => 56,
    KvmXenExitHcall => 72,
    KvmXenExitU => 72,
    KvmXenExit => 80,
    KvmRunExitArmNisv => 16,
    KvmRunExitMsr => 24,
    KvmRunExitRiscvSbi => 80,
    KvmRunExitRiscvCsr => 32,
    KvmRunExitNotify => 4,
    KvmRunExitMemoryFault => 24,
}
const _: () = assert!(core::mem::size_of::<KvmSyncRegs>() <= SYNC_REGS_SIZE_BYTES);
