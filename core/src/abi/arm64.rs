//! arm64 structs, ONE_REG id encoding and ioctl numbers, from
//! `arch/arm64/include/uapi/asm/kvm.h` and `asm/ptrace.h` (Linux 6.1).
//!
//! arm64 has no `KVM_GET/SET_REGS`, `KVM_GET/SET_SREGS` or `KVM_GET/SET_FPU`
//! (its `kvm_sregs`/`kvm_fpu` are empty); registers are accessed through
//! `KVM_GET/SET_ONE_REG` with the ids built here. [`KvmRegs`] only defines the
//! offsets those core-register ids encode.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::ioctl::{ior, iow};
use super::{KVM_REG_ARM64, KVM_REG_SIZE_U32, KVM_REG_SIZE_U64, KVM_REG_SIZE_U128};

/// vCPU mmap page offset of the coalesced MMIO ring on arm64.
pub const KVM_COALESCED_MMIO_PAGE_OFFSET: u64 = 1;

/// SPSR index: EL1 (`KVM_SPSR_EL1`, also `KVM_SPSR_SVC`).
pub const KVM_SPSR_EL1: usize = 0;
/// SPSR index: abort mode.
pub const KVM_SPSR_ABT: usize = 1;
/// SPSR index: undefined mode.
pub const KVM_SPSR_UND: usize = 2;
/// SPSR index: IRQ mode.
pub const KVM_SPSR_IRQ: usize = 3;
/// SPSR index: FIQ mode.
pub const KVM_SPSR_FIQ: usize = 4;
/// Number of banked SPSRs.
pub const KVM_NR_SPSR: usize = 5;

/// `struct user_pt_regs` (arm64 `asm/ptrace.h`): `kvm_regs.regs`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct UserPtRegs {
    /// X0..X30.
    pub regs: [u64; 31],
    /// SP_EL0.
    pub sp: u64,
    /// PC.
    pub pc: u64,
    /// PSTATE.
    pub pstate: u64,
}

/// `struct user_fpsimd_state` (arm64 `asm/ptrace.h`): `kvm_regs.fp_regs`.
/// `__uint128_t` is 16-byte aligned on arm64, hence `align(16)`.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct UserFpsimdState {
    /// V0..V31 as (low, high) `u64` pairs of each 128-bit register.
    pub vregs: [u64; 64],
    /// FPSR.
    pub fpsr: u32,
    /// FPCR.
    pub fpcr: u32,
    /// Reserved.
    pub __reserved: [u32; 2],
}

/// `struct kvm_regs` (arm64): the layout behind the core-register ONE_REG ids
/// (`KVM_REG_ARM_CORE_REG(name)` = byte offset / 4).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct KvmRegs {
    /// General-purpose registers, SP_EL0, PC, PSTATE.
    pub regs: UserPtRegs,
    /// SP_EL1.
    pub sp_el1: u64,
    /// ELR_EL1.
    pub elr_el1: u64,
    /// Banked SPSRs (`KVM_SPSR_*`).
    pub spsr: [u64; KVM_NR_SPSR],
    /// Implicit C padding before the 16-byte-aligned `fp_regs`.
    pub _pad0: [u8; 8],
    /// FP/SIMD registers.
    pub fp_regs: UserFpsimdState,
}

/// Target: ARMv8 AEM.
pub const KVM_ARM_TARGET_AEM_V8: u32 = 0;
/// Target: Foundation model.
pub const KVM_ARM_TARGET_FOUNDATION_V8: u32 = 1;
/// Target: Cortex-A57.
pub const KVM_ARM_TARGET_CORTEX_A57: u32 = 2;
/// Target: X-Gene Potenza.
pub const KVM_ARM_TARGET_XGENE_POTENZA: u32 = 3;
/// Target: Cortex-A53.
pub const KVM_ARM_TARGET_CORTEX_A53: u32 = 4;
/// Target: generic ARMv8.
pub const KVM_ARM_TARGET_GENERIC_V8: u32 = 5;
/// Number of targets.
pub const KVM_ARM_NUM_TARGETS: u32 = 6;

