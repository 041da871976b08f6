//! x86 structs and constants: `arch/x86/include/uapi/asm/kvm.h` plus the
//! x86-only parts of `<linux/kvm.h>`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// vCPU mmap page offset of the PIO data page.
pub const KVM_PIO_PAGE_OFFSET: u64 = 1;
/// vCPU mmap page offset of the coalesced MMIO ring.
pub const KVM_COALESCED_MMIO_PAGE_OFFSET: u64 = 2;
/// vCPU mmap page offset of the dirty ring.
pub const KVM_DIRTY_LOG_PAGE_OFFSET: u64 = 64;

/// Number of interrupt vectors.
pub const KVM_NR_INTERRUPTS: usize = 256;
/// Largest number of CPUID entries KVM accepts (kernel-internal
/// `KVM_MAX_CPUID_ENTRIES`; not in the uapi headers).
pub const KVM_MAX_CPUID_ENTRIES: u32 = 256;
/// User-visible memory slots per address space (kernel-internal
/// `KVM_USER_MEM_SLOTS` = `SHRT_MAX` - 3 internal slots; not in the uapi
/// headers).
pub const KVM_USER_MEM_SLOTS: u32 = 32764;

/// Exception vector: divide error.
pub const DE_VECTOR: u32 = 0;
/// Exception vector: debug.
pub const DB_VECTOR: u32 = 1;
/// Exception vector: breakpoint.
pub const BP_VECTOR: u32 = 3;
/// Exception vector: overflow.
pub const OF_VECTOR: u32 = 4;
/// Exception vector: BOUND range exceeded.
pub const BR_VECTOR: u32 = 5;
/// Exception vector: invalid opcode.
pub const UD_VECTOR: u32 = 6;
/// Exception vector: device not available.
pub const NM_VECTOR: u32 = 7;
/// Exception vector: double fault.
pub const DF_VECTOR: u32 = 8;
/// Exception vector: invalid TSS.
pub const TS_VECTOR: u32 = 10;
/// Exception vector: segment not present.
pub const NP_VECTOR: u32 = 11;
/// Exception vector: stack-segment fault.
pub const SS_VECTOR: u32 = 12;
/// Exception vector: general protection.
pub const GP_VECTOR: u32 = 13;
/// Exception vector: page fault.
pub const PF_VECTOR: u32 = 14;
/// Exception vector: x87 floating-point error.
pub const MF_VECTOR: u32 = 16;
/// Exception vector: alignment check.
pub const AC_VECTOR: u32 = 17;
/// Exception vector: machine check.
pub const MC_VECTOR: u32 = 18;
/// Exception vector: SIMD floating-point.
pub const XM_VECTOR: u32 = 19;
/// Exception vector: virtualization exception.
pub const VE_VECTOR: u32 = 20;

/// irqchip id: master 8259.
pub const KVM_IRQCHIP_PIC_MASTER: u32 = 0;
/// irqchip id: slave 8259.
pub const KVM_IRQCHIP_PIC_SLAVE: u32 = 1;
/// irqchip id: IOAPIC.
pub const KVM_IRQCHIP_IOAPIC: u32 = 2;
/// Number of in-kernel irqchips.
pub const KVM_NR_IRQCHIPS: u32 = 3;
/// Number of IOAPIC pins.
pub const KVM_IOAPIC_NUM_PINS: usize = 24;

/// `kvm_run.flags`: the vCPU is in SMM.
pub const KVM_RUN_X86_SMM: u16 = 1 << 0;
/// `kvm_run.flags`: a bus lock was detected.
pub const KVM_RUN_X86_BUS_LOCK: u16 = 1 << 1;

/// `KVM_CREATE_VM` type: default VM (Linux 6.8+ names it; 0 always worked).
pub const KVM_X86_DEFAULT_VM: u64 = 0;
/// `KVM_CREATE_VM` type: software-protected VM (Linux 6.8+).
pub const KVM_X86_SW_PROTECTED_VM: u64 = 1;

/// `struct kvm_memory_alias` (obsolete `KVM_SET_MEMORY_ALIAS`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmMemoryAlias {
    /// Alias slot.
    pub slot: u32,
    /// Flags.
    pub flags: u32,
    /// Guest-physical address of the alias.
    pub guest_phys_addr: u64,
    /// Size in bytes.
    pub memory_size: u64,
    /// Target guest-physical address.
    pub target_phys_addr: u64,
}

