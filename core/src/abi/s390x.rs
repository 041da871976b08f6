//! s390x structs, constants and ioctl numbers, from
//! `arch/s390/include/uapi/asm/kvm.h` and the s390 parts of `<linux/kvm.h>`
//! (Linux 6.1). s390 uses the asm-generic ioctl encoding.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::ioctl::{ior, iow};
use super::{KvmRunExit, KvmRunSyncArea};

pub use super::ioctl::{
    KVM_S390_CLEAR_RESET, KVM_S390_ENABLE_SIE, KVM_S390_GET_CMMA_BITS, KVM_S390_GET_IRQ_STATE,
    KVM_S390_GET_SKEYS, KVM_S390_INITIAL_RESET, KVM_S390_INTERRUPT, KVM_S390_IRQ, KVM_S390_MEM_OP,
    KVM_S390_NORMAL_RESET, KVM_S390_PV_COMMAND, KVM_S390_SET_CMMA_BITS, KVM_S390_SET_INITIAL_PSW,
    KVM_S390_SET_IRQ_STATE, KVM_S390_SET_SKEYS, KVM_S390_STORE_STATUS, KVM_S390_UCAS_MAP,
    KVM_S390_UCAS_UNMAP, KVM_S390_VCPU_FAULT,
};

/// `struct kvm_regs` (s390): the `KVM_GET/SET_REGS` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmRegs {
    /// General-purpose registers.
    pub gprs: [u64; 16],
}

/// `struct kvm_sregs` (s390): the `KVM_GET/SET_SREGS` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmSregs {
    /// Access registers.
    pub acrs: [u32; 16],
    /// Control registers.
    pub crs: [u64; 16],
}

/// `struct kvm_fpu` (s390): the `KVM_GET/SET_FPU` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmFpu {
    /// Floating-point control register.
    pub fpc: u32,
    /// Implicit C padding.
    pub _pad0: [u8; 4],
    /// Floating-point registers.
    pub fprs: [u64; 16],
}

/// `struct kvm_debug_exit_arch` (s390).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmDebugExitArch {
    /// Address.
    pub addr: u64,
    /// `KVM_HW_BP` / `KVM_HW_WP_WRITE` / `KVM_SINGLESTEP`.
    pub r#type: u8,
    /// Padding.
    pub pad: [u8; 7],
}

/// `struct kvm_hw_breakpoint` (s390).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmHwBreakpoint {
    /// Address.
    pub addr: u64,
    /// Physical address.
    pub phys_addr: u64,
    /// Length.
    pub len: u64,
    /// `KVM_HW_BP` / `KVM_HW_WP_WRITE`.
    pub r#type: u8,
    /// Padding.
    pub pad: [u8; 7],
}

/// `struct kvm_guest_debug_arch` (s390).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmGuestDebugArch {
    /// Number of entries at `hw_bp`.
    pub nr_hw_bp: u32,
    /// Padding.
    pub pad: u32,
    /// User address of the [`KvmHwBreakpoint`] array (C pointer).
    pub hw_bp: u64,
}

/// `struct kvm_guest_debug` with the s390 arch part.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmGuestDebug {
    /// `KVM_GUESTDBG_*` control bits.
    pub control: u32,
    /// Padding.
    pub pad: u32,
    /// Architecture-specific part.
    pub arch: KvmGuestDebugArch,
}

/// Debug exit / breakpoint type: hardware breakpoint.
pub const KVM_HW_BP: u8 = 1;
/// Debug exit / breakpoint type: write watchpoint.
pub const KVM_HW_WP_WRITE: u8 = 2;
/// Debug exit type: single step.
pub const KVM_SINGLESTEP: u8 = 4;