/// vCPU feature bit: start powered off.
pub const KVM_ARM_VCPU_POWER_OFF: u32 = 0;
/// vCPU feature bit: AArch32 EL1.
pub const KVM_ARM_VCPU_EL1_32BIT: u32 = 1;
/// vCPU feature bit: PSCI v0.2.
pub const KVM_ARM_VCPU_PSCI_0_2: u32 = 2;
/// vCPU feature bit: PMUv3.
pub const KVM_ARM_VCPU_PMU_V3: u32 = 3;
/// vCPU feature bit: SVE.
pub const KVM_ARM_VCPU_SVE: u32 = 4;
/// vCPU feature bit: address authentication.
pub const KVM_ARM_VCPU_PTRAUTH_ADDRESS: u32 = 5;
/// vCPU feature bit: generic authentication.
pub const KVM_ARM_VCPU_PTRAUTH_GENERIC: u32 = 6;

/// `struct kvm_vcpu_init`: the `KVM_ARM_VCPU_INIT` /
/// `KVM_ARM_PREFERRED_TARGET` argument.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmVcpuInit {
    /// `KVM_ARM_TARGET_*`.
    pub target: u32,
    /// Feature bitmap (`KVM_ARM_VCPU_*` bit numbers).
    pub features: [u32; 7],
}

/// Number of hardware breakpoints/watchpoints in the debug structs.
pub const KVM_ARM_MAX_DBG_REGS: usize = 16;

/// `struct kvm_guest_debug_arch` (arm64).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmGuestDebugArch {
    /// Breakpoint control registers.
    pub dbg_bcr: [u64; KVM_ARM_MAX_DBG_REGS],
    /// Breakpoint value registers.
    pub dbg_bvr: [u64; KVM_ARM_MAX_DBG_REGS],
    /// Watchpoint control registers.
    pub dbg_wcr: [u64; KVM_ARM_MAX_DBG_REGS],
    /// Watchpoint value registers.
    pub dbg_wvr: [u64; KVM_ARM_MAX_DBG_REGS],
}

/// `struct kvm_guest_debug` with the arm64 arch part.
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

/// `struct kvm_debug_exit_arch` (arm64): `kvm_run.debug.arch`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmDebugExitArch {
    /// ESR_EL2 (low 32 bits).
    pub hsr: u32,
    /// ESR_EL2 (high 32 bits).
    pub hsr_high: u32,
    /// FAR_EL2.
    pub far: u64,
}

/// `struct kvm_sync_regs` (arm64): `kvm_run.s.regs`.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct KvmSyncRegs {
    /// `KVM_ARM_DEV_*` user-space irqchip output levels.
    pub device_irq_level: u64,
}

/// `device_irq_level` bit: EL1 virtual timer.
pub const KVM_ARM_DEV_EL1_VTIMER: u64 = 1 << 0;
/// `device_irq_level` bit: EL1 physical timer.
pub const KVM_ARM_DEV_EL1_PTIMER: u64 = 1 << 1;
/// `device_irq_level` bit: PMU.
pub const KVM_ARM_DEV_PMU: u64 = 1 << 2;

// ONE_REG id encoding.