/// `struct kvm_pic_state`: one 8259 PIC.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmPicState {
    /// Edge detection.
    pub last_irr: u8,
    /// Interrupt request register.
    pub irr: u8,
    /// Interrupt mask register.
    pub imr: u8,
    /// In-service register.
    pub isr: u8,
    /// Highest priority.
    pub priority_add: u8,
    /// Vector base.
    pub irq_base: u8,
    /// Read register select.
    pub read_reg_select: u8,
    /// Poll mode.
    pub poll: u8,
    /// Special mask mode.
    pub special_mask: u8,
    /// Initialization state.
    pub init_state: u8,
    /// Auto-EOI.
    pub auto_eoi: u8,
    /// Rotate on auto-EOI.
    pub rotate_on_auto_eoi: u8,
    /// Special fully nested mode.
    pub special_fully_nested_mode: u8,
    /// ICW4 expected.
    pub init4: u8,
    /// Edge/level control register.
    pub elcr: u8,
    /// Writable ELCR bits.
    pub elcr_mask: u8,
}

/// `struct kvm_ioapic_state`: the IOAPIC (`redirtbl` entries as raw `u64`
/// `bits`; the C bitfield view is not reproduced).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmIoapicState {
    /// MMIO base address.
    pub base_address: u64,
    /// Register select.
    pub ioregsel: u32,
    /// IOAPIC id.
    pub id: u32,
    /// Interrupt request register.
    pub irr: u32,
    /// Padding.
    pub pad: u32,
    /// Redirection table.
    pub redirtbl: [u64; KVM_IOAPIC_NUM_PINS],
}

/// `struct kvm_regs` (x86): the `KVM_GET/SET_REGS` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRegs {
    /// RAX.
    pub rax: u64,
    /// RBX.
    pub rbx: u64,
    /// RCX.
    pub rcx: u64,
    /// RDX.
    pub rdx: u64,
    /// RSI.
    pub rsi: u64,
    /// RDI.
    pub rdi: u64,
    /// RSP.
    pub rsp: u64,
    /// RBP.
    pub rbp: u64,
    /// R8.
    pub r8: u64,
    /// R9.
    pub r9: u64,
    /// R10.
    pub r10: u64,
    /// R11.
    pub r11: u64,
    /// R12.
    pub r12: u64,
    /// R13.
    pub r13: u64,
    /// R14.
    pub r14: u64,
    /// R15.
    pub r15: u64,
    /// RIP.
    pub rip: u64,
    /// RFLAGS.
    pub rflags: u64,
}

/// Size of the local APIC register page.
pub const KVM_APIC_REG_SIZE: usize = 0x400;

/// `struct kvm_lapic_state`: the `KVM_GET/SET_LAPIC` argument.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct KvmLapicState {
    /// The APIC register page (C `char regs[1024]`).
    pub regs: [u8; KVM_APIC_REG_SIZE],
}

/// `struct kvm_segment`: a segment register.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmSegment {
    /// Base address.
    pub base: u64,
    /// Limit.
    pub limit: u32,
    /// Selector.
    pub selector: u16,
    /// Type.
    pub r#type: u8,
    /// Present.
    pub present: u8,
    /// Descriptor privilege level.
    pub dpl: u8,
    /// Default operation size.
    pub db: u8,
    /// Code/data (not system) segment.
    pub s: u8,
    /// 64-bit code segment.
    pub l: u8,
    /// Granularity.
    pub g: u8,
    /// Available bit.
    pub avl: u8,
    /// Unusable.
    pub unusable: u8,
    /// Padding.
    pub padding: u8,
}

/// `struct kvm_dtable`: a descriptor-table register (GDTR/IDTR).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmDtable {
    /// Base address.
    pub base: u64,
    /// Limit.
    pub limit: u16,
    /// Padding.
    pub padding: [u16; 3],
}

/// `struct kvm_sregs` (x86): the `KVM_GET/SET_SREGS` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmSregs {
    /// CS.
    pub cs: KvmSegment,
    /// DS.
    pub ds: KvmSegment,
    /// ES.
    pub es: KvmSegment,
    /// FS.
    pub fs: KvmSegment,
    /// GS.
    pub gs: KvmSegment,
    /// SS.
    pub ss: KvmSegment,
    /// TR.
    pub tr: KvmSegment,
    /// LDTR.
    pub ldt: KvmSegment,
    /// GDTR.
    pub gdt: KvmDtable,
    /// IDTR.
    pub idt: KvmDtable,
    /// CR0.
    pub cr0: u64,
    /// CR2.
    pub cr2: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// CR8.
    pub cr8: u64,
    /// EFER.
    pub efer: u64,
    /// APIC base MSR.
    pub apic_base: u64,
    /// Pending external interrupt (one bit per vector).
    pub interrupt_bitmap: [u64; KVM_NR_INTERRUPTS.div_ceil(64)],
}

/// `kvm_sregs2.flags`: `pdptrs` is valid.
pub const KVM_SREGS2_FLAGS_PDPTRS_VALID: u64 = 1;