/// `struct kvm_run` as laid out on s390 (`psw_mask`/`psw_addr` precede the
/// exit union).
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
    /// Out: interrupts enabled.
    pub if_flag: u8,
    /// Out: flags.
    pub flags: u16,
    /// Unused on s390.
    pub cr8: u64,
    /// Unused on s390.
    pub apic_base: u64,
    /// PSW mask (upper half).
    pub psw_mask: u64,
    /// PSW address (lower half).
    pub psw_addr: u64,
    /// The exit union.
    pub exit: KvmRunExit,
    /// Register classes valid in `s` (`KVM_SYNC_*`).
    pub kvm_valid_regs: u64,
    /// Register classes user space dirtied in `s`.
    pub kvm_dirty_regs: u64,
    /// Synchronized registers (s390 `kvm_sync_regs`).
    pub s: KvmRunSyncArea,
}

zeroed_default!(KvmRun);

/// Sync-regs class: prefix.
pub const KVM_SYNC_PREFIX: u64 = 1 << 0;
/// Sync-regs class: GPRs.
pub const KVM_SYNC_GPRS: u64 = 1 << 1;
/// Sync-regs class: access registers.
pub const KVM_SYNC_ACRS: u64 = 1 << 2;
/// Sync-regs class: control registers.
pub const KVM_SYNC_CRS: u64 = 1 << 3;
/// Sync-regs class: ARCH0 (TOD programmable register, CPU timer, ...).
pub const KVM_SYNC_ARCH0: u64 = 1 << 4;
/// Sync-regs class: pfault.
pub const KVM_SYNC_PFAULT: u64 = 1 << 5;
/// Sync-regs class: vector registers.
pub const KVM_SYNC_VRS: u64 = 1 << 6;
/// Sync-regs class: runtime-instrumentation control block.
pub const KVM_SYNC_RICCB: u64 = 1 << 7;
/// Sync-regs class: floating-point registers.
pub const KVM_SYNC_FPRS: u64 = 1 << 8;

/// `struct kvm_s390_psw`: the `KVM_S390_SET_INITIAL_PSW` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmS390Psw {
    /// PSW mask.
    pub mask: u64,
    /// PSW address.
    pub addr: u64,
}

/// Interrupt type: SIGP stop.
pub const KVM_S390_SIGP_STOP: u32 = 0xfffe_0000;
/// Interrupt type: program interrupt.
pub const KVM_S390_PROGRAM_INT: u32 = 0xfffe_0001;
/// Interrupt type: SIGP set prefix.
pub const KVM_S390_SIGP_SET_PREFIX: u32 = 0xfffe_0002;
/// Interrupt type: restart.
pub const KVM_S390_RESTART: u32 = 0xfffe_0003;
/// Interrupt type: pfault init.
pub const KVM_S390_INT_PFAULT_INIT: u32 = 0xfffe_0004;
/// Interrupt type: pfault done.
pub const KVM_S390_INT_PFAULT_DONE: u32 = 0xfffe_0005;
/// Interrupt type: machine check.
pub const KVM_S390_MCHK: u32 = 0xfffe_1000;
/// Interrupt type: clock comparator.
pub const KVM_S390_INT_CLOCK_COMP: u32 = 0xffff_1004;
/// Interrupt type: CPU timer.
pub const KVM_S390_INT_CPU_TIMER: u32 = 0xffff_1005;
/// Interrupt type: virtio.
pub const KVM_S390_INT_VIRTIO: u32 = 0xffff_2603;
/// Interrupt type: service signal.
pub const KVM_S390_INT_SERVICE: u32 = 0xffff_2401;
/// Interrupt type: emergency signal.
pub const KVM_S390_INT_EMERGENCY: u32 = 0xffff_1201;
/// Interrupt type: external call.
pub const KVM_S390_INT_EXTERNAL_CALL: u32 = 0xffff_1202;
/// Lowest I/O interrupt type.
pub const KVM_S390_INT_IO_MIN: u32 = 0x0000_0000;
/// Highest I/O interrupt type.
pub const KVM_S390_INT_IO_MAX: u32 = 0xfffd_ffff;
/// I/O interrupt type: adapter-interrupt bit.
pub const KVM_S390_INT_IO_AI_MASK: u32 = 0x0400_0000;