/// ONE_REG coprocessor field mask.
pub const KVM_REG_ARM_COPROC_MASK: u64 = 0x0000_0000_0FFF_0000;
/// ONE_REG coprocessor field shift.
pub const KVM_REG_ARM_COPROC_SHIFT: u32 = 16;
/// ONE_REG coprocessor: core registers (offsets into [`KvmRegs`]).
pub const KVM_REG_ARM_CORE: u64 = 0x0010 << KVM_REG_ARM_COPROC_SHIFT;
/// ONE_REG coprocessor: demultiplexed registers (CCSIDR).
pub const KVM_REG_ARM_DEMUX: u64 = 0x0011 << KVM_REG_ARM_COPROC_SHIFT;
/// ONE_REG coprocessor: system registers.
pub const KVM_REG_ARM64_SYSREG: u64 = 0x0013 << KVM_REG_ARM_COPROC_SHIFT;
/// ONE_REG coprocessor: firmware pseudo-registers.
pub const KVM_REG_ARM_FW: u64 = 0x0014 << KVM_REG_ARM_COPROC_SHIFT;
/// ONE_REG coprocessor: SVE registers.
pub const KVM_REG_ARM64_SVE: u64 = 0x0015 << KVM_REG_ARM_COPROC_SHIFT;
/// ONE_REG coprocessor: firmware feature bitmaps.
pub const KVM_REG_ARM_FW_FEAT_BMAP: u64 = 0x0016 << KVM_REG_ARM_COPROC_SHIFT;
/// System register id: Op0 mask.
pub const KVM_REG_ARM64_SYSREG_OP0_MASK: u64 = 0x0000_0000_0000_c000;
/// System register id: Op0 shift.
pub const KVM_REG_ARM64_SYSREG_OP0_SHIFT: u32 = 14;
/// System register id: Op1 mask.
pub const KVM_REG_ARM64_SYSREG_OP1_MASK: u64 = 0x0000_0000_0000_3800;
/// System register id: Op1 shift.
pub const KVM_REG_ARM64_SYSREG_OP1_SHIFT: u32 = 11;
/// System register id: CRn mask.
pub const KVM_REG_ARM64_SYSREG_CRN_MASK: u64 = 0x0000_0000_0000_0780;
/// System register id: CRn shift.
pub const KVM_REG_ARM64_SYSREG_CRN_SHIFT: u32 = 7;
/// System register id: CRm mask.
pub const KVM_REG_ARM64_SYSREG_CRM_MASK: u64 = 0x0000_0000_0000_0078;
/// System register id: CRm shift.
pub const KVM_REG_ARM64_SYSREG_CRM_SHIFT: u32 = 3;
/// System register id: Op2 mask.
pub const KVM_REG_ARM64_SYSREG_OP2_MASK: u64 = 0x0000_0000_0000_0007;
/// System register id: Op2 shift.
pub const KVM_REG_ARM64_SYSREG_OP2_SHIFT: u32 = 0;

/// ONE_REG id of a 64-bit core register at byte `offset` of [`KvmRegs`]
/// (`KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE |
/// KVM_REG_ARM_CORE_REG(name)`); use `core::mem::offset_of!`.
pub const fn core_reg_u64(offset: usize) -> u64 {
    KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | (offset as u64 / 4)
}

/// ONE_REG id of a 32-bit core register (FPSR/FPCR) at byte `offset`.
pub const fn core_reg_u32(offset: usize) -> u64 {
    KVM_REG_ARM64 | KVM_REG_SIZE_U32 | KVM_REG_ARM_CORE | (offset as u64 / 4)
}

/// ONE_REG id of a 128-bit core register (V0..V31) at byte `offset`.
pub const fn core_reg_u128(offset: usize) -> u64 {
    KVM_REG_ARM64 | KVM_REG_SIZE_U128 | KVM_REG_ARM_CORE | (offset as u64 / 4)
}

/// ONE_REG id of X`n` (`n` < 31; larger `n` is clamped to 30).
pub const fn core_reg_x(n: usize) -> u64 {
    let n = if n > 30 { 30 } else { n };
    core_reg_u64(n * 8)
}

/// ONE_REG id of PC.
pub const KVM_REG_ARM64_PC: u64 = core_reg_u64(core::mem::offset_of!(UserPtRegs, pc));
/// ONE_REG id of SP_EL0.
pub const KVM_REG_ARM64_SP: u64 = core_reg_u64(core::mem::offset_of!(UserPtRegs, sp));
/// ONE_REG id of PSTATE.
pub const KVM_REG_ARM64_PSTATE: u64 = core_reg_u64(core::mem::offset_of!(UserPtRegs, pstate));
/// ONE_REG id of SP_EL1.
pub const KVM_REG_ARM64_SP_EL1: u64 = core_reg_u64(core::mem::offset_of!(KvmRegs, sp_el1));
/// ONE_REG id of ELR_EL1.
pub const KVM_REG_ARM64_ELR_EL1: u64 = core_reg_u64(core::mem::offset_of!(KvmRegs, elr_el1));