/// `struct kvm_sregs2`: the `KVM_GET/SET_SREGS2` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmSregs2 {
    /// CS.
    pub cs: KvmSegment,
    /// DS.
    pub ds: KvmSegment,
    /// ES.
    pub es: KvmSegment,
    /// FS.
    pub fs: KvmSegment,
    /// GS.
    pub gs: KvmSegment,
    /// SS.
    pub ss: KvmSegment,
    /// TR.
    pub tr: KvmSegment,
    /// LDTR.
    pub ldt: KvmSegment,
    /// GDTR.
    pub gdt: KvmDtable,
    /// IDTR.
    pub idt: KvmDtable,
    /// CR0.
    pub cr0: u64,
    /// CR2.
    pub cr2: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// CR8.
    pub cr8: u64,
    /// EFER.
    pub efer: u64,
    /// APIC base MSR.
    pub apic_base: u64,
    /// `KVM_SREGS2_FLAGS_*`.
    pub flags: u64,
    /// PAE page-directory pointers.
    pub pdptrs: [u64; 4],
}

/// `struct kvm_fpu` (x86): the `KVM_GET/SET_FPU` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmFpu {
    /// x87 registers (FXSAVE format).
    pub fpr: [[u8; 16]; 8],
    /// FPU control word.
    pub fcw: u16,
    /// FPU status word.
    pub fsw: u16,
    /// Abridged tag word.
    pub ftwx: u8,
    /// Padding.
    pub pad1: u8,
    /// Last opcode.
    pub last_opcode: u16,
    /// Last instruction pointer.
    pub last_ip: u64,
    /// Last data pointer.
    pub last_dp: u64,
    /// XMM registers.
    pub xmm: [[u8; 16]; 16],
    /// MXCSR.
    pub mxcsr: u32,
    /// Padding.
    pub pad2: u32,
}

/// `struct kvm_msr_entry`: one MSR.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmMsrEntry {
    /// MSR index.
    pub index: u32,
    /// Reserved.
    pub reserved: u32,
    /// Value.
    pub data: u64,
}

/// `struct kvm_msrs`: the `KVM_GET/SET_MSRS` header, followed by `nmsrs`
/// [`KvmMsrEntry`] (`entries[]`).
/// 8-aligned like the C struct, whose trailing entries contain `u64`s.
#[repr(C, align(8))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmMsrs {
    /// Number of entries.
    pub nmsrs: u32,
    /// Padding.
    pub pad: u32,
}

/// `struct kvm_msr_list`: the `KVM_GET_MSR_INDEX_LIST` header, followed by
/// `nmsrs` `u32` MSR indices (`indices[]`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmMsrList {
    /// Number of indices (in: capacity, out: count).
    pub nmsrs: u32,
}

/// Largest MSR filter bitmap, in bytes.
pub const KVM_MSR_FILTER_MAX_BITMAP_SIZE: u32 = 0x600;
/// MSR filter range flag: applies to reads.
pub const KVM_MSR_FILTER_READ: u32 = 1 << 0;
/// MSR filter range flag: applies to writes.
pub const KVM_MSR_FILTER_WRITE: u32 = 1 << 1;
/// Number of ranges in an MSR filter.
pub const KVM_MSR_FILTER_MAX_RANGES: usize = 16;
/// MSR filter default: allow.
pub const KVM_MSR_FILTER_DEFAULT_ALLOW: u32 = 0;
/// MSR filter default: deny.
pub const KVM_MSR_FILTER_DEFAULT_DENY: u32 = 1 << 0;

/// `struct kvm_msr_filter_range`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmMsrFilterRange {
    /// `KVM_MSR_FILTER_READ` / `_WRITE`.
    pub flags: u32,
    /// Number of MSRs the bitmap covers.
    pub nmsrs: u32,
    /// First MSR index.
    pub base: u32,
    /// Implicit C padding.
    pub _pad0: [u8; 4],
    /// User address of the bitmap (C `__u8 *`).
    pub bitmap: u64,
}

/// `struct kvm_msr_filter`: the `KVM_X86_SET_MSR_FILTER` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmMsrFilter {
    /// `KVM_MSR_FILTER_DEFAULT_*`.
    pub flags: u32,
    /// Implicit C padding.
    pub _pad0: [u8; 4],
    /// Ranges.
    pub ranges: [KvmMsrFilterRange; KVM_MSR_FILTER_MAX_RANGES],
}

/// `struct kvm_cpuid_entry`: legacy CPUID entry (`KVM_SET_CPUID`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmCpuidEntry {
    /// Leaf.
    pub function: u32,
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
    /// Padding.
    pub padding: u32,
}

/// `struct kvm_cpuid`: the `KVM_SET_CPUID` header, followed by `nent`
/// [`KvmCpuidEntry`] (`entries[]`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmCpuid {
    /// Number of entries.
    pub nent: u32,
    /// Padding.
    pub padding: u32,
}

/// `struct kvm_cpuid_entry2`: one CPUID leaf/subleaf.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmCpuidEntry2 {
    /// Leaf (EAX input).
    pub function: u32,
    /// Subleaf (ECX input).
    pub index: u32,
    /// `KVM_CPUID_FLAG_*`.
    pub flags: u32,
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
    /// Padding.
    pub padding: [u32; 3],
}