/// An I/O interrupt type (`KVM_S390_INT_IO(ai, cssid, ssid, schid)`).
pub const fn kvm_s390_int_io(ai: u32, cssid: u32, ssid: u32, schid: u32) -> u32 {
    schid | (ssid << 16) | (cssid << 18) | (ai << 26)
}

/// `struct kvm_s390_interrupt`: the `KVM_S390_INTERRUPT` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmS390Interrupt {
    /// `KVM_S390_*` interrupt type.
    pub r#type: u32,
    /// Parameter.
    pub parm: u32,
    /// 64-bit parameter.
    pub parm64: u64,
}

/// `struct kvm_s390_io_info`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmS390IoInfo {
    /// Subchannel id.
    pub subchannel_id: u16,
    /// Subchannel number.
    pub subchannel_nr: u16,
    /// I/O interruption parameter.
    pub io_int_parm: u32,
    /// I/O interruption word.
    pub io_int_word: u32,
}

/// `struct kvm_s390_ext_info`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmS390ExtInfo {
    /// External parameters.
    pub ext_params: u32,
    /// Padding.
    pub pad: u32,
    /// 64-bit external parameters.
    pub ext_params2: u64,
}

/// Program-interrupt flag: ILC valid.
pub const KVM_S390_PGM_FLAGS_ILC_VALID: u8 = 0x01;
/// Program-interrupt flag: ILC bit 0.
pub const KVM_S390_PGM_FLAGS_ILC_0: u8 = 0x02;
/// Program-interrupt flag: ILC bit 1.
pub const KVM_S390_PGM_FLAGS_ILC_1: u8 = 0x04;
/// Program-interrupt flag: ILC mask.
pub const KVM_S390_PGM_FLAGS_ILC_MASK: u8 = 0x06;
/// Program-interrupt flag: do not rewind the PSW.
pub const KVM_S390_PGM_FLAGS_NO_REWIND: u8 = 0x08;

/// `struct kvm_s390_pgm_info`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmS390PgmInfo {
    /// Translation-exception code.
    pub trans_exc_code: u64,
    /// Monitor code.
    pub mon_code: u64,
    /// PER address.
    pub per_address: u64,
    /// Data-exception code.
    pub data_exc_code: u32,
    /// Program-interruption code.
    pub code: u16,
    /// Monitor class number.
    pub mon_class_nr: u16,
    /// PER code.
    pub per_code: u8,
    /// PER ATMID.
    pub per_atmid: u8,
    /// Exception access id.
    pub exc_access_id: u8,
    /// PER access id.
    pub per_access_id: u8,
    /// Operand access id.
    pub op_access_id: u8,
    /// `KVM_S390_PGM_FLAGS_*`.
    pub flags: u8,
    /// Padding.
    pub pad: [u8; 2],
}

/// `struct kvm_s390_prefix_info`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmS390PrefixInfo {
    /// Prefix address.
    pub address: u32,
}

/// `struct kvm_s390_extcall_info`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmS390ExtcallInfo {
    /// Source CPU address.
    pub code: u16,
}

/// `struct kvm_s390_emerg_info`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmS390EmergInfo {
    /// Source CPU address.
    pub code: u16,
}

/// Stop flag: store status.
pub const KVM_S390_STOP_FLAG_STORE_STATUS: u32 = 0x01;

/// `struct kvm_s390_stop_info`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmS390StopInfo {
    /// `KVM_S390_STOP_FLAG_*`.
    pub flags: u32,
}

/// `struct kvm_s390_mchk_info`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmS390MchkInfo {
    /// CR14.
    pub cr14: u64,
    /// Machine-check interruption code.
    pub mcic: u64,
    /// Failing storage address.
    pub failing_storage_address: u64,
    /// External damage code.
    pub ext_damage_code: u32,
    /// Padding.
    pub pad: u32,
    /// Fixed logout area.
    pub fixed_logout: [u8; 16],
}