/// ONE_REG id of a system register (`ARM64_SYS_REG(op0, op1, crn, crm, op2)`).
pub const fn sys_reg(op0: u64, op1: u64, crn: u64, crm: u64, op2: u64) -> u64 {
    KVM_REG_ARM64
        | KVM_REG_SIZE_U64
        | KVM_REG_ARM64_SYSREG
        | ((op0 << KVM_REG_ARM64_SYSREG_OP0_SHIFT) & KVM_REG_ARM64_SYSREG_OP0_MASK)
        | ((op1 << KVM_REG_ARM64_SYSREG_OP1_SHIFT) & KVM_REG_ARM64_SYSREG_OP1_MASK)
        | ((crn << KVM_REG_ARM64_SYSREG_CRN_SHIFT) & KVM_REG_ARM64_SYSREG_CRN_MASK)
        | ((crm << KVM_REG_ARM64_SYSREG_CRM_SHIFT) & KVM_REG_ARM64_SYSREG_CRM_MASK)
        | ((op2 << KVM_REG_ARM64_SYSREG_OP2_SHIFT) & KVM_REG_ARM64_SYSREG_OP2_MASK)
}

/// ONE_REG id of a firmware pseudo-register (`KVM_REG_ARM_FW_REG(r)`).
pub const fn fw_reg(r: u64) -> u64 {
    KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_FW | (r & 0xffff)
}

/// ONE_REG id of the PSCI version pseudo-register.
pub const KVM_REG_ARM_PSCI_VERSION: u64 = fw_reg(0);
/// ONE_REG id of CNTV_CTL_EL0 (`KVM_REG_ARM_TIMER_CTL`).
pub const KVM_REG_ARM_TIMER_CTL: u64 = sys_reg(3, 3, 14, 3, 1);
/// ONE_REG id of CNTV_CVAL_EL0 (`KVM_REG_ARM_TIMER_CVAL`; the uapi swaps
/// the encodings of CVAL and CNT, kept as is for ABI compatibility).
pub const KVM_REG_ARM_TIMER_CVAL: u64 = sys_reg(3, 3, 14, 0, 2);
/// ONE_REG id of CNTVCT_EL0 (`KVM_REG_ARM_TIMER_CNT`).
pub const KVM_REG_ARM_TIMER_CNT: u64 = sys_reg(3, 3, 14, 3, 2);
/// ONE_REG id of MPIDR_EL1.
pub const KVM_REG_ARM64_MPIDR_EL1: u64 = sys_reg(3, 0, 0, 0, 5);

// ioctl numbers (asm-generic encoding).

/// vCPU: initialize the vCPU (`_IOW(KVMIO, 0xae, struct kvm_vcpu_init)`).
pub const KVM_ARM_VCPU_INIT: u32 = iow::<KvmVcpuInit>(0xae);
/// VM: the preferred target for this host
/// (`_IOR(KVMIO, 0xaf, struct kvm_vcpu_init)`).
pub const KVM_ARM_PREFERRED_TARGET: u32 = ior::<KvmVcpuInit>(0xaf);
/// vCPU: finalize a feature such as SVE (`_IOW(KVMIO, 0xc2, int)`).
pub const KVM_ARM_VCPU_FINALIZE: u32 = iow::<i32>(0xc2);
/// vCPU: `KVM_SET_GUEST_DEBUG` with the arm64 [`KvmGuestDebug`].
pub const KVM_SET_GUEST_DEBUG: u32 = iow::<KvmGuestDebug>(0x9b);

assert_size! {
    UserPtRegs => 272,
    UserFpsimdState => 528,
    KvmRegs => 864,
    KvmVcpuInit => 32,
    KvmGuestDebugArch => 512,
    KvmGuestDebug => 520,
    KvmDebugExitArch => 16,
    KvmSyncRegs => 8,
}
const _: () = assert!(core::mem::offset_of!(KvmRegs, fp_regs) == 336);
const _: () = assert!(core::mem::align_of::<KvmRegs>() == 16);

zeroed_default!(UserPtRegs, UserFpsimdState, KvmRegs);