/// CPUID entry flag: `index` is significant.
pub const KVM_CPUID_FLAG_SIGNIFCANT_INDEX: u32 = 1 << 0;
/// CPUID entry flag: stateful function (obsolete).
pub const KVM_CPUID_FLAG_STATEFUL_FUNC: u32 = 1 << 1;
/// CPUID entry flag: read next (obsolete).
pub const KVM_CPUID_FLAG_STATE_READ_NEXT: u32 = 1 << 2;

/// `struct kvm_cpuid2`: the `KVM_SET/GET_CPUID2` and
/// `KVM_GET_SUPPORTED_CPUID` header, followed by `nent` [`KvmCpuidEntry2`]
/// (`entries[]`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmCpuid2 {
    /// Number of entries (in: capacity, out: count).
    pub nent: u32,
    /// Padding.
    pub padding: u32,
}

/// `struct kvm_pit_channel_state`: one i8254 channel.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmPitChannelState {
    /// Reload count (can be 65536).
    pub count: u32,
    /// Latched count.
    pub latched_count: u16,
    /// Count latched.
    pub count_latched: u8,
    /// Status latched.
    pub status_latched: u8,
    /// Status byte.
    pub status: u8,
    /// Read state.
    pub read_state: u8,
    /// Write state.
    pub write_state: u8,
    /// Write latch.
    pub write_latch: u8,
    /// Read/write mode.
    pub rw_mode: u8,
    /// Counter mode.
    pub mode: u8,
    /// BCD mode.
    pub bcd: u8,
    /// Gate.
    pub gate: u8,
    /// Time the count was loaded (ns).
    pub count_load_time: i64,
}

/// `struct kvm_debug_exit_arch` (x86): `kvm_run.debug.arch`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmDebugExitArch {
    /// Exception vector.
    pub exception: u32,
    /// Padding.
    pub pad: u32,
    /// Guest RIP.
    pub pc: u64,
    /// DR6.
    pub dr6: u64,
    /// DR7.
    pub dr7: u64,
}

/// Guest-debug control: use software breakpoints.
pub const KVM_GUESTDBG_USE_SW_BP: u32 = 0x0001_0000;
/// Guest-debug control: use hardware breakpoints.
pub const KVM_GUESTDBG_USE_HW_BP: u32 = 0x0002_0000;
/// Guest-debug control: inject #DB.
pub const KVM_GUESTDBG_INJECT_DB: u32 = 0x0004_0000;
/// Guest-debug control: inject #BP.
pub const KVM_GUESTDBG_INJECT_BP: u32 = 0x0008_0000;
/// Guest-debug control: block IRQs while single-stepping.
pub const KVM_GUESTDBG_BLOCKIRQ: u32 = 0x0010_0000;

/// `struct kvm_guest_debug_arch` (x86): `kvm_guest_debug.arch`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmGuestDebugArch {
    /// DR0..DR7.
    pub debugreg: [u64; 8],
}

/// `struct kvm_pit_state`: the `KVM_GET/SET_PIT` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmPitState {
    /// The three channels.
    pub channels: [KvmPitChannelState; 3],
}

/// PIT flag: HPET legacy mode.
pub const KVM_PIT_FLAGS_HPET_LEGACY: u32 = 0x0000_0001;
/// PIT flag: speaker data on.
pub const KVM_PIT_FLAGS_SPEAKER_DATA_ON: u32 = 0x0000_0002;
/// `KVM_CREATE_PIT2` flag: dummy speaker port.
pub const KVM_PIT_SPEAKER_DUMMY: u32 = 1;

/// `struct kvm_pit_state2`: the `KVM_GET/SET_PIT2` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmPitState2 {
    /// The three channels.
    pub channels: [KvmPitChannelState; 3],
    /// `KVM_PIT_FLAGS_*`.
    pub flags: u32,
    /// Reserved.
    pub reserved: [u32; 9],
}

/// `struct kvm_pit_config`: the `KVM_CREATE_PIT2` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmPitConfig {
    /// `KVM_PIT_SPEAKER_DUMMY`.
    pub flags: u32,
    /// Reserved.
    pub pad: [u32; 15],
}

/// `struct kvm_reinject_control`: PIT reinjection control.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmReinjectControl {
    /// Reinject missed PIT ticks.
    pub pit_reinject: u8,
    /// Reserved.
    pub reserved: [u8; 31],
}