byte_union! {
    /// The `u` union of `struct kvm_s390_irq` (64 bytes).
    KvmS390IrqU, align = 8, size = 64
}

/// `struct kvm_s390_irq`: the `KVM_S390_IRQ` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmS390Irq {
    /// `KVM_S390_*` interrupt type.
    pub r#type: u64,
    /// Type-specific info.
    pub u: KvmS390IrqU,
}

/// `struct kvm_s390_irq_state`: the `KVM_S390_GET/SET_IRQ_STATE` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmS390IrqState {
    /// User address of the buffer.
    pub buf: u64,
    /// Unused.
    pub flags: u32,
    /// Buffer length.
    pub len: u32,
    /// Unused.
    pub reserved: [u32; 4],
}

/// `struct kvm_s390_ucas_mapping`: the `KVM_S390_UCAS_(UN)MAP` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmS390UcasMapping {
    /// User address.
    pub user_addr: u64,
    /// vCPU address.
    pub vcpu_addr: u64,
    /// Length.
    pub length: u64,
}

/// MEM_OP: logical read.
pub const KVM_S390_MEMOP_LOGICAL_READ: u32 = 0;
/// MEM_OP: logical write.
pub const KVM_S390_MEMOP_LOGICAL_WRITE: u32 = 1;
/// MEM_OP: SIDA read.
pub const KVM_S390_MEMOP_SIDA_READ: u32 = 2;
/// MEM_OP: SIDA write.
pub const KVM_S390_MEMOP_SIDA_WRITE: u32 = 3;
/// MEM_OP: absolute read.
pub const KVM_S390_MEMOP_ABSOLUTE_READ: u32 = 4;
/// MEM_OP: absolute write.
pub const KVM_S390_MEMOP_ABSOLUTE_WRITE: u32 = 5;
/// MEM_OP flag: check only.
pub const KVM_S390_MEMOP_F_CHECK_ONLY: u64 = 1 << 0;
/// MEM_OP flag: inject exceptions.
pub const KVM_S390_MEMOP_F_INJECT_EXCEPTION: u64 = 1 << 1;
/// MEM_OP flag: storage-key protection.
pub const KVM_S390_MEMOP_F_SKEY_PROTECTION: u64 = 1 << 2;

/// `struct kvm_s390_mem_op`: the `KVM_S390_MEM_OP` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmS390MemOp {
    /// Guest address.
    pub gaddr: u64,
    /// `KVM_S390_MEMOP_F_*`.
    pub flags: u64,
    /// Number of bytes.
    pub size: u32,
    /// `KVM_S390_MEMOP_*`.
    pub op: u32,
    /// User buffer address.
    pub buf: u64,
    /// C anonymous union of {`ar`, `key`}, `sida_offset` and `reserved[32]`.
    pub reserved: [u8; 32],
}

impl KvmS390MemOp {
    /// The access register number (union member `ar`).
    pub const fn ar(&self) -> u8 {
        self.reserved[0]
    }

    /// The access key (union member `key`).
    pub const fn key(&self) -> u8 {
        self.reserved[1]
    }

    /// The SIDA offset (union member `sida_offset`, native endian).
    pub const fn sida_offset(&self) -> u32 {
        u32::from_ne_bytes([
            self.reserved[0],
            self.reserved[1],
            self.reserved[2],
            self.reserved[3],
        ])
    }
}

/// Get-skeys result: the guest does not use storage keys.
pub const KVM_S390_GET_SKEYS_NONE: u32 = 1;
/// Largest skeys count.
pub const KVM_S390_SKEYS_MAX: u64 = 1_048_576;

/// `struct kvm_s390_skeys`: the `KVM_S390_GET/SET_SKEYS` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmS390Skeys {
    /// First guest frame.
    pub start_gfn: u64,
    /// Number of keys.
    pub count: u64,
    /// User address of the key buffer.
    pub skeydata_addr: u64,
    /// Flags.
    pub flags: u32,
    /// Reserved.
    pub reserved: [u32; 9],
}

/// CMMA log flag: peek.
pub const KVM_S390_CMMA_PEEK: u32 = 1 << 0;

/// `struct kvm_s390_cmma_log`: the `KVM_S390_GET/SET_CMMA_BITS` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmS390CmmaLog {
    /// First guest frame.
    pub start_gfn: u64,
    /// Buffer size.
    pub count: u32,
    /// `KVM_S390_CMMA_*`.
    pub flags: u32,
    /// Remaining dirty pages (GET), or the mask (SET; C union member `mask`).
    pub remaining: u64,
    /// User address of the values buffer.
    pub values: u64,
}

/// `struct kvm_pv_cmd`: the `KVM_S390_PV_COMMAND` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmPvCmd {
    /// `KVM_PV_*` command.
    pub cmd: u32,
    /// Ultravisor return code.
    pub rc: u16,
    /// Ultravisor return reason code.
    pub rrc: u16,
    /// Data or address.
    pub data: u64,
    /// Flags (zero).
    pub flags: u32,
    /// Reserved.
    pub reserved: [u32; 3],
}

/// `KVM_S390_STORE_STATUS` argument: store without prefix.
pub const KVM_S390_STORE_STATUS_NOADDR: u64 = u64::MAX;
/// `KVM_S390_STORE_STATUS` argument: store to the prefix area.
pub const KVM_S390_STORE_STATUS_PREFIXED: u64 = u64::MAX - 1;

// ioctl numbers using the s390 structs.

/// vCPU: `KVM_GET_REGS` with the s390 [`KvmRegs`].
pub const KVM_GET_REGS: u32 = ior::<KvmRegs>(0x81);
/// vCPU: `KVM_SET_REGS` with the s390 [`KvmRegs`].
pub const KVM_SET_REGS: u32 = iow::<KvmRegs>(0x82);
/// vCPU: `KVM_GET_SREGS` with the s390 [`KvmSregs`].
pub const KVM_GET_SREGS: u32 = ior::<KvmSregs>(0x83);
/// vCPU: `KVM_SET_SREGS` with the s390 [`KvmSregs`].
pub const KVM_SET_SREGS: u32 = iow::<KvmSregs>(0x84);
/// vCPU: `KVM_GET_FPU` with the s390 [`KvmFpu`].
pub const KVM_GET_FPU: u32 = ior::<KvmFpu>(0x8c);
/// vCPU: `KVM_SET_FPU` with the s390 [`KvmFpu`].
pub const KVM_SET_FPU: u32 = iow::<KvmFpu>(0x8d);
/// vCPU: `KVM_SET_GUEST_DEBUG` with the s390 [`KvmGuestDebug`].
pub const KVM_SET_GUEST_DEBUG: u32 = iow::<KvmGuestDebug>(0x9b);

assert_size! {
    KvmRegs => 128,
    KvmSregs => 192,
    KvmFpu => 136,
    KvmDebugExitArch => 16,
    KvmHwBreakpoint => 32,
    KvmGuestDebugArch => 16,
    KvmGuestDebug => 24,
    KvmRun => 2368,
    KvmS390Psw => 16,
    KvmS390Interrupt => 16,
    KvmS390IoInfo => 12,
    KvmS390ExtInfo => 16,
    KvmS390PgmInfo => 40,
    KvmS390PrefixInfo => 4,
    KvmS390ExtcallInfo => 2,
    KvmS390EmergInfo => 2,
    KvmS390StopInfo => 4,
    KvmS390MchkInfo => 48,
    KvmS390IrqU => 64,
    KvmS390Irq => 72,
    KvmS390IrqState => 32,
    KvmS390UcasMapping => 24,
    KvmS390MemOp => 64,
    KvmS390Skeys => 64,
    KvmS390CmmaLog => 32,
    KvmPvCmd => 32,
}