/// vCPU events valid flag: `nmi.pending`.
pub const KVM_VCPUEVENT_VALID_NMI_PENDING: u32 = 0x0000_0001;
/// vCPU events valid flag: `sipi_vector`.
pub const KVM_VCPUEVENT_VALID_SIPI_VECTOR: u32 = 0x0000_0002;
/// vCPU events valid flag: `interrupt.shadow`.
pub const KVM_VCPUEVENT_VALID_SHADOW: u32 = 0x0000_0004;
/// vCPU events valid flag: `smi`.
pub const KVM_VCPUEVENT_VALID_SMM: u32 = 0x0000_0008;
/// vCPU events valid flag: exception payload.
pub const KVM_VCPUEVENT_VALID_PAYLOAD: u32 = 0x0000_0010;
/// vCPU events valid flag: `triple_fault`.
pub const KVM_VCPUEVENT_VALID_TRIPLE_FAULT: u32 = 0x0000_0020;
/// Interrupt shadow: MOV SS.
pub const KVM_X86_SHADOW_INT_MOV_SS: u8 = 0x01;
/// Interrupt shadow: STI.
pub const KVM_X86_SHADOW_INT_STI: u8 = 0x02;

/// `kvm_vcpu_events.exception`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmVcpuEventsException {
    /// Injected.
    pub injected: u8,
    /// Vector.
    pub nr: u8,
    /// `error_code` is valid.
    pub has_error_code: u8,
    /// Pending (with `KVM_CAP_EXCEPTION_PAYLOAD`).
    pub pending: u8,
    /// Error code.
    pub error_code: u32,
}

/// `kvm_vcpu_events.interrupt`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmVcpuEventsInterrupt {
    /// Injected.
    pub injected: u8,
    /// Vector.
    pub nr: u8,
    /// Software interrupt.
    pub soft: u8,
    /// `KVM_X86_SHADOW_INT_*`.
    pub shadow: u8,
}

/// `kvm_vcpu_events.nmi`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmVcpuEventsNmi {
    /// Injected.
    pub injected: u8,
    /// Pending.
    pub pending: u8,
    /// NMIs masked.
    pub masked: u8,
    /// Padding.
    pub pad: u8,
}

/// `kvm_vcpu_events.smi`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmVcpuEventsSmi {
    /// In SMM.
    pub smm: u8,
    /// SMI pending.
    pub pending: u8,
    /// SMM entered from NMI handler.
    pub smm_inside_nmi: u8,
    /// INIT latched.
    pub latched_init: u8,
}

/// `kvm_vcpu_events.triple_fault`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmVcpuEventsTripleFault {
    /// Triple fault pending.
    pub pending: u8,
}

/// `struct kvm_vcpu_events` (x86): the `KVM_GET/SET_VCPU_EVENTS` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmVcpuEvents {
    /// Exception state.
    pub exception: KvmVcpuEventsException,
    /// Interrupt state.
    pub interrupt: KvmVcpuEventsInterrupt,
    /// NMI state.
    pub nmi: KvmVcpuEventsNmi,
    /// Pending SIPI vector.
    pub sipi_vector: u32,
    /// `KVM_VCPUEVENT_VALID_*`.
    pub flags: u32,
    /// SMM state.
    pub smi: KvmVcpuEventsSmi,
    /// Triple-fault state.
    pub triple_fault: KvmVcpuEventsTripleFault,
    /// Reserved.
    pub reserved: [u8; 26],
    /// `exception_payload` is valid.
    pub exception_has_payload: u8,
    /// Exception payload (CR2 / DR6).
    pub exception_payload: u64,
}

/// `struct kvm_debugregs`: the `KVM_GET/SET_DEBUGREGS` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmDebugregs {
    /// DR0..DR3.
    pub db: [u64; 4],
    /// DR6.
    pub dr6: u64,
    /// DR7.
    pub dr7: u64,
    /// Flags.
    pub flags: u64,
    /// Reserved.
    pub reserved: [u64; 9],
}

/// `struct kvm_xsave`: the `KVM_GET/SET_XSAVE` argument (4096 bytes; with
/// `KVM_CAP_XSAVE2`, `KVM_GET_XSAVE2` writes as many bytes as
/// `KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2)` returns, continuing in `extra[]`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct KvmXsave {
    /// The XSAVE area (host CPUID 0xD layout).
    pub region: [u32; 1024],
}

/// Number of entries in `kvm_xcrs.xcrs`.
pub const KVM_MAX_XCRS: usize = 16;

/// `struct kvm_xcr`: one extended control register.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmXcr {
    /// XCR index.
    pub xcr: u32,
    /// Reserved.
    pub reserved: u32,
    /// Value.
    pub value: u64,
}

/// `struct kvm_xcrs`: the `KVM_GET/SET_XCRS` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmXcrs {
    /// Number of valid entries.
    pub nr_xcrs: u32,
    /// Flags.
    pub flags: u32,
    /// The XCRs.
    pub xcrs: [KvmXcr; KVM_MAX_XCRS],
    /// Reserved.
    pub padding: [u64; 16],
}

/// Sync-regs class: `regs`.
pub const KVM_SYNC_X86_REGS: u64 = 1 << 0;
/// Sync-regs class: `sregs`.
pub const KVM_SYNC_X86_SREGS: u64 = 1 << 1;
/// Sync-regs class: `events`.
pub const KVM_SYNC_X86_EVENTS: u64 = 1 << 2;
/// All valid x86 sync-regs classes.
pub const KVM_SYNC_X86_VALID_FIELDS: u64 =
    KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS | KVM_SYNC_X86_EVENTS;

/// `struct kvm_sync_regs` (x86): `kvm_run.s.regs`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmSyncRegs {
    /// General-purpose registers.
    pub regs: KvmRegs,
    /// Special registers.
    pub sregs: KvmSregs,
    /// Pending events.
    pub events: KvmVcpuEvents,
}

/// Quirk: LINT0 re-enabled on reset.
pub const KVM_X86_QUIRK_LINT0_REENABLED: u64 = 1 << 0;
/// Quirk: CR0.CD/NW cleared on reset.
pub const KVM_X86_QUIRK_CD_NW_CLEARED: u64 = 1 << 1;
/// Quirk: LAPIC MMIO hole.
pub const KVM_X86_QUIRK_LAPIC_MMIO_HOLE: u64 = 1 << 2;
/// Quirk: OUT 0x7e increments RIP.
pub const KVM_X86_QUIRK_OUT_7E_INC_RIP: u64 = 1 << 3;
/// Quirk: MISC_ENABLE without MWAIT.
pub const KVM_X86_QUIRK_MISC_ENABLE_NO_MWAIT: u64 = 1 << 4;
/// Quirk: fix up the hypercall instruction.
pub const KVM_X86_QUIRK_FIX_HYPERCALL_INSN: u64 = 1 << 5;
/// Quirk: MWAIT never #UDs.
pub const KVM_X86_QUIRK_MWAIT_NEVER_UD_FAULTS: u64 = 1 << 6;

/// `KVM_CAP_X86_DISABLE_EXITS`: MWAIT.
pub const KVM_X86_DISABLE_EXITS_MWAIT: u64 = 1 << 0;
/// `KVM_CAP_X86_DISABLE_EXITS`: HLT.
pub const KVM_X86_DISABLE_EXITS_HLT: u64 = 1 << 1;
/// `KVM_CAP_X86_DISABLE_EXITS`: PAUSE.
pub const KVM_X86_DISABLE_EXITS_PAUSE: u64 = 1 << 2;
/// `KVM_CAP_X86_DISABLE_EXITS`: C-states.
pub const KVM_X86_DISABLE_EXITS_CSTATE: u64 = 1 << 3;
/// `KVM_CAP_X86_DISABLE_EXITS`: all valid bits.
pub const KVM_X86_DISABLE_VALID_EXITS: u64 = KVM_X86_DISABLE_EXITS_MWAIT
    | KVM_X86_DISABLE_EXITS_HLT
    | KVM_X86_DISABLE_EXITS_PAUSE
    | KVM_X86_DISABLE_EXITS_CSTATE;
/// `KVM_CAP_X86_NOTIFY_VMEXIT`: enabled.
pub const KVM_X86_NOTIFY_VMEXIT_ENABLED: u64 = 1 << 0;
/// `KVM_CAP_X86_NOTIFY_VMEXIT`: exit to user space.
pub const KVM_X86_NOTIFY_VMEXIT_USER: u64 = 1 << 1;

/// Nested state format: VMX.
pub const KVM_STATE_NESTED_FORMAT_VMX: u16 = 0;
/// Nested state format: SVM.
pub const KVM_STATE_NESTED_FORMAT_SVM: u16 = 1;
/// Nested state flag: in guest mode.
pub const KVM_STATE_NESTED_GUEST_MODE: u16 = 0x0000_0001;
/// Nested state flag: nested run pending.
pub const KVM_STATE_NESTED_RUN_PENDING: u16 = 0x0000_0002;
/// Nested state flag: enlightened VMCS in use.
pub const KVM_STATE_NESTED_EVMCS: u16 = 0x0000_0004;
/// Nested state flag: MTF pending.
pub const KVM_STATE_NESTED_MTF_PENDING: u16 = 0x0000_0008;
/// Nested state flag: GIF set.
pub const KVM_STATE_NESTED_GIF_SET: u16 = 0x0000_0100;
/// Nested SMM flag: in guest mode.
pub const KVM_STATE_NESTED_SMM_GUEST_MODE: u16 = 0x0000_0001;
/// Nested SMM flag: VMXON.
pub const KVM_STATE_NESTED_SMM_VMXON: u16 = 0x0000_0002;
/// Size of a VMCS12 in the nested state data.
pub const KVM_STATE_NESTED_VMX_VMCS_SIZE: usize = 0x1000;
/// Size of a VMCB12 in the nested state data.
pub const KVM_STATE_NESTED_SVM_VMCB_SIZE: usize = 0x1000;
/// VMX nested header flag: `preemption_timer_deadline` is valid.
pub const KVM_STATE_VMX_PREEMPTION_TIMER_DEADLINE: u32 = 0x0000_0001;
/// System-fd device attribute: supported XCR0 bits for guests.
pub const KVM_X86_XCOMP_GUEST_SUPP: u64 = 0;

/// `kvm_vmx_nested_state_hdr.smm`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmVmxNestedStateHdrSmm {
    /// `KVM_STATE_NESTED_SMM_*`.
    pub flags: u16,
}

/// `struct kvm_vmx_nested_state_hdr`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmVmxNestedStateHdr {
    /// VMXON region address.
    pub vmxon_pa: u64,
    /// Current VMCS12 address.
    pub vmcs12_pa: u64,
    /// SMM state.
    pub smm: KvmVmxNestedStateHdrSmm,
    /// Padding.
    pub pad: u16,
    /// `KVM_STATE_VMX_*`.
    pub flags: u32,
    /// Preemption timer deadline.
    pub preemption_timer_deadline: u64,
}

/// `struct kvm_svm_nested_state_hdr`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmSvmNestedStateHdr {
    /// VMCB12 address.
    pub vmcb_pa: u64,
}

/// `struct kvm_vmx_nested_state_data`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct KvmVmxNestedStateData {
    /// VMCS12.
    pub vmcs12: [u8; KVM_STATE_NESTED_VMX_VMCS_SIZE],
    /// Shadow VMCS12.
    pub shadow_vmcs12: [u8; KVM_STATE_NESTED_VMX_VMCS_SIZE],
}

/// `struct kvm_svm_nested_state_data`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct KvmSvmNestedStateData {
    /// VMCB12 save area.
    pub vmcb12: [u8; KVM_STATE_NESTED_SVM_VMCB_SIZE],
}

byte_union! {
    /// The `hdr` union of `struct kvm_nested_state` (120 bytes:
    /// [`KvmVmxNestedStateHdr`] or [`KvmSvmNestedStateHdr`]).
    KvmNestedStateHdr, align = 8, size = 120
}

/// `struct kvm_nested_state`: the `KVM_GET/SET_NESTED_STATE` header (128
/// bytes), followed by `size - 128` bytes of VMX/SVM `data`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmNestedState {
    /// `KVM_STATE_NESTED_*`.
    pub flags: u16,
    /// `KVM_STATE_NESTED_FORMAT_*`.
    pub format: u16,
    /// Total size including the data.
    pub size: u32,
    /// Format-specific header.
    pub hdr: KvmNestedStateHdr,
}

/// PMU event filter action: allow.
pub const KVM_PMU_EVENT_ALLOW: u32 = 0;
/// PMU event filter action: deny.
pub const KVM_PMU_EVENT_DENY: u32 = 1;

/// `struct kvm_pmu_event_filter`: the `KVM_SET_PMU_EVENT_FILTER` header,
/// followed by `nevents` `u64` events (`events[]`).
/// 8-aligned like the C struct, whose trailing entries contain `u64`s.
#[repr(C, align(8))]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmPmuEventFilter {
    /// `KVM_PMU_EVENT_*`.
    pub action: u32,
    /// Number of events.
    pub nevents: u32,
    /// Fixed counters the action applies to.
    pub fixed_counter_bitmap: u32,
    /// Flags.
    pub flags: u32,
    /// Reserved.
    pub pad: [u32; 4],
}

/// vCPU device-attribute group: TSC control.
pub const KVM_VCPU_TSC_CTRL: u32 = 0;
/// TSC control attribute: TSC offset.
pub const KVM_VCPU_TSC_OFFSET: u64 = 0;

/// `struct kvm_x86_mce`: the `KVM_X86_SET_MCE` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmX86Mce {
    /// MCi_STATUS.
    pub status: u64,
    /// MCi_ADDR.
    pub addr: u64,
    /// MCi_MISC.
    pub misc: u64,
    /// MCG_STATUS.
    pub mcg_status: u64,
    /// Bank number.
    pub bank: u8,
    /// Padding.
    pub pad1: [u8; 7],
    /// Reserved.
    pub pad2: [u64; 3],
}

/// Xen HVM config flag: hypercall MSR.
pub const KVM_XEN_HVM_CONFIG_HYPERCALL_MSR: u32 = 1 << 0;
/// Xen HVM config flag: intercept hypercalls.
pub const KVM_XEN_HVM_CONFIG_INTERCEPT_HCALL: u32 = 1 << 1;
/// Xen HVM config flag: shared info.
pub const KVM_XEN_HVM_CONFIG_SHARED_INFO: u32 = 1 << 2;
/// Xen HVM config flag: runstate.
pub const KVM_XEN_HVM_CONFIG_RUNSTATE: u32 = 1 << 3;
/// Xen HVM config flag: 2-level event channels.
pub const KVM_XEN_HVM_CONFIG_EVTCHN_2LEVEL: u32 = 1 << 4;
/// Xen HVM config flag: event channel send.
pub const KVM_XEN_HVM_CONFIG_EVTCHN_SEND: u32 = 1 << 5;

/// `struct kvm_xen_hvm_config`: the `KVM_XEN_HVM_CONFIG` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmXenHvmConfig {
    /// `KVM_XEN_HVM_CONFIG_*`.
    pub flags: u32,
    /// Hypercall page MSR.
    pub msr: u32,
    /// 32-bit hypercall blob address.
    pub blob_addr_32: u64,
    /// 64-bit hypercall blob address.
    pub blob_addr_64: u64,
    /// 32-bit blob size in pages.
    pub blob_size_32: u8,
    /// 64-bit blob size in pages.
    pub blob_size_64: u8,
    /// Reserved.
    pub pad2: [u8; 30],
}

byte_union! {
    /// The `u` union of `struct kvm_xen_hvm_attr` (64 bytes).
    KvmXenHvmAttrU, align = 8, size = 64
}

/// `struct kvm_xen_hvm_attr`: the `KVM_XEN_HVM_GET/SET_ATTR` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmXenHvmAttr {
    /// `KVM_XEN_ATTR_TYPE_*`.
    pub r#type: u16,
    /// Padding.
    pub pad: [u16; 3],
    /// Type-specific value.
    pub u: KvmXenHvmAttrU,
}

byte_union! {
    /// The `u` union of `struct kvm_xen_vcpu_attr` (64 bytes).
    KvmXenVcpuAttrU, align = 8, size = 64
}

/// `struct kvm_xen_vcpu_attr`: the `KVM_XEN_VCPU_GET/SET_ATTR` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmXenVcpuAttr {
    /// `KVM_XEN_VCPU_ATTR_TYPE_*`.
    pub r#type: u16,
    /// Padding.
    pub pad: [u16; 3],
    /// Type-specific value.
    pub u: KvmXenVcpuAttrU,
}

/// `struct kvm_tpr_access_ctl`: the `KVM_TPR_ACCESS_REPORTING` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmTprAccessCtl {
    /// Enable reporting.
    pub enabled: u32,
    /// Flags.
    pub flags: u32,
    /// Reserved.
    pub reserved: [u32; 8],
}

/// `struct kvm_vapic_addr`: the `KVM_SET_VAPIC_ADDR` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmVapicAddr {
    /// Guest-physical address of the VAPIC page.
    pub vapic_addr: u64,
}

/// `struct kvm_sev_cmd`: the `KVM_MEMORY_ENCRYPT_OP` argument for SEV.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmSevCmd {
    /// `KVM_SEV_*` command id.
    pub id: u32,
    /// Implicit C padding.
    pub _pad0: [u8; 4],
    /// Command data (user address).
    pub data: u64,
    /// Firmware error code (out).
    pub error: u32,
    /// `/dev/sev` fd.
    pub sev_fd: u32,
}

assert_size! {
    KvmMemoryAlias => 32,
    KvmPicState => 16,
    KvmIoapicState => 216,
    KvmRegs => 144,
    KvmLapicState => 1024,
    KvmSegment => 24,
    KvmDtable => 16,
    KvmSregs => 312,
    KvmSregs2 => 320,
    KvmFpu => 416,
    KvmMsrEntry => 16,
    KvmMsrs => 8,
    KvmMsrList => 4,
    KvmMsrFilterRange => 24,
    KvmMsrFilter => 392,
    KvmCpuidEntry => 24,
    KvmCpuid => 8,
    KvmCpuidEntry2 => 40,
    KvmCpuid2 => 8,
    KvmPitChannelState => 24,
    KvmDebugExitArch => 32,
    KvmGuestDebugArch => 64,
    KvmPitState => 72,
    KvmPitState2 => 112,
    KvmPitConfig => 64,
    KvmReinjectControl => 32,
    KvmVcpuEventsException => 8,
    KvmVcpuEventsInterrupt => 4,
    KvmVcpuEventsNmi => 4,
    KvmVcpuEventsSmi => 4,
    KvmVcpuEventsTripleFault => 1,
    KvmVcpuEvents => 64,
    KvmDebugregs => 128,
    KvmXsave => 4096,
    KvmXcr => 16,
    KvmXcrs => 392,
    KvmSyncRegs => 520,
    KvmVmxNestedStateHdrSmm => 2,
    KvmVmxNestedStateHdr => 32,
    KvmSvmNestedStateHdr => 8,
    KvmVmxNestedStateData => 8192,
    KvmSvmNestedStateData => 4096,
    KvmNestedStateHdr => 120,
    KvmNestedState => 128,
    KvmPmuEventFilter => 32,
    KvmX86Mce => 64,
    KvmXenHvmConfig => 56,
    KvmXenHvmAttrU => 64,
    KvmXenHvmAttr => 72,
    KvmXenVcpuAttrU => 64,
    KvmXenVcpuAttr => 72,
    KvmTprAccessCtl => 40,
    KvmVapicAddr => 8,
    KvmSevCmd => 24,
}

zeroed_default!(
    KvmLapicState,
    KvmXsave,
    KvmVmxNestedStateData,
    KvmSvmNestedStateData
);
